//! What the core's unit tests build their nodes and clusters from: members named `node<id>`
//! on one host, and a round run to its member list.

use super::election::Election;
use super::event::{Event, Purpose};
use super::member::{Member, NodeRef};
use super::ready::{Effect, Ready};

pub fn nref(id: u64) -> NodeRef {
    NodeRef::new(format!("node{id}"), id)
}

/// `node<id>` on 10.0.0.1, port 5000 + id.
pub fn member(id: u64) -> Member {
    Member {
        name: format!("node{id}"),
        id,
        host: "10.0.0.1".into(),
        port: 5000 + id as u16,
        witness: false,
    }
}

pub fn cluster(ids: &[u64]) -> Vec<Member> {
    ids.iter().map(|&i| member(i)).collect()
}

/// Starts a round at `now` with a health tick (no coordinator is known, or one that leads
/// looks up) and answers its member collection with `ms`; returns what followed.
pub fn elect(e: &mut Election, now: u64, ms: &[Member]) -> Ready {
    let r = e.step(now, Event::HealthTick);
    let round = match r.effects.as_slice() {
        [Effect::CollectMembers {
            purpose: Purpose::Round(round),
        }] => *round,
        other => panic!("expected a round, got {other:?}"),
    };
    e.step(
        now,
        Event::Members {
            purpose: Purpose::Round(round),
            members: ms.to_vec(),
        },
    )
}

//! The Bully algorithm as a pure state machine.
//!
//! Nothing here touches the network, the registry or the clock: every method takes an event
//! (a message arrived, the members were read, a wait ran out) and returns the [`Action`]s the
//! shell must carry out. That keeps the protocol testable like a function and lets the shell
//! drop the state lock before it does any I/O.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A node's identity in an election: priority first, the name breaks ties between equal ids so
/// that any two distinct nodes are always ordered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeRef {
    pub id: u64,
    pub name: String,
}

impl NodeRef {
    pub fn new(name: impl Into<String>, id: u64) -> Self {
        NodeRef {
            id,
            name: name.into(),
        }
    }
}

impl Ord for NodeRef {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.id, &self.name).cmp(&(other.id, &other.name))
    }
}

impl PartialOrd for NodeRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (id {})", self.name, self.id)
    }
}

/// A cluster member as a registry lists it: identity plus where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub id: u64,
    pub host: String,
    pub port: u16,
}

impl Member {
    pub fn node_ref(&self) -> NodeRef {
        NodeRef::new(self.name.clone(), self.id)
    }

    /// `host:port`, with IPv6 literals bracketed.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Where this node stands in the current round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No election running: following a coordinator, leading, or not yet started.
    Idle,
    /// An election was asked for; waiting for the registry's member list.
    Collecting,
    /// Election messages are out to the higher members.
    Electing,
    /// A higher member answered; waiting for its announcement.
    AwaitingAnnouncement,
}

/// What the shell must do. Each action carries the round it belongs to where a later answer
/// has to be matched against it, so answers from an abandoned round are ignored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Read the members from the registry, then call [`Election::members_collected`].
    CollectMembers { round: u64 },
    /// Send an election message (`POST /proxy`) to each of `to` in parallel, then call
    /// [`Election::election_answered`] with how many answered OK.
    SendElection { round: u64, to: Vec<Member> },
    /// Wait a bounded time, then call [`Election::announcement_timed_out`].
    AwaitAnnouncement { round: u64 },
    /// This node became coordinator: send `POST /announce` to each of `to`.
    Announce { to: Vec<Member> },
    /// Check that the coordinator is alive (`GET /`); on failure call
    /// [`Election::coordinator_failed`].
    CheckCoordinator { coordinator: NodeRef },
}

/// The answer to an election message from another node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyReply {
    /// We outrank the sender: it must not become coordinator.
    Ok,
    /// The sender does not rank below us; it sent the message to the wrong node.
    NotLower,
}

/// What a node knows and where it is in the protocol.
#[derive(Clone, Debug)]
pub struct Election {
    me: NodeRef,
    coordinator: Option<NodeRef>,
    phase: Phase,
    round: u64,
    /// Members read at the start of the round: the announcement goes to them.
    round_members: Vec<Member>,
}

/// A read-only view for `/nodeDetails`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub coordinator: Option<NodeRef>,
    pub is_coordinator: bool,
    pub election: bool,
    pub round: u64,
}

impl Election {
    pub fn new(me: NodeRef) -> Self {
        Election {
            me,
            coordinator: None,
            phase: Phase::Idle,
            round: 0,
            round_members: Vec::new(),
        }
    }

    pub fn me(&self) -> &NodeRef {
        &self.me
    }

    pub fn coordinator(&self) -> Option<&NodeRef> {
        self.coordinator.as_ref()
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn is_coordinator(&self) -> bool {
        self.coordinator.as_ref() == Some(&self.me)
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            coordinator: self.coordinator.clone(),
            is_coordinator: self.is_coordinator(),
            election: self.phase != Phase::Idle,
            round: self.round,
        }
    }

    /// Start a round unless one is already running: however many triggers arrive (timers,
    /// election messages from several lower nodes), one round runs at a time.
    pub fn request_election(&mut self) -> Vec<Action> {
        if self.phase != Phase::Idle {
            return Vec::new();
        }
        self.round += 1;
        self.phase = Phase::Collecting;
        log::info!("Starting election in: {}", self.me.name);
        vec![Action::CollectMembers { round: self.round }]
    }

    /// The registry answered: message every higher member, or win at once when there is none.
    pub fn members_collected(&mut self, round: u64, members: Vec<Member>) -> Vec<Action> {
        if self.phase != Phase::Collecting || round != self.round {
            return Vec::new();
        }
        let higher: Vec<Member> = members
            .iter()
            .filter(|m| m.name != self.me.name && m.node_ref() > self.me)
            .cloned()
            .collect();
        let names: Vec<&str> = higher.iter().map(|m| m.name.as_str()).collect();
        log::info!("higher nodes: [{}]", names.join(", "));
        self.round_members = members;
        if higher.is_empty() {
            return self.become_coordinator();
        }
        self.phase = Phase::Electing;
        vec![Action::SendElection { round, to: higher }]
    }

    /// The election messages of `round` came back; `ok` higher members answered OK.
    pub fn election_answered(&mut self, round: u64, ok: usize) -> Vec<Action> {
        if self.phase != Phase::Electing || round != self.round {
            return Vec::new();
        }
        if ok == 0 {
            log::info!("No higher node answered in: {}", self.me.name);
            return self.become_coordinator();
        }
        self.phase = Phase::AwaitingAnnouncement;
        vec![Action::AwaitAnnouncement { round }]
    }

    /// A higher node answered but never announced itself (it died meanwhile): start over.
    pub fn announcement_timed_out(&mut self, round: u64) -> Vec<Action> {
        if self.phase != Phase::AwaitingAnnouncement || round != self.round {
            return Vec::new();
        }
        log::warn!(
            "No announcement arrived in: {}; electing again",
            self.me.name
        );
        self.phase = Phase::Idle;
        self.request_election()
    }

    /// `POST /proxy`: an election message. A lower sender is told OK, and this node runs its
    /// own election (at most one per round), as the Bully algorithm requires.
    pub fn on_proxy(&mut self, from: &NodeRef) -> (ProxyReply, Vec<Action>) {
        if *from >= self.me {
            return (ProxyReply::NotLower, Vec::new());
        }
        (ProxyReply::Ok, self.request_election())
    }

    /// `POST /response`: the original's comparison step; a higher node takes over the election.
    pub fn on_response(&mut self, from: &NodeRef) -> Vec<Action> {
        if self.me > *from {
            self.request_election()
        } else {
            Vec::new()
        }
    }

    /// `POST /announce`: accept a higher coordinator; bully a lower one back with an election.
    pub fn on_announce(&mut self, coordinator: &NodeRef) -> Vec<Action> {
        if *coordinator == self.me {
            return Vec::new();
        }
        if *coordinator > self.me {
            self.phase = Phase::Idle;
            if self.coordinator.as_ref() != Some(coordinator) {
                log::info!("Coordinator is: {}", coordinator.name);
                self.coordinator = Some(coordinator.clone());
            }
            return Vec::new();
        }
        log::info!(
            "{} announced itself but {} ranks higher: electing",
            coordinator.name,
            self.me.name
        );
        self.request_election()
    }

    /// The health schedule fired: check the coordinator, or elect when none is known.
    pub fn on_health_tick(&mut self) -> Vec<Action> {
        if self.phase != Phase::Idle {
            return Vec::new();
        }
        match &self.coordinator {
            None => self.request_election(),
            Some(c) if *c == self.me => Vec::new(),
            Some(c) => vec![Action::CheckCoordinator {
                coordinator: c.clone(),
            }],
        }
    }

    /// The coordinator did not answer its health check.
    pub fn coordinator_failed(&mut self, coordinator: &NodeRef) -> Vec<Action> {
        if self.coordinator.as_ref() != Some(coordinator) {
            return Vec::new();
        }
        log::warn!("Coordinator {} is down", coordinator.name);
        self.coordinator = None;
        self.request_election()
    }

    fn become_coordinator(&mut self) -> Vec<Action> {
        self.phase = Phase::Idle;
        self.coordinator = Some(self.me.clone());
        log::info!("Coordinator is: {}", self.me.name);
        let to: Vec<Member> = std::mem::take(&mut self.round_members)
            .into_iter()
            .filter(|m| m.name != self.me.name)
            .collect();
        vec![Action::Announce { to }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(name: &str, id: u64) -> Member {
        Member {
            name: name.into(),
            id,
            host: "127.0.0.1".into(),
            port: 5000 + id as u16,
        }
    }

    fn cluster(ids: &[u64]) -> Vec<Member> {
        ids.iter()
            .map(|&i| member(&format!("node{i}"), i))
            .collect()
    }

    fn node(id: u64) -> Election {
        Election::new(NodeRef::new(format!("node{id}"), id))
    }

    /// Runs `request_election` and the member collection; returns what followed.
    fn start(e: &mut Election, members: &[Member]) -> Vec<Action> {
        let acts = e.request_election();
        let round = match acts.as_slice() {
            [Action::CollectMembers { round }] => *round,
            other => panic!("expected CollectMembers, got {other:?}"),
        };
        e.members_collected(round, members.to_vec())
    }

    #[test]
    fn highest_id_wins_at_once_and_announces_to_the_others() {
        let mut e = node(4);
        let acts = start(&mut e, &cluster(&[1, 2, 3, 4]));
        assert_eq!(
            acts,
            vec![Action::Announce {
                to: cluster(&[1, 2, 3])
            }]
        );
        assert!(e.is_coordinator());
        assert_eq!(e.phase(), &Phase::Idle);
    }

    #[test]
    fn lower_node_messages_only_higher_members() {
        let mut e = node(2);
        let acts = start(&mut e, &cluster(&[1, 2, 3, 4]));
        assert_eq!(
            acts,
            vec![Action::SendElection {
                round: 1,
                to: cluster(&[3, 4])
            }]
        );
        assert!(e.snapshot().election);
    }

    #[test]
    fn no_answer_from_higher_nodes_makes_this_node_coordinator() {
        let mut e = node(3);
        start(&mut e, &cluster(&[1, 2, 3, 4]));
        let acts = e.election_answered(1, 0);
        assert_eq!(
            acts,
            vec![Action::Announce {
                to: cluster(&[1, 2, 4])
            }]
        );
        assert!(e.is_coordinator());
    }

    #[test]
    fn a_lower_nodes_election_is_taken_over() {
        let mut low = node(1);
        let mut high = node(3);
        let members = cluster(&[1, 2, 3]);
        let acts = start(&mut low, &members);
        assert!(matches!(&acts[..], [Action::SendElection { to, .. }] if to.len() == 2));
        // node3 receives node1's message: it answers OK and runs its own election ...
        let (reply, acts) = high.on_proxy(low.me());
        assert_eq!(reply, ProxyReply::Ok);
        assert_eq!(acts, vec![Action::CollectMembers { round: 1 }]);
        let acts = high.members_collected(1, members.clone());
        assert_eq!(
            acts,
            vec![Action::Announce {
                to: cluster(&[1, 2])
            }]
        );
        // ... so node1 waits for the announcement instead of winning.
        assert_eq!(
            low.election_answered(1, 1),
            vec![Action::AwaitAnnouncement { round: 1 }]
        );
        assert_eq!(low.on_announce(high.me()), vec![]);
        assert_eq!(low.coordinator(), Some(high.me()));
        assert_eq!(low.phase(), &Phase::Idle);
    }

    #[test]
    fn response_from_lower_node_starts_local_election_but_not_from_higher() {
        let mut e = node(2);
        assert_eq!(e.on_response(&NodeRef::new("node3", 3)), vec![]);
        assert_eq!(
            e.on_response(&NodeRef::new("node1", 1)),
            vec![Action::CollectMembers { round: 1 }]
        );
    }

    #[test]
    fn announcement_from_lower_node_is_bullied_back() {
        let mut e = node(3);
        let acts = e.on_announce(&NodeRef::new("node2", 2));
        assert_eq!(acts, vec![Action::CollectMembers { round: 1 }]);
        assert_eq!(e.coordinator(), None);
        let acts = e.members_collected(1, cluster(&[1, 2, 3]));
        assert!(matches!(&acts[..], [Action::Announce { .. }]));
        assert!(e.is_coordinator());
    }

    #[test]
    fn many_proxy_calls_in_one_round_start_one_election() {
        let mut e = node(10);
        let mut started = 0;
        for i in 1..10 {
            let (reply, acts) = e.on_proxy(&NodeRef::new(format!("node{i}"), i));
            assert_eq!(reply, ProxyReply::Ok);
            started += acts.len();
        }
        assert_eq!(started, 1);
        // The round ends when this node wins; the next round may start again.
        e.members_collected(1, cluster(&[1, 2, 10]));
        assert!(e.is_coordinator());
        let (_, acts) = e.on_proxy(&NodeRef::new("node1", 1));
        assert_eq!(acts, vec![Action::CollectMembers { round: 2 }]);
    }

    #[test]
    fn proxy_from_higher_or_equal_node_is_refused() {
        let mut e = node(5);
        assert_eq!(
            e.on_proxy(&NodeRef::new("node6", 6)),
            (ProxyReply::NotLower, vec![])
        );
        let me = e.me().clone();
        assert_eq!(e.on_proxy(&me).0, ProxyReply::NotLower);
        assert_eq!(e.phase(), &Phase::Idle);
    }

    #[test]
    fn equal_ids_are_ordered_by_name() {
        assert!(NodeRef::new("b", 7) > NodeRef::new("a", 7));
        let mut e = Election::new(NodeRef::new("b", 7));
        let members = vec![member("a", 7), member("b", 7)];
        let acts = start(&mut e, &members);
        assert!(matches!(&acts[..], [Action::Announce { .. }]));
    }

    #[test]
    fn stale_answers_from_an_abandoned_round_are_ignored() {
        let mut e = node(1);
        start(&mut e, &cluster(&[1, 2]));
        e.on_announce(&NodeRef::new("node2", 2));
        assert_eq!(e.election_answered(1, 0), vec![]);
        assert_eq!(e.announcement_timed_out(1), vec![]);
        assert_eq!(e.coordinator(), Some(&NodeRef::new("node2", 2)));
    }

    #[test]
    fn missing_announcement_restarts_the_election() {
        let mut e = node(1);
        start(&mut e, &cluster(&[1, 2]));
        e.election_answered(1, 1);
        assert_eq!(
            e.announcement_timed_out(1),
            vec![Action::CollectMembers { round: 2 }]
        );
    }

    #[test]
    fn health_tick_checks_coordinator_or_elects() {
        let mut e = node(1);
        assert_eq!(
            e.on_health_tick(),
            vec![Action::CollectMembers { round: 1 }]
        );
        let mut e = node(1);
        let c = NodeRef::new("node2", 2);
        e.on_announce(&c);
        assert_eq!(
            e.on_health_tick(),
            vec![Action::CheckCoordinator {
                coordinator: c.clone()
            }]
        );
        assert_eq!(
            e.coordinator_failed(&c),
            vec![Action::CollectMembers { round: 1 }]
        );
        assert_eq!(e.coordinator(), None);
        // While the round runs, further ticks do nothing.
        assert_eq!(e.on_health_tick(), vec![]);
    }

    #[test]
    fn coordinator_does_not_check_itself_and_steps_down_for_a_higher_one() {
        let mut e = node(3);
        start(&mut e, &cluster(&[1, 3]));
        assert_eq!(e.on_health_tick(), vec![]);
        e.on_announce(&NodeRef::new("node4", 4));
        assert!(!e.is_coordinator());
        assert_eq!(e.coordinator().map(|c| c.id), Some(4));
    }

    #[test]
    fn failure_of_a_node_that_is_not_the_coordinator_changes_nothing() {
        let mut e = node(1);
        e.on_announce(&NodeRef::new("node3", 3));
        assert_eq!(e.coordinator_failed(&NodeRef::new("node2", 2)), vec![]);
        assert_eq!(e.coordinator().map(|c| c.id), Some(3));
    }
}

//! Model checking of the election core (`tests/model.rs`): the real [`Election`] of every
//! node, driven through every interleaving of messages, timers, faults and time that the
//! bounds allow. No copy of the algorithm: the model only plays the shell and the network.
//!
//! [`Election`]: bully::core::election::Election
#![allow(dead_code)]

pub mod explore;
pub mod props;
pub mod time;
pub mod world;

use bully::core::quorum::Quorum;
use std::time::Duration;
use time::Rate;
use world::{Faults, Spec, Timing, World};

/// The lease of the quorum-mode models, in ms. Its renewals (every eighth), the drift
/// margin (2 %) and the claim retry (25 ms, fixed in the core) keep their proportions to it.
pub const LEASE_MS: u64 = 100;

/// The timers of every model node, short against the lease so that within a few leases
/// elections, checks and timeouts all happen.
pub fn timing() -> Timing {
    Timing {
        startup_ms: 5,
        health_ms: 60,
        timeout_ms: 10,
    }
}

/// Nodes `node{id}` in quorum mode (`--quorum N --lease 100ms --exec-grace 0`): with no
/// stop margin a leader acts right up to its lease's end, the strictest case.
pub fn quorum_spec(ids: &[u64], witness: Option<usize>, props: props::Props) -> Spec {
    let q = Quorum::new(ids.len(), Duration::from_millis(LEASE_MS), Duration::ZERO);
    Spec::new(ids, witness, Some(q), timing(), props)
}

/// Nodes `node{id}` in plain Bully (no `--quorum`).
pub fn plain_spec(ids: &[u64], props: props::Props) -> Spec {
    Spec::new(ids, None, None, timing(), props)
}

/// Every assignment of the two extreme clock rates to `n` nodes.
pub fn extreme_rates(n: usize) -> Vec<Vec<Rate>> {
    (0..1u32 << n)
        .map(|bits| {
            (0..n)
                .map(|i| {
                    if bits >> i & 1 == 1 {
                        Rate::Fast
                    } else {
                        Rate::Slow
                    }
                })
                .collect()
        })
        .collect()
}

/// Every node started at once, run fairly and without faults until the cluster agrees and
/// nothing is in flight or under way: a settled cluster, where the faults of a run strike.
pub fn settled(spec: &Spec, rates: &[Rate], faults: Faults) -> World {
    let mut w = World::fresh(spec, rates, Faults::default());
    while !(w.agreed(spec) && w.quiet()) {
        let a = w
            .fair_action(spec, u64::MAX)
            .expect("a fault-free start moves on");
        w.apply(spec, a)
            .expect("a fault-free start keeps every property");
    }
    w.left = faults;
    w
}

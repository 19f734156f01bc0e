//! The fence around the `--exec` child in quorum mode: the end of the lease, the latest
//! instant the child may still run, as a point on the host's monotonic clock. The core moves
//! it forward with every renewal; the hook runner hands it to the child's supervisor, which
//! kills the child when its own reading of that clock passes it, even if this process is
//! frozen and can move it no more. Being absolute, a deadline that arrives late still names
//! the same instant.

use super::clock::Clock;
use crate::monotonic::MonoMs;
use crate::sync::lock;
use std::sync::Mutex;

pub struct Fence {
    clock: Clock,
    /// Quorum mode: no `--exec` child runs without a fence.
    enforced: bool,
    until: Mutex<Option<MonoMs>>,
    /// `--etcd-lock`: what the `--exec` child's supervisor sends once this node is gone and
    /// the child dead (revoking the leader key's lease; see `supervisor::orphaned`).
    orphaned: Mutex<Option<String>>,
}

impl Fence {
    pub fn new(clock: Clock, enforced: bool) -> Fence {
        Fence {
            clock,
            enforced,
            until: Mutex::new(None),
            orphaned: Mutex::new(None),
        }
    }

    /// Whether the `--exec` child may only run fenced (quorum mode).
    pub fn enforced(&self) -> bool {
        self.enforced
    }

    /// The core time `ms` as a deadline on the host's monotonic clock.
    pub fn at(&self, ms: u64) -> MonoMs {
        self.clock.monotonic(ms)
    }

    /// Moves the fence to the core time `until`, never back: an answer that arrives late
    /// cannot shorten a lease that a newer one extended.
    pub fn extend(&self, until: u64) {
        let until = self.at(until);
        let mut held = lock(&self.until);
        if held.is_none_or(|h| until > h) {
            *held = Some(until);
        }
    }

    /// Sets (or clears) what the child's supervisor sends once this node is gone.
    pub fn set_orphaned(&self, spec: Option<String>) {
        *lock(&self.orphaned) = spec;
    }

    pub fn orphaned(&self) -> Option<String> {
        lock(&self.orphaned).clone()
    }

    /// The current fence; `None` outside quorum mode.
    pub fn until(&self) -> Option<MonoMs> {
        *lock(&self.until)
    }
}

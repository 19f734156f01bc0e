//! The shell's half of the core's lock gate (`core::lock`), whichever store holds the lock:
//! Consul (`--consul-lock`) or etcd (`--etcd-lock`). The node hands it the core's lock
//! effects in order while it publishes a step; it answers with `Event::Lock` steps.

use super::handle::Handle;
use crate::core::ready::Effect;
use std::sync::Weak;
use std::time::Duration;

pub trait LeaderLock: Send + Sync {
    /// Starts the threads that carry out the effects and step `node` with what they find.
    fn run_for(&self, node: Weak<dyn Handle>) -> std::io::Result<()>;
    /// Queues one of the core's lock effects; never blocks (called while the node publishes).
    fn submit(&self, effect: &Effect);
    /// Waits until every queued effect is done, at most `within` (shutdown: the release).
    fn flush(&self, within: Duration);
}

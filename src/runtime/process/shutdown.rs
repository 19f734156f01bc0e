//! Leaving on SIGINT/SIGTERM: stop acting, let go of leadership, then leave the registry so
//! the others stop counting on us, then answer the followers' watches so they elect at once.

use crate::core::event::Event;
use crate::runtime::membership::registration::Registration;
use crate::runtime::node::handle::Handle;
use crate::runtime::watch::leadership::Leadership;
use crate::runtime::work::hooks::Hooks;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long the releases of a coordinator in quorum mode get to reach the followers.
const RELEASE_WAIT: Duration = Duration::from_secs(2);
/// How long followers' held watches get to see the shutdown answer before the process exits.
const WATCH_DRAIN: Duration = Duration::from_secs(1);

/// What shutdown lets go of, in order.
pub struct Leaving {
    pub node: Arc<dyn Handle>,
    pub hooks: Option<Hooks>,
    pub registration: Arc<Registration>,
    pub leadership: Arc<Leadership>,
}

impl Leaving {
    /// Stops the exec child and runs the demoted hook (if this node leads), deregisters the
    /// node and answers the watches; the caller exits. Leadership is given up before the
    /// registry record goes, so the next coordinator is not found while this one still acts.
    pub fn leave(self, signal: i32) {
        // Stop acting first, so no one is told this node leads while it lets go; the log line
        // comes after, as a write to a full or stalled pipe may block.
        self.node.step(Event::ShuttingDown);
        log::info!("Signal {signal} received: leaving the cluster");
        if let Some(hooks) = self.hooks {
            hooks.leave();
        }
        // The releases (quorum mode) go out before the node leaves the registry.
        self.node.flush(RELEASE_WAIT);
        self.registration.leave();
        // Followers watching this node elect as soon as their watch is answered.
        self.leadership.close();
        let end = Instant::now() + WATCH_DRAIN;
        while self.leadership.watchers() > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
        log::info!("Left the cluster: exiting");
    }
}

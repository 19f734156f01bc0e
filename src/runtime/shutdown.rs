//! Clean shutdown on SIGINT/SIGTERM: let go of leadership, then leave the registry so the
//! others stop counting on us, then answer the followers' watches so they elect at once.

use super::handle::Handle;
use super::hooks::Hooks;
use super::leadership::Leadership;
use super::registration::Registration;
use crate::core::event::Event;
use crate::sync::spawn_named;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
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

/// Waits for SIGINT or SIGTERM on its own thread; stops the exec child and runs the demoted
/// hook (if this node leads), deregisters the node and exits 0. Leadership is given up before
/// the registry record goes, so the next coordinator is not elected while this one still acts
/// as one.
pub fn install(leaving: Leaving) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    spawn_named("signals", move || {
        if let Some(sig) = signals.forever().next() {
            log::info!("Signal {sig} received: leaving the cluster");
            // Stop acting first, so no one is told this node leads while it lets go.
            leaving.node.step(Event::ShuttingDown);
            if let Some(hooks) = leaving.hooks {
                hooks.leave();
            }
            // The releases (quorum mode) go out before the node leaves the registry.
            leaving.node.flush(RELEASE_WAIT);
            leaving.registration.leave();
            // Followers watching this node elect as soon as their watch is answered.
            leaving.leadership.close();
            let end = Instant::now() + WATCH_DRAIN;
            while leaving.leadership.watchers() > 0 && Instant::now() < end {
                std::thread::sleep(Duration::from_millis(5));
            }
            std::process::exit(0);
        }
    })?;
    Ok(())
}

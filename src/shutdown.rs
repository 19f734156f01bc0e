//! Clean shutdown on SIGINT/SIGTERM: let go of leadership, then leave the registry so the
//! others stop counting on us.

use crate::hooks::Hooks;
use crate::node::Node;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits for SIGINT or SIGTERM on its own thread; stops the exec child and runs the demoted
/// hook (if this node leads), deregisters the node and exits 0. Leadership is given up before
/// the registry record goes, so the next coordinator is not elected while this one still acts
/// as one.
pub fn install(node: Arc<Node>, hooks: Option<Hooks>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                log::info!("Signal {sig} received: leaving the cluster");
                if let Some(hooks) = hooks {
                    hooks.leave(&node);
                }
                node.leave();
                // Followers watching this node elect as soon as their watch is answered.
                node.leadership.close();
                let end = Instant::now() + Duration::from_secs(1);
                while node.watchers.load(Ordering::Acquire) > 0 && Instant::now() < end {
                    std::thread::sleep(Duration::from_millis(5));
                }
                std::process::exit(0);
            }
        })?;
    Ok(())
}

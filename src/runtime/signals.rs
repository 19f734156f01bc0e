//! The signal thread: SIGINT and SIGTERM end the node ([`super::shutdown`]), SIGHUP reads its
//! files again ([`super::reload`]). Nothing here can take the thread down: a panic in either
//! is caught, so SIGTERM always ends the process.

use super::reload::Reload;
use super::shutdown::Leaving;
use crate::sync::spawn_named;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Handles the signals from now on. `stopping` is set by the handler itself the moment
/// SIGINT or SIGTERM arrives, before this thread wakes: from then on the node reports that it
/// does not lead (see `Node::snapshot`).
pub fn install(leaving: Leaving, reload: Reload, stopping: Arc<AtomicBool>) -> std::io::Result<()> {
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stopping))?;
    }
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    spawn_named("signals", move || {
        let mut leaving = Some(leaving);
        for sig in signals.forever() {
            if sig == SIGHUP {
                if catch_unwind(AssertUnwindSafe(|| reload.run())).is_err() {
                    log::error!("SIGHUP: reading the files again failed; still running");
                }
                continue;
            }
            let Some(leaving) = leaving.take() else {
                continue;
            };
            let left = catch_unwind(AssertUnwindSafe(|| leaving.leave(sig)));
            std::process::exit(if left.is_ok() { 0 } else { 1 });
        }
    })?;
    Ok(())
}

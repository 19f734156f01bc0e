//! The signal thread: SIGINT and SIGTERM end the node ([`super::shutdown`]), SIGHUP reads its
//! files again ([`super::reload`]). Nothing here can take the thread down: a panic in either
//! is caught, so SIGTERM always ends the process.

use super::reload::Reload;
use super::shutdown::Leaving;
use crate::sync::spawn_named;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// First thing at start: from now on SIGINT and SIGTERM set `stopping` (in the handler
/// itself, the moment they arrive: from then on the node reports that it does not lead, see
/// `Node::snapshot`) instead of killing the process, and SIGHUP is dropped, until
/// [`install`] handles them.
pub fn catch_early(stopping: Arc<AtomicBool>) -> std::io::Result<()> {
    for sig in [SIGINT, SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stopping))?;
    }
    signal_hook::flag::register(SIGHUP, Arc::new(AtomicBool::new(false)))?;
    Ok(())
}

/// Handles the signals from now on; a SIGINT or SIGTERM that came since [`catch_early`] makes
/// the node leave at once.
pub fn install(leaving: Leaving, reload: Reload, stopping: Arc<AtomicBool>) -> std::io::Result<()> {
    let mut signals = Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    let early = stopping.load(Ordering::SeqCst).then_some(SIGTERM);
    spawn_named("signals", move || {
        let mut leaving = Some(leaving);
        for sig in early.into_iter().chain(signals.forever()) {
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

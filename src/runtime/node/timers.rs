//! One thread that fires the core's timers. A timer that fires after the node moved on is
//! harmless: each carries what it belongs to and the core ignores stale ones.

use super::handle::Handle;
use crate::core::event::{Event, Timer};
use crate::sync::{lock, spawn_named};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Pending {
    due: Vec<(Instant, Timer)>,
}

/// The pending timers; clones share them.
#[derive(Clone, Default)]
pub struct Timers {
    pending: Arc<(Mutex<Pending>, Condvar)>,
}

impl Timers {
    pub fn new() -> Timers {
        Timers::default()
    }

    /// Starts the timer thread; it steps `node` with each timer that runs out, and ends when
    /// the node is gone.
    pub fn run_for(&self, node: Weak<dyn Handle>) -> std::io::Result<()> {
        let shared = Arc::clone(&self.pending);
        spawn_named("timers", move || run(&shared, &node))?;
        Ok(())
    }

    /// Fires `timer` after `after`.
    pub fn start_timer(&self, timer: Timer, after: Duration) {
        let (pending, wake) = &*self.pending;
        lock(pending).due.push((Instant::now() + after, timer));
        wake.notify_one();
    }
}

fn run(pending: &(Mutex<Pending>, Condvar), node: &Weak<dyn Handle>) {
    let (lock_, wake) = pending;
    let mut guard = lock(lock_);
    loop {
        let now = Instant::now();
        let (due, later): (Vec<_>, Vec<_>) = guard.due.drain(..).partition(|(at, _)| *at <= now);
        guard.due = later;
        if !due.is_empty() {
            drop(guard);
            let Some(node) = node.upgrade() else { return };
            for (_, timer) in due {
                node.step(Event::Timer(timer));
            }
            guard = lock(lock_);
            continue;
        }
        let next = guard.due.iter().map(|(at, _)| *at).min();
        guard = match next {
            Some(at) => {
                let wait = at.saturating_duration_since(now);
                wake.wait_timeout(guard, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            None => wake.wait(guard).unwrap_or_else(|e| e.into_inner()),
        };
    }
}

//! The coordinator's side of the watches: a signal that wakes every held watch and the beat
//! hub when leadership changes or the node shuts down, and the count of watches held against
//! their cap.

use crate::http::limits::MAX_WATCHERS;
use crate::sync::lock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

#[derive(Default)]
pub struct Leadership {
    state: Mutex<Signal>,
    changed: Condvar,
    watchers: AtomicUsize,
}

/// What waiters compare: any change wakes them.
#[derive(Default, Clone, Copy, PartialEq, Eq, Debug)]
pub struct Signal {
    /// Bumped at every change of coordinator.
    pub epoch: u64,
    /// The node is shutting down.
    pub closing: bool,
    /// Bumped when a beat stream is handed to the hub, so it wakes to beat it at once.
    pub streams: u64,
}

impl Leadership {
    /// The coordinator changed: every held watch must re-check.
    pub fn bump(&self) {
        lock(&self.state).epoch += 1;
        self.changed.notify_all();
    }

    /// The node is shutting down: answer every held watch now.
    pub fn close(&self) {
        lock(&self.state).closing = true;
        self.changed.notify_all();
    }

    /// A beat stream arrived for the hub.
    pub fn stream_added(&self) {
        lock(&self.state).streams += 1;
        self.changed.notify_all();
    }

    /// Watches (held requests and beat streams) held now.
    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Acquire)
    }

    pub fn current(&self) -> Signal {
        *lock(&self.state)
    }

    /// Waits until the signal differs from `start` or `within` passes; returns the signal.
    pub fn wait_from(&self, start: Signal, within: Duration) -> Signal {
        let guard = lock(&self.state);
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, within, |s| *s == start)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }

    /// Counts a watch for the cap; `None` when the cap is reached.
    pub fn enter(&self) -> Option<Slot<'_>> {
        if self.watchers.fetch_add(1, Ordering::AcqRel) >= MAX_WATCHERS {
            self.watchers.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(self))
    }

    /// Counts a watch that outlives the call (a beat stream); [`Leadership::leave`] ends it.
    pub fn enter_held(&self) -> bool {
        self.enter().map(std::mem::forget).is_some()
    }

    pub fn leave(&self) {
        self.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Releases its place under [`MAX_WATCHERS`] when dropped.
pub struct Slot<'a>(&'a Leadership);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

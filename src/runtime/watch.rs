//! Instant failover: each follower keeps one held request (`GET /watch`) open on the
//! coordinator. When the coordinator's process dies, its kernel closes the socket at once and
//! the follower elects within milliseconds instead of at the next health check. The periodic
//! health check stays as the safety net for frozen processes, dead hosts and partitions.
//!
//! A long poll rather than a stream: tiny_http buffers chunked bodies in 8 KiB chunks, so a
//! heartbeat stream would not flush; a held request answered every few seconds costs the
//! coordinator one thread and one socket per follower, and its answer is the heartbeat.
//!
//! Both sides live here: [`serve`] holds a watch on the coordinator, [`follow`] keeps one
//! open on the follower. What a watch's end means is the core's to decide.

use super::handle::Handle;
use super::timing::Timing;
use crate::core::election::{QuorumState, Snapshot};
use crate::core::event::{Event, Unreachable, WatchEnd};
use crate::core::ready::Change;
use crate::http::limits::MAX_WATCHERS;
use crate::http::peer::PeerClient;
use crate::http::peer::{PeerError, Reply};
use crate::http::routes::Route;
use crate::sync::lock;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Longest a coordinator holds a watch before answering "still leading".
const MAX_HOLD: Duration = Duration::from_secs(5);

/// A follower that gets "still leading" back faster than this waits the rest, so a peer that
/// answers at once cannot make it spin.
const MIN_ROUND_TRIP: Duration = Duration::from_millis(20);

/// How long a follower asks the coordinator to hold each watch: at most the health interval,
/// so a stalled coordinator (no answer within hold + timeout) is noticed no later than the
/// health check would notice it.
pub fn hold(health_interval: Duration) -> Duration {
    health_interval.clamp(Duration::from_millis(50), MAX_HOLD)
}

/// Wakes held watches when the node's leadership changes or it shuts down, and counts them.
#[derive(Default)]
pub struct Leadership {
    state: Mutex<Signal>,
    changed: Condvar,
    watchers: AtomicUsize,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Signal {
    epoch: u64,
    closing: bool,
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

    /// Watches held now.
    pub fn watchers(&self) -> usize {
        self.watchers.load(Ordering::Acquire)
    }

    fn current(&self) -> Signal {
        *lock(&self.state)
    }

    /// Waits until the signal differs from `start` or `hold` passes; returns the signal.
    fn wait_from(&self, start: Signal, hold: Duration) -> Signal {
        let guard = lock(&self.state);
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, hold, |s| *s == start)
            .unwrap_or_else(|e| e.into_inner());
        *guard
    }

    /// Counts a held watch for the cap; `None` when the cap is reached.
    fn enter(&self) -> Option<Slot<'_>> {
        if self.watchers.fetch_add(1, Ordering::AcqRel) >= MAX_WATCHERS {
            self.watchers.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(self))
    }
}

/// Releases its place under [`MAX_WATCHERS`] when dropped.
struct Slot<'a>(&'a Leadership);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `GET /watch` on the coordinator: held until leadership changes, the node shuts down, or
/// the hold ends. Returns the status and body to answer with.
pub fn serve(
    leadership: &Leadership,
    snapshot: impl Fn() -> Snapshot,
    hold: Option<Duration>,
) -> (u16, Value) {
    let Some(_slot) = leadership.enter() else {
        return (
            503,
            json!({"error": "too many watches; use the health check"}),
        );
    };
    // Read the signal before the state, so a change in between ends the wait at once.
    let start = leadership.current();
    let before = snapshot();
    if !asks_to_be_followed(&before) {
        return (
            409,
            json!({
                "error": "this node is not the coordinator",
                "coordinator": before.coordinator.map(|c| c.name),
            }),
        );
    }
    let signal = leadership.wait_from(start, hold.unwrap_or(MAX_HOLD).min(MAX_HOLD));
    if signal.closing {
        (
            410,
            json!({"error": "this node is shutting down", "reason": "shutdown"}),
        )
    } else if asks_to_be_followed(&snapshot()) {
        (200, json!({"status": "leading", "term": before.term}))
    } else {
        (
            410,
            json!({"error": "this node stopped leading", "reason": "demoted"}),
        )
    }
}

/// A node is watched while it leads, and in quorum mode while it claims a term: its
/// followers have acknowledged it and wait for the majority with it.
fn asks_to_be_followed(s: &Snapshot) -> bool {
    s.is_coordinator
        || s.quorum
            .as_ref()
            .is_some_and(|q| matches!(q.state, QuorumState::Claiming | QuorumState::NoQuorum))
}

/// The follower side: runs forever on its own thread, watching whichever node is coordinator
/// and telling the core how each watch ended.
pub fn follow(node: Arc<dyn Handle>, timing: Timing) {
    let hold = hold(timing.health_interval);
    let client = PeerClient::with_response_timeout(timing.timeout, hold + timing.timeout);
    let changes = node.subscribe();
    let path = format!("{}?hold_ms={}", Route::Watch.path(), hold.as_millis());
    loop {
        let now = node.snapshot();
        let coordinator = match now.coordinator {
            Some(c) if !now.is_coordinator => c,
            _ => {
                // Nothing to watch: wait for the next change of coordinator.
                let _ = changes.recv_timeout(Duration::from_secs(1));
                continue;
            }
        };
        let Some(member) = node.locate(&coordinator) else {
            let _ = changes.recv_timeout(timing.timeout);
            continue;
        };
        let started = Instant::now();
        let end = watch_end(client.get::<Value>(&member.address(), &path));
        if let Err(e) = &end.1 {
            log::debug!("watch on {} failed: {e}", coordinator.name);
        }
        let end = end.0;
        node.step(Event::WatchEnded {
            coordinator: coordinator.clone(),
            end: end.clone(),
        });
        // Pace the next watch: at once after "still leading" (but never faster than a round
        // trip), else after the next change or a pause.
        match end {
            WatchEnd::Leading => {
                let left = MIN_ROUND_TRIP.saturating_sub(started.elapsed());
                std::thread::sleep(left);
            }
            WatchEnd::Demoted | WatchEnd::NotCoordinator => {
                wait_for_change(&changes, timing.timeout);
            }
            WatchEnd::Busy | WatchEnd::Other { .. } => {
                wait_for_change(&changes, timing.health_interval);
            }
            WatchEnd::ShuttingDown | WatchEnd::TimedOut | WatchEnd::Closed => {}
        }
        // Drop notifications that arrived meanwhile; the loop reads the state afresh.
        while changes.try_recv().is_ok() {}
    }
}

fn wait_for_change(changes: &Receiver<Change>, within: Duration) {
    let _ = changes.recv_timeout(within);
}

/// How a watch ended, and the client's error for the log.
fn watch_end(answer: Reply<Value>) -> (WatchEnd, Result<(), PeerError>) {
    let end = match &answer {
        Ok((200, _)) => WatchEnd::Leading,
        Ok((410, Some(body))) if body["reason"] == "shutdown" => WatchEnd::ShuttingDown,
        Ok((410, _)) => WatchEnd::Demoted,
        Ok((409, _)) => WatchEnd::NotCoordinator,
        Ok((503, _)) => WatchEnd::Busy,
        Ok((status, _)) => WatchEnd::Other { status: *status },
        Err(e) if e.kind == Unreachable::Timeout => WatchEnd::TimedOut,
        Err(_) => WatchEnd::Closed,
    };
    (end, answer.map(|_| ()))
}

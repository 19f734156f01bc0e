//! Instant failover: each follower keeps one held request (`GET /watch`) open on the
//! coordinator. When the coordinator's process dies, its kernel closes the socket at once and
//! the follower elects within milliseconds instead of at the next health check. The periodic
//! health check stays as the safety net for frozen processes, dead hosts and partitions.
//!
//! A long poll rather than a stream: tiny_http buffers chunked bodies in 8 KiB chunks, so a
//! heartbeat stream would not flush; a held request answered every few seconds costs the
//! coordinator one thread and one socket per follower, and its answer is the heartbeat.

use crate::election::NodeRef;
use crate::node::{lock, Node};
use crate::peer::PeerClient;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Most watches a coordinator holds at once (one thread and one socket each). Bully clusters
/// are small; followers beyond the cap fall back to the periodic health check.
pub const MAX_WATCHERS: usize = 128;

/// Longest a coordinator holds a watch before answering "still leading".
const MAX_HOLD: Duration = Duration::from_secs(5);

/// How long a follower asks the coordinator to hold each watch: at most the health interval,
/// so a stalled coordinator (no answer within hold + timeout) is noticed no later than the
/// health check would notice it.
pub fn hold(health_interval: Duration) -> Duration {
    health_interval.clamp(Duration::from_millis(50), MAX_HOLD)
}

/// Wakes held watches when the node's leadership changes or it shuts down.
#[derive(Default)]
pub struct Leadership {
    state: Mutex<Signal>,
    changed: Condvar,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
struct Signal {
    epoch: u64,
    closing: bool,
}

/// Why a held watch ended.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    StillLeading,
    Demoted,
    ShuttingDown,
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
}

/// `GET /watch?hold_ms=N` on the coordinator: held until leadership changes, the node shuts
/// down, or the hold ends. Returns the status and body to answer with.
pub fn serve(node: &Node, query: &str) -> (u16, Value) {
    // Read the signal before the state, so a change in between ends the wait at once.
    let start = node.leadership.current();
    let snapshot = node.snapshot();
    if !snapshot.is_coordinator {
        return (
            409,
            json!({
                "error": "this node is not the coordinator",
                "coordinator": snapshot.coordinator.map(|c| c.name),
            }),
        );
    }
    let requested = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("hold_ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
        .unwrap_or(MAX_HOLD);
    let signal = node.leadership.wait_from(start, requested.min(MAX_HOLD));
    let ending = if signal.closing {
        Ending::ShuttingDown
    } else if node.snapshot().is_coordinator {
        Ending::StillLeading
    } else {
        Ending::Demoted
    };
    match ending {
        Ending::StillLeading => (200, json!({"status": "leading", "term": snapshot.term})),
        Ending::Demoted => (
            410,
            json!({"error": "this node stopped leading", "reason": "demoted"}),
        ),
        Ending::ShuttingDown => (
            410,
            json!({"error": "this node is shutting down", "reason": "shutdown"}),
        ),
    }
}

/// The follower side: runs forever on its own thread, watching whichever node is coordinator.
pub fn follow(node: Arc<Node>) {
    let hold = hold(node.timing.health_interval);
    let timeout = node.timing.timeout;
    let client = PeerClient::with_response_timeout(timeout, hold + timeout);
    let changes = node.subscribe();
    let me = node.me.node_ref();
    let path = format!("/watch?hold_ms={}", hold.as_millis());
    loop {
        let coordinator = match node.snapshot().coordinator {
            Some(c) if c != me => c,
            _ => {
                // Nothing to watch: wait for the next change of coordinator.
                let _ = changes.recv_timeout(Duration::from_secs(1));
                continue;
            }
        };
        let Some(member) = node.find_member(&coordinator) else {
            let _ = changes.recv_timeout(timeout);
            continue;
        };
        let started = Instant::now();
        match client.get::<Value>(&member.address(), &path) {
            Ok((200, _)) => {
                // Still leading. Guard against a peer that answers at once.
                if started.elapsed() < Duration::from_millis(20) {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            Ok((410, Some(body))) if body["reason"] == "shutdown" => {
                lost(&node, &coordinator, "shut down");
            }
            Ok((409 | 410, _)) => {
                // It stopped leading (or never did): the announcement of the new coordinator
                // is normally on its way; elect only if it does not come.
                if !wait_for_change(&changes, &node, &coordinator, timeout) {
                    lost(&node, &coordinator, "stopped leading");
                }
            }
            Ok((503, _)) => {
                // The coordinator holds its maximum of watches: rely on the health check.
                let _ = changes.recv_timeout(node.timing.health_interval);
            }
            Ok((status, _)) => {
                log::debug!("watch on {}: unexpected status {status}", coordinator.name);
                let _ = changes.recv_timeout(node.timing.health_interval);
            }
            Err(e) => {
                log::debug!("watch on {} failed: {e}", coordinator.name);
                let how = if e.contains("imeout") || e.contains("timed out") {
                    "did not answer its watch in time"
                } else {
                    "closed its connection"
                };
                lost(&node, &coordinator, how);
            }
        }
        // Drop notifications that arrived meanwhile; the loop reads the state afresh.
        while changes.try_recv().is_ok() {}
    }
}

/// Waits up to `within` for the coordinator to change from `from`; true if it did.
fn wait_for_change(
    changes: &std::sync::mpsc::Receiver<crate::node::Change>,
    node: &Node,
    from: &NodeRef,
    within: Duration,
) -> bool {
    let end = Instant::now() + within;
    loop {
        if node.snapshot().coordinator.as_ref() != Some(from) {
            return true;
        }
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        if let Err(RecvTimeoutError::Disconnected) = changes.recv_timeout(left) {
            return false;
        }
    }
}

/// The watched coordinator is gone: elect now (the core ignores it if the coordinator has
/// changed meanwhile).
fn lost(node: &Arc<Node>, coordinator: &NodeRef, how: &str) {
    if node.snapshot().coordinator.as_ref() != Some(coordinator) {
        return;
    }
    log::warn!("Coordinator {} {how} (watch)", coordinator.name);
    node.metrics.failover_detected("watch");
    node.step(|e| e.coordinator_failed(coordinator));
}

/// Counts a held watch for the cap; `None` when the cap is reached.
pub fn enter(node: &Node) -> Option<WatchSlot<'_>> {
    if node.watchers.fetch_add(1, Ordering::AcqRel) >= MAX_WATCHERS {
        node.watchers.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    Some(WatchSlot(node))
}

/// Releases its place under [`MAX_WATCHERS`] when dropped.
pub struct WatchSlot<'a>(&'a Node);

impl Drop for WatchSlot<'_> {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::AcqRel);
    }
}

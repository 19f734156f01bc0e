//! Instant failover: each follower holds a beat stream (`GET /watch` upgraded to
//! `bully-beat`) on the coordinator, which the coordinator's beat hub writes to every
//! `--heartbeat`. When the coordinator's process dies its kernel closes the socket at once,
//! and the follower elects within milliseconds; when it freezes, its host dies or the link is
//! cut, no socket closes, but the beats stop, and after three missed beats (750 ms by default)
//! the follower elects. While beats arrive they are the health check (the core sends none);
//! the periodic check returns whenever no stream is held (refused as busy, or ended).
//!
//! A plain `GET /watch?hold_ms=N` is still served as a long poll (held until leadership
//! changes or the hold ends) for clients that cannot switch protocols.
//!
//! Both sides live here: [`serve`] holds a long poll on the coordinator, [`follow`] keeps a
//! stream open on the follower. What a watch's end means is the core's to decide.

pub mod beats;
pub mod leadership;

use self::leadership::Leadership;
use crate::core::election::Snapshot;
use crate::core::event::{Event, WatchEnd};
use crate::http::stream::{Stream, StreamEnd};
use crate::runtime::node::handle::{Handle, Notice};
use crate::runtime::node::timing::Timing;
use serde_json::{json, Value};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::Duration;

/// Longest a coordinator holds a watch before answering "still leading".
const MAX_HOLD: Duration = Duration::from_secs(5);

/// How often a node with nothing to watch looks again without being told of a change.
const IDLE_RECHECK: Duration = Duration::from_secs(30);

/// The first pause after a watch the coordinator was too busy to take.
const FIRST_BUSY_PAUSE: Duration = Duration::from_millis(100);

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
    if let Some(refused) = refusal(&before) {
        return refused;
    }
    let signal = leadership.wait_from(start, hold.unwrap_or(MAX_HOLD).min(MAX_HOLD));
    let after = snapshot();
    if signal.closing {
        shutting_down()
    } else if let Some((_, body)) = refusal(&after) {
        // Watched when it came in, not now: the watch ends because leadership changed.
        match after.leaving {
            true => (410, body),
            false => (
                410,
                json!({"error": "this node stopped leading", "reason": "demoted"}),
            ),
        }
    } else {
        (200, json!({"status": "leading", "term": before.term}))
    }
}

/// Why a node refuses to be watched, as status and body, or `None` when it asks to be
/// followed. One place for both kinds of watch (the long poll and the beat stream): 410 when
/// it is leaving, 409 naming the coordinator otherwise.
pub fn refusal(s: &Snapshot) -> Option<(u16, Value)> {
    if s.asks_to_be_followed() {
        None
    } else if s.leaving {
        Some(shutting_down())
    } else {
        Some((
            409,
            json!({
                "error": "this node is not the coordinator",
                "coordinator": s.coordinator.as_ref().map(|c| c.name.clone()),
            }),
        ))
    }
}

/// The answer of a node that is leaving and has let go of its work.
fn shutting_down() -> (u16, Value) {
    (
        410,
        json!({"error": "this node is shutting down", "reason": "shutdown"}),
    )
}

/// The follower side: runs forever on its own thread, holding a beat stream on whichever
/// node is coordinator and telling the core how each stream ended.
pub fn follow(node: Arc<dyn Handle>, timing: Timing) {
    let changes = node.subscribe();
    // Watches refused in a row as busy.
    let mut busy: u32 = 0;
    loop {
        let now = node.snapshot();
        let coordinator = match now.coordinator {
            Some(c) if !now.is_coordinator => c,
            _ => {
                // Nothing to watch: wait for the next change of coordinator, which every
                // change publishes (the timeout is only a safety net; a lone node or a
                // coordinator would otherwise wake every second for nothing).
                match changes.recv_timeout(IDLE_RECHECK) {
                    Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return,
                    _ => continue,
                }
            }
        };
        let Some(member) = node.locate(&coordinator) else {
            let _ = changes.recv_timeout(timing.timeout);
            continue;
        };
        let end = match Stream::open(&member.address(), timing.heartbeat, timing.timeout) {
            Ok(stream) => {
                // Each beat is a chance to notice that this node follows someone else now.
                // The first tells the core that beats stand in for its health checks, when
                // the stream is the coordinator's own (the node at an address can change).
                let mut switched = false;
                let mut heard = stream.node() != Some((&coordinator.name, coordinator.id));
                let end = stream.follow(timing.silence(), |_| {
                    switched = node.snapshot().coordinator.as_ref() != Some(&coordinator);
                    if !switched && !heard {
                        heard = true;
                        node.step(Event::BeatsHeard {
                            coordinator: coordinator.clone(),
                        });
                    }
                    !switched
                });
                if switched {
                    continue;
                }
                end
            }
            Err(end) => end,
        };
        if let StreamEnd::Lost(e) = &end {
            log::debug!("watch on {} ended: {e}", coordinator.name);
        }
        let end = watch_end(end);
        node.step(Event::WatchEnded {
            coordinator: coordinator.clone(),
            end: end.clone(),
        });
        // Pace the next watch: at once when the coordinator went (the core elects), else
        // after the next change or a pause.
        match end {
            WatchEnd::Demoted | WatchEnd::NotCoordinator | WatchEnd::Leading => {
                wait_for_change(&changes, timing.timeout);
            }
            // A busy coordinator (its handlers full while every follower opens its watch at
            // once) is asked again soon, then less and less often: a follower without a
            // watch would notice its coordinator's crash only at the next health check.
            WatchEnd::Busy | WatchEnd::Other { .. } => {
                busy = busy.saturating_add(1);
                wait_for_change(&changes, busy_pause(busy, timing.health_interval));
            }
            WatchEnd::ShuttingDown | WatchEnd::TimedOut | WatchEnd::Closed => {}
        }
        if !matches!(end, WatchEnd::Busy | WatchEnd::Other { .. }) {
            busy = 0;
        }
        // Drop notifications that arrived meanwhile; the loop reads the state afresh.
        while changes.try_recv().is_ok() {}
    }
}

/// 100 ms after the first busy answer, doubling up to the health interval.
fn busy_pause(busy: u32, health_interval: Duration) -> Duration {
    let pause = FIRST_BUSY_PAUSE.saturating_mul(1 << busy.saturating_sub(1).min(16));
    pause.min(health_interval)
}

fn wait_for_change(changes: &Receiver<Notice>, within: Duration) {
    let _ = changes.recv_timeout(within);
}

/// What the end of a stream says, in the core's words.
fn watch_end(end: StreamEnd) -> WatchEnd {
    match end {
        StreamEnd::Demoted => WatchEnd::Demoted,
        StreamEnd::ShuttingDown => WatchEnd::ShuttingDown,
        StreamEnd::Silent => WatchEnd::TimedOut,
        StreamEnd::Lost(_) => WatchEnd::Closed,
        StreamEnd::Refused {
            status: 410,
            reason,
        } if reason.as_deref() == Some("shutdown") => WatchEnd::ShuttingDown,
        StreamEnd::Refused { status: 410, .. } => WatchEnd::Demoted,
        StreamEnd::Refused { status: 409, .. } => WatchEnd::NotCoordinator,
        StreamEnd::Refused { status: 503, .. } => WatchEnd::Busy,
        StreamEnd::Refused { status, .. } => WatchEnd::Other { status },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_pauses_double_up_to_the_health_interval() {
        let health = Duration::from_secs(20);
        let ms = |n| busy_pause(n, health).as_millis();
        assert_eq!([ms(1), ms(2), ms(3), ms(8)], [100, 200, 400, 12_800]);
        assert_eq!(ms(9), 20_000);
        assert_eq!(ms(u32::MAX), 20_000);
    }
}

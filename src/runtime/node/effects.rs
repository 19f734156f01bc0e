//! Carries out the core's effects: each one that waits on the network gets its own thread, so
//! no request handler or schedule is held up by it, and its outcome goes back into the core as
//! an event. HTTP answers are translated into the core's answer types here, without judging
//! them.

use super::fence::Fence;
use super::handle::Handle;
use super::timers::Timers;
use crate::core::busy;
use crate::core::event::{AnnounceAnswer, CheckAnswer, Claim, ElectionAnswer, Event, ProbeAnswer};
use crate::core::member::{Member, NodeRef};
use crate::core::ready::Effect;
use crate::core::wire::{
    AnnounceAnswer as AnnounceBody, Announcement, ElectionMessage, NodeDetails, ProxyAnswer,
    Refusal,
};
use crate::http::peer::{PeerClient, Reply};
use crate::http::routes::Route;
use crate::runtime::membership::directory::Directory;
use crate::runtime::metrics::Metrics;
use crate::sync::spawn_named;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Everything effects need: who we are, the peer client, the directory, the metrics and the
/// timers.
pub struct Executor {
    me: NodeRef,
    client: PeerClient,
    directory: Arc<Directory>,
    metrics: Arc<Metrics>,
    timers: Timers,
    fence: Arc<Fence>,
    /// Effects under way, so shutdown can let the last releases go out.
    in_flight: Arc<AtomicUsize>,
}

impl Executor {
    pub fn new(
        me: NodeRef,
        client: PeerClient,
        directory: Arc<Directory>,
        metrics: Arc<Metrics>,
        timers: Timers,
        fence: Arc<Fence>,
    ) -> Self {
        Executor {
            me,
            client,
            directory,
            metrics,
            timers,
            fence,
            in_flight: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Waits until no effect is under way, at most `within`.
    pub fn flush(&self, within: Duration) {
        let end = std::time::Instant::now() + within;
        while self.in_flight.load(Ordering::Acquire) > 0 && std::time::Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Carries out `effects`, feeding each outcome back into `node`.
    pub fn execute(self: &Arc<Self>, effects: Vec<Effect>, node: &Arc<dyn Handle>) {
        for effect in effects {
            match effect {
                Effect::StartTimer { timer, after } => {
                    self.timers.start_timer(timer, after);
                    continue;
                }
                Effect::Fence { until } => {
                    self.fence.extend(until);
                    continue;
                }
                _ => {}
            }
            let executor = Arc::clone(self);
            let node = Arc::clone(node);
            self.in_flight.fetch_add(1, Ordering::AcqRel);
            let spawned = spawn_named("election", move || {
                if let Some(event) = executor.run(effect, &node) {
                    node.step(event);
                }
                executor.in_flight.fetch_sub(1, Ordering::AcqRel);
            });
            if let Err(e) = spawned {
                self.in_flight.fetch_sub(1, Ordering::AcqRel);
                log::error!("cannot start a thread for the election: {e}");
            }
        }
    }

    /// Runs one effect to its end; returns the event that reports its outcome (or steps
    /// `node` with its parts as they come).
    fn run(&self, effect: Effect, node: &Arc<dyn Handle>) -> Option<Event> {
        Some(match effect {
            Effect::CollectMembers { purpose } => Event::Members {
                purpose,
                members: self.directory.members(),
            },
            Effect::AskTerms { members } => Event::TermsAnswered {
                answers: self.ask_all(&members),
            },
            Effect::SendElection { round, to, term } => {
                let msg = ElectionMessage::from_node(&self.me, term);
                self.metrics.sent("proxy", to.len());
                let answers = PeerClient::fan_out(&to, |m| {
                    let answer = self.post::<_, ProxyAnswer>(m, Route::Proxy, &msg, "proxy");
                    election_answer(m, answer)
                });
                Event::ElectionAnswered {
                    round,
                    answers: to.into_iter().zip(answers).collect(),
                }
            }
            Effect::Announce { to, term, seq } => {
                // Each answer goes back on its own: a frozen or cut-off member must not hold
                // up the acknowledgements of the others (quorum mode counts them as they come).
                let msg = Announcement::from_node(&self.me, term);
                self.metrics.sent("announce", to.len());
                std::thread::scope(|s| {
                    for m in &to {
                        let msg = &msg;
                        s.spawn(move || {
                            let answer = self.post::<_, Value>(m, Route::Announce, msg, "announce");
                            let answers = vec![(m.clone(), announce_answer(m, answer))];
                            node.step(Event::AnnounceAnswered { term, seq, answers });
                        });
                    }
                });
                return None;
            }
            Effect::AnnounceTo { nodes, term, seq } => {
                let to: Vec<Member> = nodes
                    .iter()
                    .filter_map(|n| self.directory.locate(n))
                    .collect();
                return self.run(Effect::Announce { to, term, seq }, node);
            }
            Effect::Release { to, term } => {
                let msg = Announcement::from_node(&self.me, term);
                self.metrics.sent("release", to.len());
                PeerClient::fan_out(&to, |m| {
                    let answer = self.post::<_, Value>(m, Route::Release, &msg, "release");
                    logged(m, "/release", &answer);
                });
                return None;
            }
            Effect::ConfirmGone { coordinator } => {
                let answer = match self.directory.locate(&coordinator) {
                    Some(m) => check_answer(self.get::<NodeDetails>(&m, Route::NodeDetails)),
                    None => CheckAnswer::NotLocated,
                };
                Event::GoneChecked {
                    coordinator,
                    answer,
                }
            }
            Effect::TakeOver { to, term } => {
                let msg = Announcement::from_node(&self.me, term);
                if let Some(m) = self.directory.locate(&to) {
                    let answer = self.post::<_, Value>(&m, Route::TakeOver, &msg, "release");
                    logged(&m, "/takeover", &answer);
                }
                return None;
            }
            // The node hands these to their own threads, in order.
            Effect::Fence { .. }
            | Effect::StopLeading { .. }
            | Effect::LeadingAgain { .. }
            | Effect::AcquireLock { .. }
            | Effect::ReleaseLock => return None,
            Effect::CheckCoordinator { coordinator } => {
                self.metrics.sent("health", 1);
                let answer = match self.directory.locate(&coordinator) {
                    Some(m) => check_answer(self.get::<NodeDetails>(&m, Route::NodeDetails)),
                    None => CheckAnswer::NotLocated,
                };
                Event::CoordinatorChecked {
                    coordinator,
                    answer,
                }
            }
            Effect::Probe { purpose, nodes } => {
                let answers = PeerClient::fan_out(&nodes, |n| match self.directory.locate(n) {
                    Some(m) => match self.get::<NodeDetails>(&m, Route::NodeDetails) {
                        Ok((200, Some(d))) => ProbeAnswer::from_details(n, &d),
                        Ok((status, _)) => ProbeAnswer::Status(status),
                        Err(e) => ProbeAnswer::Unreachable(e.kind),
                    },
                    None => ProbeAnswer::NotLocated,
                });
                Event::Probed {
                    purpose,
                    answers: nodes.into_iter().zip(answers).collect(),
                }
            }
            Effect::StartTimer { .. } => return None,
        })
    }

    /// `GET /nodeDetails` on each member, in parallel.
    fn ask_all(&self, members: &[Member]) -> Vec<(Member, CheckAnswer)> {
        let answers = PeerClient::fan_out(members, |m| {
            check_answer(self.get::<NodeDetails>(m, Route::NodeDetails))
        });
        members.iter().cloned().zip(answers).collect()
    }

    fn get<T: DeserializeOwned>(&self, m: &Member, route: Route) -> Reply<T> {
        self.client.get(&m.address(), route.path())
    }

    /// POSTs an election message or announcement to `m`, asking again shortly while it
    /// answers 503 (each retry counts as a message sent).
    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        m: &Member,
        route: Route,
        body: &B,
        kind: &str,
    ) -> Reply<T> {
        let mut attempt = 1;
        loop {
            let answer = self.client.post(&m.address(), route.path(), body);
            let wait = match answer {
                Ok((503, _)) => busy::retry_after(attempt),
                _ => None,
            };
            let Some(wait) = wait else { return answer };
            self.metrics.sent(kind, 1);
            std::thread::sleep(wait);
            attempt += 1;
        }
    }
}

/// Keeps the debug line each failed call got before.
fn logged<T>(m: &Member, path: &str, answer: &Reply<T>) {
    match answer {
        Ok((200, _)) => {}
        Ok((status, _)) => log::debug!("{} answered {path} with {status}", m.name),
        Err(e) => log::debug!("{} did not answer {path}: {e}", m.name),
    }
}

fn election_answer(m: &Member, answer: Reply<ProxyAnswer>) -> ElectionAnswer {
    logged(m, "/proxy", &answer);
    match answer {
        Ok((200, Some(a))) if a.response == "OK" => ElectionAnswer::Ok {
            claim: match (a.coordinator, a.node_id, a.term) {
                (Some(name), Some(id), Some(term)) => Some(Claim { name, id, term }),
                _ => None,
            },
        },
        Ok((503, _)) => ElectionAnswer::Busy,
        Ok((status, _)) => ElectionAnswer::Refused { status },
        Err(e) => ElectionAnswer::Unreachable(e.kind),
    }
}

fn announce_answer(m: &Member, answer: Reply<Value>) -> AnnounceAnswer {
    logged(m, "/announce", &answer);
    match answer {
        Ok((200, body)) => AnnounceAnswer::Accepted {
            promise_ms: parse(body).and_then(|b: AnnounceBody| b.promise_ms),
        },
        Ok((409, body)) => match parse(body) {
            Some(Refusal {
                reason: Some(reason),
                remaining_ms: Some(ms),
                ..
            }) if reason == "promised" => AnnounceAnswer::Promised { remaining_ms: ms },
            Some(Refusal { term, .. }) => AnnounceAnswer::Stale { term },
            None => AnnounceAnswer::Refused { status: 409 },
        },
        Ok((503, _)) => AnnounceAnswer::Busy,
        Ok((status, _)) => AnnounceAnswer::Refused { status },
        Err(e) => AnnounceAnswer::Unreachable(e.kind),
    }
}

/// A JSON answer body as `T`, if it is one.
fn parse<T: DeserializeOwned>(body: Option<Value>) -> Option<T> {
    body.and_then(|v| serde_json::from_value(v).ok())
}

fn check_answer(answer: Reply<NodeDetails>) -> CheckAnswer {
    match answer {
        Ok((200, Some(d))) => CheckAnswer::from_details(d),
        Ok((503, _)) => CheckAnswer::Busy,
        Ok((status, _)) => CheckAnswer::Other { status },
        Err(e) => CheckAnswer::Unreachable(e.kind),
    }
}

//! Carries out the core's effects: each one that waits on the network gets its own thread, so
//! no request handler or schedule is held up by it, and its outcome goes back into the core as
//! an event. HTTP answers are translated into the core's answer types here, without judging
//! them.

use super::directory::Directory;
use super::handle::Handle;
use super::metrics::Metrics;
use super::timers::Timers;
use crate::core::event::{AnnounceAnswer, CheckAnswer, Claim, ElectionAnswer, Event, ProbeAnswer};
use crate::core::member::{Member, NodeRef};
use crate::core::ready::Effect;
use crate::core::wire::{Announcement, ElectionMessage, NodeDetails, ProxyAnswer, Refusal};
use crate::http::peer::{PeerClient, Reply};
use crate::http::routes::Route;
use crate::sync::spawn_named;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Tries of a message to a member that answers 503, the waits between them growing by
/// [`BUSY_BACKOFF`]: 50 + 100 + 150 + 200 ms at most. In a large cluster the election
/// messages of every lower node reach one node at once; a message it never saw could leave a
/// node waiting out four timeouts for an announcement.
const BUSY_TRIES: u32 = 5;
const BUSY_BACKOFF: Duration = Duration::from_millis(50);

/// Everything effects need: who we are, the peer client, the directory, the metrics and the
/// timers.
pub struct Executor {
    me: NodeRef,
    client: PeerClient,
    directory: Arc<Directory>,
    metrics: Arc<Metrics>,
    timers: Timers,
}

impl Executor {
    pub fn new(
        me: NodeRef,
        client: PeerClient,
        directory: Arc<Directory>,
        metrics: Arc<Metrics>,
        timers: Timers,
    ) -> Self {
        Executor {
            me,
            client,
            directory,
            metrics,
            timers,
        }
    }

    /// Carries out `effects`, feeding each outcome back into `node`.
    pub fn execute(self: &Arc<Self>, effects: Vec<Effect>, node: &Arc<dyn Handle>) {
        for effect in effects {
            if let Effect::StartTimer { timer, after } = effect {
                self.timers.start_timer(timer, after);
                continue;
            }
            let executor = Arc::clone(self);
            let node = Arc::clone(node);
            let spawned = spawn_named("election", move || {
                if let Some(event) = executor.run(effect) {
                    node.step(event);
                }
            });
            if let Err(e) = spawned {
                log::error!("cannot start a thread for the election: {e}");
            }
        }
    }

    /// Runs one effect to its end; returns the event that reports its outcome.
    fn run(&self, effect: Effect) -> Option<Event> {
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
            Effect::Announce { to, term } => {
                let msg = Announcement::from_node(&self.me, term);
                self.metrics.sent("announce", to.len());
                let answers = PeerClient::fan_out(&to, |m| {
                    let answer = self.post::<_, Refusal>(m, Route::Announce, &msg, "announce");
                    announce_answer(m, answer)
                });
                Event::AnnounceAnswered {
                    term,
                    answers: to.into_iter().zip(answers).collect(),
                }
            }
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
                    Some(m) => match self.get::<Value>(&m, Route::Health) {
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
            if !matches!(answer, Ok((503, _))) || attempt == BUSY_TRIES {
                return answer;
            }
            self.metrics.sent(kind, 1);
            std::thread::sleep(BUSY_BACKOFF * attempt);
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

fn announce_answer(m: &Member, answer: Reply<Refusal>) -> AnnounceAnswer {
    logged(m, "/announce", &answer);
    match answer {
        Ok((200, _)) => AnnounceAnswer::Accepted,
        Ok((409, Some(r))) => AnnounceAnswer::Stale { term: r.term },
        Ok((503, _)) => AnnounceAnswer::Busy,
        Ok((status, _)) => AnnounceAnswer::Refused { status },
        Err(e) => AnnounceAnswer::Unreachable(e.kind),
    }
}

fn check_answer(answer: Reply<NodeDetails>) -> CheckAnswer {
    match answer {
        Ok((200, Some(d))) => CheckAnswer::Details {
            name: d.node_name,
            id: d.node_id,
            is_coordinator: d.is_coordinator,
            term: d.term,
        },
        Ok((503, _)) => CheckAnswer::Busy,
        Ok((status, _)) => CheckAnswer::Other { status },
        Err(e) => CheckAnswer::Unreachable(e.kind),
    }
}

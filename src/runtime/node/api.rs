//! The node's HTTP API: each checked request becomes an event for the core (or a read of its
//! state), and the core's reply becomes the JSON the original design answered with.

use super::handle::Handle;
use crate::core::event::Event;
use crate::core::member::Member;
use crate::core::ready::{AnnounceReply, ControlReply, ProxyReply, Reply};
use crate::core::wire::{AnnounceAnswer, NodeDetails, ProxyAnswer, QuorumDetails, Refusal};
use crate::http::auth::Verifier;
use crate::http::limits::MAX_WATCHERS;
use crate::http::routes::Route;
use crate::http::server::{Answer, Call, Service, UpgradedIo};
use crate::runtime::membership::directory::Directory;
use crate::runtime::metrics::{Gauges, Metrics, QuorumGauges};
use crate::runtime::watch;
use crate::runtime::watch::beats::Beats;
use crate::runtime::watch::leadership::Leadership;
use crate::runtime::work::vips::Vips;
use serde_json::json;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

pub struct Api {
    pub me: Member,
    pub witness: bool,
    pub cluster: String,
    pub node: Arc<dyn Handle>,
    pub directory: Arc<Directory>,
    pub metrics: Arc<Metrics>,
    pub leadership: Arc<Leadership>,
    pub beats: Arc<Beats>,
    pub verifier: Option<Verifier>,
    pub vips: Arc<Vips>,
}

impl Api {
    fn details(&self) -> NodeDetails {
        let s = self.node.snapshot();
        NodeDetails {
            node_name: self.me.name.clone(),
            node_id: self.me.id,
            port: self.me.port,
            cluster: self.cluster.clone(),
            coordinator: s.coordinator.as_ref().map(|c| c.name.clone()),
            coordinator_id: s.coordinator.as_ref().map(|c| c.id),
            is_coordinator: s.is_coordinator,
            election: s.election,
            term: s.term,
            host: self.me.host.clone(),
            witness: self.witness,
            preempts: s.preempts,
            healthy: s.healthy,
            maintenance: s.maintenance,
            abstains: s.abstention.map(|a| a.word().to_string()),
            sit_out_ms_left: s.abstention.and_then(|a| a.ms_left()),
            quorum: s.quorum.map(|q| QuorumDetails {
                state: q.state.label().to_string(),
                size: q.size,
                needed: q.needed,
                acks: q.acks,
                lease_ms_left: q.lease_ms_left,
                promised_to: q.promised_to,
                promise_ms_left: q.promise_ms_left,
            }),
            vips: self.vips.details(),
        }
    }

    fn gauges(&self) -> Gauges {
        let s = self.node.snapshot();
        Gauges {
            is_coordinator: s.is_coordinator,
            coordinator_id: s.coordinator.as_ref().map(|c| c.id),
            coordinator: s.coordinator.map(|c| (c.name, c.id)),
            members: self.directory.count(),
            term: s.term,
            watchers: self.leadership.watchers(),
            maintenance: s.maintenance,
            abstention: s.abstention.map(|a| (a.word(), a.ms_left())),
            vips: self
                .vips
                .details()
                .into_iter()
                .map(|v| (v.address, v.dev, v.held))
                .collect(),
            quorum: s.quorum.map(|q| QuorumGauges {
                acks: q.acks,
                size: q.size,
                lease_ms_left: q.lease_ms_left,
            }),
        }
    }

    fn proxy_answer(&self, reply: Option<Reply>, from: &str) -> Answer {
        let ok = |term: Option<u64>| ProxyAnswer {
            response: "OK".into(),
            coordinator: term.map(|_| self.me.name.clone()),
            node_id: term.map(|_| self.me.id),
            term,
        };
        let body = match reply {
            Some(Reply::Proxy(ProxyReply::Coordinator { term })) => ok(Some(term)),
            Some(Reply::Proxy(ProxyReply::NotLower)) => {
                return Answer::error(
                    409,
                    format!(
                        "{from} does not rank below this node; send /proxy only to higher nodes"
                    ),
                )
            }
            _ => ok(None),
        };
        Answer::ok(serde_json::to_value(body).unwrap_or_else(|_| json!({"Response": "OK"})))
    }
}

impl Api {
    /// A peer's message or an operator's request: counted, stepped, and the core's reply put
    /// into the JSON the original design answered with.
    fn step(&self, event: Event) -> Answer {
        if let Some(kind) = received_as(&event) {
            self.metrics.received(kind);
        }
        match event {
            Event::Proxy { from, term } => {
                let name = from.to_string();
                let reply = self.node.step(Event::Proxy { from, term });
                self.proxy_answer(reply, &name)
            }
            Event::Announce { .. } => announce_answer(self.node.step(event)),
            Event::StepDown { to, .. } => {
                // The registry's listing goes with the request; whether to use it is the
                // core's to decide.
                let listing = Some(self.directory.members());
                control_answer(self.node.step(Event::StepDown { to, listing }))
            }
            Event::Maintenance { .. } => control_answer(self.node.step(event)),
            other => {
                self.node.step(other);
                Answer::ok(json!({"Response": "OK"}))
            }
        }
    }
}

/// The label a peer's message counts under in `bully_messages_received_total`.
fn received_as(event: &Event) -> Option<&'static str> {
    Some(match event {
        Event::Proxy { .. } => "proxy",
        Event::Response { .. } => "response",
        Event::Announce { .. } => "announce",
        // A hand-over is a release that names this node.
        Event::Release { .. } | Event::TakeOver { .. } => "release",
        _ => return None,
    })
}

impl Service for Api {
    fn answer(&self, call: Call) -> Answer {
        match call {
            Call::Health => Answer::ok(json!({"status": "ok"})),
            Call::NodeDetails => match serde_json::to_value(self.details()) {
                Ok(v) => Answer::ok(v),
                Err(e) => Answer::error(500, e.to_string()),
            },
            Call::Metrics => Answer::Metrics(self.metrics.render(&self.gauges())),
            Call::Watch { hold } => {
                let (status, body) = watch::serve(&self.leadership, || self.node.snapshot(), hold);
                Answer::Json { status, body }
            }
            Call::Step(event) => self.step(event),
        }
    }

    fn accept_stream(&self) -> Result<String, Answer> {
        if let Some((status, body)) = watch::refusal(&self.node.snapshot()) {
            return Err(Answer::Json { status, body });
        }
        if self.leadership.watchers() >= MAX_WATCHERS {
            return Err(Answer::error(503, "too many watches; use the health check"));
        }
        Ok(format!("{} {}", self.me.name, self.me.id))
    }

    fn take_stream(&self, io: Box<dyn UpgradedIo>, fd: RawFd, every: Duration) {
        self.beats.add(io, fd, every);
    }

    fn verifier(&self) -> Option<&Verifier> {
        self.verifier.as_ref()
    }

    fn answered(&self, route: Route, status: u16) {
        self.metrics.http_request(route.label(), status);
    }
}

/// The JSON for the core's answer to an announcement.
fn announce_answer(reply: Option<Reply>) -> Answer {
    let refusal = |r: Refusal| Answer::Json {
        status: 409,
        body: serde_json::to_value(r).unwrap_or_else(|_| json!({"error": "refused"})),
    };
    match reply {
        Some(Reply::Announce(AnnounceReply::Stale { term })) => refusal(Refusal {
            error: format!("stale announcement: this node follows term {term}"),
            term,
            reason: None,
            promised_to: None,
            remaining_ms: None,
        }),
        Some(Reply::Announce(AnnounceReply::Promised {
            to,
            remaining_ms,
            term,
        })) => refusal(Refusal {
            error: format!(
                "promised to {} for {remaining_ms} ms more",
                to.as_deref().unwrap_or("nobody (just restarted)")
            ),
            term,
            reason: Some("promised".into()),
            promised_to: to,
            remaining_ms: Some(remaining_ms),
        }),
        Some(Reply::Announce(AnnounceReply::Ok { promise_ms })) => {
            let body = AnnounceAnswer {
                response: "OK".into(),
                promise_ms,
            };
            Answer::ok(serde_json::to_value(body).unwrap_or_else(|_| json!({"Response": "OK"})))
        }
        _ => Answer::ok(json!({"Response": "OK"})),
    }
}

/// The JSON for an operator's request: 200 when done (or under way), 409 with the reason
/// when this node cannot do it.
fn control_answer(reply: Option<Reply>) -> Answer {
    match reply {
        Some(Reply::Control(ControlReply::Done { message })) => {
            Answer::ok(json!({"Response": "OK", "message": message}))
        }
        Some(Reply::Control(ControlReply::Refused { message })) => Answer::error(409, message),
        _ => Answer::error(500, "no answer from the election"),
    }
}

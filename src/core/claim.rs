//! Quorum mode, the coordinator's and the follower's side: claiming a term, counting the
//! acknowledgements that make a lease, renewing it, stepping down when it runs out, handing
//! over to a higher node once the hooks let go, and the promises followers give and release.
//! All of it is part of [`Election`]; this file keeps it apart from plain Bully.

use super::election::{Election, Phase};
use super::event::{AnnounceAnswer, CheckAnswer, Timer, Unreachable};
use super::member::{others, Member, NodeRef};
use super::quorum::{Acks, Millis, Promise};
use super::ready::{AnnounceReply, Detection, Effect, Note};

/// How soon a node claiming a term asks again the members that were still promised to
/// another coordinator: their promise is usually released (its coordinator died or handed
/// over) within milliseconds.
const CLAIM_RETRY_MS: Millis = 25;
/// Send times remembered per term, to date the answers that come back.
const SENT_KEPT: usize = 32;

/// The term this node claims, leads or hands over, with what holds it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lead {
    pub term: u64,
    acks: Acks,
    /// Until when a majority's promises hold (this node's clock); `None` before a majority
    /// acknowledged. Kept across a term bump until the new term has its own.
    lease_until: Option<Millis>,
    /// Stopped acting for a higher node; renewing until the hooks let go, then releasing.
    releasing: bool,
    /// When each announcement `seq` was handed to the shell.
    sent: Vec<(u64, Millis)>,
    retry_armed: bool,
    /// "No quorum" was logged for this term.
    warned: bool,
}

/// Where a node stands in quorum mode, as `/nodeDetails` and `bully status` show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumState {
    /// Following a coordinator, or waiting for one.
    Following,
    /// Announced a term; acknowledgements are coming in.
    Claiming,
    /// Claimed a term that a majority has not acknowledged: this side of the cluster is a
    /// minority, or too many nodes are down.
    NoQuorum,
    /// Holds a lease: leads.
    Leading,
    /// Handing over: stopped acting, releasing its followers once its hooks let go.
    Releasing,
}

impl QuorumState {
    pub fn label(self) -> &'static str {
        match self {
            QuorumState::Following => "following",
            QuorumState::Claiming => "claiming",
            QuorumState::NoQuorum => "no-quorum",
            QuorumState::Leading => "leading",
            QuorumState::Releasing => "releasing",
        }
    }
}

/// Quorum mode's part of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumView {
    pub size: usize,
    pub needed: usize,
    /// Members (this one included) whose acknowledgement of the term claimed or led holds.
    pub acks: usize,
    pub state: QuorumState,
    pub lease_ms_left: Option<u64>,
    /// Whom this node is promised to, and for how long more.
    pub promised_to: Option<String>,
    pub promise_ms_left: Option<u64>,
}

impl Election {
    /// Whether this node may act as coordinator at `now`: always in plain Bully; in quorum
    /// mode while a majority's promises hold, less the time its `--exec` child gets to stop.
    pub(super) fn acting(&self, now: Millis) -> bool {
        let Some(q) = &self.settings.quorum else {
            return true;
        };
        self.lead.as_ref().is_some_and(|l| {
            !l.releasing && l.lease_until.is_some_and(|u| now + q.stop_margin < u)
        })
    }

    pub(super) fn quorum_view(&self, now: Millis) -> Option<QuorumView> {
        let q = self.settings.quorum.as_ref()?;
        let state = match &self.lead {
            Some(l) if l.releasing => QuorumState::Releasing,
            Some(_) if self.acting(now) => QuorumState::Leading,
            Some(l) if l.warned => QuorumState::NoQuorum,
            Some(_) => QuorumState::Claiming,
            None => QuorumState::Following,
        };
        let live = |p: &&Promise| now < p.until;
        let promise = self.promise.as_ref().filter(live);
        Some(QuorumView {
            size: q.size,
            needed: q.majority(),
            acks: self.lead.as_ref().map_or(0, |l| l.acks.live(now) + 1),
            state,
            lease_ms_left: self
                .lead
                .as_ref()
                .and_then(|l| l.lease_until)
                .filter(|u| *u > now)
                .map(|u| u - now),
            promised_to: promise.map(|p| {
                p.to.as_ref()
                    .map_or_else(|| "(restart)".to_string(), |n| n.name.clone())
            }),
            promise_ms_left: promise.map(|p| p.until - now),
        })
    }

    /// Nobody above answered: claim a new term, unless this node is still promised to
    /// another coordinator (or has just started), in which case it waits that out first.
    pub(super) fn claim(&mut self) {
        let Some(q) = self.settings.quorum.clone() else {
            return;
        };
        let now = self.now;
        if let Some(p) = self.promise.clone().filter(|p| p.binds(&self.me, now)) {
            self.phase = Phase::AwaitingPromise;
            let ms = p.until - now;
            self.note(Note::WaitingForPromise {
                to: p.to.map(|n| n.name),
                ms,
            });
            self.timer(Timer::PromiseFree { round: self.round }, ms + 1);
            return;
        }
        self.phase = Phase::Claiming;
        self.verifying = false;
        self.max_term = self.max_term.saturating_add(1);
        self.term = self.max_term;
        self.term_leader = Some(self.me.clone());
        let me = self.me.clone();
        self.use_term(self.term, &me);
        // A term bump while leading keeps the lease it holds until the new term has its own.
        let held = self
            .lead
            .as_ref()
            .filter(|l| !l.releasing)
            .and_then(|l| l.lease_until);
        self.lead = Some(Lead {
            term: self.term,
            acks: Acks::default(),
            lease_until: held,
            releasing: false,
            sent: Vec::new(),
            retry_armed: false,
            warned: false,
        });
        self.note(Note::Claiming {
            term: self.term,
            needed: q.majority(),
            size: q.size,
        });
        self.announce_lead();
        self.timer(Timer::Renew { term: self.term }, q.renew_every());
        self.update_lease();
    }

    /// Announces the term claimed or held to every other member.
    fn announce_lead(&mut self) {
        let now = self.now;
        let to: Vec<Member> = others(&self.members, &self.me).cloned().collect();
        self.seq += 1;
        let seq = self.seq;
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        lead.sent.push((seq, now));
        if lead.sent.len() > SENT_KEPT {
            lead.sent.remove(0);
        }
        let term = lead.term;
        self.effect(Effect::Announce { to, term, seq });
    }

    /// Counts the acknowledgements in the answers to announcement `seq` of `term`.
    pub(super) fn count_acks(&mut self, term: u64, seq: u64, answers: &[(Member, AnnounceAnswer)]) {
        let now = self.now;
        let Some(lead) = self.lead.as_mut().filter(|l| l.term == term) else {
            return;
        };
        let Some(sent_at) = lead.sent.iter().find(|(s, _)| *s == seq).map(|(_, t)| *t) else {
            return;
        };
        let mut promised = false;
        for (m, a) in answers {
            match a {
                AnnounceAnswer::Accepted {
                    promise_ms: Some(granted),
                } => lead.acks.record(&m.node_ref(), sent_at, *granted),
                AnnounceAnswer::Promised { .. } => promised = true,
                _ => {}
            }
        }
        self.update_lease();
        if self.acting(now) || self.phase != Phase::Claiming {
            return;
        }
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        if promised {
            if !lead.retry_armed {
                lead.retry_armed = true;
                self.timer(Timer::ClaimRetry { term }, CLAIM_RETRY_MS);
            }
        } else if !lead.warned {
            lead.warned = true;
            let acks = lead.acks.live(now) + 1;
            if let Some(q) = &self.settings.quorum {
                let (needed, size) = (q.majority(), q.size);
                self.note(Note::NoQuorum {
                    term,
                    acks,
                    needed,
                    size,
                });
            }
        }
    }

    /// Extends the lease from the acknowledgements held, tells the shell how long the
    /// `--exec` child may run, and starts acting once a majority holds.
    fn update_lease(&mut self) {
        let Some(q) = self.settings.quorum.clone() else {
            return;
        };
        let now = self.now;
        let Some(lead) = self.lead.as_mut() else {
            return;
        };
        let term = lead.term;
        if let Some(until) = lead.acks.lease_until(now, q.needed_from_others(), q.lease) {
            if lead.lease_until.is_none_or(|held| until > held) {
                lead.lease_until = Some(until);
                self.effect(Effect::Fence { until });
                let check = until.saturating_sub(q.stop_margin).saturating_sub(now);
                self.timer(Timer::LeaseCheck { term }, check);
            }
        }
        if !self.acting(now) {
            return;
        }
        if self.phase == Phase::Claiming {
            self.end_round(true);
        }
        if self.coordinator.as_ref() != Some(&self.me) {
            let me = self.me.clone();
            self.set_coordinator(Some(me));
            self.note(Note::CoordinatorIs {
                name: self.me.name.clone(),
                term: self.term,
            });
        }
    }

    pub(super) fn on_renew(&mut self, term: u64) {
        let Some(q) = self.settings.quorum.clone() else {
            return;
        };
        if !self.lead.as_ref().is_some_and(|l| l.term == term) {
            return;
        }
        self.on_lease_check(term);
        if self.lead.as_ref().is_some_and(|l| l.term == term) {
            self.announce_lead();
            self.timer(Timer::Renew { term }, q.renew_every());
        }
    }

    pub(super) fn on_claim_retry(&mut self, term: u64) {
        let Some(lead) = self.lead.as_mut().filter(|l| l.term == term) else {
            return;
        };
        lead.retry_armed = false;
        if self.phase == Phase::Claiming && !self.acting(self.now) {
            self.announce_lead();
        }
    }

    /// The lease is running out without a majority's renewal: stop acting (the shell's
    /// supervisor kills the `--exec` child when the lease ends, whatever happens to this
    /// process), then stand again with a new term.
    pub(super) fn on_lease_check(&mut self, term: u64) {
        let lost = self.coordinator.as_ref() == Some(&self.me)
            && !self.acting(self.now)
            && self.lead.as_ref().is_some_and(|l| l.term == term && !l.releasing);
        if !lost {
            return;
        }
        self.note(Note::LeaseLost { term });
        self.lead = None;
        self.set_coordinator(None);
        if self.phase != Phase::Idle {
            self.phase = Phase::Idle;
        }
        self.request_election();
    }

    /// Quorum mode's reasons to refuse an announcement this node would otherwise accept:
    /// it holds a lease itself (and hands over if the announcer ranks higher), or it is
    /// promised to another coordinator.
    pub(super) fn quorum_refusal(&mut self, coordinator: &NodeRef) -> Option<AnnounceReply> {
        self.settings.quorum.as_ref()?;
        let now = self.now;
        if let Some(lead) = self.lead.clone() {
            let holds = lead.lease_until.is_some_and(|u| u > now);
            if holds && (lead.releasing || self.acting(now)) {
                if *coordinator > self.me && !lead.releasing {
                    self.hand_over(coordinator);
                }
                return Some(AnnounceReply::Promised {
                    to: Some(self.me.name.clone()),
                    remaining_ms: lead.lease_until.map_or(0, |u| u - now),
                    term: self.term,
                });
            }
        }
        let promise = self.promise.clone()?;
        promise.binds(coordinator, now).then(|| AnnounceReply::Promised {
            to: promise.to.map(|n| n.name),
            remaining_ms: promise.until - now,
            term: self.term,
        })
    }

    /// A higher node claims leadership: stop acting now, keep renewing (so no follower
    /// acknowledges anyone while the `--exec` child stops), and release the followers once the
    /// hooks let go.
    fn hand_over(&mut self, to: &NodeRef) {
        self.note(Note::HandingOver {
            to: to.name.clone(),
        });
        if let Some(lead) = self.lead.as_mut() {
            lead.releasing = true;
        }
        self.set_coordinator(None);
        if !self.settings.has_hooks {
            self.on_let_go();
        }
    }

    /// Accepting `coordinator` for `term`: recorded on disk, and in quorum mode promised for
    /// one lease. Returns the promise given.
    pub(super) fn promise_to(&mut self, coordinator: &NodeRef, term: u64) -> Option<u64> {
        self.use_term(term, coordinator);
        let lease = self.settings.quorum.as_ref()?.lease;
        self.promise = Some(Promise {
            to: Some(coordinator.clone()),
            until: self.now + lease,
        });
        self.timer(
            Timer::PromiseExpiry {
                coordinator: coordinator.clone(),
            },
            lease + 1,
        );
        Some(lease)
    }

    pub(super) fn release_promise(&mut self, coordinator: &NodeRef) {
        if self
            .promise
            .as_ref()
            .is_some_and(|p| p.to.as_ref() == Some(coordinator))
        {
            self.promise = None;
        }
    }

    /// No renewal came within the lease: the coordinator is gone, frozen or cut off.
    pub(super) fn on_promise_expiry(&mut self, coordinator: &NodeRef) {
        let expired = self.promise.as_ref().is_some_and(|p| {
            p.to.as_ref() == Some(coordinator) && self.now >= p.until
        });
        if !expired {
            return;
        }
        self.promise = None;
        if self.coordinator.as_ref() == Some(coordinator) {
            self.note(Note::LeaseExpired {
                name: coordinator.name.clone(),
            });
            self.coordinator_failed(coordinator, Detection::Lease);
        }
    }

    /// After a closed watch: is the coordinator's process really gone?
    pub(super) fn on_gone_checked(&mut self, coordinator: &NodeRef, answer: CheckAnswer) {
        if let CheckAnswer::Unreachable(Unreachable::Refused | Unreachable::Closed) = answer {
            self.release_promise(coordinator);
            self.lose_coordinator(coordinator, "closed its connection");
        }
        // Anything else (it answers, or does not in time): the lease decides.
    }

    /// `POST /release`: the coordinator stopped acting; whoever promised it is free, and a
    /// node claiming a term asks again at once.
    pub(super) fn on_release(&mut self, from: &NodeRef, term: u64) {
        let promised = self
            .promise
            .as_ref()
            .is_some_and(|p| p.to.as_ref() == Some(from));
        if promised && term >= self.term {
            self.promise = None;
            self.note(Note::ReleasedBy {
                name: from.name.clone(),
            });
        }
        if self.coordinator.as_ref() == Some(from) && term >= self.term {
            self.set_coordinator(None);
            self.request_election();
        }
        if self.phase == Phase::Claiming && !self.acting(self.now) {
            self.announce_lead();
        }
    }

    /// The hooks let go (the `--exec` child stopped and `--on-demoted` ran): a node handing
    /// over or shutting down releases its followers.
    pub(super) fn on_let_go(&mut self) {
        let Some(lead) = self.lead.take() else {
            return;
        };
        if !lead.releasing {
            self.lead = Some(lead);
            return;
        }
        let to: Vec<Member> = others(&self.members, &self.me).cloned().collect();
        self.note(Note::Released {
            to: to.iter().map(|m| m.name.clone()).collect(),
        });
        self.effect(Effect::Release {
            to,
            term: lead.term,
        });
    }

    /// SIGINT/SIGTERM: stand for nothing more, stop acting, and release the followers once
    /// the hooks let go.
    pub(super) fn on_shutting_down(&mut self) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        self.note(Note::ShuttingDown);
        if self.phase != Phase::Idle {
            self.end_round(false);
        }
        if let Some(lead) = self.lead.as_mut() {
            lead.releasing = true;
        }
        if self.coordinator.as_ref() == Some(&self.me) {
            self.set_coordinator(None);
        }
        if !self.settings.has_hooks {
            self.on_let_go();
        }
    }
}

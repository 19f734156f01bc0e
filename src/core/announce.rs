//! Announcements: accepting a higher coordinator of a newer term, bullying a lower one back,
//! refusing a stale one; taking a new term on a win and announcing it (highest first), and
//! sending it again to members that were too busy or slow to take it. Part of [`Election`].

use super::election::{Election, Phase};
use super::event::{AnnounceAnswer, ProbePurpose, Timer};
use super::member::{others_highest_first, Member, NodeRef};
use super::ready::{AnnounceReply, Effect, Note, Reason};
use super::rules::{valid_term, MAX_TERM};
use super::terms::Newness;

impl Election {
    /// `POST /announce`: accept a higher coordinator of a newer term; bully a lower one back
    /// with an election; refuse a stale one. Quorum mode adds promises: see `claim.rs`.
    pub(super) fn on_announce(&mut self, coordinator: &NodeRef, term: u64) -> AnnounceReply {
        if !valid_term(term) {
            self.note(Note::AboveLargestTerm {
                from: coordinator.name.clone(),
                term,
            });
            return AnnounceReply::Stale {
                term: self.terms.current(),
            };
        }
        self.terms.saw(term);
        if *coordinator == self.me {
            return AnnounceReply::Ok { promise_ms: None };
        }
        self.heard_from(coordinator);
        if self.terms.newness(coordinator, term) == Newness::Stale {
            self.note(Note::StaleAnnouncement {
                from: coordinator.name.clone(),
                term,
                following: self.coordinator.as_ref().map(|c| c.name.clone()),
                our_term: self.terms.current(),
            });
            return AnnounceReply::Stale {
                term: self.terms.current(),
            };
        }
        if *coordinator < self.me && self.preempts() {
            self.note(Note::LowerAnnounced {
                from: coordinator.name.clone(),
                me: self.me.name.clone(),
            });
            self.request_election();
            return AnnounceReply::Ok { promise_ms: None };
        }
        if let Some(refusal) = self.quorum_refusal(coordinator) {
            return refusal;
        }
        self.end_round(false);
        self.lease.end_lead();
        self.standing.stop_resigning();
        self.rounds.forget_hand_over();
        self.terms.follow(coordinator, term);
        let promise_ms = self.promise_to(coordinator, term);
        let reason = if self.coordinator.as_ref() == Some(&self.me) {
            Reason::Preempted
        } else {
            self.win_reason()
        };
        let previous = self.set_coordinator(Some(coordinator.clone()), reason);
        if previous.as_ref() == Some(coordinator) {
            return AnnounceReply::Ok { promise_ms };
        }
        self.note(Note::CoordinatorIs {
            name: coordinator.name.clone(),
            term,
        });
        match previous {
            // A lower node took over from a higher one: if the higher one is in fact alive
            // (frozen, partitioned, or the announcement is forged), it must be brought back.
            Some(p) if p > *coordinator && p != self.me => self.effect(Effect::Probe {
                purpose: ProbePurpose::Previous(p.clone()),
                nodes: vec![p],
            }),
            _ => {}
        }
        AnnounceReply::Ok { promise_ms }
    }

    /// The answers to our announcement: a refusal by a node that follows a term at least ours
    /// makes this node elect again above it; in quorum mode acknowledgements count towards
    /// the lease.
    pub(super) fn on_announce_answered(
        &mut self,
        term: u64,
        seq: u64,
        answers: Vec<(Member, AnnounceAnswer)>,
    ) {
        if self.settings.quorum.is_some() {
            self.count_acks(term, seq, &answers);
        } else {
            self.note_missed(term, &answers);
        }
        let highest = answers
            .iter()
            .filter_map(|(_, a)| match a {
                AnnounceAnswer::Stale { term } => Some(*term),
                _ => None,
            })
            .max();
        let Some(refused) = highest else { return };
        let refused = refused.min(MAX_TERM);
        self.terms.saw(refused);
        let claiming = self.phase == Phase::Claiming && self.lease.leads_term(term);
        // A refusal of an older announcement naming our own term: the refuser follows us.
        let follows_us = refused == self.terms.current() && term < self.terms.current();
        if !(self.is_coordinator() || claiming) || refused < self.terms.current() || follows_us {
            return;
        }
        self.note(Note::AnnouncementRefused {
            me: self.me.name.clone(),
            term: refused,
        });
        if claiming {
            self.lease.end_lead();
            self.start_round();
        } else {
            self.request_election();
        }
    }

    /// Plain mode: members that were busy or slow to answer this term's announcement get it
    /// again a little later, a few times at most.
    pub(super) fn note_missed(&mut self, term: u64, answers: &[(Member, AnnounceAnswer)]) {
        if !self.is_coordinator() || term != self.terms.current() {
            return;
        }
        if let Some(wait) = self.announcements.missed(answers) {
            self.timer(Timer::Reannounce { term }, wait);
        }
    }

    pub(super) fn reannounce(&mut self, term: u64) {
        let to = self.announcements.take_missed();
        if !self.is_coordinator() || term != self.terms.current() || to.is_empty() {
            return;
        }
        let seq = self.announcements.next_seq();
        self.effect(Effect::Announce { to, term, seq });
    }

    /// Nobody above: take a new term. In plain Bully this node leads at once; in quorum
    /// mode it claims the term and leads once a majority acknowledges it.
    pub(super) fn become_coordinator(&mut self) {
        if !self.stands() {
            return self.end_round(false);
        }
        if self.settings.quorum.is_some() {
            return self.claim();
        }
        if self.awaits_lock() {
            return;
        }
        self.end_round(true);
        self.rounds.set_verifying(false);
        self.take_term();
        let me = self.me.clone();
        let reason = self.win_reason();
        if self.set_coordinator(Some(me), reason).as_ref() == Some(&self.me) {
            self.effect(Effect::LeadingAgain {
                term: self.terms.current(),
            });
        }
        self.note(Note::CoordinatorIs {
            name: self.me.name.clone(),
            term: self.terms.current(),
        });
        let to = others_highest_first(&self.rounds.take_members(), &self.me);
        let late = self.late_askers(&to);
        let seq = self.announcements.new_term();
        self.effect(Effect::Announce {
            to,
            term: self.terms.current(),
            seq,
        });
        if !late.is_empty() {
            self.effect(Effect::AnnounceTo {
                nodes: late,
                term: self.terms.current(),
                seq,
            });
        }
    }
}

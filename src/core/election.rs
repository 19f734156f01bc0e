//! The Bully algorithm as a pure state machine.
//!
//! [`Election::step`] takes the time and one [`Event`] and returns a [`Ready`]: the reply, the
//! effects for the shell, the coordinator changes and round edges it caused, the lines to log
//! and what must be persisted first. Nothing here touches the network, the registry, a clock
//! or a thread, which keeps the protocol testable like a function (and model-checkable) and
//! lets the shell drop the state lock before any I/O.
//!
//! `Election` owns six sub-machines, each in its own file with private fields and its own
//! tests, none importing `Election`: `Terms`, `QuorumLease`, `Standing`, `RoundState`,
//! `Announcements` and `LockGate`. This file holds the state, `step`, the timers and the
//! leader-lock gate's part; the round and its announcements are in `round.rs`, noticing a
//! failed coordinator in `failure.rs`, quorum mode in `claim.rs`, operator control in
//! `control.rs`.
//!
//! Terms: every claim takes a term above any this node has seen or used, and an announcement
//! is only accepted for a term above the one followed (or a repeat of it by the same
//! coordinator). So a delayed announcement from an old round cannot overwrite a newer
//! coordinator, and no node ever follows two coordinators in one term. Quorum mode (see
//! [`super::quorum`] and `claim.rs`) adds that a node only leads while a majority's promises
//! hold.

use super::announcements::Announcements;
use super::event::{Event, LockAnswer, Purpose, Timer};
use super::member::NodeRef;
use super::quorum::Millis;
use super::quorum_lease::QuorumLease;
use super::ready::{Change, Effect, Note, Persisted, Ready, Reason, Reply, RoundEdge};
use std::time::Duration;

pub use super::lease::{QuorumState, QuorumView};
use super::lock::LockGate;
use super::round_state::RoundState;
pub use super::settings::Settings;
use super::standing::{Abstention, Standing};
use super::terms::Terms;

/// Where this node stands in the current round.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No election running: following a coordinator, leading, or not yet started.
    Idle,
    /// An election was asked for; waiting for the registry's member list.
    Collecting,
    /// Election messages are out to the higher members.
    Electing,
    /// A higher member answered; waiting for its announcement.
    AwaitingAnnouncement,
    /// Nobody above answered, and this node already leads: it asks the others which term
    /// they follow before it takes a new one, so it never claims a term a successor took
    /// while it was frozen.
    LearningTerms,
    /// Quorum mode: nobody above answered, but this node is still promised to another
    /// coordinator (or has just started): it stands once the promise runs out.
    AwaitingPromise,
    /// Quorum mode: this node announced a term and waits for a majority to acknowledge it.
    Claiming,
    /// `--consul-lock`: this node would lead, and waits for the leader lock first.
    AwaitingLock,
}

/// A read-only view for `/nodeDetails`, the metrics and the watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub coordinator: Option<NodeRef>,
    pub is_coordinator: bool,
    pub election: bool,
    pub term: u64,
    /// Quorum mode only.
    pub quorum: Option<QuorumView>,
    /// SIGINT/SIGTERM arrived: a coordinator that stops leading now is leaving, not demoted.
    pub leaving: bool,
    /// Whether it would take over from a lower coordinator now.
    pub preempts: bool,
    pub healthy: bool,
    pub maintenance: bool,
    /// Why it does not stand for election, if it does not.
    pub abstention: Option<Abstention>,
}

/// What a node knows and where it is in the protocol.
#[derive(Clone, Debug)]
pub struct Election {
    pub(super) me: NodeRef,
    pub(super) settings: Settings,
    pub(super) coordinator: Option<NodeRef>,
    /// The term followed, led or claimed, the highest seen, and the floor on disk.
    pub(super) terms: Terms,
    pub(super) phase: Phase,
    /// The round under way, or the last one: its bookkeeping.
    pub(super) rounds: RoundState,
    /// Quorum mode: the term claimed or led with its acknowledgements, and the promise given.
    pub(super) lease: QuorumLease,
    /// Whether this node stands for election, and why not.
    pub(super) standing: Standing,
    /// The coordinator whose beats this follower hears on a held stream: while it does, the
    /// health tick sends no check (the beats say more, and sooner).
    pub(super) beats: Option<NodeRef>,
    /// Numbers announcements; plain mode sends them again to members that missed them.
    pub(super) announcements: Announcements,
    /// `--consul-lock`, `--etcd-lock`: the leader-lock gate.
    pub(super) lock: LockGate,
    /// The time of the step under way.
    pub(super) now: Millis,
    /// The output of the step under way.
    pub(super) out: Ready,
}

impl Election {
    /// A node that starts at `now` with what it `persisted` before: it never claims a term
    /// at or below one it used, and in quorum mode it acknowledges nobody for one lease (it
    /// may have promised someone just before it stopped).
    pub fn new(me: NodeRef, settings: Settings, persisted: Persisted, now: Millis) -> Self {
        let lease = QuorumLease::new(settings.quorum.as_ref().map(|q| q.lease), now);
        let standing = Standing::new(
            settings.witness,
            settings.health_checked,
            persisted.maintenance,
            now,
        );
        let terms = Terms::new(settings.quorum.is_some(), persisted);
        Election {
            me,
            settings,
            coordinator: None,
            terms,
            phase: Phase::Idle,
            rounds: RoundState::default(),
            lease,
            standing,
            beats: None,
            announcements: Announcements::default(),
            lock: LockGate::default(),
            now,
            out: Ready::default(),
        }
    }

    pub fn me(&self) -> &NodeRef {
        &self.me
    }

    pub fn coordinator(&self) -> Option<&NodeRef> {
        self.coordinator.as_ref()
    }

    pub fn term(&self) -> u64 {
        self.terms.current()
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// This node leads: in quorum mode only while a majority's promises hold, which the
    /// snapshot checks against the clock even before the lease timer fires.
    pub fn is_coordinator(&self) -> bool {
        self.coordinator.as_ref() == Some(&self.me) && self.acting(self.now)
    }

    pub fn snapshot(&self, now: Millis) -> Snapshot {
        Snapshot {
            coordinator: self.coordinator.clone(),
            is_coordinator: self.coordinator.as_ref() == Some(&self.me) && self.acting(now),
            election: self.phase != Phase::Idle,
            term: self.terms.current(),
            quorum: self.quorum_view(now),
            leaving: self.standing.leaving(),
            preempts: self.preempts_at(now),
            healthy: self.standing.healthy(),
            maintenance: self.standing.maintenance(),
            abstention: self.standing.abstention(now),
        }
    }

    /// Applies one event at `now` (milliseconds of this node's monotonic clock) and returns
    /// everything that follows from it.
    pub fn step(&mut self, now: Millis, event: Event) -> Ready {
        self.now = self.now.max(now);
        let let_go = event == Event::LetGo;
        // A lease that ran out while this node could not step (frozen: its timers come late)
        // ends before anything else is handled, as its lease check would have ended it.
        if let Some(term) = self.lease.lead_term() {
            if !matches!(event, Event::Timer(Timer::LeaseCheck { .. })) {
                self.on_lease_check(term);
            }
        }
        match event {
            Event::Startup => self.on_startup(),
            Event::HealthTick => self.on_health_tick(),
            Event::Rejoined => self.on_rejoined(),
            Event::Registered { ok } => self.on_registered(ok),
            Event::Timer(timer) => self.on_timer(timer),
            Event::Members { purpose, members } => self.on_members(purpose, members),
            Event::TermsAnswered { answers } => self.on_terms_answered(answers),
            Event::ElectionAnswered { round, answers } => self.on_election_answered(round, answers),
            Event::AnnounceAnswered { term, seq, answers } => {
                self.on_announce_answered(term, seq, answers)
            }
            Event::CoordinatorChecked {
                coordinator,
                answer,
            } => self.on_coordinator_checked(&coordinator, answer),
            Event::Probed { purpose, answers } => self.on_probed(purpose, answers),
            Event::BeatsHeard { coordinator } => self.on_beats_heard(coordinator),
            Event::WatchEnded { coordinator, end } => self.on_watch_ended(&coordinator, end),
            Event::GoneChecked {
                coordinator,
                answer,
            } => self.on_gone_checked(&coordinator, answer),
            Event::Proxy { from, term } => {
                let reply = self.on_proxy(&from, term);
                self.out.reply = Some(Reply::Proxy(reply));
            }
            Event::Response { from, term } => {
                self.on_response(&from, term);
                self.out.reply = Some(Reply::Ok);
            }
            Event::Announce { from, term } => {
                let reply = self.on_announce(&from, term);
                self.out.reply = Some(Reply::Announce(reply));
            }
            Event::Release { from, term } => {
                self.on_release(&from, term);
                self.out.reply = Some(Reply::Ok);
            }
            Event::LetGo => self.on_let_go(),
            Event::ShuttingDown => self.on_shutting_down(),
            Event::Health { healthy } => self.on_health(healthy),
            Event::ExecExited => self.on_exec_exited(),
            Event::Maintenance { on } => {
                let reply = self.on_maintenance(on);
                self.out.reply = Some(Reply::Control(reply));
            }
            Event::StepDown { to, listing } => {
                // A named target is looked up among the members as the registry lists them
                // now, as before an election.
                if let (Some(_), Some(members)) = (&to, listing) {
                    self.on_members(Purpose::Refresh, members);
                }
                let reply = self.on_step_down(to);
                self.out.reply = Some(Reply::Control(reply));
            }
            Event::TakeOver { from, term } => {
                self.on_take_over(&from, term);
                self.out.reply = Some(Reply::Ok);
            }
            Event::Lock(answer) => self.on_lock(answer),
        }
        self.settle_lock(let_go);
        let mut out = std::mem::take(&mut self.out);
        if out.persist.is_some() {
            out.persist = Some(self.terms.persisted().clone());
        }
        out
    }

    pub(super) fn note(&mut self, note: Note) {
        self.out.notes.push(note);
    }

    pub(super) fn effect(&mut self, effect: Effect) {
        self.out.effects.push(effect);
    }

    pub(super) fn timer(&mut self, timer: Timer, after_ms: Millis) {
        self.effect(Effect::StartTimer {
            timer,
            after: Duration::from_millis(after_ms),
        });
    }

    /// Records that this node uses or acknowledges `term`: the floor on disk must cover it
    /// before anyone hears of it.
    pub(super) fn use_term(&mut self, term: u64) {
        if self.terms.record_used(term) {
            self.out.persist = Some(self.terms.persisted().clone());
        }
    }

    /// A win: a term above every term seen or used, on disk before anyone hears of it.
    pub(super) fn take_term(&mut self) {
        if self.terms.take_next(&self.me).1 {
            self.out.persist = Some(self.terms.persisted().clone());
        }
    }

    /// Replaces the coordinator, recording the change (and why) when there is one.
    pub(super) fn set_coordinator(
        &mut self,
        next: Option<NodeRef>,
        reason: Reason,
    ) -> Option<NodeRef> {
        if next.is_some() {
            self.terms.stop_waiting();
        }
        let before = std::mem::replace(&mut self.coordinator, next);
        if before != self.coordinator {
            self.beats = None;
        }
        if before.is_some() && self.coordinator.is_none() {
            self.yield_sit_out_when_leaderless();
        }
        if before != self.coordinator {
            self.out.changes.push(Change {
                before: before.clone(),
                after: self.coordinator.clone(),
                term: self.terms.current(),
                reason,
                lock_index: self
                    .lock_index()
                    .filter(|_| self.coordinator.as_ref() == Some(&self.me)),
                fence: self
                    .lease
                    .lease_until()
                    .filter(|_| self.coordinator.as_ref() == Some(&self.me)),
            });
        }
        before
    }

    /// Ends the round under way, if any: this node won it or accepted a coordinator.
    pub(super) fn end_round(&mut self, won: bool) {
        // A suspect is skipped in the round right after its failure, not for good: a node
        // that only looked dead (a partition that healed) must be asked again.
        self.rounds.clear_suspect();
        if self.phase != Phase::Idle {
            self.out.rounds.push(RoundEdge::Ended {
                round: self.rounds.number(),
                won,
            });
        }
        self.phase = Phase::Idle;
    }

    pub(super) fn collect(&mut self, purpose: Purpose) {
        self.effect(Effect::CollectMembers { purpose });
    }

    fn on_timer(&mut self, timer: Timer) {
        match timer {
            Timer::Announcement { round } => {
                // A higher node answered but never announced itself (it died meanwhile).
                if self.phase != Phase::AwaitingAnnouncement || round != self.rounds.number() {
                    return;
                }
                self.note(Note::NoAnnouncement {
                    me: self.me.name.clone(),
                });
                // Ask everyone above this time, a suspect too: the one that answered OK did
                // not take over, so the node that leads may be the one skipped.
                self.rounds.clear_suspect();
                self.start_round();
            }
            Timer::Successor { coordinator, term } => {
                if term != self.terms.current() {
                    return;
                }
                // The watched coordinator stopped leading and no successor announced itself.
                self.lose_coordinator(&coordinator, "stopped leading");
            }
            Timer::Renew { term } => self.on_renew(term),
            Timer::ClaimRetry { term } => self.on_claim_retry(term),
            Timer::LeaseCheck { term } => self.on_lease_check(term),
            Timer::PromiseExpiry { coordinator } => self.on_promise_expiry(&coordinator),
            Timer::PreemptReady => self.on_preempt_ready(),
            Timer::StandAgain => self.on_stand_again(),
            Timer::Leaderless { term } => self.on_leaderless(term),
            Timer::Ranked => {
                if self.coordinator.is_none() {
                    self.request_election();
                }
            }
            Timer::Reannounce { term } => self.reannounce(term),
            Timer::LockRetry { attempt } => self.on_lock_retry(attempt),
            Timer::PromiseFree { round } => {
                if self.phase == Phase::AwaitingPromise && round == self.rounds.number() {
                    self.become_coordinator();
                }
            }
        }
    }

    // `--consul-lock`/`--etcd-lock`: the leader-lock gate (`lock.rs`). A node that wins does
    // not lead yet: it asks for the lock and waits in [`Phase::AwaitingLock`], asking again
    // (every `lock_retry_ms`) while refused; once it holds the lock it leads as it would have,
    // and its hooks get the lock's `LockIndex`. A lock lost while leading makes it let go
    // ([`Reason::LostLock`]).

    /// The `LockIndex` of the lock this node holds, if any.
    pub fn lock_index(&self) -> Option<u64> {
        self.lock.held()
    }

    /// About to lead: whether this node must wait for the lock first. If so it asks for the
    /// lock (unless an acquisition is under way) and waits in [`Phase::AwaitingLock`].
    pub(super) fn awaits_lock(&mut self) -> bool {
        if !self.settings.lock
            || self.lock.held().is_some()
            || self.coordinator.as_ref() == Some(&self.me)
        {
            return false;
        }
        if self.phase != Phase::AwaitingLock {
            self.note(Note::AcquiringLock);
        }
        self.phase = Phase::AwaitingLock;
        if !self.lock.pending() {
            let attempt = self.lock.acquire();
            self.effect(Effect::AcquireLock { attempt });
        }
        true
    }

    fn on_lock(&mut self, answer: LockAnswer) {
        match answer {
            LockAnswer::Held { attempt, index } => {
                self.lock.got(attempt, index);
                if self.phase != Phase::AwaitingLock {
                    return;
                }
                self.note(Note::LockHeld { index });
                if self.settings.quorum.is_some() {
                    // The claim goes on; it leads once its majority holds too.
                    self.phase = Phase::Claiming;
                    self.update_lease();
                } else {
                    self.become_coordinator();
                }
            }
            LockAnswer::Refused { attempt, why } => {
                if !self.lock.refused(attempt) || self.phase != Phase::AwaitingLock {
                    return;
                }
                if self.lock.new_refusal(&why) {
                    self.note(Note::LockRefused { why });
                }
                self.timer(Timer::LockRetry { attempt }, self.settings.lock_retry_ms);
            }
            LockAnswer::Lost { attempt, why } => {
                if !self.lock.lost(attempt) {
                    return;
                }
                // Let go in the store too: a watch that could not reach it does not know that
                // the session lost the lock, and no one else may take it while it holds.
                self.effect(Effect::ReleaseLock);
                if self.coordinator.as_ref() == Some(&self.me) {
                    self.note(Note::LockLost { why });
                    self.resign(Reason::LostLock, None);
                }
            }
        }
    }

    /// Still waiting for the lock after a refusal: ask again, if this node still stands.
    fn on_lock_retry(&mut self, attempt: u64) {
        if self.phase != Phase::AwaitingLock
            || !self.lock.is_current(attempt)
            || self.lock.pending()
        {
            return;
        }
        if !self.stands() {
            return self.end_round(false);
        }
        let attempt = self.lock.acquire();
        self.effect(Effect::AcquireLock { attempt });
    }

    /// Plain Bully: a coordinator whose election message a higher node answered lets go of
    /// its leadership and its lock, so that node can take the lock and lead. (Without this
    /// the higher node could never take over: it needs the lock before it announces itself.
    /// In quorum mode the higher node's claim makes this node hand over.)
    pub(super) fn yield_lock(&mut self) {
        if self.settings.lock
            && self.settings.quorum.is_none()
            && self.coordinator.as_ref() == Some(&self.me)
        {
            self.resign(Reason::Preempted, None);
        }
    }

    /// At the end of every step: releases the lock once nothing needs it (`let_go`: the step
    /// was [`Event::LetGo`]).
    fn settle_lock(&mut self, let_go: bool) {
        if !self.settings.lock {
            return;
        }
        let leading = self.coordinator.as_ref() == Some(&self.me);
        let wanted = leading || self.phase == Phase::AwaitingLock;
        if self
            .lock
            .settle(leading, self.settings.has_hooks, let_go, wanted)
        {
            self.effect(Effect::ReleaseLock);
        }
    }
}

#[cfg(test)]
#[path = "tests/election_lock.rs"]
mod lock_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::{
        AnnounceAnswer, CheckAnswer, Claim, ElectionAnswer, ProbeAnswer, ProbePurpose, Unreachable,
        WatchEnd,
    };
    use crate::core::fixtures::{self, cluster, elect, nref};
    use crate::core::member::others;
    use crate::core::member::Member;
    use crate::core::ready::{AnnounceReply, Detection, ProxyReply};
    use crate::core::rules::MAX_TERM;

    /// `member(id)` of the fixtures under another name.
    fn member(name: &str, id: u64) -> Member {
        Member {
            name: name.into(),
            ..fixtures::member(id)
        }
    }

    fn node(id: u64) -> Election {
        Election::new(
            nref(id),
            Settings::for_timeout(Duration::from_secs(1)),
            Persisted::default(),
            0,
        )
    }

    fn collect(round: u64) -> Effect {
        Effect::CollectMembers {
            purpose: Purpose::Round(round),
        }
    }

    fn members(e: &mut Election, round: u64, ms: &[Member]) -> Ready {
        e.step(
            0,
            Event::Members {
                purpose: Purpose::Round(round),
                members: ms.to_vec(),
            },
        )
    }

    /// A coordinator's round that finds nobody above: it first asks the others' terms (they
    /// answer `their_term`), then wins; returns what the win gave.
    fn rewin(e: &mut Election, round: u64, ms: &[Member], their_term: u64) -> Ready {
        let r = members(e, round, ms);
        let asked: Vec<Member> = others(ms, e.me()).cloned().collect();
        assert_eq!(
            r.effects,
            vec![Effect::AskTerms {
                members: asked.clone()
            }],
            "a leader learns the terms before it takes a new one"
        );
        assert_eq!(e.phase(), &Phase::LearningTerms);
        let answers = asked
            .into_iter()
            .map(|m| {
                let a = CheckAnswer::Details {
                    name: m.name.clone(),
                    id: m.id,
                    is_coordinator: false,
                    claiming: false,
                    term: their_term,
                    follows: None,
                    preempts: false,
                };
                (m, a)
            })
            .collect();
        e.step(0, Event::TermsAnswered { answers })
    }

    /// A node that won an election among `ms`.
    fn leader(id: u64, ms: &[Member]) -> Election {
        let mut e = node(id);
        elect(&mut e, 0, ms);
        assert!(e.is_coordinator());
        e
    }

    fn announce(e: &mut Election, from: u64, term: u64) -> (AnnounceReply, Ready) {
        let r = e.step(
            0,
            Event::Announce {
                from: nref(from),
                term,
            },
        );
        match &r.reply {
            Some(Reply::Announce(a)) => (a.clone(), r),
            other => panic!("expected an announce reply, got {other:?}"),
        }
    }

    fn proxy(e: &mut Election, from: &NodeRef, term: u64) -> (ProxyReply, Ready) {
        let r = e.step(
            0,
            Event::Proxy {
                from: from.clone(),
                term,
            },
        );
        match &r.reply {
            Some(Reply::Proxy(p)) => (p.clone(), r),
            other => panic!("expected a proxy reply, got {other:?}"),
        }
    }

    fn ok() -> ElectionAnswer {
        ElectionAnswer::Ok { claim: None }
    }

    fn answered(e: &mut Election, round: u64, answers: Vec<(Member, ElectionAnswer)>) -> Ready {
        e.step(0, Event::ElectionAnswered { round, answers })
    }

    fn checked(e: &mut Election, c: u64, answer: CheckAnswer) -> Ready {
        e.step(
            0,
            Event::CoordinatorChecked {
                coordinator: nref(c),
                answer,
            },
        )
    }

    fn details(c: u64, is_coordinator: bool, term: u64) -> CheckAnswer {
        CheckAnswer::Details {
            name: format!("node{c}"),
            id: c,
            is_coordinator,
            claiming: false,
            term,
            follows: None,
            preempts: false,
        }
    }

    fn leading(c: u64) -> CheckAnswer {
        details(c, true, 1)
    }

    fn down() -> CheckAnswer {
        CheckAnswer::Unreachable(Unreachable::Refused)
    }

    #[test]
    fn highest_id_wins_at_once_and_announces_to_the_others() {
        let mut e = node(4);
        let r = elect(&mut e, 0, &cluster(&[1, 2, 3, 4]));
        assert_eq!(
            r.effects,
            vec![Effect::Announce {
                to: cluster(&[3, 2, 1]),
                term: 1,
                seq: 1
            }]
        );
        assert_eq!(
            r.changes,
            vec![Change {
                before: None,
                after: Some(nref(4)),
                term: 1,
                reason: Reason::Elected,
                lock_index: None,
                fence: None,
            }]
        );
        assert_eq!(
            r.rounds,
            vec![RoundEdge::Ended {
                round: 1,
                won: true
            }]
        );
        assert!(e.is_coordinator());
        assert_eq!(e.phase(), &Phase::Idle);
        assert_eq!(e.term(), 1);
    }

    #[test]
    fn a_round_starts_with_an_edge_a_log_line_and_a_member_collection() {
        let mut e = node(2);
        let r = e.step(0, Event::HealthTick);
        assert_eq!(r.rounds, vec![RoundEdge::Started { round: 1 }]);
        assert_eq!(r.effects, vec![collect(1)]);
        assert_eq!(r.notes[0].to_string(), "Starting election in: node2");
        let r = members(&mut e, 1, &cluster(&[1, 2, 3, 4]));
        assert_eq!(r.notes[0].to_string(), "higher nodes: [node3, node4]");
        // The highest first; the others only if it does not answer.
        assert_eq!(
            r.effects,
            vec![Effect::SendElection {
                round: 1,
                to: cluster(&[4]),
                term: 0
            }]
        );
        assert!(e.snapshot(0).election);
        assert!(r.rounds.is_empty() && r.changes.is_empty());
        let down = ElectionAnswer::Unreachable(Unreachable::Refused);
        let r = answered(&mut e, 1, vec![(member("node4", 4), down)]);
        assert_eq!(
            r.effects,
            vec![Effect::SendElection {
                round: 1,
                to: cluster(&[3]),
                term: 0
            }]
        );
        // An OK from any of them ends the asking.
        let r = answered(&mut e, 1, vec![(member("node3", 3), ok())]);
        assert!(matches!(&r.effects[..], [Effect::StartTimer { .. }]));
    }

    #[test]
    fn no_ok_from_higher_nodes_makes_this_node_coordinator_whatever_else_they_said() {
        let mut e = node(2);
        elect(&mut e, 0, &cluster(&[1, 2, 3, 4, 5, 6]));
        let gone = ElectionAnswer::Unreachable(Unreachable::Closed);
        answered(&mut e, 1, vec![(member("node6", 6), gone)]);
        let answers = vec![
            (member("node3", 3), ElectionAnswer::Busy),
            (member("node4", 4), ElectionAnswer::Refused { status: 409 }),
            (
                member("node5", 5),
                ElectionAnswer::Unreachable(Unreachable::Timeout),
            ),
        ];
        let r = answered(&mut e, 1, answers);
        assert_eq!(r.notes[0].to_string(), "No higher node answered in: node2");
        assert_eq!(
            r.effects,
            vec![Effect::Announce {
                to: cluster(&[6, 5, 4, 3, 1]),
                term: 1,
                seq: 1
            }]
        );
        assert!(e.is_coordinator());
    }

    #[test]
    fn an_ok_waits_for_the_announcement_and_a_missing_one_restarts_the_round() {
        let mut e = node(1);
        elect(&mut e, 0, &cluster(&[1, 2]));
        let r = answered(&mut e, 1, vec![(member("node2", 2), ok())]);
        assert_eq!(
            r.effects,
            vec![Effect::StartTimer {
                timer: Timer::Announcement { round: 1 },
                after: Duration::from_secs(4)
            }]
        );
        assert_eq!(e.phase(), &Phase::AwaitingAnnouncement);
        let r = e.step(0, Event::Timer(Timer::Announcement { round: 1 }));
        assert_eq!(
            r.notes[0].to_string(),
            "No announcement arrived in: node1; electing again"
        );
        // A restart counts as a started round but ends none: the round is timed from its
        // first start.
        assert_eq!(r.rounds, vec![RoundEdge::Started { round: 2 }]);
        assert!(r.effects.contains(&collect(2)));
    }

    /// A split healed: the lower side's coordinator announces itself to the higher one,
    /// which still leads, so it wins again in a new term, and says so: clients may have
    /// learnt the other host for its virtual IPs. A first win says nothing of the kind.
    #[test]
    fn a_leader_that_wins_again_after_a_split_announces_its_work_again() {
        let mut e = node(3);
        let r = elect(&mut e, 0, &cluster(&[1, 2, 3]));
        assert!(e.is_coordinator());
        assert!(!r
            .effects
            .iter()
            .any(|x| matches!(x, Effect::LeadingAgain { .. })));
        e.step(
            100,
            Event::Announce {
                from: nref(2),
                term: 5,
            },
        );
        let round = e.rounds.number();
        let r = rewin(&mut e, round, &cluster(&[1, 2, 3]), 5);
        assert!(e.is_coordinator());
        assert!(
            r.effects
                .iter()
                .any(|x| matches!(x, Effect::LeadingAgain { term } if *term == e.term())),
            "{r:?}"
        );
    }

    #[test]
    fn a_lower_nodes_election_is_taken_over() {
        let mut low = node(1);
        let mut high = node(3);
        let ms = cluster(&[1, 2, 3]);
        let r = elect(&mut low, 0, &ms);
        assert!(
            matches!(&r.effects[..], [Effect::SendElection { to, .. }] if to == &cluster(&[3]))
        );
        // node3 knows no coordinator: it answers OK and runs its own election ...
        let (reply, r) = proxy(&mut high, low.me(), 0);
        assert_eq!(reply, ProxyReply::Ok);
        assert_eq!(r.effects, vec![collect(1)]);
        let r = members(&mut high, 1, &ms);
        assert_eq!(
            r.effects,
            vec![Effect::Announce {
                to: cluster(&[2, 1]),
                term: 1,
                seq: 1
            }]
        );
        // ... so node1 waits for the announcement instead of winning.
        answered(&mut low, 1, vec![(member("node3", 3), ok())]);
        let (reply, r) = announce(&mut low, 3, 1);
        assert_eq!(reply, AnnounceReply::Ok { promise_ms: None });
        assert!(r.effects.is_empty());
        assert_eq!(
            r.rounds,
            vec![RoundEdge::Ended {
                round: 1,
                won: false
            }]
        );
        assert_eq!(low.coordinator(), Some(&nref(3)));
        assert_eq!(low.phase(), &Phase::Idle);
        assert_eq!(low.term(), 1);
        // The timer that fires after that is ignored.
        let r = low.step(0, Event::Timer(Timer::Announcement { round: 1 }));
        assert_eq!(r, Ready::default());
    }

    #[test]
    fn an_ok_that_claims_coordinator_is_its_announcement_but_only_for_itself() {
        let mut e = node(1);
        elect(&mut e, 0, &cluster(&[1, 2, 3]));
        let claim = |name: &str, id, term| ElectionAnswer::Ok {
            claim: Some(Claim {
                name: name.into(),
                id,
                term,
            }),
        };
        // node2 claims to be node3: not taken as anyone's announcement, but it is an OK.
        let r = answered(
            &mut e,
            1,
            vec![
                (member("node2", 2), claim("node3", 3, 7)),
                (member("node3", 3), ElectionAnswer::Busy),
            ],
        );
        assert_eq!(e.coordinator(), None);
        assert!(matches!(&r.effects[..], [Effect::StartTimer { .. }]));
        let mut e = node(1);
        elect(&mut e, 0, &cluster(&[1, 3]));
        let r = answered(&mut e, 1, vec![(member("node3", 3), claim("node3", 3, 7))]);
        assert_eq!(e.coordinator(), Some(&nref(3)));
        assert_eq!(e.term(), 7);
        assert_eq!(e.phase(), &Phase::Idle);
        assert_eq!(
            r.rounds,
            vec![RoundEdge::Ended {
                round: 1,
                won: false
            }]
        );
        assert_eq!(r.changes.len(), 1);
    }

    #[test]
    fn response_from_lower_node_starts_local_election_but_not_from_higher() {
        let mut e = node(2);
        let r = e.step(
            0,
            Event::Response {
                from: nref(3),
                term: 0,
            },
        );
        assert_eq!(r.reply, Some(Reply::Ok));
        assert!(r.effects.is_empty());
        let r = e.step(
            0,
            Event::Response {
                from: nref(1),
                term: 0,
            },
        );
        assert_eq!(r.effects, vec![collect(1)]);
    }

    #[test]
    fn announcement_from_lower_node_is_bullied_back_with_a_higher_term() {
        let mut e = node(3);
        let (reply, r) = announce(&mut e, 2, 5);
        assert_eq!(reply, AnnounceReply::Ok { promise_ms: None });
        assert_eq!(r.effects, vec![collect(1)]);
        assert_eq!(
            r.notes.last().unwrap().to_string(),
            "Starting election in: node3"
        );
        assert_eq!(
            r.notes[0].to_string(),
            "node2 announced itself but node3 ranks higher: electing"
        );
        assert_eq!(e.coordinator(), None);
        let r = members(&mut e, 1, &cluster(&[1, 2, 3]));
        assert!(
            matches!(&r.effects[..], [Effect::Announce { term: 6, .. }]),
            "{r:?}"
        );
        assert!(e.is_coordinator());
    }

    #[test]
    fn many_election_messages_in_one_round_start_one_election() {
        let mut e = node(10);
        let mut started = 0;
        for i in 1..10 {
            let (reply, r) = proxy(&mut e, &nref(i), 0);
            assert_eq!(reply, ProxyReply::Ok);
            started += r.effects.len();
        }
        assert_eq!(started, 1);
        // The round ends when this node wins; then it answers as coordinator, electing no more.
        members(&mut e, 1, &cluster(&[1, 2, 10]));
        assert!(e.is_coordinator());
        let (reply, r) = proxy(&mut e, &nref(1), 0);
        assert_eq!(reply, ProxyReply::Coordinator { term: 1 });
        assert!(r.effects.is_empty());
    }

    #[test]
    fn a_coordinator_asked_from_a_newer_term_elects_again() {
        let mut e = leader(4, &cluster(&[1, 4]));
        let (reply, r) = proxy(&mut e, &nref(1), 9);
        assert_eq!(reply, ProxyReply::Ok);
        assert_eq!(r.effects, vec![collect(2)]);
        let r = rewin(&mut e, 2, &cluster(&[1, 4]), 1);
        assert!(
            matches!(
                &r.effects[..],
                [
                    Effect::LeadingAgain { term: 10 },
                    Effect::Announce { term: 10, .. }
                ]
            ),
            "{r:?}"
        );
        // Still the coordinator throughout: no change, but the round is won.
        assert!(r.changes.is_empty());
        assert_eq!(
            r.rounds,
            vec![RoundEdge::Ended {
                round: 2,
                won: true
            }]
        );
    }

    #[test]
    fn a_follower_checks_its_coordinator_once_instead_of_electing() {
        let mut e = node(3);
        announce(&mut e, 9, 4);
        let check = Effect::CheckCoordinator {
            coordinator: nref(9),
        };
        let (reply, r) = proxy(&mut e, &nref(1), 4);
        assert_eq!(reply, ProxyReply::Ok);
        assert_eq!(r.effects, vec![check.clone()]);
        for i in [1, 2, 1] {
            let (reply, r) = proxy(&mut e, &nref(i), 4);
            assert_eq!((reply, r.effects), (ProxyReply::Ok, vec![]));
        }
        checked(&mut e, 9, leading(9));
        assert_eq!(e.phase(), &Phase::Idle);
        // After the check the next message may check again; a failed check elects.
        let (_, r) = proxy(&mut e, &nref(1), 4);
        assert_eq!(r.effects, vec![check]);
        let r = checked(&mut e, 9, down());
        assert_eq!(r.effects, vec![collect(1)]);
        assert_eq!(
            r.notes[0],
            Note::CoordinatorDown {
                name: "node9".into(),
                by: Detection::HealthCheck
            }
        );
    }

    #[test]
    fn every_check_answer_counts_as_alive_or_down() {
        let alive = [leading(9), CheckAnswer::Busy];
        // Itself, but no longer leading: wait for the successor's announcement, then elect.
        let mut e = node(1);
        announce(&mut e, 9, 1);
        let r = checked(&mut e, 9, details(9, false, 1));
        let successor = Timer::Successor {
            coordinator: nref(9),
            term: 1,
        };
        assert_eq!(
            r.effects,
            vec![Effect::StartTimer {
                timer: successor.clone(),
                after: e.settings.successor_wait,
            }]
        );
        assert_eq!(e.coordinator(), Some(&nref(9)));
        let r = e.step(0, Event::Timer(successor));
        assert_eq!(r.effects, vec![collect(1)]);
        assert_eq!(e.coordinator(), None);
        let dead = [
            CheckAnswer::Details {
                name: "node8".into(),
                id: 9,
                is_coordinator: true,
                claiming: false,
                term: 1,
                follows: None,
                preempts: false,
            },
            CheckAnswer::Details {
                name: "node9".into(),
                id: 8,
                is_coordinator: true,
                claiming: false,
                term: 1,
                follows: None,
                preempts: false,
            },
            CheckAnswer::Other { status: 404 },
            CheckAnswer::NotLocated,
            CheckAnswer::Unreachable(Unreachable::Timeout),
            CheckAnswer::Unreachable(Unreachable::Refused),
            CheckAnswer::Unreachable(Unreachable::Closed),
            CheckAnswer::Unreachable(Unreachable::Other),
        ];
        for a in alive {
            let mut e = node(1);
            announce(&mut e, 9, 1);
            let r = checked(&mut e, 9, a.clone());
            assert_eq!(r, Ready::default(), "{a:?}");
            assert_eq!(e.coordinator(), Some(&nref(9)));
        }
        for a in dead {
            let mut e = node(1);
            announce(&mut e, 9, 1);
            let r = checked(&mut e, 9, a.clone());
            assert_eq!(r.effects, vec![collect(1)], "{a:?}");
            assert_eq!(e.coordinator(), None);
        }
    }

    #[test]
    fn proxy_from_higher_or_equal_node_is_refused() {
        let mut e = node(5);
        let (reply, r) = proxy(&mut e, &nref(6), 0);
        assert_eq!((reply, r.effects), (ProxyReply::NotLower, vec![]));
        let me = e.me().clone();
        assert_eq!(proxy(&mut e, &me, 0).0, ProxyReply::NotLower);
        assert_eq!(e.phase(), &Phase::Idle);
    }

    #[test]
    fn equal_ids_are_ordered_by_name() {
        let mut e = Election::new(
            NodeRef::new("b", 7),
            Settings::for_timeout(Duration::from_secs(1)),
            Persisted::default(),
            0,
        );
        let r = elect(&mut e, 0, &[member("a", 7), member("b", 7)]);
        assert!(matches!(&r.effects[..], [Effect::Announce { .. }]));
    }

    #[test]
    fn stale_answers_from_an_abandoned_round_are_ignored() {
        let mut e = node(1);
        elect(&mut e, 0, &cluster(&[1, 2]));
        announce(&mut e, 2, 1);
        let r = answered(&mut e, 1, vec![]);
        assert_eq!(r, Ready::default());
        let r = e.step(0, Event::Timer(Timer::Announcement { round: 1 }));
        assert_eq!(r, Ready::default());
        assert_eq!(e.coordinator(), Some(&nref(2)));
    }

    #[test]
    fn a_delayed_announcement_from_an_old_term_cannot_overwrite_a_newer_coordinator() {
        let mut e = node(1);
        announce(&mut e, 4, 3);
        announce(&mut e, 3, 5);
        let (reply, r) = announce(&mut e, 4, 3);
        assert_eq!(reply, AnnounceReply::Stale { term: 5 });
        assert!(r.effects.is_empty() && r.changes.is_empty());
        assert_eq!(
            r.notes[0].to_string(),
            "Ignoring stale announcement of node4 for term 3; following node3 in term 5"
        );
        assert_eq!(e.coordinator(), Some(&nref(3)));
        assert_eq!(e.term(), 5);
    }

    #[test]
    fn a_second_coordinator_for_the_same_term_is_refused_but_a_repeat_is_fine() {
        let mut e = node(1);
        announce(&mut e, 3, 5);
        let (reply, r) = announce(&mut e, 3, 5);
        assert_eq!(reply, AnnounceReply::Ok { promise_ms: None });
        assert!(r.changes.is_empty() && r.notes.is_empty());
        assert_eq!(announce(&mut e, 4, 5).0, AnnounceReply::Stale { term: 5 });
        assert_eq!(e.coordinator(), Some(&nref(3)));
        // Even with no coordinator (it failed), the term stays taken.
        checked(&mut e, 3, down());
        assert_eq!(announce(&mut e, 4, 5).0, AnnounceReply::Stale { term: 5 });
    }

    #[test]
    fn a_coordinator_wrongly_found_down_is_accepted_again_for_its_term() {
        let mut e = node(1);
        announce(&mut e, 3, 5);
        let r = checked(&mut e, 3, down());
        assert_eq!(r.effects, vec![collect(1)]);
        assert_eq!(
            r.changes,
            vec![Change {
                before: Some(nref(3)),
                after: None,
                term: 5,
                reason: Reason::Failover,
                lock_index: None,
                fence: None,
            }]
        );
        members(&mut e, 1, &cluster(&[1, 2, 3]));
        // node3 answers the election message as coordinator of term 5: that is no second
        // coordinator for the term, so it is followed again and the round ends.
        assert_eq!(
            announce(&mut e, 3, 5).0,
            AnnounceReply::Ok { promise_ms: None }
        );
        assert_eq!(e.coordinator(), Some(&nref(3)));
        assert_eq!(e.phase(), &Phase::Idle);
        assert_eq!(announce(&mut e, 2, 5).0, AnnounceReply::Stale { term: 5 });
    }

    #[test]
    fn members_too_busy_or_slow_for_the_announcement_get_it_again_three_times_at_most() {
        let mut e = leader(4, &cluster(&[1, 2, 3, 4]));
        let term = e.term();
        let mut seq = 1;
        for attempt in 1..=3u64 {
            let answers = vec![
                (
                    member("node3", 3),
                    AnnounceAnswer::Accepted { promise_ms: None },
                ),
                (member("node2", 2), AnnounceAnswer::Busy),
                (
                    member("node1", 1),
                    AnnounceAnswer::Unreachable(Unreachable::Timeout),
                ),
            ];
            let r = e.step(0, Event::AnnounceAnswered { term, seq, answers });
            assert_eq!(
                r.effects,
                vec![Effect::StartTimer {
                    timer: Timer::Reannounce { term },
                    after: Duration::from_millis(200 * attempt),
                }]
            );
            let r = e.step(0, Event::Timer(Timer::Reannounce { term }));
            seq += 1;
            assert_eq!(
                r.effects,
                vec![Effect::Announce {
                    to: vec![member("node2", 2), member("node1", 1)],
                    term,
                    seq,
                }]
            );
        }
        let answers = vec![(member("node2", 2), AnnounceAnswer::Busy)];
        let r = e.step(0, Event::AnnounceAnswered { term, seq, answers });
        assert!(r.effects.is_empty(), "{r:?}");
        // Refused connections are nodes that are gone: nobody to announce to again.
        let mut e = leader(4, &cluster(&[1, 4]));
        let answers = vec![(
            member("node1", 1),
            AnnounceAnswer::Unreachable(Unreachable::Refused),
        )];
        let r = e.step(
            0,
            Event::AnnounceAnswered {
                term: e.term(),
                seq: 1,
                answers,
            },
        );
        assert!(r.effects.is_empty(), "{r:?}");
    }

    #[test]
    fn a_refused_announcement_makes_the_coordinator_elect_above_the_refusing_term() {
        let mut e = leader(4, &cluster(&[1, 2, 4]));
        assert_eq!(e.term(), 1);
        let answers = vec![
            (member("node1", 1), AnnounceAnswer::Stale { term: 7 }),
            (member("node2", 2), AnnounceAnswer::Stale { term: 3 }),
        ];
        let r = e.step(
            0,
            Event::AnnounceAnswered {
                term: 1,
                seq: 1,
                answers,
            },
        );
        assert_eq!(r.effects, vec![collect(2)]);
        assert_eq!(
            r.notes[0].to_string(),
            "node4's announcement was refused by a node in term 7; electing again"
        );
        let r = rewin(&mut e, 2, &cluster(&[1, 4]), 7);
        assert!(
            matches!(
                &r.effects[..],
                [
                    Effect::LeadingAgain { term: 8 },
                    Effect::Announce { term: 8, .. }
                ]
            ),
            "{r:?}"
        );
        // A refusal from an older term than ours, or none at all, changes nothing (a busy
        // member gets the announcement again: see `members_too_busy_or_slow_...`).
        for answers in [
            vec![(member("node1", 1), AnnounceAnswer::Stale { term: 3 })],
            vec![
                (
                    member("node1", 1),
                    AnnounceAnswer::Accepted { promise_ms: None },
                ),
                (member("node3", 3), AnnounceAnswer::Refused { status: 400 }),
                (
                    member("node5", 5),
                    AnnounceAnswer::Unreachable(Unreachable::Refused),
                ),
            ],
        ] {
            let r = e.step(
                0,
                Event::AnnounceAnswered {
                    term: 8,
                    seq: 2,
                    answers,
                },
            );
            assert_eq!(r, Ready::default());
        }
    }

    #[test]
    fn a_lower_coordinator_replacing_a_live_higher_one_is_probed_and_bullied_back() {
        let mut e = node(1);
        announce(&mut e, 4, 1);
        let (reply, r) = announce(&mut e, 3, 2);
        assert_eq!(reply, AnnounceReply::Ok { promise_ms: None });
        let purpose = ProbePurpose::Previous(nref(4));
        assert_eq!(
            r.effects,
            vec![Effect::Probe {
                purpose: purpose.clone(),
                nodes: vec![nref(4)]
            }]
        );
        assert_eq!(e.coordinator(), Some(&nref(3)));
        // Gone: nothing to do.
        let gone = vec![(nref(4), ProbeAnswer::Unreachable(Unreachable::Refused))];
        let r = e.step(
            0,
            Event::Probed {
                purpose: purpose.clone(),
                answers: gone,
            },
        );
        assert_eq!(r, Ready::default());
        // Alive, but it stepped down (or will not preempt) and leads no more: left alone.
        let resting = ProbeAnswer::Node {
            preempts: false,
            leads: false,
        };
        let r = e.step(
            0,
            Event::Probed {
                purpose: purpose.clone(),
                answers: vec![(nref(4), resting)],
            },
        );
        assert_eq!(r, Ready::default());
        // Still leading in its own eyes (it was frozen), even without preempting: elect.
        let stale = ProbeAnswer::Node {
            preempts: false,
            leads: true,
        };
        for answer in [stale, ProbeAnswer::Status(200)] {
            let mut e = node(1);
            announce(&mut e, 4, 1);
            announce(&mut e, 3, 2);
            let r = e.step(
                0,
                Event::Probed {
                    purpose: purpose.clone(),
                    answers: vec![(nref(4), answer)],
                },
            );
            assert_eq!(r.effects, vec![collect(1)]);
        }
        let r = e.step(
            0,
            Event::Probed {
                purpose,
                answers: vec![(nref(4), ProbeAnswer::Status(200))],
            },
        );
        assert_eq!(r.effects, vec![collect(1)]);
        assert_eq!(
            r.notes[0].to_string(),
            "node4 is alive and ranks above node3: electing"
        );
        // A higher coordinator replacing a lower one needs no probe.
        let mut e = node(1);
        announce(&mut e, 3, 1);
        let (reply, r) = announce(&mut e, 4, 2);
        assert_eq!(
            (reply, r.effects),
            (AnnounceReply::Ok { promise_ms: None }, vec![])
        );
    }

    #[test]
    fn health_tick_checks_coordinator_or_elects() {
        let mut e = node(1);
        assert_eq!(e.step(0, Event::HealthTick).effects, vec![collect(1)]);
        let mut e = node(1);
        announce(&mut e, 2, 1);
        assert_eq!(
            e.step(0, Event::HealthTick).effects,
            vec![Effect::CheckCoordinator {
                coordinator: nref(2)
            }]
        );
        assert_eq!(checked(&mut e, 2, down()).effects, vec![collect(1)]);
        assert_eq!(e.coordinator(), None);
        // While the round runs, further ticks do nothing.
        assert_eq!(e.step(0, Event::HealthTick), Ready::default());
    }

    #[test]
    fn beats_from_the_coordinator_stand_in_for_its_health_check() {
        let check = |id| {
            vec![Effect::CheckCoordinator {
                coordinator: nref(id),
            }]
        };
        let beats = |id| Event::BeatsHeard {
            coordinator: nref(id),
        };
        let beating = |id| {
            let settings = Settings {
                beats_stand_in: true,
                ..Settings::for_timeout(Duration::from_secs(1))
            };
            Election::new(nref(id), settings, Persisted::default(), 0)
        };
        // Where beats notice a failure later than checks would, the checks stay.
        let mut e = node(1);
        announce(&mut e, 3, 1);
        e.step(0, beats(3));
        assert_eq!(e.step(0, Event::HealthTick).effects, check(3));
        let mut e = beating(1);
        announce(&mut e, 3, 1);
        // Beats from a node it does not follow change nothing.
        e.step(0, beats(2));
        assert_eq!(e.step(0, Event::HealthTick).effects, check(3));
        e.step(0, beats(3));
        assert_eq!(e.step(0, Event::HealthTick), Ready::default());
        // The stream ended (here: the coordinator stopped leading): ticks check again.
        e.step(
            0,
            Event::WatchEnded {
                coordinator: nref(3),
                end: WatchEnd::Leading,
            },
        );
        assert_eq!(e.step(0, Event::HealthTick).effects, check(3));
        // A new coordinator forgets the old one's beats.
        e.step(0, beats(3));
        announce(&mut e, 4, 2);
        assert_eq!(e.step(0, Event::HealthTick).effects, check(4));
        // A coordinator hears no beats of its own.
        let mut e = leader(3, &cluster(&[1, 3]));
        e.step(0, beats(3));
        assert_eq!(
            e.step(0, Event::HealthTick).effects,
            vec![Effect::CollectMembers {
                purpose: Purpose::LookForHigher,
            }]
        );
    }

    #[test]
    fn a_coordinator_looks_up_and_elects_when_a_higher_member_answers() {
        let mut e = leader(3, &cluster(&[1, 3]));
        let look = Effect::CollectMembers {
            purpose: Purpose::LookForHigher,
        };
        assert_eq!(e.step(0, Event::HealthTick).effects, vec![look]);
        let r = e.step(
            0,
            Event::Members {
                purpose: Purpose::LookForHigher,
                members: cluster(&[1, 3, 4, 5]),
            },
        );
        assert_eq!(
            r.effects,
            vec![Effect::Probe {
                purpose: ProbePurpose::Higher,
                nodes: vec![nref(4), nref(5)]
            }]
        );
        let quiet = vec![
            (nref(4), ProbeAnswer::Unreachable(Unreachable::Timeout)),
            (nref(5), ProbeAnswer::Status(503)),
            // Alive, but it would not take over (--no-preempt, unhealthy, maintenance).
            (
                nref(4),
                ProbeAnswer::Node {
                    preempts: false,
                    leads: false,
                },
            ),
        ];
        let r = e.step(
            0,
            Event::Probed {
                purpose: ProbePurpose::Higher,
                answers: quiet,
            },
        );
        assert_eq!(r, Ready::default());
        let r = e.step(
            0,
            Event::Probed {
                purpose: ProbePurpose::Higher,
                answers: vec![(
                    nref(4),
                    ProbeAnswer::Node {
                        preempts: true,
                        leads: false,
                    },
                )],
            },
        );
        assert_eq!(r.effects, vec![collect(2)]);
        assert_eq!(
            r.notes[0].to_string(),
            "A node above node3 answers: electing"
        );
        let r = members(&mut e, 2, &cluster(&[1, 3, 4]));
        assert!(matches!(&r.effects[..], [Effect::SendElection { to, .. }] if to.len() == 1));
        // With nobody above, no probe at all.
        let mut e = leader(3, &cluster(&[1, 3]));
        let r = e.step(
            0,
            Event::Members {
                purpose: Purpose::LookForHigher,
                members: cluster(&[1, 3]),
            },
        );
        assert_eq!(r, Ready::default());
    }

    #[test]
    fn a_coordinator_follows_a_higher_one_that_announces() {
        let mut e = leader(3, &cluster(&[1, 3]));
        let (_, r) = announce(&mut e, 4, 2);
        assert!(!e.is_coordinator());
        assert_eq!(e.coordinator().map(|c| c.id), Some(4));
        let change = &r.changes[0];
        assert!(change.demoted(&nref(3)) && !change.elected(&nref(3)));
        assert_eq!(change.term, 2);
    }

    #[test]
    fn failure_of_a_node_that_is_not_the_coordinator_changes_nothing() {
        let mut e = node(1);
        announce(&mut e, 3, 1);
        assert_eq!(checked(&mut e, 2, down()), Ready::default());
        let r = e.step(
            0,
            Event::WatchEnded {
                coordinator: nref(2),
                end: WatchEnd::Closed,
            },
        );
        assert_eq!(r, Ready::default());
        assert_eq!(e.coordinator().map(|c| c.id), Some(3));
    }

    #[test]
    fn every_watch_end_is_judged() {
        let watch = |end: WatchEnd| {
            let mut e = node(1);
            announce(&mut e, 3, 1);
            let r = e.step(
                0,
                Event::WatchEnded {
                    coordinator: nref(3),
                    end,
                },
            );
            (e, r)
        };
        for end in [
            WatchEnd::Leading,
            WatchEnd::Busy,
            WatchEnd::Other { status: 500 },
        ] {
            let (e, r) = watch(end.clone());
            assert_eq!(r, Ready::default(), "{end:?}");
            assert_eq!(e.coordinator(), Some(&nref(3)));
        }
        for (end, how) in [
            (WatchEnd::ShuttingDown, "shut down"),
            (WatchEnd::TimedOut, "did not answer its watch in time"),
            (WatchEnd::Closed, "closed its connection"),
        ] {
            let (e, r) = watch(end.clone());
            assert_eq!(r.effects, vec![collect(1)], "{end:?}");
            assert_eq!(
                r.notes[0].to_string(),
                format!("Coordinator node3 {how} (watch)")
            );
            assert_eq!(
                r.notes[1],
                Note::CoordinatorDown {
                    name: "node3".into(),
                    by: Detection::Watch
                }
            );
            assert_eq!(e.coordinator(), None);
        }
        for end in [WatchEnd::Demoted, WatchEnd::NotCoordinator] {
            let (mut e, r) = watch(end.clone());
            let timer = Timer::Successor {
                coordinator: nref(3),
                term: 1,
            };
            assert_eq!(
                r.effects,
                vec![Effect::StartTimer {
                    timer: timer.clone(),
                    after: Duration::from_secs(1)
                }],
                "{end:?}"
            );
            // The successor came in time: the timer does nothing.
            let mut f = e.clone();
            announce(&mut f, 2, 2);
            assert_eq!(f.step(0, Event::Timer(timer.clone())), Ready::default());
            // It did not: elect.
            let r = e.step(0, Event::Timer(timer));
            assert_eq!(r.effects, vec![collect(1)]);
            assert_eq!(
                r.notes[0].to_string(),
                "Coordinator node3 stopped leading (watch)"
            );
        }
    }

    #[test]
    fn a_flood_of_responses_to_the_coordinator_starts_no_election() {
        // Each /response used to start a round on the coordinator: a storm of elections.
        let ms = cluster(&[1, 2, 4]);
        let mut e = leader(4, &ms);
        let response = |e: &mut Election, from: u64, term: u64| {
            e.step(
                0,
                Event::Response {
                    from: nref(from),
                    term,
                },
            )
            .effects
        };
        for i in 0..100 {
            assert_eq!(response(&mut e, 1 + i % 2, 0), vec![]);
        }
        assert!(e.is_coordinator());
        assert_eq!(e.term(), 1);
        // At its own term the sender may follow another coordinator: one round, however many
        // arrive, and the win's newer term settles the rest.
        assert_eq!(response(&mut e, 1, 1), vec![collect(2)]);
        assert_eq!(response(&mut e, 2, 1), vec![]);
        rewin(&mut e, 2, &ms, 1);
        assert_eq!(e.term(), 2);
        for i in 0..100 {
            assert_eq!(response(&mut e, 1 + i % 2, 1), vec![]);
        }
    }

    #[test]
    fn huge_terms_are_capped_and_a_win_never_overflows() {
        // A term of u64::MAX in an election message made the next win overflow (a panic in
        // a debug build, term 0 in a release build).
        let mut e = node(4);
        let (_, r) = proxy(&mut e, &nref(1), u64::MAX);
        assert_eq!(r.effects, vec![collect(1)]);
        let r = members(&mut e, 1, &cluster(&[1, 4]));
        assert_eq!(
            r.effects,
            vec![Effect::Announce {
                to: cluster(&[1]),
                term: MAX_TERM + 1,
                seq: 1
            }]
        );
        // Refusals naming huge terms are capped too.
        let answers = vec![(member("node1", 1), AnnounceAnswer::Stale { term: u64::MAX })];
        let r = e.step(
            0,
            Event::AnnounceAnswered {
                term: 1,
                seq: 1,
                answers,
            },
        );
        assert_eq!(r, Ready::default());
        // Announcements above the cap are refused and change nothing.
        let mut f = node(1);
        announce(&mut f, 3, 2);
        let (reply, r) = announce(&mut f, 4, MAX_TERM + 1);
        assert_eq!(reply, AnnounceReply::Stale { term: 2 });
        assert!(r.effects.is_empty() && r.changes.is_empty());
        assert_eq!(f.coordinator(), Some(&nref(3)));
        assert_eq!(
            announce(&mut f, 4, MAX_TERM).0,
            AnnounceReply::Ok { promise_ms: None }
        );
    }

    #[test]
    fn a_node_that_already_follows_a_higher_coordinator_runs_no_startup_election() {
        // Announced to before its startup delay ran out: nothing to elect for.
        let mut e = node(2);
        announce(&mut e, 3, 1);
        assert_eq!(e.step(0, Event::Startup), Ready::default());
        assert_eq!((e.coordinator(), e.term()), (Some(&nref(3)), 1));
        // Announced to while it asked the terms: the answers start no round either.
        let mut e = node(2);
        e.step(0, Event::Startup);
        e.step(
            0,
            Event::Members {
                purpose: Purpose::LearnTerms,
                members: cluster(&[1, 2, 3]),
            },
        );
        announce(&mut e, 3, 1);
        let answers = vec![(member("node3", 3), details(3, true, 1))];
        let r = e.step(0, Event::TermsAnswered { answers });
        assert!(r.effects.is_empty() && r.rounds.is_empty(), "{r:?}");
        // A node that leads already (a lower node's election made it elect) does not either.
        let ms = cluster(&[1, 2]);
        let mut e = leader(2, &ms);
        assert_eq!(e.step(0, Event::Startup), Ready::default());
        // One that follows a lower coordinator (taken while it could not register) elects,
        // to take over.
        let mut e = node(2);
        e.step(0, Event::Registered { ok: false });
        announce(&mut e, 1, 1);
        e.step(0, Event::Registered { ok: true });
        assert_eq!(e.coordinator(), Some(&nref(1)));
        assert_eq!(
            e.step(0, Event::Startup).effects,
            vec![Effect::CollectMembers {
                purpose: Purpose::LearnTerms
            }]
        );
    }

    #[test]
    fn startup_learns_the_cluster_term_so_the_first_win_is_newer() {
        // A restarted node knows no term; without asking it would win term 1 again.
        let mut e = node(3);
        let r = e.step(0, Event::Startup);
        assert_eq!(
            r.effects,
            vec![Effect::CollectMembers {
                purpose: Purpose::LearnTerms
            }]
        );
        let r = e.step(
            0,
            Event::Members {
                purpose: Purpose::LearnTerms,
                members: cluster(&[1, 3]),
            },
        );
        assert_eq!(
            r.effects,
            vec![Effect::AskTerms {
                members: cluster(&[1])
            }]
        );
        // Only answers from the member asked count: node9 answering for node1 does not.
        let answers = vec![
            (member("node1", 1), details(1, false, 7)),
            (member("node1", 1), details(9, false, 50)),
            (member("node1", 1), CheckAnswer::Busy),
        ];
        let r = e.step(0, Event::TermsAnswered { answers });
        assert_eq!(
            r.notes[0].to_string(),
            "The newest term the members know is 7"
        );
        assert_eq!(r.effects, vec![collect(1)]);
        assert_eq!(e.term(), 0, "learning is not following");
        let r = members(&mut e, 1, &cluster(&[1, 3]));
        assert!(
            matches!(&r.effects[..], [Effect::Announce { term: 8, .. }]),
            "{r:?}"
        );
        // Alone, or when nobody answers, it elects at once.
        let mut e = node(3);
        e.step(0, Event::Startup);
        let r = e.step(
            0,
            Event::Members {
                purpose: Purpose::LearnTerms,
                members: cluster(&[3]),
            },
        );
        assert_eq!(r.effects, vec![collect(1)]);
        let mut e = node(3);
        let answers = vec![(
            member("node1", 1),
            CheckAnswer::Unreachable(Unreachable::Refused),
        )];
        let r = e.step(0, Event::TermsAnswered { answers });
        assert!(r
            .notes
            .iter()
            .all(|n| !matches!(n, Note::TermsLearned { .. })));
        assert_eq!(r.effects, vec![collect(1)]);
    }

    #[test]
    fn terms_grow_with_every_win() {
        let ms = cluster(&[1, 2]);
        let mut e = leader(2, &ms);
        for expected in 2..5 {
            let answers = vec![(member("node1", 1), AnnounceAnswer::Stale { term: e.term() })];
            e.step(
                0,
                Event::AnnounceAnswered {
                    term: e.term(),
                    seq: expected - 1,
                    answers,
                },
            );
            assert!(e.snapshot(0).election);
            let r = rewin(&mut e, expected, &ms, 0);
            // The first win announces; later ones, by a node leading already, also say so.
            let announced = r.effects.iter().find_map(|x| match x {
                Effect::Announce { term, .. } => Some(*term),
                _ => None,
            });
            assert_eq!(announced, Some(expected), "{r:?}");
        }
    }

    #[test]
    fn a_node_that_cannot_register_starts_no_round_and_lower_nodes_do_not_wait_for_it() {
        let ms = cluster(&[1, 2, 3]);
        let mut e = node(2);
        let r = e.step(0, Event::Registered { ok: false });
        assert_eq!(r.notes, vec![Note::Registered { ok: false }]);
        assert!(r.notes[0].is_warning());
        // No coordinator, yet the health tick and election messages start nothing.
        assert_eq!(e.step(0, Event::HealthTick), Ready::default());
        let (reply, r) = proxy(&mut e, &nref(1), 0);
        assert_eq!(
            reply,
            ProxyReply::NotLower,
            "the lower node must not wait for us"
        );
        assert!(r.effects.is_empty() && r.rounds.is_empty(), "{r:?}");
        let (reply, r) = announce(&mut e, 1, 5);
        assert_eq!(reply, AnnounceReply::Ok { promise_ms: None });
        assert!(
            r.rounds.is_empty(),
            "a lower announcement is not bullied back: {r:?}"
        );
        // It still follows a higher coordinator.
        announce(&mut e, 3, 6);
        assert_eq!(e.coordinator(), Some(&nref(3)));
        assert_eq!(e.step(0, Event::Registered { ok: false }), Ready::default());
        // Registered again while it follows: nothing to do; the health check goes on.
        let r = e.step(0, Event::Registered { ok: true });
        assert_eq!(r.notes, vec![Note::Registered { ok: true }]);
        assert!(r.effects.is_empty(), "{r:?}");

        // A round under way ends; registered again without a coordinator, it elects.
        let mut e = node(2);
        elect(&mut e, 0, &ms);
        let r = e.step(0, Event::Registered { ok: false });
        assert_eq!(
            r.rounds,
            vec![RoundEdge::Ended {
                round: 1,
                won: false
            }]
        );
        assert_eq!(e.phase(), &Phase::Idle);
        assert_eq!(
            members(&mut e, 1, &ms),
            Ready::default(),
            "the old round is over"
        );
        let r = e.step(0, Event::Registered { ok: true });
        assert_eq!(r.effects, vec![collect(2)]);
    }

    #[test]
    fn a_rejoining_coordinator_elects_again_a_follower_does_not() {
        let mut e = node(3);
        assert_eq!(
            e.step(0, Event::Rejoined),
            Ready::default(),
            "before any election"
        );
        elect(&mut e, 0, &cluster(&[3]));
        assert!(e.is_coordinator());
        assert_eq!(e.step(0, Event::Rejoined).effects, vec![collect(2)]);
        // Now it sees node4, which takes over as the algorithm requires.
        let r = members(&mut e, 2, &cluster(&[1, 3, 4]));
        assert!(matches!(&r.effects[..], [Effect::SendElection { to, .. }] if to.len() == 1));
        let mut f = node(1);
        announce(&mut f, 4, 1);
        assert_eq!(f.step(0, Event::Rejoined), Ready::default());
    }

    #[test]
    fn survivors_of_a_crash_elect_in_rank_order_and_the_lower_ones_mostly_never_need_to() {
        let ms = cluster(&[1, 2, 7, 8, 9]);
        let follower = |id| {
            let mut e = node(id);
            e.step(
                0,
                Event::Members {
                    purpose: Purpose::LookForHigher,
                    members: ms.clone(),
                },
            );
            announce(&mut e, 9, 1);
            e
        };
        let closed = |e: &mut Election| {
            e.step(
                0,
                Event::WatchEnded {
                    coordinator: nref(9),
                    end: WatchEnd::Closed,
                },
            )
        };
        // node8, the highest survivor, elects at once and asks nobody (node9 is suspect).
        let mut n8 = follower(8);
        let r = closed(&mut n8);
        assert!(r.effects.contains(&collect(1)), "{r:?}");
        let r = members(&mut n8, 1, &ms);
        assert!(matches!(&r.effects[..], [Effect::Announce { .. }]), "{r:?}");
        // node7 waits one step, node1 four; neither elects when the announcement comes first.
        let mut n7 = follower(7);
        let r = closed(&mut n7);
        assert_eq!(
            r.effects,
            vec![Effect::StartTimer {
                timer: Timer::Ranked,
                after: Duration::from_millis(2)
            }]
        );
        let mut n1 = follower(1);
        let r = closed(&mut n1);
        assert!(r.effects.contains(&Effect::StartTimer {
            timer: Timer::Ranked,
            after: Duration::from_millis(6)
        }));
        announce(&mut n1, 8, 2);
        assert_eq!(n1.step(0, Event::Timer(Timer::Ranked)), Ready::default());
        // If it does not come, node7 elects when its turn comes: one message, to node8.
        let r = n7.step(0, Event::Timer(Timer::Ranked));
        assert!(r.effects.contains(&collect(1)));
        let r = members(&mut n7, 1, &ms);
        assert!(
            matches!(&r.effects[..], [Effect::SendElection { to, .. }] if to == &cluster(&[8])),
            "{r:?}"
        );
    }

    #[test]
    fn a_restarted_node_follows_the_cluster_term_below_its_floor_and_wins_above_it() {
        // Plain mode promises nothing: a floor of reserved terms must not make the current
        // coordinator look stale (a --no-preempt node elected itself; one in maintenance
        // followed nobody).
        let settings = Settings {
            no_preempt: true,
            ..Settings::for_timeout(Duration::from_secs(1))
        };
        let floor = Persisted {
            floor: 66,
            maintenance: false,
        };
        let mut e = Election::new(nref(5), settings, floor.clone(), 0);
        let follows_4 = CheckAnswer::Details {
            name: "node3".into(),
            id: 3,
            is_coordinator: false,
            claiming: false,
            term: 2,
            follows: Some(nref(4)),
            preempts: true,
        };
        let r = e.step(
            0,
            Event::TermsAnswered {
                answers: vec![(member("node3", 3), follows_4)],
            },
        );
        assert_eq!((e.coordinator(), e.term()), (Some(&nref(4)), 2), "{r:?}");
        assert!(r.rounds.is_empty(), "no election: {r:?}");
        // Its own wins still start above every term it may have used before.
        let mut e = Election::new(
            nref(5),
            Settings::for_timeout(Duration::from_secs(1)),
            floor,
            0,
        );
        elect(&mut e, 0, &cluster(&[4, 5]));
        assert!(e.is_coordinator());
        assert_eq!(e.term(), 67);
    }

    #[test]
    fn a_starting_node_follows_a_higher_member_that_answers_it_leads_instead_of_electing() {
        // Found by tests/demo.rs on a loaded machine: node4 won term 1 while node2 asked for
        // terms; node2 learned term 1 from node4's answer before node4's announcement reached
        // it, elected, and its election message (term 1) made node4 take term 2.
        let mut e = node(2);
        e.step(0, Event::Startup);
        let leads = CheckAnswer::Details {
            name: "node4".into(),
            id: 4,
            is_coordinator: true,
            claiming: false,
            term: 1,
            follows: Some(nref(4)),
            preempts: true,
        };
        let r = e.step(
            0,
            Event::TermsAnswered {
                answers: vec![(member("node4", 4), leads)],
            },
        );
        assert_eq!((e.coordinator(), e.term()), (Some(&nref(4)), 1), "{r:?}");
        assert!(r.rounds.is_empty(), "no election: {r:?}");
        // node4's announcement, arriving afterwards, is the same term's, not a stale one.
        assert!(matches!(announce(&mut e, 4, 1).0, AnnounceReply::Ok { .. }));
        // A lower member that leads is still bullied: node2 elects above node1.
        let mut e = node(2);
        e.step(0, Event::Startup);
        let lower = CheckAnswer::Details {
            name: "node1".into(),
            id: 1,
            is_coordinator: true,
            claiming: false,
            term: 1,
            follows: Some(nref(1)),
            preempts: true,
        };
        let r = e.step(
            0,
            Event::TermsAnswered {
                answers: vec![(member("node1", 1), lower)],
            },
        );
        assert_eq!(r.rounds.len(), 1, "{r:?}");
    }

    #[test]
    fn a_suspect_is_skipped_for_one_round_only() {
        // Found by tests/partitions.rs: after a healed partition node2 kept skipping node5
        // (which it had seen fail) and kept waiting on node3, which followed node5.
        let ms = cluster(&[1, 2, 3, 5]);
        let mut e = node(2);
        e.step(
            0,
            Event::Members {
                purpose: Purpose::LookForHigher,
                members: ms.clone(),
            },
        );
        announce(&mut e, 5, 1);
        e.step(
            0,
            Event::WatchEnded {
                coordinator: nref(5),
                end: WatchEnd::TimedOut,
            },
        );
        e.step(0, Event::Timer(Timer::Ranked));
        let r = members(&mut e, 1, &ms);
        assert!(
            matches!(&r.effects[..], [Effect::SendElection { to, .. }] if to == &cluster(&[3])),
            "{r:?}"
        );
        answered(&mut e, 1, vec![(member("node3", 3), ok())]);
        // node3 never announces (it follows node5, which lives): the next round asks node5.
        let r = e.step(0, Event::Timer(Timer::Announcement { round: 1 }));
        assert!(r.effects.contains(&collect(2)));
        let r = members(&mut e, 2, &ms);
        assert!(
            matches!(&r.effects[..], [Effect::SendElection { to, .. }] if to == &cluster(&[5])),
            "{r:?}"
        );
    }
}

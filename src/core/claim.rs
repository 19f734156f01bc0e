//! Quorum mode, the coordinator's and the follower's side: claiming a term, counting the
//! acknowledgements that make a lease, renewing it, stepping down when it runs out, handing
//! over to a higher node once the hooks let go, and the promises followers give and release.
//! All of it is part of [`Election`]; this file keeps it apart from plain Bully.

use super::election::{Election, Phase};
use super::event::{AnnounceAnswer, CheckAnswer, Purpose, Timer, Unreachable};
use super::lease::QuorumView;
use super::member::{others_highest_first, Member, NodeRef};
use super::quorum::Millis;
use super::quorum_lease::Refusal;
use super::ready::{AnnounceReply, Detection, Effect, Note, Reason};

/// How soon a node claiming a term asks again the members that were still promised to
/// another coordinator: their promise is usually released (its coordinator died or handed
/// over) within milliseconds.
const CLAIM_RETRY_MS: Millis = 25;
/// Renewals between two readings of the member list while a claim lacks a majority (every
/// half lease).
const REFRESH_EVERY_RENEWALS: Millis = 4;

impl Election {
    /// Whether this node may act as coordinator at `now`: always in plain Bully; in quorum
    /// mode while a majority's promises hold, less the time its `--exec` child gets to stop.
    pub(super) fn acting(&self, now: Millis) -> bool {
        let Some(q) = &self.settings.quorum else {
            return true;
        };
        self.lease.acts(now, q.stop_margin)
    }

    pub(super) fn quorum_view(&self, now: Millis) -> Option<QuorumView> {
        let q = self.settings.quorum.as_ref()?;
        Some(self.lease.view(now, q, self.phase == Phase::AwaitingLock))
    }

    /// Nobody above answered: claim a new term, unless this node is still promised to
    /// another coordinator (or has just started), in which case it waits that out first.
    pub(super) fn claim(&mut self) {
        let Some(q) = self.settings.quorum.clone() else {
            return;
        };
        let now = self.now;
        if let Some(p) = self.lease.binding(&self.me, now).cloned() {
            self.phase = Phase::AwaitingPromise;
            let ms = p.until - now;
            self.note(Note::WaitingForPromise {
                to: p.to.map(|n| n.name),
                ms,
            });
            self.timer(
                Timer::PromiseFree {
                    round: self.rounds.number(),
                },
                ms + 1,
            );
            return;
        }
        self.phase = Phase::Claiming;
        self.rounds.set_verifying(false);
        self.take_term();
        self.lease.claim(self.terms.current(), now);
        self.note(Note::Claiming {
            term: self.terms.current(),
            needed: q.majority(),
            size: q.size,
        });
        self.announce_lead();
        self.timer(
            Timer::Renew {
                term: self.terms.current(),
            },
            q.renew_every(),
        );
        self.update_lease();
    }

    /// Announces the term claimed or held to every other member.
    fn announce_lead(&mut self) {
        let now = self.now;
        let to = others_highest_first(self.rounds.known(), &self.me);
        let late = self.rounds.late_askers(&to);
        let seq = self.announcements.next_seq();
        let Some(term) = self.lease.sent(seq, now, to.len() + late.len()) else {
            return;
        };
        if !late.is_empty() {
            self.effect(Effect::AnnounceTo {
                nodes: late,
                term,
                seq,
            });
        }
        if to.is_empty() {
            // Nobody else: a cluster of one, or no member known yet (none answered the
            // registry). No answer will come to say there is no quorum, so say it now.
            self.update_lease();
            if !self.acting(now) {
                self.warn_no_quorum(term);
            }
            return;
        }
        self.effect(Effect::Announce { to, term, seq });
    }

    /// Logs once per term that a claim has no majority (the `no-quorum` state).
    fn warn_no_quorum(&mut self, term: u64) {
        let Some(acks) = self.lease.warn(term, self.now) else {
            return;
        };
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

    /// A claim without a majority reads the member list again every half lease. The round's
    /// list holds only the members that answered the registry then (a static peer list or
    /// Consul lists those it reaches), and the list is read again only by a new round, which
    /// a claim never ends by itself: without this a node cut off while claiming announces to
    /// nobody for good, even once its links are back, while the others elect in its term and
    /// its "electing" answers to their messages go nowhere (a hang found in
    /// `tests/partitions.rs` with a pulled cable), and members that registered after the
    /// round read the list (they started at the same time) would never be asked.
    fn refresh_members_while_claiming(&mut self) {
        let Some(q) = self.settings.quorum.as_ref() else {
            return;
        };
        let every = q.renew_every() * REFRESH_EVERY_RENEWALS;
        let now = self.now;
        if self.acting(now) || self.is_coordinator() {
            return;
        }
        if !self.lease.members_due(now, every) {
            return;
        }
        self.effect(Effect::CollectMembers {
            purpose: Purpose::Refresh,
        });
    }

    /// Counts the acknowledgements in answers (some or all) to announcement `seq` of `term`.
    /// Answers come back one by one, so a frozen or cut-off member never delays the others'.
    pub(super) fn count_acks(&mut self, term: u64, seq: u64, answers: &[(Member, AnnounceAnswer)]) {
        let now = self.now;
        let Some(counted) = self.lease.count(term, seq, answers) else {
            return;
        };
        self.update_lease();
        if self.acting(now) || self.phase != Phase::Claiming {
            return;
        }
        if !self.lease.has_lead() {
            return;
        }
        if counted.promised {
            if self.lease.arm_retry() {
                self.timer(Timer::ClaimRetry { term }, CLAIM_RETRY_MS);
            }
        } else if counted.all_in {
            self.warn_no_quorum(term);
        }
    }

    /// Extends the lease from the acknowledgements held, tells the shell how long the
    /// `--exec` child may run, and starts acting once a majority holds.
    pub(super) fn update_lease(&mut self) {
        let Some(q) = self.settings.quorum.clone() else {
            return;
        };
        let now = self.now;
        if !self.lease.has_lead() {
            return;
        }
        if let Some((term, until)) = self.lease.extend(now, &q) {
            self.effect(Effect::Fence { until });
            let check = until.saturating_sub(q.stop_margin).saturating_sub(now);
            self.timer(Timer::LeaseCheck { term }, check);
        }
        if !self.acting(now) || self.awaits_lock() {
            return;
        }
        if self.phase == Phase::Claiming {
            self.end_round(true);
        }
        if self.coordinator.as_ref() != Some(&self.me) {
            let me = self.me.clone();
            let reason = self.rounds.win_reason();
            self.set_coordinator(Some(me), reason);
            self.note(Note::CoordinatorIs {
                name: self.me.name.clone(),
                term: self.terms.current(),
            });
        }
    }

    pub(super) fn on_renew(&mut self, term: u64) {
        let Some(q) = self.settings.quorum.clone() else {
            return;
        };
        if !self.lease.leads_term(term) {
            return;
        }
        self.on_lease_check(term);
        if self.lease.leads_term(term) {
            self.refresh_members_while_claiming();
            self.announce_lead();
            self.timer(Timer::Renew { term }, q.renew_every());
        }
    }

    pub(super) fn on_claim_retry(&mut self, term: u64) {
        if !self.lease.retry_fired(term) {
            return;
        }
        if self.phase == Phase::Claiming && !self.acting(self.now) {
            self.announce_lead();
        }
    }

    /// The lease is running out without a majority's renewal: stop acting (the shell's
    /// supervisor kills the `--exec` child when the lease ends, whatever happens to this
    /// process), then stand again with a new term.
    pub(super) fn on_lease_check(&mut self, term: u64) {
        let Some(q) = &self.settings.quorum else {
            return;
        };
        let leading = self.coordinator.as_ref() == Some(&self.me);
        if !leading || !self.lease.lapsed(term, self.now, q.stop_margin) {
            return;
        }
        self.note(Note::LeaseLost { term });
        self.lease.end_lead();
        self.standing.stop_resigning();
        self.set_coordinator(None, Reason::LostQuorum);
        if self.phase != Phase::Idle {
            self.phase = Phase::Idle;
        }
        self.request_election();
    }

    /// Quorum mode's reasons to refuse an announcement this node would otherwise accept:
    /// it holds a lease itself (and hands over if the announcer ranks higher), or it is
    /// promised to another coordinator.
    pub(super) fn quorum_refusal(&mut self, coordinator: &NodeRef) -> Option<AnnounceReply> {
        let q = self.settings.quorum.as_ref()?;
        let refusal = self
            .lease
            .refusal(coordinator, &self.me, self.now, q.stop_margin)?;
        let (to, remaining_ms) = match refusal {
            Refusal::Leads {
                remaining_ms,
                hand_over,
            } => {
                if hand_over {
                    self.hand_over(coordinator);
                }
                (Some(self.me.name.clone()), remaining_ms)
            }
            Refusal::Promised { to, remaining_ms } => (to.map(|n| n.name), remaining_ms),
        };
        Some(AnnounceReply::Promised {
            to,
            remaining_ms,
            term: self.terms.current(),
        })
    }

    /// A higher node claims leadership: keep renewing (so no follower acknowledges anyone
    /// while the `--exec` child stops) and release the followers once the hooks let go.
    fn hand_over(&mut self, to: &NodeRef) {
        self.note(Note::HandingOver {
            to: to.name.clone(),
        });
        let lease = self.settings.quorum.as_ref().map_or(0, |q| q.lease);
        let wait = self.settings.announce_wait.as_millis() as u64;
        self.rounds.hand_to(to, self.now + lease + wait);
        self.resign(Reason::Preempted, None);
    }

    /// Accepting `coordinator` for `term`: recorded on disk, and in quorum mode promised for
    /// one lease. Returns the promise given.
    pub(super) fn promise_to(&mut self, coordinator: &NodeRef, term: u64) -> Option<u64> {
        self.use_term(term);
        let lease = self.settings.quorum.as_ref()?.lease;
        let runs = self.lease.promise_to(coordinator, self.now, lease);
        self.timer(
            Timer::PromiseExpiry {
                coordinator: coordinator.clone(),
            },
            runs,
        );
        Some(lease)
    }

    /// No renewal came within the lease: the coordinator is gone, frozen or cut off.
    pub(super) fn on_promise_expiry(&mut self, coordinator: &NodeRef) {
        if !self.lease.promise_expired(coordinator, self.now) {
            return;
        }
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
            self.lease.release_promise(coordinator);
            self.lose_coordinator(coordinator, "closed its connection");
        }
        // Anything else (it answers, or does not in time): the lease decides.
    }

    /// `POST /release`: the coordinator stopped acting; whoever promised it is free, and a
    /// node claiming a term asks again at once.
    pub(super) fn on_release(&mut self, from: &NodeRef, term: u64) {
        if self.lease.promised_to(from) && term >= self.terms.current() {
            self.lease.release_promise(from);
            self.note(Note::ReleasedBy {
                name: from.name.clone(),
            });
        }
        if self.coordinator.as_ref() == Some(from) && term >= self.terms.current() {
            self.set_coordinator(None, Reason::StepDown);
            self.request_election();
        }
        if self.phase == Phase::Claiming && !self.acting(self.now) {
            self.announce_lead();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::election::{Election, Phase, Settings};
    use super::super::event::{AnnounceAnswer, CheckAnswer, Event, Purpose, Timer, WatchEnd};
    use super::super::fixtures::{cluster, elect, member, nref};
    use super::super::lease::QuorumState;
    use super::super::member::NodeRef;
    use super::super::quorum::Quorum;
    use super::super::ready::{
        AnnounceReply, Detection, Effect, Note, Persisted, Ready, Reply, RoundEdge,
    };
    use super::*;
    use std::time::Duration;

    const LEASE: u64 = 2000;

    fn settings(size: usize, hooks: bool) -> Settings {
        Settings {
            quorum: Some(Quorum::new(
                size,
                Duration::from_millis(LEASE),
                Duration::from_secs(10),
            )),
            has_hooks: hooks,
            ..Settings::for_timeout(Duration::from_secs(1))
        }
    }

    /// A node of a quorum-mode cluster of `size`, started at time 0 (so it keeps quiet until
    /// one lease has passed).
    fn node(id: u64, size: usize) -> Election {
        Election::new(nref(id), settings(size, false), Persisted::default(), 0)
    }

    fn announced(r: &Ready) -> Option<(u64, u64)> {
        r.effects.iter().find_map(|e| match e {
            Effect::Announce { term, seq, .. } => Some((*term, *seq)),
            _ => None,
        })
    }

    fn ack(e: &mut Election, now: u64, term: u64, seq: u64, from: &[u64]) -> Ready {
        let answers = from
            .iter()
            .map(|&i| {
                (
                    member(i),
                    AnnounceAnswer::Accepted {
                        promise_ms: Some(LEASE),
                    },
                )
            })
            .collect();
        e.step(now, Event::AnnounceAnswered { term, seq, answers })
    }

    fn announce(e: &mut Election, now: u64, from: u64, term: u64) -> AnnounceReply {
        let r = e.step(
            now,
            Event::Announce {
                from: nref(from),
                term,
            },
        );
        match r.reply {
            Some(Reply::Announce(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    /// node3 of {1,2,3} leading term 1 with node2's acknowledgement, sent at 3000.
    fn leader() -> Election {
        let mut e = node(3, 3);
        let r = elect(&mut e, 3000, &cluster(&[1, 2, 3]));
        let (term, seq) = announced(&r).unwrap();
        ack(&mut e, 3001, term, seq, &[2]);
        assert!(e.is_coordinator());
        e
    }

    #[test]
    fn a_restarted_node_stands_only_after_one_lease() {
        let mut e = node(3, 3);
        let r = elect(&mut e, 100, &cluster(&[1, 2, 3]));
        assert_eq!(e.phase(), &Phase::AwaitingPromise);
        assert!(announced(&r).is_none(), "{r:?}");
        assert!(r.effects.contains(&Effect::StartTimer {
            timer: Timer::PromiseFree { round: 1 },
            after: Duration::from_millis(1901)
        }));
        assert!(matches!(
            &r.notes[1],
            Note::WaitingForPromise { to: None, ms: 1900 }
        ));
        // It acknowledges nobody meanwhile either.
        let mut f = node(1, 3);
        assert!(matches!(
            announce(&mut f, 10, 3, 1),
            AnnounceReply::Promised { to: None, .. }
        ));
        // Once the lease has passed it claims.
        let r = e.step(2001, Event::Timer(Timer::PromiseFree { round: 1 }));
        assert_eq!(announced(&r), Some((1, 1)));
        assert_eq!(e.phase(), &Phase::Claiming);
    }

    #[test]
    fn a_claim_is_persisted_announced_and_leads_only_with_a_majority() {
        let mut e = node(3, 5);
        let r = elect(&mut e, 3000, &cluster(&[1, 2, 3, 4, 5]));
        // node4 and node5 did not answer (the election message went to them and failed): the
        // test skips that part and starts the round as the highest of three it reads.
        let _ = r;
        let mut e = node(5, 5);
        let r = elect(&mut e, 3000, &cluster(&[1, 2, 3, 4, 5]));
        assert_eq!(
            r.persist,
            Some(Persisted {
                floor: 1,
                maintenance: false
            }),
            "on disk before the announcement goes out"
        );
        assert_eq!(
            r.notes.last().unwrap().to_string(),
            "Claiming term 1: 3 of 5 acknowledgements needed"
        );
        let (term, seq) = announced(&r).unwrap();
        assert!(r.effects.contains(&Effect::StartTimer {
            timer: Timer::Renew { term: 1 },
            after: Duration::from_millis(250)
        }));
        assert!(!e.is_coordinator() && e.coordinator().is_none());
        assert!(e.snapshot(3000).election);
        // One acknowledgement: 2 of 5, no lease.
        let r = ack(&mut e, 3005, term, seq, &[4]);
        assert!(r.changes.is_empty());
        assert!(!e.is_coordinator());
        // A second: a majority. The lease runs from the send time, shortened by the drift.
        let r = ack(&mut e, 3006, term, seq, &[3]);
        assert!(e.is_coordinator());
        assert_eq!(r.changes.len(), 1);
        assert_eq!(
            r.rounds,
            vec![RoundEdge::Ended {
                round: 1,
                won: true
            }]
        );
        assert!(r.effects.contains(&Effect::Fence { until: 3000 + 1960 }));
        let view = e.snapshot(3006).quorum.unwrap();
        assert_eq!(view.state, QuorumState::Leading);
        assert_eq!((view.acks, view.needed, view.size), (3, 3, 5));
        assert_eq!(view.lease_ms_left, Some(1954));
    }

    #[test]
    fn a_minority_never_leads_and_says_so() {
        let mut e = node(2, 5);
        let r = elect(&mut e, 3000, &cluster(&[1, 2]));
        let (term, seq) = announced(&r).unwrap();
        let r = ack(&mut e, 3001, term, seq, &[1]);
        assert!(!e.is_coordinator());
        assert_eq!(
            r.notes[0].to_string(),
            "No quorum for term 1: 2 of 5 acknowledged, 3 needed; not leading"
        );
        assert_eq!(
            e.snapshot(3001).quorum.unwrap().state,
            QuorumState::NoQuorum
        );
        // It keeps asking at every renewal, without taking new terms.
        let r = e.step(3250, Event::Timer(Timer::Renew { term: 1 }));
        assert_eq!(announced(&r).map(|a| a.0), Some(1));
        assert!(r.notes.is_empty(), "said once: {r:?}");
    }

    /// Found by `make bench-quorum`: node5, frozen past its lease and woken, first heard
    /// node4's announcement, before its late lease check: it re-won as a coordinator that had
    /// never stopped, so no change of coordinator ran its `--exec` child again (the supervisor
    /// had killed it when the lease ended). A lapsed lease now ends before any event.
    #[test]
    fn a_lease_that_ran_out_while_frozen_ends_before_the_first_event_after_it() {
        let all = cluster(&[1, 2, 3, 4, 5]);
        let mut e = node(5, 5);
        let r = elect(&mut e, 3000, &all);
        let (term, seq) = announced(&r).unwrap();
        ack(&mut e, 3001, term, seq, &[3, 4]);
        assert!(e.is_coordinator());
        let r = e.step(
            9000,
            Event::Announce {
                from: NodeRef::new("node4", 4),
                term: 2,
            },
        );
        assert!(
            r.changes
                .iter()
                .any(|c| c.after.is_none() && c.reason == Reason::LostQuorum),
            "{r:?}"
        );
        assert!(r.notes.contains(&Note::LeaseLost { term: 1 }), "{r:?}");
        assert!(!e.is_coordinator());
    }

    /// The trace of `tests/partitions.rs` with node5's cable pulled: node5 led term 1, lost
    /// its lease, and claimed term 2 in a round whose registry listed only itself. Before the
    /// fix its claim announced to nobody for good: plugged back, it ignored node4's term-2
    /// announcements as stale and node4's election messages (its "electing" went nowhere while
    /// it claimed), and node4 re-elected every renewal, for as long as the test waited.
    #[test]
    fn a_claim_made_while_cut_off_reads_the_members_again_and_reaches_them_once_back() {
        let all = cluster(&[1, 2, 3, 4, 5]);
        let mut e = node(5, 5);
        let r = elect(&mut e, 3000, &all);
        let (term, seq) = announced(&r).unwrap();
        ack(&mut e, 3001, term, seq, &[3, 4]);
        assert!(e.is_coordinator());
        // The cable is pulled: no renewal is answered; it steps down and stands again.
        let r = e.step(4461, Event::Timer(Timer::LeaseCheck { term: 1 }));
        assert!(r.effects.contains(&Effect::CollectMembers {
            purpose: Purpose::Round(2)
        }));
        // The registry reaches none of the others: it claims term 2 with nobody to tell, and
        // says that is no quorum.
        let r = e.step(
            4462,
            Event::Members {
                purpose: Purpose::Round(2),
                members: cluster(&[5]),
            },
        );
        assert_eq!(e.term(), 2);
        assert!(announced(&r).is_none(), "{r:?}");
        assert_eq!(
            r.notes.last().unwrap().to_string(),
            "No quorum for term 2: 1 of 5 acknowledged, 3 needed; not leading"
        );
        assert_eq!(
            e.snapshot(4462).quorum.unwrap().state,
            QuorumState::NoQuorum
        );
        // Renewals read the member list again every half lease (not at every renewal).
        let r = e.step(4712, Event::Timer(Timer::Renew { term: 2 }));
        assert!(!r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
        let r = e.step(5462, Event::Timer(Timer::Renew { term: 2 }));
        assert!(r.effects.contains(&Effect::CollectMembers {
            purpose: Purpose::Refresh
        }));
        // The cable is back: the registry lists everyone, and the next renewal reaches them.
        e.step(
            5463,
            Event::Members {
                purpose: Purpose::Refresh,
                members: all.clone(),
            },
        );
        let r = e.step(5712, Event::Timer(Timer::Renew { term: 2 }));
        assert!(
            r.effects.iter().any(|e| matches!(
                e,
                Effect::Announce { to, term: 2, .. } if to == &cluster(&[4, 3, 2, 1])
            )),
            "{r:?}"
        );
        let (_, seq) = announced(&r).unwrap();
        // node4 led term 2 meanwhile: refused as stale, node5 elects above it and claims 3.
        let r = e.step(
            5713,
            Event::AnnounceAnswered {
                term: 2,
                seq,
                answers: vec![(member(4), AnnounceAnswer::Stale { term: 2 })],
            },
        );
        let round = match r.rounds.as_slice() {
            [RoundEdge::Started { round }] => *round,
            other => panic!("{other:?}"),
        };
        let r = e.step(
            5714,
            Event::Members {
                purpose: Purpose::Round(round),
                members: all,
            },
        );
        assert_eq!(announced(&r).map(|a| a.0), Some(3));
        // A leader reads no list in its renewals (it does, every health interval).
        let (term, seq) = announced(&r).unwrap();
        ack(&mut e, 5715, term, seq, &[3, 4]);
        assert!(e.is_coordinator());
        let r = e.step(7000, Event::Timer(Timer::Renew { term: 3 }));
        assert!(!r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
    }

    #[test]
    fn a_follower_promises_and_refuses_others_until_the_promise_runs_out() {
        let mut f = node(1, 3);
        assert_eq!(
            announce(&mut f, 3000, 3, 1),
            AnnounceReply::Ok {
                promise_ms: Some(LEASE)
            }
        );
        assert_eq!(f.coordinator(), Some(&nref(3)));
        // A higher node of a newer term is refused while the promise holds...
        assert_eq!(
            announce(&mut f, 4000, 4, 2),
            AnnounceReply::Promised {
                to: Some("node3".into()),
                remaining_ms: 1001,
                term: 1
            }
        );
        // ... and a renewal by the same coordinator extends it.
        assert!(matches!(
            announce(&mut f, 4500, 3, 1),
            AnnounceReply::Ok {
                promise_ms: Some(_)
            }
        ));
        assert!(matches!(
            announce(&mut f, 6000, 4, 2),
            AnnounceReply::Promised {
                remaining_ms: 501,
                ..
            }
        ));
        // No renewal for a lease: the coordinator is gone; elect, skipping it.
        let r = f.step(
            6501,
            Event::Timer(Timer::PromiseExpiry {
                coordinator: nref(3),
            }),
        );
        assert_eq!(
            r.notes[0].to_string(),
            "Lease of coordinator node3 ran out without a renewal"
        );
        assert!(r.notes.contains(&Note::CoordinatorDown {
            name: "node3".into(),
            by: Detection::Lease
        }));
        assert_eq!(f.coordinator(), None);
        let r = f.step(
            6501,
            Event::Members {
                purpose: Purpose::Round(1),
                members: cluster(&[1, 2, 3]),
            },
        );
        assert!(
            matches!(&r.effects[..], [Effect::SendElection { to, .. }] if to == &cluster(&[2])),
            "the lapsed coordinator is not waited on: {r:?}"
        );
        // Now the higher node is acknowledged.
        assert!(matches!(
            announce(&mut f, 6502, 4, 2),
            AnnounceReply::Ok {
                promise_ms: Some(_)
            }
        ));
    }

    /// tests/model.rs found it (`replay_a_promise_counted_from_a_rounded_clock_outlives_the_lease`):
    /// the announcement came up to a millisecond after the clock reading it is stepped at, so
    /// a promise of exactly one lease from that reading could end before the coordinator's
    /// lease (counted from its send time, less the drift margin) on a slow leader's clock.
    #[test]
    fn a_promise_lasts_a_millisecond_more_than_the_lease_for_the_rounded_clock() {
        let mut f = node(1, 3);
        assert_eq!(
            announce(&mut f, 3000, 3, 1),
            AnnounceReply::Ok {
                promise_ms: Some(LEASE)
            }
        );
        let view = f.snapshot(3000).quorum.unwrap();
        assert_eq!(view.promise_ms_left, Some(LEASE + 1));
        // Still bound at the very millisecond the granted lease ends.
        assert!(matches!(
            announce(&mut f, 3000 + LEASE, 4, 2),
            AnnounceReply::Promised {
                remaining_ms: 1,
                ..
            }
        ));
    }

    /// tests/model.rs found it (`replay_a_refused_old_renewal_does_not_bump_the_term_again`): a
    /// leader that took term 2 (bullying back an election message) still had a renewal of term 1
    /// in flight; node1, already following term 2, refused it naming term 2. That refusal says
    /// node1 follows us, yet it was read as a node ahead and the leader took term 3, and again
    /// for each renewal in flight.
    #[test]
    fn a_refusal_of_an_older_renewal_naming_our_own_term_is_no_news() {
        let mut e = leader();
        let r = e.step(
            3100,
            Event::Proxy {
                from: nref(2),
                term: 1,
            },
        );
        assert_eq!(
            r.reply,
            Some(Reply::Proxy(super::super::ready::ProxyReply::Ok))
        );
        let r = e.step(
            3100,
            Event::Members {
                purpose: Purpose::Round(2),
                members: cluster(&[1, 2, 3]),
            },
        );
        assert_eq!(announced(&r), Some((2, 2)));
        let r = e.step(
            3101,
            Event::AnnounceAnswered {
                term: 1,
                seq: 1,
                answers: vec![(member(1), AnnounceAnswer::Stale { term: 2 })],
            },
        );
        assert!(r.effects.is_empty() && r.notes.is_empty(), "{r:?}");
        assert_eq!(e.term(), 2);
        // A refusal naming a term above ours still is news.
        let r = e.step(
            3102,
            Event::AnnounceAnswered {
                term: 2,
                seq: 2,
                answers: vec![(member(1), AnnounceAnswer::Stale { term: 5 })],
            },
        );
        assert!(!r.notes.is_empty(), "{r:?}");
    }

    #[test]
    fn a_frozen_leader_stops_acting_when_its_lease_runs_out_even_before_its_timer() {
        let mut e = leader();
        // Lease until 3000 + 1960 = 4960; it acts until a quarter lease before that.
        assert!(e.snapshot(4459).is_coordinator);
        assert!(!e.snapshot(4461).is_coordinator, "no timer has fired yet");
        let r = e.step(4461, Event::Timer(Timer::LeaseCheck { term: 1 }));
        assert_eq!(
            r.notes[0].to_string(),
            "Lease of term 1 not renewed by a majority: stepping down"
        );
        assert_eq!(r.changes[0].before, Some(nref(3)));
        assert_eq!(r.changes[0].after, None);
        // It stands again at once, with a new term.
        assert!(r.effects.iter().any(|e| matches!(
            e,
            Effect::CollectMembers {
                purpose: Purpose::Round(2)
            }
        )));
    }

    #[test]
    fn renewals_keep_the_lease_and_late_answers_do_not_shorten_it() {
        let mut e = leader();
        let r = e.step(3250, Event::Timer(Timer::Renew { term: 1 }));
        let (term, seq) = announced(&r).unwrap();
        let r = ack(&mut e, 3251, term, seq, &[1]);
        assert!(r.effects.contains(&Effect::Fence { until: 3250 + 1960 }));
        // The first announcement's answer arrives late: nothing moves back.
        let r = ack(&mut e, 3300, 1, 1, &[1]);
        assert!(!r.effects.iter().any(|e| matches!(e, Effect::Fence { .. })));
        assert!(e.snapshot(4700).is_coordinator);
    }

    #[test]
    fn a_leader_hands_over_to_a_higher_node_only_after_the_hooks_let_go() {
        let mut e = Election::new(nref(3), settings(3, true), Persisted::default(), 0);
        let r = elect(&mut e, 3000, &cluster(&[1, 2, 3]));
        let (term, seq) = announced(&r).unwrap();
        ack(&mut e, 3001, term, seq, &[2]);
        assert!(e.is_coordinator());
        let reply = announce(&mut e, 3100, 4, 2);
        assert!(matches!(
            reply,
            AnnounceReply::Promised { to: Some(ref n), .. } if n == "node3"
        ));
        // Its child is still stopping: it still leads (and says so) until the hooks let go.
        assert!(e.snapshot(3100).is_coordinator);
        assert_eq!(
            e.snapshot(3100).quorum.unwrap().state,
            QuorumState::Releasing
        );
        // Still renewing: its followers stay bound while its child stops.
        let r = e.step(3250, Event::Timer(Timer::Renew { term: 1 }));
        assert!(announced(&r).is_some());
        // Refused again while releasing, without a second handover.
        let r = e.step(
            3300,
            Event::Announce {
                from: nref(4),
                term: 2,
            },
        );
        assert!(r
            .notes
            .iter()
            .all(|n| !matches!(n, Note::HandingOver { .. })));
        let r = e.step(3400, Event::LetGo);
        assert_eq!(
            r.effects,
            vec![Effect::Release {
                to: cluster(&[1, 2]),
                term: 1
            }]
        );
        assert!(!e.snapshot(3400).is_coordinator);
        assert_eq!(r.changes[0].reason, Reason::Preempted);
        // Free now: it acknowledges the higher node.
        assert!(matches!(
            announce(&mut e, 3410, 4, 2),
            AnnounceReply::Ok {
                promise_ms: Some(_)
            }
        ));
    }

    /// node3 of {1,2,3}, with hooks, led term 1 and handed over to node4 at 3100; its hooks
    /// let go at 3200.
    fn handed_over_to_node4() -> Election {
        let mut e = Election::new(nref(3), settings(3, true), Persisted::default(), 0);
        let r = elect(&mut e, 3000, &cluster(&[1, 2, 3]));
        let (term, seq) = announced(&r).unwrap();
        ack(&mut e, 3001, term, seq, &[2]);
        announce(&mut e, 3100, 4, 2);
        e.step(3200, Event::LetGo);
        e
    }

    /// After a partition heals the peer list can still lack the node that is claiming: the
    /// node that handed over to it must not win a round over it at once (it did, every 28 ms
    /// for 600 ms, until the list caught up). It waits for that node's announcement once;
    /// if none comes, it elects as usual.
    #[test]
    fn after_handing_over_a_round_waits_for_the_higher_node_the_list_lacks() {
        let mut e = handed_over_to_node4();
        // node1, released, elects and asks node3: node3's round lists no node4.
        e.step(
            3210,
            Event::Proxy {
                from: nref(1),
                term: 2,
            },
        );
        let round = match e.phase() {
            Phase::Collecting => e.rounds.number(),
            other => panic!("expected a round, got {other:?}"),
        };
        let r = e.step(
            3211,
            Event::Members {
                purpose: Purpose::Round(round),
                members: cluster(&[1, 2, 3]),
            },
        );
        assert!(!e.is_coordinator(), "it won over node4: {r:?}");
        assert!(announced(&r).is_none());
        assert_eq!(e.phase(), &Phase::AwaitingAnnouncement);
        assert!(r
            .notes
            .iter()
            .any(|n| matches!(n, Note::AwaitingHandedTo { name } if name == "node4")));
        // node4's announcement comes: followed.
        assert!(matches!(
            announce(&mut e, 3300, 4, 3),
            AnnounceReply::Ok { .. }
        ));
        assert_eq!(e.snapshot(3300).coordinator, Some(nref(4)));
    }

    #[test]
    fn a_wait_for_the_node_handed_over_to_is_given_once() {
        let mut e = handed_over_to_node4();
        let r = elect(&mut e, 3210, &cluster(&[1, 2, 3]));
        assert!(announced(&r).is_none());
        // node4 never announces (it died): the wait ends and the next round is won.
        let round = e.rounds.number();
        e.step(3210 + 4000, Event::Timer(Timer::Announcement { round }));
        let round = e.rounds.number();
        let r = e.step(
            7300,
            Event::Members {
                purpose: Purpose::Round(round),
                members: cluster(&[1, 2, 3]),
            },
        );
        assert!(announced(&r).is_some(), "{r:?}");
    }

    #[test]
    fn a_release_frees_the_follower_and_a_claimant_asks_again_at_once() {
        let mut f = node(1, 3);
        announce(&mut f, 3000, 3, 1);
        let r = f.step(
            3100,
            Event::Release {
                from: nref(3),
                term: 1,
            },
        );
        assert_eq!(r.notes[0].to_string(), "node3 released leadership");
        assert!(matches!(
            announce(&mut f, 3101, 4, 2),
            AnnounceReply::Ok {
                promise_ms: Some(_)
            }
        ));
        // A release by someone else changes nothing.
        let mut g = node(1, 3);
        announce(&mut g, 3000, 3, 1);
        g.step(
            3100,
            Event::Release {
                from: nref(2),
                term: 1,
            },
        );
        assert!(matches!(
            announce(&mut g, 3101, 4, 2),
            AnnounceReply::Promised { .. }
        ));
    }

    #[test]
    fn a_closed_watch_frees_the_promise_only_when_the_process_is_gone() {
        let mut f = node(1, 3);
        announce(&mut f, 3000, 3, 1);
        let r = f.step(
            3100,
            Event::WatchEnded {
                coordinator: nref(3),
                end: WatchEnd::Closed,
            },
        );
        assert_eq!(
            r.effects,
            vec![Effect::ConfirmGone {
                coordinator: nref(3)
            }]
        );
        // It answers, still leading: nothing changes.
        let alive = CheckAnswer::Details {
            name: "node3".into(),
            id: 3,
            is_coordinator: true,
            claiming: false,
            term: 1,
            follows: None,
            preempts: false,
        };
        let r = f.step(
            3101,
            Event::GoneChecked {
                coordinator: nref(3),
                answer: alive,
            },
        );
        assert_eq!(r, Ready::default());
        // No answer in time: the lease decides, nothing is released.
        let slow = CheckAnswer::Unreachable(super::super::event::Unreachable::Timeout);
        f.step(
            3102,
            Event::GoneChecked {
                coordinator: nref(3),
                answer: slow,
            },
        );
        assert!(matches!(
            announce(&mut f, 3103, 4, 2),
            AnnounceReply::Promised { .. }
        ));
        // Refused: nothing listens there any more. Free, and electing.
        let gone = CheckAnswer::Unreachable(super::super::event::Unreachable::Refused);
        let r = f.step(
            3104,
            Event::GoneChecked {
                coordinator: nref(3),
                answer: gone,
            },
        );
        assert_eq!(f.coordinator(), None);
        assert!(r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
        assert!(matches!(
            announce(&mut f, 3105, 4, 2),
            AnnounceReply::Ok {
                promise_ms: Some(_)
            }
        ));
    }

    #[test]
    fn a_node_promised_to_another_does_not_claim_for_itself() {
        let mut f = node(2, 3);
        announce(&mut f, 3000, 3, 1);
        // Its check of node3 fails (a busy node3, say): it elects, but waits out the promise.
        let r = f.step(
            3100,
            Event::CoordinatorChecked {
                coordinator: nref(3),
                answer: CheckAnswer::Unreachable(super::super::event::Unreachable::Timeout),
            },
        );
        assert!(r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
        let r = f.step(
            3101,
            Event::Members {
                purpose: Purpose::Round(1),
                members: cluster(&[1, 2]),
            },
        );
        assert_eq!(f.phase(), &Phase::AwaitingPromise);
        assert!(announced(&r).is_none());
    }

    #[test]
    fn a_witness_votes_but_never_stands() {
        let s = Settings {
            witness: true,
            ..settings(3, false)
        };
        let mut w = Election::new(nref(9), s, Persisted::default(), 0);
        assert_eq!(w.step(3000, Event::HealthTick), Ready::default());
        let r = w.step(
            3000,
            Event::Proxy {
                from: nref(1),
                term: 0,
            },
        );
        assert_eq!(
            r.reply,
            Some(Reply::Proxy(super::super::ready::ProxyReply::NotLower))
        );
        assert!(r.effects.is_empty());
        // A lower node's announcement is acknowledged, not bullied back.
        assert!(matches!(
            announce(&mut w, 3000, 1, 1),
            AnnounceReply::Ok {
                promise_ms: Some(_)
            }
        ));
        // Its coordinator's lease runs out: it waits for the next one, electing nobody.
        let r = w.step(
            5001,
            Event::Timer(Timer::PromiseExpiry {
                coordinator: nref(1),
            }),
        );
        assert!(!r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
    }

    #[test]
    fn a_restart_never_reuses_a_term() {
        let mut e = Election::new(
            nref(3),
            settings(1, false),
            Persisted {
                floor: 41,
                maintenance: false,
            },
            0,
        );
        let r = elect(&mut e, 2001, &cluster(&[3]));
        assert_eq!(e.term(), 42);
        assert!(announced(&r).is_none(), "nobody to tell");
        assert_eq!(
            r.persist,
            Some(Persisted {
                floor: 42,
                maintenance: false
            })
        );
        // A cluster of one leads at once.
        assert!(e.is_coordinator());
        // Every new term is written before it is used: no jump after a restart.
        let r = e.step(
            2002,
            Event::AnnounceAnswered {
                term: 42,
                seq: 1,
                answers: vec![(member(1), AnnounceAnswer::Stale { term: 50 })],
            },
        );
        let round = match r.rounds.as_slice() {
            [RoundEdge::Started { round }] => *round,
            other => panic!("{other:?}"),
        };
        let r = e.step(
            2003,
            Event::Members {
                purpose: Purpose::Round(round),
                members: cluster(&[3]),
            },
        );
        assert_eq!(e.term(), 51);
        assert_eq!(
            r.persist,
            Some(Persisted {
                floor: 51,
                maintenance: false
            })
        );
        // A follower that restarts refuses every term up to its floor, whoever announces it.
        let mut f = Election::new(
            nref(1),
            settings(3, false),
            Persisted {
                floor: 5,
                maintenance: false,
            },
            0,
        );
        assert_eq!(
            announce(&mut f, 2001, 4, 5),
            AnnounceReply::Stale { term: 5 }
        );
        assert_eq!(
            announce(&mut f, 2001, 3, 5),
            AnnounceReply::Stale { term: 5 }
        );
        assert!(matches!(
            announce(&mut f, 2001, 3, 6),
            AnnounceReply::Ok { .. }
        ));
    }

    #[test]
    fn a_restarted_node_that_does_not_preempt_waits_for_a_term_above_its_floor() {
        // node3 restarts with --no-preempt, floor 5; node2 leads term 3. Following term 3
        // could acknowledge a term it promised to another before the restart, electing would
        // preempt: it waits, yields to elections, and follows the next term.
        let mut e = Election::new(
            nref(3),
            Settings {
                no_preempt: true,
                ..settings(3, false)
            },
            Persisted {
                floor: 5,
                maintenance: false,
            },
            0,
        );
        let follows_2 = CheckAnswer::Details {
            name: "node1".into(),
            id: 1,
            is_coordinator: false,
            claiming: false,
            term: 3,
            follows: Some(nref(2)),
            preempts: true,
        };
        let r = e.step(
            2001,
            Event::TermsAnswered {
                answers: vec![(member(1), follows_2)],
            },
        );
        assert!(r.rounds.is_empty(), "no election: {r:?}");
        assert_eq!(e.coordinator(), None);
        let r = e.step(
            2002,
            Event::Proxy {
                from: nref(2),
                term: 3,
            },
        );
        assert_eq!(
            r.reply,
            Some(Reply::Proxy(crate::core::ready::ProxyReply::NotLower))
        );
        // Its next health tick asks the terms again rather than electing.
        let r = e.step(2003, Event::HealthTick);
        assert_eq!(
            r.effects,
            vec![Effect::CollectMembers {
                purpose: Purpose::LearnTerms
            }]
        );
        // node2's renewal of term 3 is refused; its new term 6 is followed.
        assert_eq!(
            announce(&mut e, 2004, 2, 3),
            AnnounceReply::Stale { term: 5 }
        );
        assert!(matches!(
            announce(&mut e, 2005, 2, 6),
            AnnounceReply::Ok { .. }
        ));
        assert_eq!(e.coordinator(), Some(&nref(2)));
    }

    #[test]
    fn shutting_down_stops_acting_and_releases_after_the_hooks() {
        let mut e = Election::new(nref(3), settings(3, true), Persisted::default(), 0);
        let r = elect(&mut e, 3000, &cluster(&[1, 2, 3]));
        let (term, seq) = announced(&r).unwrap();
        ack(&mut e, 3001, term, seq, &[2]);
        let r = e.step(3100, Event::ShuttingDown);
        // Its child is still stopping: it still leads, says so, and keeps its followers.
        assert!(e.snapshot(3100).is_coordinator);
        assert!(e.snapshot(3100).leaving);
        assert!(r.changes.is_empty());
        assert!(!r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Release { .. })));
        let r = e.step(3200, Event::LetGo);
        assert!(!e.snapshot(3200).is_coordinator);
        assert_eq!(r.changes.len(), 1);
        assert!(r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Release { .. })));
        // Standing for nothing: no elections, election messages sent elsewhere.
        assert_eq!(e.step(3300, Event::HealthTick), Ready::default());
    }

    #[test]
    fn a_claimant_finds_members_that_registered_after_it_read_them() {
        let mut e = node(3, 3);
        // Alone in the registry when its round read it: nobody to ask.
        let r = elect(&mut e, 3000, &cluster(&[3]));
        assert!(announced(&r).is_none());
        let r = e.step(4250, Event::Timer(Timer::Renew { term: 1 }));
        assert!(r.effects.contains(&Effect::CollectMembers {
            purpose: Purpose::Refresh
        }));
        e.step(
            4260,
            Event::Members {
                purpose: Purpose::Refresh,
                members: cluster(&[1, 2, 3]),
            },
        );
        let r = e.step(4500, Event::Timer(Timer::Renew { term: 1 }));
        let to = r.effects.iter().find_map(|e| match e {
            Effect::Announce { to, .. } => Some(to.clone()),
            _ => None,
        });
        assert_eq!(to, Some(cluster(&[2, 1])));
    }

    #[test]
    fn a_health_check_that_finds_nothing_listening_frees_the_promise_like_a_closed_watch() {
        // Found by tests/bench/quorum.rs: the check won the race with the closed watch, the
        // promise was kept, and the next claim waited out a whole lease.
        let mut f = node(2, 3);
        announce(&mut f, 3000, 3, 1);
        let r = f.step(
            3100,
            Event::CoordinatorChecked {
                coordinator: nref(3),
                answer: CheckAnswer::Unreachable(super::super::event::Unreachable::Refused),
            },
        );
        assert!(r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
        let r = f.step(
            3101,
            Event::Members {
                purpose: Purpose::Round(1),
                members: cluster(&[1, 2]),
            },
        );
        assert_eq!(
            f.phase(),
            &Phase::Claiming,
            "no wait for the dead node's promise"
        );
        assert!(announced(&r).is_some());
        // A check that merely timed out frees nothing.
        let mut g = node(2, 3);
        announce(&mut g, 3000, 3, 1);
        g.step(
            3100,
            Event::CoordinatorChecked {
                coordinator: nref(3),
                answer: CheckAnswer::Unreachable(super::super::event::Unreachable::Timeout),
            },
        );
        g.step(
            3101,
            Event::Members {
                purpose: Purpose::Round(1),
                members: cluster(&[1, 2]),
            },
        );
        assert_eq!(g.phase(), &Phase::AwaitingPromise);
    }
}

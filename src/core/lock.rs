//! `--consul-lock`: leading also takes holding an external lock (a Consul session lock on
//! `bully/<cluster>/leader`, which the shell takes and watches). A node that wins does not
//! lead yet: it asks for the lock and waits for it in a phase of its own
//! ([`Phase::AwaitingLock`]), asking again (every `lock_retry_ms`) while it is refused; once it holds
//! the lock it leads as it would have, and its hooks get the lock's `LockIndex`. A lock lost
//! while leading makes it let go ([`Reason::LostLock`]); a lock it no longer needs is released,
//! after its hooks let go of the leadership the lock backed. All of it is part of
//! [`Election`]; this file keeps it apart from the election proper.

use super::election::{Election, Phase};
use super::event::{LockAnswer, Timer};
use super::ready::{Effect, Note, Reason};

pub use super::settings::{ETCD_LOCK_RETRY_MS, LOCK_RETRY_MS};

impl Election {
    /// The `LockIndex` of the lock this node holds, if any.
    pub fn lock_index(&self) -> Option<u64> {
        self.lock.held
    }

    /// About to lead: whether this node must wait for the lock first. If so it asks for the
    /// lock (unless an acquisition is under way) and waits in [`Phase::AwaitingLock`].
    pub(super) fn awaits_lock(&mut self) -> bool {
        if !self.settings.lock
            || self.lock.held.is_some()
            || self.coordinator.as_ref() == Some(&self.me)
        {
            return false;
        }
        if self.phase != Phase::AwaitingLock {
            self.note(Note::AcquiringLock);
        }
        self.phase = Phase::AwaitingLock;
        if !self.lock.pending {
            self.acquire_lock();
        }
        true
    }

    fn acquire_lock(&mut self) {
        self.lock.attempt += 1;
        self.lock.pending = true;
        self.effect(Effect::AcquireLock {
            attempt: self.lock.attempt,
        });
    }

    pub(super) fn on_lock(&mut self, answer: LockAnswer) {
        match answer {
            LockAnswer::Held { attempt, index } => {
                if attempt == self.lock.attempt {
                    self.lock.pending = false;
                }
                // Held whatever the attempt: the shell holds it now, so it counts as held
                // until released (at the end of this step if nothing wants it).
                self.lock.held = Some(index);
                self.lock.last_refusal = None;
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
                if attempt != self.lock.attempt {
                    return;
                }
                self.lock.pending = false;
                if self.phase != Phase::AwaitingLock {
                    return;
                }
                if self.lock.last_refusal.as_deref() != Some(why.as_str()) {
                    self.note(Note::LockRefused { why: why.clone() });
                    self.lock.last_refusal = Some(why);
                }
                self.timer(Timer::LockRetry { attempt }, self.settings.lock_retry_ms);
            }
            LockAnswer::Lost { attempt, why } => {
                if attempt != self.lock.attempt || self.lock.held.is_none() {
                    return;
                }
                self.lock.held = None;
                // Let go in Consul too: a watch that could not reach Consul does not know
                // that the session lost the lock, and no one else may take it while it holds.
                self.effect(Effect::ReleaseLock);
                if self.coordinator.as_ref() == Some(&self.me) {
                    self.note(Note::LockLost { why });
                    self.resign(Reason::LostLock, None);
                }
            }
        }
    }

    /// Still waiting for the lock after a refusal: ask again, if this node still stands.
    pub(super) fn on_lock_retry(&mut self, attempt: u64) {
        if self.phase != Phase::AwaitingLock || attempt != self.lock.attempt || self.lock.pending {
            return;
        }
        if !self.stands() {
            return self.end_round(false);
        }
        self.acquire_lock();
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

    /// At the end of every step: releases the lock once nothing needs it, which is once this
    /// node neither leads nor waits for it, and its hooks have let go of what it backed
    /// (`let_go`: the step was [`super::event::Event::LetGo`]).
    pub(super) fn settle_lock(&mut self, let_go: bool) {
        if !self.settings.lock {
            return;
        }
        let leading = self.coordinator.as_ref() == Some(&self.me);
        if leading {
            self.lock.hooks_owed = self.settings.has_hooks;
        } else if let_go {
            self.lock.hooks_owed = false;
        }
        let wanted = leading || self.phase == Phase::AwaitingLock;
        if self.lock.held.is_some() && !wanted && !self.lock.hooks_owed {
            self.lock.held = None;
            self.effect(Effect::ReleaseLock);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::election::{Election, Phase, Settings};
    use super::super::event::{Event, LockAnswer, Purpose, Timer};
    use super::super::fixtures::{cluster, elect, nref};

    use super::super::quorum::Quorum;
    use super::super::ready::{Effect, Note, Persisted, Ready, Reason};
    use super::LOCK_RETRY_MS;
    use std::time::Duration;

    fn node_with(id: u64, f: impl FnOnce(&mut Settings)) -> Election {
        let mut s = Settings::for_timeout(Duration::from_secs(1));
        s.lock = true;
        f(&mut s);
        Election::new(nref(id), s, Persisted::default(), 0)
    }

    fn node(id: u64) -> Election {
        node_with(id, |_| {})
    }

    fn lock(e: &mut Election, answer: LockAnswer) -> Ready {
        e.step(0, Event::Lock(answer))
    }

    fn held(attempt: u64, index: u64) -> LockAnswer {
        LockAnswer::Held { attempt, index }
    }

    fn announced(r: &Ready) -> bool {
        r.effects
            .iter()
            .any(|e| matches!(e, Effect::Announce { .. }))
    }

    #[test]
    fn a_winner_leads_only_once_it_holds_the_lock() {
        let mut e = node(3);
        let r = elect(&mut e, 0, &cluster(&[1, 2, 3]));
        assert_eq!(r.effects, vec![Effect::AcquireLock { attempt: 1 }]);
        assert!(r.changes.is_empty() && !announced(&r), "{r:?}");
        assert_eq!(e.phase(), &Phase::AwaitingLock);
        assert!(!e.is_coordinator() && e.snapshot(0).election);
        assert_eq!(e.term(), 0, "the term is taken when it leads");
        // Meanwhile a lower node's election message is answered and its sender remembered.
        e.step(
            0,
            Event::Proxy {
                from: nref(1),
                term: 0,
            },
        );
        let r = lock(&mut e, held(1, 7));
        assert!(e.is_coordinator());
        assert_eq!(e.lock_index(), Some(7));
        assert_eq!(r.notes[0], Note::LockHeld { index: 7 });
        assert!(announced(&r), "{r:?}");
        let change = &r.changes[0];
        assert!(change.elected(&nref(3)));
        assert_eq!((change.lock_index, change.term), (Some(7), 1));
        // A coordinator that wins again (it elects when it rejoins the registry) keeps the
        // lock it holds and asks for no other.
        e.step(0, Event::Rejoined);
        let r = e.step(
            0,
            Event::Members {
                purpose: Purpose::Round(2),
                members: cluster(&[3]),
            },
        );
        assert!(
            !r.effects
                .iter()
                .any(|e| matches!(e, Effect::AcquireLock { .. } | Effect::ReleaseLock)),
            "{r:?}"
        );
        assert!(e.is_coordinator());
        assert_eq!((e.term(), e.lock_index()), (2, Some(7)));
    }

    #[test]
    fn a_refused_node_asks_again_as_often_as_its_settings_say() {
        let mut e = node_with(3, |s| s.lock_retry_ms = 50);
        elect(&mut e, 0, &cluster(&[1, 3]));
        let r = lock(
            &mut e,
            LockAnswer::Refused {
                attempt: 1,
                why: "held".into(),
            },
        );
        assert_eq!(
            r.effects,
            vec![Effect::StartTimer {
                timer: Timer::LockRetry { attempt: 1 },
                after: Duration::from_millis(50)
            }]
        );
    }

    #[test]
    fn a_refused_node_does_not_lead_says_why_once_and_asks_again_every_second() {
        let mut e = node(3);
        elect(&mut e, 0, &cluster(&[1, 3]));
        let refused = |attempt| LockAnswer::Refused {
            attempt,
            why: "held by session s1 (test)".into(),
        };
        let r = lock(&mut e, refused(1));
        assert_eq!(
            r.notes[0].to_string(),
            "Leader lock not acquired: held by session s1 (test); not leading, asking again \
             until it is free"
        );
        assert!(r.notes[0].is_warning());
        let retry = Timer::LockRetry { attempt: 1 };
        assert_eq!(
            r.effects,
            vec![Effect::StartTimer {
                timer: retry.clone(),
                after: Duration::from_millis(LOCK_RETRY_MS)
            }]
        );
        assert!(!e.is_coordinator() && e.coordinator().is_none());
        assert_eq!(e.phase(), &Phase::AwaitingLock);
        // Health ticks start no second acquisition meanwhile.
        assert_eq!(e.step(0, Event::HealthTick), Ready::default());
        let r = e.step(1000, Event::Timer(retry));
        assert_eq!(r.effects, vec![Effect::AcquireLock { attempt: 2 }]);
        // The same refusal again is not logged again.
        let r = lock(&mut e, refused(2));
        assert!(r.notes.is_empty(), "{r:?}");
        // A stale answer changes nothing.
        assert_eq!(lock(&mut e, refused(1)), Ready::default());
        let r = e.step(2000, Event::Timer(Timer::LockRetry { attempt: 2 }));
        assert_eq!(r.effects, vec![Effect::AcquireLock { attempt: 3 }]);
        lock(&mut e, held(3, 9));
        assert!(e.is_coordinator());
        assert_eq!(e.lock_index(), Some(9));
    }

    #[test]
    fn a_lock_that_comes_after_the_node_moved_on_is_released() {
        let mut e = node(3);
        elect(&mut e, 0, &cluster(&[1, 3]));
        assert_eq!(e.phase(), &Phase::AwaitingLock);
        // While it waits, a higher node (just registered) announces itself: it follows.
        e.step(
            0,
            Event::Announce {
                from: nref(4),
                term: 1,
            },
        );
        assert_eq!(e.phase(), &Phase::Idle);
        assert_eq!(e.coordinator(), Some(&nref(4)));
        let r = lock(&mut e, held(1, 5));
        assert_eq!(r.effects, vec![Effect::ReleaseLock]);
        assert!(r.changes.is_empty());
        assert_eq!(e.lock_index(), None);
        // A late refusal after moving on arms no retry.
        let mut e = node(3);
        elect(&mut e, 0, &cluster(&[3]));
        e.step(0, Event::ShuttingDown);
        let r = lock(
            &mut e,
            LockAnswer::Refused {
                attempt: 1,
                why: "x".into(),
            },
        );
        assert_eq!(r, Ready::default());
    }

    #[test]
    fn losing_the_lock_lets_go_with_reason_lost_lock_and_a_late_loss_is_ignored() {
        let mut e = node(3);
        elect(&mut e, 0, &cluster(&[3]));
        lock(&mut e, held(1, 4));
        assert!(e.is_coordinator());
        // A loss reported for another acquisition is not this one's.
        let stale = LockAnswer::Lost {
            attempt: 0,
            why: "old".into(),
        };
        assert_eq!(lock(&mut e, stale), Ready::default());
        let r = lock(
            &mut e,
            LockAnswer::Lost {
                attempt: 1,
                why: "session invalidated".into(),
            },
        );
        assert_eq!(
            r.notes[0].to_string(),
            "Lost the leader lock: session invalidated; stepping down"
        );
        assert_eq!(r.changes[0].reason, Reason::LostLock);
        assert_eq!(Reason::LostLock.label(), "lost-lock");
        assert!(!e.is_coordinator());
        // Released in Consul as well (a watch that lost touch with Consul may still hold
        // it there), at once. The next round asks for it again.
        assert_eq!(r.effects[0], Effect::ReleaseLock);
        let r = elect(&mut e, 0, &cluster(&[3]));
        assert_eq!(r.effects, vec![Effect::AcquireLock { attempt: 2 }]);
    }

    #[test]
    fn with_hooks_the_lock_is_released_only_once_they_let_go() {
        let mut e = node_with(3, |s| s.has_hooks = true);
        elect(&mut e, 0, &cluster(&[1, 3]));
        lock(&mut e, held(1, 2));
        // A higher node announces: this node follows it at once, but its hooks still stop
        // its work, so the lock stays until they say so.
        let r = e.step(
            0,
            Event::Announce {
                from: nref(4),
                term: 5,
            },
        );
        assert!(r.changes[0].demoted(&nref(3)));
        assert!(!r.effects.contains(&Effect::ReleaseLock), "{r:?}");
        let r = e.step(0, Event::LetGo);
        assert_eq!(r.effects, vec![Effect::ReleaseLock]);
        // Shutdown of a coordinator: the lock goes after the hooks' last let-go.
        let mut e = node_with(3, |s| s.has_hooks = true);
        elect(&mut e, 0, &cluster(&[3]));
        lock(&mut e, held(1, 3));
        let r = e.step(0, Event::ShuttingDown);
        assert!(!r.effects.contains(&Effect::ReleaseLock));
        assert!(e.is_coordinator(), "it leads until its hooks let go");
        let r = e.step(0, Event::LetGo);
        assert!(r.effects.contains(&Effect::ReleaseLock), "{r:?}");
        assert_eq!(r.changes[0].reason, Reason::Shutdown);
    }

    #[test]
    fn a_coordinator_yields_its_lock_to_a_higher_node_that_answers() {
        let mut e = node(3);
        elect(&mut e, 0, &cluster(&[1, 3]));
        lock(&mut e, held(1, 2));
        // Its look-up found node4 alive: it elects, and node4 answers OK.
        let r = e.step(
            0,
            Event::Members {
                purpose: Purpose::LookForHigher,
                members: cluster(&[1, 3, 4]),
            },
        );
        assert!(!r.effects.is_empty());
        let r = e.step(
            0,
            Event::Probed {
                purpose: super::super::event::ProbePurpose::Higher,
                answers: vec![(
                    nref(4),
                    super::super::event::ProbeAnswer::Node {
                        preempts: true,
                        leads: false,
                    },
                )],
            },
        );
        let round = r
            .rounds
            .iter()
            .find_map(|r| match r {
                super::super::ready::RoundEdge::Started { round } => Some(*round),
                _ => None,
            })
            .unwrap();
        e.step(
            0,
            Event::Members {
                purpose: Purpose::Round(round),
                members: cluster(&[1, 3, 4]),
            },
        );
        let r = e.step(
            0,
            Event::ElectionAnswered {
                round,
                answers: vec![(
                    cluster(&[4])[0].clone(),
                    super::super::event::ElectionAnswer::Ok { claim: None },
                )],
            },
        );
        assert!(!e.is_coordinator());
        assert_eq!(r.changes[0].reason, Reason::Preempted);
        assert!(r.effects.contains(&Effect::ReleaseLock), "{r:?}");
        assert_eq!(e.phase(), &Phase::AwaitingAnnouncement);
    }

    #[test]
    fn quorum_mode_takes_the_lock_when_it_would_start_acting() {
        let lease = 2000;
        let mut e = node_with(3, |s| {
            s.quorum = Some(Quorum::new(
                3,
                Duration::from_millis(lease),
                Duration::from_secs(10),
            ))
        });
        let r = elect(&mut e, 3000, &cluster(&[1, 2, 3]));
        let (term, seq) = r
            .effects
            .iter()
            .find_map(|e| match e {
                Effect::Announce { term, seq, .. } => Some((*term, *seq)),
                _ => None,
            })
            .expect("the claim goes out first");
        assert!(!r.effects.contains(&Effect::AcquireLock { attempt: 1 }));
        let r = e.step(
            3001,
            Event::AnnounceAnswered {
                term,
                seq,
                answers: vec![(
                    cluster(&[2])[0].clone(),
                    super::super::event::AnnounceAnswer::Accepted {
                        promise_ms: Some(lease),
                    },
                )],
            },
        );
        assert!(
            r.effects.contains(&Effect::AcquireLock { attempt: 1 }),
            "{r:?}"
        );
        assert!(r.changes.is_empty());
        assert!(!e.is_coordinator());
        assert_eq!(e.phase(), &Phase::AwaitingLock);
        // It shows as claiming (followers keep following a claimant), not leading.
        let view = e.snapshot(3001).quorum.unwrap();
        assert_eq!(view.state, super::super::lease::QuorumState::Claiming);
        let r = e.step(3002, Event::Lock(held(1, 11)));
        assert!(e.is_coordinator());
        assert_eq!(r.changes[0].lock_index, Some(11));
        assert_eq!(e.phase(), &Phase::Idle);
    }

    #[test]
    fn without_the_flag_nothing_changes() {
        let mut e = node_with(3, |s| s.lock = false);
        let r = elect(&mut e, 0, &cluster(&[3]));
        assert!(e.is_coordinator());
        assert!(!r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::AcquireLock { .. } | Effect::ReleaseLock)));
        assert_eq!(r.changes[0].lock_index, None);
    }
}

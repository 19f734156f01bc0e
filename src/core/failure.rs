//! Noticing that the coordinator failed: the health check's verdict, a held watch that ends,
//! probes of a coordinator that was replaced, the registry losing or regaining this node; and
//! the rank-ordered wait that lets most survivors hear the next coordinator instead of
//! electing. Part of [`Election`].

use super::election::{Election, Phase};
use super::event::{CheckAnswer, ProbeAnswer, ProbePurpose, Purpose, Timer, WatchEnd};
use super::member::NodeRef;
use super::quorum::Millis;
use super::ready::{Detection, Effect, Note, Reason};
use super::verdict::{self, Verdict};

impl Election {
    pub(super) fn on_probed(
        &mut self,
        purpose: ProbePurpose,
        answers: Vec<(NodeRef, ProbeAnswer)>,
    ) {
        match purpose {
            // A coordinator replaced by a lower one still answers and leads (it was frozen
            // or cut off), or would take over: elect, so it hears of it and either bullies
            // its way back in or learns its successor. One that stepped down, or will not
            // preempt and leads no more, is left alone.
            ProbePurpose::Previous(previous) => {
                if !verdict::contends(&answers, &previous) {
                    return;
                }
                if let Some(c) = self.coordinator.clone().filter(|c| *c < previous) {
                    self.note(Note::PreviousAlive {
                        previous: previous.name.clone(),
                        current: c.name.clone(),
                    });
                    self.request_election();
                }
            }
            // This node leads, yet a higher member answers: elect, so that member hears of it
            // and takes over. Without this a split after a healed partition would last for
            // good, as nothing else makes a coordinator look up.
            ProbePurpose::Higher => {
                // Only one that would take over counts: a node above with --no-preempt, or
                // unhealthy, or in maintenance, is left alone.
                let any = answers
                    .iter()
                    .any(|(n, _)| verdict::wants_to_lead(&answers, n));
                if !any || !self.is_coordinator() || self.phase != Phase::Idle {
                    return;
                }
                self.note(Note::HigherAnswers {
                    me: self.me.name.clone(),
                });
                self.request_election();
            }
        }
    }

    /// The health schedule fired: check the coordinator, or elect when none is known.
    pub(super) fn on_health_tick(&mut self) {
        if self.phase != Phase::Idle {
            return;
        }
        match self.coordinator.clone() {
            // Still waiting for the coordinator to outgrow this node's floor: ask again.
            None if self.terms.waits_to_follow() => self.collect(Purpose::LearnTerms),
            None => self.request_election(),
            Some(c) if c == self.me => self.collect(Purpose::LookForHigher),
            // Its beats arrive every `--heartbeat`, and stop within three of a failure.
            Some(c) if self.settings.beats_stand_in && self.beats.as_ref() == Some(&c) => {}
            Some(c) => self.effect(Effect::CheckCoordinator { coordinator: c }),
        }
    }

    /// The coordinator is alive when it answers as itself saying it still leads: a node named
    /// coordinator by a stale or forged announcement, or restarted since, does not pass; one
    /// that left cleanly or died does not answer. A `503` (too busy) passes: taking a busy
    /// coordinator for dead started needless elections and terms that fed a failover storm in
    /// a large cluster; the next check decides.
    pub(super) fn on_coordinator_checked(&mut self, coordinator: &NodeRef, answer: CheckAnswer) {
        let current = self.coordinator.as_ref() == Some(coordinator);
        match verdict::check(coordinator, &answer, self.settings.quorum.is_some()) {
            // Its successor's announcement is normally on its way, as after a watch that
            // says `demoted`. Electing at once raced `step-down --to`: the highest standing
            // node could win before the named one announced.
            Verdict::Resting if current => {
                self.rounds.set_verifying(false);
                self.timer(
                    Timer::Successor {
                        coordinator: coordinator.clone(),
                        term: self.terms.current(),
                    },
                    self.settings.successor_wait.as_millis() as Millis,
                );
            }
            Verdict::Alive => {
                if current {
                    self.rounds.set_verifying(false);
                }
            }
            v => {
                // Nothing listens there: the same evidence a closed watch gives. Without this
                // a check that won the race with the closed watch kept the promise, and the
                // next claim waited out a whole lease.
                if v == (Verdict::Failed { gone: true }) {
                    self.lease.release_promise(coordinator);
                }
                self.coordinator_failed(coordinator, Detection::HealthCheck);
            }
        }
    }

    /// The coordinator did not answer its check (or no longer leads).
    pub(super) fn coordinator_failed(&mut self, coordinator: &NodeRef, by: Detection) {
        if self.coordinator.as_ref() != Some(coordinator) {
            return;
        }
        self.rounds.set_verifying(false);
        if by != Detection::HealthCheck {
            // A watch or a lease that failed is a node to skip in the next round; a failed
            // health check may only be a busy node, which is asked as usual.
            self.rounds.suspect(coordinator);
        }
        self.note(Note::CoordinatorDown {
            name: coordinator.name.clone(),
            by,
        });
        self.rounds.failed_over();
        // A node that stepped down stands again when its successor fails.
        self.standing.end_hold(None);
        self.set_coordinator(None, Reason::Failover);
        if by == Detection::HealthCheck {
            return self.request_election();
        }
        // A closed watch or a lapsed lease is seen by every follower at once: they elect in
        // rank order.
        match self.rounds.rank_wait(&self.me) {
            0 => self.request_election(),
            wait => self.timer(Timer::Ranked, wait),
        }
    }

    /// The stream on `coordinator` beats: when it is the coordinator this node follows, the
    /// stream stands in for the health check while it lasts. A beat says what a passing
    /// check says (it is alive, it is that process, it leads), every `--heartbeat` instead
    /// of every `--health-interval`, and its end is reported as a watch's.
    pub(super) fn on_beats_heard(&mut self, coordinator: NodeRef) {
        if self.coordinator.as_ref() == Some(&coordinator) && coordinator != self.me {
            self.beats = Some(coordinator);
        }
    }

    /// What a held watch's end says about the coordinator.
    pub(super) fn on_watch_ended(&mut self, coordinator: &NodeRef, end: WatchEnd) {
        if self.beats.as_ref() == Some(coordinator) {
            self.beats = None;
        }
        match end {
            WatchEnd::Leading | WatchEnd::Busy | WatchEnd::Other { .. } => {}
            // It answers the watch only after its hooks let go: it acts no more.
            WatchEnd::ShuttingDown => {
                self.lease.release_promise(coordinator);
                self.lose_coordinator(coordinator, "shut down");
            }
            // It stopped leading (or never did): the announcement of the new coordinator is
            // normally on its way; elect only if it does not come.
            WatchEnd::Demoted | WatchEnd::NotCoordinator => {
                if self.coordinator.as_ref() == Some(coordinator) {
                    self.effect(Effect::StartTimer {
                        timer: Timer::Successor {
                            coordinator: coordinator.clone(),
                            term: self.terms.current(),
                        },
                        after: self.settings.successor_wait,
                    });
                }
            }
            WatchEnd::TimedOut => {
                self.lose_coordinator(coordinator, "did not answer its watch in time")
            }
            // In quorum mode a closed watch frees this node's promise only once the
            // coordinator's process is known to be gone (with it, its `--exec` child).
            WatchEnd::Closed if self.settings.quorum.is_some() => {
                if self.coordinator.as_ref() == Some(coordinator) {
                    self.effect(Effect::ConfirmGone {
                        coordinator: coordinator.clone(),
                    });
                }
            }
            WatchEnd::Closed => self.lose_coordinator(coordinator, "closed its connection"),
        }
    }

    /// The watched coordinator is gone: elect now, unless it has been replaced meanwhile.
    pub(super) fn lose_coordinator(&mut self, coordinator: &NodeRef, how: &'static str) {
        if self.coordinator.as_ref() != Some(coordinator) {
            return;
        }
        self.note(Note::WatchLost {
            name: coordinator.name.clone(),
            how,
        });
        self.coordinator_failed(coordinator, Detection::Watch);
    }

    /// The registry lists this node again after it could not (it was unreachable, or lost the
    /// registration). A coordinator elects again, so that nodes which could not see it, and
    /// may have chosen another, learn of it; a follower's health checks already cover it.
    pub(super) fn on_rejoined(&mut self) {
        if self.is_coordinator() {
            self.request_election();
        }
    }

    /// The registry stopped or started holding this node. Unregistered, it starts no round
    /// (the one under way ends) and answers election messages as a node that does not stand,
    /// so lower nodes do not wait for it; it keeps following (or leading) whom it did.
    /// Registered again, it elects when it knows no coordinator or leads, as after
    /// [`Event::Rejoined`].
    pub(super) fn on_registered(&mut self, ok: bool) {
        if !self.standing.set_registered(ok) {
            return;
        }
        self.note(Note::Registered { ok });
        if !ok {
            // A claim in quorum mode ends by its own timers.
            if self.phase != Phase::Idle && self.phase != Phase::Claiming {
                self.end_round(false);
            }
            return;
        }
        if self.is_coordinator() {
            self.request_election();
        } else {
            self.stand_if_needed();
        }
    }
}

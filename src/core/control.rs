//! Operator control, the coordinator's side of letting go: health (a failing check takes a
//! node out of the running), maintenance, a planned step-down (to a named node or the next
//! one), preemption (`--no-preempt`, `--preempt-delay`), and how a coordinator lets go for any
//! of these, shutdown and a higher node's claim included: its hooks first, then it releases its
//! followers, so the next coordinator's work never starts beside its own. All of it is part of
//! [`Election`]; this file keeps it apart from the election proper.

use super::election::{Election, Phase};
use super::event::Timer;
use super::member::{others, Member, NodeRef};
use super::quorum::Millis;
use super::ready::{ControlReply, Effect, Note, Reason};
use super::standing::successor;

/// How long a node that stepped down stands for nothing (unless the new coordinator fails):
/// long enough for another to take over without this one taking it straight back.
pub const STEP_DOWN_HOLD_MS: Millis = 60_000;

impl Election {
    /// Whether this node stands for election now: not a witness, not leaving, healthy, not
    /// in maintenance, not holding back after a step-down or an exited `--exec` child, and
    /// held by the registry (the others could not find it, and it would elect itself beside
    /// them).
    pub(super) fn stands(&self) -> bool {
        self.stands_at(self.now)
    }

    fn stands_at(&self, now: Millis) -> bool {
        self.standing.abstention(now).is_none()
    }

    /// A sit-out is a courtesy to the others, not a reason to leave the cluster without a
    /// leader: once nobody has led for `announce_wait` (a standing node would have won by
    /// then), the node ends it and stands. Started whenever the coordinator is lost while it
    /// sits out; `term` tells a late timer from a loss since.
    pub(super) fn yield_sit_out_when_leaderless(&mut self) {
        if self.coordinator.is_none() && self.sits_out() {
            let wait = self.settings.announce_wait.as_millis() as Millis;
            self.timer(
                Timer::Leaderless {
                    term: self.terms.current(),
                },
                wait,
            );
        }
    }

    fn sits_out(&self) -> bool {
        self.standing.sits_out(self.now)
    }

    pub(super) fn on_leaderless(&mut self, term: u64) {
        if term != self.terms.current() || self.coordinator.is_some() || !self.sits_out() {
            return;
        }
        if let Some(a) = self.standing.abstention(self.now) {
            self.note(Note::SitOutEnded {
                why: a.word(),
                ms_left: a.ms_left().unwrap_or(0),
            });
        }
        self.standing.end_hold(None);
        if self.standing.child_back(self.now) {
            self.note(Note::Health { healthy: true });
        }
        self.stand_if_needed();
    }

    /// Whether this node would take over from a lower coordinator now: it stands, preempts
    /// at all, and has been healthy for `--preempt-delay`.
    pub(super) fn preempts(&self) -> bool {
        self.preempts_at(self.now)
    }

    pub(super) fn preempts_at(&self, now: Millis) -> bool {
        let s = &self.settings;
        self.standing
            .preempts(now, s.no_preempt, s.preempt_delay_ms)
    }

    /// Became healthy (or back from maintenance): preempting waits for `--preempt-delay`.
    fn rejoined_now(&mut self) {
        self.standing.rejoined(self.now);
        if self.settings.preempt_delay_ms > 0 {
            self.timer(Timer::PreemptReady, self.settings.preempt_delay_ms);
        }
        self.stand_if_needed();
    }

    /// Standing again: elect when nobody leads, or when a lower node leads and this one
    /// preempts.
    pub(super) fn stand_if_needed(&mut self) {
        match &self.coordinator {
            None => self.request_election(),
            Some(c) if *c < self.me && self.preempts() => self.request_election(),
            _ => {}
        }
    }

    pub(super) fn on_health(&mut self, healthy: bool) {
        if !self.standing.set_health(healthy, self.now) {
            return;
        }
        self.note(Note::Health { healthy });
        if healthy {
            self.rejoined_now();
        } else {
            self.resign(Reason::Unhealthy, None);
        }
    }

    pub(super) fn on_exec_exited(&mut self) {
        if !self.settings.exec_exit_unhealthy
            || !self
                .standing
                .child_exit(self.now + self.settings.recover_after_ms)
        {
            return;
        }
        self.note(Note::SittingOut {
            why: "child-exited",
            ms: self.settings.recover_after_ms,
        });
        self.note(Note::Health { healthy: false });
        self.resign(Reason::Unhealthy, None);
        self.yield_sit_out_when_leaderless();
        let after = self.settings.recover_after_ms;
        self.timer(Timer::StandAgain, after);
    }

    pub(super) fn on_stand_again(&mut self) {
        if self.coordinator.as_ref() != Some(&self.me) && self.standing.child_back(self.now) {
            self.note(Note::Health { healthy: true });
        }
        self.standing.end_hold(Some(self.now));
        self.stand_if_needed();
    }

    pub(super) fn on_preempt_ready(&mut self) {
        if self.preempts() {
            self.stand_if_needed();
        }
    }

    /// `bully maintenance on|off`; remembered across restarts.
    pub(super) fn on_maintenance(&mut self, on: bool) -> ControlReply {
        if self.standing.maintenance() == on {
            return ControlReply::Done {
                message: format!("maintenance is already {}", if on { "on" } else { "off" }),
            };
        }
        self.standing.set_maintenance(on);
        self.terms.set_maintenance(on);
        self.out.persist = Some(self.terms.persisted().clone());
        self.note(Note::Maintenance { on });
        if on {
            let leading = self.coordinator.as_ref() == Some(&self.me);
            self.resign(Reason::Maintenance, None);
            ControlReply::Done {
                message: if leading {
                    "maintenance on: stepping down, standing for nothing until it is off".into()
                } else {
                    "maintenance on: standing for nothing until it is off".into()
                },
            }
        } else {
            self.rejoined_now();
            ControlReply::Done {
                message: "maintenance off: standing for election again".into(),
            }
        }
    }

    /// `bully step-down [--to NODE]`.
    pub(super) fn on_step_down(&mut self, to: Option<String>) -> ControlReply {
        let refuse = |message: String| ControlReply::Refused { message };
        if self.coordinator.as_ref() != Some(&self.me) {
            return refuse(match &self.coordinator {
                Some(c) => format!("this node is not the coordinator; {} is", c.name),
                None => "this node is not the coordinator; none is known".into(),
            });
        }
        if self.standing.resigning() || self.standing.leaving() {
            return refuse("this node is already stepping down".into());
        }
        let target = match successor(self.rounds.known(), &self.me, to) {
            Ok(target) => target,
            Err(message) => return refuse(message),
        };
        self.standing.hold(self.now + STEP_DOWN_HOLD_MS);
        self.timer(Timer::StandAgain, STEP_DOWN_HOLD_MS);
        self.note(Note::SittingOut {
            why: "stepped-down",
            ms: STEP_DOWN_HOLD_MS,
        });
        let message = match &target {
            Some(t) => format!("stepping down for {}", t.name),
            None => "stepping down; the next node takes over".into(),
        };
        self.resign(Reason::StepDown, target);
        ControlReply::Done { message }
    }

    /// `POST /takeover`: the coordinator stepped down for this node: take over at once,
    /// without asking the nodes above (a higher node that preempts still takes it back).
    pub(super) fn on_take_over(&mut self, from: &NodeRef, term: u64) {
        self.terms.saw(term);
        if !self.stands() || self.coordinator.as_ref() == Some(&self.me) {
            return;
        }
        self.note(Note::TakingOver {
            from: from.name.clone(),
        });
        self.rounds.take_over();
        // A round already under way (the release may have come first) asked the nodes above:
        // start one that does not.
        if matches!(
            self.phase,
            Phase::Idle | Phase::Collecting | Phase::Electing | Phase::AwaitingAnnouncement
        ) {
            self.start_round();
        }
    }

    /// A coordinator lets go of leadership for `reason`: its hooks stop its work first (it
    /// still leads, and says so, until they have), then it releases its followers.
    pub(super) fn resign(&mut self, reason: Reason, to: Option<NodeRef>) {
        if self.coordinator.as_ref() != Some(&self.me) || !self.standing.resign(reason, to) {
            return;
        }
        self.note(Note::LettingGo { reason });
        self.lease.begin_release();
        if self.settings.has_hooks {
            self.effect(Effect::StopLeading {
                reason,
                term: self.terms.current(),
            });
        } else {
            self.on_let_go();
        }
    }

    /// The hooks let go (the `--exec` child stopped and `--on-demoted` ran): a node letting go
    /// stops leading, releases its followers and hands over to the node it stepped down for.
    pub(super) fn on_let_go(&mut self) {
        let Some(resign) = self.standing.let_go(self.lease.releasing()) else {
            return;
        };
        let leading = self.coordinator.as_ref() == Some(&self.me);
        if !leading && !self.lease.has_lead() {
            return;
        }
        if leading {
            self.set_coordinator(None, resign.reason);
        }
        let term = self.lease.end_lead().unwrap_or(self.terms.current());
        let named = resign.to.is_some();
        if let Some(next) = resign.to {
            self.effect(Effect::TakeOver { to: next, term });
        }
        // Released, the others elect at once and the highest that stands wins, not the node
        // named. In plain Bully they need no release: they wait for the named node's
        // announcement as after any demotion, and elect if it does not come. In quorum mode
        // their promise must be released for it to gather a majority.
        if named && self.settings.quorum.is_none() {
            return;
        }
        let to: Vec<Member> = others(self.rounds.known(), &self.me).cloned().collect();
        self.note(Note::Released {
            to: to.iter().map(|m| m.name.clone()).collect(),
        });
        if !to.is_empty() {
            self.effect(Effect::Release { to, term });
        }
    }

    /// SIGINT/SIGTERM: stand for nothing more; once the hooks let go, stop leading and
    /// release the followers. Until then the node still acts (its child is stopping), so it
    /// still says so and keeps its followers.
    pub(super) fn on_shutting_down(&mut self) {
        if !self.standing.leave() {
            return;
        }
        self.note(Note::ShuttingDown);
        if self.phase != Phase::Idle {
            self.end_round(false);
        }
        if !self.settings.has_hooks {
            self.on_let_go();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::election::{Election, Settings};
    use super::super::event::{CheckAnswer, Event, Purpose, Timer};
    use super::super::fixtures::{cluster, nref};
    use super::super::member::Member;
    use super::super::ready::{
        AnnounceReply, ControlReply, Effect, Persisted, ProxyReply, Ready, Reason, Reply,
    };
    use super::super::standing::Abstention;
    use super::STEP_DOWN_HOLD_MS;
    use std::time::Duration;

    fn node_with(id: u64, f: impl FnOnce(&mut Settings)) -> Election {
        let mut s = Settings::for_timeout(Duration::from_secs(1));
        f(&mut s);
        Election::new(nref(id), s, Persisted::default(), 0)
    }

    /// node`id` leading `ms` (plain Bully).
    fn leader(mut e: Election, ms: &[Member]) -> Election {
        e.step(0, Event::HealthTick);
        e.step(
            0,
            Event::Members {
                purpose: Purpose::Round(1),
                members: ms.to_vec(),
            },
        );
        assert!(e.is_coordinator());
        e
    }

    fn control(r: &Ready) -> ControlReply {
        match &r.reply {
            Some(Reply::Control(c)) => c.clone(),
            other => panic!("{other:?}"),
        }
    }

    fn announce(e: &mut Election, now: u64, from: u64, term: u64) -> AnnounceReply {
        match e
            .step(
                now,
                Event::Announce {
                    from: nref(from),
                    term,
                },
            )
            .reply
        {
            Some(Reply::Announce(a)) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unhealthy_coordinator_lets_go_through_its_hooks_then_releases() {
        let mut e = leader(node_with(3, |s| s.has_hooks = true), &cluster(&[1, 2, 3]));
        let r = e.step(100, Event::Health { healthy: false });
        assert_eq!(
            r.effects,
            vec![Effect::StopLeading {
                reason: Reason::Unhealthy,
                term: 1
            }]
        );
        assert!(e.is_coordinator(), "it leads until its work has stopped");
        let r = e.step(200, Event::LetGo);
        assert_eq!(r.changes[0].reason, Reason::Unhealthy);
        assert!(r.effects.contains(&Effect::Release {
            to: cluster(&[1, 2]),
            term: 1
        }));
        // Unhealthy: it stands for nothing, and tells lower nodes to look elsewhere.
        assert_eq!(e.step(300, Event::HealthTick), Ready::default());
        let r = e.step(
            300,
            Event::Proxy {
                from: nref(1),
                term: 1,
            },
        );
        assert_eq!(r.reply, Some(Reply::Proxy(ProxyReply::NotLower)));
        // Healthy again with nobody leading: it elects.
        let r = e.step(400, Event::Health { healthy: true });
        assert!(r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
    }

    #[test]
    fn a_checked_node_stands_only_once_its_check_passed() {
        let mut e = node_with(3, |s| s.health_checked = true);
        assert_eq!(e.step(0, Event::HealthTick), Ready::default());
        let r = e.step(10, Event::Health { healthy: true });
        assert!(r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
    }

    #[test]
    fn maintenance_is_persisted_steps_down_and_survives_a_restart() {
        let mut e = leader(node_with(3, |_| {}), &cluster(&[1, 2, 3]));
        let r = e.step(100, Event::Maintenance { on: true });
        assert!(matches!(control(&r), ControlReply::Done { .. }));
        assert_eq!(
            r.persist,
            Some(Persisted {
                floor: 1,
                maintenance: true
            })
        );
        assert!(!e.is_coordinator(), "no hooks: it lets go at once");
        assert_eq!(r.changes[0].reason, Reason::Maintenance);
        // Restarted with it on: it stands for nothing.
        let mut f = Election::new(
            nref(3),
            Settings::for_timeout(Duration::from_secs(1)),
            Persisted {
                floor: 65,
                maintenance: true,
            },
            0,
        );
        assert_eq!(f.step(0, Event::HealthTick), Ready::default());
        assert!(f.snapshot(0).maintenance);
        let r = f.step(10, Event::Maintenance { on: false });
        assert_eq!(r.persist.map(|p| p.maintenance), Some(false));
        assert!(r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
    }

    #[test]
    fn a_node_sitting_out_stands_again_when_nobody_else_leads() {
        // Found by a new user: node4 stepped down while the others were in maintenance, and
        // the cluster had no leader for the 52 s left of node4's sit-out.
        let mut e = leader(node_with(4, |_| {}), &cluster(&[1, 2, 3, 4]));
        let term = e.term();
        let r = e.step(
            100,
            Event::StepDown {
                to: None,
                listing: None,
            },
        );
        assert!(matches!(control(&r), ControlReply::Done { .. }));
        let wait = Settings::for_timeout(Duration::from_secs(1)).announce_wait;
        assert!(
            r.effects.contains(&Effect::StartTimer {
                timer: Timer::Leaderless { term },
                after: wait,
            }),
            "{r:?}"
        );
        assert_eq!(
            e.snapshot(100).abstention,
            Some(Abstention::SteppedDown {
                ms_left: STEP_DOWN_HOLD_MS
            })
        );
        // Nobody announced within the wait: the sit-out ends and the node elects.
        let r = e.step(4100, Event::Timer(Timer::Leaderless { term }));
        assert_eq!(r.rounds.len(), 1, "{r:?}");
        assert!(r.notes.iter().any(|n| n
            .to_string()
            .starts_with("Nobody else leads: ending the sit-out")));
        assert_eq!(e.snapshot(4100).abstention, None);
        // Had another node taken over, the sit-out holds.
        let mut e = leader(node_with(4, |_| {}), &cluster(&[1, 2, 3, 4]));
        let term = e.term();
        e.step(
            100,
            Event::StepDown {
                to: None,
                listing: None,
            },
        );
        announce(&mut e, 200, 3, term + 1);
        let r = e.step(4100, Event::Timer(Timer::Leaderless { term }));
        assert!(r.rounds.is_empty(), "{r:?}");
        assert!(matches!(
            e.snapshot(4100).abstention,
            Some(Abstention::SteppedDown { .. })
        ));
    }

    #[test]
    fn a_step_down_hands_over_to_the_named_node_or_says_why_it_cannot() {
        let mut f = node_with(1, |_| {});
        announce(&mut f, 0, 3, 1);
        let r = f.step(
            0,
            Event::StepDown {
                to: None,
                listing: None,
            },
        );
        assert_eq!(
            control(&r),
            ControlReply::Refused {
                message: "this node is not the coordinator; node3 is".into()
            }
        );
        let mut e = leader(node_with(3, |_| {}), &cluster(&[1, 2, 3]));
        for (to, why) in [
            ("node3", "--to names this node itself"),
            ("node9", "no member named node9 is known"),
        ] {
            let r = e.step(
                0,
                Event::StepDown {
                    to: Some(to.into()),
                    listing: None,
                },
            );
            assert_eq!(
                control(&r),
                ControlReply::Refused {
                    message: why.into()
                }
            );
        }
        let r = e.step(
            100,
            Event::StepDown {
                to: Some("node1".into()),
                listing: None,
            },
        );
        assert!(matches!(control(&r), ControlReply::Done { .. }));
        assert!(r.effects.contains(&Effect::TakeOver {
            to: nref(1),
            term: 1
        }));
        assert_eq!(r.changes[0].reason, Reason::StepDown);
        // It holds back: no election of its own, and it tells lower nodes to look elsewhere.
        assert!(!e
            .step(200, Event::HealthTick)
            .effects
            .iter()
            .any(|e| matches!(
                e,
                Effect::CollectMembers {
                    purpose: Purpose::Round(_)
                }
            )));
        // node1 takes over without asking the nodes above it.
        let mut n1 = node_with(1, |_| {});
        n1.step(
            0,
            Event::Members {
                purpose: Purpose::LookForHigher,
                members: cluster(&[1, 2, 3]),
            },
        );
        let r = n1.step(
            300,
            Event::TakeOver {
                from: nref(3),
                term: 1,
            },
        );
        assert!(r.effects.contains(&Effect::CollectMembers {
            purpose: Purpose::Round(1)
        }));
        let r = n1.step(
            300,
            Event::Members {
                purpose: Purpose::Round(1),
                members: cluster(&[1, 2, 3]),
            },
        );
        assert!(n1.is_coordinator());
        assert_eq!(r.changes[0].reason, Reason::StepDown);
        // The one that stepped down follows it (a higher node that does not preempt now).
        assert!(matches!(
            announce(&mut e, 400, 1, 2),
            AnnounceReply::Ok { .. }
        ));
        assert_eq!(e.coordinator(), Some(&nref(1)));
    }

    #[test]
    fn a_step_down_looks_its_target_up_in_the_listing_it_came_with() {
        // node4 joined after the last health tick: unknown to the coordinator until the
        // listing read with the request names it.
        let mut e = leader(node_with(3, |_| {}), &cluster(&[1, 2, 3]));
        let r = e.step(
            100,
            Event::StepDown {
                to: Some("node4".into()),
                listing: Some(cluster(&[1, 2, 3, 4])),
            },
        );
        assert!(matches!(control(&r), ControlReply::Done { .. }), "{r:?}");
        assert!(r.effects.contains(&Effect::TakeOver {
            to: nref(4),
            term: 1
        }));
    }

    #[test]
    fn a_step_down_to_a_named_node_in_plain_bully_releases_nobody() {
        // Released, the others would elect at once and the highest standing would win.
        let mut e = leader(node_with(3, |_| {}), &cluster(&[1, 2, 3]));
        let r = e.step(
            100,
            Event::StepDown {
                to: Some("node1".into()),
                listing: None,
            },
        );
        assert!(r.effects.contains(&Effect::TakeOver {
            to: nref(1),
            term: 1
        }));
        assert!(
            !r.effects
                .iter()
                .any(|e| matches!(e, Effect::Release { .. })),
            "{:?}",
            r.effects
        );
        assert!(!e.is_coordinator());
    }

    #[test]
    fn a_take_over_during_a_round_replaces_it_with_one_that_asks_nobody_above() {
        let mut n1 = node_with(1, |_| {});
        n1.step(0, Event::HealthTick);
        n1.step(
            0,
            Event::Members {
                purpose: Purpose::Round(1),
                members: cluster(&[1, 2, 3]),
            },
        );
        assert!(!n1.is_coordinator(), "it asked node3 and waits");
        let r = n1.step(
            10,
            Event::TakeOver {
                from: nref(3),
                term: 1,
            },
        );
        assert!(r.effects.contains(&Effect::CollectMembers {
            purpose: Purpose::Round(2)
        }));
        let r = n1.step(
            20,
            Event::Members {
                purpose: Purpose::Round(2),
                members: cluster(&[1, 2, 3]),
            },
        );
        assert!(n1.is_coordinator());
        assert_eq!(r.changes[0].reason, Reason::StepDown);
    }

    #[test]
    fn without_preemption_a_higher_node_follows_the_coordinator_it_finds() {
        let mut e = node_with(9, |s| s.no_preempt = true);
        // A lower coordinator's announcement is followed, not bullied back.
        assert!(matches!(
            announce(&mut e, 0, 2, 1),
            AnnounceReply::Ok { .. }
        ));
        assert_eq!(e.coordinator(), Some(&nref(2)));
        // Its election messages are sent elsewhere, so it does not elect over it.
        let r = e.step(
            0,
            Event::Proxy {
                from: nref(2),
                term: 1,
            },
        );
        assert_eq!(r.reply, Some(Reply::Proxy(ProxyReply::NotLower)));
        assert!(!e.snapshot(0).preempts);
        // At start it adopts the coordinator the others follow instead of electing.
        let mut f = node_with(9, |s| s.no_preempt = true);
        f.step(0, Event::Startup);
        let answers = vec![(
            cluster(&[2])[0].clone(),
            CheckAnswer::Details {
                name: "node2".into(),
                id: 2,
                is_coordinator: true,
                claiming: false,
                term: 4,
                follows: Some(nref(2)),
                preempts: true,
            },
        )];
        let r = f.step(0, Event::TermsAnswered { answers });
        assert_eq!(f.coordinator(), Some(&nref(2)));
        assert!(!r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
        // When that coordinator fails, it stands as usual.
        let r = f.step(
            10,
            Event::CoordinatorChecked {
                coordinator: nref(2),
                answer: CheckAnswer::NotLocated,
            },
        );
        assert!(r
            .effects
            .iter()
            .any(|e| matches!(e, Effect::CollectMembers { .. })));
    }

    #[test]
    fn a_preempt_delay_makes_a_returning_node_wait_before_it_takes_over() {
        let mut e = node_with(9, |s| s.preempt_delay_ms = 2000);
        assert!(matches!(
            announce(&mut e, 100, 2, 1),
            AnnounceReply::Ok { .. }
        ));
        assert_eq!(
            e.coordinator(),
            Some(&nref(2)),
            "within the delay: it follows"
        );
        let r = e.step(2000, Event::Timer(Timer::PreemptReady));
        assert!(r.effects.contains(&Effect::CollectMembers {
            purpose: Purpose::Round(1)
        }));
        assert!(e.snapshot(2000).preempts);
        // After a health flap the delay starts again.
        let mut f = node_with(9, |s| {
            s.preempt_delay_ms = 2000;
            s.health_checked = true;
        });
        f.step(0, Event::Health { healthy: true });
        announce(&mut f, 10, 2, 1);
        f.step(2500, Event::Health { healthy: false });
        let r = f.step(2600, Event::Health { healthy: true });
        assert!(r.effects.contains(&Effect::StartTimer {
            timer: Timer::PreemptReady,
            after: Duration::from_millis(2000)
        }));
        assert!(!f.snapshot(3000).preempts);
        assert!(f.snapshot(4600).preempts);
    }

    #[test]
    fn an_exited_exec_child_steps_the_node_down_for_a_while() {
        let mut e = leader(
            node_with(3, |s| {
                s.exec_exit_unhealthy = true;
                s.recover_after_ms = 4000;
            }),
            &cluster(&[1, 2, 3]),
        );
        let r = e.step(100, Event::ExecExited);
        assert!(!e.is_coordinator());
        assert_eq!(r.changes[0].reason, Reason::Unhealthy);
        assert!(r.effects.contains(&Effect::StartTimer {
            timer: Timer::StandAgain,
            after: Duration::from_millis(4000)
        }));
        assert!(!e.snapshot(200).healthy);
        e.step(4100, Event::Timer(Timer::StandAgain));
        assert!(e.snapshot(4100).healthy);
        // Without the flag the node keeps leading.
        let mut f = leader(node_with(3, |_| {}), &cluster(&[1, 3]));
        assert_eq!(f.step(100, Event::ExecExited), Ready::default());
        assert!(f.is_coordinator());
    }
}

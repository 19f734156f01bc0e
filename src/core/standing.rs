//! Whether a node stands for election, as data: why it does not ([`Abstention`]), and why and
//! for whom a coordinator lets go ([`Resign`]), as a sub-machine of the election. The
//! transitions that send and log are in `control.rs`.

use super::member::{Member, NodeRef};
use super::quorum::Millis;
use super::ready::Reason;

/// Why a node does not stand for election now: shown by `/nodeDetails`, `/metrics` and
/// `bully status`, so a cluster without a leader says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abstention {
    Witness,
    Leaving,
    Unhealthy,
    Maintenance,
    /// Not (yet) held by the registry.
    Unregistered,
    /// Sitting out after a step-down, for `ms_left` more unless nobody else leads.
    SteppedDown {
        ms_left: Millis,
    },
    /// Sitting out after its `--exec` child exited, for `ms_left` more unless nobody else
    /// leads.
    ChildExited {
        ms_left: Millis,
    },
}

impl Abstention {
    /// A short word for `/nodeDetails` and the metrics' label.
    pub fn word(&self) -> &'static str {
        match self {
            Abstention::Witness => "witness",
            Abstention::Leaving => "leaving",
            Abstention::Unhealthy => "unhealthy",
            Abstention::Maintenance => "maintenance",
            Abstention::Unregistered => "unregistered",
            Abstention::SteppedDown { .. } => "stepped-down",
            Abstention::ChildExited { .. } => "child-exited",
        }
    }

    /// How long a sit-out has left, if this is one.
    pub fn ms_left(&self) -> Option<Millis> {
        match self {
            Abstention::SteppedDown { ms_left } | Abstention::ChildExited { ms_left } => {
                Some(*ms_left)
            }
            _ => None,
        }
    }
}

/// A coordinator letting go: why, and for whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resign {
    pub reason: Reason,
    pub to: Option<NodeRef>,
}

/// Whether this node stands for election: its health, maintenance, the sit-outs it chose (a
/// step-down's hold, an exited `--exec` child's spell), shutdown and the registry's hold. Its
/// fields change only through these methods, which keep one rule: the reasons a node does
/// not stand are independent, and [`Standing::abstention`] names the weightiest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Standing {
    witness: bool,
    leaving: bool,
    healthy: bool,
    /// Since when it has been healthy and back in the running (for `--preempt-delay`).
    healthy_since: Option<Millis>,
    maintenance: bool,
    /// `--exec-exit-unhealthy`: the child exited by itself; out until `child_back_at`, and
    /// until it no longer leads.
    child_exited: bool,
    child_back_at: Millis,
    /// A step-down's hold.
    held_until: Option<Millis>,
    /// The registry holds this node's record.
    registered: bool,
    /// Letting go of leadership, waiting for the hooks.
    resigning: Option<Resign>,
}

impl Standing {
    /// A node that starts: healthy unless a check must pass first.
    pub fn new(witness: bool, checked: bool, maintenance: bool, now: Millis) -> Standing {
        Standing {
            witness,
            leaving: false,
            healthy: !checked,
            healthy_since: (!checked).then_some(now),
            maintenance,
            child_exited: false,
            child_back_at: 0,
            held_until: None,
            registered: true,
            resigning: None,
        }
    }

    /// Why this node does not stand at `now`, the weightiest reason first.
    pub fn abstention(&self, now: Millis) -> Option<Abstention> {
        let held = self.held_until.filter(|t| now < *t);
        Some(if self.witness {
            Abstention::Witness
        } else if self.leaving {
            Abstention::Leaving
        } else if self.maintenance {
            Abstention::Maintenance
        } else if !self.healthy {
            Abstention::Unhealthy
        } else if !self.registered {
            Abstention::Unregistered
        } else if self.child_exited {
            Abstention::ChildExited {
                ms_left: self.child_back_at.saturating_sub(now),
            }
        } else if let Some(t) = held {
            Abstention::SteppedDown { ms_left: t - now }
        } else {
            return None;
        })
    }

    /// Would take over from a lower coordinator at `now`: it stands, preempts at all
    /// (`no_preempt` unset), and has been healthy and back in the running for `delay`.
    pub fn preempts(&self, now: Millis, no_preempt: bool, delay: Millis) -> bool {
        self.abstention(now).is_none() && !no_preempt && self.healthy_for(now, delay)
    }

    /// Holds back by choice (a step-down, an exited child), and for nothing weightier.
    pub fn sits_out(&self, now: Millis) -> bool {
        self.abstention(now).is_some_and(|a| a.ms_left().is_some())
    }

    /// Healthy and back in the running for at least `delay`.
    pub fn healthy_for(&self, now: Millis, delay: Millis) -> bool {
        self.healthy_since.is_some_and(|t| now >= t + delay)
    }

    /// Healthy, and its `--exec` child did not exit by itself.
    pub fn healthy(&self) -> bool {
        self.healthy && !self.child_exited
    }

    pub fn leaving(&self) -> bool {
        self.leaving
    }

    pub fn maintenance(&self) -> bool {
        self.maintenance
    }

    pub fn registered(&self) -> bool {
        self.registered
    }

    pub fn child_exited(&self) -> bool {
        self.child_exited
    }

    /// The health check's verdict changed; false if it did not.
    pub fn set_health(&mut self, healthy: bool, now: Millis) -> bool {
        if healthy == self.healthy {
            return false;
        }
        self.healthy = healthy;
        self.healthy_since = healthy.then_some(now);
        true
    }

    /// Back in the running (healthy again, out of maintenance, a spell over) at `now`.
    pub fn rejoined(&mut self, now: Millis) {
        self.healthy_since = Some(now);
    }

    pub fn set_maintenance(&mut self, on: bool) {
        self.maintenance = on;
    }

    /// The `--exec` child exited by itself: out until `back_at` at least. False if it already
    /// was.
    pub fn child_exit(&mut self, back_at: Millis) -> bool {
        if self.child_exited {
            return false;
        }
        self.child_exited = true;
        self.child_back_at = back_at;
        true
    }

    /// An exited child's spell ends; false if there was none.
    pub fn child_back(&mut self, now: Millis) -> bool {
        if !self.child_exited {
            return false;
        }
        self.child_exited = false;
        self.healthy_since = Some(now);
        true
    }

    /// A step-down: out until `until`.
    pub fn hold(&mut self, until: Millis) {
        self.held_until = Some(until);
    }

    /// The hold ends (it ran out at `now`, or the successor failed, or nobody else leads).
    pub fn end_hold(&mut self, now: Option<Millis>) {
        if now.is_none_or(|now| self.held_until.is_some_and(|t| now >= t)) {
            self.held_until = None;
        }
    }

    pub fn leave(&mut self) -> bool {
        !std::mem::replace(&mut self.leaving, true)
    }

    /// A coordinator starts letting go for `reason` (for `to`); false if it already is.
    pub fn resign(&mut self, reason: Reason, to: Option<NodeRef>) -> bool {
        if self.resigning.is_some() {
            return false;
        }
        self.resigning = Some(Resign { reason, to });
        true
    }

    pub fn resigning(&self) -> bool {
        self.resigning.is_some()
    }

    /// Leadership ended otherwise (lost, or a newer coordinator took over): nothing to let go.
    pub fn stop_resigning(&mut self) {
        self.resigning = None;
    }

    /// The hooks let go: why and for whom leadership ends, if it does. A node shutting down
    /// leaves, and one `releasing` a lease hands over, even when nobody asked it to resign.
    pub fn let_go(&mut self, releasing: bool) -> Option<Resign> {
        let reason = if self.leaving {
            Reason::Shutdown
        } else if releasing {
            Reason::Preempted
        } else {
            return self.resigning.take();
        };
        Some(self.resigning.take().unwrap_or(Resign { reason, to: None }))
    }

    /// The registry holds the record (or lost it); false if nothing changed.
    pub fn set_registered(&mut self, ok: bool) -> bool {
        ok != std::mem::replace(&mut self.registered, ok)
    }
}

/// The node a step-down `to` a named member hands over to, among the `known` members: not
/// this node, not a witness, and known; `None` when no name was given (the next node takes
/// over). The error says why the name is refused.
pub fn successor(
    known: &[Member],
    me: &NodeRef,
    to: Option<String>,
) -> Result<Option<NodeRef>, String> {
    let Some(name) = to else {
        return Ok(None);
    };
    if name == me.name {
        return Err("--to names this node itself".into());
    }
    match known.iter().find(|m| m.name == name) {
        None => Err(format!("no member named {name} is known")),
        Some(m) if m.witness => Err(format!("{name} is a witness: it never leads")),
        Some(m) => Ok(Some(m.node_ref())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_preempts_only_standing_willing_and_healthy_for_the_delay() {
        let mut s = Standing::new(false, false, false, 100);
        assert!(!s.preempts(149, false, 50) && s.preempts(150, false, 50));
        assert!(!s.preempts(150, true, 50), "--no-preempt");
        s.set_maintenance(true);
        assert!(!s.preempts(150, false, 50), "does not stand");
    }

    #[test]
    fn a_step_down_goes_to_a_known_member_that_can_lead() {
        let m = |id: u64, witness: bool| Member {
            name: format!("node{id}"),
            id,
            host: "10.0.0.1".into(),
            port: 5000,
            witness,
        };
        let known = vec![m(1, false), m(2, false), m(3, true)];
        let me = NodeRef::new("node2", 2);
        assert_eq!(successor(&known, &me, None), Ok(None));
        assert_eq!(
            successor(&known, &me, Some("node1".into())),
            Ok(Some(NodeRef::new("node1", 1)))
        );
        for (to, why) in [
            ("node2", "--to names this node itself"),
            ("node3", "node3 is a witness: it never leads"),
            ("node9", "no member named node9 is known"),
        ] {
            assert_eq!(successor(&known, &me, Some(to.into())), Err(why.into()));
        }
    }

    #[test]
    fn letting_go_happens_once_and_names_why_and_for_whom() {
        let mut s = Standing::new(false, false, false, 0);
        let next = NodeRef::new("node4", 4);
        assert_eq!(s.let_go(false), None, "nothing to let go");
        assert!(s.resign(Reason::StepDown, Some(next.clone())));
        assert!(!s.resign(Reason::Unhealthy, None), "once");
        assert!(s.resigning());
        let r = s.let_go(false).unwrap();
        assert_eq!((r.reason, r.to), (Reason::StepDown, Some(next)));
        assert!(!s.resigning());
        // A lease being released hands over; shutting down leaves, whatever else holds.
        assert_eq!(s.let_go(true).map(|r| r.reason), Some(Reason::Preempted));
        assert!(s.resign(Reason::Maintenance, None));
        s.stop_resigning();
        assert!(!s.resigning());
        assert!(s.leave());
        assert_eq!(s.let_go(true).map(|r| r.reason), Some(Reason::Shutdown));
        assert!(s.resign(Reason::Unhealthy, None));
        assert_eq!(s.let_go(false).map(|r| r.reason), Some(Reason::Unhealthy));
    }

    #[test]
    fn the_weightiest_reason_is_named_and_sit_outs_end_by_time_or_on_demand() {
        let mut s = Standing::new(false, false, false, 0);
        assert_eq!(s.abstention(0), None);
        s.hold(1000);
        assert_eq!(
            s.abstention(400),
            Some(Abstention::SteppedDown { ms_left: 600 })
        );
        assert!(s.sits_out(400));
        // Maintenance outweighs the hold, and is no sit-out: it does not yield.
        s.set_maintenance(true);
        assert_eq!(s.abstention(400), Some(Abstention::Maintenance));
        assert!(!s.sits_out(400));
        s.set_maintenance(false);
        // The hold runs out by itself, and ends early on demand.
        assert_eq!(s.abstention(1000), None);
        s.end_hold(Some(500));
        assert!(s.sits_out(600));
        s.end_hold(None);
        assert!(!s.sits_out(600));
        // An exited child: out until its spell ends, and healthy only then.
        assert!(s.child_exit(2000));
        assert!(!s.child_exit(3000), "once");
        assert_eq!(
            s.abstention(1500),
            Some(Abstention::ChildExited { ms_left: 500 })
        );
        assert!(!s.healthy());
        assert!(s.child_back(2000));
        assert!(s.healthy() && s.healthy_for(2000, 0) && !s.healthy_for(2000, 1));
        // A failing check: unhealthy, and preempting waits for a new healthy spell.
        assert!(s.set_health(false, 2100) && !s.set_health(false, 2100));
        assert_eq!(s.abstention(2100), Some(Abstention::Unhealthy));
        assert!(s.set_health(true, 2200));
        assert!(!s.healthy_for(2300, 200) && s.healthy_for(2400, 200));
        assert!(s.leave() && !s.leave());
        assert_eq!(s.abstention(2400), Some(Abstention::Leaving));
    }
}

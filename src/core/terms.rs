//! Terms, a sub-machine of the election: the term a node follows (or leads or claims) and
//! whose it is, the highest it has seen, and the floor on disk. Its rules: a claim takes a
//! term above every term seen or used; an announcement is taken only for a newer term than
//! the one followed, or a repeat of it by the same coordinator; and every term used or
//! acknowledged is on disk (the floor) before anyone hears of it.

use super::member::NodeRef;
use super::ready::Persisted;
use super::rules::MAX_TERM;

/// What an announcement of `term` by a coordinator is to the term this node follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Newness {
    /// A newer term than the one followed.
    Newer,
    /// The term followed, announced again by its coordinator.
    Repeat,
    /// An older term, or the one followed announced by someone else: refused.
    Stale,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Terms {
    /// The term of the coordinator followed (or led or claimed); 0 before the first.
    current: u64,
    /// The coordinator of `current`, kept when a check finds it down: a check can fail on a
    /// node that lives (too busy to answer), and its repeated announcement for the term must
    /// still be accepted, or this node would refuse the only coordinator there is for good.
    leader: Option<NodeRef>,
    /// The highest term seen in any message or used.
    highest: u64,
    /// What is on disk (or about to be).
    persisted: Persisted,
    /// Quorum mode, after a restart: the coordinator this node would follow without
    /// preempting it, but whose term lies at or below the floor (this node may have promised
    /// that term to someone else). It waits for that coordinator to take a newer term, which
    /// its next renewal's refusal makes it do, instead of electing over it.
    follow_later: Option<NodeRef>,
}

impl Terms {
    /// A node that starts with what it `persisted`. In quorum mode every term up to the floor
    /// may have been promised before the restart: all of them count as taken, by nobody this
    /// node could follow again. Plain mode promises nothing, so it follows any coordinator;
    /// its own claims still start above the floor.
    pub fn new(quorum: bool, persisted: Persisted) -> Terms {
        Terms {
            current: if quorum { persisted.floor } else { 0 },
            leader: None,
            highest: persisted.floor,
            persisted,
            follow_later: None,
        }
    }

    /// The term followed, led or claimed.
    pub fn current(&self) -> u64 {
        self.current
    }

    /// The highest term seen or used.
    pub fn highest(&self) -> u64 {
        self.highest
    }

    pub fn persisted(&self) -> &Persisted {
        &self.persisted
    }

    /// A term seen in a message (capped: no input may push the terms to overflow).
    pub fn saw(&mut self, term: u64) {
        self.highest = self.highest.max(term.min(MAX_TERM));
    }

    /// This node uses or acknowledges `term`: true when the floor rose and must be written
    /// before anyone hears of it.
    pub fn record_used(&mut self, term: u64) -> bool {
        if term > self.persisted.floor {
            self.persisted.floor = term;
            return true;
        }
        false
    }

    /// `bully maintenance on|off`, kept across restarts.
    pub fn set_maintenance(&mut self, on: bool) {
        self.persisted.maintenance = on;
    }

    /// How an announcement of `term` by `coordinator` stands to the term followed.
    pub fn newness(&self, coordinator: &NodeRef, term: u64) -> Newness {
        if term > self.current {
            Newness::Newer
        } else if term == self.current && self.leader.as_ref() == Some(coordinator) {
            Newness::Repeat
        } else {
            Newness::Stale
        }
    }

    /// Follows `leader` in `term`.
    pub fn follow(&mut self, leader: &NodeRef, term: u64) {
        self.current = term;
        self.leader = Some(leader.clone());
    }

    /// A win: takes a term above every term seen or used (saturating: terms from others are
    /// capped, so this cannot overflow in practice, but no input may make it panic), and
    /// records it. Returns the term and whether the floor must be written first.
    pub fn take_next(&mut self, me: &NodeRef) -> (u64, bool) {
        self.highest = self.highest.saturating_add(1);
        self.follow(me, self.highest);
        (self.current, self.record_used(self.current))
    }

    /// Waits for `coordinator` to take a term above the floor before following it.
    pub fn follow_later(&mut self, coordinator: NodeRef) {
        self.follow_later = Some(coordinator);
    }

    /// Some coordinator is followed now: nothing to wait for.
    pub fn stop_waiting(&mut self) {
        self.follow_later = None;
    }

    /// Waiting for a coordinator to outgrow the floor.
    pub fn waits_to_follow(&self) -> bool {
        self.follow_later.is_some()
    }
}

#[cfg(test)]
#[path = "tests/terms.rs"]
mod tests;

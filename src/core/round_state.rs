//! An election round's bookkeeping, a sub-machine of the election: its number, the members it
//! read and has yet to ask, who asked it, whom it suspects or waits for, and why its
//! coordinator will be there. Its rules: a suspect is skipped by the next round only and
//! cleared when heard from; the askers of a round are bounded and remembered once; a hand-over
//! is waited for once and only while it is fresh. The transitions that send and log are in
//! `round.rs` and `failure.rs`.

use super::member::{higher, Member, NodeRef};
use super::quorum::Millis;
use super::ready::Reason;

/// Most election messages remembered per round, to announce to their senders.
const MAX_ASKERS: usize = 4096;
/// How much later each rank elects after a coordinator failure all followers saw at once.
const RANK_STEP_MS: Millis = 2;
/// The longest such wait.
const MAX_RANK_WAIT_MS: Millis = 250;

/// Kept by the election as `rounds`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundState {
    /// Numbers rounds, so that late answers and timers of an earlier one are told apart.
    number: u64,
    /// The last member list read for any purpose: renewals and releases go to them.
    known: Vec<Member>,
    /// Members read at the start of the round: the announcement goes to them.
    members: Vec<Member>,
    /// The higher members of this round not yet messaged: the round asks the highest first
    /// and the others only if it does not answer.
    rest: Vec<Member>,
    /// Lower nodes that sent this node an election message during its round: its
    /// announcement goes to them too, even if they registered after it read the members
    /// (otherwise they wait out the whole announcement wait).
    askers: Vec<NodeRef>,
    /// A check of the coordinator, asked for by an election message, is under way: further
    /// messages wait for it instead of asking again.
    verifying: bool,
    /// A coordinator whose watch closed or timed out, or whose lease ran out: the next round
    /// does not wait on it. Cleared when it is heard from again.
    suspect: Option<NodeRef>,
    /// Quorum mode: the higher node this one handed over to, and until when (ms) the next
    /// round waits for its announcement even if the member list lacks it. A peer list answers
    /// from what it last saw: right after a partition heals it can still leave out the node
    /// that is claiming, and a round without it won at once, over and over (tests/quorum.rs).
    handed_to: Option<(NodeRef, Millis)>,
    /// The last coordinator failed: the next one is a failover (`BULLY_REASON`).
    after_failure: bool,
    /// The round under way takes over from a coordinator that stepped down for this node: it
    /// asks nobody above.
    taking_over: bool,
}

impl RoundState {
    /// The round under way, or the last one.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// A new round; returns its number.
    pub fn start(&mut self) -> u64 {
        self.number += 1;
        self.askers.clear();
        self.number
    }

    pub fn known(&self) -> &[Member] {
        &self.known
    }

    /// A member list was read, for any purpose.
    pub fn read(&mut self, members: &[Member]) {
        self.known = members.to_vec();
    }

    /// The round's own member list, and the members above still to ask if the first does not
    /// answer.
    pub fn collected(&mut self, members: Vec<Member>) {
        self.members = members;
    }

    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// The round's member list, for its announcement (once).
    pub fn take_members(&mut self) -> Vec<Member> {
        std::mem::take(&mut self.members)
    }

    pub fn set_rest(&mut self, rest: Vec<Member>) {
        self.rest = rest;
    }

    /// The members above still to ask, once.
    pub fn take_rest(&mut self) -> Vec<Member> {
        std::mem::take(&mut self.rest)
    }

    pub fn has_rest(&self) -> bool {
        !self.rest.is_empty()
    }

    /// The members above `me` that stand, but a suspect, highest first.
    pub fn candidates_above(&self, members: &[Member], me: &NodeRef) -> Vec<Member> {
        let suspect = self.suspect.as_ref();
        let mut above: Vec<Member> = higher(members, me)
            .filter(|m| suspect.is_none_or(|s| !m.is(s)))
            .cloned()
            .collect();
        above.sort_by_key(|m| std::cmp::Reverse(m.node_ref()));
        above
    }

    /// After a failure every follower saw at once (a closed watch, a lapsed lease): how long
    /// `me` waits before it elects, by its rank among the known members that stand above it.
    /// The highest survivor elects at once (0), each one below a little later, so that most
    /// hear the new coordinator's announcement before they elect at all.
    pub fn rank_wait(&self, me: &NodeRef) -> Millis {
        let rank = self.candidates_above(&self.known, me).len() as Millis;
        (rank * RANK_STEP_MS).min(MAX_RANK_WAIT_MS)
    }

    /// A lower node sent an election message during the round (`running`): remembered, once
    /// and up to a bound, for the announcement.
    pub fn asked_by(&mut self, from: &NodeRef, running: bool) {
        if running && self.askers.len() < MAX_ASKERS && !self.askers.contains(from) {
            self.askers.push(from.clone());
        }
    }

    /// The askers an announcement to `to` would miss (the askers are forgotten).
    pub fn late_askers(&mut self, to: &[Member]) -> Vec<NodeRef> {
        std::mem::take(&mut self.askers)
            .into_iter()
            .filter(|a| !to.iter().any(|m| m.is(a)))
            .collect()
    }

    pub fn verifying(&self) -> bool {
        self.verifying
    }

    pub fn set_verifying(&mut self, on: bool) {
        self.verifying = on;
    }

    /// Skip `node` in the next round.
    pub fn suspect(&mut self, node: &NodeRef) {
        self.suspect = Some(node.clone());
    }

    pub fn clear_suspect(&mut self) {
        self.suspect = None;
    }

    /// Hearing from a node clears a suspicion of it.
    pub fn heard_from(&mut self, node: &NodeRef) {
        if self.suspect.as_ref() == Some(node) {
            self.suspect = None;
        }
    }

    /// Handed over to `to`: the next round waits for it until `until`.
    pub fn hand_to(&mut self, to: &NodeRef, until: Millis) {
        self.handed_to = Some((to.clone(), until));
    }

    pub fn forget_hand_over(&mut self) {
        self.handed_to = None;
    }

    /// Whether this round waits (once) for the node handed over to: the hand-over is fresh
    /// at `now`, the node is not suspected and not among the members `above` it asks.
    pub fn awaits_handed_to(&mut self, above: &[Member], now: Millis) -> Option<NodeRef> {
        let (to, until) = self.handed_to.take()?;
        let suspect = self.suspect.as_ref() == Some(&to);
        if now >= until || suspect || above.iter().any(|m| m.is(&to)) {
            return None;
        }
        Some(to)
    }

    /// The coordinator failed: the next one is a failover.
    pub fn failed_over(&mut self) {
        self.after_failure = true;
    }

    /// The coming round takes over from a coordinator that stepped down for this node.
    pub fn take_over(&mut self) {
        self.taking_over = true;
    }

    pub fn taking_over(&self) -> bool {
        self.taking_over
    }

    /// Why the coordinator after a win or an accepted announcement is there (said once).
    pub fn win_reason(&mut self) -> Reason {
        if std::mem::take(&mut self.taking_over) {
            Reason::StepDown
        } else if std::mem::take(&mut self.after_failure) {
            Reason::Failover
        } else {
            Reason::Elected
        }
    }
}

#[cfg(test)]
#[path = "tests/round_state.rs"]
mod tests;

//! An election round's bookkeeping, as data: its number, the members it read and has yet to
//! ask, who asked it, whom it suspects or waits for, and why its coordinator will be there.
//! The transitions are in `round.rs`, `announce.rs` and `failure.rs`.

use super::member::{Member, NodeRef};

/// Kept by [`super::election::Election`] as `rounds`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundState {
    /// Numbers rounds, so that late answers and timers of an earlier one are told apart.
    pub(super) number: u64,
    /// The last member list read for any purpose: renewals and releases go to them.
    pub(super) known: Vec<Member>,
    /// Members read at the start of the round: the announcement goes to them.
    pub(super) members: Vec<Member>,
    /// The higher members of this round not yet messaged: the round asks the highest first
    /// and the others only if it does not answer.
    pub(super) rest: Vec<Member>,
    /// Lower nodes that sent this node an election message during its round: its
    /// announcement goes to them too, even if they registered after it read the members
    /// (otherwise they wait out the whole announcement wait).
    pub(super) askers: Vec<NodeRef>,
    /// A check of the coordinator, asked for by an election message, is under way: further
    /// messages wait for it instead of asking again.
    pub(super) verifying: bool,
    /// A coordinator whose watch closed or timed out, or whose lease ran out: the next round
    /// does not wait on it. Cleared when it is heard from again.
    pub(super) suspect: Option<NodeRef>,
    /// Quorum mode: the higher node this one handed over to, and until when (ms) the next
    /// round waits for its announcement even if the member list lacks it. A peer list answers
    /// from what it last saw: right after a partition heals it can still leave out the node
    /// that is claiming, and a round without it won at once, over and over (tests/quorum.rs).
    pub(super) handed_to: Option<(NodeRef, u64)>,
    /// The last coordinator failed: the next one is a failover (`BULLY_REASON`).
    pub(super) after_failure: bool,
    /// The round under way takes over from a coordinator that stepped down for this node: it
    /// asks nobody above.
    pub(super) taking_over: bool,
}

//! Quorum mode's state, as data: the term a node claims or leads with the acknowledgements
//! that make its lease, and the view of it that `/nodeDetails` and `bully status` show. Kept
//! apart from the transitions (`claim.rs`), so that [`super::quorum_lease::QuorumLease`] can hold
//! it without importing the files that act on it.

use super::quorum::{Acks, Millis};

/// The term this node claims, leads or hands over, with what holds it up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lead {
    pub(super) term: u64,
    pub(super) acks: Acks,
    /// Until when a majority's promises hold (this node's clock); `None` before a majority
    /// acknowledged. Kept across a term bump until the new term has its own.
    pub(super) lease_until: Option<Millis>,
    /// Letting go (for a higher node, a step-down, ...): renewing until the hooks let go,
    /// then releasing.
    pub(super) releasing: bool,
    /// The announcements out for this term, whose answers come back one by one.
    pub(super) sent: Vec<Sent>,
    pub(super) retry_armed: bool,
    /// "No quorum" was logged for this term.
    pub(super) warned: bool,
    /// When the member list was last read for this claim.
    pub(super) members_read: Millis,
}

/// One announcement: when it was handed to the shell, how many answers are still due, and
/// whether any said its member was promised to another coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Sent {
    pub(super) seq: u64,
    pub(super) at: Millis,
    pub(super) due: usize,
    pub(super) promised: bool,
}

/// Where a node stands in quorum mode, as `/nodeDetails` and `bully status` show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QuorumState {
    /// Following a coordinator, or waiting for one.
    Following,
    /// Announced a term; acknowledgements are coming in.
    Claiming,
    /// Claimed a term that a majority has not acknowledged: this side of the cluster is a
    /// minority, or too many nodes are down.
    NoQuorum,
    /// Holds a lease: leads.
    Leading,
    /// Handing over: stopped acting, releasing its followers once its hooks let go.
    Releasing,
}

impl QuorumState {
    pub fn label(self) -> &'static str {
        match self {
            QuorumState::Following => "following",
            QuorumState::Claiming => "claiming",
            QuorumState::NoQuorum => "no-quorum",
            QuorumState::Leading => "leading",
            QuorumState::Releasing => "releasing",
        }
    }
}

/// Quorum mode's part of a snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuorumView {
    pub size: usize,
    pub needed: usize,
    /// Members (this one included) whose acknowledgement of the term claimed or led holds.
    pub acks: usize,
    pub state: QuorumState,
    pub lease_ms_left: Option<u64>,
    /// Whom this node is promised to, and for how long more.
    pub promised_to: Option<String>,
    pub promise_ms_left: Option<u64>,
}

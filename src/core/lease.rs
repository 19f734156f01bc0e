//! Quorum mode as `/nodeDetails` and `bully status` show it: the state and the view of the
//! lease ([`super::quorum_lease::QuorumLease`] holds the lease itself).

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

    /// The state a peer's `/nodeDetails` names, if this build knows it.
    pub fn from_label(label: &str) -> Option<QuorumState> {
        [
            QuorumState::Following,
            QuorumState::Claiming,
            QuorumState::NoQuorum,
            QuorumState::Leading,
            QuorumState::Releasing,
        ]
        .into_iter()
        .find(|s| s.label() == label)
    }

    /// A node that claims a term is watched as a coordinator is: its followers have
    /// acknowledged it and wait for the majority with it.
    pub fn asks_to_be_followed(self) -> bool {
        matches!(self, QuorumState::Claiming | QuorumState::NoQuorum)
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

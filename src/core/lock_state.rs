//! What a node knows of the external leader lock (`--consul-lock`), as data; the transitions
//! are in `lock.rs`.

/// What this node knows of the leader lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockState {
    /// Numbers acquisitions, so that answers and losses are matched to theirs.
    pub(super) attempt: u64,
    /// An acquisition is under way.
    pub(super) pending: bool,
    /// The lock's `LockIndex` while this node holds it.
    pub(super) held: Option<u64>,
    /// The last refusal logged: a lock held elsewhere for long logs once, not every second.
    pub(super) last_refusal: Option<String>,
    /// The hooks still act on a leadership the lock backed: it is released once they let go.
    pub(super) hooks_owed: bool,
}

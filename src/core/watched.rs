//! What a node says of itself to those who would watch it: whether it is to be followed (its
//! followers hold a watch on it), and what it says from the instant SIGINT or SIGTERM arrives,
//! before the core has stepped the shutdown. The shell asks; the rules live here.

use super::election::Snapshot;

impl Snapshot {
    /// A node is watched while it leads, and in quorum mode while it claims a term: its
    /// followers have acknowledged it and wait for the majority with it.
    pub fn asks_to_be_followed(&self) -> bool {
        self.is_coordinator
            || self
                .quorum
                .as_ref()
                .is_some_and(|q| q.state.asks_to_be_followed())
    }

    /// The view once SIGINT or SIGTERM has arrived: the node no longer says it leads, as the
    /// core will not once the signal thread has stepped it. Watches and health checks that
    /// come in between already see a node that is going.
    pub fn once_stopping(mut self) -> Snapshot {
        self.is_coordinator = false;
        self
    }
}

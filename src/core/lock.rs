//! The leader-lock gate, a sub-machine of the election (`--consul-lock`, `--etcd-lock`):
//! leading also takes holding an external lock, which the shell takes and watches. It numbers
//! acquisitions so answers and losses match theirs, keeps one under way at a time, logs a
//! refusal once rather than every retry, and decides when a lock held is released: once the
//! node neither leads nor waits for it and its hooks let go of what it backed. The election
//! composes it (`Election::awaits_lock`, `on_lock`, `settle_lock` in `election.rs`).

pub use super::settings::{ETCD_LOCK_RETRY_MS, LOCK_RETRY_MS};

/// What this node knows of the leader lock.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockGate {
    /// Numbers acquisitions, so that answers and losses are matched to theirs.
    attempt: u64,
    /// An acquisition is under way.
    pending: bool,
    /// The lock's `LockIndex` while this node holds it.
    held: Option<u64>,
    /// The last refusal logged: a lock held elsewhere for long logs once, not every second.
    last_refusal: Option<String>,
    /// The hooks still act on a leadership the lock backed: it is released once they let go.
    hooks_owed: bool,
}

impl LockGate {
    /// The `LockIndex` of the lock held, if any.
    pub fn held(&self) -> Option<u64> {
        self.held
    }

    pub fn pending(&self) -> bool {
        self.pending
    }

    /// Whether `attempt` is the latest acquisition.
    pub fn is_current(&self, attempt: u64) -> bool {
        attempt == self.attempt
    }

    /// Starts an acquisition; returns its number.
    pub fn acquire(&mut self) -> u64 {
        self.attempt += 1;
        self.pending = true;
        self.attempt
    }

    /// The shell holds the lock (whatever the attempt: it counts as held until released).
    pub fn got(&mut self, attempt: u64, index: u64) {
        if attempt == self.attempt {
            self.pending = false;
        }
        self.held = Some(index);
        self.last_refusal = None;
    }

    /// The latest acquisition was refused; false if `attempt` is an older one.
    pub fn refused(&mut self, attempt: u64) -> bool {
        if attempt != self.attempt {
            return false;
        }
        self.pending = false;
        true
    }

    /// Whether a refusal for `why` is news worth a log line (it is remembered if so).
    pub fn new_refusal(&mut self, why: &str) -> bool {
        if self.last_refusal.as_deref() == Some(why) {
            return false;
        }
        self.last_refusal = Some(why.to_string());
        true
    }

    /// The lock held by `attempt` was lost; false if it was not the one held.
    pub fn lost(&mut self, attempt: u64) -> bool {
        if attempt != self.attempt || self.held.is_none() {
            return false;
        }
        self.held = None;
        true
    }

    /// At the end of a step: whether to release the lock now. A leader's hooks (if any) owe a
    /// let-go, which `let_go` pays; the lock goes once it is neither `wanted` (leading, or
    /// waiting for it) nor owed.
    pub fn settle(&mut self, leading: bool, has_hooks: bool, let_go: bool, wanted: bool) -> bool {
        if leading {
            self.hooks_owed = has_hooks;
        } else if let_go {
            self.hooks_owed = false;
        }
        if self.held.is_some() && !wanted && !self.hooks_owed {
            self.held = None;
            return true;
        }
        false
    }
}

#[cfg(test)]
#[path = "tests/lock.rs"]
mod tests;

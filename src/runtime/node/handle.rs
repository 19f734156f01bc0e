//! The narrow handle every part of the shell gets instead of the whole node: step the core,
//! look at it, follow its changes, find a member. Parts that hold it cannot reach into each
//! other's fields, which keeps the import graph a tree.

use crate::core::election::Snapshot;
use crate::core::event::Event;
use crate::core::member::{Member, NodeRef};
use crate::core::ready::{Change, Reason, Reply};
use std::sync::mpsc::Receiver;
use std::time::Duration;

/// What subscribers hear, in the order it happened.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The coordinator this node knows changed.
    Changed(Change),
    /// This node, still coordinator, lets go of leadership for `reason`: stop its work and
    /// run `--on-demoted`, then step `Event::LetGo`.
    LetGo { reason: Reason, term: u64 },
    /// This node, leading already, won again in `term`: announce the virtual IPs again.
    LeadingAgain { term: u64 },
}

pub trait Handle: Send + Sync {
    /// Applies `event` to the core and carries out what follows; returns the reply for a
    /// message.
    fn step(&self, event: Event) -> Option<Reply>;
    /// The core's state now.
    fn snapshot(&self) -> Snapshot;
    /// Every later change of coordinator (and request to let go), in order.
    fn subscribe(&self) -> Receiver<Notice>;
    /// Ends every subscription: each receiver gets the changes already sent, then sees the
    /// channel closed (shutdown, so no hook starts for a change after it).
    fn close_subscriptions(&self);
    /// Where to reach `node`.
    fn locate(&self, node: &NodeRef) -> Option<Member>;
    /// Waits, at most `within`, until no effect is under way (shutdown: the last releases).
    fn flush(&self, within: Duration);
}

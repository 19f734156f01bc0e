//! What one step of the core hands back: the reply for the caller, the effects the shell must
//! carry out, every change of coordinator and every round edge in the order they happened,
//! and the lines to log. The shell executes this and decides nothing of its own.

use super::event::{ProbePurpose, Purpose, Timer};
use super::member::{Member, NodeRef};
pub use super::note::{Detection, Note, Reason};
use std::time::Duration;

/// The output of one step.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ready {
    /// The answer to the message that was stepped, if it was one.
    pub reply: Option<Reply>,
    /// I/O to carry out; each result comes back as an event.
    pub effects: Vec<Effect>,
    /// Changes of the coordinator this node knows, in order.
    pub changes: Vec<Change>,
    /// Election rounds that started or ended, in order.
    pub rounds: Vec<RoundEdge>,
    /// What to log.
    pub notes: Vec<Note>,
    /// What must be on disk before any effect is carried out or the reply is sent: the terms
    /// this node used or acknowledged, so that it never reuses one after a restart.
    pub persist: Option<Persisted>,
}

/// The part of a node's state that survives a restart: a term at or above every term this
/// node claimed or acknowledged. After a restart it claims only terms above it and
/// acknowledges no announcement at or below it, so no term is ever granted twice. Each new
/// term is written (one fsync: 0.2 ms p50, 4.7 ms p99 on ext4 here) rather than a block of
/// them reserved ahead: a reserve saved writes but made every restart jump the term by up to
/// its size, and users read terms (a demo's "term 1" was 66, 131, 196 on later runs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Persisted {
    pub floor: u64,
    /// `bully maintenance on`: survives a restart until turned off.
    pub maintenance: bool,
}

/// I/O for the shell. None of it may run under the state lock.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Read the members from the registry; answer with `Event::Members`.
    CollectMembers { purpose: Purpose },
    /// Ask each of `members` which term it follows (`GET /nodeDetails`); answer with
    /// `Event::TermsAnswered`.
    AskTerms { members: Vec<Member> },
    /// Send an election message (`POST /proxy`) to each of `to` in parallel; answer with
    /// `Event::ElectionAnswered`.
    SendElection {
        round: u64,
        to: Vec<Member>,
        term: u64,
    },
    /// This node claims (or leads, or renews) `term`: send `POST /announce` to each of `to`;
    /// answer with `Event::AnnounceAnswered` carrying `seq`.
    Announce {
        to: Vec<Member>,
        term: u64,
        seq: u64,
    },
    /// Like `Announce`, to nodes the core knows by name only (they asked it during its round
    /// but registered after it read the members): the shell finds their addresses.
    AnnounceTo {
        nodes: Vec<NodeRef>,
        term: u64,
        seq: u64,
    },
    /// Tell each of `to` that this node, coordinator of `term`, stopped acting
    /// (`POST /release`). Nothing comes back.
    Release { to: Vec<Member>, term: u64 },
    /// The watch on `coordinator` closed: ask it (`GET /nodeDetails`) whether it is really
    /// gone; answer with `Event::GoneChecked`.
    ConfirmGone { coordinator: NodeRef },
    /// Quorum mode: the `--exec` child may run until `until` (this node's clock) and must be
    /// killed then, whatever happens to this process meanwhile.
    Fence { until: u64 },
    /// Let go of leadership while still coordinator: stop the `--exec` child and run
    /// `--on-demoted` (with `reason`), then step `Event::LetGo`.
    StopLeading { reason: Reason, term: u64 },
    /// This node led already and won again, in `term`: others may have led meanwhile (a split
    /// healed), and clients may have learnt their host for the virtual IPs; announce them
    /// again (plain mode).
    LeadingAgain { term: u64 },
    /// Ask `to` to take over (`POST /takeover`): this node stepped down for it.
    TakeOver { to: NodeRef, term: u64 },
    /// Ask the coordinator whether it still leads; answer with `Event::CoordinatorChecked`.
    CheckCoordinator { coordinator: NodeRef },
    /// `GET /` on each of `nodes`; answer with `Event::Probed`.
    Probe {
        purpose: ProbePurpose,
        nodes: Vec<NodeRef>,
    },
    /// Fire `Event::Timer(timer)` after `after`.
    StartTimer { timer: Timer, after: Duration },
    /// `--consul-lock`: take the leader lock (acquisition `attempt`) and, once held, watch
    /// it; answer with `Event::Lock`. Carried out in order with `ReleaseLock`.
    AcquireLock { attempt: u64 },
    /// `--consul-lock`: let go of the leader lock and stop watching it. Nothing comes back.
    ReleaseLock,
}

/// The answer to a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    Proxy(ProxyReply),
    Announce(AnnounceReply),
    /// Taken; nothing to say but OK.
    Ok,
    /// The answer to an operator's request (`step-down`, `maintenance`).
    Control(ControlReply),
}

/// What an operator's request came to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlReply {
    /// Done (or under way: a step-down completes once the hooks let go).
    Done { message: String },
    /// This node cannot do it, and why.
    Refused { message: String },
}

/// The answer to an election message (`/proxy`) from another node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyReply {
    /// We outrank the sender: it must not become coordinator.
    Ok,
    /// We outrank the sender and are the coordinator of `term`: the answer doubles as our
    /// announcement, so the sender needs no new election.
    Coordinator { term: u64 },
    /// The sender does not rank below us; it sent the message to the wrong node.
    NotLower,
}

/// The answer to an announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnnounceReply {
    /// Accepted, or answered with an election of our own (bully-back). In quorum mode an
    /// acceptance carries this node's promise; an answer without one counts for nothing.
    Ok { promise_ms: Option<u64> },
    /// From an older term, or a second coordinator for the term we follow: refused, with our
    /// term so the announcer can elect again above it.
    Stale { term: u64 },
    /// Quorum mode: this node is promised to `to` (itself, when it leads) for `remaining_ms`.
    Promised {
        to: Option<String>,
        remaining_ms: u64,
        term: u64,
    },
}

/// A change of the coordinator this node knows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub before: Option<NodeRef>,
    pub after: Option<NodeRef>,
    /// The term followed (or led) right after the change, so a subscriber needs no second
    /// look at the state, which may have moved on by then.
    pub term: u64,
    pub reason: Reason,
    /// `--consul-lock`: the leader lock's `LockIndex` when this node became coordinator
    /// holding it (`BULLY_CONSUL_LOCK_INDEX`).
    pub lock_index: Option<u64>,
    /// Quorum mode, when this node became coordinator: the end of the lease a majority
    /// granted it, in the node's clock. The `--exec` child's supervisor gets it before the
    /// child starts, so no instant of the child's life is unfenced, and a change handled
    /// after its lease ended starts nothing.
    pub fence: Option<u64>,
}

impl Change {
    /// This node became coordinator.
    pub fn elected(&self, me: &NodeRef) -> bool {
        self.after.as_ref() == Some(me)
    }

    /// This node stopped being coordinator.
    pub fn demoted(&self, me: &NodeRef) -> bool {
        self.before.as_ref() == Some(me)
    }
}

/// An election round starting or ending.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoundEdge {
    Started {
        round: u64,
    },
    /// The round ended: this node won it, or accepted a coordinator.
    Ended {
        round: u64,
        won: bool,
    },
}

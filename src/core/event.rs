//! Everything that can happen to a node, as the core sees it: a timer or schedule fired, a
//! message arrived, or the answers to what the core asked the shell to do came back. The
//! shell reports what it saw (a status, a timeout, a closed socket) without judging it; the
//! core decides what it means.

use super::member::{Member, NodeRef};

/// An input to [`super::election::Election::step`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The startup delay passed: learn the cluster's term, then run the first election.
    Startup,
    /// The health schedule fired.
    HealthTick,
    /// The registry lists this node again after it could not (unreachable, or it lost the
    /// record).
    Rejoined,
    /// Whether this node holds its registration: `false` when it cannot register (a registry
    /// that refuses the write, a name another live node holds), `true` once it can again.
    Registered { ok: bool },
    /// A timer the core started ran out.
    Timer(Timer),
    /// The members the registry listed, read for `purpose`.
    Members {
        purpose: Purpose,
        members: Vec<Member>,
    },
    /// What the members said when asked which term they follow.
    TermsAnswered { answers: Vec<(Member, CheckAnswer)> },
    /// The answers to the election messages of `round`, one per member messaged.
    ElectionAnswered {
        round: u64,
        answers: Vec<(Member, ElectionAnswer)>,
    },
    /// The answers to this node's announcement `seq` for `term`.
    AnnounceAnswered {
        term: u64,
        seq: u64,
        answers: Vec<(Member, AnnounceAnswer)>,
    },
    /// What the coordinator said when asked whether it still leads.
    CoordinatorChecked {
        coordinator: NodeRef,
        answer: CheckAnswer,
    },
    /// The answers to a liveness probe.
    Probed {
        purpose: ProbePurpose,
        answers: Vec<(NodeRef, ProbeAnswer)>,
    },
    /// The beat stream held on `coordinator` delivered its first beat. Until the stream ends
    /// ([`Event::WatchEnded`]) its beats are the health check: the coordinator writes one
    /// every `--heartbeat`, only while it asks to be followed and its state answers.
    BeatsHeard { coordinator: NodeRef },
    /// The held watch on `coordinator` ended.
    WatchEnded { coordinator: NodeRef, end: WatchEnd },
    /// `POST /proxy`: an election message from `from`, who has seen `term`.
    Proxy { from: NodeRef, term: u64 },
    /// `POST /response`: the original's comparison step.
    Response { from: NodeRef, term: u64 },
    /// `POST /announce`: `from` declares itself coordinator of `term`.
    Announce { from: NodeRef, term: u64 },
    /// `POST /release`: `from`, coordinator of `term`, has stopped acting (its `--exec` child
    /// is gone and its hooks ran): whoever promised it is free.
    Release { from: NodeRef, term: u64 },
    /// What `GET /nodeDetails` said after the watch on `coordinator` closed: whether the
    /// process behind it is really gone.
    GoneChecked {
        coordinator: NodeRef,
        answer: CheckAnswer,
    },
    /// The hooks have let go of leadership: the `--exec` child stopped and `--on-demoted`
    /// ran (at once when there are no hooks).
    LetGo,
    /// SIGINT or SIGTERM: stop acting, stand for nothing, release what was promised.
    ShuttingDown,
    /// The health check (`--check`, `--check-url`) changed its verdict, after its rise or fall.
    Health { healthy: bool },
    /// This node's `--exec` child exited by itself (`--exec-exit-unhealthy` counts that as
    /// unhealthy).
    ExecExited,
    /// `bully maintenance on|off`: stand for election, or not.
    Maintenance { on: bool },
    /// `bully step-down [--to NODE]`: hand over, to `to` if named. `listing`: the members the
    /// registry listed when the request came in, as the shell read them; `--to` may name a
    /// node that joined since the last health tick, so a named target is looked up in it.
    StepDown {
        to: Option<String>,
        listing: Option<Vec<Member>>,
    },
    /// `POST /takeover`: the coordinator `from` of `term` stepped down for this node.
    TakeOver { from: NodeRef, term: u64 },
    /// `--consul-lock`: what came of taking the leader lock, or that a held one was lost.
    Lock(LockAnswer),
}

/// `--consul-lock`: the shell's report on the leader lock. `attempt` is the acquisition it
/// concerns (see [`super::ready::Effect::AcquireLock`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LockAnswer {
    /// This node holds the lock; `index` is its `LockIndex`, the fencing token.
    Held { attempt: u64, index: u64 },
    /// It did not get the lock, and why (for the log).
    Refused { attempt: u64, why: String },
    /// The lock it held is no longer its own (its session was invalidated, the key was taken
    /// or deleted, or Consul could not confirm it), and why.
    Lost { attempt: u64, why: String },
}

/// Timers the core starts; each carries what it belongs to, so one that fires after the node
/// moved on is recognised and ignored.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Timer {
    /// A higher member answered the election message of `round`: its announcement is due.
    Announcement { round: u64 },
    /// The watched coordinator said it stopped leading: its successor's announcement is due.
    /// (`term` is the one it was coordinator of: a timer left from an earlier spell of the
    /// same node must not drop it now.)
    Successor { coordinator: NodeRef, term: u64 },
    /// Quorum mode: time to renew the claim or lease of `term`.
    Renew { term: u64 },
    /// Quorum mode: some members were still promised to another coordinator; ask again.
    ClaimRetry { term: u64 },
    /// Quorum mode: the lease of `term` may be running out.
    LeaseCheck { term: u64 },
    /// Quorum mode: the promise to `coordinator` may have run out.
    PromiseExpiry { coordinator: NodeRef },
    /// Quorum mode: round `round` waits for this node's own promise to run out.
    PromiseFree { round: u64 },
    /// `--preempt-delay` has passed since this node became healthy: it may take over.
    PreemptReady,
    /// A step-down's hold, or an exited `--exec` child's, is over: stand again.
    StandAgain,
    /// A node sitting out lost its coordinator in `term`: if still nobody leads, it stands.
    Leaderless { term: u64 },
    /// This node's turn to elect after a coordinator failure every follower saw at once.
    Ranked,
    /// `--consul-lock`: acquisition `attempt` was refused; time to ask again.
    LockRetry { attempt: u64 },
    /// Plain mode: announce `term` again to the members that missed it.
    Reannounce { term: u64 },
}

/// Why the members were read.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// To message the higher ones in election `round`.
    Round(u64),
    /// This node leads: to look for a live member above it.
    LookForHigher,
    /// Before the first election: to ask the others which term they follow.
    LearnTerms,
    /// Quorum mode: a node claiming a term looks for members that registered since.
    Refresh,
}

/// Why members were probed (`GET /`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProbePurpose {
    /// A lower coordinator replaced `previous`: is `previous` still alive?
    Previous(NodeRef),
    /// This node leads: is any member above it alive?
    Higher,
}

/// A coordinator's claim made inside an answer: the name, id and term it says it leads in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claim {
    pub name: String,
    pub id: u64,
    pub term: u64,
}

/// How a peer answered an election message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ElectionAnswer {
    /// `200 {"Response":"OK"}`, with the sender's claim to lead when it is the coordinator.
    Ok { claim: Option<Claim> },
    /// `503` every time it was asked.
    Busy,
    /// Any other answer: a status other than 200, or a body that is not an OK.
    Refused { status: u16 },
    /// No answer at all.
    Unreachable(Unreachable),
}

/// How a peer answered an announcement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AnnounceAnswer {
    /// Accepted; in quorum mode with the peer's promise, in milliseconds of its clock.
    Accepted {
        promise_ms: Option<u64>,
    },
    /// `409` naming the term the peer follows.
    Stale {
        term: u64,
    },
    /// `409`: the peer is promised to another coordinator for `remaining_ms` more.
    Promised {
        remaining_ms: u64,
    },
    Busy,
    Refused {
        status: u16,
    },
    Unreachable(Unreachable),
}

/// What `GET /nodeDetails` on a member gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckAnswer {
    /// The node answered as `name`/`id`, saying whether it leads (or, in quorum mode,
    /// claims a term and waits for a majority) and the term it follows.
    Details {
        name: String,
        id: u64,
        is_coordinator: bool,
        claiming: bool,
        term: u64,
        /// The coordinator it follows.
        follows: Option<NodeRef>,
        /// It stands for election and would take over from a lower coordinator.
        preempts: bool,
    },
    /// `503`: too many requests in flight.
    Busy,
    /// Another status, or a body that is not node details.
    Other {
        status: u16,
    },
    Unreachable(Unreachable),
    /// No address is known for the coordinator.
    NotLocated,
}

/// What a probe (`GET /nodeDetails`) of a member gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProbeAnswer {
    /// It answered as a node: alive, whether it would take over from a lower coordinator,
    /// and whether it says it leads.
    Node {
        preempts: bool,
        leads: bool,
    },
    /// Another status, or a body that is not node details.
    Status(u16),
    Unreachable(Unreachable),
    NotLocated,
}

/// How a held watch on the coordinator ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WatchEnd {
    /// `200`: the hold ended and it still leads.
    Leading,
    /// `410` with reason `shutdown`.
    ShuttingDown,
    /// `410` for another reason: it stopped leading.
    Demoted,
    /// `409`: it says it is not the coordinator.
    NotCoordinator,
    /// `503`: it holds as many watches as it takes.
    Busy,
    /// Any other status.
    Other { status: u16 },
    /// No answer within the hold plus the timeout.
    TimedOut,
    /// The connection closed or failed without an answer.
    Closed,
}

/// Why a peer could not be reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unreachable {
    /// Nothing came back in time (a frozen node, a dead host, a partition).
    Timeout,
    /// The connection was refused: nothing listens there.
    Refused,
    /// The connection closed or reset before an answer.
    Closed,
    /// Anything else (name resolution, a malformed answer).
    Other,
}

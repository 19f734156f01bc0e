//! Why leadership changed ([`Reason`]), how a failure was noticed ([`Detection`]) and the
//! lines a step logs ([`Note`]), with their texts: the vocabulary the core speaks to the log,
//! the hooks and the metrics. Re-exported by `ready.rs`, which hands them back.

use std::fmt;

/// Why leadership changed, for the hooks (`BULLY_REASON`) and the logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Won an election, or followed a coordinator that did.
    Elected,
    /// The coordinator before failed, and this is its successor.
    Failover,
    /// The coordinator was asked to step down (`bully step-down`).
    StepDown,
    /// The coordinator's health check failed.
    Unhealthy,
    /// A higher node took over.
    Preempted,
    /// The coordinator went into maintenance (`bully maintenance on`).
    Maintenance,
    /// The coordinator shut down.
    Shutdown,
    /// Quorum mode: the coordinator could not renew its lease.
    LostQuorum,
    /// `--consul-lock`: the coordinator lost the leader lock.
    LostLock,
}

impl Reason {
    pub fn label(self) -> &'static str {
        match self {
            Reason::Elected => "elected",
            Reason::Failover => "failover",
            Reason::StepDown => "step-down",
            Reason::Unhealthy => "unhealthy",
            Reason::Preempted => "preempted",
            Reason::Maintenance => "maintenance",
            Reason::Shutdown => "shutdown",
            Reason::LostQuorum => "lost-quorum",
            Reason::LostLock => "lost-lock",
        }
    }
}

/// How a coordinator's failure was noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detection {
    HealthCheck,
    Watch,
    /// Quorum mode: no renewal came within the lease.
    Lease,
}

impl Detection {
    /// The metrics label.
    pub fn label(self) -> &'static str {
        match self {
            Detection::HealthCheck => "health_check",
            Detection::Watch => "watch",
            Detection::Lease => "lease",
        }
    }
}

/// A line to log. The texts are the original design's where it had them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Note {
    ElectionStarted {
        me: String,
    },
    HigherNodes {
        names: Vec<String>,
    },
    /// Quorum mode: the node handed over to is not in the member list yet.
    AwaitingHandedTo {
        name: String,
    },
    CoordinatorIs {
        name: String,
        term: u64,
    },
    AboveLargestTerm {
        from: String,
        term: u64,
    },
    StaleAnnouncement {
        from: String,
        term: u64,
        following: Option<String>,
        our_term: u64,
    },
    LowerAnnounced {
        from: String,
        me: String,
    },
    AnnouncementRefused {
        me: String,
        term: u64,
    },
    PreviousAlive {
        previous: String,
        current: String,
    },
    HigherAnswers {
        me: String,
    },
    NoHigherAnswered {
        me: String,
    },
    NoAnnouncement {
        me: String,
    },
    /// The coordinator failed its check or its watch; counted in the metrics.
    CoordinatorDown {
        name: String,
        by: Detection,
    },
    /// How the watch saw the coordinator go.
    WatchLost {
        name: String,
        how: &'static str,
    },
    TermsLearned {
        term: u64,
    },
    Claiming {
        term: u64,
        needed: usize,
        size: usize,
    },
    NoQuorum {
        term: u64,
        acks: usize,
        needed: usize,
        size: usize,
    },
    LeaseLost {
        term: u64,
    },
    LeaseExpired {
        name: String,
    },
    HandingOver {
        to: String,
    },
    Released {
        to: Vec<String>,
    },
    ReleasedBy {
        name: String,
    },
    WaitingForPromise {
        to: Option<String>,
        ms: u64,
    },
    ShuttingDown,
    /// Stopping the leader's work before handing over.
    LettingGo {
        reason: Reason,
    },
    Health {
        healthy: bool,
    },
    Maintenance {
        on: bool,
    },
    TakingOver {
        from: String,
    },
    /// Holding back by choice (`why`: `stepped-down`, `child-exited`) for `ms`.
    SittingOut {
        why: &'static str,
        ms: u64,
    },
    /// Nobody led for a while, so the sit-out ended `ms_left` early.
    SitOutEnded {
        why: &'static str,
        ms_left: u64,
    },
    /// This node lost or regained its registration.
    Registered {
        ok: bool,
    },
    /// `--consul-lock`: nobody above answered; taking the leader lock before leading.
    AcquiringLock,
    LockHeld {
        index: u64,
    },
    LockRefused {
        why: String,
    },
    LockLost {
        why: String,
    },
}

impl Note {
    /// Lines that come in bursts and change nothing (a refused message each): a burst is
    /// summarised. Every line that records a change is always logged.
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Note::StaleAnnouncement { .. } | Note::AboveLargestTerm { .. }
        )
    }

    /// Warnings are for a coordinator lost; the rest is the election's normal course.
    pub fn is_warning(&self) -> bool {
        matches!(
            self,
            Note::CoordinatorDown { .. }
                | Note::WatchLost { .. }
                | Note::NoAnnouncement { .. }
                | Note::NoQuorum { .. }
                | Note::LeaseLost { .. }
                | Note::LeaseExpired { .. }
                | Note::Health { healthy: false }
                | Note::Registered { ok: false }
                | Note::LockRefused { .. }
                | Note::LockLost { .. }
        )
    }
}

impl fmt::Display for Note {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Note::ElectionStarted { me } => write!(f, "Starting election in: {me}"),
            Note::HigherNodes { names } => write!(f, "higher nodes: [{}]", names.join(", ")),
            Note::AwaitingHandedTo { name } => write!(
                f,
                "{name}, handed over to a moment ago, is not listed yet: waiting for its announcement"
            ),
            Note::CoordinatorIs { name, term } => {
                write!(f, "Coordinator is: {name} (term {term})")
            }
            Note::AboveLargestTerm { from, term } => write!(
                f,
                "Ignoring announcement of {from} for term {term}, above the largest term"
            ),
            Note::StaleAnnouncement {
                from,
                term,
                following,
                our_term,
            } => write!(
                f,
                "Ignoring stale announcement of {from} for term {term}; following {} in term \
                 {our_term}",
                following.as_deref().unwrap_or("nobody")
            ),
            Note::LowerAnnounced { from, me } => {
                write!(f, "{from} announced itself but {me} ranks higher: electing")
            }
            Note::AnnouncementRefused { me, term } => write!(
                f,
                "{me}'s announcement was refused by a node in term {term}; electing again"
            ),
            Note::PreviousAlive { previous, current } => {
                write!(f, "{previous} is alive and ranks above {current}: electing")
            }
            Note::HigherAnswers { me } => write!(f, "A node above {me} answers: electing"),
            Note::NoHigherAnswered { me } => write!(f, "No higher node answered in: {me}"),
            Note::NoAnnouncement { me } => {
                write!(f, "No announcement arrived in: {me}; electing again")
            }
            Note::CoordinatorDown { name, .. } => write!(f, "Coordinator {name} is down"),
            Note::WatchLost { name, how } => write!(f, "Coordinator {name} {how} (watch)"),
            Note::TermsLearned { term } => write!(f, "The newest term the members know is {term}"),
            Note::Claiming { term, needed, size } => write!(
                f,
                "Claiming term {term}: {needed} of {size} acknowledgements needed"
            ),
            Note::NoQuorum {
                term,
                acks,
                needed,
                size,
            } => write!(
                f,
                "No quorum for term {term}: {acks} of {size} acknowledged, {needed} needed; not \
                 leading"
            ),
            Note::LeaseLost { term } => write!(
                f,
                "Lease of term {term} not renewed by a majority: stepping down"
            ),
            Note::LeaseExpired { name } => {
                write!(f, "Lease of coordinator {name} ran out without a renewal")
            }
            Note::HandingOver { to } => write!(
                f,
                "{to} claims leadership and ranks higher: handing over once the hooks let go"
            ),
            Note::Released { to } => {
                write!(
                    f,
                    "Told the members it no longer leads: [{}]",
                    to.join(", ")
                )
            }
            Note::ReleasedBy { name } => write!(f, "{name} released leadership"),
            Note::WaitingForPromise { to, ms } => write!(
                f,
                "Promised to {} for {ms} ms more: standing once it runs out",
                to.as_deref().unwrap_or("nobody (just started)")
            ),
            Note::ShuttingDown => write!(f, "Shutting down: standing for nothing"),
            Note::LettingGo { reason } => write!(
                f,
                "Stepping down ({}): stopping the leader's work before handing over",
                reason.label()
            ),
            Note::Health { healthy: true } => {
                write!(f, "Health check passes: standing for election")
            }
            Note::Health { healthy: false } => {
                write!(f, "Health check fails: not standing for election")
            }
            Note::Maintenance { on: true } => {
                write!(
                    f,
                    "Maintenance on: not standing for election until it is turned off"
                )
            }
            Note::Maintenance { on: false } => write!(f, "Maintenance off: standing for election"),
            Note::SittingOut { why, ms } => write!(
                f,
                "Sitting out ({why}): not standing for election for {:.1} s, unless nobody \
                 else leads",
                *ms as f64 / 1000.0
            ),
            Note::SitOutEnded { why, ms_left } => write!(
                f,
                "Nobody else leads: ending the sit-out ({why}) {:.1} s early and standing",
                *ms_left as f64 / 1000.0
            ),
            Note::TakingOver { from } => {
                write!(f, "{from} stepped down for this node: taking over")
            }
            Note::Registered { ok: false } => write!(
                f,
                "Not registered: standing for nothing until the registry holds this node"
            ),
            Note::Registered { ok: true } => write!(f, "Registered again: standing for election"),
            Note::AcquiringLock => write!(f, "Acquiring the leader lock before leading"),
            Note::LockHeld { index } => {
                write!(f, "Holding the leader lock (LockIndex {index})")
            }
            Note::LockRefused { why } => write!(
                f,
                "Leader lock not acquired: {why}; not leading, asking again until it is free"
            ),
            Note::LockLost { why } => write!(f, "Lost the leader lock: {why}; stepping down"),
        }
    }
}

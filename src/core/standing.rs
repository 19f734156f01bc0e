//! Whether a node stands for election, as data: why it does not ([`Abstention`]), and why and
//! for whom a coordinator lets go ([`Resign`]). The transitions are in `control.rs`.

use super::member::NodeRef;
use super::quorum::Millis;
use super::ready::Reason;

/// Why a node does not stand for election now: shown by `/nodeDetails`, `/metrics` and
/// `bully status`, so a cluster without a leader says why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Abstention {
    Witness,
    Leaving,
    Unhealthy,
    Maintenance,
    /// Not (yet) held by the registry.
    Unregistered,
    /// Sitting out after a step-down, for `ms_left` more unless nobody else leads.
    SteppedDown {
        ms_left: Millis,
    },
    /// Sitting out after its `--exec` child exited, for `ms_left` more unless nobody else
    /// leads.
    ChildExited {
        ms_left: Millis,
    },
}

impl Abstention {
    /// A short word for `/nodeDetails` and the metrics' label.
    pub fn word(&self) -> &'static str {
        match self {
            Abstention::Witness => "witness",
            Abstention::Leaving => "leaving",
            Abstention::Unhealthy => "unhealthy",
            Abstention::Maintenance => "maintenance",
            Abstention::Unregistered => "unregistered",
            Abstention::SteppedDown { .. } => "stepped-down",
            Abstention::ChildExited { .. } => "child-exited",
        }
    }

    /// How long a sit-out has left, if this is one.
    pub fn ms_left(&self) -> Option<Millis> {
        match self {
            Abstention::SteppedDown { ms_left } | Abstention::ChildExited { ms_left } => {
                Some(*ms_left)
            }
            _ => None,
        }
    }
}

/// A coordinator letting go: why, and for whom.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resign {
    pub reason: Reason,
    pub to: Option<NodeRef>,
}

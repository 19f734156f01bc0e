//! The JSON bodies of the HTTP API, shared by the server (which parses them from untrusted
//! peers) and the peer client (which sends them). Field names are the original's.

use crate::core::member::NodeRef;
use serde::{Deserialize, Serialize};

/// `POST /proxy` and `POST /response`: who is electing, and the highest term it has seen.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ElectionMessage {
    pub node_id: u64,
    pub node_name: String,
    #[serde(default)]
    pub term: u64,
}

/// `POST /announce`: a node declares itself coordinator of `term`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Announcement {
    pub coordinator: String,
    pub node_id: u64,
    #[serde(default)]
    pub term: u64,
}

/// `POST /step-down`: hand over, to `to` if named.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct StepDown {
    #[serde(default)]
    pub to: Option<String>,
}

/// `POST /maintenance`: turn maintenance on or off.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Maintenance {
    pub on: bool,
}

/// The answer to `POST /proxy`: `{"Response":"OK"}`, and when the answering node is the
/// coordinator, its own announcement (`coordinator`, `node_id`, `term`) as well.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct ProxyAnswer {
    #[serde(rename = "Response")]
    pub response: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
}

/// The answer to an accepted `POST /announce`: `{"Response":"OK"}`, in quorum mode with the
/// node's promise (milliseconds of its clock during which it acknowledges no other coordinator).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct AnnounceAnswer {
    #[serde(rename = "Response")]
    pub response: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promise_ms: Option<u64>,
}

/// The body of a refused announcement (409): the term the refusing node follows, and in
/// quorum mode, when it is promised to another coordinator, `reason: "promised"` with whom and
/// for how long more.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Refusal {
    pub error: String,
    pub term: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub promised_to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_ms: Option<u64>,
}

/// Quorum mode's part of `/nodeDetails`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuorumDetails {
    /// `following`, `claiming`, `no-quorum`, `leading` or `releasing`.
    pub state: String,
    pub size: usize,
    pub needed: usize,
    pub acks: usize,
    pub lease_ms_left: Option<u64>,
    pub promised_to: Option<String>,
    pub promise_ms_left: Option<u64>,
}

/// `GET /nodeDetails`: a node's own view, also read by the static registry and `bully status`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct NodeDetails {
    pub node_name: String,
    pub node_id: u64,
    pub port: u16,
    pub cluster: String,
    pub coordinator: Option<String>,
    pub coordinator_id: Option<u64>,
    pub is_coordinator: bool,
    pub election: bool,
    /// The term of the coordinator this node follows (0 before the first).
    #[serde(default)]
    pub term: u64,
    /// The advertised address others reach this node on.
    #[serde(default)]
    pub host: String,
    /// A witness votes in quorum mode but never stands for election.
    #[serde(default)]
    pub witness: bool,
    /// It stands for election and would take over from a lower coordinator now (false with
    /// `--no-preempt`, during `--preempt-delay`, when unhealthy or in maintenance).
    #[serde(default = "yes")]
    pub preempts: bool,
    /// Its health check passes (true without one).
    #[serde(default = "yes")]
    pub healthy: bool,
    /// `bully maintenance on`.
    #[serde(default)]
    pub maintenance: bool,
    /// Why it stands for no election now, if it does not: `witness`, `leaving`,
    /// `maintenance`, `unhealthy`, `unregistered`, `stepped-down` or `child-exited`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abstains: Option<String>,
    /// A sit-out's time left (`stepped-down`, `child-exited`); it ends early when nobody
    /// leads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sit_out_ms_left: Option<u64>,
    /// Quorum mode only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorum: Option<QuorumDetails>,
    /// `--vip`: the addresses this node holds while it leads, and whether it holds them now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vips: Vec<VipDetails>,
}

/// One virtual IP of a node, as `/nodeDetails` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VipDetails {
    /// `ADDR/PREFIX`.
    pub address: String,
    pub dev: String,
    pub held: bool,
}

impl ElectionMessage {
    pub fn from_node(n: &NodeRef, term: u64) -> Self {
        ElectionMessage {
            node_id: n.id,
            node_name: n.name.clone(),
            term,
        }
    }

    pub fn sender(&self) -> NodeRef {
        NodeRef::new(self.node_name.clone(), self.node_id)
    }
}

impl Announcement {
    pub fn from_node(n: &NodeRef, term: u64) -> Self {
        Announcement {
            coordinator: n.name.clone(),
            node_id: n.id,
            term,
        }
    }

    pub fn coordinator(&self) -> NodeRef {
        NodeRef::new(self.coordinator.clone(), self.node_id)
    }
}

fn yes() -> bool {
    true
}

//! The JSON bodies of the HTTP API, shared by the server (which parses them from untrusted
//! peers) and the peer client (which sends them). Field names are the original's.

use crate::election::NodeRef;
use serde::{Deserialize, Serialize};

/// `POST /proxy` and `POST /response`: who is electing.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ElectionMessage {
    pub node_id: u64,
    pub node_name: String,
}

/// `POST /announce`: a node declares itself coordinator.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Announcement {
    pub coordinator: String,
    pub node_id: u64,
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
    /// The advertised address others reach this node on.
    #[serde(default)]
    pub host: String,
}

impl ElectionMessage {
    pub fn from_node(n: &NodeRef) -> Self {
        ElectionMessage {
            node_id: n.id,
            node_name: n.name.clone(),
        }
    }

    pub fn sender(&self) -> NodeRef {
        NodeRef::new(self.node_name.clone(), self.node_id)
    }
}

impl Announcement {
    pub fn from_node(n: &NodeRef) -> Self {
        Announcement {
            coordinator: n.name.clone(),
            node_id: n.id,
        }
    }

    pub fn coordinator(&self) -> NodeRef {
        NodeRef::new(self.coordinator.clone(), self.node_id)
    }
}

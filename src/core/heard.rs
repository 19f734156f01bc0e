//! How the core reads what a peer said. The shell only fetches a peer's `/nodeDetails` and
//! hands the body over; what the answer means (whether it came from the node asked, whether
//! that node leads or claims a term) is decided here, beside the protocol that relies on it.

use super::event::{CheckAnswer, ProbeAnswer};
use super::lease::QuorumState;
use super::member::NodeRef;
use super::wire::NodeDetails;

impl CheckAnswer {
    /// A coordinator's `/nodeDetails`, read as the health check reads it.
    pub fn from_details(d: NodeDetails) -> CheckAnswer {
        CheckAnswer::Details {
            follows: match (&d.coordinator, d.coordinator_id) {
                (Some(name), Some(id)) => Some(NodeRef::new(name.clone(), id)),
                _ => None,
            },
            preempts: d.preempts,
            claiming: claims(&d),
            name: d.node_name,
            id: d.node_id,
            is_coordinator: d.is_coordinator,
            term: d.term,
        }
    }
}

impl ProbeAnswer {
    /// `asked`'s `/nodeDetails`. An answer in another node's name (an address reused by a
    /// node that restarted under another name or id) says nothing about `asked`: it counts as
    /// any other answer that is not node details, so a probe never takes one node's word for
    /// another's.
    pub fn from_details(asked: &NodeRef, d: &NodeDetails) -> ProbeAnswer {
        if d.node_name != asked.name || d.node_id != asked.id {
            return ProbeAnswer::Status(200);
        }
        ProbeAnswer::Node {
            preempts: d.preempts,
            leads: d.is_coordinator,
        }
    }
}

/// In quorum mode a node that claims a term, with or without its majority yet, asks to be
/// followed as a coordinator does. A state this build does not know claims nothing.
fn claims(d: &NodeDetails) -> bool {
    d.quorum
        .as_ref()
        .and_then(|q| QuorumState::from_label(&q.state))
        .is_some_and(QuorumState::asks_to_be_followed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(name: &str, id: u64, state: Option<&str>) -> NodeDetails {
        let mut d: NodeDetails = serde_json::from_value(serde_json::json!({
            "node_name": name, "node_id": id, "port": 5001, "cluster": "c",
            "coordinator": null, "coordinator_id": null, "is_coordinator": false,
            "election": false, "term": 3, "host": "127.0.0.1",
        }))
        .unwrap();
        d.quorum = state.map(|s| {
            serde_json::from_value(serde_json::json!({
                "state": s, "size": 3, "needed": 2, "acks": 1,
                "lease_ms_left": null, "promised_to": null, "promise_ms_left": null,
            }))
            .unwrap()
        });
        d
    }

    #[test]
    fn a_probe_answered_in_another_name_is_not_the_node() {
        let asked = NodeRef::new("node2", 2);
        assert!(matches!(
            ProbeAnswer::from_details(&asked, &details("node2", 2, None)),
            ProbeAnswer::Node { leads: false, .. }
        ));
        assert_eq!(
            ProbeAnswer::from_details(&asked, &details("node9", 2, None)),
            ProbeAnswer::Status(200)
        );
        assert_eq!(
            ProbeAnswer::from_details(&asked, &details("node2", 7, None)),
            ProbeAnswer::Status(200)
        );
    }

    #[test]
    fn claiming_and_waiting_for_a_majority_ask_to_be_followed_and_nothing_else_does() {
        let claiming = |s: Option<&str>| match CheckAnswer::from_details(details("n", 1, s)) {
            CheckAnswer::Details { claiming, .. } => claiming,
            other => panic!("{other:?}"),
        };
        assert!(claiming(Some("claiming")));
        assert!(claiming(Some("no-quorum")));
        for s in [
            None,
            Some("following"),
            Some("leading"),
            Some("releasing"),
            Some("odd"),
        ] {
            assert!(!claiming(s), "{s:?}");
        }
    }
}

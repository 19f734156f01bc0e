//! The verdicts on their own: a node must answer as itself to count, a busy one lives, a
//! closed port means gone, and only some probe answers contend.

use super::*;
use crate::core::fixtures::{member, nref as node};

fn details(name: &str, id: u64, is_coordinator: bool, claiming: bool) -> CheckAnswer {
    CheckAnswer::Details {
        name: name.into(),
        id,
        is_coordinator,
        claiming,
        term: 3,
        follows: None,
        preempts: true,
    }
}

#[test]
fn a_coordinator_lives_only_as_itself_and_leading() {
    let c = node(4);
    assert_eq!(
        check(&c, &details("node4", 4, true, false), false),
        Verdict::Alive
    );
    assert_eq!(
        check(&c, &details("node4", 4, false, false), false),
        Verdict::Resting
    );
    // A claimant leads in quorum mode only.
    assert_eq!(
        check(&c, &details("node4", 4, false, true), true),
        Verdict::Alive
    );
    assert_eq!(
        check(&c, &details("node4", 4, false, true), false),
        Verdict::Resting
    );
    // Another node (restarted with a new id, or forged) is not it.
    let other = Verdict::Failed { gone: false };
    assert_eq!(check(&c, &details("node4", 9, true, false), false), other);
    assert_eq!(check(&c, &details("node5", 4, true, false), false), other);
}

#[test]
fn busy_lives_a_closed_port_is_gone_silence_is_not() {
    let c = node(4);
    assert_eq!(check(&c, &CheckAnswer::Busy, true), Verdict::Alive);
    for u in [Unreachable::Refused, Unreachable::Closed] {
        assert_eq!(
            check(&c, &CheckAnswer::Unreachable(u), true),
            Verdict::Failed { gone: true }
        );
    }
    let not_gone = Verdict::Failed { gone: false };
    assert_eq!(
        check(&c, &CheckAnswer::Unreachable(Unreachable::Timeout), true),
        not_gone
    );
    assert_eq!(
        check(&c, &CheckAnswer::Other { status: 500 }, true),
        not_gone
    );
    assert_eq!(check(&c, &CheckAnswer::NotLocated, true), not_gone);
}

#[test]
fn who_contends_and_who_would_take_over() {
    let answers = vec![
        (
            node(1),
            ProbeAnswer::Node {
                preempts: false,
                leads: true,
            },
        ),
        (
            node(2),
            ProbeAnswer::Node {
                preempts: true,
                leads: false,
            },
        ),
        (node(3), ProbeAnswer::Status(200)),
        (
            node(4),
            ProbeAnswer::Node {
                preempts: false,
                leads: false,
            },
        ),
        (node(5), ProbeAnswer::Status(503)),
    ];
    let contending: Vec<u64> = (1..=5).filter(|i| contends(&answers, &node(*i))).collect();
    assert_eq!(contending, vec![1, 2, 3]);
    let taking_over: Vec<u64> = (1..=5)
        .filter(|i| wants_to_lead(&answers, &node(*i)))
        .collect();
    assert_eq!(taking_over, vec![2]);
}

fn said(id: u64, leads: bool, follows: Option<u64>, term: u64) -> CheckAnswer {
    CheckAnswer::Details {
        name: format!("node{id}"),
        id,
        is_coordinator: leads,
        claiming: false,
        term,
        follows: follows.map(node),
        preempts: true,
    }
}

#[test]
fn terms_and_leaders_count_only_from_members_answering_as_themselves() {
    let answers = vec![
        (member(5), said(5, true, Some(5), 4)),
        (member(4), said(4, true, Some(4), 9)),
        (member(3), said(3, false, Some(4), 9)),
        // Answers for another node (a restart, a forgery): ignored.
        (member(6), said(7, true, Some(7), 50)),
    ];
    assert_eq!(highest_term(&answers), Some(9));
    assert_eq!(leader_above(&answers, &node(2), 4), Some((node(5), 4)));
    assert_eq!(
        leader_above(&answers, &node(2), 5),
        Some((node(4), 9)),
        "newest only"
    );
    assert_eq!(
        leader_above(&answers, &node(4), 5),
        None,
        "above this node only"
    );
    assert_eq!(
        followed(&answers, &node(2)),
        Some((node(5), 4)),
        "the first that answers"
    );
    assert_eq!(
        followed(&answers, &node(5)),
        Some((node(4), 9)),
        "not this node"
    );
    assert_eq!(highest_term(&answers[3..]), None);
}

#[test]
fn a_refusal_names_the_highest_term_capped() {
    let answers = vec![
        (member(1), AnnounceAnswer::Stale { term: 3 }),
        (member(2), AnnounceAnswer::Stale { term: u64::MAX }),
        (member(3), AnnounceAnswer::Busy),
    ];
    assert_eq!(highest_refusal(&answers), Some(MAX_TERM));
    assert_eq!(highest_refusal(&answers[..1]), Some(3));
    assert_eq!(highest_refusal(&answers[2..]), None);
}

fn node_details(name: &str, id: u64, state: Option<&str>) -> NodeDetails {
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
        ProbeAnswer::from_details(&asked, &node_details("node2", 2, None)),
        ProbeAnswer::Node { leads: false, .. }
    ));
    assert_eq!(
        ProbeAnswer::from_details(&asked, &node_details("node9", 2, None)),
        ProbeAnswer::Status(200)
    );
    assert_eq!(
        ProbeAnswer::from_details(&asked, &node_details("node2", 7, None)),
        ProbeAnswer::Status(200)
    );
}

#[test]
fn claiming_and_waiting_for_a_majority_ask_to_be_followed_and_nothing_else_does() {
    let claiming = |s: Option<&str>| match CheckAnswer::from_details(node_details("n", 1, s)) {
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

//! The verdicts on their own: a node must answer as itself to count, a busy one lives, a
//! closed port means gone, and only some probe answers contend.

use super::*;

fn node(id: u64) -> NodeRef {
    NodeRef::new(format!("node{id}"), id)
}

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

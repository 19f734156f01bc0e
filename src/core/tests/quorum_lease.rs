//! `QuorumLease` on its own: the restart silence, claims that keep a held lease, acting with
//! a margin, and promises freed only by their coordinator or by running out.

use super::*;
use crate::core::event::Unreachable;
use crate::core::fixtures::{member, nref as node};
use std::time::Duration;

#[test]
fn a_restarted_node_is_promised_to_nobody_for_one_lease() {
    let l = QuorumLease::new(Some(2000), 100);
    let p = l.promise().unwrap();
    assert!(p.binds(&node(3), 2099) && !p.binds(&node(3), 2100));
    assert!(
        QuorumLease::new(None, 100).promise().is_none(),
        "plain mode promises nothing"
    );
}

#[test]
fn a_claim_keeps_the_lease_held_until_its_own_and_acts_only_inside_the_margin() {
    let mut l = QuorumLease::default();
    let q = Quorum::new(3, Duration::from_millis(1000), Duration::from_millis(500));
    l.claim(3, 0);
    assert!(l.leads_term(3) && l.lease_until().is_none() && !l.acts(0, 0));
    assert_eq!(l.sent(1, 0, 2), Some(3));
    let acked = [(
        member(2),
        AnnounceAnswer::Accepted {
            promise_ms: Some(1010),
        },
    )];
    let counted = l.count(3, 1, &acked).unwrap();
    assert_eq!(
        (counted.promised, counted.all_in),
        (false, false),
        "one answer due"
    );
    // Counted from the send, shortened by the drift margin: 1010 * 99 / 101.
    assert_eq!(l.extend(0, &q), Some((3, 990)));
    assert_eq!(l.extend(0, &q), None, "no growth, nothing new");
    assert!(l.acts(739, q.stop_margin) && !l.acts(740, q.stop_margin));
    l.claim(4, 10);
    assert_eq!((l.lead_term(), l.lease_until()), (Some(4), Some(990)));
    l.begin_release();
    assert!(l.releasing());
    l.claim(5, 20);
    assert_eq!(
        l.lease_until(),
        None,
        "a lease being released is not carried over"
    );
    assert_eq!(l.end_lead(), Some(5));
    assert!(!l.has_lead() && !l.releasing());
}

#[test]
fn announcements_sent_are_remembered_up_to_a_bound() {
    let mut l = QuorumLease::default();
    assert_eq!(l.sent(1, 0, 2), None, "nothing claimed");
    l.claim(7, 0);
    for seq in 1..=40 {
        assert_eq!(l.sent(seq, seq, 2), Some(7));
    }
    let sent = &l.lead.as_ref().unwrap().sent;
    assert_eq!(
        (sent.len(), sent[0].seq),
        (SENT_KEPT, 40 - SENT_KEPT as u64 + 1)
    );
    assert_eq!(l.count(7, 1, &[]), None, "forgotten");
}

#[test]
fn a_promise_is_freed_by_its_coordinator_or_when_it_runs_out() {
    let mut l = QuorumLease::default();
    l.promise_to(&node(3), 0, 999);
    assert!(!l.release_promise(&node(2)) && l.promised_to(&node(3)));
    assert!(!l.promise_expired(&node(3), 999));
    assert!(l.promise_expired(&node(3), 1000) && l.promise().is_none());
    l.promise_to(&node(3), 0, 999);
    assert!(l.release_promise(&node(3)) && l.promise().is_none());
}

#[test]
fn answers_say_whether_to_retry_soon_and_when_no_quorum_is_news() {
    let mut l = QuorumLease::default();
    l.claim(2, 0);
    l.sent(1, 0, 2);
    let promised = [(member(2), AnnounceAnswer::Promised { remaining_ms: 500 })];
    assert_eq!(
        l.count(2, 1, &promised),
        Some(Counted {
            promised: true,
            all_in: false
        })
    );
    assert!(l.arm_retry() && !l.arm_retry(), "armed once");
    assert!(!l.retry_fired(1) && l.retry_fired(2) && l.arm_retry());
    let silent = [(member(3), AnnounceAnswer::Unreachable(Unreachable::Timeout))];
    assert_eq!(
        l.count(2, 1, &silent).map(|c| c.all_in),
        Some(false),
        "one was promised"
    );
    l.sent(2, 10, 1);
    assert_eq!(l.count(2, 2, &silent).map(|c| c.all_in), Some(true));
    assert_eq!(l.warn(2, 10), Some(1), "this node alone");
    assert_eq!(l.warn(2, 10), None, "once per term");
    assert!(!l.members_due(100, 200) && l.members_due(200, 200) && !l.members_due(300, 200));
}

#[test]
fn an_announcement_is_refused_while_the_lease_holds_or_the_promise_binds() {
    let q = Quorum::new(3, Duration::from_millis(1000), Duration::from_millis(500));
    let mut l = QuorumLease::new(Some(1000), 0);
    let restart = Refusal::Promised {
        to: None,
        remaining_ms: 900,
    };
    assert_eq!(
        l.refusal(&node(4), &node(3), 100, q.stop_margin),
        Some(restart)
    );
    assert_eq!(l.refusal(&node(4), &node(3), 1000, q.stop_margin), None);
    l.claim(2, 1000);
    l.sent(1, 1000, 2);
    l.count(
        2,
        1,
        &[(
            member(2),
            AnnounceAnswer::Accepted {
                promise_ms: Some(1010),
            },
        )],
    );
    l.extend(1000, &q);
    let leads = |hand_over| Refusal::Leads {
        remaining_ms: 890,
        hand_over,
    };
    assert_eq!(
        l.refusal(&node(4), &node(3), 1100, q.stop_margin),
        Some(leads(true))
    );
    assert_eq!(
        l.refusal(&node(2), &node(3), 1100, q.stop_margin),
        Some(leads(false))
    );
    // Past the stop margin it no longer acts, and refuses nothing; releasing, it still does.
    assert_eq!(l.refusal(&node(4), &node(3), 1740, q.stop_margin), None);
    l.begin_release();
    let releasing = Refusal::Leads {
        remaining_ms: 250,
        hand_over: false,
    };
    assert_eq!(
        l.refusal(&node(4), &node(3), 1740, q.stop_margin),
        Some(releasing)
    );
    l.promise_to(&node(5), 2000, 999);
    l.end_lead();
    let promised = Refusal::Promised {
        to: Some(node(5)),
        remaining_ms: 1000,
    };
    assert_eq!(
        l.refusal(&node(4), &node(3), 2000, q.stop_margin),
        Some(promised)
    );
    assert_eq!(
        l.refusal(&node(5), &node(3), 2000, q.stop_margin),
        None,
        "its own"
    );
}

#[test]
fn a_promise_runs_a_millisecond_longer_than_granted_and_binds_everyone_else() {
    let mut l = QuorumLease::default();
    assert_eq!(l.promise_to(&node(4), 100, 2000), 2001);
    assert_eq!(l.promise().map(|p| p.until), Some(2101));
    assert!(l.binding(&node(4), 2100).is_none(), "not the node promised");
    assert!(l.binding(&node(3), 2100).is_some() && l.binding(&node(3), 2101).is_none());
}

#[test]
fn a_lease_lapses_at_the_margin_unless_it_is_being_released() {
    let q = Quorum::new(3, Duration::from_millis(1000), Duration::from_millis(500));
    let mut l = QuorumLease::default();
    l.claim(2, 0);
    assert!(l.lapsed(2, 0, q.stop_margin), "never held");
    assert!(!l.lapsed(1, 0, q.stop_margin), "not its term");
    l.sent(1, 0, 2);
    l.count(
        2,
        1,
        &[(
            member(2),
            AnnounceAnswer::Accepted {
                promise_ms: Some(1010),
            },
        )],
    );
    l.extend(0, &q);
    assert!(!l.lapsed(2, 739, q.stop_margin) && l.lapsed(2, 740, q.stop_margin));
    l.begin_release();
    assert!(!l.lapsed(2, 740, q.stop_margin));
}

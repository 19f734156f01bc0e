//! `QuorumLease` on its own: the restart silence, claims that keep a held lease, acting with
//! a margin, and promises freed only by their coordinator or by running out.

use super::*;

fn node(id: u64) -> NodeRef {
    NodeRef::new(format!("node{id}"), id)
}

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
    l.claim(3, 0);
    assert!(l.leads_term(3) && l.lease_until().is_none() && !l.acts(0, 0));
    l.lead_mut().unwrap().lease_until = Some(1000);
    assert!(l.acts(499, 500) && !l.acts(500, 500));
    l.claim(4, 10);
    assert_eq!((l.lead_term(), l.lease_until()), (Some(4), Some(1000)));
    l.begin_release();
    assert!(l.releasing());
    l.claim(5, 20);
    assert_eq!(
        l.lease_until(),
        None,
        "a lease being released is not carried over"
    );
    assert_eq!(l.end_lead().map(|x| x.term), Some(5));
    assert!(l.lead().is_none() && !l.releasing());
}

#[test]
fn announcements_sent_are_remembered_up_to_a_bound() {
    let mut l = QuorumLease::default();
    assert_eq!(l.sent(1, 0, 2), None, "nothing claimed");
    l.claim(7, 0);
    for seq in 1..=40 {
        assert_eq!(l.sent(seq, seq, 2), Some(7));
    }
    let sent = &l.lead().unwrap().sent;
    assert_eq!(
        (sent.len(), sent[0].seq),
        (SENT_KEPT, 40 - SENT_KEPT as u64 + 1)
    );
}

#[test]
fn a_promise_is_freed_by_its_coordinator_or_when_it_runs_out() {
    let mut l = QuorumLease::default();
    l.promise_to(&node(3), 1000);
    assert!(!l.release_promise(&node(2)) && l.promised_to(&node(3)));
    assert!(!l.promise_expired(&node(3), 999));
    assert!(l.promise_expired(&node(3), 1000) && l.promise().is_none());
    l.promise_to(&node(3), 1000);
    assert!(l.release_promise(&node(3)) && l.promise().is_none());
}

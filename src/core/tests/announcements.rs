//! `Announcements` on its own: numbers only go up, and members that missed a term's
//! announcement get it again a few times with growing waits.

use super::*;
use crate::core::fixtures::member;

#[test]
fn numbers_rise_across_terms() {
    let mut a = Announcements::default();
    assert_eq!(a.new_term(), 1);
    assert_eq!(a.next_seq(), 2);
    assert_eq!(a.new_term(), 3);
}

#[test]
fn busy_and_slow_members_get_it_again_three_times_with_growing_waits() {
    let mut a = Announcements::default();
    a.new_term();
    let answers = vec![
        (member(1), AnnounceAnswer::Busy),
        (member(2), AnnounceAnswer::Unreachable(Unreachable::Timeout)),
        (member(3), AnnounceAnswer::Accepted { promise_ms: None }),
        (member(4), AnnounceAnswer::Unreachable(Unreachable::Refused)),
    ];
    for wait in [200, 400, 600] {
        assert_eq!(a.missed(&answers), Some(wait));
        assert_eq!(a.take_missed(), vec![member(1), member(2)]);
        assert!(a.take_missed().is_empty(), "sent again once");
    }
    assert_eq!(a.missed(&answers), None, "three tries at most");
    a.new_term();
    assert_eq!(a.missed(&answers), Some(200), "a new term starts over");
}

#[test]
fn nobody_missed_it_nothing_is_sent_again() {
    let mut a = Announcements::default();
    let answers = vec![(member(3), AnnounceAnswer::Accepted { promise_ms: None })];
    assert_eq!(a.missed(&answers), None);
    assert!(a.take_missed().is_empty());
}

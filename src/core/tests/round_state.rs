//! `RoundState` on its own: rounds count up and forget their askers, a suspect is skipped
//! until heard from, a hand-over is waited for once and only while fresh, and a win's reason
//! is said once.

use super::*;
use crate::core::fixtures::{member, nref as node};

#[test]
fn askers_are_remembered_once_during_a_round_and_only_those_the_announcement_misses() {
    let mut r = RoundState::default();
    assert_eq!(r.start(), 1);
    r.asked_by(&node(1), true);
    r.asked_by(&node(1), true);
    r.asked_by(&node(2), true);
    r.asked_by(&node(9), false);
    assert_eq!(r.late_askers(&[member(2)]), vec![node(1)]);
    assert!(r.late_askers(&[]).is_empty(), "taken");
    r.asked_by(&node(1), true);
    assert_eq!(r.start(), 2);
    assert!(r.late_askers(&[]).is_empty(), "a new round forgets them");
}

#[test]
fn a_suspect_is_skipped_until_heard_from() {
    let mut r = RoundState::default();
    let ms = vec![member(1), member(3), member(4), member(5)];
    r.suspect(&node(5));
    assert_eq!(
        r.candidates_above(&ms, &node(2)),
        vec![member(4), member(3)]
    );
    r.heard_from(&node(4));
    assert_eq!(
        r.candidates_above(&ms, &node(2)).len(),
        2,
        "not the suspect"
    );
    r.heard_from(&node(5));
    assert_eq!(r.candidates_above(&ms, &node(2))[0], member(5));
}

#[test]
fn a_hand_over_is_waited_for_once_while_fresh_and_unlisted() {
    let mut r = RoundState::default();
    r.hand_to(&node(5), 100);
    assert_eq!(r.awaits_handed_to(&[], 99), Some(node(5)));
    assert_eq!(r.awaits_handed_to(&[], 99), None, "once");
    r.hand_to(&node(5), 100);
    assert_eq!(r.awaits_handed_to(&[], 100), None, "stale");
    r.hand_to(&node(5), 100);
    assert_eq!(
        r.awaits_handed_to(&[member(5)], 0),
        None,
        "listed: asked as usual"
    );
    r.hand_to(&node(5), 100);
    r.suspect(&node(5));
    assert_eq!(r.awaits_handed_to(&[], 0), None, "suspected");
}

#[test]
fn a_win_says_why_once_a_take_over_before_a_failover() {
    let mut r = RoundState::default();
    assert_eq!(r.win_reason(), Reason::Elected);
    r.failed_over();
    r.take_over();
    assert!(r.taking_over());
    assert_eq!(r.win_reason(), Reason::StepDown);
    assert_eq!(r.win_reason(), Reason::Failover);
    assert_eq!(r.win_reason(), Reason::Elected);
}

#[test]
fn after_a_failure_all_saw_the_highest_elects_at_once_the_others_in_rank_order() {
    let mut r = RoundState::default();
    r.read(&[member(1), member(2), member(3), member(4)]);
    assert_eq!(r.rank_wait(&node(4)), 0);
    assert_eq!(r.rank_wait(&node(1)), 6);
    r.suspect(&node(4));
    assert_eq!(r.rank_wait(&node(3)), 0, "the failed one is skipped");
    let many: Vec<Member> = (1..=300).map(member).collect();
    r.read(&many);
    assert_eq!(r.rank_wait(&node(1)), 250, "capped");
}

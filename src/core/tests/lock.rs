//! `LockGate` on its own: one acquisition at a time, answers matched to theirs, a refusal
//! logged once, and a lock released only once nothing needs it.

use super::*;

#[test]
fn answers_and_losses_count_only_for_their_attempt() {
    let mut g = LockGate::default();
    assert_eq!(g.acquire(), 1);
    assert!(g.pending() && g.is_current(1));
    assert!(!g.refused(0), "an older attempt's refusal");
    assert!(g.refused(1) && !g.pending());
    assert_eq!(g.acquire(), 2);
    g.got(1, 7);
    assert_eq!(g.held(), Some(7), "held whatever the attempt");
    assert!(g.pending(), "attempt 2 is still under way");
    g.got(2, 8);
    assert!(!g.pending());
    assert!(!g.lost(1), "not the lock held");
    assert!(g.lost(2) && g.held().is_none());
    assert!(!g.lost(2), "once");
}

#[test]
fn a_refusal_is_news_once_until_the_lock_is_held() {
    let mut g = LockGate::default();
    assert!(g.new_refusal("held by node4"));
    assert!(!g.new_refusal("held by node4"));
    assert!(g.new_refusal("session expired"));
    g.got(0, 1);
    assert!(g.new_refusal("session expired"));
}

#[test]
fn the_lock_goes_once_nothing_needs_it_and_the_hooks_let_go() {
    let mut g = LockGate::default();
    g.got(0, 5);
    assert!(!g.settle(true, true, false, true), "leading");
    assert!(
        !g.settle(false, true, false, false),
        "the hooks still owe a let-go"
    );
    assert!(g.settle(false, true, true, false), "they let go");
    assert_eq!(g.held(), None);
    g.got(0, 6);
    assert!(!g.settle(false, false, false, true), "waiting for it");
    assert!(g.settle(false, false, false, false), "no hooks: at once");
}

//! `Terms` on its own: claims go above everything seen, announcements must be newer (or a
//! repeat by the same coordinator), and the floor rises before a term is used.

use super::*;
use crate::core::fixtures::nref as node;

#[test]
fn quorum_mode_counts_every_term_up_to_the_floor_as_taken_plain_mode_does_not() {
    let p = Persisted {
        floor: 7,
        maintenance: false,
    };
    let q = Terms::new(true, p.clone());
    assert_eq!((q.current(), q.highest()), (7, 7));
    assert_eq!(q.newness(&node(3), 7), Newness::Stale);
    let plain = Terms::new(false, p);
    assert_eq!((plain.current(), plain.highest()), (0, 7));
    assert_eq!(plain.newness(&node(3), 1), Newness::Newer);
}

#[test]
fn a_win_takes_a_term_above_every_term_seen_and_raises_the_floor_first() {
    let mut t = Terms::new(false, Persisted::default());
    t.saw(41);
    assert_eq!(t.take_next(&node(2)), (42, true));
    assert_eq!(t.persisted().floor, 42);
    assert_eq!(t.newness(&node(2), 42), Newness::Repeat);
    assert_eq!(t.newness(&node(3), 42), Newness::Stale);
    assert!(!t.record_used(40), "a lower term leaves the floor alone");
}

#[test]
fn terms_seen_are_capped_and_a_win_at_the_cap_does_not_panic() {
    let mut t = Terms::new(false, Persisted::default());
    t.saw(u64::MAX);
    assert_eq!(t.highest(), MAX_TERM);
    let mut top = Terms::new(
        false,
        Persisted {
            floor: u64::MAX,
            maintenance: false,
        },
    );
    assert_eq!(top.take_next(&node(1)).0, u64::MAX);
}

#[test]
fn following_waits_end_when_a_coordinator_is_followed() {
    let mut t = Terms::new(true, Persisted::default());
    assert!(!t.waits_to_follow());
    t.follow_later(node(3));
    assert!(t.waits_to_follow());
    t.stop_waiting();
    assert!(!t.waits_to_follow());
    t.follow(&node(3), 5);
    assert_eq!((t.current(), t.newness(&node(3), 5)), (5, Newness::Repeat));
}

//! `--consul-lock` through the whole election: waiting for the leader lock before leading,
//! stepping down when it is lost, releasing it once the hooks let go.

use crate::core::election::{Election, Phase, Settings};
use crate::core::event::{Event, LockAnswer, Purpose, Timer};
use crate::core::fixtures::{cluster, elect, nref};

use crate::core::lock::LOCK_RETRY_MS;
use crate::core::quorum::Quorum;
use crate::core::ready::{Effect, Note, Persisted, Ready, Reason};
use std::time::Duration;

fn node_with(id: u64, f: impl FnOnce(&mut Settings)) -> Election {
    let mut s = Settings::for_timeout(Duration::from_secs(1));
    s.lock = true;
    f(&mut s);
    Election::new(nref(id), s, Persisted::default(), 0)
}

fn node(id: u64) -> Election {
    node_with(id, |_| {})
}

fn lock(e: &mut Election, answer: LockAnswer) -> Ready {
    e.step(0, Event::Lock(answer))
}

fn held(attempt: u64, index: u64) -> LockAnswer {
    LockAnswer::Held { attempt, index }
}

fn announced(r: &Ready) -> bool {
    r.effects
        .iter()
        .any(|e| matches!(e, Effect::Announce { .. }))
}

#[test]
fn a_winner_leads_only_once_it_holds_the_lock() {
    let mut e = node(3);
    let r = elect(&mut e, 0, &cluster(&[1, 2, 3]));
    assert_eq!(r.effects, vec![Effect::AcquireLock { attempt: 1 }]);
    assert!(r.changes.is_empty() && !announced(&r), "{r:?}");
    assert_eq!(e.phase(), &Phase::AwaitingLock);
    assert!(!e.is_coordinator() && e.snapshot(0).election);
    assert_eq!(e.term(), 0, "the term is taken when it leads");
    // Meanwhile a lower node's election message is answered and its sender remembered.
    e.step(
        0,
        Event::Proxy {
            from: nref(1),
            term: 0,
        },
    );
    let r = lock(&mut e, held(1, 7));
    assert!(e.is_coordinator());
    assert_eq!(e.lock_index(), Some(7));
    assert_eq!(r.notes[0], Note::LockHeld { index: 7 });
    assert!(announced(&r), "{r:?}");
    let change = &r.changes[0];
    assert!(change.elected(&nref(3)));
    assert_eq!((change.lock_index, change.term), (Some(7), 1));
    // A coordinator that wins again (it elects when it rejoins the registry) keeps the
    // lock it holds and asks for no other.
    e.step(0, Event::Rejoined);
    let r = e.step(
        0,
        Event::Members {
            purpose: Purpose::Round(2),
            members: cluster(&[3]),
        },
    );
    assert!(
        !r.effects
            .iter()
            .any(|e| matches!(e, Effect::AcquireLock { .. } | Effect::ReleaseLock)),
        "{r:?}"
    );
    assert!(e.is_coordinator());
    assert_eq!((e.term(), e.lock_index()), (2, Some(7)));
}

#[test]
fn a_refused_node_asks_again_as_often_as_its_settings_say() {
    let mut e = node_with(3, |s| s.lock_retry_ms = 50);
    elect(&mut e, 0, &cluster(&[1, 3]));
    let r = lock(
        &mut e,
        LockAnswer::Refused {
            attempt: 1,
            why: "held".into(),
        },
    );
    assert_eq!(
        r.effects,
        vec![Effect::StartTimer {
            timer: Timer::LockRetry { attempt: 1 },
            after: Duration::from_millis(50)
        }]
    );
}

#[test]
fn a_refused_node_does_not_lead_says_why_once_and_asks_again_every_second() {
    let mut e = node(3);
    elect(&mut e, 0, &cluster(&[1, 3]));
    let refused = |attempt| LockAnswer::Refused {
        attempt,
        why: "held by session s1 (test)".into(),
    };
    let r = lock(&mut e, refused(1));
    assert_eq!(
        r.notes[0].to_string(),
        "Leader lock not acquired: held by session s1 (test); not leading, asking again \
         until it is free"
    );
    assert!(r.notes[0].is_warning());
    let retry = Timer::LockRetry { attempt: 1 };
    assert_eq!(
        r.effects,
        vec![Effect::StartTimer {
            timer: retry.clone(),
            after: Duration::from_millis(LOCK_RETRY_MS)
        }]
    );
    assert!(!e.is_coordinator() && e.coordinator().is_none());
    assert_eq!(e.phase(), &Phase::AwaitingLock);
    // Health ticks start no second acquisition meanwhile.
    assert_eq!(e.step(0, Event::HealthTick), Ready::default());
    let r = e.step(1000, Event::Timer(retry));
    assert_eq!(r.effects, vec![Effect::AcquireLock { attempt: 2 }]);
    // The same refusal again is not logged again.
    let r = lock(&mut e, refused(2));
    assert!(r.notes.is_empty(), "{r:?}");
    // A stale answer changes nothing.
    assert_eq!(lock(&mut e, refused(1)), Ready::default());
    let r = e.step(2000, Event::Timer(Timer::LockRetry { attempt: 2 }));
    assert_eq!(r.effects, vec![Effect::AcquireLock { attempt: 3 }]);
    lock(&mut e, held(3, 9));
    assert!(e.is_coordinator());
    assert_eq!(e.lock_index(), Some(9));
}

#[test]
fn a_lock_that_comes_after_the_node_moved_on_is_released() {
    let mut e = node(3);
    elect(&mut e, 0, &cluster(&[1, 3]));
    assert_eq!(e.phase(), &Phase::AwaitingLock);
    // While it waits, a higher node (just registered) announces itself: it follows.
    e.step(
        0,
        Event::Announce {
            from: nref(4),
            term: 1,
        },
    );
    assert_eq!(e.phase(), &Phase::Idle);
    assert_eq!(e.coordinator(), Some(&nref(4)));
    let r = lock(&mut e, held(1, 5));
    assert_eq!(r.effects, vec![Effect::ReleaseLock]);
    assert!(r.changes.is_empty());
    assert_eq!(e.lock_index(), None);
    // A late refusal after moving on arms no retry.
    let mut e = node(3);
    elect(&mut e, 0, &cluster(&[3]));
    e.step(0, Event::ShuttingDown);
    let r = lock(
        &mut e,
        LockAnswer::Refused {
            attempt: 1,
            why: "x".into(),
        },
    );
    assert_eq!(r, Ready::default());
}

#[test]
fn losing_the_lock_lets_go_with_reason_lost_lock_and_a_late_loss_is_ignored() {
    let mut e = node(3);
    elect(&mut e, 0, &cluster(&[3]));
    lock(&mut e, held(1, 4));
    assert!(e.is_coordinator());
    // A loss reported for another acquisition is not this one's.
    let stale = LockAnswer::Lost {
        attempt: 0,
        why: "old".into(),
    };
    assert_eq!(lock(&mut e, stale), Ready::default());
    let r = lock(
        &mut e,
        LockAnswer::Lost {
            attempt: 1,
            why: "session invalidated".into(),
        },
    );
    assert_eq!(
        r.notes[0].to_string(),
        "Lost the leader lock: session invalidated; stepping down"
    );
    assert_eq!(r.changes[0].reason, Reason::LostLock);
    assert_eq!(Reason::LostLock.label(), "lost-lock");
    assert!(!e.is_coordinator());
    // Released in Consul as well (a watch that lost touch with Consul may still hold
    // it there), at once. The next round asks for it again.
    assert_eq!(r.effects[0], Effect::ReleaseLock);
    let r = elect(&mut e, 0, &cluster(&[3]));
    assert_eq!(r.effects, vec![Effect::AcquireLock { attempt: 2 }]);
}

#[test]
fn with_hooks_the_lock_is_released_only_once_they_let_go() {
    let mut e = node_with(3, |s| s.has_hooks = true);
    elect(&mut e, 0, &cluster(&[1, 3]));
    lock(&mut e, held(1, 2));
    // A higher node announces: this node follows it at once, but its hooks still stop
    // its work, so the lock stays until they say so.
    let r = e.step(
        0,
        Event::Announce {
            from: nref(4),
            term: 5,
        },
    );
    assert!(r.changes[0].demoted(&nref(3)));
    assert!(!r.effects.contains(&Effect::ReleaseLock), "{r:?}");
    let r = e.step(0, Event::LetGo);
    assert_eq!(r.effects, vec![Effect::ReleaseLock]);
    // Shutdown of a coordinator: the lock goes after the hooks' last let-go.
    let mut e = node_with(3, |s| s.has_hooks = true);
    elect(&mut e, 0, &cluster(&[3]));
    lock(&mut e, held(1, 3));
    let r = e.step(0, Event::ShuttingDown);
    assert!(!r.effects.contains(&Effect::ReleaseLock));
    assert!(e.is_coordinator(), "it leads until its hooks let go");
    let r = e.step(0, Event::LetGo);
    assert!(r.effects.contains(&Effect::ReleaseLock), "{r:?}");
    assert_eq!(r.changes[0].reason, Reason::Shutdown);
}

#[test]
fn a_coordinator_yields_its_lock_to_a_higher_node_that_answers() {
    let mut e = node(3);
    elect(&mut e, 0, &cluster(&[1, 3]));
    lock(&mut e, held(1, 2));
    // Its look-up found node4 alive: it elects, and node4 answers OK.
    let r = e.step(
        0,
        Event::Members {
            purpose: Purpose::LookForHigher,
            members: cluster(&[1, 3, 4]),
        },
    );
    assert!(!r.effects.is_empty());
    let r = e.step(
        0,
        Event::Probed {
            purpose: crate::core::event::ProbePurpose::Higher,
            answers: vec![(
                nref(4),
                crate::core::event::ProbeAnswer::Node {
                    preempts: true,
                    leads: false,
                },
            )],
        },
    );
    let round = r
        .rounds
        .iter()
        .find_map(|r| match r {
            crate::core::ready::RoundEdge::Started { round } => Some(*round),
            _ => None,
        })
        .unwrap();
    e.step(
        0,
        Event::Members {
            purpose: Purpose::Round(round),
            members: cluster(&[1, 3, 4]),
        },
    );
    let r = e.step(
        0,
        Event::ElectionAnswered {
            round,
            answers: vec![(
                cluster(&[4])[0].clone(),
                crate::core::event::ElectionAnswer::Ok { claim: None },
            )],
        },
    );
    assert!(!e.is_coordinator());
    assert_eq!(r.changes[0].reason, Reason::Preempted);
    assert!(r.effects.contains(&Effect::ReleaseLock), "{r:?}");
    assert_eq!(e.phase(), &Phase::AwaitingAnnouncement);
}

#[test]
fn quorum_mode_takes_the_lock_when_it_would_start_acting() {
    let lease = 2000;
    let mut e = node_with(3, |s| {
        s.quorum = Some(Quorum::new(
            3,
            Duration::from_millis(lease),
            Duration::from_secs(10),
        ))
    });
    let r = elect(&mut e, 3000, &cluster(&[1, 2, 3]));
    let (term, seq) = r
        .effects
        .iter()
        .find_map(|e| match e {
            Effect::Announce { term, seq, .. } => Some((*term, *seq)),
            _ => None,
        })
        .expect("the claim goes out first");
    assert!(!r.effects.contains(&Effect::AcquireLock { attempt: 1 }));
    let r = e.step(
        3001,
        Event::AnnounceAnswered {
            term,
            seq,
            answers: vec![(
                cluster(&[2])[0].clone(),
                crate::core::event::AnnounceAnswer::Accepted {
                    promise_ms: Some(lease),
                },
            )],
        },
    );
    assert!(
        r.effects.contains(&Effect::AcquireLock { attempt: 1 }),
        "{r:?}"
    );
    assert!(r.changes.is_empty());
    assert!(!e.is_coordinator());
    assert_eq!(e.phase(), &Phase::AwaitingLock);
    // It shows as claiming (followers keep following a claimant), not leading.
    let view = e.snapshot(3001).quorum.unwrap();
    assert_eq!(view.state, crate::core::lease::QuorumState::Claiming);
    let r = e.step(3002, Event::Lock(held(1, 11)));
    assert!(e.is_coordinator());
    assert_eq!(r.changes[0].lock_index, Some(11));
    assert_eq!(e.phase(), &Phase::Idle);
}

#[test]
fn without_the_flag_nothing_changes() {
    let mut e = node_with(3, |s| s.lock = false);
    let r = elect(&mut e, 0, &cluster(&[3]));
    assert!(e.is_coordinator());
    assert!(!r
        .effects
        .iter()
        .any(|e| matches!(e, Effect::AcquireLock { .. } | Effect::ReleaseLock)));
    assert_eq!(r.changes[0].lock_index, None);
}

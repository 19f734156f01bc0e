//! The hostile soak of tests/support/soak.rs for 60 s (`SOAK_SECS` to change it; `cargo bench
//! --bench soak` runs it for 10 minutes on the release build and judges the memory too).

mod support;

use std::time::Duration;
use support::soak::{self, Options};

#[test]
fn a_hostile_soak_ends_with_one_coordinator_and_nothing_leaked() {
    let seconds = std::env::var("SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let report = soak::run(Options {
        duration: Duration::from_secs(seconds),
        seed: 0x5_0A4E,
        bin: support::BIN.into(),
        verbose: std::env::var_os("SOAK_VERBOSE").is_some(),
    });
    println!("{}", report.summary());
    assert!(
        report.failures.is_empty(),
        "{} failures:\n{}\n{}",
        report.failures.len(),
        report.failures.join("\n"),
        report.summary()
    );
    for kind in [
        "kill -9",
        "SIGSTOP",
        "SIGHUP",
        "SIGTERM",
        "restart",
        "duplicate start",
        "closed pipe",
        "burst",
    ] {
        assert!(
            report.actions.get(kind).is_some_and(|n| *n > 0),
            "no {kind} in {:?}",
            report.actions
        );
    }
    // Memory is judged only past the first minute, so only on runs of 3 minutes or more.
    assert_ne!(
        report.pss_flat(),
        Some(false),
        "PSS not flat after the first minute: {}",
        report.summary()
    );
}

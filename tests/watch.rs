//! Instant failover through the coordinator watch: with a health interval far longer than the
//! deadlines below, only the watch can explain a failover in time.

mod support;

use support::*;

const SLOW_HEALTH: &[&str] = &["--startup-delay", "0", "--health-interval", "60s"];

fn fds(n: &NodeProc) -> usize {
    n.pid()
        .and_then(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
        .map(|d| d.count())
        .unwrap_or(0)
}

fn metric(port: u16, line_start: &str) -> f64 {
    let (_, body) = send(port, "GET", "/metrics", b"");
    body.lines()
        .find_map(|l| l.strip_prefix(line_start))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {line_start} in /metrics"))
}

/// Waits until the coordinator on `port` holds `n` followers' watches.
fn await_watchers(port: u16, n: u64) {
    wait_for("every follower watching the coordinator", secs(10), || {
        let w = metric(port, "bully_watchers ");
        if w == n as f64 {
            Ok(())
        } else {
            Err(format!("{w} watchers, want {n}"))
        }
    });
}

fn watched_cluster(tag: &str, n: u64) -> Cluster {
    let mut c = Cluster::new(tag, SLOW_HEALTH);
    for id in 1..=n {
        c.start(id, &[]);
    }
    c.await_agreement(&format!("node{n}"), secs(20));
    let top = c.node(&format!("node{n}")).port;
    await_watchers(top, n - 1);
    c
}

#[test]
fn kill_9_of_the_coordinator_fails_over_through_the_watch() {
    let mut c = watched_cluster("watch-kill", 4);
    c.node("node4").kill9();
    c.await_agreement("node3", secs(2));
    let p1 = c.node("node1").port;
    assert!(metric(p1, "bully_failovers_detected_total{detected_by=\"watch\"}") >= 1.0);
    assert_eq!(
        metric(
            p1,
            "bully_failovers_detected_total{detected_by=\"health_check\"}"
        ),
        0.0
    );
}

#[test]
fn sigterm_of_the_coordinator_hands_over_just_as_fast() {
    let mut c = watched_cluster("watch-term", 3);
    let status = c.node("node3").terminate(secs(10)).expect("node3 exits");
    assert!(status.success());
    c.await_agreement("node2", secs(2));
}

#[test]
fn a_frozen_coordinator_still_fails_over_through_the_health_check() {
    let mut c = Cluster::new(
        "watch-stop",
        &[
            "--startup-delay",
            "0",
            "--health-interval",
            "500ms",
            "--timeout",
            "300ms",
        ],
    );
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(20));
    c.node("node3").signal("STOP");
    let frozen = c.node("node3").port;
    // node3 cannot answer; the others must agree on node2 within a few intervals.
    let views = wait_for("survivors agree on node2", secs(10), || {
        let v: Vec<_> = c
            .nodes
            .iter()
            .filter(|n| n.port != frozen)
            .map(|n| (n.name.clone(), n.coordinator()))
            .collect();
        if v.iter().all(|(_, co)| co.as_deref() == Some("node2")) {
            Ok(v)
        } else {
            Err(format!("{v:?}"))
        }
    });
    assert_eq!(views.len(), 2);
    c.node("node3").signal("CONT");
    c.await_agreement("node3", secs(20));
}

#[test]
fn a_restarted_follower_reopens_its_watch() {
    let mut c = watched_cluster("watch-restart", 3);
    c.node("node1").restart();
    c.await_agreement("node3", secs(20));
    await_watchers(c.node("node3").port, 2);
    c.node("node3").kill9();
    c.await_agreement("node2", secs(2));
    let p1 = c.node("node1").port;
    assert!(metric(p1, "bully_failovers_detected_total{detected_by=\"watch\"}") >= 1.0);
}

#[test]
fn a_hundred_follower_restarts_leave_no_threads_or_sockets_behind() {
    let mut c = watched_cluster("watch-churn", 2);
    let (threads0, fds0) = {
        let top = c.node("node2");
        (top.threads(), fds(top))
    };
    for i in 0..100 {
        c.node("node1").restart();
        let p1 = c.node("node1").port;
        wait_for(
            &format!("restart {i}: node1 follows node2"),
            secs(20),
            || match get_json(p1, "/nodeDetails") {
                Some(d) if d["coordinator"] == "node2" => Ok(()),
                other => Err(format!("{other:?}")),
            },
        );
    }
    let top = c.node("node2");
    // Watches of dead followers are answered within the hold (5 s) and then released.
    let seen = wait_for(
        "coordinator back to its threads and sockets",
        secs(30),
        || {
            let (t, f) = (top.threads(), fds(top));
            if t <= threads0 + 3 && f <= fds0 + 3 {
                Ok((t, f))
            } else {
                Err(format!(
                    "threads {t} (was {threads0}), fds {f} (was {fds0})"
                ))
            }
        },
    );
    assert!(seen.0 <= threads0 + 3);
    c.await_agreement("node2", secs(10));
}

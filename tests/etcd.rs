//! The etcd registry and `--etcd-lock` against a real single-member etcd on private ports:
//! member keys on leases, a killed node's key running out, an etcd that goes away, and the
//! leader key handed on with a strictly higher revision and never two `--exec` workers at once.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::activity;
use support::etcd::{await_working, check_history, EtcdServer};
use support::*;

/// Short timers.
const FAST: &[&str] = &[
    "--startup-delay",
    "0",
    "--health-interval",
    "500ms",
    "--registry",
    "etcd",
];

/// A 2 s lease (etcd's minimum at its defaults) for the registry's tests.
fn cluster(tag: &str, etcd: &EtcdServer, extra: &[&str]) -> Cluster {
    cluster_ttl(tag, etcd, "2s", extra)
}

fn cluster_ttl(tag: &str, etcd: &EtcdServer, ttl: &str, extra: &[&str]) -> Cluster {
    let url = etcd.url();
    let mut args: Vec<&str> = FAST.to_vec();
    args.extend_from_slice(&["--etcd-ttl", ttl, "--cluster", tag, "--etcd", &url]);
    args.extend_from_slice(extra);
    Cluster::new(tag, &args)
}

/// Waits until etcd lists exactly `want` under the cluster's members.
fn await_members(etcd: &EtcdServer, c: &Cluster, tag: &str, want: &[&str], within: Duration) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    match poll(within, || {
        let seen = etcd.members(tag)?;
        (seen == want).then_some(()).ok_or(format!("{seen:?}"))
    }) {
        Ok(()) => {}
        Err(seen) => panic!(
            "etcd lists {seen}, not {want:?}, within {within:?}\n{}\n{}",
            c.log_tails(),
            etcd.log_tail()
        ),
    }
}

/// Fails at once if any running node names another coordinator before `until`.
fn hold_agreement(c: &mut Cluster, expected: &str, until: Instant, what: &str) {
    while Instant::now() < until {
        let views = c.views();
        if views.iter().any(|(_, v)| v.as_deref() != Some(expected)) {
            panic!(
                "{what}: a node left {expected}: {views:?}\n{}",
                c.log_tails()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn members_are_found_in_etcd_a_killed_nodes_key_runs_out_and_sigterm_removes_it_at_once() {
    let etcd = EtcdServer::start("members");
    let mut c = cluster("members", &etcd, &[]);
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(30));
    await_members(&etcd, &c, "members", &["node1", "node2", "node3"], secs(10));
    let key = etcd.keys("bully/members/members/node2").unwrap();
    assert_eq!(key[0].value["port"], c.node("node2").port, "{key:?}");
    assert_eq!(key[0].value["id"], "2", "{key:?}");
    assert_ne!(key[0].lease, "0", "the key lives on a lease: {key:?}");

    // The keys outlive several TTLs while their nodes renew them: the same keys on the same
    // leases (a key written again would have a new create revision and lease).
    let before = etcd.keys("bully/members/members/").unwrap();
    std::thread::sleep(secs(5));
    let after = etcd.keys("bully/members/members/").unwrap();
    assert_eq!(before, after, "renewed, not written again");

    // kill -9: the coordinator's key goes when its lease runs out (2 s), not before.
    c.node("node3").kill9();
    let killed = Instant::now();
    c.await_agreement("node2", secs(20));
    await_members(&etcd, &c, "members", &["node1", "node2"], secs(10));
    let gone = killed.elapsed();
    eprintln!("etcd: node3's key gone {gone:?} after kill -9 (TTL 2s)");
    // The last renewal came up to a third of the TTL before the kill.
    assert!(gone >= Duration::from_millis(1000), "gone after {gone:?}");

    // SIGTERM revokes the lease: the key goes at once.
    let status = c.node("node1").terminate(secs(10)).expect("node1 exits");
    assert!(status.success(), "{status:?}");
    await_members(&etcd, &c, "members", &["node2"], secs(1));

    // bully status reads the members from etcd.
    let out = std::process::Command::new(BIN)
        .args(["status", "--registry", "etcd", "--etcd", &etcd.url()])
        .args(["--cluster", "members"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("agreed: coordinator node2; 1 of 1"), "{text}");
}

#[test]
fn with_etcd_away_the_nodes_keep_their_coordinator_log_it_once_and_come_back() {
    let mut etcd = EtcdServer::start("away");
    let mut c = cluster("away", &etcd, &[]);
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(30));
    await_members(&etcd, &c, "away", &["node1", "node2", "node3"], secs(10));
    let before: Vec<usize> = c.nodes.iter().map(|n| n.log_text().len()).collect();
    etcd.kill();
    hold_agreement(&mut c, "node3", Instant::now() + secs(8), "etcd away");
    for (n, from) in c.nodes.iter().zip(&before) {
        let log = n.log_text()[*from..].to_string();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
        assert!(
            !warnings.is_empty() && warnings.len() <= 2,
            "{}: a warning when the outage starts, at most one per kind, got:\n{log}",
            n.name
        );
        assert!(
            warnings.iter().all(|w| w.contains("(counted in /metrics")),
            "{}:\n{log}",
            n.name
        );
        let failures = n.metric("bully_registry_failures_total");
        assert!(failures >= 8.0, "{}: {failures} failures counted", n.name);
        assert_eq!(
            n.metric("bully_registered"),
            1.0,
            "{}: still registered",
            n.name
        );
    }
    let out = std::process::Command::new(BIN)
        .args(["status", "--etcd", &etcd.url(), "--cluster", "away"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("registry etcd") && err.contains("refused"),
        "{err}"
    );

    // etcd comes back with its data: the leases were kept, every node says so.
    etcd.restart();
    for n in &c.nodes {
        wait_for(
            &format!("{} to log the end of the outage", n.name),
            secs(30),
            || {
                let log = n.log_text();
                log.contains("works again after").then_some(()).ok_or(log)
            },
        );
    }
    await_members(&etcd, &c, "away", &["node1", "node2", "node3"], secs(10));
    c.await_agreement("node3", secs(20));
}

/// A cluster `tag` with `--etcd-lock`: each node's `--on-elected` hook appends
/// `NODE REVISION REASON` to `elected`, and its `--exec` child beats into `work`.
fn lock_cluster(tag: &str, etcd: &EtcdServer, elected: &Path, work: &Path) -> Cluster {
    lock_cluster_with(tag, etcd, elected, work, &[])
}

fn lock_cluster_with(
    tag: &str,
    etcd: &EtcdServer,
    elected: &Path,
    work: &Path,
    more: &[&str],
) -> Cluster {
    let hook = format!(
        "echo \"$BULLY_NODE $BULLY_ETCD_REVISION $BULLY_REASON\" >> {}",
        elected.display()
    );
    let exec = activity::worker(work);
    // A 5 s lease: a key handed on by the dead holder's revoke (some 30 ms) stays well
    // apart from one that waited out the lease (3.3 s at least) on a loaded machine.
    cluster_ttl(
        tag,
        etcd,
        "5s",
        &[
            "--etcd-lock",
            "--on-elected",
            &hook,
            "--exec",
            &exec,
            "--exec-grace",
            "200ms",
        ]
        .iter()
        .chain(more)
        .copied()
        .collect::<Vec<&str>>(),
    )
}

/// Waits until etcd's leader key names `node`; returns its revision.
fn await_holder(etcd: &EtcdServer, c: &Cluster, tag: &str, node: &str, within: Duration) -> u64 {
    match poll(within, || match etcd.leader(tag)? {
        Some((n, rev)) if n == node => Ok(rev),
        other => Err(format!("{other:?}")),
    }) {
        Ok(rev) => rev,
        Err(seen) => panic!(
            "{node} does not hold bully/{tag}/leader within {within:?}: {seen}\n{}\n{}",
            c.log_tails(),
            etcd.log_tail()
        ),
    }
}

#[test]
fn with_etcd_lock_a_kill9_a_freeze_and_a_sigterm_hand_the_key_on_with_higher_revisions() {
    let etcd = EtcdServer::start("lock");
    let out = TempDir::new("etcd-lock-out");
    let (elected, work) = (out.path().join("elected"), out.path().join("work"));
    std::fs::create_dir_all(&work).unwrap();
    let mut c = lock_cluster("lock", &etcd, &elected, &work);
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(30));
    let first = await_holder(&etcd, &c, "lock", "node3", secs(10));
    check_history(&elected, &work, "node3", first);
    // Its supervisor, which revokes the lease after a kill, exists once the worker runs: a
    // kill between the hook and the child's start leaves the key to its TTL.
    await_working(&work, "node3", Duration::from_millis(100));

    // kill -9: node3's supervisor stops the worker at once, then revokes the lease; node2
    // takes the key with a higher revision, and only then leads.
    c.node("node3").kill9();
    let killed = Instant::now();
    let second = await_holder(&etcd, &c, "lock", "node2", secs(20));
    let taken = killed.elapsed();
    eprintln!("--etcd-lock: node2 held the key {taken:?} after kill -9 of node3 (TTL 5s)");
    // node3's supervisor revoked the lease once the worker was dead: no TTL to wait out.
    assert!(
        taken < secs(3),
        "the key was free only after {taken:?}\n{}\n{}",
        c.log_tails(),
        etcd.log_tail()
    );
    assert!(second > first, "revision {second} after {first}");
    c.await_agreement("node2", secs(20));
    check_history(&elected, &work, "node2", second);

    // SIGSTOP of the leader: its worker is stopped by the fence (its supervisor's deadline)
    // before etcd lets the lease run out and node1 takes the key.
    c.node("node2").signal("STOP");
    let third = await_holder(&etcd, &c, "lock", "node1", secs(30));
    assert!(third > second, "revision {third} after {second}");
    c.await_agreement_of(&["node1"], "node1", secs(20));
    // node1's worker beats for a while beside the frozen node2, whose worker must be gone.
    await_working(&work, "node1", secs(1));
    check_history(&elected, &work, "node1", third);
    c.node("node2").signal("CONT");
    // node2, higher, takes over again once node1 lets go.
    let fourth = await_holder(&etcd, &c, "lock", "node2", secs(30));
    assert!(fourth > third, "revision {fourth} after {third}");
    c.await_agreement("node2", secs(20));
    check_history(&elected, &work, "node2", fourth);
    assert!(
        c.node("node2").log_text().contains("Lost the leader lock"),
        "{}",
        c.node("node2").log_text()
    );

    // SIGTERM: node2 revokes its lease, node1 takes the key long before a TTL would pass.
    let stopped = Instant::now();
    let status = c.node("node2").terminate(secs(10)).expect("node2 exits");
    assert!(status.success(), "{status:?}");
    assert!(
        c.node("node2")
            .log_text()
            .contains("Released the leader lock bully/lock/leader"),
        "{}",
        c.node("node2").log_text()
    );
    let fifth = await_holder(&etcd, &c, "lock", "node1", secs(10));
    assert!(fifth > fourth, "revision {fifth} after {fourth}");
    c.await_agreement("node1", secs(20));
    check_history(&elected, &work, "node1", fifth);
    eprintln!(
        "--etcd-lock: node1 led {:?} after node2's SIGTERM",
        stopped.elapsed()
    );
}

#[test]
fn with_etcd_auth_a_node_authenticates_from_its_password_file_and_a_wrong_password_stops_it() {
    let etcd = EtcdServer::start("auth");
    etcd.enable_auth("bully", "s3cret pass");
    let dir = TempDir::new("etcd-auth");
    let (good, bad) = (dir.path().join("good"), dir.path().join("bad"));
    std::fs::write(&good, "s3cret pass\n").unwrap();
    std::fs::write(&bad, "wrong\n").unwrap();
    let good = good.display().to_string();
    let mut c = cluster(
        "auth",
        &etcd,
        &[
            "--etcd-lock",
            "--etcd-user",
            "bully",
            "--etcd-password-file",
            &good,
        ],
    );
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(30));
    let status = |extra: &[&str]| {
        std::process::Command::new(BIN)
            .args(["status", "--etcd", &etcd.url(), "--cluster", "auth"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = status(&["--etcd-user", "bully", "--etcd-password-file", &good]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("agreed: coordinator node2; 2 of 2"), "{text}");
    let out = status(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("user name is empty"), "{err}");
    assert!(
        !c.node("node2").log_text().contains("s3cret"),
        "the password never shows in a log"
    );

    let out = std::process::Command::new(BIN)
        .args(["5999", "node9", "--etcd", &etcd.url(), "--cluster", "auth"])
        .args(["--etcd-user", "bully", "--etcd-password-file"])
        .arg(&bad)
        .args([
            "--state-dir",
            &dir.path().join("state").display().to_string(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("authentication failed"), "{err}");
}

#[test]
fn in_quorum_mode_the_key_is_taken_once_the_majority_holds_and_handed_on_after_a_kill9() {
    let etcd = EtcdServer::start("quorum");
    let out = TempDir::new("etcd-quorum-out");
    let (elected, work) = (out.path().join("elected"), out.path().join("work"));
    std::fs::create_dir_all(&work).unwrap();
    let mut c = lock_cluster_with("quorum", &etcd, &elected, &work, &["--quorum", "3"]);
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(30));
    let first = await_holder(&etcd, &c, "quorum", "node3", secs(10));
    await_working(&work, "node3", secs(1));
    check_history(&elected, &work, "node3", first);
    c.node("node3").kill9();
    let second = await_holder(&etcd, &c, "quorum", "node2", secs(30));
    assert!(second > first, "revision {second} after {first}");
    c.await_agreement("node2", secs(20));
    await_working(&work, "node2", secs(1));
    check_history(&elected, &work, "node2", second);
}

#[test]
fn with_etcd_lock_and_no_exec_child_a_kill9_still_hands_the_key_on_at_once() {
    // Only the --exec child's supervisor outlived a killed node to revoke its lease; without
    // a child the next node waited out the TTL. The lease keeper does it now.
    let etcd = EtcdServer::start("keeper");
    let mut c = cluster_ttl("keeper", &etcd, "5s", &["--etcd-lock"]);
    for id in 1..=2 {
        c.start(id, &[]);
    }
    c.await_agreement("node2", secs(30));
    let first = await_holder(&etcd, &c, "keeper", "node2", secs(10));
    c.node("node2").kill9();
    let killed = Instant::now();
    let second = await_holder(&etcd, &c, "keeper", "node1", secs(20));
    let taken = killed.elapsed();
    eprintln!("--etcd-lock, no --exec: node1 held the key {taken:?} after kill -9 (TTL 5s)");
    assert!(second > first, "revision {second} after {first}");
    assert!(
        taken < secs(3),
        "the key was free only after {taken:?}\n{}\n{}",
        c.log_tails(),
        etcd.log_tail()
    );
}

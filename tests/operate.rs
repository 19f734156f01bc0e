//! Operator control with real processes on loopback: a health check moves leadership and back
//! (and one that jitters inside its rise/fall window moves nothing), a hung check is killed,
//! `--no-preempt` through 100 restarts, `--preempt-delay` at every rejoin, `bully step-down`
//! with and without `--to`, `bully maintenance` across a restart, every refusal with its exit
//! code, and the `BULLY_REASON` the hooks see. Handover times are measured and printed, and
//! asserted only against generous bounds: the machine is shared; speed is shown in benchmarks.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use support::activity::{self, intervals, overlaps, Interval};
use support::*;

const FAST: &[&str] = &["--startup-delay", "0", "--health-interval", "200ms"];

/// A hook that appends `KIND node=.. coordinator=.. term=.. reason=..` to `DIR/NODE.events`.
fn record(kind: &str, dir: &Path) -> String {
    format!(
        "echo {kind} node=$BULLY_NODE coordinator=$BULLY_COORDINATOR term=$BULLY_TERM \
         reason=$BULLY_REASON >> '{}'/$BULLY_NODE.events",
        dir.display()
    )
}

/// A cluster whose nodes record their hooks under `events/` and, with `exec`, run the
/// activity worker under `work/` while they lead.
fn cluster(tag: &str, extra: &[&str], exec: bool) -> Cluster {
    let mut c = Cluster::new(tag, FAST);
    c.common.extend(extra.iter().map(|s| s.to_string()));
    let events = events_dir(&c);
    std::fs::create_dir_all(&events).unwrap();
    c.common.extend([
        "--on-elected".into(),
        record("elected", &events),
        "--on-demoted".into(),
        record("demoted", &events),
    ]);
    if exec {
        let work = work_dir(&c);
        std::fs::create_dir_all(&work).unwrap();
        c.common.extend([
            "--exec".into(),
            activity::worker(&work),
            "--exec-grace".into(),
            "2s".into(),
        ]);
    }
    c
}

fn events_dir(c: &Cluster) -> PathBuf {
    c.dir.path().join("events")
}

fn work_dir(c: &Cluster) -> PathBuf {
    c.dir.path().join("work")
}

/// The hook lines node `name` recorded.
fn events(c: &Cluster, name: &str) -> Vec<String> {
    std::fs::read_to_string(events_dir(c).join(format!("{name}.events")))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// The value of `key=` in a recorded line.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("")
}

/// The reasons of node `name`'s `kind` (elected or demoted) hooks, in order.
fn reasons(c: &Cluster, name: &str, kind: &str) -> Vec<String> {
    events(c, name)
        .iter()
        .filter(|l| l.starts_with(&format!("{kind} ")))
        .map(|l| field(l, "reason").to_string())
        .collect()
}

/// Every node's hook lines, for failure messages.
fn all_events(c: &Cluster) -> String {
    c.nodes
        .iter()
        .map(|n| format!("{}: {:#?}", n.name, events(c, &n.name)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Waits until node `name` has recorded `n` `kind` hooks; returns the last one's reason.
fn await_hook(c: &Cluster, name: &str, kind: &str, n: usize) -> String {
    poll(secs(20), || {
        let r = reasons(c, name, kind);
        if r.len() >= n {
            Ok(r[n - 1].clone())
        } else {
            Err(format!("{r:?}"))
        }
    })
    .unwrap_or_else(|seen| {
        panic!(
            "{name}: {n} {kind} hooks not within 20s; saw {seen}\n{}\n{}",
            all_events(c),
            c.log_tails()
        )
    })
}

/// Runs `bully ARGS` with no BULLY_ settings of the test's environment; exit code, stdout,
/// stderr.
fn bully(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("BULLY_PORT")
        .env_remove("BULLY_CLUSTER_KEY")
        .env_remove("BULLY_CLUSTER_KEY_FILE")
        // No packaged instance of this host stands in for a missing --port.
        .env("BULLY_DEFAULTS", "/nonexistent/bully")
        .output()
        .expect("run bully");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Node `name`, looked up without a mutable borrow (for closures).
fn get<'a>(c: &'a Cluster, name: &str) -> &'a NodeProc {
    c.nodes
        .iter()
        .find(|n| n.name == name)
        .unwrap_or_else(|| panic!("no node {name}"))
}

fn term_of(n: &NodeProc) -> u64 {
    n.details()
        .and_then(|d| d["term"].as_u64())
        .unwrap_or_else(|| panic!("{} does not answer", n.name))
}

/// Polls `f` every 2 ms until it holds; returns the time since `since`. Tighter than
/// [`poll`], for the figures this file prints.
fn stopwatch(
    since: Instant,
    within: Duration,
    what: &str,
    c: &Cluster,
    mut f: impl FnMut() -> Result<(), String>,
) -> Duration {
    let end = Instant::now() + within;
    loop {
        match f() {
            Ok(()) => return since.elapsed(),
            Err(seen) if Instant::now() >= end => {
                panic!(
                    "{what}: not within {within:?}; last seen {seen}\n{}\n{}",
                    all_events(c),
                    c.log_tails()
                )
            }
            Err(_) => std::thread::sleep(Duration::from_millis(2)),
        }
    }
}

/// For `window`, every 50 ms: each of `names` follows `leader`, which leads in `term`. Panics
/// at the first sample that differs.
fn steady(c: &mut Cluster, names: &[&str], leader: &str, term: u64, window: Duration) {
    let end = Instant::now() + window;
    let mut samples = 0;
    while Instant::now() < end {
        let views: Vec<(String, Option<String>)> = names
            .iter()
            .map(|n| (n.to_string(), c.node(n).coordinator()))
            .collect();
        let t = c.node(leader).details().and_then(|d| d["term"].as_u64());
        if views.iter().any(|(_, v)| v.as_deref() != Some(leader)) || t != Some(term) {
            panic!(
                "after {samples} good samples: views {views:?}, {leader}'s term {t:?} (was \
                 {term})\n{}\n{}",
                all_events(c),
                c.log_tails()
            );
        }
        samples += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn ms500() -> Duration {
    Duration::from_millis(500)
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

/// Asserts that no two `--exec` children ran at once after `since` (ns of the wall clock).
/// Before it the cluster was starting: in plain Bully a lower node may lead for a moment
/// until a higher one bullies it, and their children may overlap (quorum mode is the cure).
fn assert_no_overlap_since(c: &Cluster, since: u128) -> Vec<Interval> {
    let all: Vec<Interval> = intervals(&work_dir(c))
        .into_iter()
        .filter(|i| i.end >= since)
        .collect();
    let bad = overlaps(&all);
    assert!(
        bad.is_empty(),
        "two children worked at once: {:?}\n{}\n{}",
        bad.iter()
            .map(|(a, b, ms)| format!("{} and {} for {ms:.1} ms", a.node, b.node))
            .collect::<Vec<_>>(),
        activity::describe(&all),
        c.log_tails()
    );
    all
}

/// Waits until node `name`'s `--exec` child has been beating for a few beats.
fn await_working(c: &Cluster, name: &str) {
    let work = work_dir(c);
    wait_for(&format!("{name}'s exec child"), secs(20), || {
        let all = intervals(&work);
        let mine = all.iter().rev().find(|i| i.node == name);
        match mine {
            Some(i) if i.beats >= 3 && activity::now_ns() - i.end < 500_000_000 => Ok(()),
            _ => Err(activity::describe(&all)),
        }
    });
}

/// One planned handover, as seen from the outside.
struct Handover {
    from: String,
    to: String,
    /// `bully step-down` until it exited.
    command: Duration,
    /// Until the new coordinator said it leads.
    led: Duration,
    /// Until the new coordinator's child wrote its first beat.
    working: Duration,
    /// From the old child's last beat to the new one's first (beats are 20 ms apart).
    gap_ms: f64,
}

/// `bully step-down [--to to]` on node `from`; waits until `to` leads and works.
fn step_down(c: &mut Cluster, from: &str, to: &str, named: bool) -> Handover {
    await_working(c, from);
    // A node that joined a moment ago is not yet known to the coordinator for --to: it
    // learns the members at its next health tick.
    let n = c.nodes.len() as f64;
    wait_for(&format!("{from} to know every member"), secs(10), || {
        let m = get(c, from).metric("bully_members");
        if m == n {
            Ok(())
        } else {
            Err(format!("{m}"))
        }
    });
    let port = c.node(from).port.to_string();
    let mut args = vec!["step-down", "--port", &port];
    if named {
        args.extend(["--to", to]);
    }
    let started = Instant::now();
    let started_ns = activity::now_ns();
    let (code, out, err) = bully(&args);
    let command = started.elapsed();
    assert_eq!(
        code,
        0,
        "step-down on {from}: {out}{err}\n{}",
        c.log_tails()
    );
    let expected = if named {
        format!("stepping down for {to}")
    } else {
        "stepping down; the next node takes over".to_string()
    };
    assert_eq!(out.trim(), expected, "{err}");
    let led = stopwatch(started, secs(20), &format!("{to} to lead"), c, || {
        let d = get(c, to).details().ok_or("no answer")?;
        if d["is_coordinator"] == Value::Bool(true) {
            Ok(())
        } else {
            Err(d.to_string())
        }
    });
    let work = work_dir(c);
    let mut new_start = 0;
    let working = stopwatch(
        started,
        secs(20),
        &format!("{to}'s exec child"),
        c,
        || match intervals(&work)
            .iter()
            .find(|i| i.node == to && i.start > started_ns)
        {
            Some(i) => {
                new_start = i.start;
                Ok(())
            }
            None => Err(activity::describe(&intervals(&work))),
        },
    );
    let old_end = intervals(&work)
        .iter()
        .filter(|i| i.node == from && i.start < started_ns)
        .map(|i| i.end)
        .max()
        .expect("the old coordinator's child");
    Handover {
        from: from.into(),
        to: to.into(),
        command,
        led,
        working,
        gap_ms: (new_start as f64 - old_end as f64) / 1e6,
    }
}

fn print_handovers(what: &str, all: &[Handover]) {
    for h in all {
        println!(
            "{what} {} -> {}: command returned after {}, {} led after {}, its child worked \
             after {}; {:.0} ms from the old child's last beat to the new one's first",
            h.from,
            h.to,
            ms(h.command),
            h.to,
            ms(h.led),
            ms(h.working),
            h.gap_ms
        );
    }
}

#[test]
fn a_failing_check_hands_leadership_to_the_next_node_and_back() {
    let mut c = cluster("op-check", &[], false);
    let up = c.dir.path().join("up");
    std::fs::write(&up, b"").unwrap();
    let check = format!("test -e '{}'", up.display());
    c.start(1, &[]);
    c.start(2, &[]);
    c.start(3, &["--check", &check, "--check-interval", "200ms"]);
    c.await_agreement("node3", secs(30));
    let d = c.node("node3").details().unwrap();
    assert_eq!(
        (&d["healthy"], &d["preempts"]),
        (&true.into(), &true.into())
    );
    assert_eq!(c.node("node3").metric("bully_check_up"), 1.0);
    // Interval x fall + 100 ms, the issue's bound, counted from the file's removal.
    let bound = Duration::from_millis(200 * 3 + 100);
    let mut handovers = Vec::new();
    for round in 1..=3 {
        let failures = c.node("node3").metric("bully_check_failures_total");
        std::fs::remove_file(&up).unwrap();
        let removed = Instant::now();
        let took = stopwatch(removed, secs(20), "node2 to lead", &c, || {
            let (n2, n3) = (c.nodes[1].details(), c.nodes[2].details());
            match (&n2, &n3) {
                (Some(a), Some(b))
                    if a["is_coordinator"] == Value::Bool(true)
                        && b["is_coordinator"] == Value::Bool(false) =>
                {
                    Ok(())
                }
                _ => Err(format!("{n2:?} {n3:?}")),
            }
        });
        handovers.push(took);
        c.await_agreement("node2", secs(20));
        let d = c.node("node3").details().unwrap();
        assert_eq!(d["healthy"], false, "{d}");
        assert_eq!(c.node("node3").metric("bully_check_up"), 0.0);
        assert!(c.node("node3").metric("bully_check_failures_total") >= failures + 3.0);
        assert_eq!(await_hook(&c, "node3", "demoted", round), "unhealthy");

        std::fs::write(&up, b"").unwrap();
        let back = Instant::now();
        c.await_agreement("node3", secs(20));
        println!(
            "round {round}: node2 led {} after the check's file went (bound interval x fall \
             + 100 ms = {}); node3 led again {} after it came back",
            ms(took),
            ms(bound),
            ms(back.elapsed())
        );
        assert_eq!(await_hook(&c, "node2", "demoted", round), "preempted");
    }
    for took in &handovers {
        assert!(*took < secs(5), "handovers {handovers:?}");
    }
    let within = handovers.iter().filter(|t| **t <= bound).count();
    println!("{within} of {} handovers within the bound", handovers.len());
}

/// The check passes `run` times, fails `run` times, and so on, once `jitter` holds a run
/// length: the jitter is set by the check's own runs, so it stays inside the window however
/// slow the machine is. Every result is appended to `seen` (0 passed, 1 failed).
fn jitter_script(dir: &Path) -> String {
    format!(
        "cd '{}'\n\
         if [ -e jitter ]; then\n\
         \x20 n=$(cat count 2>/dev/null || echo 0); echo $((n + 1)) > count\n\
         \x20 r=$(( n / $(cat jitter) % 2 ))\n\
         else\n\
         \x20 test -e up; r=$?\n\
         fi\n\
         echo $r >> seen\n\
         exit $r\n",
        dir.display()
    )
}

/// The longest run of failures in `seen`.
fn longest_failing_run(seen: &str) -> usize {
    seen.lines()
        .fold((0, 0), |(run, best), l| {
            let run = if l.trim() == "1" { run + 1 } else { 0 };
            (run, best.max(run))
        })
        .1
}

#[test]
fn a_check_that_jitters_inside_its_rise_and_fall_window_moves_nothing() {
    let mut c = cluster("op-jitter", &[], false);
    let dir = c.dir.path().join("check");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("up"), b"").unwrap();
    let script = dir.join("check.sh");
    std::fs::write(&script, jitter_script(&dir)).unwrap();
    let check = format!("sh '{}'", script.display());
    let flags = [
        "--check",
        &check,
        "--check-interval",
        "100ms",
        "--check-rise",
        "3",
        "--check-fall",
        "3",
    ];
    c.start(1, &[]);
    c.start(2, &flags);
    c.await_agreement("node2", secs(30));
    let term = term_of(c.node("node2"));
    let failures = c.node("node2").metric("bully_check_failures_total");
    // Two passes, two failures, ...: never three alike in a row.
    std::fs::write(dir.join("count"), b"0").unwrap();
    let before = std::fs::read_to_string(dir.join("seen")).unwrap().len();
    std::fs::write(dir.join("jitter"), b"2").unwrap();
    let started = Instant::now();
    steady(&mut c, &["node1", "node2"], "node2", term, secs(4));
    let seen = std::fs::read_to_string(dir.join("seen")).unwrap()[before..].to_string();
    let failed = c.node("node2").metric("bully_check_failures_total") - failures;
    println!(
        "jitter for {}: {} checks, {failed} failed, longest failing run {}; node2 led \
         throughout in term {term}",
        ms(started.elapsed()),
        seen.lines().count(),
        longest_failing_run(&seen)
    );
    assert!(failed >= 5.0, "the check did fail: {seen:?}");
    assert_eq!(longest_failing_run(&seen), 2, "{seen:?}");
    assert_eq!(c.node("node2").metric("bully_check_up"), 1.0);
    assert_eq!(reasons(&c, "node2", "demoted"), Vec::<String>::new());

    // Runs as long as the fall count: now the verdict does change, so the test above could
    // have failed.
    std::fs::write(dir.join("jitter"), b"3").unwrap();
    assert_eq!(await_hook(&c, "node2", "demoted", 1), "unhealthy");
    await_hook(&c, "node1", "elected", 1);
}

/// The live processes whose environment holds `mark` and whose command line is `sleep 100`,
/// wherever they are (an orphan of a killed check is found too).
fn marked_sleeps(mark: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline != b"sleep\x00100\x00" {
            continue;
        }
        let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let marked = environ.split(|b| *b == 0).any(|kv| kv == mark.as_bytes());
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if marked && !zombie {
            out.push(pid);
        }
    }
    out
}

#[test]
fn a_hung_check_is_killed_at_its_timeout_and_counts_as_failed() {
    let mark = format!("BULLY_TEST_HUNG={}", std::process::id());
    let check = format!("{mark} sleep 100");
    let mut c = cluster("op-hung", &[], false);
    // The hung check is on the higher node: the lower one must not wait for it.
    let started = Instant::now();
    c.start(1, &[]);
    c.start(
        2,
        &[
            "--check",
            &check,
            "--check-timeout",
            "300ms",
            "--check-interval",
            "200ms",
        ],
    );
    c.await_agreement("node1", secs(30));
    println!(
        "node1 led {} after start, node2's check hanging",
        ms(started.elapsed())
    );
    // For 3 s: never more than one check alive, and each one gone soon after it appeared.
    let mut lives: BTreeMap<u32, (Instant, Instant)> = BTreeMap::new();
    let end = Instant::now() + secs(3);
    while Instant::now() < end {
        let now = Instant::now();
        let alive = marked_sleeps(&mark);
        assert!(alive.len() <= 1, "several checks at once: {alive:?}");
        for pid in alive {
            lives.entry(pid).or_insert((now, now)).1 = now;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let alive = marked_sleeps(&mark);
    let longest = lives
        .iter()
        .filter(|(pid, _)| !alive.contains(pid))
        .map(|(_, (first, last))| *last - *first)
        .max()
        .unwrap_or_default();
    println!(
        "{} hung checks seen in 3 s, the longest seen alive for {} (timeout 300 ms)",
        lives.len(),
        ms(longest)
    );
    assert!(lives.len() >= 3, "checks ran again and again: {lives:?}");
    assert!(longest < secs(2), "killed at the timeout: {lives:?}");
    let node2 = c.node("node2");
    assert!(node2.metric("bully_check_failures_total") >= 3.0);
    assert_eq!(node2.metric("bully_check_up"), 0.0);
    let d = node2.details().unwrap();
    assert_eq!(
        (&d["healthy"], &d["coordinator"]),
        (&false.into(), &"node1".into())
    );
    assert_eq!(events(&c, "node2"), Vec::<String>::new(), "node2 never led");
    // kill -9 of the node: its running check dies with it.
    c.node("node2").kill9();
    wait_for("no check left after kill -9 of the node", secs(10), || {
        let alive = marked_sleeps(&mark);
        if alive.is_empty() {
            Ok(())
        } else {
            Err(format!("{alive:?}"))
        }
    });
}

#[test]
fn without_preemption_100_restarts_of_the_highest_node_leave_the_coordinator_alone() {
    let mut c = cluster("op-nopreempt", &["--no-preempt"], false);
    c.start(2, &[]);
    c.await_agreement("node2", secs(30));
    c.start(1, &[]);
    c.await_agreement("node2", secs(30));
    let term = term_of(c.node("node2"));
    // The change is counted a moment after /nodeDetails shows it (its term goes to disk
    // first): wait for node1's first, none to node2.
    let changes = wait_for("node1's change counted", secs(10), || {
        let n = get(&c, "node1").metric("bully_coordinator_changes_total");
        if n >= 1.0 {
            Ok(n)
        } else {
            Err(format!("{n}"))
        }
    });
    c.start(3, &[]);
    let started = Instant::now();
    let mut slowest = Duration::ZERO;
    for i in 0..100 {
        // Half of the restarts after a crash, half after a clean exit.
        if i % 2 == 1 {
            c.node("node3").restart();
        } else if i > 0 {
            let status = c.node("node3").terminate(secs(20));
            assert!(status.is_some_and(|s| s.success()), "{status:?}");
            c.node("node3").restart();
        }
        let restarted = Instant::now();
        let node3 = c.node("node3");
        wait_for("node3 to follow node2", secs(20), || {
            let d = node3.details().ok_or("no answer")?;
            if d["coordinator"] == "node2" && d["preempts"] == false {
                Ok(())
            } else {
                Err(d.to_string())
            }
        });
        slowest = slowest.max(restarted.elapsed());
        let d = c.node("node2").details().unwrap();
        assert!(
            d["is_coordinator"] == true && d["term"] == term,
            "restart {i}: {d}\n{}",
            c.log_tails()
        );
        assert_eq!(c.node("node1").coordinator().as_deref(), Some("node2"));
        // Now and then long enough for a look up by node2 and a health tick by node3.
        if i % 10 == 9 {
            steady(&mut c, &["node1", "node2", "node3"], "node2", term, ms500());
        }
    }
    println!(
        "100 restarts of node3 in {} (the slowest until it followed: {}); node2 kept term \
         {term}",
        ms(started.elapsed()),
        ms(slowest)
    );
    steady(&mut c, &["node1", "node2", "node3"], "node2", term, secs(1));
    assert_eq!(
        c.node("node1").metric("bully_coordinator_changes_total"),
        changes,
        "node1 changed coordinator\n{}",
        c.log_tails()
    );
    assert_eq!(reasons(&c, "node2", "elected"), ["elected"]);
    assert_eq!(reasons(&c, "node2", "demoted"), Vec::<String>::new());
    for n in ["node1", "node3"] {
        assert_eq!(events(&c, n), Vec::<String>::new(), "{}", all_events(&c));
    }

    // It takes over when the coordinator fails, and then keeps it in turn.
    c.node("node2").kill9();
    c.await_agreement("node3", secs(20));
    assert_eq!(await_hook(&c, "node3", "elected", 1), "failover");
    c.node("node2").restart();
    let term = term_of(c.node("node3"));
    wait_for("node2 to follow node3", secs(20), || {
        get(&c, "node2")
            .details()
            .filter(|d| d["coordinator"] == "node3")
            .map(|_| ())
            .ok_or_else(|| "not yet".to_string())
    });
    steady(&mut c, &["node1", "node2", "node3"], "node3", term, secs(1));
}

/// Polls node `name`'s view until it leads (Some) and returns how long that took since
/// `since`, recording the first time it reported itself healthy in `healthy`.
fn await_lead_noting_health(
    c: &Cluster,
    name: &str,
    since: Instant,
    healthy: &mut Option<Duration>,
) -> Duration {
    let n = get(c, name);
    let mut followed = false;
    let took = stopwatch(since, secs(30), &format!("{name} to lead"), c, || {
        let d = n.details().ok_or("no answer")?;
        if healthy.is_none() && d["healthy"] == true {
            *healthy = Some(since.elapsed());
        }
        if d["coordinator"] == "node2" && d["preempts"] == false {
            followed = true;
        }
        if d["is_coordinator"] == true {
            Ok(())
        } else {
            Err(d.to_string())
        }
    });
    assert!(
        followed,
        "{name} never followed node2 while it waited; it led after {took:?}\n{}",
        c.log_tails()
    );
    took
}

#[test]
fn a_preempt_delay_holds_a_returning_node_back_at_every_rejoin() {
    let mut c = cluster("op-delay", &[], false);
    let up = c.dir.path().join("up");
    std::fs::write(&up, b"").unwrap();
    let check = format!("test -e '{}'", up.display());
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(30));
    let flags = [
        "--preempt-delay",
        "2s",
        "--check",
        &check,
        "--check-interval",
        "200ms",
    ];
    let delay = secs(2);

    // At start.
    let started = Instant::now();
    c.start(3, &flags);
    let mut healthy = None;
    let took = await_lead_noting_health(&c, "node3", started, &mut healthy);
    println!(
        "start: node3 healthy after {}, took over {} after its start",
        ms(healthy.unwrap_or_default()),
        ms(took)
    );
    assert!(took >= delay, "took over after {took:?}");
    assert!(took < secs(20), "{took:?}");
    c.await_agreement("node3", secs(20));

    // After a health flap: the delay starts again.
    std::fs::remove_file(&up).unwrap();
    c.await_agreement("node2", secs(20));
    std::fs::write(&up, b"").unwrap();
    let restored = Instant::now();
    let mut healthy = None;
    let took = await_lead_noting_health(&c, "node3", restored, &mut healthy);
    let since_healthy = took - healthy.unwrap_or_default();
    println!(
        "health flap: node3 healthy {} after the check's file came back, took over {} \
         after that",
        ms(healthy.unwrap_or_default()),
        ms(since_healthy)
    );
    assert!(took >= delay, "took over after {took:?}");
    // Healthy is seen by polling, a little after it happened.
    assert!(
        since_healthy + Duration::from_millis(100) >= delay,
        "{since_healthy:?}"
    );
    c.await_agreement("node3", secs(20));

    // After a crash and restart.
    c.node("node3").kill9();
    c.await_agreement("node2", secs(20));
    let restarted = Instant::now();
    c.node("node3").restart();
    let mut healthy = None;
    let took = await_lead_noting_health(&c, "node3", restarted, &mut healthy);
    println!("restart: node3 took over {} after its start", ms(took));
    assert!(took >= delay, "took over after {took:?}");
    c.await_agreement("node3", secs(20));
    await_hook(&c, "node2", "demoted", 3);
    assert_eq!(reasons(&c, "node2", "demoted"), ["preempted"; 3]);
}

#[test]
fn step_down_hands_over_to_the_next_node_after_its_child_stopped() {
    let mut c = cluster("op-step", &[], true);
    for id in 1..=4 {
        c.start(id, &[]);
    }
    c.await_agreement("node4", secs(30));
    await_working(&c, "node4");
    let since = activity::now_ns();
    let mut all = Vec::new();
    for from in (2..=4).rev() {
        let (from, to) = (format!("node{from}"), format!("node{}", from - 1));
        // At start a lower node may have led for a moment, and been demoted.
        let demoted = reasons(&c, &from, "demoted").len();
        let h = step_down(&mut c, &from, &to, false);
        c.await_agreement(&to, secs(20));
        assert_eq!(await_hook(&c, &from, "demoted", demoted + 1), "step-down");
        all.push(h);
    }
    // Those that stepped down hold back: node1 keeps it.
    let term = term_of(c.node("node1"));
    steady(
        &mut c,
        &["node1", "node2", "node3", "node4"],
        "node1",
        term,
        secs(1),
    );
    print_handovers("step-down", &all);
    let work = assert_no_overlap_since(&c, since);
    println!("{}", activity::describe(&work));
    for h in &all {
        assert!(
            h.working < secs(10),
            "handover to {} took {:?}",
            h.to,
            h.working
        );
        assert!(h.gap_ms > 0.0, "{} started before {} stopped", h.to, h.from);
    }
    // A failed coordinator frees those holding back: the highest takes over.
    c.node("node1").kill9();
    c.await_agreement("node4", secs(20));
}

#[test]
fn step_down_to_a_named_node_keeps_it_there_without_preemption() {
    let mut c = cluster("op-step-to", &["--no-preempt"], true);
    c.start(4, &[]);
    c.await_agreement("node4", secs(30));
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node4", secs(30));
    let names = ["node1", "node2", "node3", "node4"];
    let since = activity::now_ns();
    let mut all = Vec::new();
    for (from, to) in [("node4", "node1"), ("node1", "node3"), ("node3", "node2")] {
        let h = step_down(&mut c, from, to, true);
        c.await_agreement(to, secs(20));
        let term = term_of(c.node(to));
        // The nodes above it do not take it back.
        steady(&mut c, &names, to, term, secs(1));
        assert_eq!(await_hook(&c, to, "elected", 1), "step-down");
        assert_eq!(await_hook(&c, from, "demoted", 1), "step-down");
        all.push(h);
    }
    print_handovers("step-down --to", &all);
    let work = assert_no_overlap_since(&c, since);
    println!("{}", activity::describe(&work));
    for h in &all {
        assert!(
            h.working < secs(10),
            "handover to {} took {:?}",
            h.to,
            h.working
        );
    }
}

#[test]
fn maintenance_takes_a_node_out_until_turned_off_even_across_a_restart() {
    let mut c = cluster("op-maint", &[], false);
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(30));
    let port = c.node("node2").port.to_string();
    let (code, out, err) = bully(&["maintenance", "on", "--port", &port]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        "maintenance on: stepping down, standing for nothing until it is off"
    );
    c.await_agreement("node1", secs(20));
    assert_eq!(await_hook(&c, "node2", "demoted", 1), "maintenance");
    let d = c.node("node2").details().unwrap();
    assert_eq!(
        (&d["maintenance"], &d["preempts"]),
        (&true.into(), &false.into())
    );
    assert_eq!(c.node("node2").metric("bully_maintenance"), 1.0);
    let (code, out, _) = bully(&["maintenance", "on", "--port", &port]);
    assert_eq!((code, out.trim()), (0, "maintenance is already on"));

    // kill -9 and back: still in maintenance.
    c.node("node2").restart();
    wait_for(
        "node2 back, in maintenance, following node1",
        secs(20),
        || {
            let d = c.nodes[1].details().ok_or("no answer")?;
            if d["maintenance"] == true && d["coordinator"] == "node1" {
                Ok(())
            } else {
                Err(d.to_string())
            }
        },
    );
    let term = term_of(c.node("node1"));
    steady(&mut c, &["node1", "node2"], "node1", term, secs(2));
    assert_eq!(c.node("node2").metric("bully_maintenance"), 1.0);

    let (code, out, err) = bully(&["maintenance", "off", "--port", &port]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), "maintenance off: standing for election again");
    c.await_agreement("node2", secs(20));
    assert_eq!(c.node("node2").metric("bully_maintenance"), 0.0);
    // And off is remembered too.
    c.node("node2").restart();
    c.await_agreement("node2", secs(30));
    assert!(c.node("node2").details().unwrap()["maintenance"] == false);
}

/// An address of this host that is not loopback, if it has one.
fn outside_address() -> Option<String> {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
        let mut words = l.split_whitespace();
        words.find(|w| *w == "inet")?;
        Some(words.next()?.split('/').next()?.to_string())
    })
}

/// Exit 2 with the first line naming `what` (the second is the hint).
fn assert_usage_error(args: &[&str], what: &str) {
    let (code, out, err) = bully(args);
    assert_eq!(code, 2, "{args:?}: {out}{err}");
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines[0].contains(what) && lines.len() <= 2,
        "{args:?}: {err}"
    );
    assert!(out.is_empty(), "{out}");
}

/// Exit 1 with one line on stderr that contains `why`.
fn assert_refused(args: &[&str], why: &str) {
    let (code, out, err) = bully(args);
    assert_eq!(code, 1, "{args:?}: {out}{err}");
    assert!(
        err.contains(why) && err.lines().count() == 1,
        "{args:?}: {err}"
    );
    assert!(out.is_empty(), "{out}");
}

#[test]
fn every_refusal_is_a_clear_error_with_its_exit_code() {
    let mut c = cluster("op-refuse", &[], false);
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(30));
    let term = term_of(c.node("node2"));
    let (p1, p2) = (
        c.node("node1").port.to_string(),
        c.node("node2").port.to_string(),
    );

    // The node cannot comply: exit 1, its reason.
    assert_refused(
        &["step-down", "--port", &p1],
        &format!("127.0.0.1:{p1}: this node is not the coordinator; node2 is"),
    );
    assert_refused(
        &["step-down", "--to", "node9", "--port", &p2],
        "no member named node9 is known",
    );
    assert_refused(
        &["step-down", "--to", "node2", "--port", &p2],
        "--to names this node itself",
    );
    assert_refused(
        &["step-down", "--port", &free_port().to_string()],
        "does not answer",
    );
    steady(&mut c, &["node1", "node2"], "node2", term, ms500());

    // A bad command line: exit 2, naming what is wrong.
    assert_usage_error(&["step-down", "--bogus", "--port", &p2], "--bogus");
    assert_usage_error(&["step-down", "--to", "bad name!", "--port", &p2], "--to");
    assert_usage_error(&["step-down", "--port", "0"], "--port");
    assert_usage_error(&["step-down"], "--port");
    assert_usage_error(&["maintenance", "maybe", "--port", &p2], "maybe");
    assert_usage_error(&["maintenance", "--port", &p2], "on|off");

    // Bad bodies straight to the routes.
    let (status, body) = send(
        c.node("node2").port,
        "POST",
        "/step-down",
        br#"{"to":"a b"}"#,
    );
    assert_eq!(status, 400, "{body}");
    let (status, body) = send(
        c.node("node2").port,
        "POST",
        "/maintenance",
        br#"{"on":"yes"}"#,
    );
    assert_eq!(status, 400, "{body}");
    steady(&mut c, &["node1", "node2"], "node2", term, ms500());

    // From another host: refused without the cluster key, taken when signed with it.
    let Some(addr) = outside_address() else {
        println!("skipping the other-host cases: this host has no address beyond loopback");
        return;
    };
    let key = "an operator key of at least sixteen bytes";
    let open = c.start(7, &["--bind", "0.0.0.0", "--cluster", "open"]);
    let keyed = c.start(
        8,
        &[
            "--bind",
            "0.0.0.0",
            "--cluster",
            "keyed",
            "--cluster-key",
            key,
        ],
    );
    let (open, keyed) = (
        c.nodes[open].port.to_string(),
        c.nodes[keyed].port.to_string(),
    );
    c.await_agreement_of(&["node7"], "node7", secs(30));
    c.await_agreement_of(&["node8"], "node8", secs(30));
    assert_refused(
        &["maintenance", "on", "--host", &addr, "--port", &open],
        "taken from this host only",
    );
    assert_refused(
        &["step-down", "--host", &addr, "--port", &open],
        "taken from this host only",
    );
    assert!(c.node("node7").details().unwrap()["maintenance"] == false);
    assert_refused(
        &["maintenance", "on", "--host", &addr, "--port", &keyed],
        &format!("{addr}:{keyed}: unsigned request"),
    );
    assert!(c.node("node8").details().unwrap()["maintenance"] == false);
    let (code, out, err) = bully(&[
        "maintenance",
        "on",
        "--host",
        &addr,
        "--port",
        &keyed,
        "--cluster-key",
        key,
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(c.node("node8").details().unwrap()["maintenance"] == true);
    println!("other host: refused from {addr} without the key, taken when signed");
}

#[test]
fn hooks_see_the_reason_for_every_change() {
    let mut c = cluster("op-reasons", &[], false);
    let up = c.dir.path().join("up");
    std::fs::write(&up, b"").unwrap();
    let check = format!("test -e '{}'", up.display());
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(30));
    assert_eq!(await_hook(&c, "node2", "elected", 1), "elected");
    c.start(3, &["--check", &check, "--check-interval", "200ms"]);
    c.await_agreement("node3", secs(30));
    assert_eq!(await_hook(&c, "node3", "elected", 1), "elected");
    assert_eq!(await_hook(&c, "node2", "demoted", 1), "preempted");
    let port = c.node("node3").port.to_string();

    std::fs::remove_file(&up).unwrap();
    c.await_agreement("node2", secs(20));
    assert_eq!(await_hook(&c, "node3", "demoted", 1), "unhealthy");
    std::fs::write(&up, b"").unwrap();
    c.await_agreement("node3", secs(20));

    assert_eq!(bully(&["maintenance", "on", "--port", &port]).0, 0);
    c.await_agreement("node2", secs(20));
    assert_eq!(await_hook(&c, "node3", "demoted", 2), "maintenance");
    assert_eq!(bully(&["maintenance", "off", "--port", &port]).0, 0);
    c.await_agreement("node3", secs(20));

    assert_eq!(bully(&["step-down", "--port", &port]).0, 0);
    c.await_agreement("node2", secs(20));
    assert_eq!(await_hook(&c, "node3", "demoted", 3), "step-down");

    // node3 holds back after its step-down, until the new coordinator fails.
    c.node("node2").kill9();
    c.await_agreement("node3", secs(20));
    assert_eq!(await_hook(&c, "node3", "elected", 4), "failover");

    let status = c.node("node3").terminate(secs(20)).expect("node3 exits");
    assert!(status.success(), "{status:?}");
    assert_eq!(await_hook(&c, "node3", "demoted", 4), "shutdown");
    c.await_agreement("node1", secs(20));
    let n1 = await_hook(&c, "node1", "elected", 1);

    let seen: std::collections::BTreeSet<String> = c
        .nodes
        .iter()
        .flat_map(|n| events(&c, &n.name))
        .map(|l| field(&l, "reason").to_string())
        .collect();
    println!(
        "{}\nnode1 took over after node3's shutdown as: {n1}",
        all_events(&c)
    );
    for r in [
        "elected",
        "failover",
        "step-down",
        "unhealthy",
        "preempted",
        "maintenance",
        "shutdown",
    ] {
        assert!(
            seen.contains(r),
            "{r} not seen: {seen:?}\n{}",
            all_events(&c)
        );
    }
}

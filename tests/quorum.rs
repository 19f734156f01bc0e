//! Quorum mode with real processes on loopback: a node leads only with a majority, its
//! `--exec` child never outlives its lease, failover after `kill -9` stays instant, a frozen
//! coordinator's child is fenced, terms never repeat across restarts, and a bad state file
//! stops a node at start. Partitions and pulled cables, which need hosts of their own, are in
//! `tests/partitions.rs`.

mod support;

use serde_json::Value;
use std::time::{Duration, Instant};
use support::activity::{self, intervals, overlaps};
use support::*;

/// Five nodes, a 1 s lease (to keep the tests short) and fast checks.
fn quorum_args(n: usize) -> Vec<String> {
    [
        "--startup-delay",
        "0",
        "--health-interval",
        "500ms",
        "--quorum",
        &n.to_string(),
        "--lease",
        "1s",
        "--exec-grace",
        "200ms",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn cluster(tag: &str, n: usize, work: bool) -> Cluster {
    let mut args = quorum_args(n);
    let mut c = Cluster::new(tag, &[]);
    if work {
        let dir = c.dir.path().join("work");
        std::fs::create_dir_all(&dir).unwrap();
        args.push("--exec".into());
        args.push(activity::worker(&dir));
    }
    c.common.extend(args);
    c
}

fn work_dir(c: &Cluster) -> std::path::PathBuf {
    c.dir.path().join("work")
}

fn quorum_state(d: &Value) -> String {
    d["quorum"]["state"].as_str().unwrap_or("?").to_string()
}

/// Which running nodes say they lead, by name.
fn leaders(c: &mut Cluster) -> Vec<String> {
    c.nodes
        .iter_mut()
        .filter_map(|n| n.is_running().then_some(&*n))
        .filter(|n| {
            n.details()
                .is_some_and(|d| d["is_coordinator"] == Value::Bool(true))
        })
        .map(|n| n.name.clone())
        .collect()
}

/// Asserts that no two exec children were ever active at once.
fn assert_no_overlap(c: &Cluster) {
    let all = intervals(&work_dir(c));
    let bad = overlaps(&all);
    assert!(
        bad.is_empty(),
        "two leaders worked at once: {:?}\n{}\n{}",
        bad.iter()
            .map(|(a, b, ms)| format!("{} and {} for {ms:.1} ms", a.node, b.node))
            .collect::<Vec<_>>(),
        activity::describe(&all),
        c.log_tails()
    );
}

fn pid_alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// The pids of the `sh` exec children (the supervisors' children) of node `n`.
fn exec_children(n: &NodeProc) -> Vec<u32> {
    let Some(pid) = n.pid() else { return vec![] };
    // Children are listed per thread that forked them: look at every thread's.
    let children = |p: u32| -> Vec<u32> {
        let tasks = std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten();
        tasks
            .flatten()
            .flat_map(|t| {
                std::fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    };
    children(pid)
        .into_iter()
        .filter(|s| {
            std::fs::read_to_string(format!("/proc/{s}/cmdline"))
                .unwrap_or_default()
                .contains("__supervise\0exec")
        })
        .flat_map(children)
        .collect()
}

#[test]
fn a_majority_elects_and_kill_9_hands_over_the_work_at_once() {
    let mut c = cluster("q-kill", 5, true);
    for id in 1..=5 {
        c.start(id, &[]);
    }
    c.await_agreement("node5", secs(30));
    let d = c.node("node5").details().unwrap();
    assert_eq!(quorum_state(&d), "leading", "{d}");
    assert!(d["quorum"]["acks"].as_u64().unwrap() >= 3, "{d}");
    let first_term = d["term"].as_u64().unwrap();
    let child = wait_for("node5's exec child", secs(10), || {
        exec_children(c.node("node5"))
            .first()
            .copied()
            .ok_or_else(|| "none".to_string())
    });
    // Five, then four, then three nodes: each time a majority is left.
    for round in 0..2 {
        let (top, next) = (5 - round, 4 - round);
        let top_name = format!("node{top}");
        let next_name = format!("node{next}");
        let children = exec_children(c.node(&top_name));
        assert_eq!(children.len(), 1, "{top_name} runs one child: {children:?}");
        c.node(&top_name).kill9();
        let killed = Instant::now();
        // Its child dies with it: the supervisor sees the socket close.
        let child_gone = wait_for("the old child to die", secs(5), || {
            children
                .iter()
                .all(|p| !pid_alive(*p))
                .then(|| killed.elapsed())
                .ok_or_else(|| format!("{children:?} alive"))
        });
        c.await_agreement(&next_name, secs(20));
        let new_child = wait_for("the new coordinator's child", secs(10), || {
            exec_children(c.node(&next_name))
                .first()
                .copied()
                .map(|_| killed.elapsed())
                .ok_or_else(|| "none".to_string())
        });
        println!(
            "kill -9 of {top_name}: its child gone after {child_gone:?}, {next_name}'s child \
             running after {new_child:?}"
        );
        let d = c.node(&next_name).details().unwrap();
        assert_eq!(quorum_state(&d), "leading", "{d}");
    }
    assert!(!pid_alive(child), "the first child is gone");
    // Two of five left: no majority, nobody leads, and they say why.
    c.node("node3").kill9();
    wait_for("no leader with 2 of 5", secs(20), || {
        let l = leaders(&mut c);
        if l.is_empty() {
            Ok(())
        } else {
            Err(format!("{l:?}"))
        }
    });
    wait_for("node2 to report no quorum", secs(20), || {
        let d = c.node("node2").details().ok_or("no answer")?;
        (quorum_state(&d) == "no-quorum")
            .then_some(())
            .ok_or_else(|| d.to_string())
    });
    assert!(c.node("node2").log_text().contains("No quorum for term"));
    // A third comes back: a majority again, and the term has grown.
    c.node("node3").restart();
    c.await_agreement("node3", secs(30));
    let d = c.node("node3").details().unwrap();
    assert!(d["term"].as_u64().unwrap() > first_term, "{d}");
    assert_no_overlap(&c);
}

#[test]
fn a_frozen_coordinator_loses_its_child_at_the_end_of_its_lease() {
    let mut c = cluster("q-freeze", 3, true);
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(30));
    let children = wait_for("node3's child", secs(10), || {
        let ch = exec_children(c.node("node3"));
        (!ch.is_empty()).then_some(ch).ok_or_else(|| "none".into())
    });
    c.node("node3").signal("STOP");
    let frozen = Instant::now();
    // bully itself is stopped; its supervisor is not, and kills the child at the lease's end.
    let gone = wait_for("the frozen node's child to be fenced", secs(5), || {
        children
            .iter()
            .all(|p| !pid_alive(*p))
            .then(|| frozen.elapsed())
            .ok_or_else(|| format!("{children:?} alive"))
    });
    assert!(
        gone < Duration::from_millis(1500),
        "fenced only after {gone:?}"
    );
    c.await_agreement_of(&["node1", "node2"], "node2", secs(20));
    let took = frozen.elapsed();
    println!("SIGSTOP of node3: its child killed after {gone:?}; node2 leads after {took:?}");
    // Woken, node3 never says it leads while node2 does; it takes over again in a newer term.
    let t2 = c.node("node2").details().unwrap()["term"].as_u64().unwrap();
    c.node("node3").signal("CONT");
    let end = Instant::now() + secs(20);
    let mut back = false;
    while Instant::now() < end {
        let l = leaders(&mut c);
        assert!(
            l.len() <= 1,
            "two nodes say they lead: {l:?}\n{}",
            c.log_tails()
        );
        if l == ["node3"] {
            back = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(back, "node3 did not take over again\n{}", c.log_tails());
    let d = c.node("node3").details().unwrap();
    assert!(d["term"].as_u64().unwrap() > t2, "{d}");
    c.await_agreement("node3", secs(20));
    assert_no_overlap(&c);
}

#[test]
fn terms_never_repeat_across_restarts_of_every_node() {
    for (mode, rounds, extra) in [
        ("default", 100, vec![]),
        (
            "quorum",
            15,
            vec![
                "--quorum".to_string(),
                "3".into(),
                "--lease".into(),
                "200ms".into(),
            ],
        ),
    ] {
        let mut c = Cluster::new(
            &format!("q-restarts-{mode}"),
            &["--startup-delay", "0", "--health-interval", "200ms"],
        );
        c.common.extend(extra);
        for id in 1..=3 {
            c.start(id, &[]);
        }
        let mut last = 0;
        for round in 0..rounds {
            c.await_agreement("node3", secs(30));
            let term = c.node("node3").details().unwrap()["term"].as_u64().unwrap();
            assert!(
                term > last,
                "{mode}, restart {round}: term {term} after {last}\n{}",
                c.log_tails()
            );
            last = term;
            for n in &mut c.nodes {
                n.kill9();
            }
            for n in &mut c.nodes {
                n.restart();
            }
        }
        println!("{mode}: {rounds} restarts of every node, terms up to {last}, never repeated");
    }
}

#[test]
fn a_corrupt_or_unwritable_state_file_stops_the_node_at_start() {
    let dir = TempDir::new("q-state");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let file = state.join("bully.n1.json");
    std::fs::write(&file, b"{\"version\":1,\"floor\":").unwrap();
    let out = std::process::Command::new(BIN)
        .args([&free_port().to_string(), "n1", "--registry-dir"])
        .arg(dir.path().join("registry"))
        .arg("--state-dir")
        .arg(&state)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bully.n1.json") && err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A state directory that cannot be made: /proc takes no new directories.
    let out = std::process::Command::new(BIN)
        .args([&free_port().to_string(), "n1", "--registry-dir"])
        .arg(dir.path().join("registry"))
        .args(["--state-dir", "/proc/bully-cannot-be"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("/proc/bully-cannot-be"), "{err}");
}

#[test]
fn two_workers_and_a_witness_fail_over_and_the_witness_never_leads() {
    let mut c = cluster("q-witness", 3, true);
    c.start(1, &[]);
    c.start(2, &[]);
    // The witness has the highest id: it still never stands.
    c.start(9, &["--witness"]);
    c.await_agreement("node2", secs(30));
    let w = c.node("node9").details().unwrap();
    assert_eq!(w["witness"], Value::Bool(true), "{w}");
    assert_eq!(w["is_coordinator"], Value::Bool(false));
    c.node("node2").kill9();
    c.await_agreement_of(&["node1", "node9"], "node1", secs(20));
    c.node("node2").restart();
    c.await_agreement("node2", secs(30));
    assert!(
        !c.node("node9").log_text().contains("Claiming term"),
        "the witness stood for election"
    );
    assert_no_overlap(&c);
}

/// Shell that SIGSTOPs the node this command runs under, once per cluster (the first to get
/// here makes `DIR/frozen` and writes its name there): the command's parent is its
/// supervisor, whose parent is the node.
fn freeze_own_node_once(dir: &std::path::Path) -> String {
    let mark = dir.join("frozen");
    format!(
        "if mkdir '{m}' 2>/dev/null; then echo \"$BULLY_NODE\" > '{m}/who'; \
         kill -STOP \"$(cut -d' ' -f4 /proc/$PPID/stat)\"; fi",
        m = mark.display()
    )
}

/// Five nodes whose first coordinator is frozen, by `how`, at the moment it wins; it stays
/// frozen for three leases and is then woken. Whoever works meanwhile, no two `--exec`
/// children are ever active at once. Returns the cluster and the frozen node's name.
fn freeze_at_the_win(tag: &str, how: &str) -> (Cluster, String) {
    let mut c = cluster(tag, 5, false);
    let work = work_dir(&c);
    std::fs::create_dir_all(&work).unwrap();
    let freeze = freeze_own_node_once(c.dir.path());
    let worker = activity::worker(&work);
    let (hook, exec) = match how {
        "hook" => (freeze, worker),
        _ => (String::new(), format!("{freeze}; {worker}")),
    };
    c.common.extend(["--exec".to_string(), exec]);
    if !hook.is_empty() {
        c.common.extend(["--on-elected".to_string(), hook]);
    }
    for id in 1..=5 {
        c.start(id, &[]);
    }
    let who_file = c.dir.path().join("frozen/who");
    let frozen = wait_for("a coordinator frozen at its win", secs(30), || {
        std::fs::read_to_string(&who_file)
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| "none yet".into())
    });
    let since = Instant::now();
    // Another takes over once the frozen one's lease has run out, and works.
    wait_for("a worker other than the frozen node's", secs(30), || {
        let others = intervals(&work)
            .into_iter()
            .filter(|i| i.node != frozen && i.beats >= 3)
            .count();
        (others > 0)
            .then_some(())
            .ok_or_else(|| format!("{others} so far\n{}", c.log_tails()))
    });
    let left = Duration::from_secs(3).saturating_sub(since.elapsed());
    std::thread::sleep(left);
    c.node(&frozen).signal("CONT");
    println!("{frozen} frozen at its win for {:?}", since.elapsed());
    c.await_agreement("node5", secs(30));
    // The highest node works again: the cluster did not just go idle.
    wait_for("node5's worker", secs(20), || {
        let last = intervals(&work).into_iter().rfind(|i| i.node == "node5");
        last.filter(|i| i.beats >= 3)
            .map(|_| ())
            .ok_or_else(|| "none".into())
    });
    assert_no_overlap(&c);
    (c, frozen)
}

/// Frozen between its win and its child's start (by its `--on-elected` hook): woken three
/// leases later, it must not start the child of a leadership whose lease is over.
#[test]
fn a_node_frozen_right_after_its_win_starts_no_child_once_woken() {
    let (mut c, frozen) = freeze_at_the_win("q-win-hook", "hook");
    let log = c.node(&frozen).log_text();
    // Woken, it either reaches the child's start first and refuses it (the fence is past), or
    // first notices its lease lapsed and steps down: a race between two threads of the node.
    // Either way the win it was frozen in starts no child: no child starts between the end of
    // the frozen hook and the next win's hook (node5 wins again later).
    let lines: Vec<&str> = log.lines().collect();
    let hook_ms = |l: &str| {
        l.split("on-elected hook finished in ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|ms| ms.parse::<u64>().ok())
    };
    let woke = lines
        .iter()
        .position(|l| hook_ms(l).is_some_and(|ms| ms >= 2000))
        .unwrap_or_else(|| panic!("{frozen} logged no frozen hook\n{}", c.log_tails()));
    let next_win = lines[woke + 1..]
        .iter()
        .position(|l| hook_ms(l).is_some())
        .map_or(lines.len(), |i| woke + 1 + i);
    let stale = lines[woke..next_win].iter().find(|l| {
        // `exec child PID started: CMD`, not `exec child not started: ...`.
        l.split("exec child ").nth(1).is_some_and(|r| {
            r.split_once(' ').is_some_and(|(pid, rest)| {
                pid.parse::<u32>().is_ok() && rest.starts_with("started: ")
            })
        })
    });
    assert!(
        stale.is_none(),
        "{frozen} started a child for the win it was frozen in: {stale:?}\n{}",
        lines[woke..next_win].join("\n")
    );
}

/// Frozen by its own `--exec` child the moment that started: the child's supervisor had the
/// fence before the child ran, so the child dies at the lease's end, not at the thaw.
#[test]
fn a_node_frozen_right_after_its_child_starts_has_that_child_fenced() {
    let (c, frozen) = freeze_at_the_win("q-win-exec", "exec");
    let first = intervals(&work_dir(&c))
        .into_iter()
        .find(|i| i.node == frozen)
        .expect("the frozen node's child worked");
    let ran_ms = (first.end - first.start) as f64 / 1e6;
    println!("{frozen}'s child ran {ran_ms:.0} ms into a 3 s freeze (lease 1 s)");
    assert!(ran_ms < 1500.0, "{frozen}'s child ran {ran_ms:.0} ms");
}

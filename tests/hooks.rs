//! `--on-elected`, `--on-demoted` and `--exec` with real node processes: the commands write
//! what they saw into files in the test's directory, and the test reads them back.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};
use support::*;

const FAST: &[&str] = &["--startup-delay", "0", "--health-interval", "200ms"];

/// A hook that appends `KIND key=value ...` with its whole environment to `DIR/NODE.events`.
fn record(kind: &str, dir: &Path) -> String {
    format!(
        "echo {kind} node=$BULLY_NODE id=$BULLY_NODE_ID coordinator=$BULLY_COORDINATOR \
         coordinator_id=$BULLY_COORDINATOR_ID term=$BULLY_TERM >> '{}'/$BULLY_NODE.events",
        dir.display()
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

/// Waits until `path` has exactly `n` lines and returns them.
fn await_lines(path: &Path, n: usize, within: Duration, c: &Cluster) -> Vec<String> {
    poll(within, || {
        let l = lines(path);
        if l.len() == n {
            Ok(l)
        } else {
            Err(format!("{l:?}"))
        }
    })
    .unwrap_or_else(|seen| {
        panic!(
            "{}: expected {n} lines within {within:?}, last seen {seen}\n{}",
            path.display(),
            c.log_tails()
        )
    })
}

/// The start of the line `record(kind)` writes on node`id` when node`coordinator` (or none)
/// is the coordinator after the change.
fn event(kind: &str, id: u64, coordinator: Option<u64>) -> String {
    let (name, cid) = coordinator.map_or((String::new(), String::new()), |c| {
        (format!("node{c}"), c.to_string())
    });
    format!("{kind} node=node{id} id={id} coordinator={name} coordinator_id={cid}")
}

/// Waits until `path` has `n` lines, checks that the last begins with `expected` followed by
/// ` term=`, and returns that term.
fn await_event(c: &Cluster, path: &Path, n: usize, expected: &str) -> u64 {
    let l = await_lines(path, n, secs(10), c);
    assert!(
        l[n - 1].starts_with(&format!("{expected} term=")),
        "line {n} of {}: {l:?}",
        path.display()
    );
    term(&l[n - 1])
}

/// The value of `key` in a recorded line; panics with the line when it is missing.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or_else(|| panic!("no {key} in '{line}'"))
}

fn term(line: &str) -> u64 {
    field(line, "term")
        .parse()
        .unwrap_or_else(|_| panic!("bad term in '{line}'"))
}

/// The process is running: /proc has it and it is not a zombie awaiting its reaper.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

/// The last pid written to `path`, once one is there.
fn await_pid(path: &Path, within: Duration, c: &Cluster) -> u32 {
    poll(within, || {
        lines(path)
            .last()
            .and_then(|l| l.trim().parse().ok())
            .ok_or_else(|| format!("{:?}", lines(path)))
    })
    .unwrap_or_else(|seen| {
        panic!(
            "{}: no pid within {within:?}, saw {seen}\n{}",
            path.display(),
            c.log_tails()
        )
    })
}

fn await_gone(pid: u32, what: &str, within: Duration, c: &Cluster) {
    if poll(within, || {
        if alive(pid) {
            Err("alive".into())
        } else {
            Ok(())
        }
    })
    .is_err()
    {
        panic!(
            "{what} (pid {pid}) still running after {within:?}\n{}",
            c.log_tails()
        );
    }
}

/// `args` as owned strings joined with `FAST`, for `Cluster::new`.
fn with_fast(args: &[String]) -> Vec<&str> {
    FAST.iter()
        .copied()
        .chain(args.iter().map(String::as_str))
        .collect()
}

#[test]
fn hooks_fire_once_per_transition_with_their_environment() {
    let dir = TempDir::new("hooks-events");
    let hooks = [
        "--on-elected".to_string(),
        record("elected", dir.path()),
        "--on-demoted".to_string(),
        record("demoted", dir.path()),
    ];
    let mut c = Cluster::new("hooks-env", &with_fast(&hooks));
    let ev1 = dir.path().join("node1.events");
    let ev2 = dir.path().join("node2.events");

    c.start(1, &[]);
    c.await_agreement("node1", secs(20));
    let t1 = await_event(&c, &ev1, 1, &event("elected", 1, Some(1)));
    assert!(t1 >= 1);

    // A higher node takes over: node1 is demoted in favour of node2, node2 is elected.
    c.start(2, &[]);
    c.await_agreement("node2", secs(20));
    let t2 = await_event(&c, &ev1, 2, &event("demoted", 1, Some(2)));
    assert!(t2 > t1, "{:?}", lines(&ev1));
    let t = await_event(&c, &ev2, 1, &event("elected", 2, Some(2)));
    // node2's first announcement may be refused (term taken) and won again one term higher.
    assert!(
        (1..=t2).contains(&t),
        "{:?} vs {:?}",
        lines(&ev2),
        lines(&ev1)
    );

    // SIGTERM on the coordinator: its demoted hook has run by the time it exits.
    let status = c.node("node2").terminate(secs(20)).expect("node2 exits");
    assert!(status.success(), "{status:?}");
    let l2 = lines(&ev2);
    assert_eq!(l2.len(), 2, "{l2:?}\n{}", c.log_tails());
    assert!(l2[1].starts_with(&event("demoted", 2, None)), "{l2:?}");
    assert!(term(&l2[1]) >= t2, "{l2:?}");

    // node1 leads again, and its hook says so in a newer term.
    c.await_agreement("node1", secs(20));
    let t3 = await_event(&c, &ev1, 3, &event("elected", 1, Some(1)));
    assert!(t3 > t2, "{:?}", lines(&ev1));

    // Exactly once: several health intervals later nothing more has fired.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lines(&ev1).len(), 3, "{:?}", lines(&ev1));
    assert_eq!(lines(&ev2).len(), 2, "{:?}", lines(&ev2));
}

#[test]
fn a_hanging_hook_is_killed_at_the_timeout_and_the_node_keeps_working() {
    let dir = TempDir::new("hooks-hang");
    let pid_file = dir.path().join("sleep.pid");
    let events = dir.path().join("node1.events");
    let hang = format!("sleep 100 & echo $! > '{}'; wait", pid_file.display());
    let demoted = record("demoted", dir.path());
    let mut c = Cluster::new(
        "hooks-hang",
        &with_fast(&["--hook-timeout".into(), "5s".into()]),
    );
    c.start(1, &["--on-elected", &hang, "--on-demoted", &demoted]);
    let sleeper = await_pid(&pid_file, secs(20), &c);
    assert!(alive(sleeper), "the hook's child runs");

    // Elections go on while the hook hangs.
    c.start(2, &[]);
    c.await_agreement("node2", secs(20));

    // The hook's child dies with it (its process group is killed), then the demoted hook runs.
    await_gone(sleeper, "the hanging hook's sleep", secs(30), &c);
    let l = await_lines(&events, 1, secs(10), &c);
    assert!(
        l[0].starts_with("demoted node=node1 id=1 coordinator=node2"),
        "{l:?}"
    );
    let log = c.node("node1").log_text();
    let changed = log
        .find("Coordinator is: node2")
        .expect("node1 followed node2");
    let killed = log
        .find("on-elected hook still running after 5s (--hook-timeout): killed it")
        .unwrap_or_else(|| panic!("no timeout in the log:\n{log}"));
    assert!(changed < killed, "the election waited for the hook:\n{log}");
    assert!(c.node("node1").details().is_some(), "node1 still answers");
}

#[test]
fn a_demoted_hook_that_hangs_on_shutdown_is_bounded_by_the_timeout() {
    let dir = TempDir::new("hooks-exit");
    let pid_file = dir.path().join("sleep.pid");
    let hang = format!("sleep 100 & echo $! > '{}'; wait", pid_file.display());
    let mut c = Cluster::new("hooks-exit", FAST);
    c.start(
        1,
        &[
            "--on-elected",
            "true",
            "--on-demoted",
            &hang,
            "--hook-timeout",
            "1s",
        ],
    );
    c.await_agreement("node1", secs(20));
    // The demoted hook is owed once the elected one has run (a change still queued when
    // shutdown begins runs no hook at all, as src/supervisor/README.md says).
    wait_for("node1's elected hook", secs(10), || {
        let log = c.node("node1").log_text();
        log.contains("on-elected hook finished")
            .then_some(())
            .ok_or(log)
    });
    let started = Instant::now();
    let status = c.node("node1").terminate(secs(20)).expect("node1 exits");
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the hook ran"
    );
    let sleeper = await_pid(&pid_file, secs(1), &c);
    await_gone(sleeper, "the demoted hook's sleep", secs(10), &c);
}

#[test]
fn the_exec_child_runs_only_on_the_coordinator() {
    let dir = TempDir::new("hooks-exec");
    let pids = |node: &str| dir.path().join(format!("{node}.exec"));
    // node1's child ignores SIGTERM, so it must be killed after the grace.
    let stubborn = format!(
        "trap '' TERM; echo $$ >> '{}'; sleep 120",
        pids("node1").display()
    );
    let polite = format!("echo $$ >> '{}'; exec sleep 100", pids("node2").display());
    let mut c = Cluster::new("hooks-exec", FAST);
    c.start(1, &["--exec", &stubborn, "--exec-grace", "1s"]);
    c.await_agreement("node1", secs(20));
    let first = await_pid(&pids("node1"), secs(10), &c);
    assert!(alive(first));

    c.start(2, &["--exec", &polite]);
    c.await_agreement("node2", secs(20));
    await_gone(first, "node1's exec child after demotion", secs(20), &c);
    // The child is gone as soon as the supervisor kills it; the node logs why just after.
    wait_for("node1 to log the SIGKILL after the grace", secs(10), || {
        let log = c.node("node1").log_text();
        if log.contains("(--exec-grace): SIGKILL") {
            Ok(())
        } else {
            Err(c.log_tails())
        }
    });
    let second = await_pid(&pids("node2"), secs(10), &c);
    assert!(alive(second));
    assert_eq!(
        lines(&pids("node1")).len(),
        1,
        "node1 started no other child"
    );

    // Shutdown stops the child before the node exits; node1 leads and runs its own again.
    let status = c.node("node2").terminate(secs(20)).expect("node2 exits");
    assert!(status.success(), "{status:?}");
    await_gone(second, "node2's exec child after SIGTERM", secs(2), &c);
    c.await_agreement("node1", secs(20));
    let l = await_lines(&pids("node1"), 2, secs(10), &c);
    let third: u32 = l[1].parse().expect("a pid");
    assert!(third != first && alive(third), "{l:?}");
    let status = c.node("node1").terminate(secs(20)).expect("node1 exits");
    assert!(status.success(), "{status:?}");
    await_gone(third, "node1's exec child after SIGTERM", secs(2), &c);
}

#[test]
fn an_exec_child_that_exits_leaves_the_node_leading() {
    let dir = TempDir::new("hooks-exit3");
    let runs = dir.path().join("runs");
    let job = format!("echo ran >> '{}'; exit 3", runs.display());
    let mut c = Cluster::new("hooks-exit3", FAST);
    c.start(1, &["--exec", &job]);
    c.await_agreement("node1", secs(20));
    await_lines(&runs, 1, secs(10), &c);
    wait_for("the exit logged", secs(10), || {
        let log = c.nodes[0].log_text();
        log.contains("exited by itself (exit status: 3); still coordinator")
            .then_some(())
            .ok_or(log)
    });
    // Not restarted, and the node still leads after several health intervals.
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(lines(&runs).len(), 1, "{:?}", lines(&runs));
    let d = c.nodes[0].details().expect("node1 answers");
    assert_eq!(d["is_coordinator"], true, "{d}");
}

/// Pids of the processes whose environment holds `MARK=mark`: what a command started,
/// wherever it was reparented to.
fn marked(mark: &str) -> Vec<u32> {
    let needle = format!("MARK={mark}");
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|pid| alive(*pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
        })
        .collect();
    pids.sort();
    pids
}

/// The one process marked `mark`, or what there is instead.
fn one_marked(mark: &str) -> Result<Vec<u32>, String> {
    let m = marked(mark);
    if m.len() == 1 {
        Ok(m)
    } else {
        Err(format!("{m:?}"))
    }
}

/// The direct children of `pid` (over all its threads).
fn children(pid: u32) -> Vec<u32> {
    let mut v: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
                .flat_map(|c| {
                    c.split_whitespace()
                        .filter_map(|p| p.parse().ok())
                        .collect::<Vec<u32>>()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// `kill -9` of a coordinator whose `--exec` child runs `cmd` (given `PIDS`, the file it
/// records its shell's pid in, and `MARK`, the environment its sleep carries): everything the
/// child started is gone within 2 s, and the restarted node runs exactly one child.
fn exec_child_dies_with_its_node(tag: &str, cmd: &str) {
    let dir = TempDir::new(tag);
    let pids = dir.path().join("pids");
    let mark = dir.path().display().to_string();
    let cmd = cmd
        .replace("PIDS", &pids.display().to_string())
        .replace("MARK", &format!("MARK='{mark}'"));
    let mut c = Cluster::new(tag, FAST);
    c.start(1, &["--exec", &cmd]);
    c.await_agreement("node1", secs(20));
    let shell = await_pid(&pids, secs(10), &c);
    let started = wait_for("the child's sleep", secs(10), || one_marked(&mark));
    let mut group = started.clone();
    group.push(shell);
    group.dedup();

    let killed = Instant::now();
    c.nodes[0].kill9();
    let mut left = group.clone();
    while !left.is_empty() && killed.elapsed() < secs(10) {
        left.retain(|&p| alive(p));
        std::thread::sleep(Duration::from_millis(1));
    }
    let took = killed.elapsed();
    println!("{tag}: {group:?} gone {took:?} after kill -9 of the node");
    assert!(
        left.is_empty(),
        "{left:?} still running {took:?} after kill -9"
    );
    assert!(took < secs(2), "{took:?}");

    c.nodes[0].restart();
    c.await_agreement("node1", secs(20));
    let l = await_lines(&pids, 2, secs(10), &c);
    let second: u32 = l[1].parse().expect("a pid");
    assert!(alive(second), "{l:?}");
    let now = wait_for("one sleep again", secs(10), || one_marked(&mark));
    assert_ne!(now, started, "a new child");
    assert_eq!(marked(&mark), now, "exactly one child");
}

#[test]
fn kill_9_of_the_node_kills_an_exec_child_that_execs() {
    exec_child_dies_with_its_node("hooks-k9-exec", "echo $$ >> 'PIDS'; MARK exec sleep 1000");
}

#[test]
fn kill_9_of_the_node_kills_an_exec_child_and_its_foreground_child() {
    exec_child_dies_with_its_node("hooks-k9-fg", "echo $$ >> 'PIDS'; MARK sleep 1000; true");
}

/// 50 and more supervised commands (hooks and exec children, over many elections) leave no
/// process, zombie, descriptor or thread behind on the node.
#[test]
fn many_supervised_commands_leave_nothing_behind() {
    let dir = TempDir::new("hooks-leaks");
    let mark = dir.path().display().to_string();
    let exec = format!("MARK='{mark}' exec sleep 1000");
    let mut c = Cluster::new("hooks-leaks", FAST);
    c.start(
        1,
        &[
            "--on-elected",
            "echo up",
            "--on-demoted",
            "echo down",
            "--exec",
            &exec,
        ],
    );
    c.await_agreement("node1", secs(20));
    let count = |c: &Cluster, what: &str| c.nodes[0].log_text().matches(what).count();
    wait_for("the first exec child", secs(10), || {
        (count(&c, "exec child") == 1 && marked(&mark).len() == 1)
            .then_some(())
            .ok_or_else(|| format!("{:?}", marked(&mark)))
    });
    let node = c.nodes[0].pid().unwrap();
    let fd_count = |pid: u32| std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
    let base_fds = fd_count(node);
    let base_threads = c.nodes[0].steady_threads();

    let cycles = 17;
    for i in 1..=cycles {
        c.start(2, &[]);
        c.await_agreement("node2", secs(20));
        wait_for("node1's demoted hook", secs(20), || {
            let n = count(&c, "on-demoted hook finished");
            (n == i)
                .then_some(())
                .ok_or(format!("{n} of {i}\n{}", c.log_tails()))
        });
        let status = c.nodes[1].terminate(secs(20)).expect("node2 exits");
        assert!(status.success(), "{status:?}");
        c.nodes.pop();
        c.await_agreement("node1", secs(20));
        wait_for("node1's exec child again", secs(20), || {
            let n = count(&c, "started: MARK");
            (n == i + 1 && marked(&mark).len() == 1)
                .then_some(())
                .ok_or(format!("{n} of {}, {:?}", i + 1, marked(&mark)))
        });
    }
    let log = c.nodes[0].log_text();
    let hooks = log.matches(" hook finished in ").count();
    let execs = log.matches("started: MARK").count();
    println!("{hooks} hooks and {execs} exec children supervised");
    assert!(hooks + execs >= 50, "{hooks} + {execs}");
    assert_eq!(log.matches("hook failed").count(), 0, "{log}");

    // One exec supervisor, with one command under it, and nothing else.
    let kids = children(node);
    assert_eq!(kids.len(), 1, "node1's children {kids:?}");
    assert!(alive(kids[0]), "not a zombie");
    assert_eq!(marked(&mark), children(kids[0]), "the one sleep, under it");
    let fds = wait_for("node1's descriptors back to the baseline", secs(20), || {
        let n = fd_count(node);
        (n == base_fds).then_some(n).ok_or(format!(
            "{n}, baseline {base_fds}: {:?}",
            std::fs::read_dir(format!("/proc/{node}/fd")).map(|d| d
                .flatten()
                .map(|e| std::fs::read_link(e.path()).unwrap_or_default())
                .collect::<Vec<_>>())
        ))
    });
    let threads = c.nodes[0].await_threads_back_to(base_threads, secs(30));
    println!("node1: {fds} descriptors (baseline {base_fds}), {threads} threads (baseline {base_threads})");
}

/// A node runs with glibc's cache of exited threads' stacks off (it re-executes itself with
/// the tunable, see src/runtime/process/memory.rs), and its `--exec` child gets the user's
/// `GLIBC_TUNABLES` back, not the node's.
#[test]
fn the_node_turns_the_stack_cache_off_for_itself_only() {
    if !cfg!(target_env = "gnu") {
        eprintln!("skipped: glibc only");
        return;
    }
    let dir = TempDir::new("hooks-tunables");
    let env_file = dir.path().join("child.env");
    let exec = format!(
        "env > {}.tmp && mv {0}.tmp {0}; exec sleep 600",
        env_file.display()
    );
    let mut c = Cluster::new("hooks-tunables", &with_fast(&["--exec".to_string(), exec]));
    c.start(1, &[]);
    c.await_agreement("node1", secs(20));
    let pid = c.node("node1").pid().expect("node1 runs");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let environ = String::from_utf8_lossy(&environ);
    assert!(
        environ
            .split('\0')
            .any(|v| v == "GLIBC_TUNABLES=glibc.pthread.stack_cache_size=0"),
        "{environ}"
    );
    let child_env = wait_for("the child's environment", secs(20), || {
        std::fs::read_to_string(&env_file).map_err(|e| e.to_string())
    });
    assert!(!child_env.contains("GLIBC_TUNABLES"), "{child_env}");
    assert!(child_env.contains("BULLY_TERM="), "{child_env}");
}

/// `--exec-grace` holds for a plain command: a script run by `sh -c` that traps SIGTERM and
/// cleans up for a second gets to finish when the node shuts down, though dash itself dies of
/// the SIGTERM at once.
#[test]
fn a_plain_exec_command_gets_its_grace_on_shutdown() {
    let dir = TempDir::new("hooks-grace");
    let d = dir.path().display();
    let script = dir.path().join("slowstop.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntrap 'sleep 1; echo cleaned > \"{d}/cleaned\"; exit 0' TERM\n\
             touch \"{d}/ready\"\nwhile :; do sleep 0.05; done\n"
        ),
    )
    .unwrap();
    let made = std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status();
    assert!(made.is_ok_and(|s| s.success()));
    let exec = [
        "--exec".to_string(),
        script.display().to_string(),
        "--exec-grace".to_string(),
        "10s".to_string(),
    ];
    let mut c = Cluster::new("hooks-grace", &with_fast(&exec));
    c.start(1, &[]);
    c.await_agreement("node1", secs(20));
    let ready = dir.path().join("ready");
    wait_for("the exec child to be ready", secs(20), || {
        ready.exists().then_some(()).ok_or_else(|| c.log_tails())
    });
    let asked = std::time::Instant::now();
    let status = c.node("node1").terminate(secs(30)).expect("node1 exits");
    let took = asked.elapsed();
    assert!(status.success(), "{status:?}");
    let cleaned = std::fs::read_to_string(dir.path().join("cleaned")).unwrap_or_default();
    let log = c.node("node1").log_text();
    println!("node1 left {took:?} after SIGTERM");
    assert_eq!(
        cleaned.trim(),
        "cleaned",
        "the cleanup did not finish\n{log}"
    );
    assert!(!log.contains("SIGKILL"), "{log}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
}

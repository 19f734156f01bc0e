//! `make run-cluster` as a new user runs it: tests/support/run-cluster.sh starts four nodes,
//! prints their PIDs, ends its election in term 1, and Ctrl-C (SIGINT to the whole process
//! group, as a terminal sends it) stops every node with its shutdown lines still shown.

mod support;

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::*;

/// A base port whose next four ports are free.
fn four_free_ports() -> u16 {
    loop {
        let base = free_port();
        if base < 60000 && (1..=4).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            return base;
        }
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

#[test]
fn run_cluster_ends_in_term_1_prints_pids_and_ctrl_c_keeps_every_shutdown_line() {
    let dir = TempDir::new("demo");
    let base = four_free_ports();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/run-cluster.sh");
    let registry = dir.path().join("registry");
    let mut child = Guarded::spawn(
        Command::new("bash")
            .arg(script)
            .args(["--startup-delay", "2s", "--health-interval", "1s"])
            .arg("--registry-dir")
            .arg(&registry)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .env("BULLY", BIN)
            .env("BASE_PORT", base.to_string())
            .env("LOG_DIR", dir.path().join("logs"))
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    // Its own process group, as a shell job in a terminal has: Ctrl-C signals all of it. The
    // guard kills the group, the four nodes with it, if the test fails.
    .unwrap();
    let out = Arc::new(Mutex::new(String::new()));
    let reader = {
        let out = out.clone();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut o = out.lock().unwrap();
                o.push_str(&line);
                o.push('\n');
            }
        })
    };
    let text = || out.lock().unwrap().clone();
    let pids: Vec<u32> = wait_for("the four PIDs", secs(20), || {
        let t = text();
        let pids: Vec<u32> = (1..=4)
            .filter_map(|i| {
                let prefix = format!("cluster: node{i} is pid ");
                let line = t.lines().find(|l| l.starts_with(&prefix))?;
                line[prefix.len()..].split_whitespace().next()?.parse().ok()
            })
            .collect();
        if pids.len() == 4 {
            Ok(pids)
        } else {
            Err(t)
        }
    });
    assert!(
        text().contains(&format!("'kill {}' for node4", pids[3])),
        "{}",
        text()
    );
    assert!(!text().contains("pkill"), "{}", text());
    // Everyone follows node4 in term 1, and stays there.
    let ports: Vec<u16> = (1..=4).map(|i| base + i).collect();
    wait_for("all four to follow node4", secs(30), || {
        let seen: Vec<_> = ports
            .iter()
            .map(|p| {
                get_json(*p, "/nodeDetails").map(|d| (d["coordinator"].clone(), d["term"].clone()))
            })
            .collect();
        if seen
            .iter()
            .all(|s| s.as_ref().is_some_and(|(c, _)| c == "node4"))
        {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    // Past every node's startup delay, and two health intervals more.
    std::thread::sleep(Duration::from_secs(4));
    for p in &ports {
        let d = get_json(*p, "/nodeDetails").unwrap();
        assert_eq!(
            (d["coordinator"].as_str(), d["term"].as_u64()),
            (Some("node4"), Some(1)),
            "{d}\n{}",
            text()
        );
    }
    assert!(!text().contains("(term 2)"), "{}", text());
    for i in 1..=4 {
        assert!(
            text().contains(&format!("node{i} | "))
                && text().contains("Coordinator is: node4 (term 1)"),
            "{}",
            text()
        );
    }
    // Ctrl-C.
    // SAFETY: kill with a negative pid signals the process group the script leads.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGINT) };
    let status = wait_for("the script to exit after Ctrl-C", secs(30), || {
        child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_string())
    });
    reader.join().unwrap();
    let t = text();
    assert_eq!(status.code(), Some(0), "{t}");
    for i in 1..=4 {
        let name = format!("node{i}");
        let shown = |what: &str| {
            t.lines()
                .any(|l| l.starts_with(&format!("{name} | ")) && l.contains(what))
        };
        assert!(shown("received: leaving the cluster"), "{name}:\n{t}");
        assert!(shown("Left the cluster: exiting"), "{name}:\n{t}");
        assert!(
            !alive(pids[i - 1]),
            "{name} (pid {}) still runs",
            pids[i - 1]
        );
        let log = std::fs::read_to_string(dir.path().join(format!("logs/{name}.log"))).unwrap();
        assert!(
            log.contains("Left the cluster: exiting"),
            "{name}.log:\n{log}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(registry.join("bully"))
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "records left behind: {left:?}");
}

//! `bully status` against real clusters: agreement, disagreement, nobody home, and its
//! `--json` output.

mod support;

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::*;

/// Runs `bully status ARGS`; returns the exit code, stdout and stderr.
fn status(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN)
        .arg("status")
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .expect("run bully status");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn registry_dir(c: &Cluster) -> String {
    c.dir.path().join("registry").display().to_string()
}

/// `bully status` on a dir registry as a table and as JSON: both must exit with `code`.
/// Returns the table and the parsed JSON.
fn status_both(registry: &str, code: i32) -> (String, Value) {
    let (text_code, table, err) = status(&["--registry-dir", registry, "--timeout", "500ms"]);
    assert_eq!(text_code, code, "{table}\nstderr: {err}");
    assert!(err.is_empty(), "nothing on stderr: {err}");
    let (json_code, out, err) =
        status(&["--registry-dir", registry, "--timeout", "500ms", "--json"]);
    let v = serde_json::from_str(&out)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {out}\nstderr: {err}"));
    assert_eq!(json_code, code, "{v}");
    (table, v)
}

#[test]
fn members_that_agree_exit_0_with_one_row_each() {
    let mut c = Cluster::new(
        "status-agree",
        &["--startup-delay", "0", "--health-interval", "200ms"],
    );
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(20));
    let registry = registry_dir(&c);

    let (out, v) = status_both(&registry, 0);
    let rows: Vec<&str> = out.lines().collect();
    assert_eq!(rows.len(), 5, "header, 3 rows, summary:\n{out}");
    assert!(rows[0].starts_with("NAME"), "{out}");
    for (row, id) in rows[1..4].iter().zip(1..=3) {
        let port = c.node(&format!("node{id}")).port;
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells[..4],
            [
                format!("node{id}").as_str(),
                &id.to_string(),
                &format!("127.0.0.1:{port}"),
                "node3"
            ],
            "{out}"
        );
        assert_eq!(cells[5..], ["no", "yes", "off", "yes"], "{out}");
    }
    assert_eq!(
        rows[4],
        "agreed: coordinator node3; 3 of 3 members reachable"
    );
    assert_eq!(v["agreed"], true, "{v}");
    assert_eq!(v["coordinator"], "node3", "{v}");
    assert_eq!(v["coordinator_reachable"], true, "{v}");
    assert_eq!(v["cluster"], "bully", "{v}");
    let members = v["members"].as_array().expect("members");
    assert_eq!(members.len(), 3, "{v}");
    for m in members {
        assert_eq!(m["reachable"], true, "{v}");
        assert_eq!(m["coordinator_id"], 3, "{v}");
        assert_eq!(m["election"], false, "{v}");
        assert!(m["term"].as_u64().is_some_and(|t| t >= 1), "{v}");
        assert_eq!(
            (&m["healthy"], &m["maintenance"]),
            (&true.into(), &false.into())
        );
        assert!(m.get("quorum").is_none(), "plain mode: {v}");
    }
}

#[test]
fn health_maintenance_and_the_quorum_state_are_shown_per_member() {
    let mut c = Cluster::new(
        "status-health",
        &["--startup-delay", "0", "--health-interval", "200ms"],
    );
    c.start(1, &["--check", "false", "--check-interval", "200ms"]);
    c.start(2, &[]);
    c.start(3, &[]);
    c.await_agreement("node3", secs(20));
    let out = Command::new(BIN)
        .args([
            "maintenance",
            "on",
            "--port",
            &c.node("node2").port.to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let registry = registry_dir(&c);
    let (table, v) = wait_for("node1 unhealthy, node2 in maintenance", secs(20), || {
        let (table, v) = status_both(&registry, 0);
        let m = &v["members"];
        if m[0]["healthy"] == false && m[1]["maintenance"] == true {
            Ok((table, v))
        } else {
            Err(table)
        }
    });
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        rows[0][5..],
        ["ELECTION", "HEALTHY", "MAINTENANCE", "REACHABLE"],
        "{table}"
    );
    assert_eq!(rows[1][6..], ["no", "off", "yes"], "{table}");
    assert_eq!(rows[2][6..], ["yes", "on", "yes"], "{table}");
    assert_eq!(rows[3][6..], ["yes", "off", "yes"], "{table}");
    assert!(
        table.contains("3 of 3 members reachable; unhealthy: node1; in maintenance: node2"),
        "{table}"
    );
    assert_eq!(v["members"][1]["preempts"], false, "{v}");
    assert_eq!(v["members"][2]["preempts"], true, "{v}");

    // Quorum mode: the state of each member in a column of its own.
    let mut q = Cluster::new(
        "status-quorum",
        &[
            "--startup-delay",
            "0",
            "--health-interval",
            "200ms",
            "--quorum",
            "3",
        ],
    );
    for id in 1..=3 {
        q.start(id, &[]);
    }
    q.await_agreement("node3", secs(30));
    let registry = registry_dir(&q);
    let (table, v) = wait_for("node3 leading with a quorum", secs(20), || {
        let (table, v) = status_both(&registry, 0);
        let states: Vec<&str> = (0..3)
            .map(|i| v["members"][i]["quorum"].as_str().unwrap_or("?"))
            .collect();
        if states == ["following", "following", "leading"] {
            Ok((table, v))
        } else {
            Err(format!("{states:?}\n{table}"))
        }
    });
    let rows: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][8..], ["QUORUM", "REACHABLE"], "{table}");
    assert_eq!(rows[3][8..], ["leading", "yes"], "{table}");
    assert_eq!(v["members"][0]["quorum"], "following", "{v}");
}

#[test]
fn members_that_disagree_exit_1_and_a_missing_coordinator_is_pointed_out() {
    // A long health interval, so node1 keeps following the forged coordinator.
    let mut c = Cluster::new(
        "status-disagree",
        &["--startup-delay", "0", "--health-interval", "1h"],
    );
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(20));
    let forged = br#"{"coordinator":"node9","node_id":9,"term":1000}"#;
    let (code, body) = send(c.node("node1").port, "POST", "/announce", forged);
    assert_eq!(code, 200, "{body}");
    assert_eq!(c.node("node1").coordinator().as_deref(), Some("node9"));
    let registry = registry_dir(&c);

    let (out, v) = status_both(&registry, 1);
    assert!(
        out.contains("disagreement: node1 follows node9, node2 follows node2"),
        "{out}"
    );
    assert_eq!(v["agreed"], false, "{v}");
    assert_eq!(v["coordinator"], Value::Null, "{v}");
    assert_eq!(v["members"][0]["coordinator"], "node9", "{v}");
    assert_eq!(v["members"][0]["term"], 1000, "{v}");
    assert_eq!(v["members"][1]["coordinator"], "node2", "{v}");

    // With node2 gone, node1 alone agrees with itself, on a coordinator that is not there:
    // exit 0 as specified, but the summary and the JSON say so.
    let status = c.node("node2").terminate(secs(20)).expect("node2 exits");
    assert!(status.success(), "{status:?}");
    let (out, v) = status_both(&registry, 0);
    assert!(
        out.contains("agreed: coordinator node9, but it is not a reachable member"),
        "{out}"
    );
    assert_eq!(v["coordinator_reachable"], false, "{v}");
}

#[test]
fn an_empty_or_dead_cluster_exits_1() {
    let dir = TempDir::new("status-empty");
    let registry = dir.path().join("registry");
    let registry_s = registry.display().to_string();
    let (out, v) = status_both(&registry_s, 1);
    assert!(out.starts_with("no members in cluster 'bully'"), "{out}");
    assert_eq!(v["members"].as_array().map(Vec::len), Some(0), "{v}");

    // A record left behind by a killed node: listed, but not reachable.
    write_record(&registry, "node5", 5, free_port());
    let (out, v) = status_both(&registry_s, 1);
    assert!(
        out.contains("no member reachable; 0 of 1 members reachable"),
        "{out}"
    );
    let m = &v["members"][0];
    assert_eq!(
        (&m["name"], &m["reachable"]),
        (&Value::from("node5"), &Value::from(false)),
        "{v}"
    );
    assert!(m["error"].is_string(), "{v}");
    assert_eq!(m["coordinator"], Value::Null, "{v}");
}

#[test]
fn registry_and_usage_errors_are_reported_cleanly() {
    // Port 1 on loopback refuses: a consul registry that cannot be read (or is not built).
    let (code, out, err) = status(&["--consul", "http://127.0.0.1:1", "--timeout", "500ms"]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(out.is_empty(), "nothing on stdout: {out}");
    assert!(err.starts_with("bully status: "), "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");

    let (code, _, err) = status(&["--bogus"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--bogus"), "{err}");
}

fn write_record(registry: &Path, name: &str, id: u64, port: u16) {
    let dir = registry.join("bully");
    std::fs::create_dir_all(&dir).unwrap();
    let record = serde_json::json!({"name": name, "id": id, "host": "127.0.0.1", "port": port});
    std::fs::write(dir.join(format!("{name}.json")), record.to_string()).unwrap();
}

/// The lines `bully status --watch` printed so far, read on a thread of their own.
struct Watcher {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watcher {
    fn start(registry: &str) -> Watcher {
        let mut child = Command::new(BIN)
            .args(["status", "--registry-dir", registry, "--watch"])
            .args(["--interval", "100ms", "--timeout", "500ms"])
            .env_remove("XDG_RUNTIME_DIR")
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run bully status --watch");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watcher {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line whose coordinator column is `coordinator`; returns it.
    fn await_coordinator(&mut self, coordinator: &str, within: Duration) -> String {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.split(' ').nth(1) == Some(coordinator) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line naming {coordinator} within {within:?}; saw:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn watch_prints_a_line_at_each_change_and_only_then() {
    let mut c = Cluster::new(
        "status-watch",
        &["--startup-delay", "0", "--health-interval", "200ms"],
    );
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(20));
    let registry = registry_dir(&c);
    let mut w = Watcher::start(&registry);
    let first = w.await_coordinator("node2", secs(20));
    // TIME COORDINATOR TERM SUMMARY, the time in UTC.
    let cells: Vec<&str> = first.splitn(4, ' ').collect();
    assert!(
        cells[0].len() == 24 && cells[0].ends_with('Z') && cells[0].as_bytes()[10] == b'T',
        "{first}"
    );
    let term: u64 = cells[2]
        .parse()
        .unwrap_or_else(|_| panic!("a term: {first}"));
    assert_eq!(
        cells[3], "agreed: coordinator node2; 2 of 2 members reachable",
        "{first}"
    );
    // Nothing changes for a while: no new line (each poll asks both nodes again).
    std::thread::sleep(Duration::from_millis(1500));
    let idle: Vec<String> = w.lines.try_iter().collect();
    assert!(idle.is_empty(), "lines without a change: {idle:?}");

    // A killed node's record is dropped as soon as a reader sees its process is gone (until
    // then it is listed, not reachable).
    c.node("node2").kill9();
    let after = w.await_coordinator("node1", secs(30));
    let new_term: u64 = after
        .split(' ')
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    assert!(
        new_term > term,
        "the failover's term: {after}\nsaw: {:?}",
        w.seen
    );
    assert!(
        after.ends_with("agreed: coordinator node1; 1 of 1 members reachable")
            || after.ends_with("agreed: coordinator node1; 1 of 2 members reachable"),
        "{after}\nsaw: {:?}",
        w.seen
    );
}

#[test]
fn status_has_help_of_its_own_and_hints_at_the_registry_it_read() {
    let (code, out, err) = status(&["--help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("bully status ["), "{out}");
    for flag in [
        "--watch",
        "--interval",
        "--json",
        "--timeout",
        "--registry-dir",
    ] {
        assert!(out.contains(flag), "{flag} in:\n{out}");
    }
    assert!(
        !out.contains("--startup-delay"),
        "node flags are not status flags:\n{out}"
    );

    let (code, _, err) = status(&["--watch", "--interval", "0s"]);
    assert_eq!(code, 2, "{err}");
    assert_eq!(
        err.lines().next(),
        Some("bully status: --interval: expected a duration above zero"),
        "{err}"
    );

    let dir = TempDir::new("status-hint");
    let registry = dir.path().join("registry").display().to_string();
    let (code, out, _) = status(&["--registry-dir", &registry, "--cluster", "web"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("no node of cluster 'web' has registered in"),
        "{out}"
    );
    assert!(out.contains("--registry-dir and --cluster"), "{out}");
}

//! Registry records with real processes: one live node per name (a second one refuses to
//! start, and a node only ever removes its own record), records of killed nodes removed or
//! pruned, and a registry that cannot be written: an error at start, and later a node that
//! stands for nothing while it cannot register.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;
use support::*;

const FAST: &[&str] = &["--startup-delay", "0", "--health-interval", "200ms"];

/// Runs `bully ARGS` to its end (it must end within a minute); returns its output.
fn run_to_end(args: &[String]) -> Output {
    let mut child = Guarded::spawn(
        Command::new(BIN)
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .unwrap();
    wait_for("the second node to exit", secs(60), || {
        child
            .try_wait()
            .unwrap()
            .map(|_| ())
            .ok_or_else(|| "still running".to_string())
    });
    child.output().unwrap()
}

/// `bully PORT NAME --id ID` with `c`'s common arguments and `extra`.
fn node_args(c: &Cluster, port: u16, name: &str, id: u64, extra: &[&str]) -> Vec<String> {
    let mut args = vec![port.to_string(), name.into(), "--id".into(), id.to_string()];
    args.extend(c.common.iter().cloned());
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

fn record_path(c: &Cluster, name: &str) -> PathBuf {
    c.dir
        .path()
        .join("registry/bully")
        .join(format!("{name}.json"))
}

fn record(c: &Cluster, name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(record_path(c, name)).unwrap_or_default();
    serde_json::from_str(&text).unwrap_or_default()
}

/// A second node of one name exits 1 with one line naming the problem; the first keeps its
/// record and its place.
fn assert_refused(c: &mut Cluster, port: u16, extra: &[&str]) {
    let before = record(c, "node1");
    let out = run_to_end(&node_args(c, port, "node1", 7, extra));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {err}");
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("bully: node name 'node1' is taken: "),
        "stderr: {err}"
    );
    assert!(
        last.contains("choose another NAME or stop that node"),
        "{last}"
    );
    assert_eq!(
        record(c, "node1"),
        before,
        "the first node's record is untouched"
    );
}

#[test]
fn a_second_node_with_a_live_name_refuses_to_start() {
    let mut c = Cluster::new("dupname", FAST);
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(20));
    let first = c.node("node1").port;
    assert_eq!(record(&c, "node1")["port"], first);
    assert_refused(&mut c, free_port(), &[]);
    // Frozen, the first node still runs: its name is still taken.
    c.node("node1").signal("STOP");
    assert_refused(&mut c, free_port(), &[]);
    c.node("node1").signal("CONT");
    c.await_agreement("node2", secs(20));
    // Killed, it holds nothing: a new node1 takes its place.
    c.node("node1").kill9();
    let port = free_port();
    let args = node_args(&c, port, "node1", 1, &[]);
    let log = c.dir.path().join("node1-again.log");
    let again = NodeProc::start("node1", 1, port, &args[4..], log);
    wait_for("the new node1 to follow node2", secs(20), || {
        match again.coordinator() {
            Some(n) if n == "node2" => Ok(()),
            other => Err(format!("{other:?}\n{}", again.log_text())),
        }
    });
    assert_eq!(record(&c, "node1")["port"], port);
}

#[test]
fn a_second_node_with_a_live_name_refuses_to_start_on_the_static_registry() {
    let dir = TempDir::new("dupstatic");
    let (p1, p2) = (free_port(), free_port());
    let state = dir.path().join("state").display().to_string();
    let peer = |p: u16| format!("127.0.0.1:{p}");
    let args = |peers: String| -> Vec<String> {
        [
            FAST,
            &["--state-dir", state.as_str(), "--peers", peers.as_str()],
        ]
        .concat()
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let n1 = NodeProc::start("node1", 1, p1, &args(peer(p2)), dir.path().join("1.log"));
    wait_for("node1 to lead", secs(20), || match n1.coordinator() {
        Some(c) if c == "node1" => Ok(()),
        other => Err(format!("{other:?}")),
    });
    let mut second = vec![p2.to_string(), "node1".into(), "--id".into(), "9".into()];
    second.extend(args(peer(p1)));
    let out = run_to_end(&second);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "node name 'node1' is taken: a live node answers as 'node1' at 127.0.0.1:{p1}"
        )),
        "{err}"
    );
    assert_eq!(n1.coordinator().as_deref(), Some("node1"));
}

/// This test process as the writer of a record: alive for as long as the test runs.
fn this_process(token: &str) -> serde_json::Value {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 1..];
    let start: u64 = after.split_whitespace().nth(19).unwrap().parse().unwrap();
    serde_json::json!({
        "pid": std::process::id(),
        "boot_id": std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap().trim(),
        "pid_ns": std::fs::read_link("/proc/self/ns/pid").unwrap().display().to_string(),
        "start_time": start,
        "token": token,
    })
}

fn write_json(path: &Path, v: &serde_json::Value) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, v.to_string()).unwrap();
    std::fs::rename(tmp, path).unwrap();
}

#[test]
fn a_node_only_removes_its_own_record_and_stands_down_when_a_live_namesake_takes_it() {
    let mut c = Cluster::new("ownrecord", FAST);
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(20));
    // A live process (this test) writes over node2's record, as a second node2 started at
    // the same moment would.
    let path = record_path(&c, "node2");
    let mut theirs = record(&c, "node2");
    theirs["port"] = free_port().into();
    theirs["process"] = this_process("someone-else");
    write_json(&path, &theirs);
    let n2 = c.node("node2");
    wait_for("node2 to see its name taken", secs(20), || {
        let log = n2.log_text();
        if log.contains("node name 'node2' is taken")
            && log.contains("Not registered: standing for nothing")
        {
            Ok(())
        } else {
            Err(log)
        }
    });
    assert_eq!(n2.metric("bully_registered"), 0.0);
    assert!(n2.metric("bully_registry_failures_total") >= 1.0);
    // It does not write the record back, and on SIGTERM leaves it alone.
    assert_eq!(record(&c, "node2"), theirs);
    let status = c.node("node2").terminate(secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0));
    assert_eq!(
        record(&c, "node2"),
        theirs,
        "node2 removed a record not its own"
    );
}

/// Runs `bully status ARGS` on `c`'s registry.
fn status(c: &Cluster, extra: &[&str]) -> (i32, String) {
    let registry = c.dir.path().join("registry");
    let out = Command::new(BIN)
        .arg("status")
        .arg("--registry-dir")
        .arg(&registry)
        .args(["--timeout", "500ms"])
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr),
    )
}

#[test]
fn the_record_of_a_killed_node_is_removed_and_prune_removes_the_rest() {
    let mut c = Cluster::new("stale", FAST);
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(20));
    let pid = c.node("node3").pid().unwrap();
    c.node("node3").kill9();
    c.await_agreement("node2", secs(20));
    // Read by the others (the coordinator looks for higher members every interval): gone.
    let path = record_path(&c, "node3");
    wait_for("node3's record to be removed", secs(20), || {
        if path.exists() {
            Err(format!("{}", record(&c, "node3")))
        } else {
            Ok(())
        }
    });
    let logs: String = c.nodes.iter().map(|n| n.log_text()).collect();
    assert!(
        logs.contains(&format!(
            "Removed the record of node3: its process (pid {pid}) is gone"
        )),
        "{logs}"
    );
    let (code, out) = status(&c, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 of 2 members reachable"), "{out}");

    // A record from another boot (or host) cannot be judged: listed, unreachable, until
    // --prune removes it; the live ones stay.
    let ghost = serde_json::json!({
        "name": "node9", "id": 9, "host": "127.0.0.1", "port": free_port(),
        "process": {"pid": 1, "boot_id": "another-boot", "pid_ns": "pid:[1]",
                    "start_time": 1, "token": "t"},
    });
    write_json(&record_path(&c, "node9"), &ghost);
    let (code, out) = status(&c, &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("2 of 3 members reachable"), "{out}");
    let (code, out) = status(&c, &["--prune"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("pruned: removed the records of node9 (not reachable)"),
        "{out}"
    );
    assert!(!record_path(&c, "node9").exists());
    assert!(record_path(&c, "node1").exists() && record_path(&c, "node2").exists());
    let (code, out) = status(&c, &["--prune", "--json"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("pruned"), "nothing left to prune: {out}");
    // --prune means nothing to a registry without records.
    let (code, out) = status(&c, &["--prune", "--peers", "127.0.0.1:1"]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.starts_with("bully status: --prune: only the dir registry"),
        "{out}"
    );
}

#[test]
fn a_registry_that_cannot_be_written_is_an_error_at_start() {
    let dir = TempDir::new("unwritable");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    let registry = file.join("registry");
    let args: Vec<String> = [
        &[free_port().to_string().as_str(), "node1", "--id", "1"][..],
        FAST,
        &[
            "--registry-dir",
            registry.to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
    ]
    .concat()
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_to_end(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let last = err.lines().last().unwrap_or_default();
    assert_eq!(
        last,
        format!(
            "bully: cannot write to {}: Not a directory (os error 20)",
            registry.join("bully").display()
        ),
        "{err}"
    );
    assert!(!err.contains("Coordinator is"), "{err}");
}

/// A full disk, on a small tmpfs: needs root to mount one.
#[test]
fn a_registry_on_a_full_disk_is_an_error_at_start() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("CI=true, so this test must run, but it needs root (to mount a tmpfs)");
        }
        println!("skipping: needs root (to mount a tmpfs)");
        return;
    }
    let dir = TempDir::new("fulldisk");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=64k",
            "bully-test",
            mnt.to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(mounted.success());
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(mnt.clone());
    std::fs::create_dir_all(mnt.join("registry/bully")).unwrap();
    // Fill it: the write fails once the disk is full.
    let _ = std::fs::write(mnt.join("filler"), vec![0u8; 1 << 20]);
    let args: Vec<String> = [
        &[free_port().to_string().as_str(), "node1", "--id", "1"][..],
        FAST,
        &[
            "--registry-dir",
            mnt.join("registry").to_str().unwrap(),
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
        ],
    ]
    .concat()
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run_to_end(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "bully: cannot write to {}: No space left on device",
            mnt.join("registry/bully").display()
        )),
        "{err}"
    );
}

#[test]
fn a_node_that_cannot_register_stands_for_nothing_until_it_can() {
    let mut c = Cluster::new("brokenlater", FAST);
    c.start(1, &[]);
    c.start(2, &[]);
    c.await_agreement("node2", secs(20));
    // The cluster directory becomes a file: no record can be written (or read) any more.
    let cluster_dir = c.dir.path().join("registry/bully");
    let aside = c.dir.path().join("registry/aside");
    std::fs::rename(&cluster_dir, &aside).unwrap();
    std::fs::write(&cluster_dir, "not a directory").unwrap();
    // Upkeep writes the records again only when missing: make them go missing.
    std::fs::remove_dir_all(&aside).unwrap();
    for name in ["node1", "node2"] {
        let n = c.node(name);
        wait_for(&format!("{name} to stand down"), secs(20), || {
            let log = n.log_text();
            if log.contains("Not registered: standing for nothing") {
                Ok(())
            } else {
                Err(log)
            }
        });
        assert_eq!(n.metric("bully_registered"), 0.0);
        assert!(n.metric("bully_registry_failures_total") >= 1.0);
        let log = n.log_text();
        assert!(
            log.contains(&format!(
                "failed: cannot write to {}: it is not a directory",
                cluster_dir.display()
            )),
            "{log}"
        );
    }
    // A lower node's election message is not waited on.
    let (status, body) = send(
        c.node("node2").port,
        "POST",
        "/proxy",
        br#"{"node_id":1,"node_name":"node1","term":0}"#,
    );
    assert_eq!(status, 409, "{body}");
    // The coordinator dies: node1 cannot register, so it does not elect itself.
    c.node("node2").kill9();
    let n1 = c.node("node1");
    wait_for("node1 to lose node2", secs(20), || match n1.details() {
        Some(d) if d["coordinator"].is_null() => Ok(()),
        other => Err(format!("{other:?}")),
    });
    std::thread::sleep(Duration::from_secs(2));
    let d = n1.details().unwrap();
    assert!(
        d["coordinator"].is_null() && d["is_coordinator"] == false,
        "node1 elected itself while it could not register: {d}\n{}",
        n1.log_text()
    );
    // The failures are logged when they start, not at every retry.
    let warnings = n1
        .log_text()
        .lines()
        .filter(|l| l.contains("registering in dir"))
        .count();
    assert!(warnings <= 3, "{warnings} lines:\n{}", n1.log_text());
    // Writable again: node1 registers and, knowing no coordinator, elects itself.
    std::fs::remove_file(&cluster_dir).unwrap();
    // Retries back off up to 30 s.
    c.await_agreement("node1", secs(60));
    let log = c.node("node1").log_text();
    assert!(
        log.contains("Registered again: standing for election"),
        "{log}"
    );
    assert!(log.contains("works again after"), "{log}");
    assert!(record_path(&c, "node1").exists());
}

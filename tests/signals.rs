//! Signals with real processes: a node whose output pipe has gone still logs nothing wrong,
//! answers and stops on SIGTERM; SIGHUP reads the key and peers files again and keeps the node
//! running; and from the moment SIGTERM arrives no answer says the node leads.

mod support;

use bully::http::auth::{ClusterKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use support::*;

const FAST: &[&str] = &["--startup-delay", "0", "--health-interval", "200ms"];

/// Waits until `n`'s log contains `text` (after `from` bytes); returns the log.
fn await_log(n: &NodeProc, from: usize, text: &str, within: Duration) -> String {
    wait_for(&format!("{} logs '{text}'", n.name), within, || {
        let log = n.log_text();
        if log.get(from..).is_some_and(|l| l.contains(text)) {
            Ok(log)
        } else {
            Err(log)
        }
    })
}

#[test]
fn a_node_whose_output_pipe_closed_keeps_running_and_stops_on_sigterm() {
    let dir = TempDir::new("closedpipe");
    let registry = dir.path().join("registry");
    let port = free_port();
    let mut child = Guarded::spawn(
        Command::new(BIN)
            .args([&port.to_string(), "node1", "--id", "1"])
            .args(FAST)
            .arg("--registry-dir")
            .arg(&registry)
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
    )
    .unwrap();
    // Read until the node leads, then close both pipes: every later line meets EPIPE.
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("Coordinator is: node1") {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            panic!("the node's output ended: {seen}");
        }
        seen += &line;
    }
    assert!(
        seen.lines()
            .all(|l| l.contains(" [bully::") && l.ends_with(|c: char| c != ' ')),
        "every line is `TIMESTAMP LEVEL [target] message`:\n{seen}"
    );
    let first = seen.lines().next().unwrap_or_default();
    assert!(
        first.len() > 24 && first.as_bytes()[23] == b'Z' && first[24..].starts_with(" INFO  ["),
        "a UTC timestamp, then the level padded to five: {first}"
    );
    drop(err);
    drop(child.stdout.take());
    let pid = child.id().to_string();
    let signal = |sig: &str| {
        Command::new("kill").args([sig, &pid]).status().unwrap();
    };
    // SIGHUP logs a line (into the closed pipe) and the node keeps going.
    signal("-HUP");
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP ended the node");
    let d = get_json(port, "/nodeDetails").expect("the node answers after EPIPE");
    assert_eq!(d["is_coordinator"], true, "{d}");
    assert!(registry.join("bully/node1.json").exists());
    signal("-TERM");
    let status = wait_for("the node to exit after SIGTERM", secs(20), || {
        child
            .try_wait()
            .unwrap()
            .ok_or_else(|| "still running".to_string())
    });
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(
        !registry.join("bully/node1.json").exists(),
        "the record was removed on the way out"
    );
}

/// A POST to `port` signed with `key` now; returns the status.
fn signed_post(port: u16, key: &ClusterKey, path: &str, body: &[u8]) -> u16 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let (ts, sig) = key.sign_at(now.as_millis() as u64, "POST", path, body);
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         {TIMESTAMP_HEADER}: {ts}\r\n{SIGNATURE_HEADER}: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    raw(port, &r).0
}

#[test]
fn sighup_reads_the_key_file_again_and_the_node_keeps_leading() {
    const OLD: &str = "the first cluster key, 32 bytes.";
    const NEW: &str = "the rotated cluster key, also ok";
    let mut c = Cluster::new("hupkey", FAST);
    let key_file = c.dir.path().join("key");
    std::fs::write(&key_file, format!("{OLD}\n")).unwrap();
    let file = key_file.display().to_string();
    let demoted = c.dir.path().join("demoted");
    let hook = format!("touch '{}'", demoted.display());
    c.start(
        2,
        &["--cluster-key-file", &file, "--on-demoted", hook.as_str()],
    );
    c.await_agreement("node2", secs(20));
    let port = c.nodes[0].port;
    let old = ClusterKey::new(OLD.as_bytes()).unwrap();
    let new = ClusterKey::new(NEW.as_bytes()).unwrap();
    let body = br#"{"node_id": 1, "node_name": "node1", "term": 0}"#;
    assert_eq!(signed_post(port, &old, "/response", body), 200);
    assert_eq!(signed_post(port, &new, "/response", body), 401);

    let from = c.nodes[0].log_text().len();
    c.nodes[0].signal("HUP");
    await_log(
        &c.nodes[0],
        from,
        "SIGHUP: cluster key unchanged; still running",
        secs(10),
    );

    std::fs::write(&key_file, NEW).unwrap();
    let from = c.nodes[0].log_text().len();
    c.nodes[0].signal("HUP");
    let log = await_log(&c.nodes[0], from, "SIGHUP: cluster key replaced", secs(10));
    assert!(
        !log.contains(OLD) && !log.contains(NEW),
        "a key was logged:\n{log}"
    );
    assert_eq!(signed_post(port, &new, "/response", body), 200);
    assert_eq!(
        signed_post(port, &old, "/response", body),
        200,
        "the replaced key is accepted during its grace"
    );
    let stranger = ClusterKey::new(b"a key this cluster never had").unwrap();
    assert_eq!(signed_post(port, &stranger, "/response", body), 401);

    // A file that no longer holds a key leaves the key in force.
    std::fs::write(&key_file, "short").unwrap();
    let from = c.nodes[0].log_text().len();
    c.nodes[0].signal("HUP");
    await_log(&c.nodes[0], from, "keeping the key in force", secs(10));
    assert_eq!(signed_post(port, &new, "/response", body), 200);

    // The node signs with the new key: a node holding only the new key follows it.
    std::fs::write(&key_file, NEW).unwrap();
    c.start(1, &["--cluster-key", NEW]);
    c.await_agreement("node2", secs(20));
    assert!(c.nodes[0].is_running());
    assert_eq!(c.nodes[0].details().unwrap()["is_coordinator"], true);
    assert!(!demoted.exists(), "SIGHUP ran the demoted hook");
    assert_eq!(
        c.nodes[0].terminate(secs(20)).and_then(|s| s.code()),
        Some(0)
    );
    assert!(demoted.exists(), "SIGTERM runs the demoted hook");
}

#[test]
fn sighup_reads_the_peers_file_again() {
    let dir = TempDir::new("hupbpeers");
    let (p1, p2) = (free_port(), free_port());
    let peers = dir.path().join("peers");
    std::fs::write(&peers, "# nobody yet\n").unwrap();
    let file = peers.display().to_string();
    let state = dir.path().join("state").display().to_string();
    let common = [FAST, &["--state-dir", state.as_str()]].concat();
    let start = |name: &str, id: u64, port: u16, extra: &[&str]| {
        let args: Vec<String> = [&common[..], extra]
            .concat()
            .iter()
            .map(|s| s.to_string())
            .collect();
        NodeProc::start(
            name,
            id,
            port,
            &args,
            dir.path().join(format!("{name}.log")),
        )
    };
    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.display().to_string();
    let n1 = start("node1", 1, p1, &["--peers-file", &file]);
    let n2 = start("node2", 2, p2, &["--peers-file", &empty]);
    // Each lists nobody, so each leads alone.
    for n in [&n1, &n2] {
        wait_for(&format!("{} to lead alone", n.name), secs(20), || {
            match n.coordinator() {
                Some(c) if c == n.name => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    }
    let from = n1.log_text().len();
    std::fs::write(&peers, format!("127.0.0.1:{p2}\n")).unwrap();
    n1.signal("HUP");
    let log = await_log(&n1, from, "SIGHUP: peers added: 127.0.0.1:", secs(10));
    assert!(log.contains("removed: none; now 1"), "{log}");
    for n in [&n1, &n2] {
        wait_for(
            &format!("{} to follow node2", n.name),
            secs(20),
            || match n.coordinator() {
                Some(c) if c == "node2" => Ok(()),
                other => Err(format!("{other:?}\n{}", n.log_text())),
            },
        );
    }
    // A bad line leaves the list as it was.
    std::fs::write(&peers, "127.0.0.1:0\n").unwrap();
    let from = n1.log_text().len();
    n1.signal("HUP");
    await_log(
        &n1,
        from,
        "line 1: expected HOST:PORT, got '127.0.0.1:0'",
        secs(10),
    );
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(n1.coordinator().as_deref(), Some("node2"));
}

/// Every `/nodeDetails` answer to a request sent after SIGTERM says the node does not lead.
#[test]
fn from_the_moment_sigterm_arrives_no_answer_says_the_node_leads() {
    let mut c = Cluster::new("truth", FAST);
    c.start(1, &[]);
    // A slow demoted hook keeps the node answering for a while after SIGTERM.
    c.start(2, &["--on-demoted", "sleep 1"]);
    c.await_agreement("node2", secs(20));
    let port = c.node("node2").port;
    // (sent after SIGTERM, is_coordinator) for every answer.
    let seen = Arc::new(Mutex::new(Vec::<(bool, bool)>::new()));
    let sent_term = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let pollers: Vec<_> = (0..4)
        .map(|_| {
            let (seen, sent_term, stop) = (seen.clone(), sent_term.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let after = sent_term.load(Ordering::SeqCst);
                    let Some(d) = get_json(port, "/nodeDetails") else {
                        continue;
                    };
                    seen.lock()
                        .unwrap()
                        .push((after, d["is_coordinator"] == true));
                }
            })
        })
        .collect();
    wait_for("answers before SIGTERM", secs(10), || {
        let n = seen.lock().unwrap().len();
        if n >= 20 {
            Ok(())
        } else {
            Err(format!("{n}"))
        }
    });
    let n2 = c.node("node2");
    n2.signal("TERM");
    let termed = Instant::now();
    sent_term.store(true, Ordering::SeqCst);
    let status = n2.terminate(secs(30));
    stop.store(true, Ordering::SeqCst);
    for p in pollers {
        p.join().unwrap();
    }
    let seen = seen.lock().unwrap();
    let before = seen.iter().filter(|(after, _)| !after).count();
    let after: Vec<bool> = seen.iter().filter(|(a, _)| *a).map(|(_, c)| *c).collect();
    println!(
        "{before} answers before SIGTERM, {} after it within {:.2?}",
        after.len(),
        termed.elapsed()
    );
    assert!(
        seen.iter().any(|(a, c)| !a && *c),
        "the node led before SIGTERM"
    );
    assert!(
        after.len() >= 10,
        "only {} answers after SIGTERM",
        after.len()
    );
    assert_eq!(
        after.iter().filter(|c| **c).count(),
        0,
        "answers after SIGTERM that say the node leads, of {}",
        after.len()
    );
    assert!(status.is_some_and(|s| s.code() == Some(0)), "{status:?}");
    c.await_agreement("node1", secs(10));
}

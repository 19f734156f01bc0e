//! `--cluster-key`: signed POSTs between real nodes; unsigned, wrongly signed, old and
//! replayed requests get 401 and change nothing; reads stay open; the key is never logged.

mod support;

use bully::http::auth::{ClusterKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::*;

const KEY: &str = "correct horse battery staple 42";
const FAST: &[&str] = &["--startup-delay", "0", "--health-interval", "200ms"];

fn keyed() -> Vec<&'static str> {
    [FAST, &["--cluster-key", KEY]].concat()
}

/// A POST with the signature headers `key` makes for it, as of `millis` (now when `None`).
fn signed(key: &ClusterKey, path: &str, body: &[u8], millis: Option<u64>) -> Vec<u8> {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let (ts, sig) = key.sign_at(millis.unwrap_or(now.as_millis() as u64), "POST", path, body);
    let mut r = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         {TIMESTAMP_HEADER}: {ts}\r\n{SIGNATURE_HEADER}: {sig}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn assert_refused(port: u16, req: &[u8], what: &str, reason: &str) {
    let (status, body) = raw(port, req);
    assert_eq!(status, 401, "{what}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{what}: {e} {body}"));
    let error = v["error"].as_str().unwrap_or_default();
    assert!(error.contains(reason), "{what}: {error}");
}

#[test]
fn a_keyed_cluster_elects_and_fails_over_and_never_logs_the_key() {
    let mut c = Cluster::new("authcluster", &keyed());
    c.start(1, &[]);
    c.start(2, &[]);
    // The third node reads the same key from a file.
    let key_file = c.dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let file = key_file.display().to_string();
    let mut args = c.common.clone();
    let at = args.iter().position(|a| a == "--cluster-key").unwrap();
    args.splice(at..at + 2, ["--cluster-key-file".to_string(), file]);
    c.common = args;
    c.start(3, &[]);
    c.await_agreement("node3", secs(20));
    c.node("node3").kill9();
    c.await_agreement("node2", secs(10));
    for n in &c.nodes {
        let log = n.log_text();
        assert!(log.contains("POSTs signed"), "{}:\n{log}", n.name);
        assert!(!log.contains(KEY), "{} logged the key:\n{log}", n.name);
        assert!(
            !log.contains("Refused"),
            "{} refused a peer:\n{log}",
            n.name
        );
    }
}

#[test]
fn unsigned_wrongly_signed_old_and_replayed_posts_get_401_and_change_nothing() {
    let mut c = Cluster::settled("auth401", &keyed(), 1..=2);
    let port = c.node("node1").port;
    let before = c.node("node1").details().unwrap();
    let key = ClusterKey::new(KEY.as_bytes()).unwrap();
    let forged = br#"{"coordinator":"node9","node_id":9,"term":99}"#;

    assert_refused(
        port,
        &request("POST", "/announce", forged),
        "unsigned",
        "unsigned",
    );
    let other = ClusterKey::new(b"not the cluster's key at all").unwrap();
    assert_refused(
        port,
        &signed(&other, "/announce", forged, None),
        "other key",
        "wrong signature",
    );
    let mut tampered = signed(&key, "/announce", forged, None);
    let n = tampered.len();
    tampered[n - 3] = b'8'; // the term, after signing
    assert_refused(port, &tampered, "tampered body", "wrong signature");
    let moved = signed(&key, "/proxy", forged, None);
    let moved = [b"POST /announce".as_slice(), &moved[b"POST /proxy".len()..]].concat();
    assert_refused(port, &moved, "signed for another path", "wrong signature");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let old = (now - Duration::from_secs(60)).as_millis() as u64;
    assert_refused(
        port,
        &signed(&key, "/announce", forged, Some(old)),
        "a minute old",
        "off this node's clock",
    );
    let ahead = (now + Duration::from_secs(45)).as_millis() as u64;
    assert_refused(
        port,
        &signed(&key, "/announce", forged, Some(ahead)),
        "from the future",
        "off this node's clock",
    );
    // A correctly signed repeat of the current announcement is taken once, then refused.
    let term = before["term"].as_u64().unwrap();
    let repeat = format!(r#"{{"coordinator":"node2","node_id":2,"term":{term}}}"#);
    let req = signed(&key, "/announce", repeat.as_bytes(), None);
    let (status, body) = raw(port, &req);
    assert_eq!(status, 200, "signed repeat: {body}");
    assert_refused(port, &req, "replay", "replayed");

    // Reads stay open.
    for path in ["/", "/nodeDetails", "/metrics"] {
        assert_eq!(send(port, "GET", path, b"").0, 200, "GET {path}");
    }
    assert_eq!(c.node("node1").details().unwrap(), before, "state changed");
    let log = c.node("node1").log_text();
    assert!(
        log.contains("Refused POST /announce from 127.0.0.1"),
        "refusals are logged:\n{log}"
    );
    assert!(!log.contains(KEY));
}

#[test]
fn a_node_with_the_wrong_key_cannot_take_over() {
    let mut c = Cluster::settled("authwrong", &keyed(), 1..=2);
    // node9 shares the registry but not the key.
    let registry = c.dir.path().join("registry").display().to_string();
    let mut intruder = Cluster::new(
        "authwrong-9",
        &[
            FAST,
            &["--registry-dir", &registry],
            &["--cluster-key", "a different key, long enough"],
        ]
        .concat(),
    );
    intruder.start(9, &[]);
    wait_for("node9 to declare itself", secs(20), || {
        let log = intruder.nodes[0].log_text();
        if log.contains("Coordinator is: node9") {
            Ok(())
        } else {
            Err(log)
        }
    });
    // Its announcements were refused: the others still follow node2, for several rounds.
    for _ in 0..10 {
        for name in ["node1", "node2"] {
            let d = c.node(name).details().unwrap();
            assert_eq!(d["coordinator"], "node2", "{name}: {d}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(c.node("node2").log_text().contains("Refused POST"));
}

//! Bad input to every route gets a 4xx JSON error and leaves the node's state untouched; the
//! known traps of tiny_http are each sent for real.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::*;

fn assert_error(port: u16, req: &[u8], want: u16, what: &str) {
    let (status, body) = raw(port, req);
    assert_eq!(status, want, "{what}: body {body}");
    let v: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("{what}: answer is not JSON ({e}): {body:?}"));
    assert!(v["error"].is_string(), "{what}: no error field in {body}");
}

#[test]
fn bad_input_to_every_route_is_a_4xx_and_changes_nothing() {
    let c = settled_node("badinput");
    let port = c.nodes[0].port;
    let before = c.nodes[0].details().unwrap();
    for route in ["/proxy", "/response", "/announce"] {
        let cases: &[(&[u8], &str)] = &[
            (b"{not json", "malformed JSON"),
            (b"", "empty body"),
            (b"{}", "missing fields"),
            (br#"{"node_id": 9}"#, "missing name"),
            (
                br#"{"node_id": "9", "node_name": "x", "coordinator": "x"}"#,
                "id as string",
            ),
            (
                br#"{"node_id": -1, "node_name": "x", "coordinator": "x"}"#,
                "negative id",
            ),
            (
                br#"{"node_id": 1.5, "node_name": "x", "coordinator": "x"}"#,
                "fractional id",
            ),
            (
                br#"{"node_id": 18446744073709551616, "node_name": "x", "coordinator": "x"}"#,
                "id past u64",
            ),
            (
                br#"{"node_id": 1, "node_name": 7, "coordinator": 7}"#,
                "name as number",
            ),
            (
                br#"{"node_id": 1, "node_name": "", "coordinator": ""}"#,
                "empty name",
            ),
            (
                br#"{"node_id": 1, "node_name": "a/../b", "coordinator": "a/../b"}"#,
                "name with slash",
            ),
            (b"[1,2]", "array"),
            (b"\xff\xfe\x00", "binary"),
        ];
        for (body, what) in cases {
            assert_error(
                port,
                &request("POST", route, body),
                400,
                &format!("{route} {what}"),
            );
        }
        let big = vec![b' '; 70 * 1024];
        assert_error(
            port,
            &request("POST", route, &big),
            413,
            &format!("{route} oversize"),
        );
        assert_error(
            port,
            &request("GET", route, b""),
            405,
            &format!("{route} GET"),
        );
        assert_error(
            port,
            &request("DELETE", route, b""),
            405,
            &format!("{route} DELETE"),
        );
    }
    assert_error(port, &request("POST", "/", b"{}"), 405, "POST /");
    assert_error(
        port,
        &request("PUT", "/nodeDetails", b"{}"),
        405,
        "PUT /nodeDetails",
    );
    assert_error(port, &request("GET", "/nope", b""), 404, "unknown path");
    assert_error(
        port,
        &request("POST", "/nope", b"{}"),
        404,
        "unknown POST path",
    );
    // A higher node's election message is refused: it must not be sent to lower nodes.
    assert_error(
        port,
        &request(
            "POST",
            "/proxy",
            br#"{"node_id": 99, "node_name": "node99"}"#,
        ),
        409,
        "proxy from higher",
    );
    assert_eq!(c.nodes[0].details().unwrap(), before, "state changed");
}

#[test]
fn extra_keys_are_ignored_but_duplicate_keys_are_refused() {
    let c = settled_node("keys");
    let port = c.nodes[0].port;
    let (status, body) = send(
        port,
        "POST",
        "/response",
        br#"{"node_id": 9, "node_name": "node9", "extra": [1]}"#,
    );
    assert_eq!(status, 200, "{body}");
    assert_error(
        port,
        &request(
            "POST",
            "/response",
            br#"{"node_id": 1, "node_id": 2, "node_name": "a"}"#,
        ),
        400,
        "duplicate key",
    );
}

#[test]
fn health_and_details_answer_json() {
    let c = settled_node("routes");
    let port = c.nodes[0].port;
    let (status, body) = send(port, "GET", "/", b"");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let d = c.nodes[0].details().unwrap();
    for key in [
        "node_name",
        "node_id",
        "port",
        "cluster",
        "coordinator",
        "coordinator_id",
        "is_coordinator",
        "election",
    ] {
        assert!(d.get(key).is_some(), "{key} missing in {d}");
    }
    assert_eq!(d["port"], port);
    assert_eq!(d["cluster"], "bully");
}

/// tiny_http 0.12.0 aborts the process when a request declares a huge Content-Length and the
/// client closes early; the pinned fork must not, and the node must answer 413.
#[test]
fn huge_content_length_then_close_does_not_kill_the_node() {
    let mut c = settled_node("hugelen");
    let port = c.nodes[0].port;
    for path in ["/proxy", "/nope", "/"] {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(
            format!(
                "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n{{\"node"
            )
            .as_bytes(),
        )
        .unwrap();
        drop(s);
    }
    let (status, _) = send(port, "POST", "/proxy", b"");
    assert_ne!(status, 0);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(secs(10))).unwrap();
    s.write_all(b"POST /proxy HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n{")
        .unwrap();
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(parse_response(&buf[..n]).0, 413);
    std::thread::sleep(Duration::from_millis(300));
    assert!(c.nodes[0].is_running(), "node died:\n{}", c.log_tails());
    assert!(c.nodes[0].details().is_some());
}

/// Oversized headers get 431; a chunked body past the limit gets 413.
#[test]
fn header_and_chunked_body_limits() {
    let c = settled_node("limits");
    let port = c.nodes[0].port;
    let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    for i in 0..400 {
        req.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(60)).as_bytes());
    }
    req.extend_from_slice(b"\r\n");
    assert_error(port, &req, 431, "oversized headers");

    let mut req = b"POST /proxy HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        req.extend_from_slice(format!("1000\r\n{}\r\n", " ".repeat(4096)).as_bytes());
    }
    req.extend_from_slice(b"0\r\n\r\n");
    assert_error(port, &req, 413, "chunked oversize");
    assert!(c.nodes[0].details().is_some());
}

/// An `HTTP/2.0` request line leaked a thread forever in tiny_http 0.12.0, and idle connections
/// pinned a thread each: both must be released (by the inherited read timeout).
#[test]
fn http2_request_lines_and_idle_connections_do_not_leak_threads() {
    let c = settled_node("leaks");
    let node = &c.nodes[0];
    let port = node.port;
    let baseline = node.steady_threads();
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n").unwrap();
        held.push(s);
        held.push(TcpStream::connect(("127.0.0.1", port)).unwrap()); // idle
    }
    let t = std::time::Instant::now();
    let r = send(port, "GET", "/nodeDetails", b"");
    assert_eq!(
        r.0,
        200,
        "node answers while connections are held ({:?}): {r:?}",
        t.elapsed()
    );
    // The node closes them itself; the clients never do.
    node.await_threads_back_to(baseline, secs(40));
    for mut s in held {
        let mut buf = Vec::new();
        s.set_read_timeout(Some(secs(1))).unwrap();
        let _ = s.read_to_end(&mut buf); // closed by the node: returns instead of timing out
    }
    assert!(node.details().is_some());
}

#[test]
fn command_line_errors_exit_2_and_a_busy_port_exits_1() {
    let out = std::process::Command::new(BIN)
        .args(["5000", "n", "--timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--timeout") && err.lines().count() <= 2,
        "{err}"
    );

    let out = std::process::Command::new(BIN)
        .args(["--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("--health-interval"));

    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let dir = TempDir::new("busy");
    let out = std::process::Command::new(BIN)
        .args([
            &port.to_string(),
            "n",
            "--registry-dir",
            &dir.path().display().to_string(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already in use"));
}

#[test]
fn environment_variables_configure_the_node() {
    let dir = TempDir::new("env");
    let port = free_port();
    let mut child = std::process::Command::new(BIN)
        .args([&port.to_string(), "envnode"])
        .env("BULLY_ID", "77")
        .env("BULLY_CLUSTER", "fromenv")
        .env("BULLY_STARTUP_DELAY", "0")
        .env("BULLY_REGISTRY_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let d = wait_for("node details", secs(20), || {
        get_json(port, "/nodeDetails")
            .filter(|d| d["coordinator"] == "envnode")
            .ok_or_else(|| "no answer yet".to_string())
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(d["node_id"], 77);
    assert_eq!(d["cluster"], "fromenv");
    assert!(dir.path().join("fromenv/envnode.json").exists());
}

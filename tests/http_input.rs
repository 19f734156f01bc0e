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

/// The status, Content-Type and body of the answer to `req`, read until the node hangs up.
fn answer_with_type(port: u16, req: &[u8]) -> (u16, String, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(secs(15))).unwrap();
    let _ = s.write_all(req);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf); // a reset after the answer still leaves it in `buf`
    let text = String::from_utf8_lossy(&buf).to_string();
    let content_type = text
        .split("\r\n\r\n")
        .next()
        .unwrap_or("")
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    let (status, body) = parse_response(&buf);
    (status, content_type, body)
}

/// The head limit is the node's own (`limits::MAX_HEAD`, handed to the vendored server: fork
/// patch 9), counted over the request line and every header byte: a head of exactly that many
/// bytes is served, one byte more gets 431. Every answer the server writes itself, without
/// the node seeing the request, is JSON like the node's own.
#[test]
fn the_head_limit_is_the_nodes_and_the_servers_own_answers_are_json() {
    let c = settled_node("ownanswers");
    let port = c.nodes[0].port;
    let max = bully::http::limits::MAX_HEAD;
    let head_of = |len: usize| -> Vec<u8> {
        let bare = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: \r\n\r\n".len();
        let head = format!(
            "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(len - bare)
        );
        assert_eq!(head.len(), len);
        head.into_bytes()
    };
    let (status, _, body) = answer_with_type(port, &head_of(max));
    assert_eq!(status, 200, "a head of exactly {max} bytes: {body}");

    let slow = b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: aaa".to_vec(); // then nothing: 408
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (head_of(max + 1), 431, "a head one byte over the limit"),
        (
            b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(),
            505,
            "HTTP/2.0",
        ),
        (b"GET /\r\nHost: x\r\n\r\n".to_vec(), 400, "no HTTP version"),
        (
            b"GET / HTTP/1.1\r\nX-Null: a\x00b\r\n\r\n".to_vec(),
            400,
            "a NUL in a header",
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nExpect: the-unexpected\r\n\r\n".to_vec(),
            417,
            "an unknown Expect",
        ),
        (slow, 408, "a head that stops coming"),
    ];
    for (req, want, what) in cases {
        let (status, content_type, body) = answer_with_type(port, &req);
        assert_eq!(status, want, "{what}: {body}");
        assert_eq!(content_type, "application/json", "{what}: {body}");
        let v: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{what}: answer is not JSON ({e}): {body:?}"));
        assert!(v["error"].is_string(), "{what}: no error field in {body}");
    }
    assert!(c.nodes[0].details().is_some());
}

/// A burst of connections used to queue behind whichever pool thread was waiting for work
/// (fork patch 2): when that thread's connection sat idle, the rest waited for its read
/// timeout. Health checks mixed with idle clients: a request right behind them is answered
/// while every idle connection is still open.
#[test]
fn a_request_behind_a_burst_of_idle_connections_is_answered_at_once() {
    let c = settled_node("burst");
    let port = c.nodes[0].port;
    let mut idle = Vec::new();
    let mut quick = Vec::new();
    for _ in 0..10 {
        // A complete request answered at once: its thread is then free and waiting for work,
        // the state in which the next connections used to be queued.
        let mut q = TcpStream::connect(("127.0.0.1", port)).unwrap();
        q.write_all(&request("GET", "/", b"")).unwrap();
        quick.push(q);
        idle.push(TcpStream::connect(("127.0.0.1", port)).unwrap());
    }
    let (status, body) = send(port, "GET", "/nodeDetails", b"");
    assert_eq!(status, 200, "request behind 10 idle connections: {body}");
    // None of them has been answered (408) or closed yet: the request did not wait for their
    // read timeouts.
    for (i, s) in idle.iter().enumerate() {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        match (&*s).read(&mut buf) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("idle connection {i} ended before the request was answered: {other:?}"),
        }
    }
}

/// One request per connection (fork patch 6): the node answers `Connection: close` and hangs
/// up, so a client that keeps the connection open or pipelines a second request gets one
/// answer and then the end of the stream, not another read timeout's wait.
#[test]
fn a_connection_carries_one_request_even_when_the_client_keeps_it_alive() {
    let c = settled_node("onereq");
    let port = c.nodes[0].port;
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(secs(15))).unwrap();
    s.write_all(
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n\
          GET /nodeDetails HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n",
    )
    .unwrap();
    let mut buf = Vec::new();
    let r = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    // An end of stream or a reset (the second request was left unread): the node hung up.
    match r {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the node kept the connection open ({e}) after: {text}"),
    }
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "answers: {text}");
    assert_eq!(parse_response(&buf).0, 200, "{text}");
}

/// A body the node refused is not read to its end (fork patch 7): dropping a request used to
/// drain the rest of its body without a limit, so a client that kept sending held the thread
/// for as long as it liked. After the 413 the node throws away at most 64 KiB and hangs up.
#[test]
fn a_refused_body_is_not_read_to_its_end() {
    let c = settled_node("drain");
    let mut s = TcpStream::connect(("127.0.0.1", c.nodes[0].port)).unwrap();
    s.set_write_timeout(Some(secs(15))).unwrap();
    s.write_all(b"POST /proxy HTTP/1.1\r\nHost: x\r\nContent-Length: 1073741824\r\n\r\n")
        .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut sent = 0usize;
    // Stops when the node hangs up; 64 MiB at most.
    let end = loop {
        if sent >= 64 << 20 {
            break None;
        }
        match s.write_all(&chunk) {
            Ok(()) => sent += chunk.len(),
            Err(e) => break Some(e),
        }
    };
    println!(
        "node hung up after {} KiB of a refused body: {end:?}",
        sent / 1024
    );
    let e = end.unwrap_or_else(|| panic!("the node read {} MiB of a refused body", sent >> 20));
    assert!(
        matches!(
            e.kind(),
            std::io::ErrorKind::BrokenPipe | std::io::ErrorKind::ConnectionReset
        ),
        "the node stopped reading but did not hang up: {e}"
    );
    // What the socket buffers on both ends take, and the 64 KiB thrown away.
    assert!(sent < 16 << 20, "the node took {} KiB", sent / 1024);
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
    let mut child = Guarded::spawn(
        std::process::Command::new(BIN)
            .args([&port.to_string(), "envnode"])
            .env("BULLY_ID", "77")
            .env("BULLY_CLUSTER", "fromenv")
            .env("BULLY_STARTUP_DELAY", "0")
            .env("BULLY_REGISTRY_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null()),
    )
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

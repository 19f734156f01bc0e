//! Generated hostile input: every route gets 10,000 requests from a fixed seed (random bytes,
//! truncated and mistyped JSON, lying Content-Lengths, oversized heads, unknown methods, ...).
//! The node must answer each with a 4xx (503 when shedding load), never crash or panic, give
//! back every thread, and leave its state exactly as it was. Clients that send half a request
//! and stall, an endless header line, and a node out of descriptors are tried separately.

mod support;

use bully::core::rules::valid_name;
use bully::core::rules::MAX_TERM;
use bully::core::wire::{Announcement, ElectionMessage};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::*;

const SEED: u64 = 0x5EED_B011_0005;
const PER_ROUTE: usize = 10_000;
const CLIENTS: usize = 8;
const GET_ROUTES: [&str; 4] = ["/", "/nodeDetails", "/metrics", "/watch"];
const POST_ROUTES: [&str; 3] = ["/proxy", "/response", "/announce"];

/// One generated request and what the node may answer to it.
struct Case {
    bytes: Vec<u8>,
    /// Shut the sending side after the request (a body shorter than its Content-Length).
    half_close: bool,
    /// A well-formed GET of a GET route with headers under the limit: 200 is right, whatever
    /// junk rides along (a GET changes nothing).
    may_succeed: bool,
    /// An HTTP/2 or /3 request line: 505 is right.
    may_505: bool,
    what: String,
}

/// Would the node take `body` as a valid message for `route`? Such bodies change state by
/// design (that is what a message is for), so the generator never sends one.
fn valid_message(route: &str, body: &[u8]) -> bool {
    match route {
        "/announce" => serde_json::from_slice::<Announcement>(body)
            .is_ok_and(|m| valid_name(&m.coordinator) && m.term <= MAX_TERM),
        "/proxy" | "/response" => serde_json::from_slice::<ElectionMessage>(body)
            .is_ok_and(|m| valid_name(&m.node_name) && m.term <= MAX_TERM),
        _ => false,
    }
}

/// A JSON value of a hostile kind, as text (or raw bytes).
fn value(rng: &mut Rng) -> Vec<u8> {
    let texts: &[&str] = &[
        "0",
        "1",
        "4",
        "9",
        "-1",
        "-0",
        "1.5",
        "1e3",
        "1e400",
        "-1e400",
        "18446744073709551615",
        "18446744073709551616",
        "99999999999999999999999999",
        "9007199254740993",
        "\"5\"",
        "\"node1\"",
        "\"node9\"",
        "\"\"",
        "\"a/../b\"",
        "\"node\\u0000\"",
        "\"\\ud800\"",
        "\"n\\u00f1\"",
        "\"node 1\"",
        "true",
        "null",
        "[]",
        "{}",
        "[1,2]",
        "{\"a\":1}",
    ];
    match rng.below(10) {
        0 => {
            let depth = 1 + rng.below(3000);
            let mut v = "[".repeat(depth).into_bytes();
            v.extend(std::iter::repeat_n(b']', rng.below(depth + 1)));
            v
        }
        1 => {
            let mut v = b"\"".to_vec();
            let n = 1 + rng.below(20);
            v.extend(rng.bytes(n));
            v.push(b'"');
            v
        }
        2 => format!("\"{}\"", "n".repeat(60 + rng.below(10))).into_bytes(),
        _ => rng.pick(texts).as_bytes().to_vec(),
    }
}

/// A body for `route`: random bytes, or a message-like object with hostile fields, perhaps
/// truncated, with NUL bytes or invalid UTF-8 spliced in.
fn body(rng: &mut Rng, route: &str) -> Vec<u8> {
    let keys: &[&str] = if route == "/announce" {
        &["coordinator", "node_id", "term"]
    } else {
        &["node_id", "node_name", "term"]
    };
    let mut b = match rng.below(8) {
        0 => {
            let n = rng.below(200);
            rng.bytes(n)
        }
        1 => Vec::new(),
        2 => value(rng),
        _ => {
            let mut o = b"{".to_vec();
            let fields = rng.below(6);
            for i in 0..fields {
                if i > 0 {
                    o.push(b',');
                }
                let key = if rng.chance(85) {
                    rng.pick(keys).to_string()
                } else {
                    rng.pick(&["extra", "Node_Id", "", "\u{0}", "term "])
                        .to_string()
                };
                o.extend(format!("{key:?}:").into_bytes());
                o.extend(value(rng));
            }
            o.push(b'}');
            o
        }
    };
    if rng.chance(15) && !b.is_empty() {
        b.truncate(rng.below(b.len()));
    }
    if rng.chance(5) {
        let at = rng.below(b.len() + 1);
        b.insert(at, if rng.chance(50) { 0 } else { 0xff });
    }
    if rng.chance(1) {
        b = vec![b' '; 65 * 1024 + rng.below(8 * 1024)];
    }
    b
}

fn method(rng: &mut Rng, right: &str) -> (String, bool) {
    if rng.chance(70) {
        return (right.to_string(), true);
    }
    let m = match rng.below(4) {
        0 => (0..1 + rng.below(12))
            .map(|_| (b'A' + rng.below(26) as u8) as char)
            .collect(),
        1 => {
            let n = 1 + rng.below(8);
            String::from_utf8_lossy(&rng.bytes(n)).replace([' ', '\r', '\n'], "_")
        }
        _ => rng
            .pick(&[
                "GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH", "TRACE", "CONNECT",
                "get", "post", "P0ST", "BREW",
            ])
            .to_string(),
    };
    let ok = m == right;
    (m, ok)
}

fn path(rng: &mut Rng, route: &str) -> (Vec<u8>, bool) {
    // A watch is held for up to 5 s unless it asks for less.
    let exact = if route == "/watch" {
        "/watch?hold_ms=0"
    } else {
        route
    };
    match rng.below(20) {
        0..=15 => (exact.as_bytes().to_vec(), true),
        16 => {
            let sep = if exact.contains('?') { '&' } else { '?' };
            (
                format!("{exact}{sep}{}", rng.below(1000)).into_bytes(),
                true,
            )
        }
        _ => {
            let p: Vec<u8> = match rng.below(9) {
                0 => format!("{route}/").into(),
                1 => format!("{route}x").into(),
                2 => format!("/{route}").into(),
                3 => b"*".to_vec(),
                4 => format!("http://127.0.0.1{route}").into(),
                5 => format!("/{}", "a".repeat(rng.below(3000))).into(),
                6 => [route.as_bytes(), b"\x00"].concat(),
                7 => [route.as_bytes(), &[0xc3, 0x28]].concat(),
                _ => b"/%70roxy".to_vec(),
            };
            (p, false)
        }
    }
}

/// One request for `route`, from its own seed so any failure can be replayed alone.
fn case(route: &str, index: usize) -> Case {
    let mut rng = Rng::new(SEED ^ (index as u64).wrapping_mul(0x9E37_79B9));
    let get_route = GET_ROUTES.contains(&route);
    let (method, method_ok) = method(&mut rng, if get_route { "GET" } else { "POST" });
    let (path, path_ok) = path(&mut rng, route);
    let version = match rng.below(40) {
        0..=33 => "HTTP/1.1",
        34 | 35 => "HTTP/1.0",
        36 => "HTTP/2.0",
        _ => *rng.pick(&["HTTP/1.2", "http/1.1", "HTTP/11", "", "HTTP/1.1 x"]),
    };
    let mut what = format!(
        "#{index} {method} {} {version}",
        String::from_utf8_lossy(&path[..path.len().min(40)])
    );
    let mut head = format!("{method} ").into_bytes();
    head.extend(&path);
    head.extend(format!(" {version}\r\n").into_bytes());
    if rng.chance(90) {
        head.extend(b"Host: 127.0.0.1\r\n");
    }
    match rng.below(5) {
        0..=2 => head.extend(b"Connection: close\r\n"),
        3 => head.extend(b"Connection: keep-alive\r\n"),
        _ => {}
    }
    let mut padded = false;
    let mut half_close = false;
    for _ in 0..rng.below(4) {
        let h: Vec<u8> = match rng.below(12) {
            0 => b"Content-Type: application/json\r\n".to_vec(),
            1 => format!("X-Bully-Timestamp: {}\r\n", rng.next_u64()).into(),
            2 => b"X-Bully-Signature: zz\r\n".to_vec(),
            3 => b"NoColonHere\r\n".to_vec(),
            4 => [b"X-Bin: ".as_slice(), &rng.bytes(8), b"\r\n"].concat(),
            5 => b"Expect: 100-continue\r\n".to_vec(),
            6 => b"Expect: the-unexpected\r\n".to_vec(),
            7 => b"Transfer-Encoding: gzip\r\n".to_vec(),
            8 => {
                half_close = true; // the body then runs to EOF
                b"Connection: upgrade\r\n".to_vec()
            }
            9 => b"X-Null: a\x00b\r\n".to_vec(),
            10 => b" folded continuation\r\n".to_vec(),
            _ => format!("X-Long: {}\r\n", "v".repeat(rng.below(4000))).into(),
        };
        what += &format!(
            " [{}]",
            String::from_utf8_lossy(&h[..h.len().min(24)]).trim()
        );
        head.extend(h);
    }
    if rng.chance(3) {
        let size = if rng.chance(30) { 70 * 1024 } else { 17 * 1024 };
        for i in 0..size / 64 {
            head.extend(format!("X-Pad-{i:05}: {}\r\n", "p".repeat(48)).as_bytes());
        }
        what += &format!(" [{} KiB of headers]", size / 1024);
        padded = true;
    }
    let mut body = body(&mut rng, route);
    if valid_message(route, &body) {
        body.push(b'x'); // trailing characters: no longer a message
    }
    // Framing: how the body's length is told, truthfully or not.
    let (framing, seen): (String, Vec<u8>) = match rng.below(20) {
        0..=12 => (format!("Content-Length: {}\r\n", body.len()), body.clone()),
        13 if !body.is_empty() => {
            let mut n = rng.below(body.len());
            while valid_message(route, &body[..n]) {
                n -= 1;
            }
            what += " [short length]";
            (format!("Content-Length: {n}\r\n"), body[..n].to_vec())
        }
        14 => {
            half_close = true;
            what += " [long length]";
            let n = body.len() + 1 + rng.below(2000);
            (format!("Content-Length: {n}\r\n"), body.clone())
        }
        15 => {
            let n = *rng.pick(&[
                "1000000000000",
                "18446744073709551616",
                "-5",
                "abc",
                "1.5",
                "0x10",
                "5, 6",
            ]);
            what += &format!(" [length {n}]");
            (format!("Content-Length: {n}\r\n"), Vec::new())
        }
        16 | 17 => {
            what += " [chunked]";
            let mut chunked = Vec::new();
            for piece in body.chunks(1 + rng.below(64)) {
                chunked.extend(format!("{:x}\r\n", piece.len()).into_bytes());
                chunked.extend(piece);
                chunked.extend(b"\r\n");
            }
            if rng.chance(70) {
                chunked.extend(b"0\r\n\r\n");
            } else {
                half_close = true;
                chunked.extend(b"zz\r\n");
            }
            body = chunked;
            ("Transfer-Encoding: chunked\r\n".to_string(), Vec::new())
        }
        _ => {
            what += " [no length]";
            (String::new(), Vec::new())
        }
    };
    debug_assert!(!valid_message(route, &seen));
    head.extend(framing.into_bytes());
    head.extend(b"\r\n");
    head.extend(&body);
    // tiny_http ignores a fourth word on the request line ("HTTP/1.1 x"); harmless for a GET.
    let line_ok = method_ok && path_ok && matches!(version, "HTTP/1.1" | "HTTP/1.0" | "HTTP/1.1 x");
    Case {
        bytes: head,
        half_close,
        may_succeed: get_route && line_ok && !padded,
        may_505: version == "HTTP/2.0",
        what,
    }
}

/// The node's answer is acceptable for `c`: a 4xx, a 503, or what `c` allows besides.
fn acceptable(c: &Case, status: u16) -> bool {
    (400..500).contains(&status)
        || status == 503
        || (status == 200 && c.may_succeed)
        || (status == 505 && c.may_505)
}

#[test]
fn ten_thousand_generated_requests_per_route_get_only_4xx_and_change_nothing() {
    let c = settled_node("fuzz");
    let node = &c.nodes[0];
    let port = node.port;
    let before = node.details().unwrap();
    let received_before = node.metric("bully_messages_received_total");
    let elections_before = node.metric("bully_elections_started_total");
    let threads_before = node.steady_threads();
    let rss_before = node.rss_kib();

    let routes: Vec<&str> = GET_ROUTES.iter().chain(&POST_ROUTES).copied().collect();
    let total = routes.len() * PER_ROUTE;
    let next = AtomicUsize::new(0);
    let bad: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let statuses: Mutex<std::collections::BTreeMap<u16, usize>> = Mutex::default();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..CLIENTS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return;
                }
                let route = routes[i % routes.len()];
                let case = case(route, i);
                let (status, answer) = exchange(port, &case.bytes, case.half_close);
                *statuses.lock().unwrap().entry(status).or_default() += 1;
                if !acceptable(&case, status) {
                    let mut bad = bad.lock().unwrap();
                    if bad.len() < 20 {
                        bad.push(format!(
                            "{} -> {status} {}",
                            case.what,
                            &answer[..answer.len().min(120)]
                        ));
                    }
                }
            });
        }
    });
    let took = started.elapsed();
    let statuses = statuses.into_inner().unwrap();
    println!(
        "{total} requests ({PER_ROUTE} per route) in {took:.1?}; answers by status: {statuses:?}"
    );
    let bad = bad.into_inner().unwrap();
    assert!(
        bad.is_empty(),
        "unacceptable answers (first {}):\n{}",
        bad.len(),
        bad.join("\n")
    );
    let mut node = c.nodes.into_iter().next().unwrap();
    assert!(node.is_running(), "node died");
    assert_eq!(node.details().unwrap(), before, "state changed");
    assert_eq!(
        node.metric("bully_messages_received_total"),
        received_before,
        "a generated request was taken as a message"
    );
    assert_eq!(
        node.metric("bully_elections_started_total"),
        elections_before
    );
    let threads = node.await_threads_back_to(threads_before, secs(40));
    let rss_after = node.rss_kib();
    println!("threads {threads_before} -> {threads}; VmRSS {rss_before} KiB -> {rss_after} KiB");
    assert!(
        rss_after < rss_before + 64 * 1024,
        "VmRSS grew from {rss_before} to {rss_after} KiB"
    );
    let log = node.log_text();
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
}

/// Clients that send part of a request and then nothing hold a connection thread for at most
/// the 5 s read timeout; meanwhile the node answers others, and afterwards every thread is back.
#[test]
fn stalled_half_requests_are_dropped_after_the_read_timeout() {
    let c = settled_node("stall");
    let node = &c.nodes[0];
    let port = node.port;
    let baseline = node.steady_threads();
    let halves: &[&[u8]] = &[
        b"",
        b"PO",
        b"POST /proxy HTT",
        b"POST /proxy HTTP/1.1\r\nHost: x\r\n",
        b"POST /proxy HTTP/1.1\r\nContent-Length: 40\r\n\r\n{\"node_id\":",
        b"POST /announce HTTP/1.1\r\nContent-Length: 4000\r\n\r\n{\"coordinator\":\"x\"",
        b"POST /response HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n{\"node",
        b"GET / HTTP/1.1\r\nX-Slow: aaaaaaaa",
    ];
    let started = Instant::now();
    let mut held = Vec::new();
    for i in 0..48 {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.write_all(halves[i % halves.len()]).unwrap();
        held.push(s);
    }
    let (status, body) = send(port, "GET", "/nodeDetails", b"");
    assert_eq!(status, 200, "node answers while 48 clients stall: {body}");
    // Every stalled connection is closed by the node itself (EOF or an error answer).
    for (i, mut s) in held.into_iter().enumerate() {
        s.set_read_timeout(Some(secs(30))).unwrap();
        let mut buf = Vec::new();
        let r = s.read_to_end(&mut buf);
        let (status, _) = parse_response(&buf);
        assert!(
            r.is_ok() || buf.is_empty(),
            "connection {i} not closed by the node: {r:?}"
        );
        assert!(
            status == 0 || (400..500).contains(&status),
            "connection {i}: {status}"
        );
    }
    let held_for = started.elapsed();
    println!("48 stalled clients dropped after {held_for:.1?}");
    // One read timeout (5 s), not one for the request, one for draining its body and one
    // waiting for a next request (15 s before the fork's patches 6 and 7); the rest is margin
    // for a loaded machine.
    assert!(held_for < secs(12), "stalled clients held {held_for:?}");
    node.await_threads_back_to(baseline, secs(30));
    assert_eq!(node.details().unwrap()["coordinator"], "node5");
}

/// tiny_http read request heads into memory without a limit; past the node's `MAX_HEAD`
/// (16 KiB, fork patches 5 and 9) it now answers 431 and hangs up, so an endless header line
/// costs nothing.
#[test]
fn an_endless_header_line_is_cut_off() {
    let c = settled_node("endless");
    let node = &c.nodes[0];
    let rss_before = node.rss_kib();
    let mut s = TcpStream::connect(("127.0.0.1", node.port)).unwrap();
    s.set_write_timeout(Some(secs(10))).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nX-Endless: ").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    // Stops when the node hangs up; 64 MiB at most.
    while sent < 64 << 20 && s.write_all(&chunk).is_ok() {
        sent += chunk.len();
    }
    let mut buf = Vec::new();
    s.set_read_timeout(Some(secs(5))).unwrap();
    let _ = s.read_to_end(&mut buf);
    let status = parse_response(&buf).0;
    println!("node hung up after {} KiB; answer {status}", sent / 1024);
    assert!(
        sent < 16 << 20,
        "node read {} KiB of one header",
        sent / 1024
    );
    assert!(status == 431 || status == 0, "answer {status}");
    assert!(node.rss_kib() < rss_before + 16 * 1024);
    assert_eq!(node.details().unwrap()["coordinator"], "node5");
}

/// Sets the soft limit on open files of process `pid` and returns the one it had.
fn set_open_files(pid: u32, soft: libc::rlim_t) -> libc::rlim_t {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit(2) only reads `new` (or nothing) and writes `old`, both live locals.
    let got = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(got, 0, "prlimit: {}", std::io::Error::last_os_error());
    let new = libc::rlimit {
        rlim_cur: soft,
        rlim_max: old.rlim_max,
    };
    // SAFETY: as above.
    let set = unsafe { libc::prlimit(pid as i32, libc::RLIMIT_NOFILE, &new, std::ptr::null_mut()) };
    assert_eq!(set, 0, "prlimit: {}", std::io::Error::last_os_error());
    old.rlim_cur
}

/// The accept thread used to stop for good on any accept error (fork patch 3). The read
/// timeout bully sets on the listening socket makes an idle accept fail every 5 s, and a node
/// out of descriptors fails every accept: after either the node must still answer.
#[test]
fn the_node_keeps_accepting_after_an_idle_spell_and_running_out_of_descriptors() {
    let c = settled_node("accept");
    let node = &c.nodes[0];
    let pid = node.pid().unwrap();

    // Nothing else connects to a lone node: its accept times out at least once meanwhile.
    std::thread::sleep(bully::http::limits::IO_TIMEOUT + secs(2));
    // Measured now, with no connection open: a descriptor freed below the limit later would
    // let one accept through and leave its `dup` without one.
    let open: std::collections::BTreeSet<libc::rlim_t> =
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect();
    let lowest_free = (0..).find(|fd| !open.contains(fd)).unwrap();
    assert!(lowest_free >= 4, "descriptors {open:?}");
    let (status, body) = send(node.port, "GET", "/", b"");
    assert_eq!(status, 200, "after an idle spell: {body}");

    // A soft limit at the lowest free descriptor: no new one can be had. (At least 4: a
    // `dup` asks for one from 3 up, and a limit of 3 turns its EMFILE into EINVAL.) An accept
    // already waiting holds the descriptor it reserved: its connection gets that one and is
    // dropped, as it has none for its second half (a panic of the accept thread before). The
    // next waits in the backlog while every accept fails.
    let old = set_open_files(pid, lowest_free);
    let connect = || {
        TcpStream::connect(("127.0.0.1", node.port))
            .unwrap_or_else(|e| panic!("the node stopped listening: {e}\n{}", c.log_tails()))
    };
    let mut first = connect();
    let _ = first.write_all(&request("GET", "/", b""));
    let mut waiting = connect();
    waiting
        .write_all(&request("GET", "/nodeDetails", b""))
        .unwrap();
    waiting.set_read_timeout(Some(secs(2))).unwrap();
    let mut byte = [0u8; 1];
    let early = waiting.read(&mut byte);
    set_open_files(pid, old);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the waiting request was answered or dropped without a descriptor to spare: {early:?}"
    );
    waiting.set_read_timeout(Some(secs(15))).unwrap();
    let mut buf = Vec::new();
    let _ = waiting.read_to_end(&mut buf);
    let (status, body) = parse_response(&buf);
    assert_eq!(
        status,
        200,
        "the request that waited while out of descriptors: {body}\n{}",
        c.log_tails()
    );
    first.set_read_timeout(Some(secs(15))).unwrap();
    let mut buf = Vec::new();
    let r = first.read_to_end(&mut buf);
    println!(
        "the first connection while out of descriptors: {:?}, then {r:?}",
        parse_response(&buf)
    );
    assert_eq!(node.details().unwrap()["coordinator"], "node5");
}

/// A term past 2^53 - 1 is refused: a term of u64::MAX made the next win overflow (a panic in
/// a debug build). Messages right at the limit are still taken.
#[test]
fn terms_beyond_the_limit_are_refused() {
    let c = settled_node("terms");
    let port = c.nodes[0].port;
    let before = c.nodes[0].details().unwrap();
    for route in POST_ROUTES {
        for term in [u64::MAX, MAX_TERM + 1] {
            let body = format!(
                r#"{{"node_id":1,"node_name":"node1","coordinator":"node1","term":{term}}}"#
            );
            let (status, answer) = send(port, "POST", route, body.as_bytes());
            assert_eq!(status, 400, "{route} term {term}: {answer}");
            assert!(answer.contains("term must be at most"), "{answer}");
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(c.nodes[0].details().unwrap(), before);
}

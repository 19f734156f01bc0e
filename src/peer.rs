//! The HTTP client nodes use to reach each other: one fresh connection per call, every phase
//! bounded by the timeout, nothing pooled.
//!
//! Hand-written on std's `TcpStream` rather than ureq: the calls are small JSON requests to
//! known peers and need none of ureq's redirects, proxies, pooling or encodings, and ureq (with
//! the `http` crate it brings) was 256 KiB of the 1.64 MiB static aarch64 binary, which has to
//! stay under 1.5 MiB (README "Embedded hosts"). Requests say `HTTP/1.0`, so a server may not
//! answer chunked: the body is `Content-Length` bytes or whatever arrives before the close.

use crate::election::Member;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// Largest answer body read from a peer; anything bigger is not a bully node.
pub const MAX_ANSWER: usize = 64 * 1024;
/// Largest status line plus headers accepted in an answer.
pub const MAX_HEAD: usize = 16 * 1024;

/// A client for many small calls to servers that may be dead, frozen or hostile.
#[derive(Clone)]
pub struct PeerClient {
    timeout: Duration,
}

impl PeerClient {
    /// Connecting, sending and receiving the whole answer each get `timeout` (a frozen peer
    /// still accepts TCP, so only the receive deadline catches it; a peer that drips its answer
    /// byte by byte is cut off at the same deadline).
    pub fn new(timeout: Duration) -> Self {
        PeerClient { timeout }
    }

    pub fn url(address: &str, path: &str) -> String {
        format!("http://{address}{path}")
    }

    /// `POST` a JSON body; returns the status and the parsed answer (if it was JSON).
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        body: &B,
    ) -> Result<(u16, Option<T>), String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let (status, answer) = self.request("POST", address, path, &[], Some(&body))?;
        Ok((status, answer.and_then(|b| serde_json::from_slice(&b).ok())))
    }

    /// `GET` a path; returns the status and the parsed answer (if it was JSON).
    pub fn get<T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
    ) -> Result<(u16, Option<T>), String> {
        let (status, answer) = self.request("GET", address, path, &[], None)?;
        Ok((status, answer.and_then(|b| serde_json::from_slice(&b).ok())))
    }

    /// Sends `method path` to `address` (`HOST:PORT`) with extra `headers` and an optional JSON
    /// `body`. Returns the status and the body, `None` when it was over [`MAX_ANSWER`] or cut
    /// short; `Err` when there was no HTTP answer in time.
    pub fn request(
        &self,
        method: &str,
        address: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Result<(u16, Option<Vec<u8>>), String> {
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            format!("{method} {}: {what}: {e}", Self::url(address, path))
        };
        let mut stream = self.connect(address).map_err(|e| fail("connect", &e))?;
        let mut req = format!("{method} {path} HTTP/1.0\r\nHost: {address}\r\n");
        req += concat!("User-Agent: bully/", env!("CARGO_PKG_VERSION"), "\r\n");
        for (name, value) in headers {
            req += &format!("{name}: {value}\r\n");
        }
        if let Some(b) = body {
            req += &format!(
                "Content-Type: application/json\r\nContent-Length: {}\r\n",
                b.len()
            );
        }
        req += "\r\n";
        let mut req = req.into_bytes();
        req.extend_from_slice(body.unwrap_or_default());
        stream
            .set_write_timeout(Some(self.timeout))
            .and_then(|()| stream.write_all(&req))
            .map_err(|e| fail("send", &e))?;
        read_answer(&mut stream, Instant::now() + self.timeout).map_err(|e| fail("answer", &e))
    }

    /// The first address of `address` that accepts a connection within the timeout.
    fn connect(&self, address: &str) -> std::io::Result<TcpStream> {
        let mut last = None;
        for a in address.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| std::io::Error::new(ErrorKind::NotFound, "no address")))
    }

    /// Is the node at `member` alive? (`GET /` answers 200.)
    pub fn is_alive(&self, member: &Member) -> bool {
        matches!(
            self.get::<serde_json::Value>(&member.address(), "/"),
            Ok((200, _))
        )
    }

    /// Runs `f` on every item in parallel (one scoped thread each) and collects the results in
    /// order: with per-call timeouts, a round takes one timeout however many peers are dead.
    pub fn fan_out<I: Sync, R: Send>(items: &[I], f: impl Fn(&I) -> R + Sync) -> Vec<R> {
        std::thread::scope(|s| {
            let handles: Vec<_> = items.iter().map(|i| s.spawn(|| f(i))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("peer call panicked"))
                .collect()
        })
    }
}

/// Reads one answer until the server closes, `Content-Length` is reached, a limit is passed or
/// `deadline`.
fn read_answer(s: &mut TcpStream, deadline: Instant) -> Result<(u16, Option<Vec<u8>>), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut head: Option<Head> = None;
    let mut chunk = [0u8; 4096];
    loop {
        match &head {
            Some(h) if h.length.is_some_and(|n| buf.len() - h.size >= n) => break,
            Some(h) if buf.len() - h.size > MAX_ANSWER || h.length > Some(MAX_ANSWER) => {
                return Ok((h.status, None))
            }
            None if buf.len() > MAX_HEAD => return Err(format!("head over {MAX_HEAD} bytes")),
            _ => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("timed out".into());
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err("timed out".into())
            }
            Err(e) => return Err(e.to_string()),
        };
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if head.is_none() {
            head = parse_head(&buf)?;
        }
    }
    let h = head.ok_or("closed before a complete answer")?;
    let body = &buf[h.size..];
    let body = match h.length {
        Some(n) => (body.len() >= n).then(|| body[..n].to_vec()),
        None => (body.len() <= MAX_ANSWER).then(|| body.to_vec()),
    };
    Ok((h.status, body))
}

/// The status line and headers of an answer, once complete.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    /// `Content-Length`, when given.
    length: Option<usize>,
    /// Bytes up to and including the blank line.
    size: usize,
}

/// `Ok(None)` while the head is incomplete; `Err` when it is not an HTTP/1.x answer.
fn parse_head(buf: &[u8]) -> Result<Option<Head>, String> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).map_err(|_| "head is not UTF-8".to_string())?;
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let status = first
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split(' ').nth(1))
        .filter(|code| code.len() == 3)
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| format!("not an HTTP/1.x answer: {first:.60}"))?;
    let mut length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                let n = value.trim().parse().map_err(|_| "bad Content-Length")?;
                length = Some(n);
            }
        }
    }
    Ok(Some(Head {
        status,
        length,
        size: end + 4,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn heads_are_parsed_once_complete() {
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Le"), Ok(None));
        let h = parse_head(b"HTTP/1.0 409 Conflict\r\ncontent-length:  7 \r\nX: y\r\n\r\n{\"a\"")
            .unwrap();
        assert_eq!(
            h,
            Some(Head {
                status: 409,
                length: Some(7),
                size: 52
            })
        );
        let h = parse_head(b"HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((h.status, h.length, h.size), (200, None, 19));
        assert!(parse_head(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 20 OK\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").is_err());
    }

    /// A one-shot server on loopback that reads the request and then runs `answer`.
    fn server(answer: impl FnOnce(TcpStream) + Send + 'static) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = l.local_addr().unwrap().to_string();
        std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = [0u8; 4096];
            let _ = s.read(&mut req);
            answer(s);
        });
        address
    }

    fn client() -> PeerClient {
        PeerClient::new(Duration::from_millis(500))
    }

    #[test]
    fn answers_are_read_by_length_or_to_the_close() {
        let a = server(|mut s| {
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 15\r\n\r\n{\"status\":\"ok\"}")
                .unwrap();
            // Keeps the connection open: the client must stop at Content-Length.
            std::thread::sleep(Duration::from_secs(2));
        });
        let t = Instant::now();
        let r = client().get::<serde_json::Value>(&a, "/").unwrap();
        assert_eq!((r.0, r.1.unwrap()["status"].as_str()), (200, Some("ok")));
        assert!(
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );

        let a = server(|mut s| {
            s.write_all(b"HTTP/1.0 503 Busy\r\n\r\n{\"error\":1}")
                .unwrap()
        });
        let r = client().get::<serde_json::Value>(&a, "/").unwrap();
        assert_eq!((r.0, r.1.unwrap()["error"].as_u64()), (503, Some(1)));
    }

    #[test]
    fn short_oversized_and_foreign_answers() {
        let a = server(|mut s| {
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 99\r\n\r\n{}")
                .unwrap()
        });
        let r = client().get::<serde_json::Value>(&a, "/").unwrap();
        assert_eq!((r.0, r.1), (200, None), "cut short");

        let a = server(|mut s| {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\n\r\n");
            let _ = s.write_all(&vec![b' '; MAX_ANSWER + 10]);
        });
        let r = client().get::<serde_json::Value>(&a, "/").unwrap();
        assert_eq!((r.0, r.1), (200, None), "over the limit");

        let a = server(|mut s| s.write_all(b"hello\r\n\r\n").unwrap());
        let e = client().get::<serde_json::Value>(&a, "/").unwrap_err();
        assert!(e.contains("not an HTTP/1.x answer"), "{e}");

        let a = server(|mut s| s.write_all(&[b'x'; MAX_HEAD + 4096]).unwrap());
        let e = client().get::<serde_json::Value>(&a, "/").unwrap_err();
        assert!(e.contains("head over"), "{e}");
    }

    /// A GET to `address` fails with "timed out" well before three timeouts have passed.
    fn assert_cut_off(address: &str) {
        let t = Instant::now();
        let e = client().get::<serde_json::Value>(address, "/").unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        let took = t.elapsed();
        assert!(took < Duration::from_millis(1500), "{took:?}");
    }

    #[test]
    fn frozen_and_dripping_peers_are_cut_off_at_the_deadline() {
        assert_cut_off(&server(|_s| std::thread::sleep(Duration::from_secs(3))));
        assert_cut_off(&server(|mut s| {
            for _ in 0..30 {
                if s.write_all(b"H").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }));
    }

    #[test]
    fn requests_carry_host_headers_and_body() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = l.local_addr().unwrap().to_string();
        let seen = std::thread::spawn(move || {
            let (mut s, _) = l.accept().unwrap();
            let mut req = Vec::new();
            let mut chunk = [0u8; 1024];
            while !String::from_utf8_lossy(&req).ends_with("{\"id\":3}") {
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "{}", String::from_utf8_lossy(&req));
                req.extend_from_slice(&chunk[..n]);
            }
            s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                .unwrap();
            String::from_utf8(req).unwrap()
        });
        let r = client()
            .request(
                "PUT",
                &address,
                "/x?y=1",
                &[("X-Token", "t")],
                Some(b"{\"id\":3}"),
            )
            .unwrap();
        assert_eq!(r, (200, Some(b"{}".to_vec())));
        let req = seen.join().unwrap();
        assert!(req.starts_with("PUT /x?y=1 HTTP/1.0\r\n"), "{req}");
        for h in [
            format!("Host: {address}\r\n"),
            "X-Token: t\r\n".into(),
            "Content-Type: application/json\r\n".into(),
            "Content-Length: 8\r\n".into(),
        ] {
            assert!(req.contains(&h), "{h:?} in {req}");
        }
    }

    #[test]
    fn a_closed_port_is_an_error_at_once() {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let t = Instant::now();
        let e = client()
            .get::<serde_json::Value>(&format!("127.0.0.1:{port}"), "/")
            .unwrap_err();
        assert!(e.contains("connect"), "{e}");
        assert!(
            t.elapsed() < Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
    }
}

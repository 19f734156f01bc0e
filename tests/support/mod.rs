//! Test harness: real `bully` processes on loopback, a private registry directory per test,
//! raw HTTP for hostile input, and polling with deadlines that print what they saw.
#![allow(dead_code)]

pub mod activity;
pub mod chaos;
pub mod consul;
pub mod etcd;
pub mod holders;
pub mod netns;
pub mod soak;
#[cfg(feature = "tls")]
pub mod tls;
pub mod vip_client;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_bully");

/// A port that was free a moment ago. Ports are handed out from a per-process range first so
/// parallel tests in one binary never race for the same one.
pub fn free_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let base = 10000 + (std::process::id() as usize * 97) % 15000;
        let port = (base + n) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A fresh, empty directory for one test; removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "bully-test-{}-{}-{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One running node process.
pub struct NodeProc {
    /// What runs the node: `[BIN]`, or a launcher and its arguments before the node's own, e.g.
    /// `[qemu-aarch64-static, path/to/aarch64/bully]`.
    pub program: Vec<String>,
    pub name: String,
    /// `--id`; 0 starts the node without one, to pick (or keep) its own.
    pub id: u64,
    pub port: u16,
    pub args: Vec<String>,
    pub log: PathBuf,
    child: Option<Child>,
}

impl NodeProc {
    /// Starts `bully PORT NAME --id ID <args>` with output to `log`.
    pub fn start(name: &str, id: u64, port: u16, args: &[String], log: PathBuf) -> NodeProc {
        NodeProc::start_via(&[BIN.into()], name, id, port, args, log)
    }

    /// Like [`NodeProc::start`], with `program` running the node (see [`NodeProc::program`]).
    pub fn start_via(
        program: &[String],
        name: &str,
        id: u64,
        port: u16,
        args: &[String],
        log: PathBuf,
    ) -> NodeProc {
        let mut n = NodeProc {
            program: program.to_vec(),
            name: name.into(),
            id,
            port,
            args: args.to_vec(),
            log,
            child: None,
        };
        n.restart();
        n
    }

    /// (Re)starts the process with the same arguments, appending to the same log.
    pub fn restart(&mut self) {
        self.kill9();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.program[0])
            .args(&self.program[1..])
            .arg(self.port.to_string())
            .arg(&self.name)
            .args(match self.id {
                0 => vec![],
                id => vec!["--id".to_string(), id.to_string()],
            })
            .args(&self.args)
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", self.program));
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid.to_string())
                .status();
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        self.signal("TERM");
        let mut c = self.child.take()?;
        let end = Instant::now() + within;
        while Instant::now() < end {
            if let Ok(Some(s)) = c.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }

    pub fn details(&self) -> Option<Value> {
        get_json(self.port, "/nodeDetails")
    }

    /// The coordinator this node reports, if it answers.
    pub fn coordinator(&self) -> Option<String> {
        self.details()
            .and_then(|d| d["coordinator"].as_str().map(String::from))
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn threads(&self) -> usize {
        self.pid()
            .and_then(|p| std::fs::read_dir(format!("/proc/{p}/task")).ok())
            .map(|d| d.count())
            .unwrap_or(0)
    }
}

impl Drop for NodeProc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A set of nodes sharing one private registry directory and cluster name.
pub struct Cluster {
    pub dir: TempDir,
    pub nodes: Vec<NodeProc>,
    pub common: Vec<String>,
}

impl Cluster {
    /// `common` are extra arguments for every node (timers, registry flags).
    pub fn new(tag: &str, common: &[&str]) -> Cluster {
        let dir = TempDir::new(tag);
        let mut args: Vec<String> = common.iter().map(|s| s.to_string()).collect();
        if !args
            .iter()
            .any(|a| a == "--registry" || a == "--peers" || a == "--registry-dir")
        {
            args.push("--registry-dir".into());
            args.push(dir.path().join("registry").display().to_string());
        }
        // Terms are kept across restarts: private to the test, so no earlier run's terms
        // leak into this one.
        if !args.iter().any(|a| a == "--state-dir") {
            args.push("--state-dir".into());
            args.push(dir.path().join("state").display().to_string());
        }
        Cluster {
            dir,
            nodes: Vec::new(),
            common: args,
        }
    }

    /// Starts node`id` (name `node{id}`) on a free port; returns its index.
    pub fn start(&mut self, id: u64, extra: &[&str]) -> usize {
        let port = free_port();
        self.start_on(id, port, extra)
    }

    pub fn start_on(&mut self, id: u64, port: u16, extra: &[&str]) -> usize {
        self.start_via(&[BIN.into()], id, port, extra)
    }

    /// Starts node`id` on `port` with `program` running it (see [`NodeProc::program`]).
    pub fn start_via(&mut self, program: &[String], id: u64, port: u16, extra: &[&str]) -> usize {
        let name = format!("node{id}");
        let mut args = self.common.clone();
        args.extend(extra.iter().map(|s| s.to_string()));
        let log = self.dir.path().join(format!("{name}.log"));
        self.nodes
            .push(NodeProc::start_via(program, &name, id, port, &args, log));
        self.nodes.len() - 1
    }

    pub fn node(&mut self, name: &str) -> &mut NodeProc {
        self.nodes
            .iter_mut()
            .find(|n| n.name == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// What each running node reports as coordinator.
    pub fn views(&mut self) -> Vec<(String, Option<String>)> {
        self.nodes
            .iter_mut()
            .filter_map(|n| n.is_running().then_some(&*n))
            .map(|n| (n.name.clone(), n.coordinator()))
            .collect()
    }

    /// Starts node`id` for each of `ids` and waits until all name the highest coordinator.
    pub fn settled(tag: &str, common: &[&str], ids: impl IntoIterator<Item = u64>) -> Cluster {
        let mut c = Cluster::new(tag, common);
        let ids: Vec<u64> = ids.into_iter().collect();
        for &id in &ids {
            c.start(id, &[]);
        }
        let highest = ids.iter().max().expect("at least one node");
        c.await_agreement(&format!("node{highest}"), secs(30));
        c
    }

    /// Waits until every running node names `expected` as coordinator; returns how long.
    pub fn await_agreement(&mut self, expected: &str, within: Duration) -> Duration {
        self.await_views(expected, within, |c| c.views())
    }

    /// Waits until each of `names` names `expected` (only they are asked: others may be
    /// frozen); returns how long that took.
    pub fn await_agreement_of(
        &mut self,
        names: &[&str],
        expected: &str,
        within: Duration,
    ) -> Duration {
        self.await_views(expected, within, |c| {
            names
                .iter()
                .map(|n| (n.to_string(), c.node(n).coordinator()))
                .collect()
        })
    }

    fn await_views(
        &mut self,
        expected: &str,
        within: Duration,
        mut views: impl FnMut(&mut Self) -> Vec<(String, Option<String>)>,
    ) -> Duration {
        let started = Instant::now();
        let r = poll(within, || {
            let v = views(self);
            if !v.is_empty() && v.iter().all(|(_, c)| c.as_deref() == Some(expected)) {
                Ok(v)
            } else {
                Err(format!("{v:?}"))
            }
        });
        if let Err(seen) = r {
            panic!(
                "nodes did not agree on {expected} within {within:?}; last seen {seen}\n{}",
                self.log_tails()
            );
        }
        started.elapsed()
    }

    /// The last lines of every node's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out += &format!(
                "--- {} (port {}) ---\n{}\n",
                n.name,
                n.port,
                last_lines(&n.log_text(), 15)
            );
        }
        out
    }
}

/// A lone node (node5) that has elected itself, so its state is settled and comparable.
pub fn settled_node(tag: &str) -> Cluster {
    Cluster::settled(
        tag,
        &["--startup-delay", "0", "--health-interval", "200ms"],
        [5],
    )
}

/// Calls `f` until it returns Ok or `within` runs out; returns the last error on time-out.
pub fn poll<T>(within: Duration, mut f: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let end = Instant::now() + within;
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if Instant::now() >= end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(25)),
        }
    }
}

/// Like [`poll`], but panics with `what` and the last thing seen.
pub fn wait_for<T>(what: &str, within: Duration, f: impl FnMut() -> Result<T, String>) -> T {
    poll(within, f)
        .unwrap_or_else(|seen| panic!("{what}: not within {within:?}; last seen: {seen}"))
}

/// Sends raw bytes to 127.0.0.1:`port` and returns the status code and body of the answer
/// (status 0 when the node closed without answering).
pub fn raw(port: u16, request: &[u8]) -> (u16, String) {
    #[cfg(feature = "tls")]
    if let Some(config) = tls::harness_client() {
        return tls::raw(port, request, &config);
    }
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, "connect failed".into());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

pub fn parse_response(buf: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(buf);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// A well-formed HTTP/1.1 request with a body.
pub fn request(method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

pub fn send(port: u16, method: &str, path: &str, body: &[u8]) -> (u16, String) {
    raw(port, &request(method, path, body))
}

pub fn get_json(port: u16, path: &str) -> Option<Value> {
    let (status, body) = send(port, "GET", path, b"");
    if status != 200 {
        return None;
    }
    serde_json::from_str(&body).ok()
}

/// Seconds as a Duration, for readable deadlines.
pub fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

impl NodeProc {
    /// Resident memory in KiB (`VmRSS`), 0 when the process is gone.
    pub fn rss_kib(&self) -> u64 {
        self.pid()
            .and_then(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// The thread count once it holds still for a moment: idle tiny_http threads linger 5 s.
    pub fn steady_threads(&self) -> usize {
        wait_for("thread count to settle", secs(30), || {
            let a = self.threads();
            std::thread::sleep(Duration::from_millis(300));
            let b = self.threads();
            if a == b {
                Ok(b)
            } else {
                Err(format!("{a} then {b}"))
            }
        })
    }

    /// Thread names with how many of each, for failure messages.
    pub fn thread_names(&self) -> String {
        let mut names = std::collections::BTreeMap::<String, usize>::new();
        if let Some(tasks) = self
            .pid()
            .and_then(|p| std::fs::read_dir(format!("/proc/{p}/task")).ok())
        {
            for t in tasks.flatten() {
                let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
                let wchan = std::fs::read_to_string(t.path().join("wchan")).unwrap_or_default();
                *names
                    .entry(format!("{} ({wchan})", comm.trim()))
                    .or_default() += 1;
            }
        }
        format!("{names:?}")
    }

    /// Waits until the thread count is back to `baseline` (give or take two).
    pub fn await_threads_back_to(&self, baseline: usize, within: Duration) -> usize {
        let what = format!("{}'s threads back to the baseline", self.name);
        wait_for(&what, within, || {
            let n = self.threads();
            if n <= baseline + 2 {
                Ok(n)
            } else {
                Err(format!(
                    "{n} threads, baseline {baseline}: {}",
                    self.thread_names()
                ))
            }
        })
    }

    /// A counter or gauge from `/metrics` (the sum over its label sets).
    pub fn metric(&self, name: &str) -> f64 {
        let (status, body) = send(self.port, "GET", "/metrics", b"");
        assert_eq!(status, 200, "{}: /metrics answered {status}", self.name);
        body.lines()
            .filter(|l| l.split(['{', ' ']).next() == Some(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

/// splitmix64: a seeded generator for reproducible test input, too small to need a crate.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// Sends `request` and reads one answer, skipping `1xx` interim ones; stops at the end of
/// that answer's body rather than waiting for the node to close. With `half_close` the
/// client shuts its sending side after the request, so a lying Content-Length meets EOF at
/// once. Status 0: the node closed (or reset) without an answer.
pub fn exchange(port: u16, request: &[u8], half_close: bool) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, "connect failed".into());
    };
    s.set_read_timeout(Some(secs(15))).unwrap();
    s.set_write_timeout(Some(secs(15))).unwrap();
    let _ = s.write_all(request);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some(answer) = first_final_answer(&buf) {
            return answer;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return parse_response(&buf),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// The first non-1xx answer in `buf` once it is complete (by Content-Length).
fn first_final_answer(buf: &[u8]) -> Option<(u16, String)> {
    let mut rest = buf;
    loop {
        let end = rest.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let head = String::from_utf8_lossy(&rest[..end]).to_string();
        let status: u16 = head.split_whitespace().nth(1)?.parse().ok()?;
        if (100..200).contains(&status) {
            rest = &rest[end..];
            continue;
        }
        let length = content_length(&head);
        let body = rest.get(end..end + length)?;
        return Some((status, String::from_utf8_lossy(body).to_string()));
    }
}

/// The `Content-Length` of an HTTP head (0 when it has none).
pub fn content_length(head: &str) -> usize {
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0)
}

/// The last `n` lines of `text` (a log), for failure messages.
pub fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A process a test started, in a process group of its own, which is SIGKILLed whole when the
/// guard drops: also when the test fails or panics, so nothing it started outlives it (a
/// failed demo test once left its four nodes running for an hour).
pub struct Guarded(pub std::process::Child);

impl Guarded {
    /// Starts `cmd` as the leader of a new process group.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Guarded> {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0).spawn().map(Guarded)
    }
}

impl Guarded {
    /// Its stdout and stderr (piped) and exit status, once it has ended.
    pub fn output(mut self) -> std::io::Result<std::process::Output> {
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        let status = self.0.wait()?;
        if let Some(mut o) = self.0.stdout.take() {
            o.read_to_end(&mut stdout)?;
        }
        if let Some(mut e) = self.0.stderr.take() {
            e.read_to_end(&mut stderr)?;
        }
        Ok(std::process::Output {
            status,
            stdout,
            stderr,
        })
    }
}

impl std::ops::Deref for Guarded {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        // SAFETY: kill with a negative pid signals the process group this child leads.
        unsafe { libc::kill(-(self.0.id() as i32), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

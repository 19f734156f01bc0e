//! The hostile soak: five real nodes under random kill -9, SIGSTOP/SIGCONT, SIGHUP, SIGTERM,
//! restarts, duplicate starts, closed output pipes and bursts of 200 concurrent requests. It
//! must end with one coordinator and nothing leaked (no stale record, thread, socket or
//! process, no orphaned `--exec` child), every node must stop on SIGTERM, and the memory of
//! the node that lives through all of it (node3, never killed) must stay flat after the first
//! minute. `tests/soak.rs` runs it for 60 s; `cargo bench --bench soak` for 10 minutes.
#![allow(dead_code)]

use super::{free_port, get_json, last_lines, poll, Rng, TempDir};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The node that is never killed, stopped or restarted: its memory is watched.
pub const LONG_LIVED: &str = "node3";
const NODES: u64 = 5;
/// Longest a node may take to exit after SIGTERM (no hooks; the exec child dies at once).
const STOP_BOUND: Duration = Duration::from_secs(30);
/// Memory is sampled this often ...
const SAMPLE: Duration = Duration::from_secs(5);
/// ... but not this soon after a burst, while its connection threads still linger (for the
/// 5 s read timeout): a sample measures what stays, not the burst.
const AFTER_BURST: Duration = Duration::from_secs(6);

/// What to run and how.
pub struct Options {
    pub duration: Duration,
    pub seed: u64,
    /// The `bully` binary.
    pub bin: String,
    /// Print every action.
    pub verbose: bool,
}

/// The long-lived node's memory at one moment, in KiB (`/proc/PID/smaps_rollup`, `status`).
#[derive(Clone, Debug, Default)]
pub struct Sample {
    pub at: Duration,
    pub pss: u64,
    /// The anonymous part of PSS (heap, stacks): this node's own.
    pub pss_anon: u64,
    /// The file-backed part (the binary, libc): shared, so it moves as other processes come
    /// and go.
    pub pss_file: u64,
    pub rss: u64,
    pub threads: usize,
}

/// What a soak did and saw.
#[derive(Debug, Default)]
pub struct Report {
    pub actions: BTreeMap<&'static str, usize>,
    /// Samples of the long-lived node's memory.
    pub memory: Vec<Sample>,
    /// Threads and open descriptors of the long-lived node: settled at start, at the end.
    pub threads: (usize, usize),
    pub fds: (usize, usize),
    /// Every broken promise, with what was seen.
    pub failures: Vec<String>,
    pub took: Duration,
}

impl Report {
    /// PSS after the first minute: (at one minute, lowest, highest, last), in KiB.
    pub fn pss_after_first_minute(&self) -> Option<(u64, u64, u64, u64)> {
        self.after_first_minute(|s| s.pss)
    }

    /// Drift after the first minute: the median of `of` over the second minute, and over the
    /// last minute. Medians, as single samples jump with what the node is doing at that
    /// moment and, for PSS, with how many processes share its file pages.
    pub fn drift(&self, of: impl Fn(&Sample) -> u64) -> Option<(u64, u64)> {
        let end = self.memory.last()?.at;
        let median = |from: Duration, to: Duration| {
            let mut v: Vec<u64> = self
                .memory
                .iter()
                .filter(|s| s.at >= from && s.at < to)
                .map(&of)
                .collect();
            v.sort_unstable();
            v.get(v.len() / 2).copied()
        };
        let minute = Duration::from_secs(60);
        if end < minute * 3 {
            return None;
        }
        Some((
            median(minute, minute * 2)?,
            median(end - minute, end + minute)?,
        ))
    }

    /// The PSS after the first minute stays within 10 %: the last minute's median is at most
    /// a tenth above the second minute's. `None` for runs too short to tell (under 3 min).
    pub fn pss_flat(&self) -> Option<bool> {
        self.drift(|s| s.pss)
            .map(|(second, last)| last as f64 <= second as f64 * 1.10)
    }

    /// Like [`Report::pss_after_first_minute`], for any figure of the samples.
    pub fn after_first_minute(&self, of: impl Fn(&Sample) -> u64) -> Option<(u64, u64, u64, u64)> {
        let later: Vec<u64> = self
            .memory
            .iter()
            .filter(|s| s.at >= Duration::from_secs(60))
            .map(of)
            .collect();
        Some((
            *later.first()?,
            *later.iter().min()?,
            *later.iter().max()?,
            *later.last()?,
        ))
    }

    pub fn summary(&self) -> String {
        let mut out = format!("soak: {:.0?}; actions:", self.took);
        for (a, n) in &self.actions {
            out += &format!(" {a} {n},");
        }
        out.pop();
        let first = self.memory.first().map_or(0, |m| m.pss);
        let last = self.memory.last().map_or(0, |m| m.pss);
        out += &format!(
            "\n{LONG_LIVED}: PSS {first} KiB at start, {last} KiB at the end ({} samples); threads \
             {} then {}; descriptors {} then {}",
            self.memory.len(),
            self.threads.0,
            self.threads.1,
            self.fds.0,
            self.fds.1
        );
        for (what, of) in [
            ("PSS", (|s: &Sample| s.pss) as fn(&Sample) -> u64),
            ("PSS anon", |s: &Sample| s.pss_anon),
            ("PSS file", |s: &Sample| s.pss_file),
        ] {
            if let Some((at, lo, hi, end)) = self.after_first_minute(of) {
                out += &format!(
                    "\n{LONG_LIVED} after the first minute: {what} {at} KiB at 1 min, \
                     {lo}..{hi} KiB, {end} KiB at the end"
                );
            }
            if let Some((second, last)) = self.drift(of) {
                out += &format!(
                    "; median {second} KiB in the second minute, {last} KiB in the last \
                     ({:+.1}%)",
                    (last as f64 / second.max(1) as f64 - 1.0) * 100.0
                );
            }
        }
        out
    }
}

/// The output of a node started with a pipe: a thread copies it into the node's log until
/// told to close its end.
struct Reader {
    close: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

struct Node {
    name: String,
    id: u64,
    port: u16,
    log: PathBuf,
    child: Option<Child>,
    reader: Option<Reader>,
    /// The reader closed its end: every line the node writes now fails (EPIPE).
    pipe_closed: bool,
    /// SIGSTOPped, to be continued then.
    cont_at: Option<Instant>,
    started: Instant,
}

impl Node {
    fn running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    fn signal(&self, sig: i32) {
        if let Some(pid) = self.pid() {
            // SAFETY: kill sends a signal to a process this soak started and has not reaped.
            unsafe { libc::kill(pid as i32, sig) };
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn tail(&self) -> String {
        last_lines(&self.log_text(), 20)
    }
}

/// A pipe: the read end as a file, the write end for a child's stdout and stderr.
fn pipe() -> (File, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe fills in two new descriptors, each owned once by what is returned.
    unsafe {
        assert_eq!(libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC), 0);
        (File::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1]))
    }
}

pub struct Soak {
    opts: Options,
    dir: TempDir,
    common: Vec<String>,
    nodes: Vec<Node>,
    rng: Rng,
    report: Report,
    /// In every `--exec` child's command line: finds them, orphaned or not.
    marker: String,
    last_burst: Option<Instant>,
}

impl Soak {
    fn new(opts: Options) -> Soak {
        let dir = TempDir::new("soak");
        // A unique sleep: `exec` leaves only `sleep 9<pid>` in the process table.
        let marker = format!("9{}", std::process::id());
        let common: Vec<String> = [
            "--startup-delay",
            "0",
            "--health-interval",
            "300ms",
            "--timeout",
            "500ms",
            "--exec-grace",
            "2s",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([
            "--registry-dir".into(),
            dir.path().join("registry").display().to_string(),
            "--state-dir".into(),
            dir.path().join("state").display().to_string(),
            "--exec".into(),
            format!("exec sleep {marker}"),
        ])
        .collect();
        let nodes = (1..=NODES)
            .map(|id| Node {
                name: format!("node{id}"),
                id,
                port: free_port(),
                log: dir.path().join(format!("node{id}.log")),
                child: None,
                reader: None,
                pipe_closed: false,
                cont_at: None,
                started: Instant::now(),
            })
            .collect();
        let rng = Rng::new(opts.seed);
        Soak {
            opts,
            dir,
            common,
            nodes,
            rng,
            report: Report::default(),
            marker,
            last_burst: None,
        }
    }

    fn say(&self, what: &str) {
        if self.opts.verbose {
            println!("soak: {what}");
        }
    }

    fn fail(&mut self, what: String) {
        println!("soak: FAILED: {what}");
        self.report.failures.push(what);
    }

    fn count(&mut self, action: &'static str) {
        *self.report.actions.entry(action).or_default() += 1;
    }

    fn registry(&self) -> PathBuf {
        self.dir.path().join("registry/bully")
    }

    /// Starts node `i`, its output into its log, through a pipe half the time (the long-lived
    /// node always into the file, so its log is whole).
    fn start(&mut self, i: usize) {
        let piped = self.nodes[i].name != LONG_LIVED && self.rng.chance(50);
        let n = &mut self.nodes[i];
        let mut cmd = Command::new(&self.opts.bin);
        cmd.arg(n.port.to_string())
            .arg(&n.name)
            .arg("--id")
            .arg(n.id.to_string())
            .args(&self.common)
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null());
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&n.log)
            .unwrap();
        let mut reader = None;
        if piped {
            let (read, write) = pipe();
            cmd.stdout(Stdio::from(write.try_clone().unwrap()))
                .stderr(Stdio::from(write));
            let close = Arc::new(AtomicBool::new(false));
            let flag = close.clone();
            let mut log = log;
            let thread = std::thread::spawn(move || {
                let mut lines = BufReader::new(read);
                let mut line = String::new();
                while !flag.load(Ordering::SeqCst) {
                    line.clear();
                    match lines.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {
                            let _ = log.write_all(line.as_bytes());
                        }
                    }
                }
            });
            reader = Some(Reader { close, thread });
        } else {
            cmd.stdout(log.try_clone().unwrap()).stderr(log);
        }
        n.child = Some(cmd.spawn().expect("start a node"));
        // Reap what came before (a reader whose node is gone ends at EOF).
        if let Some(old) = std::mem::replace(&mut n.reader, reader) {
            old.close.store(true, Ordering::SeqCst);
            drop(old.thread);
        }
        n.pipe_closed = false;
        n.cont_at = None;
        n.started = Instant::now();
    }

    /// The memory of `pid` now.
    pub fn memory_of(pid: u32, at: Duration) -> Option<Sample> {
        let kib = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        };
        let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        Some(Sample {
            at,
            pss: kib(&rollup, "Pss:")?,
            pss_anon: kib(&rollup, "Pss_Anon:").unwrap_or(0),
            pss_file: kib(&rollup, "Pss_File:").unwrap_or(0),
            rss: kib(&status, "VmRSS:")?,
            threads: Self::tasks(pid),
        })
    }

    fn tasks(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, |d| d.count())
    }

    fn fds(pid: u32) -> usize {
        std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
    }

    fn long_lived(&self) -> usize {
        self.nodes
            .iter()
            .position(|n| n.name == LONG_LIVED)
            .unwrap()
    }

    fn sample(&mut self, started: Instant) {
        let Some(pid) = self.nodes[self.long_lived()].pid() else {
            return;
        };
        if let Some(s) = Self::memory_of(pid, started.elapsed()) {
            self.say(&format!(
                "{LONG_LIVED} at {:.0?}: PSS {} KiB (anon {}, file {}), VmRSS {} KiB, {} threads",
                s.at, s.pss, s.pss_anon, s.pss_file, s.rss, s.threads
            ));
            self.report.memory.push(s);
        }
    }

    /// Thread and descriptor counts once they hold still (idle connection threads linger
    /// for the 5 s read timeout).
    fn steady(pid: u32) -> (usize, usize) {
        let mut last = (0, 0);
        let r = poll(Duration::from_secs(30), || {
            let now = (Self::tasks(pid), Self::fds(pid));
            std::thread::sleep(Duration::from_millis(500));
            let again = (Self::tasks(pid), Self::fds(pid));
            last = again;
            if now == again {
                Ok(again)
            } else {
                Err(format!("{now:?} then {again:?}"))
            }
        });
        r.unwrap_or(last)
    }

    /// The `--exec` children of this soak: (pid, its parent, its grandparent).
    fn exec_children(&self) -> Vec<(u32, u32, u32)> {
        let parent = |pid: u32| -> u32 {
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse().ok()
                })
                .unwrap_or(0)
        };
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let is_child =
                args.len() >= 2 && args[0].ends_with(b"sleep") && args[1] == self.marker.as_bytes();
            if is_child {
                let p = parent(pid);
                out.push((pid, p, parent(p)));
            }
        }
        out
    }

    /// Exec children whose supervisor's parent is none of the running nodes.
    fn orphans(&mut self) -> Vec<(u32, u32, u32)> {
        let nodes: Vec<u32> = self
            .nodes
            .iter_mut()
            .filter_map(|n| if n.running() { n.pid() } else { None })
            .collect();
        self.exec_children()
            .into_iter()
            .filter(|(_, _, node)| !nodes.contains(node))
            .collect()
    }

    /// After a kill: the victim's exec child must be gone within moments.
    fn check_orphans(&mut self, after: &str) {
        let gone = poll(Duration::from_secs(5), || {
            let seen = self.orphans();
            if seen.is_empty() {
                Ok(())
            } else {
                Err(format!("{seen:?}"))
            }
        });
        if let Err(left) = gone {
            self.fail(format!("after {after}: orphaned exec children {left}"));
        }
    }

    /// SIGTERM to node `i`: it must exit 0 in time.
    fn terminate(&mut self, i: usize, why: &str) {
        let up = self.nodes[i].started.elapsed();
        self.nodes[i].signal(libc::SIGTERM);
        let end = Instant::now() + STOP_BOUND;
        let status = loop {
            let n = &mut self.nodes[i];
            match n.child.as_mut().map(|c| c.try_wait()) {
                Some(Ok(Some(s))) => break Some(s),
                Some(Ok(None)) if Instant::now() < end => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => break None,
            }
        };
        let n = &mut self.nodes[i];
        match status {
            Some(s) if s.code() == Some(0) => {
                n.child = None;
            }
            other => {
                let tail = n.tail();
                let pipe = n.pipe_closed;
                if let Some(mut c) = n.child.take() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
                let name = n.name.clone();
                self.fail(format!(
                    "{why}: {name} (up {up:.1?}, output pipe closed: {pipe}) did not exit 0 \
                     within {STOP_BOUND:?} of SIGTERM: {other:?}\n{tail}"
                ));
            }
        }
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// A second process under a running node's name: it must exit 1, saying so.
    fn duplicate(&mut self, i: usize) {
        let n = &self.nodes[i];
        let port = free_port();
        let out = Command::new(&self.opts.bin)
            .arg(port.to_string())
            .arg(&n.name)
            .args(["--id", "99"])
            .args(&self.common)
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a duplicate");
        let pid = out.id();
        let mut child = out;
        let ended = poll(Duration::from_secs(20), || {
            child
                .try_wait()
                .ok()
                .flatten()
                .ok_or_else(|| "still running".to_string())
        });
        let name = n.name.clone();
        match ended {
            Ok(s) if s.code() == Some(1) => {
                let out = child.wait_with_output().unwrap();
                let err = String::from_utf8_lossy(&out.stderr);
                if !err.contains(&format!("node name '{name}' is taken")) {
                    self.fail(format!(
                        "a second {name} exited 1 for another reason: {err}"
                    ));
                }
            }
            other => {
                let _ = child.kill();
                let out = child.wait_with_output().unwrap();
                self.fail(format!(
                    "a second {name} (pid {pid}) was not refused: {other:?}\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
    }

    /// 200 requests at once on the long-lived node, as a burst of followers and operators.
    fn burst(&mut self) {
        let port = self.nodes[self.long_lived()].port;
        let answered = std::thread::scope(|s| {
            let handles: Vec<_> = (0..200)
                .map(|k| {
                    s.spawn(move || {
                        let path = match k % 4 {
                            0 => "/metrics",
                            1 => "/",
                            _ => "/nodeDetails",
                        };
                        let (status, _) = super::send(port, "GET", path, b"");
                        status
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .filter(|s| *s == 200 || *s == 503)
                .count()
        });
        if answered < 200 {
            self.fail(format!("a burst of 200 requests got {answered} answers"));
        }
    }

    fn running(&mut self) -> Vec<usize> {
        (0..self.nodes.len())
            .filter(|&i| self.nodes[i].running())
            .collect()
    }

    /// One random fault (or repair).
    fn act(&mut self) {
        let now = Instant::now();
        let running = self.running();
        let down: Vec<usize> = (0..self.nodes.len())
            .filter(|i| !running.contains(i))
            .collect();
        let ll = self.long_lived();
        // Fair game: running, not frozen, not the long-lived node, up for a moment.
        let victims: Vec<usize> = running
            .iter()
            .copied()
            .filter(|&i| i != ll && self.nodes[i].cont_at.is_none())
            .collect();
        let roll = self.rng.below(100);
        match roll {
            0..=14 if victims.len() > 1 => {
                let i = *self.rng.pick(&victims);
                self.say(&format!("kill -9 {}", self.nodes[i].name));
                self.kill9(i);
                self.count("kill -9");
                let what = format!("kill -9 of {}", self.nodes[i].name);
                self.check_orphans(&what);
            }
            15..=24 if !victims.is_empty() => {
                let i = *self.rng.pick(&victims);
                let for_ms = 300 + self.rng.below(2700) as u64;
                self.say(&format!("SIGSTOP {} for {for_ms} ms", self.nodes[i].name));
                self.nodes[i].signal(libc::SIGSTOP);
                self.nodes[i].cont_at = Some(now + Duration::from_millis(for_ms));
                self.count("SIGSTOP");
            }
            25..=39 => {
                let i = *self.rng.pick(&running);
                self.say(&format!("SIGHUP {}", self.nodes[i].name));
                self.nodes[i].signal(libc::SIGHUP);
                self.count("SIGHUP");
            }
            40..=49 if victims.len() > 1 => {
                // Up for a moment: a process signalled before it could install its handlers
                // (within a few ms of exec) dies of the signal, as any process does.
                let up: Vec<usize> = victims
                    .iter()
                    .copied()
                    .filter(|&i| self.nodes[i].started.elapsed() >= Duration::from_secs(1))
                    .collect();
                let Some(&i) = up.get(self.rng.below(up.len().max(1))) else {
                    return;
                };
                self.say(&format!("SIGTERM {}", self.nodes[i].name));
                self.terminate(i, "SIGTERM mid-run");
                self.count("SIGTERM");
            }
            50..=69 if !down.is_empty() => {
                let i = *self.rng.pick(&down);
                self.say(&format!("restart {}", self.nodes[i].name));
                self.start(i);
                self.count("restart");
            }
            70..=79 => {
                let settled: Vec<usize> = running
                    .iter()
                    .copied()
                    .filter(|&i| self.nodes[i].started.elapsed() > Duration::from_secs(2))
                    .collect();
                if let Some(&i) = settled.get(self.rng.below(settled.len().max(1))) {
                    self.say(&format!("duplicate {}", self.nodes[i].name));
                    self.duplicate(i);
                    self.count("duplicate start");
                }
            }
            80..=89 => {
                let open: Vec<usize> = victims
                    .iter()
                    .copied()
                    .filter(|&i| self.nodes[i].reader.is_some() && !self.nodes[i].pipe_closed)
                    .collect();
                if !open.is_empty() {
                    let i = *self.rng.pick(&open);
                    self.say(&format!("close the output pipe of {}", self.nodes[i].name));
                    if let Some(r) = &self.nodes[i].reader {
                        r.close.store(true, Ordering::SeqCst);
                    }
                    // A line to read makes the reader see the flag and close its end.
                    self.nodes[i].signal(libc::SIGHUP);
                    self.nodes[i].pipe_closed = true;
                    self.count("closed pipe");
                }
            }
            94..=99 => {
                self.say("burst of 200 requests");
                self.burst();
                self.last_burst = Some(Instant::now());
                self.count("burst");
            }
            // A fault whose target is missing (all down, none frozen ...): nothing this time.
            _ => {}
        }
    }

    /// Continues the nodes whose freeze is over.
    fn thaw(&mut self, all: bool) {
        for i in 0..self.nodes.len() {
            let due = self.nodes[i]
                .cont_at
                .is_some_and(|t| all || Instant::now() >= t);
            if due {
                self.nodes[i].signal(libc::SIGCONT);
                self.nodes[i].cont_at = None;
            }
        }
    }

    /// Every running node names `expected`, and only it says it leads.
    fn agreement(&mut self) -> Result<(), String> {
        let ports: Vec<(String, u16)> = self
            .nodes
            .iter()
            .map(|n| (n.name.clone(), n.port))
            .collect();
        let views: Vec<(String, Option<serde_json::Value>)> = ports
            .iter()
            .map(|(name, p)| (name.clone(), get_json(*p, "/nodeDetails")))
            .collect();
        let highest = format!("node{NODES}");
        let ok = views.iter().all(|(_, d)| {
            d.as_ref()
                .is_some_and(|d| d["coordinator"] == highest.as_str())
        });
        let leaders: Vec<&str> = views
            .iter()
            .filter(|(_, d)| d.as_ref().is_some_and(|d| d["is_coordinator"] == true))
            .map(|(n, _)| n.as_str())
            .collect();
        if ok && leaders == [highest.as_str()] {
            Ok(())
        } else {
            let short: Vec<String> = views
                .iter()
                .map(|(n, d)| {
                    format!(
                        "{n}: {}",
                        d.as_ref().map_or("no answer".into(), |d| format!(
                            "{} leads={}",
                            d["coordinator"], d["is_coordinator"]
                        ))
                    )
                })
                .collect();
            Err(short.join(", "))
        }
    }

    fn run(mut self) -> Report {
        let started = Instant::now();
        for i in 0..self.nodes.len() {
            self.start(i);
        }
        if let Err(e) = poll(Duration::from_secs(60), || self.agreement()) {
            self.fail(format!("the five never agreed at the start: {e}"));
            return self.finish(started);
        }
        let ll = self.long_lived();
        let pid = self.nodes[ll].pid().unwrap();
        let (threads, fds) = Self::steady(pid);
        self.report.threads.0 = threads;
        self.report.fds.0 = fds;
        self.sample(started);
        let mut next_sample = Instant::now() + SAMPLE;
        while started.elapsed() < self.opts.duration {
            self.thaw(false);
            self.act();
            if !self.nodes[ll].running() {
                self.fail(format!("{LONG_LIVED} died:\n{}", self.nodes[ll].tail()));
                return self.finish(started);
            }
            let settled = self.last_burst.is_none_or(|t| t.elapsed() >= AFTER_BURST);
            if Instant::now() >= next_sample && settled {
                self.sample(started);
                next_sample = Instant::now() + SAMPLE;
            }
            let pause = 200 + self.rng.below(500) as u64;
            std::thread::sleep(Duration::from_millis(pause));
        }
        self.end(started)
    }

    /// Repairs everything, then checks that nothing leaked and that every node stops.
    fn end(mut self, started: Instant) -> Report {
        self.thaw(true);
        for i in 0..self.nodes.len() {
            if !self.nodes[i].running() {
                self.start(i);
            }
        }
        if let Err(e) = poll(Duration::from_secs(60), || self.agreement()) {
            let tails: String = self
                .nodes
                .iter()
                .map(|n| format!("--- {}\n{}\n", n.name, n.tail()))
                .collect();
            self.fail(format!("no single coordinator at the end: {e}\n{tails}"));
        }
        // It holds.
        std::thread::sleep(Duration::from_secs(2));
        if let Err(e) = self.agreement() {
            self.fail(format!("the agreement at the end did not hold: {e}"));
        }
        // Records: exactly the five running nodes', each naming its process.
        let mut files: Vec<String> = std::fs::read_dir(self.registry())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let expected: Vec<String> = (1..=NODES).map(|i| format!("node{i}.json")).collect();
        if files != expected {
            self.fail(format!("registry records {files:?}, expected {expected:?}"));
        }
        for n in &self.nodes {
            let record: serde_json::Value = std::fs::read_to_string(
                self.dir
                    .path()
                    .join(format!("registry/bully/{}.json", n.name)),
            )
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
            let pid = n.pid().unwrap_or(0);
            if record["port"] != n.port || record["process"]["pid"] != pid {
                let what = format!("{}'s record is not its own: {record}", n.name);
                self.report.failures.push(what);
            }
        }
        // The long-lived node: threads and descriptors back where they were.
        let ll = self.long_lived();
        let pid = self.nodes[ll].pid().unwrap_or(0);
        let (threads, fds) = Self::steady(pid);
        self.report.threads.1 = threads;
        self.report.fds.1 = fds;
        if threads > self.report.threads.0 + 2 || fds > self.report.fds.0 + 2 {
            self.fail(format!(
                "{LONG_LIVED} leaked: threads {} then {threads}, descriptors {} then {fds}",
                self.report.threads.0, self.report.fds.0
            ));
        }
        // One exec child, the coordinator's, under its supervisor.
        let coordinator = self.nodes.last().and_then(|n| n.pid()).unwrap_or(0);
        let children = self.exec_children();
        let ok = poll(Duration::from_secs(10), || {
            let c = self.exec_children();
            if c.len() == 1 && c[0].2 == coordinator {
                Ok(())
            } else {
                Err(format!("{c:?}"))
            }
        });
        if let Err(seen) = ok {
            self.fail(format!(
                "exec children {seen} (first look {children:?}), expected one under node{NODES} \
                 (pid {coordinator})"
            ));
        }
        // Every node stops on SIGTERM, closed pipe or not.
        for i in 0..self.nodes.len() {
            self.nodes[i].signal(libc::SIGTERM);
        }
        for i in 0..self.nodes.len() {
            self.terminate(i, "SIGTERM at the end");
        }
        let left = poll(Duration::from_secs(10), || {
            let c = self.exec_children();
            if c.is_empty() {
                Ok(())
            } else {
                Err(format!("{c:?}"))
            }
        });
        if let Err(c) = left {
            self.fail(format!("exec children left after every node stopped: {c}"));
        }
        let files: Vec<_> = std::fs::read_dir(self.registry())
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        if !files.is_empty() {
            self.fail(format!("records left after every node stopped: {files:?}"));
        }
        self.finish(started)
    }

    fn finish(mut self, started: Instant) -> Report {
        for n in &mut self.nodes {
            if let Some(mut c) = n.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
            if let Some(r) = n.reader.take() {
                r.close.store(true, Ordering::SeqCst);
            }
        }
        self.report.took = started.elapsed();
        std::mem::take(&mut self.report)
    }
}

/// Runs a soak and returns what it saw; the caller decides what fails.
pub fn run(opts: Options) -> Report {
    Soak::new(opts).run()
}

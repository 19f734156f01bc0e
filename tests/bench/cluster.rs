//! `make bench`: real `bully` release processes on loopback, each cluster with its own registry
//! directory and cluster name. Measures the time from the last node's start to agreement, the
//! failover after `kill -9` of the coordinator, the messages one failover costs, idle memory and
//! CPU per node, and the binary size; prints markdown tables and writes
//! `target/bench/results.json`.
//!
//! A `[[bench]]` with `harness = false`, run as `cargo bench --bench cluster [-- --quick]`. Run
//! any other way (`cargo test --all-targets` calls it without `--bench`) it does nothing, so no
//! test run starts a 128-node cluster. `--verbose` prints every kill and keeps the nodes'
//! logs in `target/bench/logs/` (`BULLY_LOG_LEVEL=debug` reaches the nodes); `--startup`,
//! `--failover` and `--idle` replace one part of the plan (see [`Plan::overridden`]).
//! `--tls` (`make bench TLS=1`) runs every node with mutual TLS, all presenting one
//! certificate for 127.0.0.1 made by `openssl` at the start, and writes `results-tls.json`.

#[path = "../support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use support::{Cluster, NodeProc, BIN};

/// `--tls`: the `--tls-*` flags every node gets.
static TLS_FLAGS: OnceLock<Vec<String>> = OnceLock::new();

/// The short health interval of the failover runs (the watch also runs at the default 20s).
const HEALTH: &str = "200ms";
/// bully's default health interval.
const DEFAULT_HEALTH: &str = "20s";

/// How the coordinator is taken down in a failover run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `kill -9`: the process dies, its kernel closes its sockets (the watch sees it).
    Kill,
    /// `SIGSTOP`: the process freezes, no socket closes (only time-outs see it).
    Stop,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9",
            Fault::Stop => "SIGSTOP",
        }
    }
}

/// One failover run: nodes, faults, health interval, fault.
type FailoverRun = (usize, usize, &'static str, Fault);
/// Election message kinds in `bully_messages_sent_total`; health checks are shown apart.
const ELECTION_KINDS: [&str; 3] = ["proxy", "response", "announce"];

/// What one run measures: QUICK runs smaller clusters, fewer kills, a shorter idle window.
struct Plan {
    quick: bool,
    startup: Vec<usize>,
    failover: Vec<FailoverRun>,
    idle_window: Duration,
    /// `--idle-nodes N`: only the idle setups of at most N nodes.
    idle_nodes: usize,
    /// `--idle-interval 20s` (or `200ms`): only the idle setups at that health interval.
    idle_interval: Option<&'static str>,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                quick,
                startup: vec![4, 16],
                failover: vec![
                    (4, 10, HEALTH, Fault::Kill),
                    (16, 3, HEALTH, Fault::Kill),
                    (4, 5, DEFAULT_HEALTH, Fault::Kill),
                    (4, 1, DEFAULT_HEALTH, Fault::Stop),
                ],
                idle_window: Duration::from_secs(10),
                idle_nodes: usize::MAX,
                idle_interval: None,
            }
        } else {
            Plan {
                quick,
                startup: vec![4, 16, 64, 128],
                failover: vec![
                    (4, 30, HEALTH, Fault::Kill),
                    (16, 10, HEALTH, Fault::Kill),
                    (64, 20, HEALTH, Fault::Kill),
                    (128, 3, HEALTH, Fault::Kill),
                    (4, 30, DEFAULT_HEALTH, Fault::Kill),
                    (16, 10, DEFAULT_HEALTH, Fault::Kill),
                    (64, 20, DEFAULT_HEALTH, Fault::Kill),
                    (128, 10, DEFAULT_HEALTH, Fault::Kill),
                    (4, 20, DEFAULT_HEALTH, Fault::Stop),
                ],
                idle_window: Duration::from_secs(60),
                idle_nodes: usize::MAX,
                idle_interval: None,
            }
        }
    }

    /// `--startup 4,128`, `--failover 64:3` or `--idle 5` (seconds) replace one part of the
    /// plan, to reproduce a single figure; an empty list (or `--idle 0`) skips that part.
    fn overridden(mut self, args: &[String]) -> Plan {
        let value = |flag: &str| {
            let i = args.iter().position(|a| a == flag)?;
            Some(args.get(i + 1).cloned().unwrap_or_default())
        };
        let list = |v: String| -> Vec<String> {
            v.split(',')
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        };
        let bad = |flag: &str| -> ! { panic!("{flag}: bad value") };
        if let Some(v) = value("--startup") {
            self.startup = list(v)
                .iter()
                .map(|n| n.parse().unwrap_or_else(|_| bad("--startup")))
                .collect();
        }
        if let Some(v) = value("--failover") {
            // N:RUNS[:INTERVAL][:stop], e.g. 128:10, 128:10:20s or 4:3:20s:stop.
            self.failover = list(v)
                .iter()
                .map(|spec| {
                    let parts: Vec<&str> = spec.split(':').collect();
                    let (n, k) = match (parts.first(), parts.get(1)) {
                        (Some(n), Some(k)) => (n.parse(), k.parse()),
                        _ => bad("--failover"),
                    };
                    let interval = match parts.get(2).copied() {
                        None | Some("200ms") => HEALTH,
                        Some("20s") => DEFAULT_HEALTH,
                        Some(_) => bad("--failover (interval 200ms or 20s)"),
                    };
                    let fault = match parts.get(3).copied() {
                        None | Some("kill") => Fault::Kill,
                        Some("stop") => Fault::Stop,
                        Some(_) => bad("--failover (kill or stop)"),
                    };
                    match (n, k) {
                        (Ok(n), Ok(k)) if n >= 2 => (n, k, interval, fault),
                        _ => bad("--failover"),
                    }
                })
                .collect();
        }
        if let Some(v) = value("--idle") {
            self.idle_window = Duration::from_secs(v.parse().unwrap_or_else(|_| bad("--idle")));
        }
        if let Some(v) = value("--idle-nodes") {
            self.idle_nodes = v.parse().unwrap_or_else(|_| bad("--idle-nodes"));
        }
        if let Some(v) = value("--idle-interval") {
            self.idle_interval = Some(match v.as_str() {
                "200ms" => HEALTH,
                "20s" => DEFAULT_HEALTH,
                _ => bad("--idle-interval (200ms or 20s)"),
            });
        }
        self
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("cluster benchmark: run it with `make bench` (or `make bench QUICK=1`)");
        return;
    }
    let plan = Plan::new(args.iter().any(|a| a == "--quick")).overridden(&args);
    let verbose = args.iter().any(|a| a == "--verbose");
    let tls = args.iter().any(|a| a == "--tls");
    // Kept until the end: the certificates live in it.
    #[cfg(feature = "tls")]
    let _certs = tls.then(|| {
        let dir = support::TempDir::new("bench-tls");
        let pki = support::tls::Pki::new(dir.path(), "bench-ca");
        let node = pki.issue("node", "node", None);
        support::tls::use_client(Some(support::tls::client_config(&pki.ca(), Some(&node))));
        let _ = TLS_FLAGS.set(node.flags(&pki.ca()));
        dir
    });
    #[cfg(not(feature = "tls"))]
    if tls {
        eprintln!("cluster benchmark: --tls needs a build with the tls feature");
        std::process::exit(2);
    }
    let began = Instant::now();
    let machine = CpuSample::now();
    let loadavg = loadavg();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

    let startup = plan
        .startup
        .iter()
        .enumerate()
        .map(|(i, &n)| startup(n, &mut rng, verbose.then_some(i)))
        .collect();
    let startup_others = machine.others_share();
    let failovers = plan
        .failover
        .iter()
        .map(|&(n, k, health, fault)| failover(n, k, health, fault, &mut rng, verbose))
        .collect();
    let idle = idle(plan.idle_window, plan.idle_nodes, plan.idle_interval);
    let report = Report {
        quick: plan.quick,
        loadavg,
        others: machine.others_share(),
        seconds: began.elapsed().as_secs_f64(),
        startup,
        startup_others,
        failovers,
        idle,
        binary: std::fs::metadata(BIN).map_or(0, |m| m.len()),
    };
    if tls {
        println!("Every node with mutual TLS (--tls-cert, --tls-key, --tls-ca).\n");
    }
    print!("{}", report.markdown());
    let file = if tls {
        "results-tls.json"
    } else {
        "results.json"
    };
    let path = target_dir().join("bench").join(file);
    let written = std::fs::create_dir_all(path.parent().unwrap())
        .and_then(|_| std::fs::write(&path, report.json().to_string() + "\n"));
    match written {
        Ok(()) => println!("\nJSON: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

/// `target/` of the binary under test (`target/release/bully`).
fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

/// A small deterministic generator: the same start orders and kill phases every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn shuffled(&mut self, n: usize) -> Vec<u64> {
        let mut ids: Vec<u64> = (1..=n as u64).collect();
        for i in (1..ids.len()).rev() {
            ids.swap(i, self.below(i as u64 + 1) as usize);
        }
        ids
    }
}

/// A cluster of `n` nodes, ids 1..=n started in a shuffled order, as fast as processes start.
fn start_cluster(tag: &str, n: usize, flags: &[&str], rng: &mut Rng) -> Cluster {
    let name = format!("bench-{tag}-{n}");
    let mut common = vec!["--cluster", &name, "--startup-delay", "0"];
    common.extend_from_slice(flags);
    common.extend(TLS_FLAGS.get().into_iter().flatten().map(String::as_str));
    let mut c = Cluster::new(&format!("{tag}{n}"), &common);
    for id in rng.shuffled(n) {
        c.start(id, &[]);
    }
    c
}

/// Polls `/nodeDetails` until every node names `expected` as coordinator. Returns the time
/// from `t0` to the slowest node's first answer naming it (a node seen to change its mind
/// starts over). Only nodes not yet there are polled, then one sweep over all confirms.
fn converge(nodes: &[&NodeProc], expected: &str, t0: Instant, within: Duration) -> Duration {
    let mut since: Vec<Option<Duration>> = vec![None; nodes.len()];
    let mut confirm = false;
    loop {
        let mut all = true;
        for (i, n) in nodes.iter().enumerate() {
            if since[i].is_some() && !confirm {
                continue;
            }
            if n.coordinator().as_deref() == Some(expected) {
                since[i].get_or_insert_with(|| t0.elapsed());
            } else {
                since[i] = None;
                all = false;
            }
        }
        if all && confirm {
            return since.iter().flatten().max().copied().unwrap_or_default();
        }
        confirm = all;
        if t0.elapsed() > within {
            disagreement(nodes, expected, within);
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Fails the run naming the nodes that do not name `expected`; their logs are copied to
/// `target/bench/`, since the cluster's directory goes with it.
fn disagreement(nodes: &[&NodeProc], expected: &str, within: Duration) -> ! {
    let kept = target_dir().join("bench");
    let _ = std::fs::create_dir_all(&kept);
    let mut seen = String::new();
    for n in nodes {
        let says = n.coordinator();
        if says.as_deref() != Some(expected) {
            let _ = writeln!(seen, "{} names {says:?}", n.name);
            let _ = std::fs::copy(&n.log, kept.join(format!("{}.log", n.name)));
        }
    }
    panic!(
        "no agreement on {expected} within {within:?}:\n{seen}their logs: {}/node*.log",
        kept.display()
    );
}

/// Copies every node's log to `target/bench/logs/<run>/`.
fn keep_logs(c: &Cluster, run: &str) {
    let dir = target_dir().join("bench").join("logs").join(run);
    let _ = std::fs::create_dir_all(&dir);
    for n in &c.nodes {
        let _ = std::fs::copy(&n.log, dir.join(format!("{}.log", n.name)));
    }
}

fn all(c: &Cluster) -> Vec<&NodeProc> {
    c.nodes.iter().collect()
}

/// How fast `nodes` started at once agree on the highest.
struct Startup {
    nodes: usize,
    /// From the first node's start, seconds.
    from_first: f64,
    /// From the last node's start, seconds.
    from_last: f64,
}

/// `keep`: copy the logs, under this run's number.
fn startup(n: usize, rng: &mut Rng, keep: Option<usize>) -> Startup {
    let first = Instant::now();
    let c = start_cluster("start", n, &[], rng);
    let last = Instant::now();
    let last_ms = ms_of_day(std::time::SystemTime::now());
    let top = format!("node{n}");
    let polled = converge(&all(&c), &top, last, Duration::from_secs(120));
    // By the nodes' own logs, as for failovers: the last node's last change of coordinator
    // (every node's last one names the highest, or the polling would not have ended).
    let logged = all(&c)
        .iter()
        .map(|p| last_learned_at(&p.log_text(), &top).map(|at| ms_between(last_ms, at)))
        .collect::<Option<Vec<i64>>>()
        .and_then(|d| d.into_iter().max())
        .map(|d| Duration::from_millis(d.max(0) as u64));
    let took = logged.unwrap_or(polled);
    if let Some(i) = keep {
        keep_logs(&c, &format!("startup-{n}-{i}"));
    }
    let r = Startup {
        nodes: n,
        from_first: (took + (last - first)).as_secs_f64(),
        from_last: took.as_secs_f64(),
    };
    eprintln!(
        "startup N={n}: {:.0} ms after the last start by the logs, {:.0} ms polled",
        r.from_last * 1e3,
        polled.as_secs_f64() * 1e3
    );
    r
}

/// The samples of one series in a `/metrics` page, keyed by name and labels as printed.
fn scrape(port: u16) -> BTreeMap<String, f64> {
    let (status, body) = support::send(port, "GET", "/metrics", b"");
    assert_eq!(status, 200, "GET /metrics on port {port}: {body}");
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter_map(|(k, v)| Some((k.to_string(), v.parse().ok()?)))
        .collect()
}

fn sent(kind: &str) -> String {
    format!("bully_messages_sent_total{{kind=\"{kind}\"}}")
}

/// What `kills` failovers of an `n`-node cluster measured.
struct Failover {
    nodes: usize,
    health: &'static str,
    fault: Fault,
    /// Kill to every survivor naming the next-highest node, seconds: from the nodes' own
    /// log lines (each logs `Coordinator is: ...` with a millisecond timestamp as it acts on
    /// the change); the polling below only finds out that they all did.
    times: Vec<f64>,
    /// The same as the benchmark's polling of `/nodeDetails` saw it: one request per node
    /// in turn, so at 128 nodes a sweep itself takes tens of milliseconds on this machine.
    polled: Vec<f64>,
    /// The longest election round of each failover (`bully_last_election_seconds` of the
    /// survivors that started one): from its node's detection to knowing the new coordinator.
    elections: Vec<f64>,
    /// Messages sent by all survivors, by kind, summed over the failovers.
    messages: BTreeMap<&'static str, f64>,
    /// CPU seconds all survivors used from the kill to the end of the settle time, summed.
    cpu: f64,
    /// Share of the machine's CPU that other processes used meanwhile.
    others: f64,
}

impl Failover {
    fn per_failover(&self, kind: &str) -> f64 {
        self.messages.get(kind).copied().unwrap_or(0.0) / self.times.len().max(1) as f64
    }

    /// Requests of the classic algorithm when the lowest node detects the failure: each node
    /// messages every higher one, the dead coordinator included (N(N-1)/2), then the winner
    /// announces itself to the N-1 others. Their OK answers ride on the HTTP responses here;
    /// the classic count adds (N-1)(N-2)/2 of them.
    fn bully_bound(&self) -> usize {
        let n = self.nodes;
        n * (n - 1) / 2 + (n - 1)
    }
}

const DAY_MS: u64 = 86_400_000;

/// Milliseconds since midnight UTC, as the nodes' log timestamps give them.
fn ms_of_day(t: std::time::SystemTime) -> u64 {
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    ms % DAY_MS
}

/// The millisecond of the day a log line was written:
/// `2026-12-01T23:34:39.711Z INFO  [...] Coordinator is: node63 (term 9)`.
fn logged_ms(line: &str) -> Option<u64> {
    let time = line.get(11..23)?; // HH:MM:SS.mmm
    let num = |r: std::ops::Range<usize>| time.get(r)?.parse::<u64>().ok();
    Some(((num(0..2)? * 60 + num(3..5)?) * 60 + num(6..8)?) * 1000 + num(9..12)?)
}

/// Milliseconds from `from` to `to` (both of the day); negative when `to` came first.
fn ms_between(from: u64, to: u64) -> i64 {
    let d = ((to + DAY_MS - from) % DAY_MS) as i64;
    if d > (DAY_MS / 2) as i64 {
        d - DAY_MS as i64
    } else {
        d
    }
}

/// When a node's log first names `coordinator` at or after `after` (milliseconds of the day).
fn learned_at(log: &str, coordinator: &str, after: u64) -> Option<u64> {
    let needle = format!("Coordinator is: {coordinator} (");
    log.lines()
        .filter(|l| l.contains(&needle))
        .filter_map(logged_ms)
        .find(|&at| ms_between(after, at) >= 0)
}

/// When a node's log last names a coordinator, if that one is `coordinator`.
fn last_learned_at(log: &str, coordinator: &str) -> Option<u64> {
    let last = log.lines().rfind(|l| l.contains("Coordinator is: "))?;
    if !last.contains(&format!("Coordinator is: {coordinator} (")) {
        return None;
    }
    logged_ms(last)
}

/// Takes the coordinator (node`n`) down `kills` times at a random phase of the health checks,
/// times the failover to node`n-1`, brings node`n` back (restart, or SIGCONT) and waits for it
/// to take over again.
fn failover(
    n: usize,
    kills: usize,
    health: &'static str,
    fault: Fault,
    rng: &mut Rng,
    verbose: bool,
) -> Failover {
    let machine = CpuSample::now();
    let mut c = start_cluster("failover", n, &["--health-interval", health], rng);
    let (top, next) = (format!("node{n}"), format!("node{}", n - 1));
    let settle = Duration::from_millis(400);
    converge(&all(&c), &top, Instant::now(), Duration::from_secs(60));
    std::thread::sleep(settle);
    let mut r = Failover {
        nodes: n,
        health,
        fault,
        times: Vec::new(),
        polled: Vec::new(),
        elections: Vec::new(),
        messages: BTreeMap::new(),
        cpu: 0.0,
        others: 0.0,
    };
    let hz = clock_ticks_per_second();
    for kill in 1..=kills {
        let survivors: Vec<(u16, u32)> = c
            .nodes
            .iter()
            .filter(|p| p.name != top)
            .map(|p| (p.port, p.pid().unwrap_or(0)))
            .collect();
        let before: Vec<_> = survivors.iter().map(|&(p, _)| scrape(p)).collect();
        std::thread::sleep(Duration::from_millis(rng.below(200)));
        let cpu_before: u64 = survivors.iter().map(|&(_, pid)| cpu_ticks(pid)).sum();
        let t0 = Instant::now();
        let t0_ms = ms_of_day(std::time::SystemTime::now());
        match fault {
            Fault::Kill => c.node(&top).kill9(),
            Fault::Stop => c.node(&top).signal("STOP"),
        }
        let alive: Vec<&NodeProc> = c.nodes.iter().filter(|p| p.name != top).collect();
        let took = converge(&alive, &next, t0, Duration::from_secs(90));
        std::thread::sleep(settle);
        let cpu_after: u64 = survivors.iter().map(|&(_, pid)| cpu_ticks(pid)).sum();
        let cpu = cpu_after.saturating_sub(cpu_before) as f64 / hz;
        let after: Vec<_> = survivors.iter().map(|&(p, _)| scrape(p)).collect();
        let (mut longest, mut rounds) = (0.0_f64, 0.0);
        for (b, a) in before.iter().zip(&after) {
            let delta = |k: &str| a.get(k).unwrap_or(&0.0) - b.get(k).unwrap_or(&0.0);
            for kind in ELECTION_KINDS.iter().chain(&["health"]) {
                *r.messages.entry(kind).or_default() += delta(&sent(kind));
            }
            let started = delta("bully_elections_started_total");
            if started > 0.0 {
                rounds += started;
                longest = longest.max(a["bully_last_election_seconds"]);
            }
        }
        let logged = alive
            .iter()
            .map(|p| learned_at(&p.log_text(), &next, t0_ms).map(|at| ms_between(t0_ms, at)))
            .collect::<Option<Vec<i64>>>()
            .and_then(|d| d.into_iter().max())
            .map(|d| d.max(0) as u64);
        r.times
            .push(logged.map_or(took.as_secs_f64(), |ms| ms as f64 / 1e3));
        r.polled.push(took.as_secs_f64());
        if verbose {
            eprintln!(
                "  N={n} kill {kill}: {} ms by the logs, {:.0} ms polled, longest round \
                 {:.0} ms, {rounds} rounds, {cpu:.2} CPU s",
                logged.map_or("?".to_string(), |ms| ms.to_string()),
                took.as_secs_f64() * 1e3,
                longest * 1e3
            );
        }
        r.elections.push(longest);
        r.cpu += cpu;
        match fault {
            Fault::Kill => c.node(&top).restart(),
            Fault::Stop => c.node(&top).signal("CONT"),
        }
        converge(&all(&c), &top, Instant::now(), Duration::from_secs(90));
        std::thread::sleep(settle);
    }
    if verbose {
        keep_logs(&c, &format!("failover-{n}"));
    }
    drop(c);
    r.others = machine.others_share();
    eprintln!(
        "failover N={n} ({}, health interval {health}): p50 {:.0} ms, max {:.0} ms",
        fault.label(),
        percentile(&r.times, 50.0) * 1e3,
        percentile(&r.times, 100.0) * 1e3
    );
    r
}

/// Memory and CPU of the nodes of one idle setup.
struct Idle {
    setup: String,
    nodes: usize,
    pss_kb: f64,
    rss_kb: f64,
    threads: f64,
    fds: f64,
    cpu_s_per_min: f64,
    /// The same from the scheduler's nanosecond counts of the threads alive through the
    /// window (`/proc/PID/task/*/schedstat`): exact where the tick-sampled figure is mostly
    /// rounding, but blind to threads that ended meanwhile (a request's handler).
    cpu_us_per_s: f64,
}

/// Nanoseconds on a CPU of the threads `pid` has now.
fn cpu_ns(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.flatten()
                .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
                .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// utime + stime of a process, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    proc_stat(&format!("/proc/{pid}/stat")).iter().take(2).sum()
}

/// The numbers of a `/proc/PID/stat` line from field 14 (utime) on: utime, stime, cutime,
/// cstime, ...
fn proc_stat(path: &str) -> Vec<u64> {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // The name in parentheses may hold spaces; field 3 starts after the last ')'.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    after_name
        .split_whitespace()
        .skip(11)
        .map(|f| f.parse().unwrap_or(0))
        .collect()
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `kB` field (`Pss:`, `VmRSS:`) of a `/proc/PID/...` file.
fn proc_kb(pid: u32, file: &str, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

fn count_dir(path: String) -> f64 {
    std::fs::read_dir(path).map_or(f64::NAN, |d| d.count() as f64)
}

/// The idle setups, each with its own cluster: (label, nodes, health interval).
const IDLE_SETUPS: [(&str, usize, &str); 5] = [
    ("alone", 1, "20s"),
    ("4-node cluster", 4, "20s"),
    ("4-node cluster", 4, HEALTH),
    ("64-node cluster", 64, "20s"),
    ("64-node cluster", 64, HEALTH),
];

/// All [`IDLE_SETUPS`] (of at most `most` nodes, at health interval `interval` if given) idle
/// at once after they agreed: CPU over `window`, memory at its end, per node.
fn idle(window: Duration, most: usize, interval: Option<&str>) -> IdleRun {
    let mut run = IdleRun {
        window,
        rows: Vec::new(),
        others: 0.0,
    };
    if window.is_zero() {
        return run;
    }
    let machine = CpuSample::now();
    let mut rng = Rng(7);
    let setups: Vec<_> = IDLE_SETUPS
        .iter()
        .filter(|(_, n, h)| *n <= most && interval.is_none_or(|i| i == *h))
        .collect();
    let clusters: Vec<Cluster> = setups
        .iter()
        .map(|(_, n, h)| start_cluster("idle", *n, &["--health-interval", h], &mut rng))
        .collect();
    for (c, (_, n, _)) in clusters.iter().zip(&setups) {
        converge(
            &all(c),
            &format!("node{n}"),
            Instant::now(),
            Duration::from_secs(60),
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    let pids = |c: &Cluster| c.nodes.iter().filter_map(|p| p.pid()).collect::<Vec<_>>();
    let start: Vec<u64> = clusters
        .iter()
        .map(|c| pids(c).into_iter().map(cpu_ticks).sum())
        .collect();
    let start_ns: Vec<u64> = clusters
        .iter()
        .map(|c| pids(c).into_iter().map(cpu_ns).sum())
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(window);
    let minutes = t0.elapsed().as_secs_f64() / 60.0;
    let hz = clock_ticks_per_second();
    for (((c, (setup, n, health)), start), start_ns) in
        clusters.iter().zip(&setups).zip(&start).zip(&start_ns)
    {
        let pids = pids(c);
        let mean = |f: &dyn Fn(u32) -> f64| pids.iter().map(|&p| f(p)).sum::<f64>() / *n as f64;
        let ticks = pids.iter().map(|&p| cpu_ticks(p)).sum::<u64>() - start;
        run.rows.push(Idle {
            setup: format!("{setup}, health interval {health}"),
            nodes: *n,
            pss_kb: mean(&|p| proc_kb(p, "smaps_rollup", "Pss:")),
            rss_kb: mean(&|p| proc_kb(p, "status", "VmRSS:")),
            threads: mean(&|p| count_dir(format!("/proc/{p}/task"))),
            fds: mean(&|p| count_dir(format!("/proc/{p}/fd"))),
            cpu_s_per_min: ticks as f64 / hz / *n as f64 / minutes,
            cpu_us_per_s: pids
                .iter()
                .map(|&p| cpu_ns(p))
                .sum::<u64>()
                .saturating_sub(*start_ns) as f64
                / 1e3
                / *n as f64
                / (minutes * 60.0),
        });
    }
    drop(clusters);
    run.others = machine.others_share();
    run
}

struct IdleRun {
    window: Duration,
    rows: Vec<Idle>,
    /// Share of the machine's CPU that other processes used meanwhile.
    others: f64,
}

/// Nearest-rank percentile (so p99 of fewer than 100 samples is the maximum).
fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * s.len() as f64).ceil().max(1.0) as usize;
    s[rank.min(s.len()) - 1]
}

fn stats(samples: &[f64]) -> Value {
    json!({
        "min": percentile(samples, 0.0),
        "p50": percentile(samples, 50.0),
        "p99": percentile(samples, 99.0),
        "max": percentile(samples, 100.0),
        "samples": samples,
    })
}

/// CPU ticks of the whole machine, and of this process with its reaped children (the nodes).
struct CpuSample {
    total: u64,
    busy: u64,
    ours: u64,
}

impl CpuSample {
    fn now() -> CpuSample {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let all: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or("")
            .split_whitespace()
            .skip(1)
            .map(|f| f.parse().unwrap_or(0))
            .collect();
        let total: u64 = all.iter().sum();
        // idle and iowait are the 4th and 5th fields.
        let busy = total - all.get(3).unwrap_or(&0) - all.get(4).unwrap_or(&0);
        let ours = proc_stat("/proc/self/stat").iter().take(4).sum();
        CpuSample { total, busy, ours }
    }

    /// The share of all CPU time since `self` that processes other than the benchmark and its
    /// nodes used: what else loaded the machine. The nodes must have been reaped.
    fn others_share(&self) -> f64 {
        let now = CpuSample::now();
        let others = (now.busy - self.busy).saturating_sub(now.ours - self.ours);
        others as f64 / (now.total - self.total).max(1) as f64
    }
}

/// The machine's load average (1, 5, 15 minutes).
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn pct(share: f64) -> String {
    format!("{:.0} %", share * 100.0)
}

/// Milliseconds, with a decimal below 10 ms.
fn ms(seconds: f64) -> String {
    let ms = seconds * 1e3;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

struct Report {
    quick: bool,
    loadavg: String,
    /// Share of the machine's CPU that other processes used during the whole run.
    others: f64,
    seconds: f64,
    startup: Vec<Startup>,
    /// Share of the machine's CPU that other processes used during the startup runs.
    startup_others: f64,
    failovers: Vec<Failover>,
    idle: IdleRun,
    binary: u64,
}

impl Report {
    fn markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(
            o,
            "\n## bully benchmark{}: {} CPUs, {:.0} s; other processes used {} of the CPU \
             (load average {} at the start)\n",
            if self.quick { " (QUICK)" } else { "" },
            std::thread::available_parallelism().map_or(0, |n| n.get()),
            self.seconds,
            pct(self.others),
            self.loadavg,
        );
        let _ = writeln!(
            o,
            "Startup (delay 0, all started at once in a shuffled order), until every node names \
             the highest; other processes used {} of the CPU meanwhile.\n",
            pct(self.startup_others)
        );
        o += "| nodes | from the last start | from the first start |\n";
        o += "| ---: | ---: | ---: |\n";
        for s in &self.startup {
            let _ = writeln!(
                o,
                "| {} | {} | {} |",
                s.nodes,
                ms(s.from_last),
                ms(s.from_first)
            );
        }
        let _ = writeln!(
            o,
            "\nFailover: `kill -9` (or SIGSTOP) of the coordinator, until every \
             survivor names the next-highest node, by the survivors' own log timestamps \
             (polled: as the benchmark's sequential polling of `/nodeDetails` saw it, one \
             node after another). Election: the longest round of a failover, \
             from its node's detection to knowing the new coordinator \
             (`bully_last_election_seconds`). Messages: election messages all survivors sent \
             per failover (`/proxy` + `/announce`); bound: the classic Bully worst case, \
             N(N-1)/2 election messages + N-1 announcements (OK answers travel as HTTP \
             responses, the classic count adds (N-1)(N-2)/2). Health checks and CPU: all \
             survivors, from the kill to 400 ms after agreement.\n"
        );
        o += "| nodes | fault | health interval | runs | min | p50 | p99 | max | polled p50 \
              | polled max | election p50 | election p99 | messages | bound | health checks \
              | CPU s | others' CPU |\n";
        o += "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: \
              | ---: | ---: | ---: | ---: | ---: |\n";
        for f in &self.failovers {
            let p = |v: &[f64], q: f64| ms(percentile(v, q));
            let election: f64 = ELECTION_KINDS.iter().map(|k| f.per_failover(k)).sum();
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.0} | {} | {:.0} \
                 | {:.2} | {} |",
                f.nodes,
                f.fault.label(),
                f.health,
                f.times.len(),
                p(&f.times, 0.0),
                p(&f.times, 50.0),
                p(&f.times, 99.0),
                p(&f.times, 100.0),
                p(&f.polled, 50.0),
                p(&f.polled, 100.0),
                p(&f.elections, 50.0),
                p(&f.elections, 99.0),
                election,
                f.bully_bound(),
                f.per_failover("health"),
                f.cpu / f.times.len().max(1) as f64,
                pct(f.others),
            );
        }
        if !self.idle.rows.is_empty() {
            let _ = writeln!(
                o,
                "\nIdle, per node (CPU over {} s scaled to a minute, memory at its end; other \
                 processes used {} of the CPU meanwhile):\n",
                self.idle.window.as_secs(),
                pct(self.idle.others)
            );
            o += "| setup | PSS | VmRSS | threads | fds | CPU s / min | CPU µs / s (schedstat) |\n";
            o += "| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n";
            for i in &self.idle.rows {
                let _ = writeln!(
                    o,
                    "| {} | {:.0} KiB | {:.0} KiB | {:.1} | {:.1} | {:.3} | {:.0} |",
                    i.setup, i.pss_kb, i.rss_kb, i.threads, i.fds, i.cpu_s_per_min, i.cpu_us_per_s
                );
            }
        }
        let _ = writeln!(
            o,
            "\nRelease binary: {} bytes ({:.2} MiB)",
            self.binary,
            self.binary as f64 / 1048576.0
        );
        o
    }

    fn json(&self) -> Value {
        json!({
            "quick": self.quick,
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "loadavg_at_start": self.loadavg,
            "others_cpu_share": self.others,
            "seconds": self.seconds,
            "binary_bytes": self.binary,
            "startup": {
                "others_cpu_share": self.startup_others,
                "runs": self.startup.iter().map(|s| json!({
                    "nodes": s.nodes,
                    "seconds_from_last_start": s.from_last,
                    "seconds_from_first_start": s.from_first,
                })).collect::<Vec<_>>(),
            },
            "failover": self.failovers.iter().map(|f| json!({
                "nodes": f.nodes,
                "kills": f.times.len(),
                "health_interval": f.health,
                "fault": f.fault.label(),
                "seconds": stats(&f.times),
                "polled_seconds": stats(&f.polled),
                "election_seconds": stats(&f.elections),
                "messages_per_failover": ELECTION_KINDS.iter().chain(&["health"])
                    .map(|k| (k.to_string(), json!(f.per_failover(k))))
                    .collect::<serde_json::Map<_, _>>(),
                "bully_bound": f.bully_bound(),
                "cpu_seconds_per_failover": f.cpu / f.times.len().max(1) as f64,
                "others_cpu_share": f.others,
            })).collect::<Vec<_>>(),
            "idle": {
                "window_seconds": self.idle.window.as_secs_f64(),
                "others_cpu_share": self.idle.others,
                "setups": self.idle.rows.iter().map(|i| json!({
                    "setup": i.setup,
                    "nodes": i.nodes,
                    "pss_kib": i.pss_kb,
                    "vmrss_kib": i.rss_kb,
                    "threads": i.threads,
                    "fds": i.fds,
                    "cpu_seconds_per_minute": i.cpu_s_per_min,
                    "cpu_microseconds_per_second_schedstat": i.cpu_us_per_s,
                })).collect::<Vec<_>>(),
            },
        })
    }
}

//! `make bench-quorum`: quorum mode's figures, with the timers of the partition tests
//! (`--lease 1s --health-interval 500ms --timeout 500ms --exec-grace 200ms`, five nodes, an
//! `--exec` worker that writes a timestamp every 20 ms). Failover after `kill -9` and after
//! SIGSTOP of the coordinator on loopback, after a partition that leaves the coordinator in
//! a minority and after a pulled cable on hosts of their own (network namespaces, root); the
//! longest time with no worker while the coordinator's link is one-way (it hears nobody) or
//! slowed to 8 kbit/s; whether a trapping `--exec` script gets its whole grace on SIGTERM;
//! and the Jepsen-style checker of `tests/partitions.rs` in both modes. Prints a markdown table
//! and writes `target/bench/quorum.json`.
//!
//! Each failover is timed from the fault to: the next coordinator saying it leads (a
//! majority acknowledged it, `is_coordinator`), every survivor naming it, and its `--exec`
//! child's first beat (from the worker's file, no polling in it); the old child's last beat
//! shows when it stopped. Run as `cargo bench --bench quorum [-- --quick]`; run any other way
//! (`cargo test --all-targets`) it does nothing.

#[path = "../support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::activity::{self, now_ns};
use support::chaos;
use support::netns::{self, Net, NetCluster};
use support::{Cluster, Rng, TempDir, BIN};

/// What takes node5, the coordinator, away.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    Kill,
    Stop,
    /// {4,5} | {1,2,3}.
    Partition,
    Cable,
    /// node5 hears nobody; the others still get its packets.
    Deaf,
    /// node5's link slowed to 8 kbit/s both ways.
    Slow,
}

impl Fault {
    fn label(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9",
            Fault::Stop => "SIGSTOP",
            Fault::Partition => "partition {4,5} / {1,2,3}",
            Fault::Cable => "pulled cable",
            Fault::Deaf => "one-way: node5 hears nobody",
            Fault::Slow => "node5's link at 8 kbit/s",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Fault::Kill => "kill9",
            Fault::Stop => "sigstop",
            Fault::Partition => "partition",
            Fault::Cable => "cable",
            Fault::Deaf => "deaf",
            Fault::Slow => "slow",
        }
    }

    /// The hosts (by index) that elect without node5, and whom they elect.
    fn side(self) -> (Vec<usize>, usize) {
        match self {
            Fault::Partition => (vec![0, 1, 2], 2),
            _ => (vec![0, 1, 2, 3], 3),
        }
    }

    /// The target of the issue: p99 within 100 ms for kill -9, within lease + 1 s otherwise;
    /// for a one-way fault, a worker again within lease + 1.5 s.
    fn target_ms(self) -> f64 {
        match self {
            Fault::Kill => 100.0,
            Fault::Deaf | Fault::Slow => 2500.0,
            _ => 2000.0,
        }
    }
}

/// Five nodes, reached by host index: on loopback or on hosts of their own.
trait Five {
    fn details(&self, i: usize) -> Option<Value>;
    fn inflict(&mut self, f: Fault);
    fn recover(&mut self, f: Fault);
    /// The ends of the nodes' logs, for failure messages.
    fn tails(&self) -> String;
}

impl Five for Cluster {
    fn details(&self, i: usize) -> Option<Value> {
        self.nodes[i].details()
    }
    fn inflict(&mut self, f: Fault) {
        match f {
            Fault::Kill => self.nodes[4].kill9(),
            _ => self.nodes[4].signal("STOP"),
        }
    }
    fn recover(&mut self, f: Fault) {
        match f {
            Fault::Kill => self.nodes[4].restart(),
            _ => self.nodes[4].signal("CONT"),
        }
    }
    fn tails(&self) -> String {
        self.log_tails()
    }
}

struct Hosts {
    net: Net,
    c: NetCluster,
}

impl Five for Hosts {
    fn details(&self, i: usize) -> Option<Value> {
        self.c.nodes[i].details()
    }
    fn inflict(&mut self, f: Fault) {
        match f {
            Fault::Cable => self.net.pull_cable(4),
            Fault::Deaf => self.net.deafen(4),
            Fault::Slow => self.net.slow_link(4, "8kbit"),
            _ => self.net.partition(&[&[3, 4], &[0, 1, 2]]),
        }
    }
    fn recover(&mut self, f: Fault) {
        match f {
            Fault::Cable => self.net.plug_cable(4),
            Fault::Slow => self.net.fast_link(4),
            _ => self.net.heal(),
        }
    }
    fn tails(&self) -> String {
        self.c.log_tails()
    }
}

/// What the runs of one fault measured, in ms from the fault.
struct Failover {
    fault: Fault,
    where_: &'static str,
    /// The next coordinator says it leads.
    leads: Vec<f64>,
    /// Every survivor names it.
    agreed: Vec<f64>,
    /// Its child's first beat.
    child: Vec<f64>,
    /// The old coordinator's child's last beat.
    last_beat: Vec<f64>,
    /// Time two children worked at once, over all runs (ms).
    overlap_ms: f64,
}

fn names_of(d: &Value) -> (Option<String>, bool) {
    (
        d["coordinator"].as_str().map(String::from),
        d["is_coordinator"] == true,
    )
}

/// Polls until `hosts` all name `expected` and `expected` (host `lead`) says it leads:
/// (when it first said it leads, when all first agreed), from `t0`.
fn settle(
    five: &impl Five,
    hosts: &[usize],
    lead: usize,
    t0: Instant,
    within: Duration,
) -> Result<(Duration, Duration), String> {
    let expected = format!("node{}", lead + 1);
    let mut leads = None;
    let mut agreed = None;
    loop {
        if leads.is_none() && five.details(lead).is_some_and(|d| names_of(&d).1) {
            leads = Some(t0.elapsed());
        }
        let views: Vec<Option<String>> = hosts
            .iter()
            .map(|&i| five.details(i).and_then(|d| names_of(&d).0))
            .collect();
        if views
            .iter()
            .all(|v| v.as_deref() == Some(expected.as_str()))
        {
            agreed.get_or_insert_with(|| t0.elapsed());
        } else {
            agreed = None;
        }
        if let (Some(l), Some(a)) = (leads, agreed) {
            return Ok((l, a));
        }
        if t0.elapsed() > within {
            return Err(format!("{expected}: leads {leads:?}, views {views:?}"));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// The first beat of a child of `node` that started after `since` (ns), waiting for it.
fn first_beat_after(work: &Path, node: &str, since: u128, within: Duration) -> Option<u128> {
    let end = Instant::now() + within;
    while Instant::now() < end {
        let first = activity::intervals(work)
            .into_iter()
            .filter(|i| i.node == node && i.start > since)
            .map(|i| i.start)
            .min();
        if first.is_some() {
            return first;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// `runs` times: take node5 away by `fault`, time the failover, bring it back and wait for
/// it to lead again.
fn failover<F: Five>(
    five: &mut F,
    work: &Path,
    fault: Fault,
    runs: usize,
    rng: &mut Rng,
) -> Failover {
    let all = [0, 1, 2, 3, 4];
    let (side, next) = fault.side();
    let next_name = format!("node{}", next + 1);
    settle(five, &all, 4, Instant::now(), Duration::from_secs(60)).expect("node5 leads at first");
    first_beat_after(work, "node5", 0, Duration::from_secs(20)).expect("node5's child");
    let mut r = Failover {
        fault,
        where_: "",
        leads: vec![],
        agreed: vec![],
        child: vec![],
        last_beat: vec![],
        overlap_ms: 0.0,
    };
    for run in 0..runs {
        std::thread::sleep(Duration::from_millis(200 + rng.below(300) as u64));
        let (t0, t0_ns) = (Instant::now(), now_ns());
        five.inflict(fault);
        let label = fault.label();
        let fail =
            |five: &F, what: String| -> ! { panic!("{label} run {run}: {what}\n{}", five.tails()) };
        let (leads, agreed) = settle(five, &side, next, t0, Duration::from_secs(30))
            .unwrap_or_else(|e| fail(five, format!("no failover: {e}")));
        let child = first_beat_after(work, &next_name, t0_ns, Duration::from_secs(10))
            .unwrap_or_else(|| fail(five, format!("{next_name}'s child never wrote")));
        five.recover(fault);
        let back = Instant::now();
        if let Err(e) = settle(five, &all, 4, back, Duration::from_secs(60)) {
            fail(five, format!("node5 not back: {e}"));
        }
        if first_beat_after(work, "node5", t0_ns, Duration::from_secs(10)).is_none() {
            fail(five, "node5's child not back".into());
        }
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let last = activity::intervals(work)
            .iter()
            .filter(|i| i.node == "node5" && i.start < t0_ns)
            .map(|i| i.end)
            .max()
            .unwrap_or(t0_ns);
        if verbose() {
            eprintln!(
                "  {} run {run}: leads {:.0} ms, all agree {:.0} ms, child {:.0} ms, old \
                 child's last beat {:.0} ms (wall clock at the fault: {t0_ns})",
                fault.label(),
                ms(leads),
                ms(agreed),
                (child as f64 - t0_ns as f64) / 1e6,
                (last as f64 - t0_ns as f64) / 1e6
            );
        }
        r.leads.push(ms(leads));
        r.agreed.push(ms(agreed));
        r.child.push((child as f64 - t0_ns as f64) / 1e6);
        r.last_beat.push((last as f64 - t0_ns as f64) / 1e6);
    }
    r.overlap_ms = activity::overlap_ms(&activity::intervals(work));
    eprintln!(
        "{}: leads p50 {:.0} ms, max {:.0} ms",
        fault.label(),
        percentile(&r.leads, 50.0),
        percentile(&r.leads, 100.0)
    );
    r
}

/// `--verbose`: every run on stderr, and the nodes' logs kept in `target/bench/logs/`.
fn verbose() -> bool {
    std::env::args().any(|a| a == "--verbose")
}

/// Copies the logs under `dir` to `target/bench/logs/quorum-<key>/` when verbose.
fn keep_logs(dir: &Path, key: &str) {
    if !verbose() {
        return;
    }
    let to = target_dir()
        .join("bench")
        .join("logs")
        .join(format!("quorum-{key}"));
    let _ = std::fs::create_dir_all(&to);
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().extension().is_some_and(|x| x == "log") {
            let _ = std::fs::copy(e.path(), to.join(e.file_name()));
        }
    }
}

/// The worker and the common flags of every cluster here.
fn flags(work: &Path) -> Vec<String> {
    let mut f: Vec<String> = chaos::TIMERS.iter().map(|s| s.to_string()).collect();
    f.extend([
        "--quorum".into(),
        "5".into(),
        "--exec".into(),
        activity::worker(work),
    ]);
    f
}

fn loopback(fault: Fault, runs: usize, rng: &mut Rng) -> Failover {
    let work = TempDir::new("benchq-work");
    let f = flags(work.path());
    let refs: Vec<&str> = f.iter().map(String::as_str).collect();
    let mut c = Cluster::new(&format!("benchq-{}", fault.key()), &refs);
    for id in 1..=5 {
        c.start(id, &[]);
    }
    let mut r = failover(&mut c, work.path(), fault, runs, rng);
    keep_logs(c.dir.path(), fault.key());
    r.where_ = "loopback";
    r
}

fn namespaces(fault: Fault, runs: usize, rng: &mut Rng) -> Option<Failover> {
    let net = Net::new(&format!("benchq{}", fault.key()), 5)?;
    let work = TempDir::new("benchq-work");
    let f = flags(work.path());
    let refs: Vec<&str> = f.iter().map(String::as_str).collect();
    let c = NetCluster::start(&net, &format!("benchq-{}", fault.key()), 7300, &refs);
    let mut hosts = Hosts { net, c };
    let mut r = failover(&mut hosts, work.path(), fault, runs, rng);
    keep_logs(hosts.c.dir.path(), fault.key());
    r.where_ = "namespaces";
    Some(r)
}

/// The `--exec` forms a user writes for a script that traps SIGTERM to clean up.
const GRACE_FORMS: [(&str, &str); 3] = [
    ("script", "{s}"),
    ("script; true", "{s}; true"),
    ("exec script", "exec {s}"),
];

/// What the grace runs saw, per form: runs, runs whose cleanup finished with no SIGKILL, and
/// the time from SIGTERM to the node's exit (ms).
struct Grace {
    form: &'static str,
    runs: usize,
    whole: usize,
    exits: Vec<f64>,
}

/// `runs` times per form: a node leads with a trapping `--exec` script (cleanup 2 s,
/// `--exec-grace 5s`) and is stopped with SIGTERM; the cleanup must finish, with no SIGKILL.
fn grace(runs: usize) -> Vec<Grace> {
    let dir = TempDir::new("benchq-grace");
    let d = dir.path().display();
    let script = dir.path().join("slowstop.sh");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\ntrap 'sleep 2; echo cleaned > \"{d}/cleaned\"; exit 0' TERM\n\
             touch \"{d}/ready\"\nwhile :; do sleep 0.05; done\n"
        ),
    )
    .expect("script");
    std::process::Command::new("chmod")
        .arg("+x")
        .arg(&script)
        .status()
        .expect("chmod");
    let (ready, cleaned) = (dir.path().join("ready"), dir.path().join("cleaned"));
    GRACE_FORMS
        .iter()
        .map(|&(form, pattern)| {
            let exec = pattern.replace("{s}", &script.display().to_string());
            let flags = [
                "--startup-delay",
                "0",
                "--exec",
                &exec,
                "--exec-grace",
                "5s",
            ];
            let mut g = Grace {
                form,
                runs,
                whole: 0,
                exits: vec![],
            };
            for run in 0..runs {
                let _ = std::fs::remove_file(&ready);
                let _ = std::fs::remove_file(&cleaned);
                let mut c = Cluster::new("benchq-grace", &flags);
                c.start(1, &[]);
                c.await_agreement("node1", Duration::from_secs(30));
                support::wait_for(
                    "the exec child to be ready",
                    Duration::from_secs(30),
                    || ready.exists().then_some(()).ok_or_else(|| c.log_tails()),
                );
                let asked = Instant::now();
                let status = c.node("node1").terminate(Duration::from_secs(30));
                let took = asked.elapsed().as_secs_f64() * 1e3;
                let log = c.node("node1").log_text();
                let done = std::fs::read_to_string(&cleaned).is_ok_and(|t| t.trim() == "cleaned")
                    && !log.contains("SIGKILL")
                    && status.is_some_and(|s| s.success());
                if verbose() || !done {
                    eprintln!("  grace, {form}, run {run}: whole {done}, exit after {took:.0} ms");
                }
                g.whole += usize::from(done);
                g.exits.push(took);
            }
            eprintln!("grace, {form}: {} of {} whole", g.whole, g.runs);
            g
        })
        .collect()
}

/// How long a link fault lasts in each run.
const LINK_FAULT: Duration = Duration::from_secs(8);

/// What runs of a link fault saw, in ms.
struct Held {
    fault: Fault,
    /// The longest stretch with no worker running, per run.
    gaps: Vec<f64>,
    /// All the time with no worker running, per run.
    idle: Vec<f64>,
    overlap_ms: f64,
}

/// `runs` times: node5 leads, gets a bad link (one-way or slow) for [`LINK_FAULT`], gets it
/// back and leads again. Whoever leads meanwhile, a worker must run: measured from the
/// workers' own files.
fn link_fault(fault: Fault, runs: usize, rng: &mut Rng) -> Option<Held> {
    let net = Net::new(&format!("benchq{}", fault.key()), 5)?;
    let work = TempDir::new("benchq-work");
    let f = flags(work.path());
    let refs: Vec<&str> = f.iter().map(String::as_str).collect();
    let c = NetCluster::start(&net, &format!("benchq-{}", fault.key()), 7300, &refs);
    let mut five = Hosts { net, c };
    let all = [0, 1, 2, 3, 4];
    settle(&five, &all, 4, Instant::now(), Duration::from_secs(60)).expect("node5 leads at first");
    first_beat_after(work.path(), "node5", 0, Duration::from_secs(20)).expect("node5's child");
    let mut h = Held {
        fault,
        gaps: vec![],
        idle: vec![],
        overlap_ms: 0.0,
    };
    for run in 0..runs {
        std::thread::sleep(Duration::from_millis(200 + rng.below(300) as u64));
        let t0 = now_ns();
        five.inflict(fault);
        std::thread::sleep(LINK_FAULT);
        let t1 = now_ns();
        five.recover(fault);
        let back = Instant::now();
        if let Err(e) = settle(&five, &all, 4, back, Duration::from_secs(60)) {
            panic!(
                "{} run {run}: node5 not back: {e}\n{}",
                fault.label(),
                five.tails()
            );
        }
        if first_beat_after(work.path(), "node5", t1, Duration::from_secs(10)).is_none() {
            panic!(
                "{} run {run}: node5's child not back\n{}",
                fault.label(),
                five.tails()
            );
        }
        let intervals = activity::intervals(work.path());
        let gap = activity::longest_gap_ms(&intervals, t0, t1);
        let idle = (t1 - t0) as f64 / 1e6 - activity::covered_ms(&intervals, t0, t1);
        if verbose() {
            eprintln!(
                "  {} run {run}: longest time with no worker {gap:.0} ms, {idle:.0} ms in all \
                 (wall clock at the fault: {t0})",
                fault.label()
            );
        }
        h.gaps.push(gap);
        h.idle.push(idle);
    }
    h.overlap_ms = activity::overlap_ms(&activity::intervals(work.path()));
    keep_logs(five.c.dir.path(), fault.key());
    eprintln!(
        "{}: longest time with no worker p50 {:.0} ms, max {:.0} ms",
        fault.label(),
        percentile(&h.gaps, 50.0),
        percentile(&h.gaps, 100.0)
    );
    Some(h)
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
        "p50": percentile(samples, 50.0),
        "p99": percentile(samples, 99.0),
        "max": percentile(samples, 100.0),
        "samples": samples,
    })
}

fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!(
            "quorum benchmark: run it with `make bench-quorum` (or `make bench-quorum QUICK=1`)"
        );
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        let i = args.iter().position(|a| a == flag)?;
        args.get(i + 1).cloned()
    };
    // `--only kill9,sigstop,partition,cable,deaf,slow,grace,checker` runs those parts; `--runs N` sets the
    // runs of each failover.
    let only = value("--only");
    let wanted = |key: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|k| k == key))
    };
    let runs: Option<usize> = value("--runs").map(|v| v.parse().expect("--runs: a number"));
    let (kills, stops, cuts) = if quick { (10, 3, 3) } else { (40, 10, 10) };
    let (kills, stops, cuts) = match runs {
        Some(n) => (n, n, n),
        None => (kills, stops, cuts),
    };
    // The schedule: at least 120 s of faults (`BULLY_CHAOS_SECS` sets another).
    let chaos_secs = if quick {
        30
    } else if std::env::var("BULLY_CHAOS_SECS").is_ok() {
        chaos::run_secs()
    } else {
        120
    };
    let began = Instant::now();
    let load_before = loadavg();
    let mut rng = Rng::new(0x0b0b_1e18);

    let mut failovers = Vec::new();
    if wanted(Fault::Kill.key()) {
        failovers.push(loopback(Fault::Kill, kills, &mut rng));
    }
    if wanted(Fault::Stop.key()) {
        failovers.push(loopback(Fault::Stop, stops, &mut rng));
    }
    let graces = if wanted("grace") {
        grace(if quick { 3 } else { 10 })
    } else {
        Vec::new()
    };
    let missing = netns::missing();
    let mut chaos_runs = Vec::new();
    let mut held = Vec::new();
    if missing.is_none() {
        for fault in [Fault::Partition, Fault::Cable] {
            if wanted(fault.key()) {
                failovers.extend(namespaces(fault, cuts, &mut rng));
            }
        }
        for fault in [Fault::Deaf, Fault::Slow] {
            if wanted(fault.key()) {
                held.extend(link_fault(fault, stops, &mut rng));
            }
        }
    }
    if missing.is_none() && wanted("checker") {
        let seed = chaos::seed();
        let (q, d) = std::thread::scope(|s| {
            let q = s.spawn(|| chaos::run(true, chaos_secs, seed));
            let d = s.spawn(|| chaos::run(false, chaos_secs, seed));
            (q.join(), d.join())
        });
        for o in [q, d] {
            match o {
                Ok(Some(o)) => {
                    eprintln!("{}", o.summary());
                    chaos_runs.push(o);
                }
                Ok(None) => {}
                Err(p) => std::panic::resume_unwind(p),
            }
        }
    }

    let mut out = String::new();
    out += &format!(
        "## Quorum mode (5 nodes, lease 1s, health interval 500ms, timeout 500ms)\n\n\
         {} s in all; load average {load_before} before, {} after.\n\n",
        began.elapsed().as_secs(),
        loadavg()
    );
    if !failovers.is_empty() {
        out += "| fault | where | runs | leads p50 | leads p99 | all agree p99 | new child p50 | new child p99 | old child's last beat, max | overlap | target (p99) |\n";
        out += "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
    }
    for f in &failovers {
        out += &format!(
            "| {} | {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |\n",
            f.fault.label(),
            f.where_,
            f.leads.len(),
            percentile(&f.leads, 50.0),
            percentile(&f.leads, 99.0),
            percentile(&f.agreed, 99.0),
            percentile(&f.child, 50.0),
            percentile(&f.child, 99.0),
            percentile(&f.last_beat, 100.0),
            f.overlap_ms,
            f.fault.target_ms()
        );
    }
    if !held.is_empty() {
        out += &format!(
            "\n**Link faults**: node5, the coordinator, keeps a bad link for {} s; the other \
             four are a majority connected both ways, so a worker must run again soon.\n\n\
             | fault | runs | longest time with no worker p50 | max | no worker in all, max | overlap | target |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            LINK_FAULT.as_secs()
        );
        for h in &held {
            out += &format!(
                "| {} | {} | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms | {:.0} ms |\n",
                h.fault.label(),
                h.gaps.len(),
                percentile(&h.gaps, 50.0),
                percentile(&h.gaps, 100.0),
                percentile(&h.idle, 100.0),
                h.overlap_ms,
                h.fault.target_ms()
            );
        }
    }
    if !graces.is_empty() {
        out += "\n**Grace**: a node with an `--exec` script that traps SIGTERM and cleans up \
                for 2 s, `--exec-grace 5s`, stopped with SIGTERM.\n\n\
                | `--exec` | runs | cleanup finished, no SIGKILL | exit after p50 | max |\n\
                | --- | ---: | ---: | ---: | ---: |\n";
        for g in &graces {
            out += &format!(
                "| `{}` | {} | {} of {} | {:.0} ms | {:.0} ms |\n",
                g.form,
                g.runs,
                g.whole,
                g.runs,
                percentile(&g.exits, 50.0),
                percentile(&g.exits, 100.0)
            );
        }
    }
    if let Some(why) = &missing {
        out += &format!("\n(no namespace figures: {why})\n");
    }
    if !chaos_runs.is_empty() {
        out += &format!(
            "\n**Checker**: {chaos_secs} s of random faults (seed {:#x}), five hosts.\n\n\
             | mode | faults | frozen at the win | children | two at once | no child running | longest gap | a majority stood | longest with no child then | VIP on two hosts | client unanswered | longest | terms led by two |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
            chaos_runs[0].seed
        );
        for o in &chaos_runs {
            out += &format!(
                "| {} | {} | {} | {} | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {} |\n",
                o.mode(),
                o.faults,
                o.freezes,
                o.intervals.len(),
                o.overlap_ms / 1e3,
                o.idle_ms / 1e3,
                o.longest_gap_ms / 1e3,
                o.majority_ms / 1e3,
                o.majority_wait_ms / 1e3,
                o.vip_overlap_ms / 1e3,
                o.client_idle_ms / 1e3,
                o.client_longest_ms / 1e3,
                o.shared_terms.len()
            );
        }
    }
    print!("{out}");

    let report = json!({
        "quick": quick,
        "seconds": began.elapsed().as_secs_f64(),
        "loadavg_before": load_before,
        "loadavg_after": loadavg(),
        "failovers": failovers.iter().map(|f| json!({
            "fault": f.fault.key(),
            "where": f.where_,
            "runs": f.leads.len(),
            "leads_ms": stats(&f.leads),
            "agreed_ms": stats(&f.agreed),
            "new_child_ms": stats(&f.child),
            "old_child_last_beat_ms": stats(&f.last_beat),
            "overlap_ms": f.overlap_ms,
            "target_p99_ms": f.fault.target_ms(),
        })).collect::<Vec<_>>(),
        "link_faults": held.iter().map(|h| json!({
            "fault": h.fault.key(),
            "runs": h.gaps.len(),
            "fault_seconds": LINK_FAULT.as_secs(),
            "longest_gap_ms": stats(&h.gaps),
            "idle_ms": stats(&h.idle),
            "overlap_ms": h.overlap_ms,
            "target_ms": h.fault.target_ms(),
        })).collect::<Vec<_>>(),
        "grace": graces.iter().map(|g| json!({
            "exec": g.form,
            "runs": g.runs,
            "whole": g.whole,
            "exit_ms": stats(&g.exits),
        })).collect::<Vec<_>>(),
        "checker": chaos_runs.iter().map(|o| json!({
            "mode": o.mode(),
            "seconds": o.secs,
            "seed": o.seed,
            "faults": o.faults,
            "children": o.intervals.len(),
            "overlap_ms": o.overlap_ms,
            "idle_ms": o.idle_ms,
            "longest_gap_ms": o.longest_gap_ms,
            "terms_led_by_two": o.shared_terms.len(),
            "frozen_at_the_win": o.freezes,
            "majority_stood_ms": o.majority_ms,
            "longest_without_child_while_a_majority_stood_ms": o.majority_wait_ms,
            "vip_two_hosts_ms": o.vip_overlap_ms,
            "vip_holdings": o.vip_holdings.len(),
            "client_unanswered_ms": o.client_idle_ms,
            "client_longest_outage_ms": o.client_longest_ms,
            "fault_log": o.fault_log,
        })).collect::<Vec<_>>(),
    });
    let path = target_dir().join("bench").join("quorum.json");
    let written = std::fs::create_dir_all(path.parent().unwrap())
        .and_then(|_| std::fs::write(&path, report.to_string() + "\n"));
    match written {
        Ok(()) => println!("\nJSON: {}", path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", path.display()),
    }
}

//! A Jepsen-style run: five bully nodes, each on a host of its own, each with an `--exec`
//! worker, under random faults from a fixed seed (partitions of every shape, heals,
//! SIGSTOP/SIGCONT, kill -9 and restart, pulled cables); then everything is healed and the
//! cluster must settle on one coordinator. The workers' files tell whether two leaders ever
//! worked at once; samples of every node's `/nodeDetails` tell whether two nodes ever claimed
//! one term. Shared by `tests/partitions.rs` (which asserts) and `make bench-quorum` (which
//! reports the figures).
#![allow(dead_code)]

use super::activity::{self, Interval};
use super::netns::{self, Net, NetCluster, Sampler};
use super::{secs, Rng, TempDir, BIN};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Nodes in a run, node`i+1` on host `i`.
pub const NODES: usize = 5;
/// The length of a default run; `BULLY_CHAOS_SECS` runs longer (or shorter).
pub const DEFAULT_SECS: u64 = 60;
/// The seed of the fault schedule; `BULLY_CHAOS_SEED` picks another.
pub const DEFAULT_SEED: u64 = 0x0b0b_1e18;
/// Short timers, so that failovers happen within a run: a 1 s lease, checks every 500 ms.
pub const TIMERS: [&str; 10] = [
    "--lease",
    "1s",
    "--health-interval",
    "500ms",
    "--startup-delay",
    "1s",
    "--timeout",
    "500ms",
    "--exec-grace",
    "200ms",
];
/// At most this many nodes are frozen, dead or unplugged at once (a partition comes on top).
const MAX_DOWN: usize = 2;
/// The port every node listens on (each host has its own addresses).
const PORT: u16 = 7100;

/// `BULLY_CHAOS_SECS`, else [`DEFAULT_SECS`].
pub fn run_secs() -> u64 {
    std::env::var("BULLY_CHAOS_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECS)
}

/// `BULLY_CHAOS_SEED` (decimal or 0x hex), else [`DEFAULT_SEED`].
pub fn seed() -> u64 {
    std::env::var("BULLY_CHAOS_SEED")
        .ok()
        .and_then(|s| match s.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.parse().ok(),
        })
        .unwrap_or(DEFAULT_SEED)
}

/// One fault (or its undoing), on hosts by index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Cut the links between these groups (replaces any earlier partition).
    Partition(Vec<Vec<usize>>),
    Heal,
    Stop(usize),
    Cont(usize),
    Kill(usize),
    Restart(usize),
    Pull(usize),
    Plug(usize),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |i: &usize| format!("node{}", i + 1);
        match self {
            Fault::Partition(groups) => {
                let g: Vec<String> = groups
                    .iter()
                    .map(|g| {
                        let ids: Vec<String> = g.iter().map(|i| (i + 1).to_string()).collect();
                        format!("{{{}}}", ids.join(","))
                    })
                    .collect();
                write!(f, "partition {}", g.join("|"))
            }
            Fault::Heal => write!(f, "heal"),
            Fault::Stop(i) => write!(f, "SIGSTOP {}", n(i)),
            Fault::Cont(i) => write!(f, "SIGCONT {}", n(i)),
            Fault::Kill(i) => write!(f, "kill -9 {}", n(i)),
            Fault::Restart(i) => write!(f, "restart {}", n(i)),
            Fault::Pull(i) => write!(f, "pull the cable of {}", n(i)),
            Fault::Plug(i) => write!(f, "plug back {}", n(i)),
        }
    }
}

/// How a host is down in the schedule.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Down {
    Stopped,
    Dead,
    Unplugged,
}

/// The faults of a run of `secs` seconds from `seed`, each with when it comes (from the
/// start of the run). Worked out ahead from the seed alone, so a run with and one without
/// `--quorum` go through exactly the same faults.
pub fn schedule(seed: u64, secs: u64) -> Vec<(Duration, Fault)> {
    let mut rng = Rng::new(seed);
    let mut down: [Option<Down>; NODES] = [None; NODES];
    let mut partitioned = false;
    let mut out = Vec::new();
    let mut t = Duration::from_millis(500);
    while t < Duration::from_secs(secs) {
        let downs: Vec<usize> = (0..NODES).filter(|&i| down[i].is_some()).collect();
        let ups: Vec<usize> = (0..NODES).filter(|&i| down[i].is_none()).collect();
        let recover =
            !downs.is_empty() && (downs.len() >= MAX_DOWN && rng.chance(60) || rng.chance(25));
        let fault = if recover {
            let i = *rng.pick(&downs);
            match down[i].take() {
                Some(Down::Stopped) => Fault::Cont(i),
                Some(Down::Dead) => Fault::Restart(i),
                _ => Fault::Plug(i),
            }
        } else if partitioned && rng.chance(50) {
            partitioned = false;
            Fault::Heal
        } else {
            match rng.below(10) {
                k @ 4..=9 if downs.len() < MAX_DOWN => {
                    let i = *rng.pick(&ups);
                    let (d, f) = match k {
                        4 | 5 => (Down::Stopped, Fault::Stop(i)),
                        6 | 7 => (Down::Dead, Fault::Kill(i)),
                        _ => (Down::Unplugged, Fault::Pull(i)),
                    };
                    down[i] = Some(d);
                    f
                }
                _ => {
                    partitioned = true;
                    Fault::Partition(shape(&mut rng))
                }
            }
        };
        out.push((t, fault));
        t += Duration::from_millis(800 + rng.below(2700) as u64);
    }
    out
}

/// A random partition of the hosts into 2 to 4 non-empty groups: 1|4, 2|3, 1|1|3, 1|2|2,
/// 1|1|1|2, in any arrangement of hosts; two groups most often, so that runs also spend
/// time with a majority on one side.
fn shape(rng: &mut Rng) -> Vec<Vec<usize>> {
    let k = match rng.below(10) {
        0..=5 => 2,
        6..=8 => 3,
        _ => 4,
    };
    loop {
        let mut groups = vec![Vec::new(); k];
        for i in 0..NODES {
            groups[rng.below(k)].push(i);
        }
        if groups.iter().all(|g| !g.is_empty()) {
            groups.sort();
            return groups;
        }
    }
}

/// What a run saw.
pub struct Outcome {
    pub quorum: bool,
    pub secs: u64,
    pub seed: u64,
    /// Every `--exec` child's active interval.
    pub intervals: Vec<Interval>,
    /// Pairs of children of different nodes active at once, with how long (ms).
    pub overlaps: Vec<(Interval, Interval, f64)>,
    /// Time during which two or more children were active (ms).
    pub overlap_ms: f64,
    /// The faults' window, from the first fault to the heal (ms).
    pub window_ms: f64,
    /// Time in that window with no child active (ms).
    pub idle_ms: f64,
    pub longest_gap_ms: f64,
    pub faults: usize,
    /// Each fault, with when it was applied (ms from the start of the run).
    pub fault_log: String,
    /// Terms two nodes claimed to lead in (from the samples).
    pub shared_terms: Vec<(u64, Vec<String>)>,
    /// Time during which two nodes' answers both said they led (ms; from the samples, so
    /// within a look or two).
    pub claims_overlap_ms: f64,
    pub samples: usize,
    /// From the heal to one coordinator that every node names.
    pub settled_after: Duration,
    pub coordinator_after: String,
    /// The start of the run (ns of the wall clock): the zero of `fault_log`.
    pub t0: u128,
    pub log_tails: String,
    /// Where the logs and worker files were kept (quorum mode, when something went wrong).
    pub kept: Option<PathBuf>,
}

impl Outcome {
    pub fn mode(&self) -> &'static str {
        if self.quorum {
            "--quorum 5"
        } else {
            "default"
        }
    }

    /// A few lines for the test's output and the benchmark's log.
    pub fn summary(&self) -> String {
        format!(
            "{} mode, {} s of faults from seed {:#x}: {} faults, {} children, overlap {:.0} ms \
             ({} pairs), no child running for {:.1} s of {:.1} s (longest gap {:.1} s); {} \
             samples, terms claimed by two nodes: {:?}, two nodes saying they lead for {:.0} ms; \
             after the heal all named {} within {:.1} s",
            self.mode(),
            self.secs,
            self.seed,
            self.faults,
            self.intervals.len(),
            self.overlap_ms,
            self.overlaps.len(),
            self.idle_ms / 1e3,
            self.window_ms / 1e3,
            self.longest_gap_ms / 1e3,
            self.samples,
            self.shared_terms,
            self.claims_overlap_ms,
            self.coordinator_after,
            self.settled_after.as_secs_f64()
        )
    }

    /// Everything needed to tell what happened: the overlaps, every child, the faults, the
    /// ends of the logs.
    pub fn report(&self) -> String {
        let overlaps: Vec<String> = self
            .overlaps
            .iter()
            .map(|(a, b, ms)| {
                format!(
                    "{} ({}) and {} ({}) for {ms:.1} ms from {:.0} ms",
                    a.node,
                    a.file.display(),
                    b.node,
                    b.file.display(),
                    (b.start as f64 - self.t0 as f64) / 1e6
                )
            })
            .collect();
        format!(
            "{}\noverlaps:\n{}\nchildren (ms from the start):\n{}\nfaults (ms from the \
             start):\n{}\nlogs kept in: {}\n{}",
            self.summary(),
            overlaps.join("\n"),
            activity::describe_since(&self.intervals, self.t0),
            self.fault_log,
            self.kept
                .as_ref()
                .map_or("(not kept)".into(), |p| p.display().to_string()),
            self.log_tails
        )
    }
}

/// The hosts' nodes' names, by host.
pub fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("node{i}")).collect()
}

/// Applies `fault` to the cluster on `net`.
pub fn apply(net: &Net, c: &mut NetCluster, fault: &Fault) {
    match fault {
        Fault::Partition(groups) => {
            let g: Vec<&[usize]> = groups.iter().map(Vec::as_slice).collect();
            net.partition(&g);
        }
        Fault::Heal => net.heal(),
        Fault::Stop(i) => c.node(*i).proc.signal("STOP"),
        Fault::Cont(i) => c.node(*i).proc.signal("CONT"),
        Fault::Kill(i) => c.node(*i).proc.kill9(),
        Fault::Restart(i) => c.node(*i).proc.restart(),
        Fault::Pull(i) => net.pull_cable(*i),
        Fault::Plug(i) => net.plug_cable(*i),
    }
}

/// Runs the faults of `schedule(seed, length)` (seconds) on five fresh hosts, with `--quorum 5` or
/// without; None (after one line) when this machine cannot make hosts.
pub fn run(quorum: bool, length: u64, seed: u64) -> Option<Outcome> {
    let tag = if quorum { "chaosq" } else { "chaosd" };
    let net = Net::new(tag, NODES)?;
    let work = TempDir::new(&format!("{tag}-work"));
    let worker = activity::worker(work.path());
    let size = NODES.to_string();
    let mut common: Vec<&str> = TIMERS.to_vec();
    if quorum {
        common.extend(["--quorum", &size]);
    }
    common.extend(["--exec", &worker]);
    let mut c = NetCluster::start_each(&net, tag, BIN, PORT, &common, |_| Vec::new());
    let all: Vec<usize> = (0..NODES).collect();
    let top = format!("node{NODES}");
    c.await_agreement(&all, &top, secs(60));
    super::wait_for("the first coordinator's child", secs(20), || {
        (!activity::intervals(work.path()).is_empty())
            .then_some(())
            .ok_or_else(|| "no child has written yet".to_string())
    });

    let sampler = Sampler::start(&c, Duration::from_millis(40));
    let plan = schedule(seed, length);
    let t0 = activity::now_ns();
    let start = Instant::now();
    let mut log = Vec::new();
    let mut stopped = [false; NODES];
    let mut dead = [false; NODES];
    let mut unplugged = [false; NODES];
    for (at, fault) in &plan {
        if let Some(wait) = at.checked_sub(start.elapsed()) {
            std::thread::sleep(wait);
        }
        let applied = (activity::now_ns() - t0) as f64 / 1e6;
        apply(&net, &mut c, fault);
        match *fault {
            Fault::Stop(i) | Fault::Cont(i) => stopped[i] = matches!(fault, Fault::Stop(_)),
            Fault::Kill(i) | Fault::Restart(i) => dead[i] = matches!(fault, Fault::Kill(_)),
            Fault::Pull(i) | Fault::Plug(i) => unplugged[i] = matches!(fault, Fault::Pull(_)),
            _ => {}
        }
        log.push(format!("{applied:8.0} {fault}"));
    }
    if let Some(wait) = Duration::from_secs(length).checked_sub(start.elapsed()) {
        std::thread::sleep(wait);
    }

    // Heal everything, then one coordinator for all.
    let healed = activity::now_ns();
    let heal_start = Instant::now();
    net.heal();
    for i in 0..NODES {
        if stopped[i] {
            c.node(i).proc.signal("CONT");
        }
        if dead[i] {
            c.node(i).proc.restart();
        }
        if unplugged[i] {
            net.plug_cable(i);
        }
    }
    log.push(format!(
        "{:8.0} heal everything",
        (healed - t0) as f64 / 1e6
    ));
    let settled = c.sole_coordinator_since(&all, &top, heal_start, secs(90));
    let samples = sampler.finish();
    let log_tails = c.log_tails();
    for n in &mut c.nodes {
        n.proc.kill9();
    }
    activity::await_still(work.path(), secs(10));

    let intervals = activity::intervals(work.path());
    let overlaps = activity::overlaps(&intervals);
    let names = names(NODES);
    let shared_terms = netns::shared_terms(&samples, &names);
    let mut out = Outcome {
        quorum,
        secs: length,
        seed,
        overlap_ms: activity::overlap_ms(&intervals),
        window_ms: (healed - t0) as f64 / 1e6,
        idle_ms: (healed - t0) as f64 / 1e6 - activity::covered_ms(&intervals, t0, healed),
        longest_gap_ms: activity::longest_gap_ms(&intervals, t0, healed),
        faults: plan.len(),
        fault_log: log.join("\n"),
        claims_overlap_ms: activity::overlap_ms(&netns::claims(&samples, &names)),
        samples: samples.len(),
        shared_terms,
        settled_after: settled.clone().unwrap_or(heal_start.elapsed()),
        coordinator_after: match &settled {
            Ok(_) => top.clone(),
            Err(seen) => format!("no single coordinator: {seen}"),
        },
        intervals,
        overlaps,
        t0,
        log_tails,
        kept: None,
    };
    let bad = !out.overlaps.is_empty() || !out.shared_terms.is_empty() || settled.is_err();
    if quorum && bad {
        out.kept = keep(&[c.dir.path(), work.path()], tag);
    }
    Some(out)
}

/// Copies what a failed run leaves (logs, worker files) out of its temporary directories,
/// which go when the run ends; returns where.
fn keep(dirs: &[&Path], tag: &str) -> Option<PathBuf> {
    let to = std::env::temp_dir().join(format!("bully-{tag}-kept-{}", std::process::id()));
    for d in dirs {
        let into = to.join(d.file_name()?);
        std::fs::create_dir_all(&into).ok()?;
        for e in std::fs::read_dir(d).ok()?.flatten() {
            if e.path().is_file() {
                let _ = std::fs::copy(e.path(), into.join(e.file_name()));
            }
        }
    }
    Some(to)
}

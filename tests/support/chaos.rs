//! A Jepsen-style run: five bully nodes, each on a host of its own, each with an `--exec`
//! worker and `--vip`, under random faults from a fixed seed (partitions of every shape,
//! heals, SIGSTOP/SIGCONT, kill -9 and restart, pulled cables, and a node frozen at the moment
//! it wins: by its `--on-elected` hook or by its child's first instruction); then everything
//! is healed and the cluster must settle on one coordinator. The workers' files tell whether
//! two leaders ever worked at once; samples of every node's `/nodeDetails` tell whether two
//! nodes ever claimed one term; every host is looked at every 5 ms for the VIP (two holders at
//! once?), and a client on a host of its own connects to the VIP every 10 ms (how long did
//! nobody answer?). Shared by `tests/partitions.rs` (which asserts) and `make bench-quorum` (which
//! reports the figures).
#![allow(dead_code)]

use super::activity::{self, Interval};
use super::holders::HoldWatch;
use super::netns::{self, Net, NetCluster, Sampler};
use super::vip_client::{self, NameServers, VipClient};
use super::{secs, Rng, TempDir, BIN};
use std::fmt;
use std::net::IpAddr;
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
    /// The next node to win freezes itself (SIGSTOP) at that moment and is woken after
    /// `ms`: from its `--on-elected` hook (before its child starts), or from its `--exec`
    /// child's first instruction (`in_child`).
    FreezeAtWin {
        in_child: bool,
        ms: u64,
    },
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
            Fault::FreezeAtWin { in_child, ms } => write!(
                f,
                "freeze the next winner for {ms} ms from its {}",
                if *in_child { "child" } else { "hook" }
            ),
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
    let mut freezes = Rng::new(seed ^ 0x00f2_ee2e);
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
        let gap = Duration::from_millis(800 + rng.below(2700) as u64);
        // Freezes at the next win come from a stream of their own, so the other faults stay
        // those the seed always gave.
        if freezes.chance(20) {
            let freeze = Fault::FreezeAtWin {
                in_child: freezes.chance(50),
                ms: 1500 + freezes.below(2000) as u64,
            };
            out.push((t + gap / 2, freeze));
        }
        t += gap;
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
    /// Every host's holding of the VIP, looked at every 5 ms.
    pub vip_holdings: Vec<Interval>,
    /// Pairs of hosts that held the VIP at once, with how long (ms).
    pub vip_pairs: Vec<(Interval, Interval, f64)>,
    /// Time during which two or more hosts held the VIP (ms).
    pub vip_overlap_ms: f64,
    /// The client's longest stretch with no answer from the VIP in the faults' window (ms).
    pub client_longest_ms: f64,
    /// All the client's stretches of over 50 ms with no answer in that window, summed (ms).
    pub client_idle_ms: f64,
    /// Nodes frozen at their win.
    pub freezes: usize,
    /// Time in the faults' window during which some majority of nodes was up (not frozen,
    /// dead or unplugged, and past its startup delay if restarted) and connected both ways
    /// (ms). A restarted node's first lease, in which it acknowledges nobody, counts as up.
    pub majority_ms: f64,
    /// The longest stretch with no child running while such a majority stood (ms): the
    /// liveness figure (target: lease + 1.5 s).
    pub majority_wait_ms: f64,
}

/// How the schedule left each node: stopped, dead or unplugged, and when a restarted one
/// started.
#[derive(Default)]
struct Nodes {
    stopped: [bool; NODES],
    dead: [bool; NODES],
    unplugged: [bool; NODES],
    starting: [Option<Instant>; NODES],
}

impl Nodes {
    fn see(&mut self, fault: &Fault) {
        match *fault {
            Fault::Stop(i) | Fault::Cont(i) => self.stopped[i] = matches!(fault, Fault::Stop(_)),
            Fault::Kill(i) | Fault::Restart(i) => {
                self.dead[i] = matches!(fault, Fault::Kill(_));
                self.starting[i] = (!self.dead[i]).then(Instant::now);
            }
            Fault::Pull(i) | Fault::Plug(i) => self.unplugged[i] = matches!(fault, Fault::Pull(_)),
            _ => {}
        }
    }

    /// Up as far as the schedule goes: not stopped, dead or unplugged, and past its
    /// `--startup-delay` if restarted (a restarted node takes part only from then).
    fn up(&self, i: usize) -> bool {
        !(self.stopped[i] || self.dead[i] || self.unplugged[i])
            && self.starting[i].is_none_or(|s| s.elapsed() >= STARTUP_DELAY)
    }
}

/// When some majority of nodes is up and connected both ways, from the faults as applied.
struct Standing {
    groups: Option<Vec<Vec<usize>>>,
    /// Windows (start, end) in ns of the wall clock; the last may be open.
    windows: Vec<(u128, Option<u128>)>,
}

impl Standing {
    fn new() -> Standing {
        Standing {
            groups: None,
            windows: Vec::new(),
        }
    }

    fn see(&mut self, fault: &Fault) {
        match fault {
            Fault::Partition(g) => self.groups = Some(g.clone()),
            Fault::Heal => self.groups = None,
            _ => {}
        }
    }

    /// Records whether a majority stands now, given which nodes are `up`.
    fn update(&mut self, now: u128, up: &[bool]) {
        let all: Vec<usize> = (0..up.len()).collect();
        let groups = self.groups.clone().unwrap_or_else(|| vec![all]);
        let stands = groups
            .iter()
            .any(|g| g.iter().filter(|&&i| up[i]).count() * 2 > up.len());
        match self.windows.last_mut() {
            Some((_, end @ None)) if !stands => *end = Some(now),
            Some((_, Some(_))) | None if stands => self.windows.push((now, None)),
            _ => {}
        }
    }

    /// (total ms, longest stretch with no child, where it began in ns) over the windows, cut
    /// at `to`.
    fn figures(&self, intervals: &[Interval], to: u128) -> (f64, f64, u128) {
        let mut total = 0.0;
        let (mut wait, mut at) = (0u128, 0u128);
        for &(a, b) in &self.windows {
            let b = b.unwrap_or(to).min(to);
            if b <= a {
                continue;
            }
            total += (b - a) as f64 / 1e6;
            let mut covered = a;
            for i in intervals {
                let gap_end = i.start.min(b);
                if gap_end > covered && gap_end - covered > wait {
                    (wait, at) = (gap_end - covered, covered);
                }
                if i.start < b {
                    covered = covered.max(i.end);
                }
            }
            if b > covered && b - covered > wait {
                (wait, at) = (b - covered, covered);
            }
        }
        (total, wait as f64 / 1e6, at)
    }
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
            "{} mode, {} s of faults from seed {:#x}: {} faults ({} nodes frozen at their \
             win), {} children, overlap {:.0} ms ({} pairs), no child running for {:.1} s of \
             {:.1} s (longest gap {:.1} s; with a majority up and connected for {:.1} s, \
             the longest with no child {:.1} s); VIP: {} holdings, two hosts at once for {:.0} ms, \
             the client unanswered for {:.1} s in all (longest {:.1} s); {} samples, terms \
             claimed by two nodes: {:?}, two nodes saying they lead for {:.0} ms; after the \
             heal all named {} within {:.1} s",
            self.mode(),
            self.secs,
            self.seed,
            self.faults,
            self.freezes,
            self.intervals.len(),
            self.overlap_ms,
            self.overlaps.len(),
            self.idle_ms / 1e3,
            self.window_ms / 1e3,
            self.longest_gap_ms / 1e3,
            self.majority_ms / 1e3,
            self.majority_wait_ms / 1e3,
            self.vip_holdings.len(),
            self.vip_overlap_ms,
            self.client_idle_ms / 1e3,
            self.client_longest_ms / 1e3,
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
        let vip_pairs: Vec<String> = self
            .vip_pairs
            .iter()
            .map(|(a, b, ms)| {
                format!(
                    "{} and {} for {ms:.1} ms from {:.0} ms",
                    a.node,
                    b.node,
                    (b.start as f64 - self.t0 as f64) / 1e6
                )
            })
            .collect();
        format!(
            "{}\noverlaps:\n{}\nVIP held by two hosts:\n{}\nchildren (ms from the \
             start):\n{}\nVIP holdings:\n{}\nfaults (ms from the start):\n{}\nlogs kept \
             in: {}\n{}",
            self.summary(),
            overlaps.join("\n"),
            vip_pairs.join("\n"),
            activity::describe_since(&self.intervals, self.t0),
            activity::describe_since(&self.vip_holdings, self.t0),
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
        // Armed by the run itself (see [`Freezer`]).
        Fault::FreezeAtWin { .. } => {}
    }
}

/// Freezes the next winner: the schedule arms it (a file per kind in `dir`); the node's
/// `--on-elected` hook or its child's first instruction takes the file (one `mv` wins),
/// writes who it is and SIGSTOPs its node; the run wakes it after the armed time.
struct Freezer {
    dir: TempDir,
    /// The armed time per kind (hook, child).
    armed_ms: [u64; 2],
    /// The frozen node's host and when to wake it.
    frozen: Vec<(usize, Instant)>,
    taken: usize,
}

impl Freezer {
    fn new() -> Freezer {
        Freezer {
            dir: TempDir::new("chaos-freeze"),
            armed_ms: [0; 2],
            frozen: Vec::new(),
            taken: 0,
        }
    }

    fn kind(in_child: bool) -> &'static str {
        if in_child {
            "child"
        } else {
            "hook"
        }
    }

    /// Shell that freezes the node it runs under (its parent is the supervisor, whose
    /// parent is the node) if a freeze of `kind` is armed.
    fn script(&self, in_child: bool) -> String {
        let d = self.dir.path().display();
        let k = Freezer::kind(in_child);
        format!(
            "if mv '{d}/arm-{k}' '{d}/taken-{k}.$$' 2>/dev/null; then \
             echo \"$BULLY_NODE {k}\" > '{d}/who.$$'; mv '{d}/who.$$' '{d}/who-$$'; \
             kill -STOP \"$(cut -d' ' -f4 /proc/$PPID/stat)\"; fi"
        )
    }

    fn arm(&mut self, in_child: bool, ms: u64) {
        self.armed_ms[usize::from(in_child)] = ms;
        let k = Freezer::kind(in_child);
        let _ = std::fs::write(self.dir.path().join(format!("arm-{k}")), "");
    }

    /// Sees new freezes (logged in `log` at `t0`-relative ms) and wakes the nodes whose
    /// time is up, unless the schedule stopped them too.
    fn poll(&mut self, c: &NetCluster, stopped: &[bool], t0: u128, log: &mut Vec<String>) {
        for e in std::fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if !name.starts_with("who-") {
                continue;
            }
            let text = std::fs::read_to_string(e.path()).unwrap_or_default();
            let _ = std::fs::remove_file(e.path());
            let mut words = text.split_whitespace();
            let (Some(node), Some(kind)) = (words.next(), words.next()) else {
                continue;
            };
            let Some(i) = node
                .strip_prefix("node")
                .and_then(|n| n.parse::<usize>().ok())
                .map(|n| n - 1)
            else {
                continue;
            };
            let ms = self.armed_ms[usize::from(kind == "child")];
            self.frozen
                .push((i, Instant::now() + Duration::from_millis(ms)));
            self.taken += 1;
            log.push(format!(
                "{:8.0} {node} froze itself at its win from its {kind} for {ms} ms",
                (activity::now_ns() - t0) as f64 / 1e6
            ));
        }
        let now = Instant::now();
        let (due, left): (Vec<_>, Vec<_>) = self.frozen.iter().partition(|(_, at)| *at <= now);
        self.frozen = left;
        for (i, _) in due {
            if !stopped[i] {
                c.nodes[i].proc.signal("CONT");
            }
            log.push(format!(
                "{:8.0} SIGCONT node{} (frozen at its win)",
                (activity::now_ns() - t0) as f64 / 1e6,
                i + 1
            ));
        }
    }

    fn is_frozen(&self, i: usize) -> bool {
        self.frozen.iter().any(|(f, _)| *f == i)
    }

    /// No more freezes; wakes every node still frozen.
    fn end(&mut self, c: &NetCluster) {
        for k in ["hook", "child"] {
            let _ = std::fs::remove_file(self.dir.path().join(format!("arm-{k}")));
        }
        for (i, _) in self.frozen.drain(..) {
            c.nodes[i].proc.signal("CONT");
        }
    }
}

/// The `--startup-delay` of [`TIMERS`].
const STARTUP_DELAY: Duration = Duration::from_secs(1);

/// The port every host's name server answers on (the VIP client's).
const NAME_PORT: u16 = 7190;

/// Runs the faults of `schedule(seed, length)` (seconds) on five fresh hosts, with `--quorum 5` or
/// without; None (after one line) when this machine cannot make hosts.
pub fn run(quorum: bool, length: u64, seed: u64) -> Option<Outcome> {
    let tag = if quorum { "chaosq" } else { "chaosd" };
    let mut net = Net::new(tag, NODES)?;
    let client = net.add_client();
    let work = TempDir::new(&format!("{tag}-work"));
    let mut freezer = Freezer::new();
    let exec = format!(
        "{}; {}",
        freezer.script(true),
        activity::worker(work.path())
    );
    let hook = freezer.script(false);
    let vip = net.addr(100);
    let vip_flag = format!("{vip}/24");
    let size = NODES.to_string();
    let mut common: Vec<&str> = TIMERS.to_vec();
    if quorum {
        common.extend(["--quorum", &size]);
    }
    common.extend(["--exec", &exec, "--on-elected", &hook, "--vip", &vip_flag]);
    let mut c = NetCluster::start_each(&net, tag, BIN, PORT, &common, |_| Vec::new());
    let names = names(NODES);
    let _servers = NameServers::start(net.hosts(), &names, NAME_PORT);
    let holds = HoldWatch::start(
        net.hosts(),
        names.clone(),
        IpAddr::V4(vip),
        Duration::from_millis(5),
    );
    let all: Vec<usize> = (0..NODES).collect();
    let top = format!("node{NODES}");
    c.await_agreement(&all, &top, secs(60));
    super::wait_for("the first coordinator's child", secs(20), || {
        (!activity::intervals(work.path()).is_empty())
            .then_some(())
            .ok_or_else(|| "no child has written yet".to_string())
    });
    let vip_client = VipClient::start(&client, vip, NAME_PORT, Duration::from_millis(10));
    if vip_client.await_answer(&top, 0, secs(20)).is_none() {
        panic!(
            "the VIP client never heard {top}: {:?}\n{}",
            vip_client.answers().last(),
            c.log_tails()
        );
    }

    let sampler = Sampler::start(&c, Duration::from_millis(40));
    let plan = schedule(seed, length);
    let t0 = activity::now_ns();
    let start = Instant::now();
    let mut log = Vec::new();
    let mut nodes = Nodes::default();
    let mut standing = Standing::new();
    standing.update(t0, &[true; NODES]);
    // Waits for the next fault's time, seeing to the freezes and to whether a majority
    // stands meanwhile.
    let until = |at: Duration,
                 c: &NetCluster,
                 freezer: &mut Freezer,
                 standing: &mut Standing,
                 nodes: &Nodes,
                 log: &mut Vec<String>| loop {
        freezer.poll(c, &nodes.stopped, t0, log);
        let up: Vec<bool> = (0..NODES)
            .map(|i| nodes.up(i) && !freezer.is_frozen(i))
            .collect();
        standing.update(activity::now_ns(), &up);
        let Some(left) = at.checked_sub(start.elapsed()) else {
            return;
        };
        std::thread::sleep(left.min(Duration::from_millis(10)));
    };
    for (at, fault) in &plan {
        until(*at, &c, &mut freezer, &mut standing, &nodes, &mut log);
        let applied = (activity::now_ns() - t0) as f64 / 1e6;
        apply(&net, &mut c, fault);
        nodes.see(fault);
        if let Fault::FreezeAtWin { in_child, ms } = *fault {
            freezer.arm(in_child, ms);
        }
        standing.see(fault);
        log.push(format!("{applied:8.0} {fault}"));
    }
    until(
        Duration::from_secs(length),
        &c,
        &mut freezer,
        &mut standing,
        &nodes,
        &mut log,
    );

    // Heal everything, then one coordinator for all.
    let healed = activity::now_ns();
    let heal_start = Instant::now();
    freezer.end(&c);
    net.heal();
    for i in 0..NODES {
        if nodes.stopped[i] {
            c.node(i).proc.signal("CONT");
        }
        if nodes.dead[i] {
            c.node(i).proc.restart();
        }
        if nodes.unplugged[i] {
            net.plug_cable(i);
        }
    }
    log.push(format!(
        "{:8.0} heal everything",
        (healed - t0) as f64 / 1e6
    ));
    let settled = c.sole_coordinator_since(&all, &top, heal_start, secs(90));
    if settled.is_ok() {
        // The settled coordinator's host answers the client again.
        vip_client.await_answer(&top, healed, secs(20));
    }
    let samples = sampler.finish();
    let answers = vip_client.finish();
    let log_tails = c.log_tails();
    for n in &mut c.nodes {
        n.proc.kill9();
    }
    activity::await_still(work.path(), secs(10));
    let vip_holdings = holds.finish();

    let intervals = activity::intervals(work.path());
    let overlaps = activity::overlaps(&intervals);
    let shared_terms = netns::shared_terms(&samples, &names);
    let client_idle_ms = vip_client::outages(&answers, 50.0)
        .iter()
        .filter(|(from, ms)| *from < healed && *from + (*ms * 1e6) as u128 > t0)
        .map(|(_, ms)| ms)
        .sum();
    let (majority_ms, majority_wait_ms, wait_at) = standing.figures(&intervals, healed);
    log.push(format!(
        "{:8.0} (the longest stretch with no child while a majority stood, {majority_wait_ms:.0} ms, began)",
        (wait_at.max(t0) - t0) as f64 / 1e6
    ));
    log.sort_by(|a, b| {
        let ms = |l: &str| {
            l.split_whitespace()
                .next()
                .and_then(|t| t.parse::<f64>().ok())
        };
        ms(a)
            .partial_cmp(&ms(b))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    let mut out = Outcome {
        majority_ms,
        majority_wait_ms,
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
        vip_pairs: activity::overlaps(&vip_holdings),
        vip_overlap_ms: activity::overlap_ms(&vip_holdings),
        vip_holdings,
        client_longest_ms: vip_client::outage_ms(&answers, t0, healed),
        client_idle_ms,
        freezes: freezer.taken,
    };
    let bad = !out.overlaps.is_empty()
        || !out.shared_terms.is_empty()
        || !out.vip_pairs.is_empty()
        || settled.is_err();
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

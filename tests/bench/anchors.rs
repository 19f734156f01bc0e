//! `make bench-anchors`: the failover of keepalived (VRRP, Debian's package), the tool users
//! of small clusters run today, beside bully's, on the same five hosts in network namespaces
//! and the same faults of the master: kill -9, a pulled cable, SIGSTOP. Prints a markdown
//! table and writes `target/bench/anchors.json`.
//!
//! keepalived: unicast VRRP over the bridge, priorities 1 to 5, its default `advert_int 1`,
//! a VIP on the private subnet; failover ends when the next master (priority 4) holds the VIP.
//! bully: static peers, default flags but `--startup-delay 1s`; failover ends when all four
//! survivors name node4. After every run the faulted master is killed, its cable plugged back
//! and it is started again, so every run begins from the same state: a fresh master that has
//! taken over.
//!
//! A `[[bench]]` with `harness = false`: `cargo bench --bench anchors -- [--runs N]
//! [--only bully|keepalived] [--faults kill,cable,stop] [--verbose]`. `--only bully` re-measures
//! bully alone and keeps keepalived's figures from the last `anchors.json`. Needs root,
//! `ip netns` and nft; without them it prints one line and exits 0.

#[path = "../support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::netns::{Host, Net, NetCluster};
use support::{Rng, TempDir, BIN};

const HOSTS: usize = 5;
/// The master (host5: priority 5, node5) and the next one (host4: priority 4, node4), by index.
const MASTER: usize = 4;
const NEXT: usize = 3;
const SURVIVORS: [usize; 4] = [0, 1, 2, 3];
const BULLY_PORT: u16 = 5000;
/// keepalived's default advertisement interval, in seconds.
const ADVERT_INT: f64 = 1.0;
/// Quiet time after the cluster has settled, before the random phase and the fault: every
/// backup has heard the master, every follower holds its watch.
const SETTLE: Duration = Duration::from_millis(1500);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    /// kill -9 of the master's process(es).
    Kill,
    /// The master's cable pulled (its veth set down on the bridge side).
    Cable,
    /// SIGSTOP of the master's process(es).
    Stop,
}

impl Fault {
    const ALL: [Fault; 3] = [Fault::Kill, Fault::Cable, Fault::Stop];

    fn key(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Cable => "cable",
            Fault::Stop => "stop",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9 of the master",
            Fault::Cable => "master's cable pulled",
            Fault::Stop => "SIGSTOP of the master",
        }
    }
}

struct Args {
    runs: usize,
    keepalived: bool,
    bully: bool,
    faults: Vec<Fault>,
    verbose: bool,
}

impl Args {
    fn parse(args: &[String]) -> Args {
        let value = |flag: &str| {
            let i = args.iter().position(|a| a == flag)?;
            Some(args.get(i + 1).cloned().unwrap_or_default())
        };
        let bad = |flag: &str| -> ! {
            eprintln!("{flag}: bad value");
            std::process::exit(2)
        };
        let runs = value("--runs").map_or(5, |v| match v.parse() {
            Ok(n) if n >= 1 => n,
            _ => bad("--runs"),
        });
        let (keepalived, bully) = match value("--only").as_deref() {
            None => (true, true),
            Some("bully") => (false, true),
            Some("keepalived") => (true, false),
            Some(_) => bad("--only"),
        };
        let faults = value("--faults").map_or(Fault::ALL.to_vec(), |v| {
            v.split(',')
                .filter(|f| !f.is_empty())
                .map(|f| {
                    *Fault::ALL
                        .iter()
                        .find(|x| x.key() == f)
                        .unwrap_or_else(|| bad("--faults"))
                })
                .collect()
        });
        Args {
            runs,
            keepalived,
            bully,
            faults,
            verbose: args.iter().any(|a| a == "--verbose"),
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("anchors benchmark: run it with `make bench-anchors` (needs root)");
        return;
    }
    let args = Args::parse(&args);
    let Some(net) = Net::new("anchors", HOSTS) else {
        return;
    };
    let began = Instant::now();
    let loadavg = loadavg();
    let mut rng = Rng::new(0x5eed_a4c4);
    let json_path = target_dir().join("bench").join("anchors.json");

    let keepalived = if !args.keepalived {
        earlier(&json_path, "keepalived")
    } else if let Some(version) = keepalived_version() {
        let faults = args
            .faults
            .iter()
            .map(|&f| keepalived_runs(&net, f, &args, &mut rng))
            .collect();
        Some(Measured {
            version,
            faults,
            earlier: false,
        })
    } else {
        eprintln!("keepalived is not installed (`make bench-anchors` installs it): bully only");
        None
    };
    let bully = if args.bully {
        let faults = args
            .faults
            .iter()
            .map(|&f| bully_runs(&net, f, &args, &mut rng))
            .collect();
        Some(Measured {
            version: bully_version(),
            faults,
            earlier: false,
        })
    } else {
        earlier(&json_path, "bully")
    };
    drop(net);

    let report = Report {
        runs: args.runs,
        loadavg,
        seconds: began.elapsed().as_secs_f64(),
        keepalived,
        bully,
    };
    print!("{}", report.markdown());
    let written = std::fs::create_dir_all(json_path.parent().unwrap())
        .and_then(|_| std::fs::write(&json_path, report.json().to_string() + "\n"));
    match written {
        Ok(()) => println!("\nJSON: {}", json_path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", json_path.display()),
    }
}

/// One system's runs of one fault.
struct Runs {
    fault: Fault,
    /// Failover times, seconds.
    times: Vec<f64>,
    /// keepalived: the runs in which a lower backup took the VIP too, beside the next master.
    doubled: Option<usize>,
}

/// One system's failover times per fault.
struct Measured {
    version: String,
    faults: Vec<Runs>,
    /// Taken from an earlier `anchors.json` (`--only` measured the other system).
    earlier: bool,
}

impl Measured {
    fn times(&self, f: Fault) -> Option<&[f64]> {
        self.faults
            .iter()
            .find(|r| r.fault == f)
            .map(|r| r.times.as_slice())
    }

    fn json(&self) -> Value {
        json!({
            "version": self.version,
            "faults": self.faults.iter().map(|r| {
                let mut v = stats(&r.times);
                if let Some(d) = r.doubled {
                    v["runs_with_two_masters"] = json!(d);
                }
                (r.fault.key().to_string(), v)
            }).collect::<serde_json::Map<_, _>>(),
        })
    }

    fn from_json(v: &Value) -> Option<Measured> {
        let faults = Fault::ALL
            .iter()
            .filter_map(|&f| {
                let r = &v["faults"][f.key()];
                Some(Runs {
                    fault: f,
                    times: r["samples"]
                        .as_array()?
                        .iter()
                        .filter_map(Value::as_f64)
                        .collect(),
                    doubled: r["runs_with_two_masters"].as_u64().map(|d| d as usize),
                })
            })
            .collect();
        Some(Measured {
            version: v["version"].as_str()?.to_string(),
            faults,
            earlier: true,
        })
    }
}

/// `system`'s figures from an earlier run's JSON, if there is one.
fn earlier(path: &Path, system: &str) -> Option<Measured> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Measured::from_json(&v[system])
}

// ---- keepalived ----

/// One keepalived daemon on one host: its parent process (which `ip netns exec` became) and
/// the VRRP child it forks.
struct Keepalived {
    child: Option<Child>,
    host: Host,
    conf: PathBuf,
    dir: PathBuf,
    log: PathBuf,
    /// Where the log stood when the daemon last started: its states since then follow it.
    log_start: u64,
}

impl Keepalived {
    fn start(host: &Host, net: &Net, vip: Ipv4Addr, dir: &Path) -> Keepalived {
        let others: Vec<String> = net
            .hosts()
            .iter()
            .filter(|h| h.index != host.index)
            .map(|h| format!("        {}", h.addr()))
            .collect();
        // State BACKUP everywhere: the master is chosen by priority; preemption is on (the
        // default), so a restarted master takes over again, as bully's highest node does.
        let conf = format!(
            "global_defs {{\n    router_id host{prio}\n}}\n\
             vrrp_instance bench {{\n    state BACKUP\n    interface {dev}\n    \
             virtual_router_id 77\n    priority {prio}\n    advert_int {ADVERT_INT}\n    \
             unicast_src_ip {addr}\n    unicast_peer {{\n{peers}\n    }}\n    \
             virtual_ipaddress {{\n        {vip}/24 dev {dev}\n    }}\n}}\n",
            dev = support::netns::HOST_DEV,
            prio = host.index + 1,
            addr = host.addr(),
            peers = others.join("\n"),
        );
        let path = dir.join(format!("keepalived-{}.conf", host.index));
        std::fs::write(&path, conf).unwrap();
        let mut k = Keepalived {
            child: None,
            host: host.clone(),
            conf: path,
            dir: dir.to_path_buf(),
            log: dir.join(format!("keepalived-{}.log", host.index)),
            log_start: 0,
        };
        k.restart();
        k
    }

    fn restart(&mut self) {
        self.kill9();
        let i = self.host.index;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        self.log_start = log.metadata().map_or(0, |m| m.len());
        let pid = |what: &str| self.dir.join(format!("keepalived-{i}-{what}.pid"));
        // A killed daemon leaves its pid files, and its VRRP child may linger as a zombie
        // until init reaps it: keepalived would take that for a daemon still running.
        for what in ["main", "vrrp"] {
            let _ = std::fs::remove_file(pid(what));
        }
        let child = self
            .host
            .command("keepalived")
            .args(["--dont-fork", "--log-console", "--log-detail", "--vrrp"])
            .arg("--use-file")
            .arg(&self.conf)
            .arg("--pid")
            .arg(pid("main"))
            .arg("--vrrp_pid")
            .arg(pid("vrrp"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start keepalived");
        self.child = Some(child);
    }

    /// Whether the daemon, since it last started, says it entered MASTER state and has left
    /// it for no other since. (A VIP alone proves nothing: a killed daemon leaves its VIP.)
    fn is_master(&self) -> bool {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text[(self.log_start as usize).min(text.len())..])
            .into_owned();
        text.lines()
            .rev()
            .find_map(|l| l.split_once("Entering ").map(|(_, state)| state))
            .is_some_and(|state| state.starts_with("MASTER STATE"))
    }

    /// The daemon's processes: the parent and its children (the VRRP process).
    fn pids(&self) -> Vec<i32> {
        let Some(parent) = self.child.as_ref().map(|c| c.id() as i32) else {
            return Vec::new();
        };
        let mut pids = vec![parent];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            // The parent pid is the second field after the parenthesised command name.
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                .and_then(|p| p.parse::<i32>().ok());
            if ppid == Some(parent) {
                pids.push(pid);
            }
        }
        pids
    }

    fn signal(&self, pids: &[i32], sig: i32) {
        for &pid in pids {
            // SAFETY: kill(2) on keepalived processes this benchmark started.
            unsafe { libc::kill(pid, sig) };
        }
    }

    /// Freezes the whole daemon first, so the parent cannot respawn the VRRP child nor the
    /// child see its parent die and shut down cleanly: then kills all of it at once, a crash.
    fn kill9(&mut self) {
        let pids = self.pids();
        self.signal(&pids, libc::SIGSTOP);
        self.signal(&pids, libc::SIGKILL);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }
}

impl Drop for Keepalived {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// The hosts that hold `vip` now.
fn holders(net: &Net, vip: Ipv4Addr) -> Vec<usize> {
    net.hosts()
        .iter()
        .filter(|h| h.holds(vip))
        .map(|h| h.index)
        .collect()
}

/// Drops `vip` from `host`, as a reboot would after a crash (kill -9 leaves it behind).
fn forget_vip(host: &Host, vip: Ipv4Addr) {
    let _ = Command::new("ip")
        .args(["-n", host.ns(), "addr", "del"])
        .arg(format!("{vip}/24"))
        .args(["dev", support::netns::HOST_DEV])
        .stderr(Stdio::null())
        .status();
}

/// Waits until the master's daemon is MASTER and only its host holds the VIP; panics with
/// the logs after `within`.
fn await_master(net: &Net, vip: Ipv4Addr, master: &Keepalived, dir: &Path, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let h = holders(net, vip);
        if h == [MASTER] && master.is_master() {
            return;
        }
        if Instant::now() > end {
            panic!(
                "keepalived: the VIP is on {}, not on host5 alone, after {within:?}\n{}",
                names(&h),
                keepalived_logs(dir)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn keepalived_logs(dir: &Path) -> String {
    let mut out = String::new();
    for i in 0..HOSTS {
        let text =
            std::fs::read_to_string(dir.join(format!("keepalived-{i}.log"))).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let _ = writeln!(
            out,
            "--- keepalived on host{} ---\n{}",
            i + 1,
            lines[lines.len().saturating_sub(12)..].join("\n")
        );
    }
    out
}

fn keepalived_runs(net: &Net, fault: Fault, args: &Args, rng: &mut Rng) -> Runs {
    let dir = TempDir::new("anchors-keepalived");
    let vip = net.addr(200);
    for h in net.hosts() {
        forget_vip(h, vip);
    }
    let mut daemons: Vec<Keepalived> = net
        .hosts()
        .iter()
        .map(|h| Keepalived::start(h, net, vip, dir.path()))
        .collect();
    await_master(
        net,
        vip,
        &daemons[MASTER],
        dir.path(),
        Duration::from_secs(60),
    );
    let next = net.host(NEXT);
    let mut times = Vec::new();
    let mut doubled = 0;
    for run in 1..=args.runs {
        std::thread::sleep(SETTLE + Duration::from_millis(rng.below(1000) as u64));
        let t0 = Instant::now();
        match fault {
            Fault::Kill => daemons[MASTER].kill9(),
            Fault::Cable => net.pull_cable(MASTER),
            Fault::Stop => {
                let pids = daemons[MASTER].pids();
                daemons[MASTER].signal(&pids, libc::SIGSTOP);
            }
        }
        let took = loop {
            if next.holds(vip) {
                break t0.elapsed();
            }
            if t0.elapsed() > Duration::from_secs(60) {
                panic!(
                    "keepalived, {}: host4 did not take the VIP within 60 s\n{}",
                    fault.label(),
                    keepalived_logs(dir.path())
                );
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        // Lower backups time out only milliseconds after host NEXT (their skews differ by
        // 1/256 s per priority step): watch a moment longer for a second master.
        let mut others: Vec<usize> = Vec::new();
        let watch = Instant::now();
        while watch.elapsed() < Duration::from_millis(500) {
            for h in holders(net, vip) {
                if h != NEXT && h != MASTER && !others.contains(&h) {
                    others.push(h);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        doubled += usize::from(!others.is_empty());
        eprintln!(
            "keepalived, {}, run {run}: host4 holds the VIP after {}{}",
            fault.label(),
            ms(took.as_secs_f64()),
            if others.is_empty() {
                String::new()
            } else {
                format!(" ({} took it too)", names(&others))
            }
        );
        times.push(took.as_secs_f64());
        // Back to a fresh master: kill what is left of it, "reboot" (drop the VIP it may still
        // hold), plug its cable back, start it again.
        daemons[MASTER].kill9();
        forget_vip(net.host(MASTER), vip);
        if fault == Fault::Cable {
            net.plug_cable(MASTER);
        }
        daemons[MASTER].restart();
        await_master(
            net,
            vip,
            &daemons[MASTER],
            dir.path(),
            Duration::from_secs(60),
        );
    }
    if args.verbose {
        keep_logs(dir.path(), &format!("keepalived-{}", fault.key()));
    }
    summary("keepalived", fault, &times);
    drop(daemons);
    for h in net.hosts() {
        forget_vip(h, vip);
    }
    Runs {
        fault,
        times,
        doubled: Some(doubled),
    }
}

fn keepalived_version() -> Option<String> {
    let out = Command::new("keepalived").arg("--version").output().ok()?;
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("Keepalived"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
}

/// `host1, host3`: hosts by their number (priority, node id), which is index + 1.
fn names(hosts: &[usize]) -> String {
    if hosts.is_empty() {
        return "no host".into();
    }
    let names: Vec<String> = hosts.iter().map(|i| format!("host{}", i + 1)).collect();
    names.join(", ")
}

// ---- bully ----

fn bully_runs(net: &Net, fault: Fault, args: &Args, rng: &mut Rng) -> Runs {
    let mut c = NetCluster::start(net, "anchors-bully", BULLY_PORT, &["--startup-delay", "1s"]);
    let all: Vec<usize> = (0..HOSTS).collect();
    c.await_agreement(&all, "node5", Duration::from_secs(60));
    let mut times = Vec::new();
    for run in 1..=args.runs {
        std::thread::sleep(SETTLE + Duration::from_millis(rng.below(1000) as u64));
        let pid = c.node(MASTER).proc.pid().expect("node5 runs") as i32;
        let t0 = Instant::now();
        match fault {
            Fault::Kill => c.node(MASTER).proc.kill9(),
            Fault::Cable => net.pull_cable(MASTER),
            // SAFETY: kill(2) on the node process this benchmark started.
            Fault::Stop => unsafe {
                libc::kill(pid, libc::SIGSTOP);
            },
        }
        let took = c
            .agreement_since(&SURVIVORS, "node4", t0, Duration::from_secs(90))
            .unwrap_or_else(|seen| {
                panic!(
                    "bully, {}: the survivors did not agree on node4 within 90 s; last seen \
                     {seen}\n{}",
                    fault.label(),
                    c.log_tails()
                )
            });
        eprintln!(
            "bully, {}, run {run}: node1..node4 name node4 after {}",
            fault.label(),
            ms(took.as_secs_f64())
        );
        times.push(took.as_secs_f64());
        c.node(MASTER).proc.kill9();
        if fault == Fault::Cable {
            net.plug_cable(MASTER);
        }
        c.node(MASTER).proc.restart();
        c.await_agreement(&all, "node5", Duration::from_secs(60));
    }
    if args.verbose {
        keep_logs(c.dir.path(), &format!("bully-{}", fault.key()));
    }
    summary("bully", fault, &times);
    Runs {
        fault,
        times,
        doubled: None,
    }
}

fn bully_version() -> String {
    Command::new(BIN)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "bully".into())
}

/// Copies the logs in `dir` to `target/bench/anchors-logs/<what>-<file>` (`--verbose`).
fn keep_logs(dir: &Path, what: &str) {
    let kept = target_dir().join("bench").join("anchors-logs");
    let _ = std::fs::create_dir_all(&kept);
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".log") {
            let _ = std::fs::copy(entry.path(), kept.join(format!("{what}-{name}")));
        }
    }
    eprintln!("logs: {}", kept.display());
}

// ---- report ----

fn summary(system: &str, fault: Fault, times: &[f64]) {
    eprintln!(
        "{system}, {}: p50 {}, max {}",
        fault.label(),
        ms(percentile(times, 50.0)),
        ms(percentile(times, 100.0))
    );
}

struct Report {
    runs: usize,
    loadavg: String,
    seconds: f64,
    keepalived: Option<Measured>,
    bully: Option<Measured>,
}

impl Report {
    fn markdown(&self) -> String {
        let mut out = String::new();
        let name = |m: &Option<Measured>, default: &str| {
            m.as_ref().map_or(default.to_string(), |m| {
                let runs = m.faults.first().map_or(0, |r| r.times.len());
                let when = if m.earlier {
                    ", from an earlier run"
                } else {
                    ""
                };
                format!("{}, {runs} runs per fault{when}", m.version)
            })
        };
        let _ = writeln!(
            out,
            "\n## Failover beside keepalived: {HOSTS} hosts in network namespaces\n\nkeepalived ({}): unicast VRRP, priorities 1-5, advert_int {ADVERT_INT} s, \
             failover = fault to host4 (priority 4) holding the VIP.\nbully ({}): static peers, default \
             flags but --startup-delay 1s, failover = fault to node1..node4 naming node4.\n\
             Load average {}; {:.0} s in all.\n",
            name(&self.keepalived, "keepalived not measured"),
            name(&self.bully, "bully not measured"),
            self.loadavg,
            self.seconds
        );
        out += "| fault | keepalived p50 | keepalived max | bully p50 | bully max | bully / keepalived (p50) |\n";
        out += "| --- | ---: | ---: | ---: | ---: | ---: |\n";
        for f in Fault::ALL {
            let k = self.keepalived.as_ref().and_then(|m| m.times(f));
            let b = self.bully.as_ref().and_then(|m| m.times(f));
            if k.is_none() && b.is_none() {
                continue;
            }
            let cell = |t: Option<&[f64]>, p: f64| t.map_or("-".into(), |t| ms(percentile(t, p)));
            let ratio = match (k, b) {
                (Some(k), Some(b)) => ratio(percentile(b, 50.0) / percentile(k, 50.0)),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {ratio} |",
                f.label(),
                cell(k, 50.0),
                cell(k, 100.0),
                cell(b, 50.0),
                cell(b, 100.0)
            );
        }
        if let Some(k) = &self.keepalived {
            let doubled: Vec<String> = k
                .faults
                .iter()
                .filter(|r| r.doubled.unwrap_or(0) > 0)
                .map(|r| {
                    format!(
                        "{} in {} of {}",
                        r.fault.label(),
                        r.doubled.unwrap_or(0),
                        r.times.len()
                    )
                })
                .collect();
            if !doubled.is_empty() {
                let _ = writeln!(
                    out,
                    "\nkeepalived had two masters for a moment (a lower backup took the VIP too): {}.",
                    doubled.join("; ")
                );
            }
        }
        out += "\nReproduce: `make bench-anchors` (root; `RUNS=N`, `ONLY=bully` re-measures bully \
                beside the last keepalived figures).\n";
        out
    }

    fn json(&self) -> Value {
        json!({
            "hosts": HOSTS,
            "runs": self.runs,
            "loadavg": self.loadavg,
            "seconds": self.seconds,
            "keepalived": self.keepalived.as_ref().map(|m| {
                let mut v = m.json();
                v["advert_int"] = json!(ADVERT_INT);
                v
            }),
            "bully": self.bully.as_ref().map(Measured::json),
        })
    }
}

/// A ratio below 1 (bully faster) with enough digits to read, above 1 with one decimal.
fn ratio(r: f64) -> String {
    if r < 0.1 {
        format!("{r:.3}×")
    } else {
        format!("{r:.2}×")
    }
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
        "max": percentile(samples, 100.0),
        "samples": samples,
    })
}

/// Milliseconds below 10 s, seconds above.
fn ms(seconds: f64) -> String {
    if seconds < 10.0 {
        format!("{:.0} ms", seconds * 1e3)
    } else {
        format!("{seconds:.1} s")
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// `target/` of the binary under test (`target/release/bully`).
fn target_dir() -> PathBuf {
    Path::new(BIN)
        .parent()
        .and_then(Path::parent)
        .map_or_else(|| PathBuf::from("target"), Path::to_path_buf)
}

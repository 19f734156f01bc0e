//! `make bench-etcd`: leader failover on etcd, bully's `--etcd-lock` beside `etcdctl lock`, on
//! the same three hosts in network namespaces with a three-member etcd cluster (one member per
//! host), the same lease TTL (5 s) and the same worker (`activity::worker`: it appends a
//! timestamp every 20 ms, so each worker's life is an interval). Faults of the holder: kill -9
//! of its process (bully's node; `etcdctl lock` itself), and its host's cable pulled (its etcd
//! member with it). Measured per run: the failover, from the fault to the first beat of the
//! next holder's worker, and how long two workers ran at once. Prints a markdown table and
//! writes `target/bench/etcd.json`.
//!
//! `etcdctl lock --ttl 5 NAME sh -c WORKER` runs the worker while it holds the lock; killed,
//! it leaves the worker running (nothing stops it), and cut off, it does not stop it either:
//! its overlap is what users of it get. A `[[bench]]` with `harness = false`:
//! `etcdctl elect NAME PROPOSAL` holds an election's leadership on a 60 s session; the worker
//! starts when it prints that it won. `cargo bench --bench etcd -- [--runs N]
//! [--only bully|etcdctl-lock|etcdctl-elect] [--faults kill,cable]`.
//! Needs root, `ip netns`, nft and etcd; without them it prints one line and exits 0.

#[path = "../support/mod.rs"]
mod support;

use serde_json::json;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::activity::{self, now_ns, overlap_ms, Interval};
use support::etcd::{EtcdHosts, CLIENT_PORT};
use support::netns::{Host, Net};
use support::{secs, NodeProc, TempDir, BIN};

const HOSTS: usize = 3;
const TTL: u64 = 5;
const BULLY_PORT: u16 = 7400;
/// How long a run waits for the next holder's worker.
const FAILOVER_WAIT: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, PartialEq)]
enum System {
    Bully,
    EtcdctlLock,
    EtcdctlElect,
}

impl System {
    fn key(self) -> &'static str {
        match self {
            System::Bully => "bully",
            System::EtcdctlLock => "etcdctl-lock",
            System::EtcdctlElect => "etcdctl-elect",
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Fault {
    Kill,
    Cable,
}

impl Fault {
    fn key(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Cable => "cable",
        }
    }
}

/// One process per host of the system under test.
enum Proc {
    Bully(NodeProc),
    Etcdctl(Child),
}

impl Proc {
    fn kill9(&mut self) {
        match self {
            Proc::Bully(n) => n.kill9(),
            Proc::Etcdctl(c) => {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
    }
}

fn start(system: System, host: &Host, etcd: &EtcdHosts, tag: &str, dir: &Path) -> Proc {
    let name = format!("node{}", host.index + 1);
    let worker = activity::worker(&dir.join("work"));
    let log = dir.join(format!("{name}.log"));
    match system {
        System::Bully => {
            let addr = host.addr().to_string();
            let state = dir.join(format!("state-{name}")).display().to_string();
            let ttl = format!("{TTL}s");
            let endpoints = etcd.endpoints_for(host.index);
            let args: Vec<String> = [
                "--bind",
                &addr,
                "--advertise",
                &addr,
                "--state-dir",
                &state,
                "--registry",
                "etcd",
                "--etcd",
                &endpoints,
                "--etcd-ttl",
                &ttl,
                "--etcd-lock",
                "--cluster",
                tag,
                "--startup-delay",
                "1s",
                "--exec",
                &worker,
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            Proc::Bully(NodeProc::start_via(
                &host.launcher(BIN),
                &name,
                host.index as u64 + 1,
                BULLY_PORT,
                &args,
                log,
            ))
        }
        System::EtcdctlLock => {
            let out = std::fs::File::create(log).unwrap();
            let child = host
                .command("etcdctl")
                .env("ETCDCTL_API", "3")
                .env("BULLY_NODE", &name)
                .args(["--endpoints", &etcd.endpoints_for(host.index)])
                .args([
                    "lock",
                    "--ttl",
                    &TTL.to_string(),
                    tag,
                    "--",
                    "sh",
                    "-c",
                    &worker,
                ])
                .stdin(Stdio::null())
                .stdout(out.try_clone().unwrap())
                .stderr(out)
                .spawn()
                .expect("start etcdctl");
            Proc::Etcdctl(child)
        }
        System::EtcdctlElect => {
            // `etcdctl elect NAME PROPOSAL` campaigns, prints the proposal once elected and
            // holds the leadership while it runs (its session: 60 s, which it cannot change);
            // it runs nothing, so the worker is started by whoever reads that line, as a
            // user's script would.
            let out = std::fs::File::create(log).unwrap();
            let mut child = host
                .command("etcdctl")
                .env("ETCDCTL_API", "3")
                .args(["--endpoints", &etcd.endpoints_for(host.index)])
                .args(["elect", tag, &name])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(out)
                .spawn()
                .expect("start etcdctl elect");
            let elected = child.stdout.take().expect("its stdout");
            let mut run_worker = host.command("sh");
            run_worker
                .args(["-c", &worker])
                .env("BULLY_NODE", &name)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            std::thread::spawn(move || {
                use std::io::BufRead;
                let mut line = String::new();
                let mut elected = std::io::BufReader::new(elected);
                if elected.read_line(&mut line).unwrap_or(0) > 0 {
                    let _ = run_worker.spawn();
                }
            });
            Proc::Etcdctl(child)
        }
    }
}

/// The worker that has beaten for at least `span` and still beats: its node.
fn holder(work: &Path, span: Duration) -> Option<String> {
    let now = now_ns();
    activity::intervals(work)
        .into_iter()
        .find(|i| i.end - i.start >= span.as_nanos() && now - i.end < 200_000_000)
        .map(|i| i.node)
}

/// Kills every worker under `work` by the pid in its file name (workers a killed `etcdctl`
/// left behind included), and waits until none writes.
fn kill_workers(work: &Path) {
    for i in activity::intervals(work) {
        let pid = i
            .file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.rsplit('.').nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        if let Some(pid) = pid.filter(|&p| activity::pid_alive(p as u32)) {
            // SAFETY: kill(2) on a worker this run started, named by its own file.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    activity::await_still(work, secs(10));
}

struct Run {
    failover_ms: Option<f64>,
    overlap_ms: f64,
}

fn run_once(net: &Net, etcd: &EtcdHosts, system: System, fault: Fault, n: usize) -> Run {
    let tag = format!("b{}-{}-{n}", system.key(), fault.key());
    let dir = TempDir::new(&format!("etcd-bench-{}", tag));
    std::fs::create_dir_all(dir.path().join("work")).unwrap();
    let work = dir.path().join("work");
    let mut procs: Vec<Proc> = net
        .hosts()
        .iter()
        .map(|h| start(system, h, etcd, &tag, dir.path()))
        .collect();
    let first = support::wait_for("a worker that beats for 1 s", secs(60), || {
        holder(&work, secs(1)).ok_or_else(|| activity::describe(&activity::intervals(&work)))
    });
    let at: usize = first[4..].parse::<usize>().unwrap() - 1;
    let t0 = now_ns();
    match fault {
        Fault::Kill => procs[at].kill9(),
        Fault::Cable => net.pull_cable(at),
    }
    let next = support::poll(FAILOVER_WAIT, || {
        activity::intervals(&work)
            .into_iter()
            .find(|i| i.node != first && i.start > t0)
            .map(|i| i.start)
            .ok_or_default()
    });
    // A second more of both, for the overlap.
    std::thread::sleep(secs(1));
    let all: Vec<Interval> = activity::intervals(&work);
    let overlap = overlap_ms(&all);
    for p in &mut procs {
        p.kill9();
    }
    kill_workers(&work);
    if fault == Fault::Cable {
        net.plug_cable(at);
    }
    await_etcd(net);
    Run {
        failover_ms: next.ok().map(|s| (s - t0) as f64 / 1e6),
        overlap_ms: overlap,
    }
}

trait OkOrDefault<T> {
    fn ok_or_default(self) -> Result<T, String>;
}

impl<T> OkOrDefault<T> for Option<T> {
    fn ok_or_default(self) -> Result<T, String> {
        self.ok_or_else(|| "not yet".into())
    }
}

/// Every member healthy again.
fn await_etcd(net: &Net) {
    for h in net.hosts() {
        support::wait_for("etcd healthy", secs(60), || {
            let (status, body) = h.get(CLIENT_PORT, "/health", secs(2));
            (status == 200 && body.contains("true"))
                .then_some(())
                .ok_or(format!("{status} {body}"))
        });
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        f64::NAN
    } else {
        v[v.len() / 2]
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("etcd benchmark: run it with `make bench-etcd`");
        return;
    }
    let value = |flag: &str| {
        let i = args.iter().position(|a| a == flag)?;
        args.get(i + 1).cloned()
    };
    let runs: usize = value("--runs").map_or(5, |v| v.parse().expect("--runs: a number"));
    let only = value("--only");
    let faults = value("--faults");
    let wanted = |list: &Option<String>, key: &str| {
        list.as_deref()
            .is_none_or(|l| l.split(',').any(|k| k == key))
    };
    let Some(net) = Net::new("etcdbench", HOSTS) else {
        return;
    };
    let etcd = EtcdHosts::start(&net);
    let began = Instant::now();
    let mut rows = Vec::new();
    let mut table = String::from(
        "| system | fault | runs | failover median | failover max | runs with two workers | two workers, longest |\n\
         | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for system in [System::Bully, System::EtcdctlLock, System::EtcdctlElect] {
        if !wanted(&only, system.key()) {
            continue;
        }
        for fault in [Fault::Kill, Fault::Cable] {
            if !wanted(&faults, fault.key()) {
                continue;
            }
            let results: Vec<Run> = (0..runs)
                .map(|n| {
                    let r = run_once(&net, &etcd, system, fault, n);
                    eprintln!(
                        "{} {} run {n}: failover {:?} ms, two workers {:.0} ms",
                        system.key(),
                        fault.key(),
                        r.failover_ms,
                        r.overlap_ms
                    );
                    r
                })
                .collect();
            let mut failovers: Vec<f64> = results.iter().filter_map(|r| r.failover_ms).collect();
            let missed = results.len() - failovers.len();
            let max = failovers.iter().copied().fold(0.0, f64::max);
            let med = median(&mut failovers);
            let overlapping = results.iter().filter(|r| r.overlap_ms > 0.0).count();
            let longest = results.iter().map(|r| r.overlap_ms).fold(0.0, f64::max);
            table += &format!(
                "| {} | {} | {}{} | {:.0} ms | {:.0} ms | {overlapping} | {:.0} ms |\n",
                system.key(),
                fault.key(),
                results.len(),
                if missed > 0 {
                    format!(" ({missed} without failover)")
                } else {
                    String::new()
                },
                med,
                max,
                longest
            );
            rows.push(json!({
                "system": system.key(), "fault": fault.key(), "runs": results.len(),
                "failover_ms": results.iter().map(|r| r.failover_ms).collect::<Vec<_>>(),
                "overlap_ms": results.iter().map(|r| r.overlap_ms).collect::<Vec<_>>(),
            }));
        }
    }
    println!(
        "\nFailover on etcd (3 hosts, an etcd member on each, TTL {TTL} s; {:.0} s):\n",
        began.elapsed().as_secs_f64()
    );
    println!("{table}");
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench");
    let _ = std::fs::create_dir_all(&out);
    let doc = json!({"ttl_s": TTL, "hosts": HOSTS, "rows": rows});
    std::fs::write(
        out.join("etcd.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .unwrap();
}

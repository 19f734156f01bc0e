//! `make bench-anchors`: the failover of keepalived (VRRP, Debian's package), the tool users
//! of small clusters run today, beside bully's in plain mode and in quorum mode, on the same
//! five hosts in network namespaces and the same faults of the master (host5): kill -9, a
//! pulled cable, SIGSTOP, and a partition of its side. Measured as users will see it: a client
//! connects to the VIP every 10 ms. Prints markdown tables and writes
//! `target/bench/anchors.json`.
//!
//! The systems, each holding the same VIP (`.200/24` of the hosts' subnet):
//! - keepalived: unicast VRRP over the bridge, priorities 1 to 5, its default `advert_int 1`.
//! - bully: static peers, default flags but `--startup-delay 1s`, and `--vip ADDR/24`.
//! - bully-quorum: the same with `--quorum 5` and its default `--lease` (read from `bully
//!   --help`: 2 s), so the VIP is fenced by the lease.
//!
//! The faults, and what "failover" means (the end of the first table's figure):
//! - kill -9, cable, SIGSTOP of the master: keepalived's failover ends when host4 (priority 4)
//!   holds the VIP; bully's when node1..node4 all name node4. kill -9 and SIGSTOP take every
//!   process of the keepalived daemon, and bully's node process only: its VIP holder is a
//!   process of its own (`bully __supervise vip`), the fence that outlives a frozen node.
//! - partition: hosts {4,5} | {1,2,3} (nft drops between the sides; the client is in neither)
//!   for a fixed 5 s, then healed. Failover = the side without the master has a master of its
//!   own: keepalived's host3 holds the VIP, bully's node1..node3 name node3. In quorum mode that
//!   is the real failover (host5's side is a minority, its lease ends and its holder lets go);
//!   keepalived and plain bully keep the VIP on host5 too, so it is a second holder. After the
//!   heal every system goes back to host5 ("settled": the VIP on host5 alone from then on,
//!   from the holders' looks).
//!
//! Beside the failover, per run:
//! - the client outage: a client at `.250` on the bridge (`Net::add_client`) connects to the
//!   VIP every 10 ms (30 ms time-out) and every host answers its name on a TCP port (threads
//!   of this benchmark, so a service that outlives the daemon's fault: a killed or frozen
//!   daemon's host that keeps the VIP and its cable still answers). The outage is the longest
//!   stretch between two answered tries (`vip_client::outage_ms`) in the run's window: from
//!   the fault until 1 s after the new master's host answered the client (host4; for the
//!   partition host5 again, once the VIP is on it alone after the heal).
//! - two holders: how long two hosts held the VIP at once in that window, from every host
//!   looking every 5 ms (`HoldWatch`). A master that keeps the VIP after its fault (keepalived
//!   killed or frozen, plain bully frozen or cut off) is still a holder when the window closes;
//!   such runs are counted, and their figure is a lower bound.
//!
//! After every kill, cable or SIGSTOP run the faulted master is killed, "rebooted" (keepalived:
//! the VIP it left is removed), its cable plugged back and it is started again; every run
//! begins from the same state: host5's master alone holds the VIP and answers the client.
//!
//! `--tls` (`make bench-anchors TLS=1`): bully and bully-quorum only, every node with mutual
//! TLS and a certificate naming its host's address (made by `openssl` at the start under
//! `target/bench/anchors-certs/`); the harness asks the nodes over TLS too. Writes
//! `target/bench/anchors-tls.json` and sets its figures beside those of the last plain run's
//! `anchors.json`. In both modes the first series of each bully system also counts the
//! coordinator's connections over an idle window (`idle_connections`): a held beat stream is
//! one connection, whatever the number of beats.
//!
//! A `[[bench]]` with `harness = false`: `cargo bench --bench anchors -- [--runs N]
//! [--only keepalived|bully|bully-quorum[,...]] [--faults kill,cable,stop,partition]
//! [--tls] [--verbose]`. `--only` re-measures those systems and keeps the others' figures from the last
//! `anchors.json` (older files without the client's figures are read too). `--verbose` keeps
//! the logs and prints what the client and the holders saw in every run. Needs root, `ip netns`
//! and nft; without them it prints one line and exits 0.

#[path = "../support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::activity::{describe_since, now_ns, overlap_ms, Interval};
use support::holders::HoldWatch;
use support::netns::{Host, Net, NetCluster, TlsClient};
use support::vip_client::{self, Answer, NameServers, VipClient};
use support::{Rng, TempDir, BIN};

const HOSTS: usize = 5;
/// The master (host5: priority 5, node5) and the next one (host4: priority 4, node4), by index.
const MASTER: usize = 4;
const NEXT: usize = 3;
const SURVIVORS: [usize; 4] = [0, 1, 2, 3];
/// The partition: the master's side and the other one, whose highest host (host3) is its
/// master while the partition lasts.
const MASTER_SIDE: [usize; 2] = [3, 4];
const OTHER_SIDE: [usize; 3] = [0, 1, 2];
const OTHER_MASTER: usize = 2;
/// How long the partition is held before the heal.
const PARTITION_HOLD: Duration = Duration::from_secs(5);
const BULLY_PORT: u16 = 5000;
/// Where every host answers its name (to the client of the VIP).
const NAME_PORT: u16 = 7000;
/// keepalived's default advertisement interval, in seconds.
const ADVERT_INT: f64 = 1.0;
/// `--quorum N` of bully-quorum: every host.
const QUORUM: usize = HOSTS;
/// How often the client tries the VIP, and how often every host looks whether it holds it.
const CLIENT_EVERY: Duration = Duration::from_millis(10);
const LOOK: Duration = Duration::from_millis(5);
/// How long a run's window stays open after the new master's host answered the client: a
/// lower host that takes the VIP a moment later, or the client sent elsewhere, shows in it.
const TAIL: Duration = Duration::from_secs(1);
/// Deadline of every wait for a state.
const WITHIN: Duration = Duration::from_secs(60);
/// Quiet time after the cluster has settled, before the random phase and the fault: every
/// backup has heard the master, every follower holds its watch.
const SETTLE: Duration = Duration::from_millis(1500);
/// How long the coordinator's connections are watched while nothing happens: longer than
/// the default 20 s health interval, so each follower's check shows as a connection.
const IDLE_WINDOW: Duration = Duration::from_secs(25);
/// bully's default `--heartbeat`: what a held stream carries in `IDLE_WINDOW`.
const HEARTBEAT: Duration = Duration::from_millis(250);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Fault {
    /// kill -9 of the master's process(es).
    Kill,
    /// The master's cable pulled (its veth set down on the bridge side).
    Cable,
    /// SIGSTOP of the master's process(es).
    Stop,
    /// Hosts {4,5} cut off from {1,2,3} for `PARTITION_HOLD`, then healed.
    Partition,
}

impl Fault {
    const ALL: [Fault; 4] = [Fault::Kill, Fault::Cable, Fault::Stop, Fault::Partition];

    fn key(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Cable => "cable",
            Fault::Stop => "stop",
            Fault::Partition => "partition",
        }
    }

    fn label(self) -> &'static str {
        match self {
            Fault::Kill => "kill -9 of the master",
            Fault::Cable => "master's cable pulled",
            Fault::Stop => "SIGSTOP of the master",
            Fault::Partition => "partition {4,5} / {1,2,3}, 5 s",
        }
    }

    /// The host that takes the VIP at failover.
    fn taker(self) -> usize {
        if self == Fault::Partition {
            OTHER_MASTER
        } else {
            NEXT
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum System {
    Keepalived,
    Bully,
    /// bully with `--quorum 5` and its default lease.
    Quorum,
}

impl System {
    const ALL: [System; 3] = [System::Keepalived, System::Bully, System::Quorum];

    /// Its key in the JSON and in `--only`.
    fn key(self) -> &'static str {
        match self {
            System::Keepalived => "keepalived",
            System::Bully => "bully",
            System::Quorum => "bully-quorum",
        }
    }

    fn label(self) -> &'static str {
        match self {
            System::Keepalived => "keepalived",
            System::Bully => "bully",
            System::Quorum => "bully --quorum 5",
        }
    }
}

struct Args {
    runs: usize,
    systems: Vec<System>,
    faults: Vec<Fault>,
    verbose: bool,
    /// Mutual TLS between the nodes (bully only).
    tls: bool,
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
        let tls = args.iter().any(|a| a == "--tls");
        // keepalived has no TLS: `--tls` measures the two bully systems.
        let all: &[System] = if tls {
            &[System::Bully, System::Quorum]
        } else {
            &System::ALL
        };
        let runs = value("--runs").map_or(5, |v| match v.parse() {
            Ok(n) if n >= 1 => n,
            _ => bad("--runs"),
        });
        let systems = value("--only").map_or(all.to_vec(), |v| {
            let picked: Vec<System> = v
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    *all.iter()
                        .find(|x| x.key() == s)
                        .unwrap_or_else(|| bad("--only"))
                })
                .collect();
            if picked.is_empty() {
                bad("--only")
            }
            picked
        });
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
            systems,
            faults,
            verbose: args.iter().any(|a| a == "--verbose"),
            tls,
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
    if args.tls && !cfg!(feature = "tls") {
        eprintln!("anchors benchmark: --tls needs a build with the tls feature");
        std::process::exit(2);
    }
    let Some(mut net) = Net::new("anchors", HOSTS) else {
        return;
    };
    let client = net.add_client();
    let servers = NameServers::start(net.hosts(), &host_names(), NAME_PORT);
    let began = Instant::now();
    let loadavg = loadavg();
    let lease = default_lease();
    let mut rng = Rng::new(0x5eed_a4c4);
    let plain_path = target_dir().join("bench").join("anchors.json");
    let json_path = if args.tls {
        target_dir().join("bench").join("anchors-tls.json")
    } else {
        plain_path.clone()
    };
    let certs = args.tls.then(|| Certs::make(&net));

    let mut systems = Vec::new();
    for system in System::ALL {
        let measured = if !args.systems.contains(&system) {
            earlier(&json_path, system.key())
        } else {
            let version = match system {
                System::Keepalived => keepalived_version(),
                _ => Some(bully_version()),
            };
            match version {
                Some(version) => {
                    let faults = args
                        .faults
                        .iter()
                        .map(|&f| series(&net, &client, system, f, &args, certs.as_ref(), &mut rng))
                        .collect();
                    Some(Measured {
                        version,
                        faults,
                        earlier: false,
                    })
                }
                None => {
                    eprintln!("keepalived is not installed (`make bench-anchors` installs it)");
                    None
                }
            }
        };
        systems.push((system, measured));
    }
    drop(servers);
    drop(net);
    // The plain figures to set the TLS ones beside.
    let plain = if args.tls {
        [System::Bully, System::Quorum]
            .into_iter()
            .map(|s| (s, earlier(&plain_path, s.key())))
            .collect()
    } else {
        Vec::new()
    };

    let report = Report {
        tls: args.tls,
        plain,
        runs: args.runs,
        loadavg,
        lease,
        seconds: began.elapsed().as_secs_f64(),
        systems,
    };
    print!("{}", report.markdown());
    let written = std::fs::create_dir_all(json_path.parent().unwrap())
        .and_then(|_| std::fs::write(&json_path, report.json().to_string() + "\n"));
    match written {
        Ok(()) => println!("\nJSON: {}", json_path.display()),
        Err(e) => eprintln!("cannot write {}: {e}", json_path.display()),
    }
}

/// `host1` .. `host5`: what each host answers the client, and the holders' names.
fn host_names() -> Vec<String> {
    (1..=HOSTS).map(|i| format!("host{i}")).collect()
}

/// One system's runs of one fault.
#[derive(Default)]
struct Runs {
    fault: Option<Fault>,
    /// Failover times, seconds (partition runs in which the other side found no master of its
    /// own within the partition are left out and counted in `missed`).
    times: Vec<f64>,
    missed: usize,
    /// The runs in which a host other than the old master and the one taking over held the
    /// VIP too (keepalived: a lower backup that timed out a moment after the next master).
    doubled: Option<usize>,
    /// Per run: the client's outage, ms (empty in an older JSON).
    outages: Vec<f64>,
    /// Per run: the time two hosts held the VIP at once in the run's window, ms.
    two: Vec<f64>,
    /// The runs whose window closed with two hosts still holding the VIP.
    still_two: usize,
    /// Two holders over the whole series, ms: the runs and the restarts between them.
    series_two: Option<f64>,
    /// Partition: seconds from the heal until the VIP was on host5 alone for good.
    settled: Vec<f64>,
    /// The coordinator's connections over an idle window before the first run
    /// (`BullyHosts::idle_connections`), in the series of the first fault.
    idle: Option<Value>,
}

/// One system's figures per fault.
struct Measured {
    version: String,
    faults: Vec<Runs>,
    /// Taken from an earlier `anchors.json` (`--only` measured other systems).
    earlier: bool,
}

impl Measured {
    fn runs(&self, f: Fault) -> Option<&Runs> {
        self.faults.iter().find(|r| r.fault == Some(f))
    }

    fn times(&self, f: Fault) -> Option<&[f64]> {
        self.runs(f)
            .map(|r| r.times.as_slice())
            .filter(|t| !t.is_empty())
    }

    fn json(&self) -> Value {
        json!({
            "version": self.version,
            "faults": self.faults.iter().map(|r| {
                let mut v = stats(&r.times);
                if r.missed > 0 {
                    v["runs_without_failover"] = json!(r.missed);
                }
                if let Some(d) = r.doubled {
                    v["runs_with_two_masters"] = json!(d);
                }
                if !r.outages.is_empty() {
                    v["client_outage_ms"] = json!({
                        "p50": percentile(&r.outages, 50.0),
                        "p99": percentile(&r.outages, 99.0),
                        "max": percentile(&r.outages, 100.0),
                        "samples": r.outages,
                    });
                }
                if !r.two.is_empty() {
                    v["two_holders_ms"] = json!({
                        "sum": r.two.iter().sum::<f64>(),
                        "worst": percentile(&r.two, 100.0),
                        "samples": r.two,
                        "runs_still_two_at_end": r.still_two,
                        "whole_series": r.series_two,
                    });
                }
                if !r.settled.is_empty() {
                    v["settled_after_heal"] = stats(&r.settled);
                }
                if let Some(idle) = &r.idle {
                    v["idle_connections"] = idle.clone();
                }
                (r.fault.map_or("", Fault::key).to_string(), v)
            }).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// Tolerates older files: without the client's and the holders' figures, or the
    /// partition.
    fn from_json(v: &Value) -> Option<Measured> {
        let floats = |v: &Value| -> Vec<f64> {
            v.as_array()
                .map(|a| a.iter().filter_map(Value::as_f64).collect())
                .unwrap_or_default()
        };
        let count = |v: &Value| v.as_u64().unwrap_or(0) as usize;
        let faults = Fault::ALL
            .iter()
            .filter_map(|&f| {
                let r = &v["faults"][f.key()];
                r["samples"].as_array()?;
                Some(Runs {
                    fault: Some(f),
                    times: floats(&r["samples"]),
                    missed: count(&r["runs_without_failover"]),
                    doubled: r["runs_with_two_masters"].as_u64().map(|d| d as usize),
                    outages: floats(&r["client_outage_ms"]["samples"]),
                    two: floats(&r["two_holders_ms"]["samples"]),
                    still_two: count(&r["two_holders_ms"]["runs_still_two_at_end"]),
                    series_two: r["two_holders_ms"]["whole_series"].as_f64(),
                    settled: floats(&r["settled_after_heal"]["samples"]),
                    idle: Some(r["idle_connections"].clone()).filter(|v| !v.is_null()),
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

// ---- the runs, for every system alike ----

/// What the runs need of a system on the five hosts.
trait Subject {
    /// Waits until host5's daemon is the master all the others follow, by the system's own
    /// view; Err with what was seen after `within`.
    fn await_master(&self, net: &Net, within: Duration) -> Result<(), String>;
    fn inflict(&mut self, net: &Net, fault: Fault);
    /// The time from `t0` until failover (see the module's comment); Err with what was seen
    /// once `within` has passed since `t0`.
    fn failover(
        &self,
        net: &Net,
        fault: Fault,
        t0: Instant,
        within: Duration,
    ) -> Result<Duration, String>;
    /// After a kill, cable or SIGSTOP run: the master killed, rebooted, its cable plugged
    /// back, started again.
    fn restart_master(&mut self, net: &Net, fault: Fault);
    /// The last lines of every log, for failure messages.
    fn logs(&self) -> String;
    fn dir(&self) -> &Path;
    /// What the master's connections did over an idle window (bully only).
    fn idle_connections(&self) -> Option<Value> {
        None
    }
}

/// The hosts that hold the VIP by their latest look.
fn holding(watch: &HoldWatch) -> Vec<usize> {
    (0..HOSTS).filter(|&h| watch.holds_now(h)).collect()
}

/// Waits until host5's master is followed, holds the VIP alone and answers the client;
/// panics with what was seen otherwise. Returns when the VIP was seen on host5 alone (ns).
fn await_fresh(
    net: &Net,
    subject: &dyn Subject,
    watch: &HoldWatch,
    client: &VipClient,
    what: &str,
) -> u128 {
    subject
        .await_master(net, WITHIN)
        .unwrap_or_else(|seen| panic!("{what}: host5 is not the master: {seen}"));
    let sole = support::poll(WITHIN, || {
        let h = holding(watch);
        (h == [MASTER])
            .then(now_ns)
            .ok_or_else(|| format!("the VIP is on {}", names(&h)))
    })
    .unwrap_or_else(|seen| panic!("{what}: not on host5 alone: {seen}\n{}", subject.logs()));
    if client.await_answer("host5", sole, WITHIN).is_none() {
        panic!(
            "{what}: host5 holds the VIP alone, but the client got no answer from it within \
             {WITHIN:?}; it saw: {}\n{}",
            client_seen(&client.answers(), sole, sole),
            subject.logs()
        );
    }
    sole
}

/// `runs` runs of `fault` on `system`, started afresh on the hosts of `net`.
fn series(
    net: &Net,
    client_host: &Host,
    system: System,
    fault: Fault,
    args: &Args,
    certs: Option<&Certs>,
    rng: &mut Rng,
) -> Runs {
    let vip = net.addr(200);
    for h in net.hosts() {
        forget_vip(h, vip);
    }
    let mut subject: Box<dyn Subject> = match system {
        System::Keepalived => Box::new(KeepalivedHosts::start(net, vip)),
        System::Bully => Box::new(BullyHosts::start(net, vip, false, certs)),
        System::Quorum => Box::new(BullyHosts::start(net, vip, true, certs)),
    };
    let watch = HoldWatch::start(net.hosts(), host_names(), IpAddr::V4(vip), LOOK);
    let client = VipClient::start(client_host, vip, NAME_PORT, CLIENT_EVERY);
    let who = format!("{}, {}", system.label(), fault.label());
    await_fresh(net, &*subject, &watch, &client, &who);
    let mut r = Runs {
        fault: Some(fault),
        doubled: Some(0),
        ..Runs::default()
    };
    if args.faults.first() == Some(&fault) {
        r.idle = subject.idle_connections();
        if let Some(v) = &r.idle {
            eprintln!("{}: idle connections: {v}", system.label());
        }
    }
    for run in 1..=args.runs {
        std::thread::sleep(SETTLE + Duration::from_millis(rng.below(1000) as u64));
        let t0 = Instant::now();
        let t0_ns = now_ns();
        subject.inflict(net, fault);
        let took = if fault == Fault::Partition {
            let took = subject.failover(net, fault, t0, PARTITION_HOLD);
            std::thread::sleep(PARTITION_HOLD.saturating_sub(t0.elapsed()));
            net.heal();
            took.map_err(|seen| {
                eprintln!("{who}, run {run}: no failover within the partition; last seen {seen}")
            })
            .ok()
        } else {
            Some(
                subject
                    .failover(net, fault, t0, WITHIN)
                    .unwrap_or_else(|seen| {
                        panic!("{who}: no failover within {WITHIN:?}; last seen {seen}")
                    }),
            )
        };
        let heal_ns = now_ns();
        // The new master's host answers the client: host4, or host5 again after the heal
        // once it holds the VIP alone.
        let (answered, settled) = if fault == Fault::Partition {
            let sole = await_fresh(net, &*subject, &watch, &client, &who);
            // The heal's end, from the looks: host5's last taking of the VIP or another
            // host's last letting go, whichever came later.
            let end = watch
                .intervals()
                .iter()
                .filter(|iv| iv.end >= heal_ns && iv.start <= sole)
                .map(|iv| if iv.node == "host5" { iv.start } else { iv.end })
                .max()
                .unwrap_or(heal_ns)
                .max(heal_ns);
            (
                client.await_answer("host5", sole, Duration::ZERO),
                Some((end - heal_ns) as f64 / 1e9),
            )
        } else {
            (client.await_answer("host4", t0_ns, WITHIN), None)
        };
        if answered.is_none() {
            panic!(
                "{who}, run {run}: the client got no answer from host{} within {WITHIN:?}; it \
                 saw (from the fault): {}\nholders: {}\n{}",
                if fault == Fault::Partition { 5 } else { 4 },
                client_seen(&client.answers(), t0_ns, t0_ns),
                names(&holding(&watch)),
                subject.logs()
            );
        }
        std::thread::sleep(TAIL);
        let end_ns = now_ns();
        let answers = client.answers();
        let outage = vip_client::outage_ms(&answers, t0_ns, end_ns);
        let held = clip(&watch.intervals(), t0_ns, end_ns);
        let two = overlap_ms(&held);
        let still_two = holding(&watch).len() >= 2;
        let expected = [host_name(MASTER), host_name(fault.taker())];
        let mut others: Vec<&str> = held
            .iter()
            .map(|iv| iv.node.as_str())
            .filter(|n| !expected.iter().any(|e| e == n))
            .collect();
        others.sort();
        others.dedup();
        eprintln!(
            "{who}, run {run}: failover {}; client outage {outage:.0} ms; two holders \
             {two:.0} ms{}{}{}",
            took.map_or("none".into(), |t| ms(t.as_secs_f64())),
            if still_two {
                " (still two at the end)"
            } else {
                ""
            },
            settled.map_or(String::new(), |s| format!(
                "; settled {} after the heal",
                ms(s)
            )),
            if others.is_empty() {
                String::new()
            } else {
                format!("; {} took it too", others.join(", "))
            }
        );
        if args.verbose {
            eprintln!(
                "  client: {}\n  holders (ms from the fault):\n    {}",
                client_seen(&answers, t0_ns.saturating_sub(100_000_000), t0_ns),
                describe_since(
                    &clip(
                        &watch.intervals(),
                        t0_ns.saturating_sub(100_000_000),
                        end_ns
                    ),
                    t0_ns
                )
                .replace('\n', "\n    ")
            );
        }
        match took {
            Some(t) => r.times.push(t.as_secs_f64()),
            None => r.missed += 1,
        }
        r.outages.push(outage);
        r.two.push(two);
        r.still_two += usize::from(still_two);
        if let Some(d) = r.doubled.as_mut() {
            *d += usize::from(!others.is_empty());
        }
        r.settled.extend(settled);
        if fault != Fault::Partition {
            subject.restart_master(net, fault);
            await_fresh(net, &*subject, &watch, &client, &who);
        }
    }
    drop(client);
    let all = watch.finish();
    r.series_two = Some(overlap_ms(&all));
    if args.verbose {
        keep_logs(subject.dir(), &format!("{}-{}", system.key(), fault.key()));
    }
    summary(&who, &r);
    drop(subject);
    for h in net.hosts() {
        forget_vip(h, vip);
    }
    r
}

fn host_name(i: usize) -> String {
    format!("host{}", i + 1)
}

/// The intervals cut to `from..to` (ns), those outside dropped.
fn clip(all: &[Interval], from: u128, to: u128) -> Vec<Interval> {
    all.iter()
        .filter(|iv| iv.end >= from && iv.start <= to)
        .map(|iv| Interval {
            start: iv.start.max(from),
            end: iv.end.min(to),
            ..iv.clone()
        })
        .collect()
}

/// What the client saw from `since` (ns): each run of like answers with its times from
/// `base` (ns) and its number of tries, e.g. `host5 -95..-9 ms (9), none 2..2 ms (1)`.
fn client_seen(answers: &[Answer], since: u128, base: u128) -> String {
    let mut runs: Vec<(Option<&str>, u128, u128, usize)> = Vec::new();
    for (at, name) in answers.iter().filter(|(at, _)| *at >= since) {
        match runs.last_mut() {
            Some(r) if r.0 == name.as_deref() => {
                r.2 = *at;
                r.3 += 1;
            }
            _ => runs.push((name.as_deref(), *at, *at, 1)),
        }
    }
    let ms = |t: u128| (t as f64 - base as f64) / 1e6;
    let text: Vec<String> = runs
        .iter()
        .map(|(n, a, b, k)| {
            format!(
                "{} {:.0}..{:.0} ms ({k})",
                n.unwrap_or("none"),
                ms(*a),
                ms(*b)
            )
        })
        .collect();
    let skip = text.len().saturating_sub(40);
    let cut = if skip > 0 { "..., " } else { "" };
    format!("{cut}{}", text[skip..].join(", "))
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

/// keepalived on every host of a net, sharing one directory of configurations and logs.
struct KeepalivedHosts {
    /// Before `dir`: the daemons stop before their directory goes.
    daemons: Vec<Keepalived>,
    dir: TempDir,
    vip: Ipv4Addr,
}

impl KeepalivedHosts {
    fn start(net: &Net, vip: Ipv4Addr) -> KeepalivedHosts {
        let dir = TempDir::new("anchors-keepalived");
        let daemons = net
            .hosts()
            .iter()
            .map(|h| Keepalived::start(h, net, vip, dir.path()))
            .collect();
        KeepalivedHosts { daemons, dir, vip }
    }
}

impl Subject for KeepalivedHosts {
    /// host5's daemon is MASTER and only its host holds the VIP.
    fn await_master(&self, net: &Net, within: Duration) -> Result<(), String> {
        support::poll(within, || {
            let h = holders(net, self.vip);
            (h == [MASTER] && self.daemons[MASTER].is_master())
                .then_some(())
                .ok_or_else(|| {
                    format!(
                        "the VIP is on {}, host5's daemon is{} MASTER\n{}",
                        names(&h),
                        if self.daemons[MASTER].is_master() {
                            ""
                        } else {
                            " not"
                        },
                        self.logs()
                    )
                })
        })
    }

    fn inflict(&mut self, net: &Net, fault: Fault) {
        match fault {
            Fault::Kill => self.daemons[MASTER].kill9(),
            Fault::Cable => net.pull_cable(MASTER),
            Fault::Stop => {
                let pids = self.daemons[MASTER].pids();
                self.daemons[MASTER].signal(&pids, libc::SIGSTOP);
            }
            Fault::Partition => net.partition(&[&MASTER_SIDE, &OTHER_SIDE]),
        }
    }

    /// The host taking over (host4; host3 in the partition) holds the VIP.
    fn failover(
        &self,
        net: &Net,
        fault: Fault,
        t0: Instant,
        within: Duration,
    ) -> Result<Duration, String> {
        let taker = net.host(fault.taker());
        loop {
            if taker.holds(self.vip) {
                return Ok(t0.elapsed());
            }
            if t0.elapsed() > within {
                return Err(format!(
                    "the VIP on {}\n{}",
                    names(&holders(net, self.vip)),
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Kills what is left of the master, "reboots" it (drops the VIP it may still hold),
    /// plugs its cable back, starts it again.
    fn restart_master(&mut self, net: &Net, fault: Fault) {
        self.daemons[MASTER].kill9();
        forget_vip(net.host(MASTER), self.vip);
        if fault == Fault::Cable {
            net.plug_cable(MASTER);
        }
        self.daemons[MASTER].restart();
    }

    fn logs(&self) -> String {
        keepalived_logs(self.dir.path())
    }

    fn dir(&self) -> &Path {
        self.dir.path()
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
    let names: Vec<String> = hosts.iter().map(|&i| host_name(i)).collect();
    names.join(", ")
}

// ---- bully ----

/// bully on every host of a net, holding the VIP; in quorum mode with `--quorum 5`.
struct BullyHosts {
    c: NetCluster,
}

impl BullyHosts {
    fn start(net: &Net, vip: Ipv4Addr, quorum: bool, certs: Option<&Certs>) -> BullyHosts {
        let vip = format!("{vip}/24");
        let n = QUORUM.to_string();
        let mut flags = vec!["--startup-delay", "1s", "--vip", &vip];
        if quorum {
            flags.extend(["--quorum", &n]);
        }
        let tag = if quorum {
            "anchors-quorum"
        } else {
            "anchors-bully"
        };
        let mut c = NetCluster::start_each(net, tag, BIN, BULLY_PORT, &flags, |i| {
            certs.map_or_else(Vec::new, |c| c.flags[i].clone())
        });
        c.use_tls(certs.map(|c| c.client.clone()));
        BullyHosts { c }
    }
}

impl Subject for BullyHosts {
    /// All five name node5.
    fn await_master(&self, _: &Net, within: Duration) -> Result<(), String> {
        let all: Vec<usize> = (0..HOSTS).collect();
        self.c
            .agreement_since(&all, "node5", Instant::now(), within)
            .map(drop)
            .map_err(|seen| format!("{seen}\n{}", self.logs()))
    }

    fn inflict(&mut self, net: &Net, fault: Fault) {
        match fault {
            Fault::Kill => self.c.node(MASTER).proc.kill9(),
            Fault::Cable => net.pull_cable(MASTER),
            Fault::Stop => {
                let pid = self.c.node(MASTER).proc.pid().expect("node5 runs") as i32;
                // SAFETY: kill(2) on the node process this benchmark started.
                unsafe { libc::kill(pid, libc::SIGSTOP) };
            }
            Fault::Partition => net.partition(&[&MASTER_SIDE, &OTHER_SIDE]),
        }
    }

    /// node1..node4 name node4; in the partition node1..node3 name node3.
    fn failover(
        &self,
        _: &Net,
        fault: Fault,
        t0: Instant,
        within: Duration,
    ) -> Result<Duration, String> {
        let (hosts, leader): (&[usize], &str) = if fault == Fault::Partition {
            (&OTHER_SIDE, "node3")
        } else {
            (&SURVIVORS, "node4")
        };
        self.c
            .agreement_since(hosts, leader, t0, within)
            .map_err(|seen| format!("{seen}\n{}", self.logs()))
    }

    fn restart_master(&mut self, net: &Net, fault: Fault) {
        self.c.node(MASTER).proc.kill9();
        if fault == Fault::Cable {
            net.plug_cable(MASTER);
        }
        self.c.node(MASTER).proc.restart();
    }

    fn logs(&self) -> String {
        self.c.log_tails()
    }

    fn dir(&self) -> &Path {
        self.c.dir.path()
    }

    /// Over `IDLE_WINDOW` with the master leading and nothing else happening: the
    /// established connections to its port at the start and the end (`ss` in its host), and
    /// the requests it answered meanwhile (`bully_http_requests_total`, each a connection of
    /// its own), beside the beats its held streams carried. Also how long one look at
    /// `/nodeDetails` takes the harness (plain or TLS: the failover times are polled).
    fn idle_connections(&self) -> Option<Value> {
        let node = &self.c.nodes[MASTER];
        let t = Instant::now();
        let looks = 20;
        for _ in 0..looks {
            node.details();
        }
        let look_ms = t.elapsed().as_secs_f64() * 1e3 / f64::from(looks);
        let metrics = || {
            let (status, text) = node.host.get_over(
                BULLY_PORT,
                "/metrics",
                Duration::from_secs(5),
                node.tls.as_ref(),
            );
            (status == 200).then(|| requests_by_route(&text))
        };
        let (before, served_before) = (established(&node.host, BULLY_PORT), metrics()?);
        std::thread::sleep(IDLE_WINDOW);
        let (after, served_after) = (established(&node.host, BULLY_PORT), metrics()?);
        let held = before.iter().filter(|c| after.contains(c)).count();
        let served: serde_json::Map<String, Value> = served_after
            .iter()
            .filter(|(route, _)| route.as_str() != "/metrics")
            .map(|(route, n)| (route, n - served_before.get(route).copied().unwrap_or(0.0)))
            .filter(|(_, n)| *n > 0.0)
            .map(|(route, n)| (route.clone(), json!(n)))
            .collect();
        let followers = HOSTS - 1;
        Some(json!({
            "window_s": IDLE_WINDOW.as_secs_f64(),
            "established_at_start": before.len(),
            "established_at_end": after.len(),
            "held_throughout": held,
            "requests_served": served,
            "beats_sent": (followers as f64 * IDLE_WINDOW.as_secs_f64() / HEARTBEAT.as_secs_f64())
                as u64,
            "details_look_ms": look_ms,
        }))
    }
}

/// The peers (`ADDR:PORT`) of the TCP connections established to `port` on `host`.
fn established(host: &Host, port: u16) -> Vec<String> {
    let out = host
        .command("ss")
        .args([
            "-tnH",
            "state",
            "established",
            "sport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .expect("ss (iproute2) runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3).map(String::from))
        .collect()
}

/// `bully_http_requests_total` summed over codes, by route.
fn requests_by_route(metrics: &str) -> std::collections::BTreeMap<String, f64> {
    let mut by = std::collections::BTreeMap::new();
    for line in metrics.lines() {
        let Some(rest) = line.strip_prefix("bully_http_requests_total{route=\"") else {
            continue;
        };
        let (route, rest) = rest.split_once('"').unwrap_or_default();
        let n = rest
            .rsplit_once(' ')
            .and_then(|(_, n)| n.parse::<f64>().ok())
            .unwrap_or(0.0);
        *by.entry(route.to_string()).or_insert(0.0) += n;
    }
    by
}

/// `--tls`: a CA, a certificate for each host naming its address (as its peers check it),
/// and the harness's client, which presents one more certificate of the same CA.
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
struct Certs {
    /// `--tls-cert`, `--tls-key`, `--tls-ca` of the node on each host.
    flags: Vec<Vec<String>>,
    client: TlsClient,
}

impl Certs {
    /// Made afresh in `target/bench/anchors-certs/` with `openssl`.
    #[cfg(feature = "tls")]
    fn make(net: &Net) -> Certs {
        let dir = target_dir().join("bench").join("anchors-certs");
        let _ = std::fs::remove_dir_all(&dir);
        let pki = support::tls::Pki::new(&dir, "anchors-ca");
        let flags = net
            .hosts()
            .iter()
            .map(|h| {
                let name = format!("node{}", h.index + 1);
                pki.issue_for(&name, &name, &[IpAddr::V4(h.addr())])
                    .flags(&pki.ca())
            })
            .collect();
        let harness = pki.issue("harness", "harness", None);
        Certs {
            flags,
            client: support::tls::client_config(&pki.ca(), Some(&harness)),
        }
    }

    #[cfg(not(feature = "tls"))]
    fn make(_: &Net) -> Certs {
        unreachable!("main refuses --tls in a build without the tls feature")
    }
}

fn bully_version() -> String {
    Command::new(BIN)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|_| "bully".into())
}

/// `--lease`'s default, in seconds, as `bully --help` gives it.
fn default_lease() -> f64 {
    let help = Command::new(BIN)
        .arg("--help")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    let lease = help
        .lines()
        .find(|l| l.trim_start().starts_with("--lease "))
        .and_then(|l| l.split_once("[default: "))
        .and_then(|(_, rest)| rest.split_once(']'))
        .and_then(|(d, _)| {
            if let Some(ms) = d.strip_suffix("ms") {
                ms.parse::<f64>().ok().map(|m| m / 1e3)
            } else {
                d.strip_suffix('s').and_then(|s| s.parse::<f64>().ok())
            }
        });
    lease.unwrap_or_else(|| {
        eprintln!("cannot read --lease's default from `bully --help`: taking 2 s");
        2.0
    })
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

fn summary(who: &str, r: &Runs) {
    eprintln!(
        "{who}: failover p50 {}, max {}; client outage p50 {:.0} ms, p99 {:.0} ms; two holders \
         {:.0} ms in all",
        ms(percentile(&r.times, 50.0)),
        ms(percentile(&r.times, 100.0)),
        percentile(&r.outages, 50.0),
        percentile(&r.outages, 99.0),
        r.two.iter().sum::<f64>()
    );
}

/// What bully is to reach for `fault`: the client's p99 outage in ms (none for the
/// partition), and whether two holders must be 0 ms.
fn target(system: System, fault: Fault, lease: f64) -> Option<(Option<f64>, bool)> {
    let outage = match (system, fault) {
        (System::Keepalived, _) => return None,
        (_, Fault::Kill) => Some(100.0),
        (System::Bully, Fault::Cable | Fault::Stop) => Some(1000.0),
        (System::Quorum, Fault::Cable | Fault::Stop) => Some((lease + 1.0) * 1e3),
        (_, Fault::Partition) => None,
    };
    Some((outage, system == System::Quorum))
}

struct Report {
    /// `--tls`: the nodes spoke mutual TLS.
    tls: bool,
    /// With `--tls`: the last plain run's figures of the bully systems, to compare.
    plain: Vec<(System, Option<Measured>)>,
    runs: usize,
    loadavg: String,
    /// bully's default lease, seconds.
    lease: f64,
    seconds: f64,
    systems: Vec<(System, Option<Measured>)>,
}

impl Report {
    fn measured(&self, s: System) -> Option<&Measured> {
        self.systems
            .iter()
            .find(|(k, _)| *k == s)
            .and_then(|(_, m)| m.as_ref())
    }

    fn markdown(&self) -> String {
        let mut out = String::new();
        let name = |s: System| {
            self.measured(s).map_or("not measured".to_string(), |m| {
                let runs = m.faults.first().map_or(0, |r| r.times.len() + r.missed);
                let when = if m.earlier {
                    ", from an earlier run"
                } else {
                    ""
                };
                format!("{}, {runs} runs per fault{when}", m.version)
            })
        };
        let lease = ms(self.lease);
        if self.tls {
            let _ = writeln!(
                out,
                "\n## With mutual TLS\n\nEvery bully node with --tls-cert, --tls-key, \
                 --tls-ca (an EC P-256 certificate naming its host's address, made by openssl); \
                 keepalived is not measured (it has no TLS)."
            );
        }
        let _ = writeln!(
            out,
            "\n## Failover beside keepalived: {HOSTS} hosts in network namespaces\n\n\
             keepalived ({}): unicast VRRP, priorities 1-5, advert_int {ADVERT_INT} s, a VIP; \
             failover = fault to host4 (priority 4) holding the VIP.\n\
             bully ({}): static peers, default flags but --startup-delay 1s, --vip on the same \
             VIP; failover = fault to node1..node4 naming node4.\n\
             bully --quorum 5 ({}): the same with --quorum 5 and the default lease, {lease}.\n\
             Partition {{4,5}} / {{1,2,3}} for 5 s: failover = the side without the master has \
             one of its own (keepalived: host3 holds the VIP; bully: node1..node3 name node3); \
             keepalived and plain bully keep the VIP on host5 too.\n\
             Load average {}; {:.0} s in all.\n",
            name(System::Keepalived),
            name(System::Bully),
            name(System::Quorum),
            self.loadavg,
            self.seconds
        );
        out += "| fault | keepalived p50 | keepalived max | bully p50 | bully max | \
                bully --quorum 5 p50 | bully --quorum 5 max | bully / keepalived (p50) | \
                quorum / keepalived (p50) |\n";
        out += "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
        for f in Fault::ALL {
            let t = |s: System| self.measured(s).and_then(|m| m.times(f));
            let (k, b, q) = (t(System::Keepalived), t(System::Bully), t(System::Quorum));
            if k.is_none() && b.is_none() && q.is_none() {
                continue;
            }
            let cell = |t: Option<&[f64]>, p: f64| t.map_or("-".into(), |t| ms(percentile(t, p)));
            let ratio = |x: Option<&[f64]>| match (k, x) {
                (Some(k), Some(x)) => ratio(percentile(x, 50.0) / percentile(k, 50.0)),
                _ => "-".into(),
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                f.label(),
                cell(k, 50.0),
                cell(k, 100.0),
                cell(b, 50.0),
                cell(b, 100.0),
                cell(q, 50.0),
                cell(q, 100.0),
                ratio(b),
                ratio(q)
            );
        }
        let mut notes = Vec::new();
        for (s, m) in &self.systems {
            let Some(m) = m else { continue };
            for r in &m.faults {
                let f = r.fault.map_or("", Fault::label);
                let n = r.times.len() + r.missed;
                if r.missed > 0 {
                    notes.push(format!(
                        "{}, {f}: no failover within the partition in {} of {n} runs",
                        s.label(),
                        r.missed
                    ));
                }
                if r.doubled.unwrap_or(0) > 0 {
                    notes.push(format!(
                        "{}, {f}: a third host took the VIP too (beside the old master and \
                         the one taking over) in {} of {n} runs",
                        s.label(),
                        r.doubled.unwrap_or(0)
                    ));
                }
                if !r.settled.is_empty() {
                    notes.push(format!(
                        "{}, {f}: the VIP on host5 alone for good {} (p50), {} (max) after \
                         the heal",
                        s.label(),
                        ms(percentile(&r.settled, 50.0)),
                        ms(percentile(&r.settled, 100.0))
                    ));
                }
            }
        }
        if !notes.is_empty() {
            out += "\n";
            for n in notes {
                let _ = writeln!(out, "- {n}.");
            }
        }
        out += &self.outage_table();
        out += &self.tls_table();
        out += &self.idle_notes();
        out += "\nReproduce: `make bench-anchors` (root; `RUNS=N`, `ONLY=bully-quorum` or a list \
                re-measures those systems beside the last figures of the others; `TLS=1` with \
                mutual TLS).\n";
        out
    }

    /// With `--tls`: each bully system's failover with TLS beside the last plain run's.
    fn tls_table(&self) -> String {
        if !self.tls {
            return String::new();
        }
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n### With mutual TLS beside plain\n\n\
             Plain: the last `anchors.json` (without `--tls`); \"-\" when it has no such \
             figures.\n"
        );
        out += "| fault | system | plain runs | plain p50 | plain max | TLS runs | TLS p50 | \
                TLS max | TLS / plain (p50) |\n";
        out += "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n";
        for f in Fault::ALL {
            for s in [System::Bully, System::Quorum] {
                let tls = self.measured(s).and_then(|m| m.times(f));
                if tls.is_none() {
                    continue;
                }
                let plain = self
                    .plain
                    .iter()
                    .find(|(k, _)| *k == s)
                    .and_then(|(_, m)| m.as_ref())
                    .and_then(|m| m.times(f));
                let cell =
                    |t: Option<&[f64]>, p: f64| t.map_or("-".into(), |t| ms(percentile(t, p)));
                let n = |t: Option<&[f64]>| t.map_or("-".into(), |t| t.len().to_string());
                let r = match (plain, tls) {
                    (Some(p), Some(t)) => ratio(percentile(t, 50.0) / percentile(p, 50.0)),
                    _ => "-".into(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {} | {} | {r} |",
                    f.label(),
                    s.label(),
                    n(plain),
                    cell(plain, 50.0),
                    cell(plain, 100.0),
                    n(tls),
                    cell(tls, 50.0),
                    cell(tls, 100.0),
                );
            }
        }
        out
    }

    /// The idle windows' connection counts (`BullyHosts::idle_connections`).
    fn idle_notes(&self) -> String {
        let mut out = String::new();
        let mut lines = Vec::new();
        for (s, m) in &self.systems {
            let Some(m) = m else { continue };
            for v in m.faults.iter().filter_map(|r| r.idle.as_ref()) {
                lines.push(format!(
                    "{}{}: {} connections established to the master's port at the start of a \
                     {} s idle window, {} at its end, {} held throughout; requests it answered \
                     meanwhile: {}; beats its held streams carried: about {}; one harness look \
                     at /nodeDetails {:.1} ms",
                    s.label(),
                    if self.tls { " (TLS)" } else { "" },
                    v["established_at_start"],
                    v["window_s"],
                    v["established_at_end"],
                    v["held_throughout"],
                    match v["requests_served"].as_object() {
                        Some(m) if !m.is_empty() => Value::Object(m.clone()).to_string(),
                        _ => "none".into(),
                    },
                    v["beats_sent"],
                    v["details_look_ms"].as_f64().unwrap_or(f64::NAN),
                ));
            }
        }
        if !lines.is_empty() {
            out += "\n### Connections while idle\n\n";
            for l in lines {
                let _ = writeln!(out, "- {l}.");
            }
        }
        out
    }

    fn outage_table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n### Client outage (connect to the VIP every 10 ms)\n\n\
             A client at .250 on the bridge, in no partition, connects to the VIP every 10 ms \
             (30 ms time-out); every host answers its name (threads of the benchmark, not of \
             the daemons: a host whose daemon was killed or frozen and that keeps the VIP and \
             its cable still answers, as a service that outlives its daemon would). Outage = the longest stretch \
             between two answers, from the fault until 1 s after the new master's host \
             answered (host4; after the partition host5, once it holds the VIP alone). Two \
             holders = time two hosts held the VIP at once in that window, looked at from \
             every host every 5 ms: the sum over the runs and the worst run; \"≥\" when two \
             still held it as the window closed (the old master keeps it). Targets, bully: \
             kill -9 p99 ≤ 100 ms; cable or SIGSTOP p99 ≤ 1 s (plain), ≤ lease + 1 s = {} \
             (quorum); two holders 0 ms in quorum mode.\n",
            ms(self.lease + 1.0)
        );
        out += "| fault | system | runs | p50 | p99 | max | two holders (sum) | \
                two holders (worst run) | target |\n";
        out += "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n";
        let mut missed = Vec::new();
        let mut older = Vec::new();
        for f in Fault::ALL {
            for (s, m) in &self.systems {
                let Some(r) = m.as_ref().and_then(|m| m.runs(f)) else {
                    continue;
                };
                if r.outages.is_empty() {
                    older.push(format!("{}, {}", s.label(), f.label()));
                    continue;
                }
                let o = &r.outages;
                let cell = |p: f64| {
                    if o.is_empty() {
                        "-".to_string()
                    } else {
                        format!("{:.0} ms", percentile(o, p))
                    }
                };
                let lower = if r.still_two > 0 { "≥ " } else { "" };
                let (sum, worst) = if r.two.is_empty() {
                    ("-".to_string(), "-".to_string())
                } else {
                    (
                        format!("{lower}{:.0} ms", r.two.iter().sum::<f64>()),
                        format!("{lower}{:.0} ms", percentile(&r.two, 100.0)),
                    )
                };
                let goal = match target(*s, f, self.lease) {
                    None => "".to_string(),
                    Some((outage, zero_two)) => {
                        let mut parts = Vec::new();
                        if let Some(limit) = outage {
                            let met = percentile(o, 99.0) <= limit;
                            parts.push(format!(
                                "p99 ≤ {}: {}",
                                ms(limit / 1e3),
                                if met { "met" } else { "**missed**" }
                            ));
                            if !met {
                                missed.push(format!("{}, {}: outage p99", s.label(), f.label()));
                            }
                        }
                        if zero_two {
                            let met = r.two.iter().all(|&t| t == 0.0);
                            parts.push(format!(
                                "two holders 0 ms: {}",
                                if met { "met" } else { "**missed**" }
                            ));
                            if !met {
                                missed.push(format!("{}, {}: two holders", s.label(), f.label()));
                            }
                        }
                        parts.join("; ")
                    }
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {} | {} | {} | {sum} | {worst} | {goal} |",
                    f.label(),
                    s.label(),
                    o.len(),
                    cell(50.0),
                    cell(99.0),
                    cell(100.0),
                );
            }
        }
        let mut notes: Vec<String> = Vec::new();
        if !older.is_empty() {
            notes.push(format!(
                "no client figures in the earlier run's JSON for: {}",
                older.join("; ")
            ));
        }
        for (s, m) in &self.systems {
            let Some(m) = m else { continue };
            for r in &m.faults {
                if r.still_two > 0 {
                    notes.push(format!(
                        "{}, {}: two hosts still held the VIP as the window closed in {} of {} \
                         runs",
                        s.label(),
                        r.fault.map_or("", Fault::label),
                        r.still_two,
                        r.two.len()
                    ));
                }
            }
            let series: Vec<String> = m
                .faults
                .iter()
                .filter_map(|r| {
                    r.series_two
                        .map(|t| format!("{} {t:.0} ms", r.fault.map_or("", Fault::key)))
                })
                .collect();
            if !series.is_empty() {
                notes.push(format!(
                    "{}: two holders over each whole series, restarts of the master included: {}",
                    s.label(),
                    series.join(", ")
                ));
            }
        }
        if missed.is_empty() {
            notes.push("every target met".into());
        } else {
            notes.push(format!("targets missed: {}", missed.join("; ")));
        }
        out += "\n";
        for n in notes {
            let _ = writeln!(out, "- {n}.");
        }
        out
    }

    fn json(&self) -> Value {
        let mut v = json!({
            "tls": self.tls,
            "hosts": HOSTS,
            "runs": self.runs,
            "loadavg": self.loadavg,
            "seconds": self.seconds,
            "client_every_ms": CLIENT_EVERY.as_millis() as u64,
            "holders_look_ms": LOOK.as_millis() as u64,
            "partition_s": PARTITION_HOLD.as_secs_f64(),
        });
        for (s, m) in &self.systems {
            v[s.key()] = m.as_ref().map_or(Value::Null, |m| {
                let mut v = m.json();
                match s {
                    System::Keepalived => v["advert_int"] = json!(ADVERT_INT),
                    System::Bully => {}
                    System::Quorum => {
                        v["quorum"] = json!(QUORUM);
                        v["lease_s"] = json!(self.lease);
                    }
                }
                v
            });
        }
        v
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

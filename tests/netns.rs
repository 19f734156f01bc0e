//! The network-namespace harness itself (hosts, partitions, pulled cables, cleanup), then a
//! bully cluster on five such hosts failing over when its coordinator's cable is pulled, and
//! three with mutual TLS doing the same.
//! Needs root, `ip netns` and `nft`: without them each test prints one line and passes; under
//! `CI=true` they fail instead.

mod support;

use std::io::ErrorKind;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::netns::{namespaces, Net, NetCluster};
use support::{secs, wait_for};

/// How long a connection attempt may take before the path counts as cut. A dropped SYN is
/// retried after 1 s, so a cut path never connects within this.
const CUT: Duration = Duration::from_millis(700);

/// Waits until `from` reaches `to` (a link just restored may take a moment).
fn await_reach(net: &Net, from: usize, to: usize) {
    wait_for(&format!("host {from} to reach host {to}"), secs(20), || {
        net.reaches(from, to, secs(2)).map_err(|e| e.to_string())
    });
}

/// Asserts that `from` cannot reach `to` and that the packets vanish (a time-out), rather than
/// being refused.
fn assert_cut(net: &Net, from: usize, to: usize) {
    match net.reaches(from, to, CUT) {
        Err(e) if e.kind() == ErrorKind::TimedOut => {}
        other => panic!("host {from} to host {to}: expected a time-out, got {other:?}"),
    }
}

#[test]
fn hosts_reach_each_other_and_nothing_lands_in_the_root_namespace() {
    let root_links = || -> Vec<String> {
        std::fs::read_dir("/sys/class/net")
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    };
    let before = root_links();
    let Some(net) = Net::new("reach", 3) else {
        return;
    };
    // The names a Net gives its links (other tests may be making nets meanwhile).
    let ours = |n: &String| {
        n == "br0"
            || n == "eth0"
            || n.strip_prefix('p')
                .is_some_and(|d| d.parse::<u32>().is_ok())
    };
    let new: Vec<String> = root_links()
        .into_iter()
        .filter(|n| !before.contains(n) && ours(n))
        .collect();
    assert!(new.is_empty(), "links added to the root namespace: {new:?}");
    let addrs: Vec<_> = net.hosts().iter().map(|h| h.addr()).collect();
    assert_eq!(addrs.len(), 3);
    assert!(addrs.windows(2).all(|w| w[0] != w[1]), "{addrs:?}");
    for from in 0..3 {
        for to in 0..3 {
            if from != to {
                await_reach(&net, from, to);
            }
        }
    }
    // Each host's eth0 has its peer in the bridge's namespace, not in the root one.
    for h in net.hosts() {
        let out = h
            .command("ip")
            .args(["-o", "link", "show", "eth0"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("link-netns {}-br", net.name)),
            "host {}: {text}",
            h.index
        );
    }
}

#[test]
fn a_partition_drops_traffic_both_ways_and_heal_restores_it() {
    let Some(net) = Net::new("partition", 4) else {
        return;
    };
    for (a, b) in [(0, 1), (0, 2), (1, 3), (2, 3)] {
        await_reach(&net, a, b);
    }
    net.partition(&[&[0, 1], &[2, 3]]);
    for (a, b) in [(0, 1), (1, 0), (2, 3), (3, 2)] {
        net.reaches(a, b, secs(5))
            .unwrap_or_else(|e| panic!("host {a} to host {b} inside one side: {e}"));
    }
    for a in [0, 1] {
        for b in [2, 3] {
            assert_cut(&net, a, b);
            assert_cut(&net, b, a);
        }
    }
    // A new partition replaces the old one.
    net.partition(&[&[0], &[1, 2, 3]]);
    await_reach(&net, 1, 2);
    assert_cut(&net, 0, 1);
    assert_cut(&net, 3, 0);
    net.heal();
    for a in 0..4 {
        for b in 0..4 {
            if a != b {
                await_reach(&net, a, b);
            }
        }
    }
}

#[test]
fn a_pulled_cable_isolates_one_host_until_plugged_back() {
    let Some(net) = Net::new("cable", 3) else {
        return;
    };
    await_reach(&net, 0, 1);
    await_reach(&net, 1, 2);
    net.pull_cable(0);
    for other in [1, 2] {
        assert_cut(&net, 0, other);
        assert_cut(&net, other, 0);
    }
    net.reaches(1, 2, secs(5))
        .expect("hosts 1 and 2 keep their link");
    net.plug_cable(0);
    for other in [1, 2] {
        await_reach(&net, 0, other);
        await_reach(&net, other, 0);
    }
}

#[test]
fn cleanup_leaves_no_namespace_nor_process_behind_even_after_a_panic() {
    // A namespace left by a run whose process is gone (no pid above pid_max exists), with a
    // process still inside: the next Net sweeps both.
    let pid_max: u64 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4_194_304);
    let stale = format!("bullyt{}-0-stale-h0", pid_max + 1);
    let Some(probe) = Net::new("probe", 1) else {
        return;
    };
    drop(probe);
    let added = std::process::Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .unwrap();
    assert!(added.success(), "ip netns add {stale}");
    let mut stale_child = std::process::Command::new("ip")
        .args(["netns", "exec", &stale, "sleep", "600"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the sleeper in the stale namespace", secs(10), || {
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", &stale])
            .output()
            .map_err(|e| e.to_string())?;
        (!out.stdout.is_empty())
            .then_some(())
            .ok_or("no pid yet".into())
    });

    let net = Net::new("cleanup", 2).expect("a second Net where the first worked");
    assert!(
        !namespaces().contains(&stale),
        "the stale namespace was not swept"
    );
    wait_for(
        "the stale namespace's process to die",
        secs(10),
        || match stale_child.try_wait() {
            Ok(Some(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );

    // A process left running on a host dies with the net.
    let mut sleeper = net.host(1).command("sleep").arg("600").spawn().unwrap();
    // `ip netns exec` enters the namespace and then execs: until then the process is not in
    // it, and a drop in between would miss it (CI saw that once).
    let host1 = net.host(1).ns().to_string();
    wait_for("the sleeper inside host1", secs(10), || {
        let out = std::process::Command::new("ip")
            .args(["netns", "pids", &host1])
            .output()
            .map_err(|e| e.to_string())?;
        let pids = String::from_utf8_lossy(&out.stdout).into_owned();
        pids.split_whitespace()
            .any(|p| p == sleeper.id().to_string())
            .then_some(())
            .ok_or(pids)
    });
    let ours = net.namespaces();
    assert_eq!(ours.len(), 3, "two hosts and the bridge: {ours:?}");
    assert!(ours.iter().all(|n| namespaces().contains(n)), "{ours:?}");
    drop(net);
    let left: Vec<_> = namespaces()
        .into_iter()
        .filter(|n| ours.contains(n))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    wait_for("the host's process to die", secs(10), || {
        match sleeper.try_wait() {
            Ok(Some(_)) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });

    // A test that panics half-way still removes everything: run one in a child process.
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "panicking_test_with_a_live_net"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the child test did not fail: {text}");
    assert!(text.contains("deliberate panic"), "{text}");
    let made: Vec<String> = text
        .lines()
        .find_map(|l| l.split_once("namespaces: ").map(|(_, n)| n))
        .unwrap_or_else(|| panic!("the child named no namespaces: {text}"))
        .split(' ')
        .map(String::from)
        .collect();
    assert_eq!(made.len(), 4, "{made:?}");
    let left: Vec<_> = namespaces()
        .into_iter()
        .filter(|n| made.contains(n))
        .collect();
    assert!(left.is_empty(), "left behind after a panic: {left:?}");
}

/// Set for the child run of [`panicking_test_with_a_live_net`].
const CHILD: &str = "BULLY_NETNS_PANIC_CHILD";

/// Panics with a partitioned Net alive; run only by the cleanup test, as a child process.
#[test]
#[ignore = "run by cleanup_leaves_no_namespace_nor_process_behind_even_after_a_panic"]
fn panicking_test_with_a_live_net() {
    if std::env::var_os(CHILD).is_none() {
        return;
    }
    let net = Net::new("panics", 3).expect("Net");
    net.partition(&[&[0], &[1, 2]]);
    println!("namespaces: {}", net.namespaces().join(" "));
    panic!("deliberate panic with a live Net");
}

#[test]
fn bully_fails_over_when_the_coordinators_cable_is_pulled_and_takes_back_when_plugged() {
    let Some(net) = Net::new("bully", 5) else {
        return;
    };
    let c = NetCluster::start(
        &net,
        "netns-bully",
        7000,
        &["--startup-delay", "1s", "--health-interval", "1s"],
    );
    let all = [0, 1, 2, 3, 4];
    let took = c.await_agreement(&all, "node5", secs(60));
    println!("five hosts agree on node5 after {took:?}");

    net.pull_cable(4);
    let t0 = Instant::now();
    let took = c
        .agreement_since(&[0, 1, 2, 3], "node4", t0, secs(90))
        .unwrap_or_else(|seen| panic!("after node5's cable was pulled: {seen}\n{}", c.log_tails()));
    println!("node1..node4 agree on node4 {took:?} after node5's cable was pulled");

    net.plug_cable(4);
    let t0 = Instant::now();
    let took = c
        .agreement_since(&all, "node5", t0, secs(120))
        .unwrap_or_else(|seen| {
            panic!(
                "after node5's cable was plugged back: {seen}\n{}",
                c.log_tails()
            )
        });
    println!("all five agree on node5 again {took:?} after the cable was plugged back");
}

/// Mutual TLS across hosts: each node's certificate names its host's address (an IP subject
/// alternative name), the name its peers check when they call it there, not 127.0.0.1. The
/// nodes serve TLS only, agree, and fail over when the coordinator's cable is pulled; the
/// harness asks them over TLS (`NetCluster::use_tls`), as `make bench-anchors TLS=1` does.
#[cfg(feature = "tls")]
#[test]
fn bully_with_mutual_tls_across_hosts_fails_over_when_the_coordinators_cable_is_pulled() {
    let Some(net) = Net::new("tls", 3) else {
        return;
    };
    let dir = support::TempDir::new("netns-tls-pki");
    let pki = support::tls::Pki::new(dir.path(), "netns-ca");
    let flags: Vec<Vec<String>> = net
        .hosts()
        .iter()
        .map(|h| {
            let name = format!("node{}", h.index + 1);
            pki.issue_for(&name, &name, &[h.addr().into()])
                .flags(&pki.ca())
        })
        .collect();
    let harness = pki.issue("harness", "harness", None);
    let mut c = NetCluster::start_each(
        &net,
        "netns-tls",
        support::BIN,
        7000,
        &["--startup-delay", "1s", "--health-interval", "1s"],
        |i| flags[i].clone(),
    );
    c.use_tls(Some(support::tls::client_config(&pki.ca(), Some(&harness))));
    let took = c.await_agreement(&[0, 1, 2], "node3", secs(60));
    println!("three hosts agree on node3 over TLS after {took:?}");
    let (status, body) = c.nodes[0].host.get(7000, "/nodeDetails", secs(2));
    assert_eq!(
        status, 0,
        "plain HTTP got an answer from a TLS node: {status} {body}"
    );

    net.pull_cable(2);
    let t0 = Instant::now();
    let took = c
        .agreement_since(&[0, 1], "node2", t0, secs(60))
        .unwrap_or_else(|seen| panic!("after node3's cable was pulled: {seen}\n{}", c.log_tails()));
    println!("node1 and node2 agree on node2 {took:?} after node3's cable was pulled");
}

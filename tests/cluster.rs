//! Elections across real node processes on the dir and static registries.

mod support;

use std::time::Duration;
use support::*;

const FAST: &[&str] = &["--startup-delay", "0", "--health-interval", "200ms"];

fn four_nodes(tag: &str) -> Cluster {
    let mut c = Cluster::new(tag, FAST);
    for id in 1..=4 {
        c.start(id, &[]);
    }
    c
}

#[test]
fn four_nodes_elect_the_highest_fail_over_and_hand_back() {
    let mut c = four_nodes("failover");
    c.await_agreement("node4", secs(20));

    c.node("node4").kill9();
    // The bound; detection (200 ms) plus an election on loopback fits with room.
    c.await_agreement("node3", secs(2));

    c.node("node4").restart();
    c.await_agreement("node4", secs(20));
    let d = c.node("node4").details().unwrap();
    assert_eq!(d["is_coordinator"], true, "{d}");
    let d = c.node("node1").details().unwrap();
    assert_eq!(d["is_coordinator"], false, "{d}");
    assert_eq!(d["coordinator_id"], 4, "{d}");
}

#[test]
fn nodes_started_one_at_a_time_in_shuffled_order_end_on_the_highest() {
    // Fixed permutations, so a failure is reproducible.
    for order in [[3u64, 1, 4, 2], [4, 3, 2, 1], [2, 4, 1, 3]] {
        let mut c = Cluster::new("shuffle", FAST);
        for (i, id) in order.iter().enumerate() {
            c.start(*id, &[]);
            let highest = order[..=i].iter().max().unwrap();
            c.await_agreement(&format!("node{highest}"), secs(20));
        }
        c.await_agreement("node4", secs(20));
    }
}

#[test]
fn static_registry_fails_over_too() {
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut c = Cluster::new("static", FAST);
    for id in 1..=4u64 {
        let peers: Vec<String> = ports
            .iter()
            .enumerate()
            .filter(|(i, _)| *i as u64 != id - 1)
            .map(|(_, p)| format!("127.0.0.1:{p}"))
            .collect();
        c.start_on(id, ports[id as usize - 1], &["--peers", &peers.join(",")]);
    }
    c.await_agreement("node4", secs(20));
    c.node("node4").kill9();
    c.await_agreement("node3", secs(5));
    c.node("node4").restart();
    c.await_agreement("node4", secs(20));
}

#[test]
fn separate_clusters_never_see_each_other() {
    let mut a = Cluster::new("clusters", FAST);
    let registry = a.dir.path().join("registry").display().to_string();
    a.start(1, &["--cluster", "alpha"]);
    a.start(2, &["--cluster", "alpha"]);
    let mut b = Cluster::new(
        "clusters-b",
        &[FAST, &["--registry-dir", &registry]].concat(),
    );
    b.start(9, &["--cluster", "beta"]);
    a.await_agreement("node2", secs(20));
    b.await_agreement("node9", secs(20));
}

#[test]
fn sigterm_deregisters_and_the_rest_elect_again() {
    let mut c = four_nodes("sigterm");
    c.await_agreement("node4", secs(20));
    let record = c.dir.path().join("registry/bully/node4.json");
    assert!(record.exists());
    let status = c
        .node("node4")
        .terminate(secs(10))
        .expect("node4 exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    assert!(!record.exists(), "node4's registry record is removed");
    c.await_agreement("node3", secs(5));
}

#[test]
fn a_lower_node_joining_a_running_cluster_learns_the_coordinator() {
    let mut c = Cluster::new("join", FAST);
    c.start(5, &[]);
    c.start(7, &[]);
    c.await_agreement("node7", secs(20));
    c.start(2, &[]);
    c.await_agreement("node7", secs(20));
}

#[test]
fn default_startup_delay_holds_the_first_election() {
    let mut c = Cluster::new("delay", &["--startup-delay", "3s"]);
    c.start(1, &[]);
    std::thread::sleep(Duration::from_millis(500));
    let d = c.nodes[0].details().expect("node answers during the delay");
    assert_eq!(d["coordinator"], serde_json::Value::Null, "{d}");
    c.await_agreement("node1", secs(20));
}

/// Two sides that each elected a coordinator (as across a network partition) merge on the
/// highest once they see each other again: the lower coordinator looks for live higher
/// members at every health interval.
#[test]
fn a_split_heals_when_both_sides_see_each_other_again() {
    let mut low = Cluster::new("split", FAST);
    low.start(1, &[]);
    low.start(2, &[]);
    let mut high = Cluster::new("split-other", FAST);
    high.start(3, &[]);
    low.await_agreement("node2", secs(20));
    high.await_agreement("node3", secs(20));
    // The partition heals: both registries now list all three.
    let a = low.dir.path().join("registry/bully");
    let b = high.dir.path().join("registry/bully");
    for (from, to) in [(&a, &b), (&b, &a)] {
        for e in std::fs::read_dir(from).unwrap().flatten() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    low.await_agreement("node3", secs(10));
    high.await_agreement("node3", secs(10));
}

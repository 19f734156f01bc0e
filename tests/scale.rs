//! Many nodes, many failovers: a 64-node cluster fails over after `kill -9` with fewer than
//! 4N election messages, and a hundred coordinator kills leave no thread, socket or record
//! behind on the nodes that survive them.

mod support;

use support::*;

/// `/proxy` and `/announce` messages a node has sent (retries after a 503 included).
fn election_messages(n: &NodeProc) -> f64 {
    let (status, body) = send(n.port, "GET", "/metrics", b"");
    assert_eq!(status, 200, "{}: /metrics answered {status}", n.name);
    body.lines()
        .filter(|l| {
            l.starts_with("bully_messages_sent_total{kind=\"proxy\"}")
                || l.starts_with("bully_messages_sent_total{kind=\"announce\"}")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Election messages sent by every running node but `except`.
fn total_messages(c: &mut Cluster, except: &str) -> f64 {
    c.nodes
        .iter_mut()
        .filter_map(|n| (n.is_running() && n.name != except).then_some(&*n))
        .map(election_messages)
        .sum()
}

#[test]
fn sixty_four_nodes_fail_over_with_fewer_than_4n_messages() {
    let n = 64;
    let mut c = Cluster::new("scale-64", &["--startup-delay", "0"]);
    for id in 1..=n {
        c.start(id, &[]);
    }
    c.await_agreement(&format!("node{n}"), secs(120));
    // Let the startup's messages settle before counting.
    let top = format!("node{n}");
    let before = wait_for("the message counts to hold still", secs(30), || {
        let a = total_messages(&mut c, &top);
        std::thread::sleep(std::time::Duration::from_millis(500));
        let b = total_messages(&mut c, &top);
        if a == b {
            Ok(b)
        } else {
            Err(format!("{a} then {b}"))
        }
    });
    c.node(&top).kill9();
    let took = c.await_agreement(&format!("node{}", n - 1), secs(60));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let sent = total_messages(&mut c, &top) - before;
    println!(
        "{n} nodes, kill -9 of the coordinator: agreement after {took:?}, {sent} election messages"
    );
    assert!(
        sent <= 4.0 * n as f64,
        "{sent} election messages for one failover of {n} nodes (bound 4N = {})",
        4 * n
    );
}

#[test]
fn a_hundred_coordinator_kills_leave_nothing_behind() {
    let mut c = Cluster::new(
        "scale-kills",
        &["--startup-delay", "0", "--exec", "exec sleep 1000"],
    );
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(30));
    let base: Vec<(usize, usize)> = c.nodes[..2]
        .iter()
        .map(|n| (n.steady_threads(), fd_count(n)))
        .collect();
    for round in 0..100 {
        c.node("node3").kill9();
        c.await_agreement_of(&["node1", "node2"], "node2", secs(20));
        c.node("node3").restart();
        c.await_agreement("node3", secs(20));
        if round % 25 == 0 {
            println!("round {round}: ok");
        }
    }
    for (n, (threads, fds)) in c.nodes[..2].iter().zip(base) {
        let now = n.await_threads_back_to(threads, secs(30));
        let fd_now = wait_for(&format!("{}'s descriptors back", n.name), secs(30), || {
            let f = fd_count(n);
            (f <= fds + 2)
                .then_some(f)
                .ok_or(format!("{f}, baseline {fds}"))
        });
        println!(
            "{}: {now} threads (baseline {threads}), {fd_now} fds (baseline {fds})",
            n.name
        );
    }
    // One record per node, and no exec child but the coordinator's.
    let records = std::fs::read_dir(c.dir.path().join("registry/bully"))
        .unwrap()
        .count();
    assert_eq!(records, 3, "registry records");
    let sleepers = std::process::Command::new("pgrep")
        .args(["-f", "-x", "sleep 1000"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).lines().count())
        .unwrap_or(0);
    let ours = c
        .nodes
        .iter()
        .flat_map(|n| descendants(n.pid().unwrap_or(0)))
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                .is_ok_and(|c| c.starts_with("sleep\0"))
        })
        .count();
    assert_eq!(
        ours, 1,
        "exec children under the nodes ({sleepers} sleep 1000 on the machine)"
    );
}

fn fd_count(n: &NodeProc) -> usize {
    n.pid()
        .and_then(|p| std::fs::read_dir(format!("/proc/{p}/fd")).ok())
        .map_or(0, |d| d.count())
}

/// Every process below `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for t in std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
            for k in kids.split_whitespace().filter_map(|k| k.parse().ok()) {
                out.push(k);
                todo.push(k);
            }
        }
    }
    out
}

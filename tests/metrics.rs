//! `GET /metrics` is valid Prometheus text (checked by a real parser) and its counters move
//! with elections.

mod support;

use prometheus_parse::{Scrape, Value};
use support::*;

fn scrape(port: u16) -> Scrape {
    let (status, body) = send(port, "GET", "/metrics", b"");
    assert_eq!(status, 200, "{body}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("valid exposition format")
}

/// The value of `name` whose labels include every pair in `labels`.
fn value(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let sample = s
        .samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"));
    match sample.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{name}: unexpected {other:?}"),
    }
}

#[test]
fn metrics_parse_and_move_with_elections() {
    let mut c = Cluster::new(
        "metrics",
        &["--startup-delay", "0", "--health-interval", "200ms"],
    );
    // node3 starts once node1 and node2 agree, so its member list holds them and it
    // announces to them (started at once on a loaded machine, it could read a list of one,
    // win alone, and be learned by the others from their question for the term).
    for id in 1..=2 {
        c.start(id, &[]);
    }
    c.await_agreement("node2", secs(20));
    c.start(3, &[]);
    c.await_agreement("node3", secs(20));
    let p2 = c.node("node2").port;
    let p3 = c.node("node3").port;

    let s3 = scrape(p3);
    assert_eq!(value(&s3, "bully_is_coordinator", &[]), 1.0);
    assert_eq!(value(&s3, "bully_coordinator_id", &[]), 3.0);
    assert!(value(&s3, "bully_elections_won_total", &[]) >= 1.0);
    assert!(value(&s3, "bully_messages_sent_total", &[("kind", "announce")]) >= 1.0);
    assert!(value(&s3, "bully_term", &[]) >= 1.0);
    assert!(s3.docs.contains_key("bully_members"), "HELP lines present");

    let before = scrape(p2);
    assert_eq!(value(&before, "bully_is_coordinator", &[]), 0.0);
    // node2 may have learned node3 without an election of its own (a node that already
    // follows a higher coordinator runs no startup election) and from node3's answer to its
    // /proxy rather than an announcement: what is certain is one change of coordinator.
    assert!(value(&before, "bully_coordinator_changes_total", &[]) >= 1.0);
    assert!(
        value(
            &before,
            "bully_http_requests_total",
            &[("route", "/nodeDetails"), ("code", "200")]
        ) >= 1.0
    );
    let won = value(&before, "bully_elections_won_total", &[]);
    let started = value(&before, "bully_elections_started_total", &[]);
    let changes = value(&before, "bully_coordinator_changes_total", &[]);

    c.node("node3").kill9();
    c.await_agreement("node2", secs(10));
    let after = scrape(p2);
    assert_eq!(value(&after, "bully_is_coordinator", &[]), 1.0);
    assert_eq!(value(&after, "bully_elections_won_total", &[]), won + 1.0);
    assert!(value(&after, "bully_elections_started_total", &[]) >= started + 1.0);
    assert!(value(&after, "bully_coordinator_changes_total", &[]) >= changes + 1.0);
    let detected = |how| {
        value(
            &after,
            "bully_failovers_detected_total",
            &[("detected_by", how)],
        )
    };
    assert!(detected("health_check") + detected("watch") >= 1.0);
    assert!(value(&after, "bully_last_election_seconds", &[]) > 0.0);
    // node2 announced its win (node3, whose watch closed, was not asked first: a node just
    // seen to fail is skipped in the next round).
    assert!(
        value(&after, "bully_messages_sent_total", &[("kind", "announce")])
            > value(
                &before,
                "bully_messages_sent_total",
                &[("kind", "announce")]
            )
    );
    assert!(value(&after, "bully_term", &[]) > value(&before, "bully_term", &[]));
}

/// The Metrics table of src/http/README.md lists every series a node serves, each with the type it declares,
/// and nothing it does not serve (quorum mode and a health check add theirs).
#[test]
fn readme_lists_every_series_with_its_type() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/http/README.md"))
            .expect("src/http/README.md");
    let section = readme
        .split("\n## Metrics\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Metrics section");
    // `| `a`, `b{x}` | type | ...`: every name in the first cell has the row's type.
    let mut documented = std::collections::BTreeMap::new();
    for row in section.lines().filter(|l| l.starts_with("| `bully_")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        // The quoted names: every other piece between backticks.
        for name in cells[1].split('`').skip(1).step_by(2) {
            let name = name.split('{').next().unwrap_or(name);
            documented.insert(name.to_string(), cells[2].to_string());
        }
    }
    let mut c = Cluster::new(
        "metrics-readme",
        &[
            "--startup-delay",
            "0",
            "--health-interval",
            "200ms",
            "--quorum",
            "1",
        ],
    );
    c.start(1, &["--check", "true", "--check-interval", "200ms"]);
    c.await_agreement("node1", secs(30));
    let port = c.node("node1").port;
    let (status, body) = send(port, "GET", "/metrics", b"");
    assert_eq!(status, 200, "{body}");
    let mut served = std::collections::BTreeMap::new();
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split_whitespace();
            let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                panic!("bad TYPE line: {line}");
            };
            served.insert(name.to_string(), kind.to_string());
        }
    }
    assert_eq!(
        served, documented,
        "served (left) and the Metrics table of src/http/README.md (right) differ"
    );
}

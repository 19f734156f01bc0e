//! The Consul registry against real Consul agents (and, for broken answers, a fake one).

mod support;

use std::time::{Duration, Instant};
use support::consul::{ConsulAgent, FakeConsul, Instance};
use support::*;

const FAST: &[&str] = &[
    "--startup-delay",
    "0",
    "--health-interval",
    "500ms",
    "--consul-check-interval",
    "1s",
    "--registry",
    "consul",
];

/// A cluster named `tag` on Consul; each node is pointed at an agent when started.
fn cluster(tag: &str) -> Cluster {
    Cluster::new(tag, &[FAST, &["--cluster", tag]].concat())
}

fn start_on(c: &mut Cluster, id: u64, agent: &ConsulAgent) {
    c.start(id, &["--consul", &agent.url()]);
}

/// Waits until `agent` lists the instances of `c`'s service that `want` accepts; returns them.
fn await_instances(
    c: &Cluster,
    agent: &ConsulAgent,
    what: &str,
    within: Duration,
    want: impl Fn(&[Instance]) -> bool,
) -> Vec<Instance> {
    let at = c.common.iter().position(|a| a == "--cluster");
    let service = at.map_or("bully", |i| c.common[i + 1].as_str());
    match poll(within, || {
        let seen = agent.instances(service)?;
        if want(&seen) {
            Ok(seen)
        } else {
            Err(format!("{seen:#?}"))
        }
    }) {
        Ok(v) => v,
        Err(seen) => panic!(
            "{what}: not within {within:?}; Consul listed {seen}\n{}\n{}",
            c.log_tails(),
            agent.log_tail()
        ),
    }
}

fn ids(seen: &[Instance]) -> Vec<&str> {
    seen.iter().map(|i| i.id.as_str()).collect()
}

fn passing(seen: &[Instance], n: usize) -> bool {
    seen.len() == n && seen.iter().all(|i| i.check_status == "passing")
}

/// Fails at once if any running node names another coordinator before `done` holds (or
/// `within` runs out).
fn hold_agreement(
    c: &mut Cluster,
    expected: &str,
    within: Duration,
    what: &str,
    mut done: impl FnMut() -> bool,
) {
    let end = Instant::now() + within;
    loop {
        let views = c.views();
        if views.iter().any(|(_, v)| v.as_deref() != Some(expected)) {
            panic!(
                "{what}: a node left {expected}: {views:?}\n{}",
                c.log_tails()
            );
        }
        if done() {
            return;
        }
        if Instant::now() >= end {
            panic!("{what}: not within {within:?}\n{}", c.log_tails());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A dev agent and node1..node4 on it, agreed on node4, with four passing instances.
fn four_nodes(tag: &str) -> (ConsulAgent, Cluster, Vec<Instance>) {
    let agent = ConsulAgent::dev(tag);
    let mut c = cluster(tag);
    for id in 1..=4 {
        start_on(&mut c, id, &agent);
    }
    c.await_agreement("node4", secs(30));
    let seen = await_instances(&c, &agent, "four passing instances", secs(30), |s| {
        passing(s, 4)
    });
    (agent, c, seen)
}

#[test]
fn four_nodes_register_with_meta_and_an_http_check_and_elect_node4() {
    let (_agent, c, seen) = four_nodes("four");
    assert_eq!(
        ids(&seen),
        ["four-node1", "four-node2", "four-node3", "four-node4"]
    );
    for (i, n) in seen.iter().zip(&c.nodes) {
        assert_eq!(i.service, "four", "{i:?}");
        assert_eq!(
            (i.address.as_str(), i.port),
            ("127.0.0.1", n.port as u64),
            "{i:?}"
        );
        // `instance` is random per process: the instance this node registered.
        let instance = i.meta["instance"].as_str().unwrap_or_default();
        assert_eq!(instance.len(), 16, "{i:?}");
        let meta = serde_json::json!({
            "node_name": n.name, "node_id": n.id.to_string(), "instance": instance,
        });
        assert_eq!(i.meta, meta, "{i:?}");
        let url = format!("http://127.0.0.1:{}/", n.port);
        assert!(
            i.check_output.contains(&url),
            "an HTTP check on GET /: {i:?}"
        );
    }
}

#[test]
fn kill9_of_the_coordinator_elects_node3_and_turns_its_check_critical() {
    let (agent, mut c, _) = four_nodes("kill9");
    c.node("node4").kill9();
    c.await_agreement("node3", secs(10));
    let seen = await_instances(&c, &agent, "node4's check critical", secs(15), |s| {
        s.len() == 4
            && s.iter()
                .all(|i| (i.check_status == "critical") == (i.id == "kill9-node4"))
    });
    assert_eq!(
        seen.len(),
        4,
        "a killed node stays listed until Consul reaps it"
    );
}

#[test]
fn sigterm_removes_the_instance_within_2s() {
    let agent = ConsulAgent::dev("term");
    let mut c = cluster("term");
    start_on(&mut c, 1, &agent);
    start_on(&mut c, 2, &agent);
    c.await_agreement("node2", secs(30));
    await_instances(&c, &agent, "both registered", secs(30), |s| s.len() == 2);
    let signalled = Instant::now();
    let status = c
        .node("node2")
        .terminate(secs(10))
        .expect("node2 exits on SIGTERM");
    assert!(status.success(), "{status:?}");
    await_instances(
        &c,
        &agent,
        "node2 gone",
        secs(2).saturating_sub(signalled.elapsed()),
        |s| ids(s) == ["term-node1"],
    );
    c.await_agreement("node1", secs(10));
}

#[test]
fn an_agent_restart_keeps_the_coordinator_and_the_nodes_register_again() {
    let (mut agent, mut c, _) = four_nodes("restart");

    agent.kill();
    // Several health intervals (500 ms) and registration retries without Consul.
    let outage = Instant::now() + secs(4);
    hold_agreement(&mut c, "node4", secs(10), "Consul away", || {
        Instant::now() >= outage
    });

    // A fresh agent knows nobody: while the nodes register again one by one, the followers
    // must not take node4's absence from the catalog for its death.
    agent.start();
    hold_agreement(&mut c, "node4", secs(30), "registering again", || {
        agent.instances("restart").is_ok_and(|s| passing(&s, 4))
    });
    c.await_agreement("node4", secs(10));
    for n in &c.nodes {
        let log = n.log_text();
        assert!(
            log.contains("had lost this node: registered again"),
            "{}:\n{log}",
            n.name
        );
    }
}

#[test]
fn nodes_on_two_joined_agents_see_each_other_and_agree() {
    let server = ConsulAgent::dev("server");
    let client = ConsulAgent::client_of("client", &server);
    let mut c = cluster("joined");
    start_on(&mut c, 1, &server);
    start_on(&mut c, 3, &server);
    start_on(&mut c, 2, &client);
    start_on(&mut c, 4, &client);
    for agent in [&server, &client] {
        await_instances(&c, agent, "four instances, two per agent", secs(30), |s| {
            s.len() == 4
        });
    }
    c.await_agreement("node4", secs(30));
    // node1 reads only the server agent, node4 registered only with the client agent.
    c.node("node4").kill9();
    c.await_agreement("node3", secs(10));
}

/// Waits until `n` says it stands for nothing: it knows no coordinator and the registry
/// does not hold it.
fn await_unregistered(n: &mut NodeProc) {
    let name = n.name.clone();
    wait_for(&format!("{name} to stand for nothing"), secs(20), || {
        let d = n.details();
        let log = n.log_text();
        match d {
            Some(d)
                if d["coordinator"].is_null()
                    && log.contains("Not registered: standing for nothing")
                    && n.metric("bully_registered") == 0.0 =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}\n{log}")),
        }
    });
}

#[test]
fn broken_consul_answers_are_logged_and_a_node_that_cannot_register_stands_for_nothing() {
    let failing = FakeConsul::start(500, "rpc error: No cluster leader");
    let garbage = FakeConsul::start(200, "{\"Service\": [1, 2,");
    let mut c = Cluster::new("broken", &[FAST, &["--consul-token", "s3cret"]].concat());
    c.start(1, &["--consul", &failing.url()]);
    c.start(2, &["--consul", &garbage.url(), "--cluster", "other"]);
    for (name, expected) in [
        ("node1", "Consul answered 500: rpc error: No cluster leader"),
        ("node2", "not the expected JSON"),
    ] {
        let n = c.node(name);
        wait_for(&format!("{name} logs '{expected}'"), secs(20), || {
            let log = n.log_text();
            log.contains(expected).then_some(()).ok_or(log)
        });
        assert!(n.is_running(), "{name} still runs");
    }
    // node1's registration gets 500 (Consul has no leader): it stands for nothing. node2
    // registered, but cannot read the members: alone, it elects itself.
    await_unregistered(c.node("node1"));
    assert!(c.node("node1").metric("bully_registry_failures_total") >= 1.0);
    wait_for("node2 elects itself", secs(20), || {
        let d = c.node("node2").coordinator();
        (d.as_deref() == Some("node2"))
            .then_some(())
            .ok_or(format!("{d:?}"))
    });
    assert!(c.node("node2").metric("bully_registry_failures_total") >= 1.0);
    let seen = failing.seen();
    let register = seen
        .iter()
        .find(|r| r.starts_with("PUT /v1/agent/service/register "))
        .unwrap_or_else(|| panic!("no registration among {seen:#?}"));
    assert!(
        register
            .to_ascii_lowercase()
            .contains("x-consul-token: s3cret"),
        "{register}"
    );
    // What Consul would be told (a real agent's API does not show the check's timers).
    let body = register.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let body: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {register}"));
    let port = c.node("node1").port;
    let check = serde_json::json!({
        "Name": "bully node1 answers GET /",
        "HTTP": format!("http://127.0.0.1:{port}/"),
        "Method": "GET",
        "Interval": "1000ms",
        "Timeout": "1s",
        "DeregisterCriticalServiceAfter": "60000ms",
    });
    assert_eq!(body["Check"], check, "{body}");
    assert_eq!(
        (&body["ID"], &body["Name"]),
        (&"bully-node1".into(), &"bully".into())
    );
}

#[test]
fn nodes_started_before_consul_register_when_it_comes_and_agree() {
    let mut agent = ConsulAgent::new("late", None);
    let mut c = cluster("late");
    for id in [3, 1, 2] {
        start_on(&mut c, id, &agent);
    }
    // Without a registry no node can register, so none stands: none elects itself (each
    // would, beside the others, were it to stand).
    for n in &mut c.nodes {
        await_unregistered(n);
    }
    agent.start();
    agent.await_leader();
    await_instances(&c, &agent, "all three registered", secs(30), |s| {
        s.len() == 3
    });
    c.await_agreement("node3", secs(20));
}

#[test]
fn a_second_node_with_a_live_name_refuses_to_start_and_the_first_keeps_its_instance() {
    let agent = ConsulAgent::dev("dupname");
    let mut c = cluster("dupname");
    start_on(&mut c, 1, &agent);
    await_instances(&c, &agent, "node1 registered", secs(30), |s| s.len() == 1);
    c.await_agreement("node1", secs(20));
    let port = free_port();
    let mut args = vec![port.to_string(), "node1".into(), "--id".into(), "9".into()];
    args.extend(c.common.iter().cloned());
    args.extend(["--consul".to_string(), agent.url()]);
    let out = std::process::Command::new(BIN)
        .args(&args)
        .output()
        .expect("run a second node1");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.lines()
            .last()
            .is_some_and(|l| l.starts_with("bully: node name 'node1' is taken: a live node")),
        "{err}"
    );
    let seen = agent.instances("dupname").unwrap();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].port, c.node("node1").port as u64, "{seen:?}");
}

#[test]
fn with_consul_away_each_node_logs_the_outage_once_and_counts_every_failure() {
    let (mut agent, mut c, _) = four_nodes("quiet");
    let before: Vec<usize> = c.nodes.iter().map(|n| n.log_text().len()).collect();
    agent.kill();
    // Twenty health intervals (500 ms) without Consul: each an upkeep and, on the
    // coordinator, a read of the members.
    let outage = Instant::now() + secs(10);
    hold_agreement(&mut c, "node4", secs(20), "Consul away", || {
        Instant::now() >= outage
    });
    for (n, from) in c.nodes.iter().zip(&before) {
        let log = n.log_text()[*from..].to_string();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains(" WARN ")).collect();
        assert!(
            !warnings.is_empty() && warnings.len() <= 2,
            "{}: a warning when the outage starts, at most one per kind of failure, got {}:\n{log}",
            n.name,
            warnings.len()
        );
        assert!(
            warnings.iter().all(|w| w.contains("(counted in /metrics")),
            "{}:\n{log}",
            n.name
        );
        let failures = n.metric("bully_registry_failures_total");
        assert!(failures >= 10.0, "{}: {failures} failures counted", n.name);
        assert_eq!(
            n.metric("bully_registered"),
            1.0,
            "{}: still registered",
            n.name
        );
    }
    agent.start();
    agent.await_leader();
    for n in &c.nodes {
        wait_for(
            &format!("{} to log the end of the outage", n.name),
            secs(30),
            || {
                let log = n.log_text();
                if log.contains("works again after") {
                    Ok(())
                } else {
                    Err(log)
                }
            },
        );
    }
    c.await_agreement("node4", secs(20));
}

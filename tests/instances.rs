//! Commands that find their cluster, with real processes: the packaged instances' settings
//! (a defaults file and per-instance files, here in a temp dir named by `BULLY_DEFAULTS`)
//! lead `bully status`, `step-down` and `maintenance` to the nodes without flags;
//! `step-down --cluster X` reaches whoever leads X; `bully help [COMMAND]`; and
//! `bully status --watch | head -1` ends as soon as `head` has its line.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const FAST: &[&str] = &["--startup-delay", "0", "--health-interval", "200ms"];

/// `bully ARGS` with none of the test environment's `BULLY_*` settings (so nothing but the
/// files tells it where the nodes are), `BULLY_DEFAULTS` set to `defaults` when given.
fn bully(defaults: Option<&Path>, args: &[&str]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_remove("XDG_RUNTIME_DIR");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BULLY_") {
            cmd.env_remove(k);
        }
    }
    if let Some(d) = defaults {
        cmd.env("BULLY_DEFAULTS", d);
    }
    let out = cmd.output().expect("run bully");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A cluster `cluster` of nodes 1..=n, and a defaults file naming its registry with instance
/// `lab` (its own file: the cluster and node1's port), as the package lays them out.
fn packaged(tag: &str, cluster: &str, n: u64) -> (Cluster, PathBuf) {
    let mut common = FAST.to_vec();
    common.extend(["--cluster", cluster]);
    let c = Cluster::settled(tag, &common, 1..=n);
    let registry = c.dir.path().join("registry");
    let defaults = c.dir.path().join("etc-default-bully");
    std::fs::write(
        &defaults,
        format!(
            "# as /etc/default/bully\nBULLY_REGISTRY_DIR={}\nBULLY_TIMEOUT=2s\n",
            registry.display()
        ),
    )
    .unwrap();
    let port = c.nodes[0].port;
    std::fs::write(
        instance_file(&defaults, "lab"),
        format!("BULLY_CLUSTER=\"{cluster}\"\nBULLY_PORT={port}\n"),
    )
    .unwrap();
    (c, defaults)
}

fn instance_file(defaults: &Path, name: &str) -> PathBuf {
    PathBuf::from(format!("{}-{name}", defaults.display()))
}

#[test]
fn status_step_down_and_maintenance_find_the_instance_without_flags() {
    let (mut c, defaults) = packaged("inst-one", "labc", 3);
    let d = Some(defaults.as_path());

    // Plain `bully status`: the instance's registry and cluster.
    let (code, out, err) = bully(d, &["status"]);
    assert_eq!(code, 0, "{out}\nstderr: {err}");
    assert!(
        out.ends_with("agreed: coordinator node3; 3 of 3 members reachable\n"),
        "{out}"
    );
    assert!(err.is_empty(), "nothing on stderr: {err}");
    // Without the defaults file it looks elsewhere and finds nobody.
    let (code, out, _) = bully(None, &["status", "--cluster", "labc"]);
    assert_eq!(code, 1, "{out}");

    // `maintenance` without --port: the instance's node, node1.
    let (code, out, err) = bully(d, &["maintenance", "on"]);
    assert_eq!(code, 0, "{out}\nstderr: {err}");
    let seen = c.node("node1").details().unwrap();
    assert_eq!(seen["maintenance"], true, "{seen}");
    assert_eq!(c.node("node2").details().unwrap()["maintenance"], false);
    let (code, _, err) = bully(d, &["maintenance", "off"]);
    assert_eq!(code, 0, "{err}");

    // `step-down` without --port asks node1, which does not lead, and says who does.
    let (code, _, err) = bully(d, &["step-down"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("this node is not the coordinator; node3 is"),
        "{err}"
    );

    // `step-down --cluster labc`: whoever leads, found through the registry; node2 takes over.
    let (code, out, err) = bully(d, &["step-down", "--cluster", "labc"]);
    assert_eq!(
        (code, out.trim()),
        (0, "stepping down; the next node takes over"),
        "{err}"
    );
    c.await_agreement("node2", secs(30));
    // The same with the registry given by hand instead of the instance's settings.
    let registry = c.dir.path().join("registry").display().to_string();
    let (code, out, err) = bully(
        None,
        &[
            "step-down",
            "--cluster",
            "labc",
            "--registry-dir",
            &registry,
        ],
    );
    assert_eq!(code, 0, "{out}\nstderr: {err}");
    let views = wait_for("node2 to step down for another", secs(30), || {
        let v = c.views();
        let leaders: Vec<_> = v.iter().filter_map(|(_, l)| l.clone()).collect();
        if leaders.len() == 3 && leaders.iter().all(|l| *l == leaders[0] && l != "node2") {
            Ok(v)
        } else {
            Err(format!("{v:?}"))
        }
    });
    println!("after two step-downs: {views:?}");

    // A cluster with no node leads nobody: exit 1, saying so.
    let (code, _, err) = bully(
        None,
        &[
            "step-down",
            "--cluster",
            "empty",
            "--registry-dir",
            &registry,
        ],
    );
    assert_eq!(code, 1, "{err}");
    assert!(
        err.starts_with("bully step-down: no member of cluster 'empty' leads"),
        "{err}"
    );
    // --cluster asks whoever leads: a port beside it is a usage error.
    let (code, _, err) = bully(d, &["step-down", "--cluster", "labc", "--port", "1"]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.starts_with("bully step-down: --port: not with --cluster"),
        "{err}"
    );
}

#[test]
fn several_instances_are_each_shown_and_the_node_commands_ask_to_choose() {
    let (mut c, defaults) = packaged("inst-several", "labc", 2);
    std::fs::write(instance_file(&defaults, "web"), "BULLY_PORT=1\n").unwrap();
    // Left behind by dpkg: not an instance.
    std::fs::write(instance_file(&defaults, "lab.dpkg-old"), "").unwrap();
    let d = Some(defaults.as_path());

    let (code, out, err) = bully(d, &["status"]);
    assert_eq!(code, 1, "web has no nodes: {out}\nstderr: {err}");
    assert!(out.starts_with("instance lab (cluster labc):\n"), "{out}");
    assert!(
        out.contains("agreed: coordinator node2; 2 of 2 members reachable"),
        "{out}"
    );
    assert!(
        out.contains("\ninstance web (cluster web):\nno members in cluster 'web'"),
        "{out}"
    );
    assert!(!out.contains("dpkg"), "{out}");
    // --cluster picks the instance.
    let (code, out, err) = bully(d, &["status", "--cluster", "labc", "--json"]);
    assert_eq!(code, 0, "{out}\nstderr: {err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["coordinator"], "node2", "{v}");

    for args in [&["step-down"][..], &["maintenance", "on"]] {
        let (code, out, err) = bully(d, args);
        assert_eq!(code, 2, "{args:?}: {out}\nstderr: {err}");
        assert_eq!(
            err.lines().next().unwrap_or(""),
            format!(
                "bully {}: 2 instances here (lab, web): choose one with --instance NAME",
                args[0]
            )
        );
    }
    let (code, out, err) = bully(d, &["maintenance", "on", "--instance", "lab"]);
    assert_eq!(code, 0, "{out}\nstderr: {err}");
    assert_eq!(c.node("node1").details().unwrap()["maintenance"], true);
    // An explicit flag still wins over the instance's settings.
    let port = c.node("node2").port.to_string();
    let (code, out, err) = bully(
        d,
        &["maintenance", "on", "--instance", "lab", "--port", &port],
    );
    assert_eq!(code, 0, "{out}\nstderr: {err}");
    assert_eq!(c.node("node2").details().unwrap()["maintenance"], true);
}

#[test]
fn help_prints_the_usage_or_a_commands_part() {
    let (code, out, err) = bully(None, &["help"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("bully - leader election"), "{out}");
    assert!(out.contains("bully help [COMMAND]"), "{out}");
    let (code, out, err) = bully(None, &["help", "status"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("bully status ["), "{out}");
    assert!(out.contains("--instance NAME"), "{out}");
    assert!(!out.contains("--startup-delay"), "{out}");
    let (code, out, _) = bully(None, &["help", "step-down"]);
    assert_eq!(code, 0);
    assert!(out.contains("--cluster NAME"), "{out}");
    let (code, out, err) = bully(None, &["help", "nonsense"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("bully help: no command 'nonsense'"),
        "{err}"
    );
}

/// A shell pipeline in a process group of its own, killed whole on drop.
struct Pipeline(Child);

impl Drop for Pipeline {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.wait();
    }
}

#[test]
fn watch_ends_at_once_when_its_reader_goes_away() {
    use std::os::unix::process::CommandExt;
    let c = Cluster::settled("inst-watch", FAST, 1..=2);
    let registry = c.dir.path().join("registry");
    let code_file = c.dir.path().join("watch.code");
    // Nothing changes in a settled cluster: the old watch waited for a change to write.
    let script = format!(
        "{{ '{BIN}' status --watch --registry-dir '{}' --interval 200ms; echo $? > '{}'; }} | head -1",
        registry.display(),
        code_file.display()
    );
    let started = Instant::now();
    let mut p = Pipeline(
        Command::new("sh")
            .args(["-c", &script])
            .env_remove("XDG_RUNTIME_DIR")
            .stdout(Stdio::piped())
            .process_group(0)
            .spawn()
            .expect("sh"),
    );
    let ended = poll(secs(15), || match p.0.try_wait() {
        Ok(Some(s)) => Ok(s),
        _ => Err("still running".to_string()),
    });
    let took = started.elapsed();
    let status = ended
        .unwrap_or_else(|e| panic!("`bully status --watch | head -1` did not end within 15s: {e}"));
    let mut line = String::new();
    use std::io::Read;
    p.0.stdout
        .take()
        .unwrap()
        .read_to_string(&mut line)
        .unwrap();
    println!("`bully status --watch | head -1` ended in {took:?}: {line}");
    assert!(status.success(), "{status:?}");
    assert_eq!(line.lines().count(), 1, "{line}");
    assert!(line.contains(" agreed: coordinator node2"), "{line}");
    let code = std::fs::read_to_string(&code_file).unwrap_or_default();
    assert_eq!(code.trim(), "0", "bully's exit code");
    // Generous for a shared machine; the old watch never ended here at all.
    assert!(took < Duration::from_secs(10), "{took:?}");
}

#[test]
fn a_static_instance_counts_its_own_node_beside_its_peers() {
    // Static peers list the other nodes only, as /etc/default/bully-NAME does on each host.
    let mut c = Cluster::new("inst-static", &[FAST, &["--registry", "static"]].concat());
    let (p1, p2) = (free_port(), free_port());
    c.start_on(1, p1, &["--peers", &format!("127.0.0.1:{p2}")]);
    c.start_on(2, p2, &["--peers", &format!("127.0.0.1:{p1}")]);
    c.await_agreement("node2", secs(30));
    let defaults = c.dir.path().join("etc-default-bully");
    std::fs::write(&defaults, "BULLY_CLUSTER=bully\n").unwrap();
    std::fs::write(
        instance_file(&defaults, "lab"),
        format!("BULLY_PORT={p2}\nBULLY_PEERS=127.0.0.1:{p1}\n"),
    )
    .unwrap();
    let d = Some(defaults.as_path());
    let (code, out, err) = bully(d, &["status"]);
    assert_eq!(code, 0, "{out}\nstderr: {err}");
    assert!(
        out.ends_with("agreed: coordinator node2; 2 of 2 members reachable\n"),
        "{out}"
    );
    // The leader is the instance's own node: found all the same.
    let (code, out, err) = bully(d, &["step-down", "--cluster", "bully"]);
    assert_eq!(code, 0, "{out}\nstderr: {err}");
    c.await_agreement("node1", secs(30));
}

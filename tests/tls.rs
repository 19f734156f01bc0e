//! Mutual TLS between real nodes (`--tls-cert`, `--tls-key`, `--tls-ca`), with certificates made
//! at test time by `openssl`: a TLS cluster elects, fails over after kill -9 and answers
//! `bully status`; clients with a certificate from another CA, an expired or not yet valid one,
//! or none, and plain HTTP, get no answer and change nothing, nor does a node presenting such a
//! certificate; a CA rotation by SIGHUP keeps the coordinator and its term; a client's repeated
//! connections resume their session over X25519 (what each peer call costs), and fresh ones
//! leave no session behind on the node; `bully status`
//! over several packaged instances reads each with its own TLS files, or none.
#![cfg(feature = "tls")]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use support::tls::{client_config, use_client, Identity, Pki};
use support::*;

const FAST: &[&str] = &["--startup-delay", "0", "--health-interval", "200ms"];

/// A cluster whose nodes each get a certificate for their name from `pki` (file `nodeN`), and
/// a harness client presenting `admin`.
fn tls_cluster(tag: &str, pki: &Pki) -> Cluster {
    let admin = pki.issue("admin", "admin", None);
    use_client(Some(client_config(&pki.ca(), Some(&admin))));
    Cluster::new(tag, FAST)
}

fn start_tls(c: &mut Cluster, pki: &Pki, id: u64, ca: &Path) -> usize {
    let id_file = format!("node{id}");
    let ident = pki.issue(&id_file, &id_file, None);
    let flags = ident.flags(ca);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    c.start(id, &flags)
}

fn term(n: &NodeProc) -> u64 {
    n.details().map_or(0, |d| d["term"].as_u64().unwrap_or(0))
}

fn views_with_terms(c: &Cluster) -> Vec<(String, Option<String>, u64)> {
    c.nodes
        .iter()
        .map(|n| (n.name.clone(), n.coordinator(), term(n)))
        .collect()
}

#[test]
fn a_tls_cluster_elects_fails_over_and_answers_status() {
    let dir = TempDir::new("tlscerts");
    let pki = Pki::new(dir.path(), "cluster-ca");
    let mut c = tls_cluster("tlscluster", &pki);
    for id in 1..=4 {
        start_tls(&mut c, &pki, id, &pki.ca());
    }
    c.await_agreement("node4", secs(30));
    // Every follower holds one watch connection to the coordinator, over TLS.
    c.node("node4").kill9();
    c.await_agreement_of(&["node1", "node2", "node3"], "node3", secs(15));
    let logs = c.log_tails();
    assert!(logs.contains("mutual TLS"), "{logs}");
    assert!(!logs.contains("handshake"), "a peer was refused:\n{logs}");

    // bully status with the same flags reads every member; without them it reaches none.
    let registry = c.dir.path().join("registry").display().to_string();
    let admin = Identity {
        cert: pki.dir.join("admin.pem"),
        key: pki.dir.join("admin.key"),
    };
    let mut args = vec!["status".to_string(), "--registry-dir".into(), registry];
    let plain = Command::new(BIN).args(&args).output().unwrap();
    args.extend(admin.flags(&pki.ca()));
    let out = Command::new(BIN).args(&args).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("agreed: coordinator node3"), "{text}");
    assert!(!plain.status.success(), "plain status reached a TLS node");

    // A control command over TLS: maintenance on the coordinator hands over to node2.
    let port = c.node("node3").port.to_string();
    let mut ctl = vec![
        "maintenance".to_string(),
        "on".into(),
        "--port".into(),
        port,
    ];
    ctl.extend(admin.flags(&pki.ca()));
    let out = Command::new(BIN).args(&ctl).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    c.await_agreement_of(&["node1", "node2", "node3"], "node2", secs(15));
}

#[test]
fn clients_without_a_valid_cluster_certificate_get_nothing_and_change_nothing() {
    let dir = TempDir::new("tlsrefuse");
    let pki = Pki::new(dir.path(), "cluster-ca");
    let other = Pki::new(dir.path(), "other-ca");
    let mut c = tls_cluster("tlsrefuse", &pki);
    for id in 1..=3 {
        start_tls(&mut c, &pki, id, &pki.ca());
    }
    c.await_agreement("node3", secs(30));
    let before = views_with_terms(&c);

    let wrong_ca = other.issue("node9", "node9", None);
    let expired = pki.issue(
        "expired",
        "node9",
        Some(("20200101000000Z", "20200201000000Z")),
    );
    let not_yet = pki.issue(
        "notyet",
        "node9",
        Some(("20990101000000Z", "20991231000000Z")),
    );
    let clients = [
        (
            "a certificate from another CA",
            client_config(&pki.ca(), Some(&wrong_ca)),
        ),
        (
            "an expired certificate",
            client_config(&pki.ca(), Some(&expired)),
        ),
        (
            "a certificate not yet valid",
            client_config(&pki.ca(), Some(&not_yet)),
        ),
        ("no certificate", client_config(&pki.ca(), None)),
    ];
    let forged = br#"{"coordinator":"node9","node_id":9,"term":99}"#;
    let vote = br#"{"node_id":9,"node_name":"node9","term":99}"#;
    let requests: [(&str, Vec<u8>); 6] = [
        ("announce", request("POST", "/announce", forged)),
        ("vote", request("POST", "/proxy", vote)),
        ("release", request("POST", "/release", br#"{"coordinator":"node3","node_id":3,"term":1}"#)),
        ("watch", request("GET", "/watch?hold_ms=200", b"")),
        (
            "beat stream",
            b"GET /watch?beat_ms=100 HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: bully-beat\r\n\r\n".to_vec(),
        ),
        ("read", request("GET", "/nodeDetails", b"")),
    ];
    // One of each, slower than the log's limit of five refusals a second: each is logged with
    // its reason.
    let port = c.nodes[0].port;
    for (_, config) in &clients {
        tls::raw(port, &requests[5].1, config);
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    use_client(None);
    raw(port, &requests[5].1);
    let mut answered = Vec::new();
    for n in &c.nodes {
        for (who, config) in &clients {
            for (what, req) in &requests {
                let (status, body) = tls::raw(n.port, req, config);
                if status != 0 {
                    answered.push(format!(
                        "{} answered {what} from {who}: {status} {body}",
                        n.name
                    ));
                }
            }
        }
        // Plain HTTP gets a TLS alert at best, never an HTTP answer.
        use_client(None);
        for (what, req) in &requests {
            let (status, body) = raw(n.port, req);
            if status != 0 {
                answered.push(format!("{} answered plain {what}: {status} {body}", n.name));
            }
        }
    }
    use_client(Some(client_config(
        &pki.ca(),
        Some(&pki.issue("admin2", "admin", None)),
    )));
    assert!(answered.is_empty(), "{}", answered.join("\n"));
    let log = c.nodes[0].log_text();
    for reason in [
        "UnknownIssuer",
        "certificate expired",
        "not valid yet",
        "no certificates",
        "corrupt message",
    ] {
        assert!(log.contains(reason), "node1 did not log {reason}:\n{log}");
    }

    // Nodes that present such certificates (but trust the cluster's CA) cannot take over.
    let rogue_flags = |i: &Identity| i.flags(&pki.ca());
    for (id, ident) in [(9, &wrong_ca), (8, &expired), (7, &not_yet)] {
        let flags = rogue_flags(ident);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        c.start(id, &flags);
    }
    // Each rogue hears nothing from the others and names itself, having sent its election
    // and announcements to every member it lists.
    for name in ["node9", "node8", "node7"] {
        let log = c.node(name).log.clone();
        wait_for(&format!("{name} to try"), secs(20), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains(&format!("Coordinator is: {name}"))
                .then_some(())
                .ok_or(text)
        });
    }
    std::thread::sleep(secs(2));
    let after: Vec<_> = views_with_terms(&c)
        .into_iter()
        .filter(|(n, _, _)| ["node1", "node2", "node3"].contains(&n.as_str()))
        .collect();
    assert_eq!(before, after, "{}", c.log_tails());
}

#[test]
fn a_ca_rotation_by_sighup_keeps_the_coordinator_and_its_term() {
    let dir = TempDir::new("tlsrotate");
    let old = Pki::new(dir.path(), "old-ca");
    let new = Pki::new(dir.path(), "new-ca");
    let mut c = tls_cluster("tlsrotate", &old);
    // Each node's files are its own copies, rewritten in place by the rotation.
    let files = |id: u64| {
        let base = c.dir.path().join(format!("node{id}"));
        (
            base.with_extension("pem"),
            base.with_extension("key"),
            base.with_extension("ca"),
        )
    };
    let mut paths = Vec::new();
    for id in 1..=3u64 {
        let ident = old.issue(&format!("node{id}"), &format!("node{id}"), None);
        let (cert, key, ca) = files(id);
        std::fs::copy(&ident.cert, &cert).unwrap();
        std::fs::copy(&ident.key, &key).unwrap();
        std::fs::copy(old.ca(), &ca).unwrap();
        paths.push((cert, key, ca));
    }
    for (i, (cert, key, ca)) in paths.iter().enumerate() {
        let ident = Identity {
            cert: cert.clone(),
            key: key.clone(),
        };
        let flags = ident.flags(ca);
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        c.start(i as u64 + 1, &flags);
    }
    c.await_agreement("node3", secs(30));
    let before = views_with_terms(&c);
    let replaced = |c: &Cluster, times: usize| {
        for n in &c.nodes {
            let log = n.log.clone();
            wait_for(&format!("{} to reload", n.name), secs(10), || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                (text.matches("TLS certificate, key and CA replaced").count() >= times)
                    .then_some(())
                    .ok_or(text)
            });
        }
    };
    let bundle = format!(
        "{}{}",
        std::fs::read_to_string(old.ca()).unwrap(),
        std::fs::read_to_string(new.ca()).unwrap()
    );
    // 1: trust both CAs.
    for (_, _, ca) in &paths {
        std::fs::write(ca, &bundle).unwrap();
    }
    c.nodes.iter().for_each(|n| n.signal("HUP"));
    replaced(&c, 1);
    // 2: certificates from the new CA.
    for (i, (cert, key, _)) in paths.iter().enumerate() {
        let name = format!("node{}", i + 1);
        let ident = new.issue(&name, &name, None);
        std::fs::copy(&ident.cert, cert).unwrap();
        std::fs::copy(&ident.key, key).unwrap();
    }
    c.nodes.iter().for_each(|n| n.signal("HUP"));
    replaced(&c, 2);
    // 3: trust the new CA only.
    for (_, _, ca) in &paths {
        std::fs::copy(new.ca(), ca).unwrap();
    }
    c.nodes.iter().for_each(|n| n.signal("HUP"));
    replaced(&c, 3);

    // The old CA's certificates are refused now, the new CA's taken.
    let old_admin = old.issue("admin-old", "admin", None);
    let (status, _) = tls::raw(
        c.nodes[0].port,
        &request("GET", "/nodeDetails", b""),
        &client_config(&new.ca(), Some(&old_admin)),
    );
    assert_eq!(
        status, 0,
        "an old-CA client was answered after the rotation"
    );
    use_client(Some(client_config(
        &new.ca(),
        Some(&new.issue("admin", "admin", None)),
    )));
    assert_eq!(before, views_with_terms(&c), "{}", c.log_tails());
    for n in &c.nodes {
        let log = n.log_text();
        assert!(
            !log.contains("is down"),
            "{} saw a failover:\n{log}",
            n.name
        );
    }
    // And the rotated cluster still elects: kill -9 the coordinator.
    c.node("node3").kill9();
    c.await_agreement_of(&["node1", "node2"], "node2", secs(15));
}

#[test]
fn tls_flags_go_together_and_bad_files_are_named() {
    let dir = TempDir::new("tlsflags");
    let pki = Pki::new(dir.path(), "ca");
    let id = pki.issue("node1", "node1", None);
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(["1", "node1"])
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let cert = id.cert.display().to_string();
    let key = id.key.display().to_string();
    let ca = pki.ca().display().to_string();
    let (code, err) = run(&["--tls-cert", &cert, "--tls-ca", &ca]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("bully: --tls-key: missing"), "{err}");
    let (code, err) = run(&["--tls-cert", &cert, "--tls-key", &ca, "--tls-ca", &ca]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("bully: --tls-key: cannot read a private key"),
        "{err}"
    );
    let (code, err) = run(&["--tls-cert", &key, "--tls-key", &key, "--tls-ca", &ca]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("bully: --tls-cert:"), "{err}");
    let other = pki.issue("node2", "node2", None).key.display().to_string();
    let (code, err) = run(&["--tls-cert", &cert, "--tls-key", &other, "--tls-ca", &ca]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.starts_with("bully: --tls-key:"), "{err}");
}

/// node1 alone, leading, with a CA of its own, and a client configuration of a certificate
/// from that CA that no other client shares (so its sessions are its own). The directory
/// comes first so that it is dropped after the cluster.
fn lone_tls_node(tag: &str) -> (TempDir, Cluster, std::sync::Arc<rustls::ClientConfig>) {
    let dir = TempDir::new(tag);
    let pki = Pki::new(dir.path(), &format!("{tag}-ca"));
    let mut c = tls_cluster(tag, &pki);
    start_tls(&mut c, &pki, 1, &pki.ca());
    c.await_agreement("node1", secs(30));
    let client = pki.issue(&format!("{tag}-client"), "client", None);
    let config = client_config(&pki.ca(), Some(&client));
    (dir, c, config)
}

/// One request over a new TLS connection with `config`, read to its end (so the session
/// ticket that came with it is stored): how the handshake went and the key-exchange group.
fn handshake(
    port: u16,
    config: &std::sync::Arc<rustls::ClientConfig>,
) -> (Option<rustls::HandshakeKind>, Option<rustls::NamedGroup>) {
    use std::io::{Read, Write};
    let s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(secs(10))).unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), "127.0.0.1".try_into().unwrap());
    let mut tls = rustls::StreamOwned::new(conn.unwrap(), s);
    let request = b"GET /nodeDetails HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    tls.write_all(request).unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer);
    let group = tls.conn.negotiated_key_exchange_group().map(|g| g.name());
    (tls.conn.handshake_kind(), group)
}

/// Every peer call is a connection of its own, so what one costs is the idle CPU: the second
/// connection of a client must resume (no certificates again) and exchange keys over X25519
/// (rustls' ring default, P-384, cost an idle node 2.4 times the CPU; tests/bench/README.md).
#[test]
fn repeated_connections_resume_over_x25519() {
    let (_dir, mut c, config) = lone_tls_node("tlsresume");
    let port = c.node("node1").port;
    let seen: Vec<_> = (0..3).map(|_| handshake(port, &config)).collect();
    let x25519 = Some(rustls::NamedGroup::X25519);
    let full = Some(rustls::HandshakeKind::Full);
    let resumed = Some(rustls::HandshakeKind::Resumed);
    assert_eq!(
        seen,
        vec![(full, x25519), (resumed, x25519), (resumed, x25519)],
        "handshakes (kind, group) of three connections in a row"
    );
}

/// A fresh client (one that does not resume: `bully status` from cron, a monitor) must leave
/// nothing behind on the node. With a server-side session store each one left its session
/// there, certificate chain and all, about 1.5 KiB, until 256 of them held some 370 KiB.
#[test]
fn fresh_clients_leave_no_sessions_behind_on_the_node() {
    let (_dir, mut c, config) = lone_tls_node("tlsfresh");
    let mut config = (*config).clone();
    config.resumption = rustls::client::Resumption::disabled();
    let config = std::sync::Arc::new(config);
    let node = c.node("node1");
    let (port, pid) = (node.port, node.pid().expect("node1 runs"));
    let anon = || {
        support::soak::Soak::memory_of(pid, Duration::ZERO)
            .expect("node1's memory")
            .pss_anon
    };
    let connect = |n: usize| {
        for _ in 0..n {
            let (kind, _) = handshake(port, &config);
            assert_eq!(kind, Some(rustls::HandshakeKind::Full), "a fresh client");
        }
    };
    // The first connections bring the node's thread stacks and allocator arenas to their
    // working size; what comes after must stay near it.
    connect(50);
    let before = anon();
    connect(300);
    let after = anon();
    assert!(
        after < before + 100,
        "node1's anonymous memory grew from {before} to {after} KiB over 300 fresh clients"
    );
}

/// `bully status` over several packaged instances reads each with its own settings: a TLS
/// instance listed first no longer makes the plain one after it be asked over HTTPS.
#[test]
fn status_reads_each_instance_with_its_own_tls_or_none() {
    let dir = TempDir::new("tlsinst");
    let pki = Pki::new(dir.path(), "inst-ca");
    // The plain one first: from tls_cluster on, this thread's harness speaks TLS.
    let plain = Cluster::settled("tls-inst-b", FAST, 1..=2);
    let mut secure = tls_cluster("tls-inst-a", &pki);
    for id in 1..=2 {
        start_tls(&mut secure, &pki, id, &pki.ca());
    }
    secure.await_agreement("node2", secs(30));
    let admin = pki.issue("status", "status", None);

    let defaults = dir.path().join("etc-default-bully");
    std::fs::write(&defaults, "# as /etc/default/bully\nBULLY_TIMEOUT=2s\n").unwrap();
    let instance = |name: &str, c: &Cluster, tls: &str| {
        let file = format!("{}-{name}", defaults.display());
        let registry = c.dir.path().join("registry");
        let text = format!(
            "BULLY_REGISTRY_DIR={}\nBULLY_CLUSTER=bully\nBULLY_PORT={}\n{tls}",
            registry.display(),
            c.nodes[0].port
        );
        std::fs::write(file, text).unwrap();
    };
    // Instances are read in name order: the TLS one first.
    instance(
        "a-secure",
        &secure,
        &format!(
            "BULLY_TLS_CERT={}\nBULLY_TLS_KEY={}\nBULLY_TLS_CA={}\n",
            admin.cert.display(),
            admin.key.display(),
            pki.ca().display()
        ),
    );
    instance("b-plain", &plain, "");

    let mut cmd = Command::new(BIN);
    cmd.arg("status").env_remove("XDG_RUNTIME_DIR");
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("BULLY_") {
            cmd.env_remove(k);
        }
    }
    let out = cmd.env("BULLY_DEFAULTS", &defaults).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("instance a-secure"), "{text}\n{err}");
    assert!(text.contains("instance b-plain"), "{text}\n{err}");
    assert_eq!(
        text.matches("agreed: coordinator node2; 2 of 2 members reachable")
            .count(),
        2,
        "both instances should be read, each with its own TLS settings:\n{text}\n{err}"
    );
    assert!(out.status.success(), "{text}\n{err}");
}

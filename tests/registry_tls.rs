//! TLS to the registries against real servers with certificates made at test time by
//! `openssl`: a Consul agent serving only HTTPS with `verify_incoming_https`, and an etcd with
//! `--client-cert-auth` on https URLs. Nodes register, elect and take the leader lock over
//! TLS; a node without a client certificate, with one from another CA, or trusting another
//! CA gets nothing from the registry (a clear log line, no crash); bad files stop a node at
//! start with one line naming the flag and the file. (Without the `tls` feature the same
//! settings are refused with one line: the unit tests in src/cli/config.rs check that under
//! `cargo test --lib --no-default-features`.)
#![cfg(feature = "tls")]

mod support;

use bully::tls::client::{self, Source, TlsConnector};
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::consul::consul_binary;
use support::etcd::{etcd_binary, range_keys, range_request};
use support::tls::{Identity, Pki};
use support::*;

/// The test's own HTTPS client: trusts `ca`, presents `id`.
struct Https(ureq::Agent);

impl Https {
    fn new(ca: &Path, id: Option<&Identity>) -> Https {
        let config = client::config(ca, id.map(|i| (i.cert.as_path(), i.key.as_path()))).unwrap();
        Https(client::agent(
            bully::http::peer::agent_config(secs(5), secs(5)),
            TlsConnector {
                source: Source::new(config),
                server_name: None,
            },
        ))
    }

    /// `GET url`, or `POST url` with `body`: status and body, or why no answer came.
    fn call(&self, url: &str, body: Option<&str>) -> Result<(u16, String), String> {
        let sent = match body {
            None => self.0.get(url).call(),
            Some(b) => self.0.post(url).send(b),
        };
        let mut r = sent.map_err(|e| format!("{url}: {e}"))?;
        let text = r.body_mut().read_to_string().unwrap_or_default();
        Ok((r.status().as_u16(), text))
    }
}

/// The last `n` lines of the log file at `path`.
fn tail(path: &Path, n: usize) -> String {
    last_lines(&std::fs::read_to_string(path).unwrap_or_default(), n)
}

/// A server the test started (killed with its process group on drop), and its log.
struct Server {
    _guard: Guarded,
    log: std::path::PathBuf,
}

fn spawn(cmd: &mut Command, log: std::path::PathBuf) -> Server {
    let out = std::fs::File::create(&log).unwrap();
    let guard = Guarded::spawn(
        cmd.stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out),
    )
    .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    Server { _guard: guard, log }
}

/// The certificates of one test: the registry's CA with a server and a client certificate,
/// and another CA with a client certificate of its own.
struct Certs {
    ca: Pki,
    server: Identity,
    client: Identity,
    rogue: Pki,
    rogue_client: Identity,
}

impl Certs {
    fn new(dir: &Path, server_name: &str) -> Certs {
        let ca = Pki::new(dir, "registry-ca");
        let server = ca.issue("server", server_name, None);
        let client = ca.issue("client", "bully", None);
        let rogue = Pki::new(dir, "rogue-ca");
        let rogue_client = rogue.issue("client", "bully", None);
        Certs {
            ca,
            server,
            client,
            rogue,
            rogue_client,
        }
    }
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// Waits until `log` holds `text`; panics with the tail otherwise.
fn await_log(node: &NodeProc, text: &str, within: Duration) -> String {
    match poll(within, || {
        let log = node.log_text();
        log.contains(text).then_some(log).ok_or(String::new())
    }) {
        Ok(log) => log,
        Err(_) => panic!(
            "{} never logged {text:?} within {within:?}:\n{}",
            node.name,
            tail(&node.log, 30)
        ),
    }
}

/// Each of `strangers` (node name, what its log must say) either logs a failed registry call
/// saying `why`, or shows up in what `listed` returns: the latter fails the test at once,
/// as does a crash. Returns the line each logged.
fn await_refused(
    lone: &mut Cluster,
    strangers: &[(&str, &str)],
    listed: &dyn Fn() -> Vec<String>,
    within: Duration,
) {
    for (name, why) in strangers {
        let seen = poll(within, || {
            let names = listed();
            if names.iter().any(|n| n.ends_with(name)) {
                return Ok(Err(names));
            }
            let log = lone.node(name).log_text();
            match log.lines().find(|l| l.contains("failed:")) {
                Some(line) => Ok(Ok(line.to_string())),
                None => Err(format!("{names:?}")),
            }
        });
        match seen {
            Ok(Ok(line)) => eprintln!("{name}: {line}"),
            Ok(Err(names)) => panic!(
                "{name} got into the registry over TLS it should not pass: {names:?}\n{}",
                lone.log_tails()
            ),
            Err(e) => panic!(
                "{name} neither failed nor registered: {e}\n{}",
                lone.log_tails()
            ),
        }
        let log = lone.node(name).log_text();
        assert!(
            log.lines()
                .any(|l| l.contains("failed:") && l.contains(why)),
            "{name} does not say {why:?}:\n{}",
            tail(&lone.node(name).log, 20)
        );
    }
    // Still out a while later, and still running.
    std::thread::sleep(secs(3));
    let names = listed();
    for (name, _) in strangers {
        assert!(
            !names.iter().any(|n| n.ends_with(name)),
            "{name} got into the registry: {names:?}\n{}",
            lone.log_tails()
        );
        assert!(
            lone.node(name).is_running(),
            "{name} crashed\n{}",
            lone.log_tails()
        );
    }
}

/// `bully ARGS`: exit code and stderr+stdout.
fn bully(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

// ---------------------------------------------------------------------------------------
// Consul

/// A `-dev` Consul agent serving only HTTPS, verifying clients' certificates.
struct TlsConsul {
    https: u16,
    client: Https,
    _server: Server,
}

impl TlsConsul {
    fn start(dir: &Path, certs: &Certs) -> TlsConsul {
        let https = free_port();
        let config = json!({
            "ports": {"http": -1, "https": https, "dns": free_port(), "serf_lan": free_port(),
                      "serf_wan": free_port(), "server": free_port(), "grpc": free_port()},
            "ca_file": s(&certs.ca.ca()),
            "cert_file": s(&certs.server.cert),
            "key_file": s(&certs.server.key),
            "verify_incoming_https": true,
        });
        let cfg = dir.join("consul-tls.json");
        std::fs::write(&cfg, config.to_string()).unwrap();
        let data = dir.join("consul-data");
        std::fs::create_dir_all(&data).unwrap();
        let server = spawn(
            Command::new(consul_binary())
                .args([
                    "agent",
                    "-dev",
                    "-node",
                    &format!("tls-{}", std::process::id()),
                ])
                .arg("-data-dir")
                .arg(&data)
                .args(["-bind", "127.0.0.1", "-client", "127.0.0.1", "-config-file"])
                .arg(&cfg),
            dir.join("consul.log"),
        );
        let agent = TlsConsul {
            https,
            client: Https::new(&certs.ca.ca(), Some(&certs.client)),
            _server: server,
        };
        if let Err(e) = poll(secs(60), || {
            let (status, body) = agent.get("/v1/status/leader")?;
            (status == 200 && body.contains(':'))
                .then_some(())
                .ok_or(format!("{status} {body}"))
        }) {
            panic!(
                "the TLS agent has no leader within 60s: {e}\n{}",
                agent.log_tail()
            );
        }
        agent
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.https)
    }

    fn get(&self, path: &str) -> Result<(u16, String), String> {
        self.client.call(&format!("{}{path}", self.url()), None)
    }

    /// The IDs of the passing instances of `service` tagged `tag`.
    fn passing_with_tag(&self, service: &str, tag: &str) -> Result<Vec<String>, String> {
        let (status, body) =
            self.get(&format!("/v1/health/service/{service}?tag={tag}&passing"))?;
        let entries: Vec<Value> =
            serde_json::from_str(&body).map_err(|e| format!("{status} {body:.300} ({e})"))?;
        let mut ids: Vec<String> = entries
            .iter()
            .map(|e| e["Service"]["ID"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// Every instance ID of `service` the catalog has, passing or not.
    fn instances(&self, service: &str) -> Vec<String> {
        let Ok((_, body)) = self.get(&format!("/v1/catalog/service/{service}")) else {
            return Vec::new();
        };
        let entries: Vec<Value> = serde_json::from_str(&body).unwrap_or_default();
        entries
            .iter()
            .map(|e| e["ServiceID"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// The session holding `key`, if any.
    fn lock_holder(&self, key: &str) -> Option<String> {
        let (_, body) = self.get(&format!("/v1/kv/{key}")).ok()?;
        let v: Value = serde_json::from_str(&body).ok()?;
        v[0]["Session"].as_str().map(String::from)
    }

    fn log_tail(&self) -> String {
        format!("consul log:\n{}", tail(&self._server.log, 20))
    }
}

fn consul_args<'a>(tag: &'a str, url: &'a str) -> Vec<&'a str> {
    vec![
        "--startup-delay",
        "0",
        "--health-interval",
        "500ms",
        "--consul-check-interval",
        "1s",
        "--registry",
        "consul",
        "--cluster",
        tag,
        "--consul",
        url,
    ]
}

#[test]
fn consul_over_https_with_verify_incoming_registers_elects_and_refuses_strangers() {
    let dir = TempDir::new("consul-tls");
    let certs = Certs::new(dir.path(), "server.dc1.consul");
    let agent = TlsConsul::start(dir.path(), &certs);
    let url = agent.url();
    let (ca, cert, key) = (
        s(&certs.ca.ca()),
        s(&certs.client.cert),
        s(&certs.client.key),
    );
    let tls = [
        "--consul-cacert",
        &ca,
        "--consul-client-cert",
        &cert,
        "--consul-client-key",
        &key,
        "--consul-lock",
    ];
    let mut c = Cluster::new("ctls", &[&consul_args("ctls", &url)[..], &tls].concat());
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(30));
    let leader = poll(secs(20), || {
        let ids = agent.passing_with_tag("ctls", "leader")?;
        (ids.len() == 1 && ids[0].ends_with("node3"))
            .then_some(ids)
            .ok_or_else(|| "no leader tag yet".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", c.log_tails(), agent.log_tail()));
    eprintln!("consul over https: leader tag on {leader:?}");
    let followers = agent.passing_with_tag("ctls", "follower").unwrap();
    assert_eq!(followers.len(), 2, "{followers:?}");
    assert!(
        agent.lock_holder("bully/ctls/leader").is_some(),
        "--consul-lock over TLS: nobody holds the key\n{}",
        c.log_tails()
    );

    // bully status reads the registry with the same settings, here from Consul's own
    // variables: https from CONSUL_HTTP_SSL, the name Consul's certificates carry.
    let out = Command::new(BIN)
        .args(["status", "--registry", "consul", "--cluster", "ctls"])
        .env("CONSUL_HTTP_ADDR", format!("127.0.0.1:{}", agent.https))
        .env("CONSUL_HTTP_SSL", "true")
        .env("CONSUL_CACERT", &ca)
        .env("CONSUL_CLIENT_CERT", &cert)
        .env("CONSUL_CLIENT_KEY", &key)
        .env("CONSUL_TLS_SERVER_NAME", "server.dc1.consul")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}{err}");
    assert!(text.contains("node3"), "{text}");

    // SIGHUP reads the files again.
    c.node("node1").signal("HUP");
    await_log(
        c.node("node1"),
        "SIGHUP: consul TLS files read again",
        secs(10),
    );

    // Strangers: no client certificate, one from another CA, and a node that trusts another
    // CA than the agent's. None gets in, none crashes.
    let (rca, rcert, rkey) = (
        s(&certs.rogue.ca()),
        s(&certs.rogue_client.cert),
        s(&certs.rogue_client.key),
    );
    let strangers: [(u64, Vec<&str>); 4] = [
        (4, vec!["--consul-cacert", &ca]),
        (
            5,
            vec![
                "--consul-cacert",
                &ca,
                "--consul-client-cert",
                &rcert,
                "--consul-client-key",
                &rkey,
            ],
        ),
        (
            6,
            vec![
                "--consul-cacert",
                &rca,
                "--consul-client-cert",
                &cert,
                "--consul-client-key",
                &key,
            ],
        ),
        (
            7,
            vec![
                "--consul-cacert",
                &ca,
                "--consul-client-cert",
                &cert,
                "--consul-client-key",
                &key,
                "--consul-tls-server-name",
                "server.dc2.consul",
            ],
        ),
    ];
    let mut lone = Cluster::new("ctls-x", &consul_args("ctls", &url));
    for (id, extra) in &strangers {
        lone.start(*id, extra);
    }
    // The agent refuses the client's certificate (or its absence); this node refuses the
    // agent's certificate: another CA, or not the name asked for.
    let listed = || agent.instances("ctls");
    await_refused(
        &mut lone,
        &[
            ("node4", "alert"),
            ("node5", "alert"),
            ("node6", "UnknownIssuer"),
            ("node7", "not valid for name"),
        ],
        &listed,
        secs(20),
    );
    // The cluster never noticed.
    assert_eq!(c.node("node1").coordinator().as_deref(), Some("node3"));
}

#[test]
fn bad_tls_files_stop_a_node_at_start_naming_the_flag_and_the_file() {
    let dir = TempDir::new("tls-bad-files");
    let pki = Pki::new(dir.path(), "ca");
    let a = pki.issue("a", "a", None);
    let b = pki.issue("b", "b", None);
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not PEM at all\n").unwrap();
    let missing = dir.path().join("missing.pem");
    let (ca, junk, missing) = (s(&pki.ca()), s(&junk), s(&missing));
    let (a_cert, b_key) = (s(&a.cert), s(&b.key));
    let base = ["7999", "n", "--consul", "https://127.0.0.1:1"];
    let cases: Vec<(Vec<&str>, &str, &str)> = vec![
        (
            vec!["--consul-cacert", &missing],
            "--consul-cacert",
            &missing,
        ),
        (vec!["--consul-cacert", &junk], "--consul-cacert", &junk),
        (
            vec![
                "--consul-cacert",
                &ca,
                "--consul-client-cert",
                &junk,
                "--consul-client-key",
                &b_key,
            ],
            "--consul-client-cert",
            &junk,
        ),
        (
            vec![
                "--consul-cacert",
                &ca,
                "--consul-client-cert",
                &a_cert,
                "--consul-client-key",
                &junk,
            ],
            "--consul-client-key",
            &junk,
        ),
        (
            vec![
                "--consul-cacert",
                &ca,
                "--consul-client-cert",
                &a_cert,
                "--consul-client-key",
                &b_key,
            ],
            "--consul-client-cert and --consul-client-key",
            &b_key,
        ),
    ];
    for (extra, flag, file) in cases {
        let args = [&base[..], &extra].concat();
        let (code, out) = bully(&args);
        assert_eq!(code, Some(2), "{args:?}: {out}");
        // One line, then the usual pointer to --help.
        let lines: Vec<&str> = out.trim().lines().collect();
        assert!(
            lines.len() == 1 || (lines.len() == 2 && lines[1].starts_with("Try ")),
            "{args:?}: one line, got {out}"
        );
        let line = lines[0];
        assert!(
            line.contains(flag) && line.contains(file),
            "{args:?}: {line}"
        );
        eprintln!("{line}");
    }
    // etcd's, and the variables, the same way.
    let (code, out) = bully(&[
        "7999",
        "n",
        "--etcd",
        "https://127.0.0.1:1",
        "--etcd-cacert",
        &junk,
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("--etcd-cacert") && out.contains(&junk),
        "{out}"
    );
    let out = Command::new(BIN)
        .args(["status", "--consul", "https://127.0.0.1:1"])
        .env("CONSUL_CACERT", &missing)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains("CONSUL_CACERT") && text.contains(&missing),
        "{text}"
    );
}

// ---------------------------------------------------------------------------------------
// etcd

/// A single-member etcd on https client URLs, verifying clients' certificates.
struct TlsEtcd {
    port: u16,
    client: Https,
    server: Server,
}

impl TlsEtcd {
    fn start(dir: &Path, certs: &Certs) -> TlsEtcd {
        let port = free_port();
        let url = format!("https://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let server = spawn(
            Command::new(etcd_binary())
                .args(["--name", "m", "--data-dir"])
                .arg(dir.join("etcd-data"))
                .args([
                    "--listen-client-urls",
                    &url,
                    "--advertise-client-urls",
                    &url,
                ])
                .args([
                    "--listen-peer-urls",
                    &peer,
                    "--initial-advertise-peer-urls",
                    &peer,
                ])
                .args(["--initial-cluster", &format!("m={peer}")])
                .args(["--cert-file", &s(&certs.server.cert)])
                .args(["--key-file", &s(&certs.server.key)])
                .args(["--trusted-ca-file", &s(&certs.ca.ca())])
                .arg("--client-cert-auth"),
            dir.join("etcd.log"),
        );
        let etcd = TlsEtcd {
            port,
            client: Https::new(&certs.ca.ca(), Some(&certs.client)),
            server,
        };
        if let Err(e) = poll(secs(30), || {
            etcd.post("/v3/kv/range", &json!({"key": "AA=="}))
        }) {
            panic!(
                "the TLS etcd does not answer within 30s: {e}\n{}",
                etcd.log_tail()
            );
        }
        etcd
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let (status, text) = self
            .client
            .call(&format!("{}{path}", self.url()), Some(&body.to_string()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{status} {text}: {e}"))?;
        (status == 200)
            .then_some(v)
            .ok_or(format!("{status} {text}"))
    }

    /// The names under `bully/<cluster>/members/`, and who holds `bully/<cluster>/leader`.
    fn members_and_holder(&self, cluster: &str) -> Result<(Vec<String>, Option<String>), String> {
        let prefix = format!("bully/{cluster}/");
        let keys = range_keys(&self.post("/v3/kv/range", &range_request(&prefix))?);
        let mut members = Vec::new();
        let mut holder = None;
        for k in keys {
            if let Some(name) = k.key.strip_prefix(&format!("{prefix}members/")) {
                members.push(name.to_string());
            } else if k.key == format!("{prefix}leader") {
                holder = k.value["node_name"].as_str().map(String::from);
            }
        }
        members.sort();
        Ok((members, holder))
    }

    fn log_tail(&self) -> String {
        format!("etcd log:\n{}", tail(&self.server.log, 20))
    }
}

fn etcd_args<'a>(tag: &'a str, url: &'a str, ttl: &'a str) -> Vec<&'a str> {
    vec![
        "--startup-delay",
        "0",
        "--health-interval",
        "500ms",
        "--registry",
        "etcd",
        "--cluster",
        tag,
        "--etcd",
        url,
        "--etcd-ttl",
        ttl,
    ]
}

#[test]
fn etcd_over_https_with_client_cert_auth_elects_takes_the_lock_and_refuses_strangers() {
    let dir = TempDir::new("etcd-tls");
    let certs = Certs::new(dir.path(), "etcd");
    let etcd = TlsEtcd::start(dir.path(), &certs);
    let url = etcd.url();
    let (ca, cert, key) = (
        s(&certs.ca.ca()),
        s(&certs.client.cert),
        s(&certs.client.key),
    );
    let tls = [
        "--etcd-cacert",
        &ca,
        "--etcd-cert",
        &cert,
        "--etcd-key",
        &key,
        "--etcd-lock",
    ];
    // A 30 s lease: the key goes at once after kill -9 only if the supervisor's revoke got
    // through over TLS.
    let mut c = Cluster::new(
        "etls",
        &[
            &etcd_args("etls", &url, "30s")[..],
            &tls,
            &["--exec", "sleep 1000", "--exec-grace", "1s"],
        ]
        .concat(),
    );
    for id in 1..=3 {
        c.start(id, &[]);
    }
    c.await_agreement("node3", secs(30));
    let seen = poll(secs(20), || {
        let (members, holder) = etcd.members_and_holder("etls")?;
        (members == ["node1", "node2", "node3"] && holder.as_deref() == Some("node3"))
            .then_some((members.clone(), holder.clone()))
            .ok_or(format!("{members:?} {holder:?}"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n{}", c.log_tails(), etcd.log_tail()));
    eprintln!("etcd over https: members and holder {seen:?}");

    // bully status with the same settings, from etcdctl's variables.
    let out = Command::new(BIN)
        .args(["status", "--registry", "etcd", "--cluster", "etls"])
        .env("ETCDCTL_ENDPOINTS", &url)
        .env("ETCDCTL_CACERT", &ca)
        .env("ETCDCTL_CERT", &cert)
        .env("ETCDCTL_KEY", &key)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{text}{err}");
    assert!(text.contains("node3"), "{text}");

    // kill -9 of the holder: its supervisor revokes the lease over TLS.
    c.node("node3").kill9();
    let killed = Instant::now();
    poll(secs(25), || {
        let (_, holder) = etcd.members_and_holder("etls")?;
        (holder.as_deref() == Some("node2"))
            .then_some(())
            .ok_or(format!("{holder:?}"))
    })
    .unwrap_or_else(|e| panic!("node2 never took the key: {e}\n{}", c.log_tails()));
    let taken = killed.elapsed();
    eprintln!("etcd over https: node2 held the key {taken:?} after kill -9 of node3 (TTL 30s)");
    assert!(
        taken < secs(10),
        "the lease was not revoked over TLS: the key was free after {taken:?}\n{}",
        c.log_tails()
    );

    c.node("node1").signal("HUP");
    await_log(
        c.node("node1"),
        "SIGHUP: etcd TLS files read again",
        secs(10),
    );

    // Strangers: trusting another CA, or a client certificate from another CA.
    let (rca, rcert, rkey) = (
        s(&certs.rogue.ca()),
        s(&certs.rogue_client.cert),
        s(&certs.rogue_client.key),
    );
    let mut lone = Cluster::new("etls-x", &etcd_args("etls", &url, "2s"));
    lone.start(
        7,
        &[
            "--etcd-cacert",
            &rca,
            "--etcd-cert",
            &cert,
            "--etcd-key",
            &key,
        ],
    );
    lone.start(
        8,
        &[
            "--etcd-cacert",
            &ca,
            "--etcd-cert",
            &rcert,
            "--etcd-key",
            &rkey,
        ],
    );
    let listed = || {
        etcd.members_and_holder("etls")
            .map(|(m, _)| m)
            .unwrap_or_default()
    };
    await_refused(
        &mut lone,
        &[("node7", "UnknownIssuer"), ("node8", "alert")],
        &listed,
        secs(20),
    );
}

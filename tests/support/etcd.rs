//! A real single-member etcd for the tests, on free ports with its own data directory, killed
//! on drop; and reads of its keys through the same JSON gateway the nodes use.

use super::activity;
use super::{free_port, last_lines, poll, secs, send, wait_for, TempDir};
use serde_json::{json, Value};
use std::path::Path;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// `etcd` on PATH, else the one `tests/support/install-etcd.sh` put in `tools/`; without it the test fails with one line saying so.
pub fn etcd_binary() -> PathBuf {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("etcd"))
        .find(|p| p.is_file());
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/etcd/usr/bin/etcd");
    found
        .or_else(|| local.is_file().then_some(local))
        .unwrap_or_else(|| {
            eprintln!(
                "etcd not found on PATH nor at tools/etcd/usr/bin/etcd: run `make test` (installs \
             it) or `bash tests/support/install-etcd.sh`"
            );
            std::panic::resume_unwind(Box::new("etcd not found"))
        })
}

pub struct EtcdServer {
    pub client: u16,
    peer: u16,
    dir: TempDir,
    child: Option<Child>,
}

/// One key as the test reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    pub key: String,
    pub value: Value,
    pub create_revision: u64,
    pub lease: String,
}

impl EtcdServer {
    /// A started member that answers.
    pub fn start(tag: &str) -> EtcdServer {
        let mut e = EtcdServer {
            client: free_port(),
            peer: free_port(),
            dir: TempDir::new(&format!("etcd-{tag}")),
            child: None,
        };
        e.restart();
        e
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.client)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("etcd.log")
    }

    /// (Re)starts the member on the same ports and data, and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let peer = format!("http://127.0.0.1:{}", self.peer);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = Command::new(etcd_binary())
            .args(["--name", "m", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &self.url()])
            .args(["--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("m={peer}")])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        if let Err(e) = poll(Duration::from_secs(30), || {
            self.post("/v3/kv/range", &json!({"key": "AA=="}))
                .map(|_| ())
        }) {
            panic!("etcd does not answer within 30s: {e}\n{}", self.log_tail());
        }
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        format!("etcd log:\n{}", last_lines(&text, 20))
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Value, String> {
        let (status, text) = send(self.client, "POST", path, body.to_string().as_bytes());
        let v: Value = serde_json::from_str(&text).map_err(|e| format!("{status} {text}: {e}"))?;
        if status == 200 {
            Ok(v)
        } else {
            Err(format!("{status} {text}"))
        }
    }

    /// Every key under `prefix`.
    pub fn keys(&self, prefix: &str) -> Result<Vec<Key>, String> {
        Ok(range_keys(
            &self.post("/v3/kv/range", &range_request(prefix))?,
        ))
    }

    /// The names under `bully/<cluster>/members/`.
    pub fn members(&self, cluster: &str) -> Result<Vec<String>, String> {
        let prefix = format!("bully/{cluster}/members/");
        Ok(self
            .keys(&prefix)?
            .into_iter()
            .map(|k| k.key[prefix.len()..].to_string())
            .collect())
    }

    /// The leader key of `cluster`: who holds it and its revision.
    pub fn leader(&self, cluster: &str) -> Result<Option<(String, u64)>, String> {
        let key = format!("bully/{cluster}/leader");
        Ok(self
            .keys(&key)?
            .into_iter()
            .find(|k| k.key == key)
            .map(|k| {
                let name = k.value["node_name"].as_str().unwrap_or("?").to_string();
                (name, k.create_revision)
            }))
    }
}

/// The JSON gateway's range request for every key under `prefix`.
pub fn range_request(prefix: &str) -> Value {
    let mut end = prefix.as_bytes().to_vec();
    *end.last_mut().unwrap() += 1;
    json!({"key": b64(prefix.as_bytes()), "range_end": b64(&end)})
}

/// The keys of a range answer.
pub fn range_keys(answer: &Value) -> Vec<Key> {
    let kvs = answer["kvs"].as_array().cloned().unwrap_or_default();
    kvs.iter()
        .map(|kv| Key {
            key: String::from_utf8(unb64(kv["key"].as_str().unwrap_or(""))).unwrap(),
            value: serde_json::from_slice(&unb64(kv["value"].as_str().unwrap_or("")))
                .unwrap_or(Value::Null),
            create_revision: kv["create_revision"]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            lease: kv["lease"].as_str().unwrap_or("0").to_string(),
        })
        .collect()
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        self.kill();
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn b64(bytes: &[u8]) -> String {
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() {
                B64[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

pub fn unb64(s: &str) -> Vec<u8> {
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes().filter(|&c| c != b'=') {
        let Some(v) = B64.iter().position(|&b| b == c) else {
            break;
        };
        bits = bits << 6 | v as u32;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

impl EtcdServer {
    /// Turns on etcd's auth: `root` with the root role, and `user` (password `password`)
    /// allowed to read and write `bully/` only.
    pub fn enable_auth(&self, user: &str, password: &str) {
        let calls = [
            (
                "/v3/auth/user/add",
                json!({"name": "root", "password": "root-secret"}),
            ),
            (
                "/v3/auth/user/grant",
                json!({"user": "root", "role": "root"}),
            ),
            (
                "/v3/auth/user/add",
                json!({"name": user, "password": password}),
            ),
            ("/v3/auth/role/add", json!({"name": "bully"})),
            (
                "/v3/auth/role/grant",
                json!({"name": "bully", "perm": {"permType": "READWRITE",
                       "key": b64(b"bully/"), "range_end": b64(b"bully0")}}),
            ),
            (
                "/v3/auth/user/grant",
                json!({"user": user, "role": "bully"}),
            ),
            ("/v3/auth/enable", json!({})),
        ];
        for (path, body) in calls {
            if let Err(e) = self.post(path, &body) {
                panic!("{path}: {e}\n{}", self.log_tail());
            }
        }
    }
}

/// A three-member (or any size) etcd cluster, one member per host of a [`super::netns::Net`]
/// on the hosts' addresses, ports 2379 (clients) and 2380 (peers); killed on drop.
pub struct EtcdHosts {
    members: Vec<Child>,
    pub urls: Vec<String>,
    dir: TempDir,
}

pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

impl EtcdHosts {
    pub fn start(net: &super::netns::Net) -> EtcdHosts {
        let dir = TempDir::new("etcd-hosts");
        let peer = |h: &super::netns::Host| format!("http://{}:{PEER_PORT}", h.addr());
        let initial: Vec<String> = net
            .hosts()
            .iter()
            .map(|h| format!("m{}={}", h.index, peer(h)))
            .collect();
        let urls: Vec<String> = net
            .hosts()
            .iter()
            .map(|h| format!("http://{}:{CLIENT_PORT}", h.addr()))
            .collect();
        let members = net
            .hosts()
            .iter()
            .map(|h| {
                let log =
                    std::fs::File::create(dir.path().join(format!("m{}.log", h.index))).unwrap();
                h.command(etcd_binary().to_str().unwrap())
                    .args(["--name", &format!("m{}", h.index), "--data-dir"])
                    .arg(dir.path().join(format!("m{}", h.index)))
                    .args(["--listen-client-urls", &urls[h.index]])
                    .args(["--advertise-client-urls", &urls[h.index]])
                    .args(["--listen-peer-urls", &peer(h)])
                    .args(["--initial-advertise-peer-urls", &peer(h)])
                    .args(["--initial-cluster", &initial.join(",")])
                    .args(["--initial-cluster-state", "new"])
                    // etcd 3.5's default: a member back from a partition does not force an
                    // election on the others (with 3.4's default it does, renewals stall while
                    // they elect, and a healed cut can cost the leader key a round trip).
                    .arg("--pre-vote")
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("start etcd")
            })
            .collect();
        let e = EtcdHosts { members, urls, dir };
        for h in net.hosts() {
            let ok = poll(Duration::from_secs(30), || {
                let (status, body) = h.get(CLIENT_PORT, "/health", Duration::from_secs(2));
                (status == 200 && body.contains("true"))
                    .then_some(())
                    .ok_or(format!("{status} {body}"))
            });
            if let Err(seen) = ok {
                panic!(
                    "etcd member m{} not healthy: {seen}\n{}",
                    h.index,
                    e.log_tails()
                );
            }
        }
        e
    }

    /// `--etcd` for the node on host `i`: its own member first, then the others.
    pub fn endpoints_for(&self, i: usize) -> String {
        let mut list = vec![self.urls[i].clone()];
        list.extend(
            self.urls
                .iter()
                .enumerate()
                .filter(|(k, _)| *k != i)
                .map(|(_, u)| u.clone()),
        );
        list.join(",")
    }

    pub fn log_tails(&self) -> String {
        (0..self.members.len())
            .map(|i| {
                let text = std::fs::read_to_string(self.dir.path().join(format!("m{i}.log")))
                    .unwrap_or_default();
                format!("--- etcd m{i} ---\n{}", last_lines(&text, 8))
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for EtcdHosts {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.kill();
            let _ = m.wait();
        }
    }
}

/// (node, revision) of every `--on-elected` hook so far.
pub fn elections(elected: &Path) -> Vec<(String, u64)> {
    std::fs::read_to_string(elected)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                f[0].to_string(),
                f.get(1).and_then(|r| r.parse().ok()).unwrap_or(0),
            )
        })
        .collect()
}

/// Every leadership's hook got a higher revision than the one before, the last one is
/// `node`'s with `rev`, and no two `--exec` workers ran at once.
pub fn check_history(elected: &Path, work: &Path, node: &str, rev: u64) {
    check_history_or(elected, work, node, rev, &String::new);
}

/// [`check_history`], with `tails` (the nodes' logs) printed when the hook's revision does
/// not come.
pub fn check_history_or(
    elected: &Path,
    work: &Path,
    node: &str,
    rev: u64,
    tails: &dyn Fn() -> String,
) {
    if let Err(seen) = poll(secs(10), || {
        let seen = elections(elected);
        (seen.last() == Some(&(node.to_string(), rev)))
            .then_some(())
            .ok_or(format!("{seen:?}"))
    }) {
        panic!(
            "{node}'s hook to see revision {rev}: not within 10s; last seen: {seen}\n{}",
            tails()
        );
    }
    let seen = elections(elected);
    assert!(
        seen.windows(2).all(|w| w[0].1 < w[1].1),
        "BULLY_ETCD_REVISION strictly increasing: {seen:?}"
    );
    let all = activity::intervals(work);
    let bad = activity::overlaps(&all);
    assert!(
        bad.is_empty(),
        "two --exec workers at once: {bad:?}\n{}",
        activity::describe(&all)
    );
}

/// Waits until `node`'s latest `--exec` worker has beaten for `span`.
pub fn await_working(work: &Path, node: &str, span: Duration) {
    wait_for(
        &format!("{node}'s worker to beat for {span:?}"),
        secs(10),
        || {
            let all = activity::intervals(work);
            let last = all.iter().rfind(|i| i.node == node);
            last.filter(|i| i.end - i.start >= span.as_nanos())
                .map(|_| ())
                .ok_or_else(|| activity::describe(&all))
        },
    );
}

//! Real Consul agents for the tests, each on its own free ports (HTTP and DNS among them) with
//! its own data directory and node name, killed on drop; a tiny DNS client for their DNS
//! interface; and a fake Consul that answers every request the same way.

use super::{content_length, free_port, last_lines, poll, raw, TempDir};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// `consul` on PATH, else the one `tests/support/install-consul.sh` puts in `tools/`; without
/// either the test fails with one line saying so (`resume_unwind` skips the panic hook and its
/// backtrace).
pub fn consul_binary() -> PathBuf {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|d| d.join("consul"))
        .find(|p| p.is_file());
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tools/consul/usr/bin/consul");
    on_path
        .or_else(|| local.is_file().then_some(local.clone()))
        .unwrap_or_else(|| {
            // One line, not a panic's backtrace: the test fails with the cure in its output.
            eprintln!(
                "consul not found on PATH nor at tools/consul/usr/bin/consul: run `make test` \
                 (installs it) or `bash tests/support/install-consul.sh`"
            );
            std::panic::resume_unwind(Box::new("consul not found"))
        })
}

/// One agent: a `-dev` server, or a client that joins one.
pub struct ConsulAgent {
    pub node: String,
    pub http: u16,
    /// Consul's DNS interface (UDP and TCP) on 127.0.0.1.
    pub dns: u16,
    pub serf_lan: u16,
    serf_wan: u16,
    server: u16,
    grpc: u16,
    /// The server's serf LAN port, for a client agent.
    join: Option<u16>,
    /// More arguments for `consul agent` (an ACL configuration).
    extra: Vec<String>,
    dir: TempDir,
    child: Option<Child>,
}

impl ConsulAgent {
    /// An agent with its ports chosen, not started yet.
    pub fn new(tag: &str, join: Option<&ConsulAgent>) -> ConsulAgent {
        let dir = TempDir::new(&format!("consul-{tag}"));
        ConsulAgent {
            node: format!("{tag}-{}", std::process::id()),
            http: free_port(),
            dns: free_port(),
            serf_lan: free_port(),
            serf_wan: free_port(),
            server: free_port(),
            grpc: free_port(),
            join: join.map(|s| s.serf_lan),
            extra: Vec::new(),
            dir,
            child: None,
        }
    }

    /// A started `-dev` server with a leader.
    pub fn dev(tag: &str) -> ConsulAgent {
        let mut a = ConsulAgent::new(tag, None);
        a.start();
        a.await_leader();
        a
    }

    /// A started `-dev` server with more arguments (`-hcl ...`), with a leader.
    pub fn dev_with(tag: &str, extra: &[&str]) -> ConsulAgent {
        let mut a = ConsulAgent::new(tag, None);
        a.extra = extra.iter().map(|s| s.to_string()).collect();
        a.start();
        a.await_leader();
        a
    }

    /// A started client agent that has joined `server` and sees its leader.
    pub fn client_of(tag: &str, server: &ConsulAgent) -> ConsulAgent {
        let mut a = ConsulAgent::new(tag, Some(server));
        a.start();
        a.await_leader();
        a
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.http)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("consul.log")
    }

    /// (Re)starts the agent on the same ports, with empty state, as a restarted dev agent.
    pub fn start(&mut self) {
        self.kill();
        let data = self.dir.path().join("data");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data).unwrap();
        let port = |p: u16| p.to_string();
        let mut cmd = Command::new(consul_binary());
        cmd.arg("agent");
        match self.join {
            None => cmd
                .args(["-dev", "-server-port", &port(self.server)])
                .args([
                    "-serf-wan-port",
                    &port(self.serf_wan),
                    "-grpc-port",
                    &port(self.grpc),
                ]),
            Some(lan) => cmd.args(["-retry-join", &format!("127.0.0.1:{lan}")]),
        };
        cmd.args(["-node", &self.node, "-data-dir"])
            .arg(&data)
            .args(["-bind", "127.0.0.1", "-client", "127.0.0.1"])
            .args(["-http-port", &port(self.http), "-dns-port", &port(self.dns)])
            .args(["-serf-lan-port", &port(self.serf_lan)])
            .args(&self.extra);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap();
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", consul_binary().display()));
        self.child = Some(child);
    }

    /// SIGKILL, as a crash or a pulled plug.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until the agent knows a raft leader: before that, catalog reads fail.
    pub fn await_leader(&self) {
        let r = poll(Duration::from_secs(60), || {
            let (status, body) = self.get("/v1/status/leader");
            match serde_json::from_str::<Value>(&body) {
                Ok(Value::String(l)) if status == 200 && !l.is_empty() => Ok(()),
                _ => Err(format!("{status} {body}")),
            }
        });
        if let Err(seen) = r {
            panic!(
                "consul agent {} has no leader within 60s; last answer {seen}\n{}",
                self.node,
                self.log_tail()
            );
        }
    }

    /// `GET path` as HTTP/1.0, so the answer is never chunked.
    pub fn get(&self, path: &str) -> (u16, String) {
        let rq = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
        raw(self.http, rq.as_bytes())
    }

    /// `GET path` with an ACL token.
    pub fn get_as(&self, token: &str, path: &str) -> (u16, String) {
        let rq =
            format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Consul-Token: {token}\r\n\r\n");
        raw(self.http, rq.as_bytes())
    }

    /// `PUT path` with `body`.
    pub fn put(&self, path: &str, body: &str) -> (u16, String) {
        let rq = format!(
            "PUT {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        raw(self.http, rq.as_bytes())
    }

    /// The ID of each instance of `service` that has `tag` and passes its checks, as
    /// `/v1/health/service/<service>?tag=<tag>&passing` lists them.
    pub fn passing_with_tag(&self, service: &str, tag: &str) -> Result<Vec<String>, String> {
        let (status, body) = self.get(&format!("/v1/health/service/{service}?tag={tag}&passing"));
        let entries: Vec<Value> =
            serde_json::from_str(&body).map_err(|e| format!("{status} {body:.300} ({e})"))?;
        let mut ids: Vec<String> = entries
            .iter()
            .map(|e| e["Service"]["ID"].as_str().unwrap_or_default().to_string())
            .collect();
        ids.sort();
        Ok(ids)
    }

    /// The leader lock's key as Consul has it: (`LockIndex`, the holder's session, if any).
    pub fn lock_key(&self, key: &str) -> Result<(u64, Option<String>), String> {
        let (status, body) = self.get(&format!("/v1/kv/{key}"));
        let v: Value =
            serde_json::from_str(&body).map_err(|e| format!("{status} {body:.300} ({e})"))?;
        let index = v[0]["LockIndex"]
            .as_u64()
            .ok_or(format!("{status} {body:.300}"))?;
        Ok((index, v[0]["Session"].as_str().map(String::from)))
    }

    /// A session's name, `None` when Consul no longer has the session.
    pub fn session_name(&self, id: &str) -> Option<String> {
        let (_, body) = self.get(&format!("/v1/session/info/{id}"));
        let v: Value = serde_json::from_str(&body).ok()?;
        v[0]["Name"].as_str().map(String::from)
    }

    /// Asks Consul's DNS interface for `name` (`A` or `SRV`).
    pub fn dns(&self, name: &str, kind: DnsKind) -> Result<DnsAnswer, String> {
        dns_query(self.dns, name, kind)
    }

    /// The service's instances as `/v1/health/service/<name>` lists them.
    pub fn instances(&self, service: &str) -> Result<Vec<Instance>, String> {
        let (status, body) = self.get(&format!("/v1/health/service/{service}"));
        let entries: Vec<Value> =
            serde_json::from_str(&body).map_err(|e| format!("{status} {body:.300} ({e})"))?;
        let mut all: Vec<Instance> = entries.iter().map(Instance::from_entry).collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(all)
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        format!("--- consul {} ---\n{}", self.node, last_lines(&text, 15))
    }
}

impl Drop for ConsulAgent {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One service instance and the status of its own check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub service: String,
    pub address: String,
    pub port: u64,
    pub tags: Vec<String>,
    pub meta: Value,
    pub check_status: String,
    pub check_output: String,
}

impl Instance {
    fn from_entry(e: &Value) -> Instance {
        let s = &e["Service"];
        let id = s["ID"].as_str().unwrap_or_default().to_string();
        let checks = e["Checks"].as_array().cloned().unwrap_or_default();
        let check = checks.iter().find(|c| c["ServiceID"] == id.as_str());
        let text = |v: Option<&Value>, k: &str| {
            v.and_then(|c| c[k].as_str())
                .unwrap_or("(none)")
                .to_string()
        };
        Instance {
            service: s["Service"].as_str().unwrap_or_default().to_string(),
            address: s["Address"].as_str().unwrap_or_default().to_string(),
            port: s["Port"].as_u64().unwrap_or(0),
            tags: s["Tags"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|t| t.as_str().map(String::from))
                .collect(),
            meta: s["Meta"].clone(),
            check_status: text(check, "Status"),
            check_output: text(check, "Output"),
            id,
        }
    }
}

/// The record types the tests ask Consul's DNS for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DnsKind {
    A = 1,
    Srv = 33,
}

/// One answer record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Record {
    A(Ipv4Addr),
    Srv { port: u16, target: String },
    Other(u16),
}

/// What a DNS server answered: its response code (0 found, 3 no such name) and records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsAnswer {
    pub rcode: u8,
    pub records: Vec<Record>,
}

impl DnsAnswer {
    /// The ports of the SRV records, sorted.
    pub fn srv_ports(&self) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .records
            .iter()
            .filter_map(|r| match r {
                Record::Srv { port, .. } => Some(*port),
                _ => None,
            })
            .collect();
        ports.sort();
        ports
    }
}

/// One DNS question over UDP to 127.0.0.1:`port`, built and read by hand (RFC 1035: a 12-byte
/// header, the question, then resource records whose names may point back into the message).
pub fn dns_query(port: u16, name: &str, kind: DnsKind) -> Result<DnsAnswer, String> {
    let id = (std::process::id() as u16) ^ 0x5a5a;
    let mut q = Vec::new();
    q.extend_from_slice(&id.to_be_bytes());
    q.extend_from_slice(&0x0100u16.to_be_bytes()); // a standard query, recursion desired
    q.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]); // one question, no other records
    for label in name.trim_end_matches('.').split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.push(0);
    q.extend_from_slice(&(kind as u16).to_be_bytes());
    q.extend_from_slice(&1u16.to_be_bytes()); // class IN
    let socket = UdpSocket::bind(("127.0.0.1", 0)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|e| e.to_string())?;
    socket
        .send_to(&q, ("127.0.0.1", port))
        .map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 4096];
    let (n, _) = socket
        .recv_from(&mut buf)
        .map_err(|e| format!("no DNS answer: {e}"))?;
    parse_dns(&buf[..n], id)
}

fn parse_dns(m: &[u8], id: u16) -> Result<DnsAnswer, String> {
    let u16_at = |i: usize| -> Result<u16, String> {
        m.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| format!("short DNS message: {m:02x?}"))
    };
    if u16_at(0)? != id {
        return Err("DNS answer for another query".into());
    }
    let flags = u16_at(2)?;
    let (questions, answers) = (u16_at(4)?, u16_at(6)?);
    let mut at = 12;
    for _ in 0..questions {
        at = dns_name(m, at)?.1 + 4;
    }
    let mut records = Vec::new();
    for _ in 0..answers {
        let (_, next) = dns_name(m, at)?;
        let (kind, len) = (u16_at(next)?, u16_at(next + 8)? as usize);
        let data = next + 10;
        let rdata = m
            .get(data..data + len)
            .ok_or("DNS record runs past the end")?;
        records.push(match (kind, len) {
            (1, 4) => Record::A(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3])),
            (33, _) => Record::Srv {
                port: u16_at(data + 4)?,
                target: dns_name(m, data + 6)?.0,
            },
            (other, _) => Record::Other(other),
        });
        at = data + len;
    }
    Ok(DnsAnswer {
        rcode: (flags & 0x000f) as u8,
        records,
    })
}

/// The name at `at` (following compression pointers) and where the bytes after it start.
fn dns_name(m: &[u8], mut at: usize) -> Result<(String, usize), String> {
    let mut labels = Vec::new();
    let mut end = None;
    for _ in 0..64 {
        let len = *m.get(at).ok_or("DNS name runs past the end")? as usize;
        if len == 0 {
            return Ok((labels.join("."), end.unwrap_or(at + 1)));
        }
        if len & 0xc0 == 0xc0 {
            let low = *m.get(at + 1).ok_or("DNS pointer runs past the end")? as usize;
            end.get_or_insert(at + 2);
            at = ((len & 0x3f) << 8) | low;
            continue;
        }
        let label = m
            .get(at + 1..at + 1 + len)
            .ok_or("DNS label runs past the end")?;
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += 1 + len;
    }
    Err("DNS name with too many labels or a pointer loop".into())
}

/// A fake Consul: answers every request with one status and body, and records the requests.
pub struct FakeConsul {
    pub port: u16,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeConsul {
    pub fn start(status: u16, body: &'static str) -> FakeConsul {
        let listener = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (seen, stopped) = (requests.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                if let Ok(s) = conn {
                    let rq = answer(s, status, body);
                    seen.lock().unwrap().push(rq);
                }
            }
        });
        FakeConsul {
            port,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn seen(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeConsul {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one request (head and `Content-Length` body), answers it, returns it as text.
fn answer(mut s: TcpStream, status: u16, body: &str) -> String {
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let complete = |b: &[u8]| {
        let text = String::from_utf8_lossy(b);
        let Some((head, rest)) = text.split_once("\r\n\r\n") else {
            return false;
        };
        rest.len() >= content_length(head)
    };
    while !complete(&buf) {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let reply = format!(
        "HTTP/1.1 {status} Fake\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(reply.as_bytes());
    String::from_utf8_lossy(&buf).into_owned()
}

//! Real Consul agents for the tests, each on its own free ports with its own data directory and
//! node name, killed on drop; and a fake Consul that answers every request the same way.

use super::{content_length, free_port, poll, raw, TempDir};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
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
    pub serf_lan: u16,
    serf_wan: u16,
    server: u16,
    grpc: u16,
    /// The server's serf LAN port, for a client agent.
    join: Option<u16>,
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
            serf_lan: free_port(),
            serf_wan: free_port(),
            server: free_port(),
            grpc: free_port(),
            join: join.map(|s| s.serf_lan),
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
            .args(["-http-port", &port(self.http), "-dns-port", "-1"])
            .args(["-serf-lan-port", &port(self.serf_lan)]);
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
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "--- consul {} ---\n{}",
            self.node,
            lines[lines.len().saturating_sub(15)..].join("\n")
        )
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
            meta: s["Meta"].clone(),
            check_status: text(check, "Status"),
            check_output: text(check, "Output"),
            id,
        }
    }
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

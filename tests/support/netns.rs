//! Hosts of their own for the tests: one Linux network namespace per host, each with a veth
//! pair into a bridge that lives in a namespace of its own, so nothing is added to the root
//! namespace. Links are cut for real: `nft` rules inside the hosts drop traffic between the
//! groups of a partition, and a pulled cable is the bridge-side veth set down.
//!
//! The test process stays in the root namespace, which cannot reach the hosts' addresses; it
//! talks to them through sockets opened on a thread that has joined the host's namespace with
//! setns(2) (a socket keeps the namespace it was made in, so it can be used from any thread).

use super::{last_lines, parse_response, NodeProc, TempDir, BIN};
use serde_json::Value;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Every namespace a [`Net`] makes is named `bullyt<PID>-...`, so a later run can tell whose
/// it was and sweep those of processes that are gone.
const PREFIX: &str = "bullyt";
/// The bridge in the bridge namespace; each host's end of its veth is `eth0`.
const BRIDGE: &str = "br0";
pub const HOST_DEV: &str = "eth0";
/// Where `ip netns` keeps its namespaces.
const NETNS_DIR: &str = "/run/netns";
/// Serialises namespace set-up and sweeping within one test process.
static SETUP: Mutex<()> = Mutex::new(());

/// Prints the one line that says why a root-only test does not run, or panics under `CI=true`,
/// where such tests must run.
pub fn skip(why: &str) {
    let needs = format!("needs root, ip netns and nft ({why})");
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true, so this test must run, but it {needs}");
    }
    println!("skipping: {needs}");
}

/// Why namespaces cannot be made here, if they cannot.
pub fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    for (program, arg) in [("ip", "-V"), ("nft", "--version")] {
        let ok = Command::new(program)
            .arg(arg)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            return Some(format!("no `{program}` on PATH"));
        }
    }
    None
}

/// Runs `ip ARGS`; Err carries the command and its stderr.
fn ip(args: &[&str]) -> Result<(), String> {
    run(Command::new("ip").args(args), None)
}

/// Runs a command to completion, feeding it `input`; Err names it with its stderr.
fn run(cmd: &mut Command, input: Option<&str>) -> Result<(), String> {
    let mut child = cmd
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if let Some(text) = input {
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd:?}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Kills every process still inside namespace `ns` (they were started there by a test), then
/// removes the namespace: its veth ends and nft rules go with it.
fn remove_namespace(ns: &str) {
    if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
        for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Ok(pid) = pid.parse::<i32>() {
                // SAFETY: kill(2) with a pid that `ip netns pids` just listed in our namespace.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
    }
    let _ = ip(&["netns", "del", ns]);
}

/// The names of the namespaces `ip netns` knows.
pub fn namespaces() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Removes the namespaces of earlier runs whose process is gone (a run killed before its
/// drop could clean up).
fn sweep() {
    for ns in namespaces() {
        let Some(pid) = ns
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            remove_namespace(&ns);
        }
    }
}

/// Runs `f` on a thread that has joined network namespace `ns`.
pub fn in_namespace<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let path = format!("{NETNS_DIR}/{ns}");
    std::thread::scope(|s| {
        s.spawn(move || {
            let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            // SAFETY: setns(2) on a namespace file we hold open; it only changes this thread,
            // which ends when `f` returns.
            let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(r, 0, "setns {path}: {}", io::Error::last_os_error());
            f()
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// N hosts on one private /24, each in its own namespace; everything goes on drop.
pub struct Net {
    /// `bullyt<PID>-<K>-<TAG>`: the start of every namespace name of this net.
    pub name: String,
    bridge_ns: String,
    subnet: u8,
    hosts: Vec<Host>,
    /// The namespaces made so far, for drop, even when set-up failed half-way.
    made: Vec<String>,
}

/// One host: a namespace with `eth0` on the net's bridge.
#[derive(Clone, Debug)]
pub struct Host {
    pub index: usize,
    ns: String,
    addr: Ipv4Addr,
    /// The bridge-side end of this host's veth pair (the cable).
    port: String,
}

impl Net {
    /// `n` hosts; None (after one line saying why) when this machine cannot make them.
    pub fn new(tag: &str, n: usize) -> Option<Net> {
        assert!((1..=200).contains(&n), "Net::new: 1 to 200 hosts");
        if let Some(why) = missing() {
            skip(&why);
            return None;
        }
        static K: AtomicUsize = AtomicUsize::new(0);
        let k = K.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let tag: String = tag
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .take(16)
            .collect();
        let name = format!("{PREFIX}{pid}-{k}-{tag}");
        let mut net = Net {
            bridge_ns: format!("{name}-br"),
            // A per-run subnet, so two nets' addresses never look alike in logs.
            subnet: ((pid as usize + 17 * k) % 250 + 1) as u8,
            name,
            hosts: Vec::new(),
            made: Vec::new(),
        };
        let _guard = SETUP.lock().unwrap_or_else(|e| e.into_inner());
        sweep();
        if let Err(e) = ip(&["netns", "add", &net.bridge_ns]) {
            drop(_guard);
            skip(&format!("cannot add a namespace: {e}"));
            return None;
        }
        net.made.push(net.bridge_ns.clone());
        let mut bridge =
            format!("link set lo up\nlink add {BRIDGE} type bridge\nlink set {BRIDGE} up\n");
        for i in 0..n {
            let host = Host {
                index: i,
                ns: format!("{}-h{i}", net.name),
                addr: Ipv4Addr::new(10, 77, net.subnet, i as u8 + 1),
                port: format!("p{i}"),
            };
            ip(&["netns", "add", &host.ns]).unwrap_or_else(|e| panic!("{e}"));
            net.made.push(host.ns.clone());
            bridge += &host.cable();
            net.hosts.push(host);
        }
        run(
            Command::new("ip").args(["-n", &net.bridge_ns, "-batch", "-"]),
            Some(&bridge),
        )
        .unwrap_or_else(|e| panic!("bridge set-up: {e}"));
        for h in &net.hosts {
            h.bring_up();
        }
        Some(net)
    }

    /// One more namespace on the bridge, at `.250`, that runs no node: a client of the
    /// cluster's services. It is in no partition (every host keeps hearing it) and has no
    /// cable to pull; it goes with the net.
    pub fn add_client(&mut self) -> Host {
        let host = Host {
            index: 249,
            ns: format!("{}-client", self.name),
            addr: Ipv4Addr::new(10, 77, self.subnet, 250),
            port: "pc".into(),
        };
        let _guard = SETUP.lock().unwrap_or_else(|e| e.into_inner());
        ip(&["netns", "add", &host.ns]).unwrap_or_else(|e| panic!("{e}"));
        self.made.push(host.ns.clone());
        run(
            Command::new("ip").args(["-n", &self.bridge_ns, "-batch", "-"]),
            Some(&host.cable()),
        )
        .unwrap_or_else(|e| panic!("client's cable: {e}"));
        host.bring_up();
        host
    }

    pub fn host(&self, i: usize) -> &Host {
        &self.hosts[i]
    }

    pub fn hosts(&self) -> &[Host] {
        &self.hosts
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    /// `10.77.X.last` on this net's subnet (hosts hold `.1` to `.N`).
    pub fn addr(&self, last: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.subnet, last)
    }

    /// Every namespace of this net (the hosts' and the bridge's).
    pub fn namespaces(&self) -> Vec<String> {
        self.made.clone()
    }

    /// `ADDR:PORT` of every host but `i`, comma-separated: a `--peers` list.
    pub fn peers_of(&self, i: usize, port: u16) -> String {
        self.hosts
            .iter()
            .filter(|h| h.index != i)
            .map(|h| format!("{}:{port}", h.addr))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Cuts the links between `groups` (which together list every host once): each host drops
    /// every packet from the hosts of other groups, so both directions fall silent, as in a
    /// real partition (no reset, no error: time-outs). Replaces any earlier partition.
    pub fn partition(&self, groups: &[&[usize]]) {
        let mut group_of = vec![None; self.hosts.len()];
        for (g, members) in groups.iter().enumerate() {
            for &i in *members {
                assert!(i < self.hosts.len(), "partition: no host {i}");
                assert!(group_of[i].is_none(), "partition: host {i} in two groups");
                group_of[i] = Some(g);
            }
        }
        if let Some(i) = group_of.iter().position(Option::is_none) {
            panic!("partition: host {i} is in no group");
        }
        for h in &self.hosts {
            let others: Vec<String> = self
                .hosts
                .iter()
                .filter(|o| group_of[o.index] != group_of[h.index])
                .map(|o| o.addr.to_string())
                .collect();
            drop_from(h, &others);
        }
    }

    /// Host `i` hears nobody: it drops every packet from the other hosts, while they still
    /// get its packets (a one-way fault, as a broken switch port or a firewall rule makes).
    /// New connections fail both ways; data on connections already open still reaches the
    /// others. Replaces any earlier partition; [`Net::heal`] ends it.
    pub fn deafen(&self, i: usize) {
        for h in &self.hosts {
            let others: Vec<String> = self
                .hosts
                .iter()
                .filter(|o| h.index == i && o.index != i)
                .map(|o| o.addr.to_string())
                .collect();
            drop_from(h, &others);
        }
    }

    /// Removes every partition rule.
    pub fn heal(&self) {
        for h in &self.hosts {
            drop_from(h, &[]);
        }
    }

    /// Pulls host `i`'s cable: its veth end on the bridge goes down, so it loses carrier and
    /// every packet to or from it is lost without a word.
    pub fn pull_cable(&self, i: usize) {
        self.cable(i, "down");
    }

    pub fn plug_cable(&self, i: usize) {
        self.cable(i, "up");
    }

    /// Slows host `i`'s link to `rate` (tc's notation, e.g. `8kbit`) both ways: a token
    /// bucket on its veth end and on the bridge's, packets queued up to 5 s then dropped.
    pub fn slow_link(&self, i: usize, rate: &str) {
        let h = &self.hosts[i];
        let tbf = [
            "root", "tbf", "rate", rate, "burst", "1600", "latency", "5s",
        ];
        run(
            h.command("tc")
                .args(["qdisc", "replace", "dev", "eth0"])
                .args(tbf),
            None,
        )
        .unwrap_or_else(|e| panic!("slow link of host {i}: {e}"));
        run(
            Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &self.bridge_ns,
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    &h.port,
                ])
                .args(tbf),
            None,
        )
        .unwrap_or_else(|e| panic!("slow link of host {i} (bridge side): {e}"));
    }

    /// Gives host `i`'s link its full speed back.
    pub fn fast_link(&self, i: usize) {
        let h = &self.hosts[i];
        let _ = run(
            h.command("tc")
                .args(["qdisc", "del", "dev", "eth0", "root"]),
            None,
        );
        let _ = run(
            Command::new("ip").args([
                "netns",
                "exec",
                &self.bridge_ns,
                "tc",
                "qdisc",
                "del",
                "dev",
                &h.port,
                "root",
            ]),
            None,
        );
    }

    fn cable(&self, i: usize, state: &str) {
        let h = &self.hosts[i];
        ip(&["-n", &self.bridge_ns, "link", "set", &h.port, state])
            .unwrap_or_else(|e| panic!("cable of host {i} {state}: {e}"));
    }

    /// Whether `from` can open a TCP connection to `to` within `within`: Err(TimedOut) when
    /// the packets are dropped.
    pub fn reaches(&self, from: usize, to: usize, within: Duration) -> io::Result<()> {
        let target = &self.hosts[to];
        let listener = target.listen(0)?;
        let addr = listener.local_addr()?;
        self.hosts[from].connect(addr, within).map(drop)
    }
}

/// Makes `h` drop every packet from the addresses `from` (none: drops nothing), replacing
/// its earlier rules in one transaction (add + delete + define).
fn drop_from(h: &Host, from: &[String]) {
    let mut rules = "add table inet bullynet\ndelete table inet bullynet\n".to_string();
    if !from.is_empty() {
        rules += &format!(
            "table inet bullynet {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  ip saddr {{ {} }} drop\n }}\n}}\n",
            from.join(", ")
        );
    }
    run(h.command("nft").args(["-f", "-"]), Some(&rules))
        .unwrap_or_else(|e| panic!("packet filter on host {}: {e}", h.index));
}

impl Net {
    /// Cuts host `i` off from the others on TCP `port` only (both ways, silently): e.g. an
    /// etcd member's peer port, so the member loses its cluster while everything else on the
    /// host still talks. `None` ends it.
    pub fn isolate_port(&self, i: usize, port: Option<u16>) {
        for h in &self.hosts {
            let from: Vec<String> = self
                .hosts
                .iter()
                .filter(|o| (h.index == i) != (o.index == i))
                .map(|o| o.addr.to_string())
                .collect();
            let mut rules = "add table inet bullyport\ndelete table inet bullyport\n".to_string();
            if let Some(port) = port.filter(|_| !from.is_empty()) {
                let saddr = from.join(", ");
                rules += &format!(
                    "table inet bullyport {{\n chain input {{\n  type filter hook input priority 0; policy accept;\n  ip saddr {{ {saddr} }} tcp dport {port} drop\n  ip saddr {{ {saddr} }} tcp sport {port} drop\n }}\n}}\n"
                );
            }
            run(h.command("nft").args(["-f", "-"]), Some(&rules))
                .unwrap_or_else(|e| panic!("packet filter on host {}: {e}", h.index));
        }
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _guard = SETUP.lock().unwrap_or_else(|e| e.into_inner());
        for ns in self.made.iter().rev() {
            remove_namespace(ns);
        }
    }
}

impl Host {
    /// The `ip -batch` lines, run in the bridge's namespace, that plug this host in: its veth
    /// pair, one end on the bridge, the other as the host's `eth0`.
    fn cable(&self) -> String {
        format!(
            "link add {} type veth peer name {HOST_DEV} netns {}\nlink set {} master {BRIDGE} up\n",
            self.port, self.ns, self.port
        )
    }

    /// Gives the host its address and brings its links up.
    fn bring_up(&self) {
        let script = format!(
            "link set lo up\naddr add {}/24 dev {HOST_DEV}\nlink set {HOST_DEV} up\n",
            self.addr
        );
        run(
            Command::new("ip").args(["-n", &self.ns, "-batch", "-"]),
            Some(&script),
        )
        .unwrap_or_else(|e| panic!("set-up of {}: {e}", self.ns));
    }

    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The namespace's name, for `ip netns exec` or `ip -n`.
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// `program` run inside this host (`ip netns exec NS program`, which execs it: the child's
    /// pid is the program's own).
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns, program]);
        c
    }

    /// The launcher for [`NodeProc::start_via`]: runs `program` inside this host.
    pub fn launcher(&self, program: &str) -> Vec<String> {
        ["ip", "netns", "exec", &self.ns, program]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// A TCP connection from this host to `to`.
    pub fn connect(&self, to: SocketAddr, within: Duration) -> io::Result<TcpStream> {
        in_namespace(&self.ns, || TcpStream::connect_timeout(&to, within))
    }

    /// A listener on this host's address (port 0: any free one).
    pub fn listen(&self, port: u16) -> io::Result<TcpListener> {
        let addr = SocketAddrV4::new(self.addr, port);
        in_namespace(&self.ns, || TcpListener::bind(addr))
    }

    /// Whether `ip` is one of this host's own addresses (a VIP it holds): a bind to it
    /// succeeds only then. One cheap syscall, no process.
    pub fn holds(&self, ip: Ipv4Addr) -> bool {
        in_namespace(&self.ns, || {
            std::net::UdpSocket::bind(SocketAddrV4::new(ip, 0)).is_ok()
        })
    }

    /// `GET path` from this host to its own address on `port`: the status and the body
    /// (status 0 when nothing answered within `within`).
    pub fn get(&self, port: u16, path: &str, within: Duration) -> (u16, String) {
        self.get_over(port, path, within, None)
    }

    /// Like [`Host::get`], over TLS with `tls` when given (the node's certificate must name
    /// this host's address).
    pub fn get_over(
        &self,
        port: u16,
        path: &str,
        within: Duration,
        tls: Option<&TlsClient>,
    ) -> (u16, String) {
        let to = SocketAddr::V4(SocketAddrV4::new(self.addr, port));
        let Ok(mut s) = self.connect(to, within) else {
            return (0, "connect failed".into());
        };
        let _ = s.set_read_timeout(Some(within));
        let _ = s.set_write_timeout(Some(within));
        let req = format!(
            "GET {path} HTTP/1.1\r\nHost: {}:{port}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        if let Some(config) = tls {
            #[cfg(feature = "tls")]
            return super::tls::raw_on(s, self.addr.into(), req.as_bytes(), config, within);
            #[cfg(not(feature = "tls"))]
            match *config {}
        }
        if s.write_all(req.as_bytes()).is_err() {
            return (0, "write failed".into());
        }
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        parse_response(&buf)
    }

    pub fn get_json(&self, port: u16, path: &str) -> Option<Value> {
        self.get_json_over(port, path, None)
    }

    fn get_json_over(&self, port: u16, path: &str, tls: Option<&TlsClient>) -> Option<Value> {
        let (status, body) = self.get_over(port, path, Duration::from_secs(2), tls);
        if status != 200 {
            return None;
        }
        serde_json::from_str(&body).ok()
    }
}

/// The harness's TLS client for nodes with mutual TLS (a build without the `tls` feature has
/// none: the type has no values).
#[cfg(feature = "tls")]
pub type TlsClient = std::sync::Arc<rustls::ClientConfig>;
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
pub enum TlsClient {}

/// A bully node on one host, reached from the test through the host's namespace.
pub struct NetNode {
    pub proc: NodeProc,
    pub host: Host,
    /// Set when the node serves HTTPS only (`--tls-*`): the harness asks it over TLS.
    pub tls: Option<TlsClient>,
}

impl NetNode {
    pub fn details(&self) -> Option<Value> {
        self.host
            .get_json_over(self.proc.port, "/nodeDetails", self.tls.as_ref())
    }

    /// The coordinator this node reports, if it answers.
    pub fn coordinator(&self) -> Option<String> {
        self.details()
            .and_then(|d| d["coordinator"].as_str().map(String::from))
    }
}

/// bully node`i+1` (id `i+1`) on each host `i` of a [`Net`], all on one port, bound to and
/// advertising their host's address, with every other host in `--peers`.
pub struct NetCluster {
    pub dir: TempDir,
    pub nodes: Vec<NetNode>,
}

impl NetCluster {
    /// Starts one node per host with `common` arguments added; `program` is the bully binary
    /// (`support::BIN` unless a test says otherwise).
    pub fn start(net: &Net, tag: &str, port: u16, common: &[&str]) -> NetCluster {
        NetCluster::start_program(net, tag, BIN, port, common)
    }

    pub fn start_program(
        net: &Net,
        tag: &str,
        program: &str,
        port: u16,
        common: &[&str],
    ) -> NetCluster {
        NetCluster::start_each(net, tag, program, port, common, |_| Vec::new())
    }

    /// Like [`NetCluster::start_program`], with `extra(i)` added to the arguments of the node
    /// on host `i` (e.g. `--witness` for one of them).
    pub fn start_each(
        net: &Net,
        tag: &str,
        program: &str,
        port: u16,
        common: &[&str],
        extra: impl Fn(usize) -> Vec<String>,
    ) -> NetCluster {
        NetCluster::start_with(net, tag, program, port, |h| {
            let mut args = vec!["--peers".into(), net.peers_of(h.index, port)];
            args.extend(common.iter().map(|s| s.to_string()));
            args.extend(extra(h.index));
            args
        })
    }

    /// node1.. on the hosts of `net`, each bound to and advertising its host's address with
    /// a state directory of its own, and `args(host)` added: the registry is the caller's.
    pub fn start_with(
        net: &Net,
        tag: &str,
        program: &str,
        port: u16,
        args_of: impl Fn(&Host) -> Vec<String>,
    ) -> NetCluster {
        let dir = TempDir::new(tag);
        let nodes = net
            .hosts()
            .iter()
            .map(|h| {
                let name = format!("node{}", h.index + 1);
                let addr = h.addr.to_string();
                let mut args: Vec<String> = vec![
                    "--bind".into(),
                    addr.clone(),
                    "--advertise".into(),
                    addr,
                    // Each node its own state, private to the test.
                    "--state-dir".into(),
                    dir.path()
                        .join(format!("state-{name}"))
                        .display()
                        .to_string(),
                ];
                args.extend(args_of(h));
                let log = dir.path().join(format!("{name}.log"));
                let proc = NodeProc::start_via(
                    &h.launcher(program),
                    &name,
                    h.index as u64 + 1,
                    port,
                    &args,
                    log,
                );
                NetNode {
                    proc,
                    host: h.clone(),
                    tls: None,
                }
            })
            .collect();
        NetCluster { dir, nodes }
    }

    /// From now on the harness asks every node over TLS with `client` when given (nodes
    /// started with `--tls-*` flags serve HTTPS only).
    pub fn use_tls(&mut self, client: Option<TlsClient>) {
        for n in &mut self.nodes {
            n.tls.clone_from(&client);
        }
    }

    /// The node on host `i`.
    pub fn node(&mut self, i: usize) -> &mut NetNode {
        &mut self.nodes[i]
    }

    /// What each node on `hosts` reports as coordinator.
    pub fn views(&self, hosts: &[usize]) -> Vec<(String, Option<String>)> {
        hosts
            .iter()
            .map(|&i| (self.nodes[i].proc.name.clone(), self.nodes[i].coordinator()))
            .collect()
    }

    /// The time from `t0` until every node on `hosts` names `expected`, confirmed by a second
    /// look: each node's first answer naming it in an unbroken run of such answers, the
    /// latest of them. Err with the last views seen after `within`.
    pub fn agreement_since(
        &self,
        hosts: &[usize],
        expected: &str,
        t0: Instant,
        within: Duration,
    ) -> Result<Duration, String> {
        let mut since: Vec<Option<Duration>> = vec![None; hosts.len()];
        let mut confirm = false;
        loop {
            let mut all = true;
            let mut seen = Vec::new();
            for (k, &i) in hosts.iter().enumerate() {
                if since[k].is_some() && !confirm {
                    continue;
                }
                let c = self.nodes[i].coordinator();
                if c.as_deref() == Some(expected) {
                    since[k].get_or_insert_with(|| t0.elapsed());
                } else {
                    since[k] = None;
                    all = false;
                }
                seen.push((self.nodes[i].proc.name.clone(), c));
            }
            if all && confirm {
                return Ok(since.iter().flatten().max().copied().unwrap_or_default());
            }
            confirm = all;
            if t0.elapsed() > within {
                return Err(format!("{seen:?}"));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits until every node on `hosts` names `expected`; panics with the logs otherwise.
    pub fn await_agreement(&self, hosts: &[usize], expected: &str, within: Duration) -> Duration {
        self.agreement_since(hosts, expected, Instant::now(), within)
            .unwrap_or_else(|seen| {
                panic!(
                    "nodes {hosts:?} did not agree on {expected} within {within:?}; last seen \
                     {seen}\n{}",
                    self.log_tails()
                )
            })
    }

    /// Like [`NetCluster::agreement_since`], and then until `expected` is the only node on
    /// `hosts` that says it leads (one handing over may take a moment more to stop saying so).
    pub fn sole_coordinator_since(
        &self,
        hosts: &[usize],
        expected: &str,
        t0: Instant,
        within: Duration,
    ) -> Result<Duration, String> {
        let agreed = self.agreement_since(hosts, expected, t0, within)?;
        let rest = within
            .saturating_sub(t0.elapsed())
            .max(Duration::from_secs(5));
        super::poll(rest, || {
            let leading: Vec<&str> = hosts
                .iter()
                .map(|&i| &self.nodes[i])
                .filter(|n| n.details().is_some_and(|d| d["is_coordinator"] == true))
                .map(|n| n.proc.name.as_str())
                .collect();
            (leading == [expected])
                .then_some(agreed)
                .ok_or_else(|| format!("all name {expected}, but these say they lead: {leading:?}"))
        })
    }

    /// Waits until every node on `hosts` names `expected` and only it says it leads; panics
    /// with the logs otherwise.
    pub fn await_sole_coordinator(
        &self,
        hosts: &[usize],
        expected: &str,
        within: Duration,
    ) -> Duration {
        self.sole_coordinator_since(hosts, expected, Instant::now(), within)
            .unwrap_or_else(|seen| {
                panic!(
                    "nodes {hosts:?}: no sole coordinator {expected} within {within:?}; last \
                     seen {seen}\n{}",
                    self.log_tails()
                )
            })
    }

    /// The last lines of every node's log, for failure messages.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for n in &self.nodes {
            out += &format!(
                "--- {} ({}) ---\n{}\n",
                n.proc.name,
                n.host.addr,
                last_lines(&n.proc.log_text(), 15)
            );
        }
        out
    }
}

/// What one node said in one answer to `GET /nodeDetails`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Seen {
    pub coordinator: Option<String>,
    pub is_coordinator: bool,
    pub term: u64,
    /// `quorum.state` (`following`, `leading`, ...); None in plain mode.
    pub state: Option<String>,
}

impl Seen {
    fn from_details(d: &Value) -> Seen {
        Seen {
            coordinator: d["coordinator"].as_str().map(String::from),
            is_coordinator: d["is_coordinator"] == Value::Bool(true),
            term: d["term"].as_u64().unwrap_or(0),
            state: d["quorum"]["state"].as_str().map(String::from),
        }
    }
}

/// One look at one node: when its answer came (ns of the wall clock, as the workers of
/// `activity` write), and what it said; None when it did not answer (dead, frozen).
#[derive(Clone, Debug)]
pub struct Sample {
    pub at: u128,
    pub node: usize,
    pub seen: Option<Seen>,
}

/// Looks at every node's `/nodeDetails` over and over while a test runs: one thread per
/// host, inside that host's namespace, so partitions and pulled cables never hide a node
/// from the test (it asks the node from its own host). A frozen node costs its thread one
/// time-out per look, not the others.
pub struct Sampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    samples: std::sync::Arc<Mutex<Vec<Sample>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Sampler {
    /// Starts looking at the nodes of `c`, each every `every` (plus the time it takes).
    pub fn start(c: &NetCluster, every: Duration) -> Sampler {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let samples = std::sync::Arc::new(Mutex::new(Vec::new()));
        let threads = c
            .nodes
            .iter()
            .map(|n| {
                let (stop, samples) = (stop.clone(), samples.clone());
                let (ns, node) = (n.host.ns.clone(), n.host.index);
                let to = SocketAddr::V4(SocketAddrV4::new(n.host.addr, n.proc.port));
                std::thread::spawn(move || {
                    in_namespace(&ns, || {
                        while !stop.load(Ordering::Relaxed) {
                            let (status, body) = http_get(to, "/nodeDetails", every.max(MIN_LOOK));
                            let seen = (status == 200)
                                .then(|| serde_json::from_str::<Value>(&body).ok())
                                .flatten()
                                .map(|d| Seen::from_details(&d));
                            let at = super::activity::now_ns();
                            samples.lock().unwrap().push(Sample { at, node, seen });
                            std::thread::sleep(every);
                        }
                    })
                })
            })
            .collect();
        Sampler {
            stop,
            samples,
            threads,
        }
    }

    /// The samples so far, in the order they came.
    pub fn samples(&self) -> Vec<Sample> {
        self.samples.lock().unwrap().clone()
    }

    /// Stops looking; every sample taken.
    pub fn finish(mut self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.samples()
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The time-out of one look: a frozen node's kernel still accepts the connection, and only
/// the answer never comes.
const MIN_LOOK: Duration = Duration::from_millis(300);

/// `GET path` of `to` on the calling thread (which must be in a namespace that reaches it).
fn http_get(to: SocketAddr, path: &str, within: Duration) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect_timeout(&to, within) else {
        return (0, "connect failed".into());
    };
    let _ = s.set_read_timeout(Some(within));
    let _ = s.set_write_timeout(Some(within));
    let req = format!("GET {path} HTTP/1.1\r\nHost: {to}\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_err() {
        return (0, "write failed".into());
    }
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

/// Each node's claims to lead, from samples: a run of answers with `is_coordinator` true is
/// one interval (first to last such answer), in the shape of `activity`'s, so its overlap
/// analysis applies. `names[i]` names the node on host `i`.
pub fn claims(samples: &[Sample], names: &[String]) -> Vec<super::activity::Interval> {
    let mut open: Vec<Option<super::activity::Interval>> = vec![None; names.len()];
    let mut out = Vec::new();
    let mut sorted: Vec<&Sample> = samples.iter().collect();
    sorted.sort_by_key(|s| s.at);
    for s in sorted {
        let leads = s.seen.as_ref().is_some_and(|v| v.is_coordinator);
        match (&mut open[s.node], leads) {
            (Some(iv), true) => {
                iv.end = s.at;
                iv.beats += 1;
            }
            (slot @ None, true) => {
                *slot = Some(super::activity::Interval {
                    node: names[s.node].clone(),
                    file: Default::default(),
                    start: s.at,
                    end: s.at,
                    beats: 1,
                })
            }
            (slot, false) => out.extend(slot.take()),
        }
    }
    out.extend(open.into_iter().flatten());
    out.sort_by_key(|i| i.start);
    out
}

/// The terms that more than one node claimed to lead in, from samples, with who claimed them.
pub fn shared_terms(samples: &[Sample], names: &[String]) -> Vec<(u64, Vec<String>)> {
    let mut by_term = std::collections::BTreeMap::<u64, std::collections::BTreeSet<String>>::new();
    for s in samples {
        if let Some(v) = s.seen.as_ref().filter(|v| v.is_coordinator) {
            by_term
                .entry(v.term)
                .or_default()
                .insert(names[s.node].clone());
        }
    }
    by_term
        .into_iter()
        .filter(|(_, who)| who.len() > 1)
        .map(|(t, who)| (t, who.into_iter().collect()))
        .collect()
}

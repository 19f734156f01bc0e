//! The VIP module on real interfaces: two network namespaces joined by a veth pair, the address
//! added and removed over netlink (and checked with iproute2 and a real connection), and the
//! announcements caught as frames on the other end of the cable, where the neighbour must take
//! them in. Needs root and `ip netns` (no nft): without them each test prints one line and
//! passes; under `CI=true` they fail instead.

mod support;

use bully::vip::{self, Vip};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};
use support::netns::{in_namespace, skip};

/// The veth ends: `DEV1` in the first namespace, `DEV2` in the second, with fixed MACs so the
/// tests know them without asking the module under test.
const DEV1: &str = "vipa";
const DEV2: &str = "vipb";
const MAC1: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x01];
const MAC2: [u8; 6] = [0x02, 0x77, 0, 0, 0, 0x02];
/// Where the second namespace believes the VIP is before an announcement (the old holder).
const OLD_MAC: &str = "02:77:00:00:00:99";
const VIP4: &str = "10.77.250.100";
const VIP6: &str = "fd77::100";

fn ip_addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn mac_text(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

/// Why these tests cannot run here, if they cannot: they make namespaces and veth pairs.
fn missing() -> Option<String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("not root".into());
    }
    let ok = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    (!ok).then(|| "no `ip` on PATH".into())
}

/// Runs `ip ARGS`; its stdout, or a panic with the command and its stderr.
fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"));
    assert!(
        out.status.success(),
        "ip {args:?}: {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Two namespaces, `DEV1` (10.77.250.1/24, fd77::1/64) in `ns1` cabled to `DEV2`
/// (10.77.250.2/24, fd77::2/64) in `ns2`; both namespaces go on drop, also after a panic.
struct Pair {
    ns1: String,
    ns2: String,
}

impl Pair {
    /// None (after one line saying why) when this machine cannot make them.
    fn new(tag: &str) -> Option<Pair> {
        if let Some(why) = missing() {
            skip(&why);
            return None;
        }
        // `ip netns add` mounts /run/netns on first use: not something to race.
        static SETUP: Mutex<()> = Mutex::new(());
        static K: AtomicUsize = AtomicUsize::new(0);
        let _one = SETUP.lock().unwrap_or_else(|e| e.into_inner());
        // `bullyt<PID>-`: the prefix the test harness sweeps after a killed run.
        let base = format!(
            "bullyt{}-vip-{}-{tag}",
            std::process::id(),
            K.fetch_add(1, Ordering::Relaxed)
        );
        let pair = Pair {
            ns1: format!("{base}-a"),
            ns2: format!("{base}-b"),
        };
        ip(&["netns", "add", &pair.ns1]);
        ip(&["netns", "add", &pair.ns2]);
        let (m1, m2) = (mac_text(MAC1), mac_text(MAC2));
        ip(&[
            "link", "add", DEV1, "address", &m1, "netns", &pair.ns1, "type", "veth", "peer",
            "name", DEV2, "address", &m2, "netns", &pair.ns2,
        ]);
        for (ns, dev, n) in [(&pair.ns1, DEV1, 1), (&pair.ns2, DEV2, 2)] {
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("10.77.250.{n}/24"),
                "dev",
                dev,
            ]);
            let v6 = format!("fd77::{n}/64");
            ip(&["-n", ns, "addr", "add", &v6, "dev", dev, "nodad"]);
            ip(&["-n", ns, "link", "set", "lo", "up"]);
            ip(&["-n", ns, "link", "set", dev, "up"]);
        }
        // Up is not ready: the carrier comes a moment later, and only then do the links get
        // their multicast route (without it, ff02::1 arriving counts as "no route").
        let deadline = Instant::now() + Duration::from_secs(10);
        for (ns, dev) in [(&pair.ns1, DEV1), (&pair.ns2, DEV2)] {
            let want = format!("multicast ff00::/8 dev {dev} ");
            while !ip(&["-n", ns, "-6", "route", "show", "table", "local"]).contains(&want) {
                assert!(Instant::now() < deadline, "{dev} in {ns} never got ready");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Some(pair)
    }

    /// `ip -n NS1 addr show dev DEV1`.
    fn addrs1(&self) -> String {
        ip(&["-n", &self.ns1, "addr", "show", "dev", DEV1])
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.ns1, &self.ns2] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// Connects from `ns2` to `to`, where `listener` (in `ns1`) accepts: the address works.
fn reach(ns2: &str, listener: &TcpListener, to: SocketAddr) {
    in_namespace(ns2, || {
        TcpStream::connect_timeout(&to, Duration::from_secs(5))
    })
    .unwrap_or_else(|e| panic!("connect from {ns2} to {to}: {e}"));
    listener.accept().unwrap();
}

/// The add, hold, remove cycle of one VIP on `DEV1`, checked by the module and by iproute2.
/// `shown` is how `ip addr` lists it.
fn add_hold_remove(p: &Pair, vip: IpAddr, prefix: u8, shown: &str) {
    in_namespace(&p.ns1, || {
        let v = Vip::new(vip, prefix, DEV1).unwrap();
        assert_eq!(v.to_string(), format!("{vip}/{prefix} on {DEV1}"));
        assert!(!v.held().unwrap(), "held before it was added");
        assert!(!p.addrs1().contains(shown));

        v.add().unwrap();
        assert!(v.held().unwrap(), "not held after add");
        let listed = p.addrs1();
        let line = listed
            .lines()
            .find(|l| l.contains(shown))
            .unwrap_or_else(|| panic!("ip addr does not list {shown}:\n{listed}"));
        assert!(line.contains("scope global"), "{line}");
        assert!(!line.contains("tentative"), "{line}");
        // Usable at once (binding a tentative IPv6 address fails) and reached from the
        // neighbour.
        let listener = TcpListener::bind((vip, 0)).unwrap_or_else(|e| panic!("bind {vip}: {e}"));
        reach(&p.ns2, &listener, listener.local_addr().unwrap());

        // The same address with another prefix, or on another interface, is not this VIP.
        let other_prefix = Vip::new(vip, prefix + 1, DEV1).unwrap();
        assert!(!other_prefix.held().unwrap());
        assert!(!Vip::new(vip, prefix, "lo").unwrap().held().unwrap());

        v.add().expect("a second add is a no-op");
        assert!(v.held().unwrap());
        assert_eq!(p.addrs1().matches(shown).count(), 1, "{}", p.addrs1());

        v.remove().unwrap();
        assert!(!v.held().unwrap(), "still held after remove");
        let listed = p.addrs1();
        assert!(
            !listed.contains(shown),
            "ip addr still lists {shown}:\n{listed}"
        );
        // Only the VIP went: the interface's own addresses stay.
        assert!(listed.contains("inet 10.77.250.1/24"), "{listed}");
        assert!(listed.contains("inet6 fd77::1/64"), "{listed}");
        v.remove().expect("a second remove is a no-op");
        assert!(!v.held().unwrap());
    });
}

#[test]
fn ipv4_vip_is_added_held_and_removed_idempotently() {
    let Some(p) = Pair::new("v4") else { return };
    add_hold_remove(&p, ip_addr(VIP4), 24, "inet 10.77.250.100/24");
}

#[test]
fn ipv6_vip_is_usable_at_once_held_and_removed_idempotently() {
    let Some(p) = Pair::new("v6") else { return };
    add_hold_remove(&p, ip_addr(VIP6), 64, "inet6 fd77::100/64");
}

#[test]
fn held_reads_a_dump_of_many_datagrams_to_its_end() {
    let Some(p) = Pair::new("many") else { return };
    // 600 addresses make a dump of several datagrams; the VIP, added last, is in the last.
    let batch: String = (0..600)
        .map(|i| {
            format!(
                "addr add 10.77.{}.{}/32 dev {DEV1}\n",
                252 + i / 250,
                1 + i % 250
            )
        })
        .collect();
    let mut child = Command::new("ip")
        .args(["-n", &p.ns1, "-batch", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    io::Write::write_all(&mut child.stdin.take().unwrap(), batch.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success(), "ip -batch failed");
    in_namespace(&p.ns1, || {
        let on = |a: &str, prefix| Vip::new(ip_addr(a), prefix, DEV1).unwrap().held().unwrap();
        let v = Vip::new(ip_addr(VIP4), 24, DEV1).unwrap();
        v.add().unwrap();
        assert!(v.held().unwrap(), "the VIP, last in the dump, not seen");
        assert!(on("10.77.252.1", 32) && on("10.77.254.100", 32));
        assert!(!on("10.77.254.101", 32));
        let last = vip::default_device(ip_addr("10.77.254.100"), 32, None).unwrap();
        assert_eq!(last.as_deref(), Some(DEV1));
    });
}

#[test]
fn default_device_is_the_interface_on_the_prefix_else_the_binds() {
    let Some(p) = Pair::new("dev") else { return };
    // A host route on the loopback inside a prefix (as anycast set-ups have) never counts.
    ip(&["-n", &p.ns1, "addr", "add", "10.77.251.5/32", "dev", "lo"]);
    let found = in_namespace(&p.ns1, || {
        let dd = |vip: &str, prefix, bind: Option<&str>| {
            vip::default_device(ip_addr(vip), prefix, bind.map(ip_addr)).unwrap()
        };
        [
            dd(VIP4, 24, None),
            dd(VIP6, 64, None),
            dd("10.77.250.100", 30, None),
            dd("192.0.2.1", 24, None),
            dd("192.0.2.1", 24, Some("10.77.250.1")),
            dd("192.0.2.1", 24, Some("fd77::1")),
            dd("192.0.2.1", 24, Some("0.0.0.0")),
            dd("192.0.2.1", 24, Some("10.77.250.9")),
            dd("fd78::1", 64, None),
            dd("10.77.251.100", 24, None),
            dd("10.77.251.100", 24, Some("10.77.251.5")),
        ]
    });
    let vipa = Some(DEV1.to_string());
    let want = [
        vipa.clone(),
        vipa.clone(),
        None,
        None,
        vipa.clone(),
        vipa,
        None,
        None,
        None,
        None,
        None,
    ];
    assert_eq!(found, want);
}

/// A packet socket on `dev` in `ns` that sees every frame, sent or received; `ready` once it
/// is open. The first frame `want` accepts, or what was seen instead by `deadline`.
fn capture(
    ns: &str,
    dev: &str,
    ready: mpsc::Sender<()>,
    deadline: Instant,
    want: fn(&[u8]) -> bool,
) -> Result<Vec<u8>, Vec<String>> {
    in_namespace(ns, || {
        let all = (libc::ETH_P_ALL as u16).to_be();
        // SAFETY: socket(2) takes no pointers; the descriptor is owned at once.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, all.into()) };
        assert!(fd >= 0, "packet socket: {}", io::Error::last_os_error());
        // SAFETY: fd was just returned by socket(2).
        let sock = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: all-zero is a valid sockaddr_ll; it and the timeval are live for the calls.
        unsafe {
            let mut at: libc::sockaddr_ll = std::mem::zeroed();
            at.sll_family = libc::AF_PACKET as u16;
            at.sll_protocol = all;
            let name = std::ffi::CString::new(dev).unwrap();
            at.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
            assert_ne!(at.sll_ifindex, 0, "no {dev} in {ns}");
            let len = std::mem::size_of_val(&at) as libc::socklen_t;
            let r = libc::bind(sock.as_raw_fd(), (&raw const at).cast(), len);
            assert_eq!(r, 0, "bind to {dev}: {}", io::Error::last_os_error());
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            let len = std::mem::size_of_val(&tv) as libc::socklen_t;
            let r = libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                len,
            );
            assert_eq!(r, 0);
        }
        ready.send(()).unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            // SAFETY: buf is a live buffer of buf.len() bytes.
            let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n <= 0 {
                continue;
            }
            let frame = &buf[..n as usize];
            if want(frame) {
                return Ok(frame.to_vec());
            }
            let hex: Vec<String> = frame.iter().take(90).map(|b| format!("{b:02x}")).collect();
            seen.push(format!("{n} bytes: {}", hex.join("")));
        }
        Err(seen)
    })
}

/// Catches the first frame `want` accepts on `DEV2` while `send` runs (after the capture is
/// open), within 5 s; panics with every frame seen otherwise.
fn catch(p: &Pair, what: &str, want: fn(&[u8]) -> bool, send: impl FnOnce()) -> Vec<u8> {
    let (tx, rx) = mpsc::channel();
    let deadline = Instant::now() + Duration::from_secs(5);
    let ns2 = p.ns2.clone();
    let catcher = std::thread::spawn(move || capture(&ns2, DEV2, tx, deadline, want));
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the capture did not open");
    send();
    catcher.join().unwrap().unwrap_or_else(|seen| {
        panic!(
            "no {what} within 5 s; {} frames seen:\n{}",
            seen.len(),
            seen.join("\n")
        )
    })
}

/// Waits (up to 3 s) until the second namespace maps `vip` to `MAC1`, as the announcement
/// told it to; panics with what it maps it to otherwise.
fn await_neighbour(p: &Pair, vip: &str) {
    let want = mac_text(MAC1);
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let shown = ip(&["-n", &p.ns2, "neigh", "show", vip, "dev", DEV2]);
        if shown.contains(&want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the neighbour still maps {vip} elsewhere: {shown:?}, not to {want}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn gratuitous_arp_reaches_the_neighbour() {
    let Some(p) = Pair::new("arp") else { return };
    // As after a failover: the neighbour maps the VIP to the old holder.
    ip(&[
        "-n", &p.ns2, "neigh", "add", VIP4, "lladdr", OLD_MAC, "dev", DEV2, "nud", "stale",
    ]);
    let v = in_namespace(&p.ns1, || {
        let v = Vip::new(ip_addr(VIP4), 24, DEV1).unwrap();
        v.add().unwrap();
        v
    });
    // Any ARP frame from NS1's veth: what it says is checked field by field below.
    let want: fn(&[u8]) -> bool = |f| f.len() >= 42 && f[6..12] == MAC1 && f[12..14] == [8, 6];
    let f = catch(&p, "ARP from the VIP's holder", want, || {
        in_namespace(&p.ns1, || v.announce()).unwrap()
    });
    let vip = ip_addr(VIP4);
    let v4 = |b: &[u8]| IpAddr::from(<[u8; 4]>::try_from(b).unwrap());
    assert_eq!(f[..6], [0xff; 6], "not broadcast: {f:02x?}");
    // Ethernet, IPv4, lengths 6 and 4, a request.
    assert_eq!(f[14..22], [0, 1, 8, 0, 6, 4, 0, 1], "ARP header: {f:02x?}");
    assert_eq!(f[22..28], MAC1, "sender MAC");
    assert_eq!(v4(&f[28..32]), vip, "sender IP");
    assert_eq!(f[32..38], [0; 6], "target MAC");
    assert_eq!(v4(&f[38..42]), vip, "target IP");
    await_neighbour(&p, VIP4);
}

/// Whether the ICMPv6 message in `f` (an Ethernet frame of IPv6 with no extension headers)
/// has a correct checksum: the one's complement sum over the pseudo-header and the message.
fn icmpv6_checksum_ok(f: &[u8]) -> bool {
    let len = u16::from_be_bytes([f[18], f[19]]) as usize;
    let msg = &f[54..54 + len];
    let mut pseudo = f[22..54].to_vec();
    pseudo.extend_from_slice(&(len as u32).to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let mut sum: u32 = 0;
    for chunk in pseudo.chunks(2).chain(msg.chunks(2)) {
        sum += u32::from(u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum == 0xffff
}

#[test]
fn unsolicited_neighbour_advertisement_reaches_the_neighbour() {
    let Some(p) = Pair::new("na") else { return };
    ip(&[
        "-n", &p.ns2, "neigh", "add", VIP6, "lladdr", OLD_MAC, "dev", DEV2, "nud", "stale",
    ]);
    let v = in_namespace(&p.ns1, || {
        let v = Vip::new(ip_addr(VIP6), 64, DEV1).unwrap();
        v.add().unwrap();
        v
    });
    // A neighbour advertisement (ICMPv6 type 136) from NS1's veth.
    let want: fn(&[u8]) -> bool = |f| {
        f.len() >= 86
            && f[6..12] == MAC1
            && f[12..14] == [0x86, 0xdd]
            && f[20] == 58
            && f[54] == 136
    };
    let f = catch(
        &p,
        "neighbour advertisement from the VIP's holder",
        want,
        || in_namespace(&p.ns1, || v.announce()).unwrap(),
    );
    let v6 = |b: &[u8]| IpAddr::from(<[u8; 16]>::try_from(b).unwrap());
    assert_eq!(
        f[..6],
        [0x33, 0x33, 0, 0, 0, 1],
        "not to all nodes: {f:02x?}"
    );
    assert_eq!(f[21], 255, "hop limit");
    assert_eq!(v6(&f[22..38]), ip_addr(VIP6), "source: the VIP itself");
    assert_eq!(v6(&f[38..54]), ip_addr("ff02::1"), "destination");
    assert_eq!(f[55], 0, "code");
    assert!(icmpv6_checksum_ok(&f), "checksum: {f:02x?}");
    assert_eq!(
        f[58] & 0xe0,
        0x20,
        "flags: override only, not router or solicited"
    );
    assert_eq!(v6(&f[62..78]), ip_addr(VIP6), "target");
    assert_eq!(
        f[78..80],
        [2, 1],
        "option: target link-layer address, 8 bytes"
    );
    assert_eq!(f[80..86], MAC1, "target MAC");
    await_neighbour(&p, VIP6);
}

#[test]
fn unknown_devices_are_named_and_root_lacks_no_capability() {
    let e = Vip::new(ip_addr(VIP4), 24, "nosuchvip9").unwrap_err();
    assert!(e.contains("nosuchvip9") && !e.contains('\n'), "{e}");
    let Some(p) = Pair::new("caps") else { return };
    // No Ethernet, no neighbours to tell: announcing on the loopback is an error, not a no-op.
    let e = in_namespace(&p.ns1, || {
        Vip::new(ip_addr(VIP4), 24, "lo").unwrap().announce()
    })
    .unwrap_err();
    assert_eq!(e.kind(), io::ErrorKind::Unsupported, "{e}");
    assert_eq!(vip::missing_capabilities(), Vec::<&str>::new());
}

//! A virtual IP address the node holds on one interface while it leads, with no external
//! program: a small board's busybox has neither iproute2 nor arping, so the address is added
//! and removed over netlink and announced with hand-built ARP and neighbour advertisements.

mod announce;
mod netlink;

use std::io;
use std::net::IpAddr;

/// An address, its prefix length and the interface it goes on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vip {
    pub addr: IpAddr,
    pub prefix: u8,
    pub dev: String,
    pub ifindex: u32,
}

/// "ADDR/PREFIX" (IPv4 or IPv6). Errors are one short human sentence (used after "--vip: ").
/// Refused: no prefix or one too long for the family, and the addresses no host can hold as
/// its own (unspecified, loopback, multicast, the IPv4 broadcast 255.255.255.255).
pub fn parse(s: &str) -> Result<(IpAddr, u8), String> {
    let Some((a, p)) = s.split_once('/') else {
        return Err(format!(
            "{s} has no prefix length (write ADDR/PREFIX, e.g. 10.0.0.100/24)"
        ));
    };
    let addr: IpAddr = a
        .parse()
        .map_err(|_| format!("{a} is not an IPv4 or IPv6 address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = p
        .parse::<u8>()
        .ok()
        .filter(|n| *n <= max && p.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| format!("the prefix length of {a} must be 0 to {max}, not {p:?}"))?;
    let what = if addr.is_unspecified() {
        "the unspecified address"
    } else if addr.is_loopback() {
        "a loopback address"
    } else if addr.is_multicast() {
        "a multicast address"
    } else if addr == IpAddr::from([255, 255, 255, 255]) {
        "the broadcast address"
    } else {
        return Ok((addr, prefix));
    };
    Err(format!("{a} is {what}, which no host can hold as its own"))
}

impl Vip {
    /// Resolves `dev` to its ifindex; Err(one sentence) for an unknown device.
    pub fn new(addr: IpAddr, prefix: u8, dev: &str) -> Result<Vip, String> {
        let ifindex =
            netlink::index(dev).ok_or_else(|| format!("there is no network interface {dev}"))?;
        Ok(Vip {
            addr,
            prefix,
            dev: dev.to_string(),
            ifindex,
        })
    }

    /// Adds the address (idempotent: already there is Ok). IPv6 with IFA_F_NODAD, so it is
    /// usable at once: the node takes the address because it leads, so no one else has it.
    pub fn add(&self) -> io::Result<()> {
        match netlink::change(netlink::RTM_NEWADDR, self.ifindex, self.addr, self.prefix) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            r => r,
        }
    }

    /// Removes it (idempotent: not there is Ok).
    pub fn remove(&self) -> io::Result<()> {
        match netlink::change(netlink::RTM_DELADDR, self.ifindex, self.addr, self.prefix) {
            Err(e) if e.raw_os_error() == Some(libc::EADDRNOTAVAIL) => Ok(()),
            r => r,
        }
    }

    /// Whether ADDR/PREFIX is on `dev` now (an RTM_GETADDR dump filtered by ifindex).
    pub fn held(&self) -> io::Result<bool> {
        Ok(netlink::addresses()?
            .iter()
            .any(|a| a.ifindex == self.ifindex && a.addr == self.addr && a.prefix == self.prefix))
    }

    /// One announcement: a gratuitous ARP (IPv4) or an unsolicited neighbour advertisement
    /// (IPv6, sent from the address itself, so add it first), from `dev`'s MAC.
    pub fn announce(&self) -> io::Result<()> {
        let (kind, mac) = netlink::hardware(&self.dev)?;
        if kind != libc::ARPHRD_ETHER {
            let why = format!("{} is not Ethernet: no neighbours to tell", self.dev);
            return Err(io::Error::new(io::ErrorKind::Unsupported, why));
        }
        match self.addr {
            IpAddr::V4(a) => announce::arp(self.ifindex, mac, a),
            IpAddr::V6(a) => announce::na(self.ifindex, mac, a),
        }
    }
}

impl std::fmt::Display for Vip {
    /// "10.0.0.100/24 on eth0".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{} on {}", self.addr, self.prefix, self.dev)
    }
}

/// The interface a VIP goes on when --vip-dev is not given: the interface of the route to that
/// prefix, i.e. one that already has an address inside ADDR/PREFIX (same family); else the
/// interface holding `bind` (if given and not unspecified); else None. The loopback never
/// counts: a host route there (an anycast /32, say) carries nothing to the link.
pub fn default_device(
    addr: IpAddr,
    prefix: u8,
    bind: Option<IpAddr>,
) -> io::Result<Option<String>> {
    let all = netlink::addresses()?;
    let inside = all
        .iter()
        .find(|a| same_prefix(a.addr, addr, prefix) && usable(a.ifindex));
    let bind = bind.filter(|b| !b.is_unspecified());
    let holder = || {
        all.iter()
            .find(|a| Some(a.addr) == bind && usable(a.ifindex))
    };
    Ok(inside
        .or_else(holder)
        .and_then(|a| netlink::name(a.ifindex)))
}

/// Whether an interface can carry a VIP to its neighbours: it exists and is not a loopback.
fn usable(ifindex: u32) -> bool {
    netlink::name(ifindex)
        .and_then(|dev| netlink::hardware(&dev).ok())
        .is_some_and(|(kind, _)| kind != netlink::ARPHRD_LOOPBACK)
}

/// Whether `a` and `b` are of one family and agree in their first `prefix` bits.
fn same_prefix(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    let bits = |x: IpAddr| match x {
        IpAddr::V4(v) => (u128::from(v.to_bits()) << 96, 32),
        IpAddr::V6(v) => (v.to_bits(), 128),
    };
    let ((x, fx), (y, fy)) = (bits(a), bits(b));
    let p = u32::from(prefix);
    fx == fy && p <= fx && (p == 0 || (x ^ y) >> (128 - p) == 0)
}

/// Which of CAP_NET_ADMIN (12: addresses) and CAP_NET_RAW (13: announcements) this process
/// lacks in its effective set, as their names; both if /proc/self/status cannot say.
pub fn missing_capabilities() -> Vec<&'static str> {
    lacking(&std::fs::read_to_string("/proc/self/status").unwrap_or_default())
}

/// The capabilities of [`missing_capabilities`] absent from the CapEff line of `status`.
fn lacking(status: &str) -> Vec<&'static str> {
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    [(12, "CAP_NET_ADMIN"), (13, "CAP_NET_RAW")]
        .into_iter()
        .filter(|(bit, _)| eff & (1 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_reads_v4_and_v6_with_their_prefix() {
        let ok = |s: &str| parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
        assert_eq!(ok("10.0.0.100/24"), ("10.0.0.100".parse().unwrap(), 24));
        assert_eq!(ok("192.0.2.7/32"), ("192.0.2.7".parse().unwrap(), 32));
        assert_eq!(ok("10.1.2.3/0").1, 0);
        assert_eq!(ok("fd77::100/64"), ("fd77::100".parse().unwrap(), 64));
        assert_eq!(ok("2001:db8::1/128").1, 128);
        assert_eq!(ok("fe80::1/64").0, "fe80::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn parse_refuses_with_one_sentence_that_names_the_input() {
        for (s, says) in [
            ("10.0.0.100", "10.0.0.100 has no prefix length"),
            ("10.0.0.100/", "must be 0 to 32, not \"\""),
            ("10.0.0.100/33", "must be 0 to 32, not \"33\""),
            ("10.0.0.100/+24", "not \"+24\""),
            ("10.0.0.100/24/1", "not \"24/1\""),
            ("10.0.0.100/ 24", "not \" 24\""),
            ("fd77::100/129", "must be 0 to 128"),
            ("fd77::100/-1", "must be 0 to 128"),
            ("10.0.0/24", "10.0.0 is not an IPv4 or IPv6 address"),
            ("eth0/24", "eth0 is not an IPv4"),
            ("/24", " is not an IPv4"),
            ("0.0.0.0/0", "0.0.0.0 is the unspecified address"),
            ("::/64", ":: is the unspecified address"),
            ("127.0.0.1/8", "127.0.0.1 is a loopback address"),
            ("127.9.9.9/32", "127.9.9.9 is a loopback address"),
            ("::1/128", "::1 is a loopback address"),
            ("224.0.0.18/32", "224.0.0.18 is a multicast address"),
            ("ff02::1/64", "ff02::1 is a multicast address"),
            (
                "255.255.255.255/32",
                "255.255.255.255 is the broadcast address",
            ),
        ] {
            let e = parse(s).expect_err(s);
            assert!(e.contains(says), "{s}: {e:?} lacks {says:?}");
            assert!(!e.contains('\n') && !e.ends_with('.'), "{s}: {e:?}");
        }
    }

    #[test]
    fn same_prefix_compares_the_leading_bits_of_one_family() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(same_prefix(ip("10.77.250.1"), ip("10.77.250.100"), 24));
        assert!(!same_prefix(ip("10.77.251.1"), ip("10.77.250.100"), 24));
        assert!(same_prefix(ip("10.77.251.1"), ip("10.77.250.100"), 22));
        assert!(!same_prefix(ip("10.77.250.1"), ip("10.77.250.100"), 32));
        assert!(same_prefix(ip("1.2.3.4"), ip("200.0.0.1"), 0));
        assert!(same_prefix(ip("fd77::1"), ip("fd77::100"), 64));
        assert!(!same_prefix(ip("fd78::1"), ip("fd77::100"), 64));
        assert!(!same_prefix(
            ip("::ffff:10.77.250.1"),
            ip("10.77.250.100"),
            0
        ));
    }

    #[test]
    fn lacking_reads_the_effective_set() {
        let status = |eff: &str| format!("Name:\tbully\nCapInh:\t0\nCapEff:\t{eff}\nCapBnd:\t0\n");
        assert!(lacking(&status("000001ffffffffff")).is_empty());
        assert!(lacking(&status("0000000000003000")).is_empty());
        assert_eq!(lacking(&status("0000000000001000")), ["CAP_NET_RAW"]);
        assert_eq!(lacking(&status("0000000000002000")), ["CAP_NET_ADMIN"]);
        let none = ["CAP_NET_ADMIN", "CAP_NET_RAW"];
        assert_eq!(lacking(&status("0000000000000000")), none);
        assert_eq!(lacking("no such line"), none);
    }
}

//! Just enough of NETLINK_ROUTE to add, remove and list interface addresses, and the two
//! interface look-ups around it. Messages are built by hand as bytes: a generic netlink
//! library would cost the static ARM builds more than these few fixed messages do.

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

// From <linux/netlink.h> and <linux/rtnetlink.h>: stable kernel ABI, written out because the
// libc crate lacks some of them on some targets.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
/// Set on a dump's messages when the table changed under it, so the list may be off.
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
/// In ifa_flags: usable at once, without the second or so of duplicate address detection.
const IFA_F_NODAD: u8 = 0x02;
/// The loopback's hardware type (`lo`), from <linux/if_arp.h>.
pub const ARPHRD_LOOPBACK: u16 = 772;

/// One address of one interface, as an RTM_GETADDR dump lists it (the family is the variant).
pub struct Addr {
    pub ifindex: u32,
    pub addr: IpAddr,
    pub prefix: u8,
}

/// Runs a syscall again while a signal interrupts it.
pub fn retry(mut f: impl FnMut() -> isize) -> io::Result<usize> {
    loop {
        let r = f();
        if r >= 0 {
            return Ok(r as usize);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A socket that is not inherited by the hook commands the node runs.
pub fn socket(domain: libc::c_int, ty: libc::c_int, proto: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; a non-negative result is a descriptor we now own.
    let fd = unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, proto) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and nothing else holds it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds (RTM_NEWADDR, failing with EEXIST if it is there) or removes (RTM_DELADDR, failing
/// with EADDRNOTAVAIL if it is not) ADDR/PREFIX on interface `ifindex`, with scope global.
pub fn change(op: u16, ifindex: u32, addr: IpAddr, prefix: u8) -> io::Result<()> {
    let (family, bytes) = match addr {
        IpAddr::V4(a) => (libc::AF_INET, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6, a.octets().to_vec()),
    };
    let nodad = if addr.is_ipv6() { IFA_F_NODAD } else { 0 };
    // struct ifaddrmsg: family, prefixlen, flags, scope (0: global), index.
    let mut body = vec![family as u8, prefix, nodad, 0];
    body.extend_from_slice(&ifindex.to_ne_bytes());
    // Both, as `ip addr add` sends them: IFA_LOCAL is the address, IFA_ADDRESS its (here the
    // same) peer, which IPv4 matches on when it deletes.
    for ty in [IFA_LOCAL, IFA_ADDRESS] {
        body.extend_from_slice(&(4 + bytes.len() as u16).to_ne_bytes());
        body.extend_from_slice(&ty.to_ne_bytes());
        body.extend_from_slice(&bytes);
    }
    let flags = if op == RTM_NEWADDR {
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    } else {
        NLM_F_ACK
    };
    talk(op, flags, &body, &mut |_, _| {})
}

/// Every address of every interface (an RTM_GETADDR dump), tried again if it changed meanwhile.
pub fn addresses() -> io::Result<Vec<Addr>> {
    let mut tries = 0;
    loop {
        let mut out = Vec::new();
        // struct ifaddrmsg, all zero: every family, every interface.
        let r = talk(RTM_GETADDR, NLM_F_DUMP, &[0; 8], &mut |ty, m| {
            if ty == RTM_NEWADDR {
                out.extend(parse_addr(m));
            }
        });
        match r {
            Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < 3 => tries += 1,
            r => return r.map(|()| out),
        }
    }
}

/// One RTM_NEWADDR message of a dump: its ifaddrmsg, then IFA_LOCAL (preferred: on a
/// point-to-point link IFA_ADDRESS is the peer) or else IFA_ADDRESS.
fn parse_addr(m: &[u8]) -> Option<Addr> {
    let (&[family, prefix, _, _], rest) = m.split_first_chunk::<4>()?;
    let ifindex = u32::from_ne_bytes(*rest.first_chunk::<4>()?);
    let (mut local, mut address) = (None, None);
    let mut attrs = rest.get(4..)?;
    while let Some((head, _)) = attrs.split_first_chunk::<4>() {
        let len = u16::from_ne_bytes([head[0], head[1]]) as usize;
        let ty = u16::from_ne_bytes([head[2], head[3]]);
        let data = attrs.get(4..len)?;
        let ip = match (family as i32, data.len()) {
            (libc::AF_INET, 4) => <[u8; 4]>::try_from(data).ok().map(IpAddr::from),
            (libc::AF_INET6, 16) => <[u8; 16]>::try_from(data).ok().map(IpAddr::from),
            _ => None,
        };
        match ty {
            IFA_LOCAL => local = ip,
            IFA_ADDRESS => address = ip,
            _ => {}
        }
        attrs = attrs.get(len.next_multiple_of(4)..).unwrap_or(&[]);
    }
    let addr = local.or(address)?;
    Some(Addr {
        ifindex,
        addr,
        prefix,
    })
}

/// Sends one request and reads the answer: `each(type, payload)` for every message of a dump
/// until NLMSG_DONE, or the ack; a negative error code in either comes back as io::Error.
fn talk(ty: u16, flags: u16, body: &[u8], each: &mut dyn FnMut(u16, &[u8])) -> io::Result<()> {
    let sock = socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE)?;
    let fd = sock.as_raw_fd();
    const SEQ: u32 = 1;
    // struct nlmsghdr: length, type, flags, sequence number, port (0: the kernel fills it in).
    let mut msg = ((16 + body.len()) as u32).to_ne_bytes().to_vec();
    msg.extend_from_slice(&ty.to_ne_bytes());
    msg.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
    msg.extend_from_slice(&SEQ.to_ne_bytes());
    msg.extend_from_slice(&0u32.to_ne_bytes());
    msg.extend_from_slice(body);
    // SAFETY: msg is a live buffer of msg.len() bytes; send(2) only reads it.
    retry(|| unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) })?;
    // The kernel sends a dump in datagrams of at most 32 KiB; MSG_TRUNC says if one was more.
    let mut buf = vec![0u8; 32 * 1024];
    let mut interrupted = false;
    loop {
        let (p, room) = (buf.as_mut_ptr().cast(), buf.len());
        // SAFETY: p is a live buffer of `room` bytes that recv(2) writes into.
        let n = retry(|| unsafe { libc::recv(fd, p, room, libc::MSG_TRUNC) })?;
        let Some(mut rest) = buf.get(..n) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "netlink datagram too long",
            ));
        };
        while let Some((head, _)) = rest.split_first_chunk::<16>() {
            let len = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let mty = u16::from_ne_bytes([head[4], head[5]]);
            let mflags = u16::from_ne_bytes([head[6], head[7]]);
            let seq = u32::from_ne_bytes([head[8], head[9], head[10], head[11]]);
            let Some(payload) = rest.get(16..len) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "short netlink message",
                ));
            };
            rest = rest.get(len.next_multiple_of(4)..).unwrap_or(&[]);
            if seq != SEQ {
                continue;
            }
            interrupted |= mflags & NLM_F_DUMP_INTR != 0;
            if mty == NLMSG_ERROR || mty == NLMSG_DONE {
                // Both start with an int: 0 (an ack, a dump complete) or minus an errno.
                let code = payload
                    .first_chunk::<4>()
                    .map_or(0, |c| i32::from_ne_bytes(*c));
                if code < 0 {
                    return Err(io::Error::from_raw_os_error(-code));
                }
                if interrupted {
                    return Err(io::ErrorKind::Interrupted.into());
                }
                return Ok(());
            }
            each(mty, payload);
        }
    }
}

/// The index of interface `dev`; None if there is none of that name.
pub fn index(dev: &str) -> Option<u32> {
    let name = std::ffi::CString::new(dev).ok()?;
    // SAFETY: name is a NUL-terminated string that outlives the call.
    let i = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (i != 0).then_some(i)
}

/// The name of interface `ifindex`; None if it is gone.
pub fn name(ifindex: u32) -> Option<String> {
    let mut buf = [0 as libc::c_char; libc::IF_NAMESIZE];
    // SAFETY: buf has the IF_NAMESIZE bytes if_indextoname may write, NUL included.
    let p = unsafe { libc::if_indextoname(ifindex, buf.as_mut_ptr()) };
    if p.is_null() {
        return None;
    }
    // SAFETY: on success if_indextoname wrote a NUL-terminated name into buf.
    let s = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) };
    Some(s.to_string_lossy().into_owned())
}

/// Interface `dev`'s hardware type (ARPHRD_*) and first six bytes of its hardware address
/// (the MAC, on Ethernet), by ioctl SIOCGIFHWADDR.
pub fn hardware(dev: &str) -> io::Result<(u16, [u8; 6])> {
    if dev.len() >= libc::IFNAMSIZ || dev.contains('\0') {
        return Err(io::ErrorKind::InvalidInput.into());
    }
    // struct ifreq: the name in 16 bytes, then a struct sockaddr (family, then the address);
    // 40 bytes cover the union on 32- and 64-bit targets alike.
    let mut req = [0u8; 40];
    req[..dev.len()].copy_from_slice(dev.as_bytes());
    let sock = socket(libc::AF_INET, libc::SOCK_DGRAM, 0)?;
    // SAFETY: req is a writable buffer at least as large as struct ifreq, its name
    // NUL-terminated; SIOCGIFHWADDR writes only inside it.
    let r = unsafe {
        libc::ioctl(
            sock.as_raw_fd(),
            libc::SIOCGIFHWADDR as libc::Ioctl,
            req.as_mut_ptr(),
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut mac = [0; 6];
    mac.copy_from_slice(&req[18..24]);
    Ok((u16::from_ne_bytes([req[16], req[17]]), mac))
}

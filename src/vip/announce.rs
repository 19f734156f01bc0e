//! Telling the link that an address has moved here: the neighbours (and switches) still map it
//! to the old holder's MAC until they hear otherwise, so a new holder says so at once rather
//! than waiting for their caches to expire.

use super::netlink::{retry, socket};
use std::io;
use std::mem::size_of;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

/// A gratuitous ARP request (sender IP = target IP = `ip`, target MAC zero, as the kernel's
/// own): with SOCK_DGRAM the kernel writes the Ethernet header, from `mac` to broadcast.
pub fn arp(ifindex: u32, mac: [u8; 6], ip: Ipv4Addr) -> io::Result<()> {
    // Protocol 0: a socket that only sends, so no frames queue up on it meanwhile.
    let sock = socket(libc::AF_PACKET, libc::SOCK_DGRAM, 0)?;
    let mut pkt = [0u8; 28];
    // Hardware Ethernet, protocol IPv4, address lengths 6 and 4, operation 1 (request).
    pkt[..8].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    pkt[8..14].copy_from_slice(&mac);
    pkt[14..18].copy_from_slice(&ip.octets());
    pkt[24..28].copy_from_slice(&ip.octets());
    // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
    let mut to: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    to.sll_family = libc::AF_PACKET as u16;
    to.sll_protocol = (libc::ETH_P_ARP as u16).to_be();
    to.sll_ifindex = ifindex as i32;
    to.sll_halen = 6;
    to.sll_addr[..6].fill(0xff);
    send(
        &sock,
        &pkt,
        (&raw const to).cast(),
        size_of::<libc::sockaddr_ll>(),
    )
}

/// An unsolicited neighbour advertisement for `ip` to all nodes (ff02::1) on `ifindex`:
/// override set, so neighbours replace the MAC they had; solicited clear, as it answers
/// nothing. Sent from `ip` itself (as the kernel's own), so `ip` must be on the host already.
pub fn na(ifindex: u32, mac: [u8; 6], ip: Ipv6Addr) -> io::Result<()> {
    let sock = socket(libc::AF_INET6, libc::SOCK_RAW, libc::IPPROTO_ICMPV6)?;
    let fd = sock.as_raw_fd();
    // Receivers drop neighbour discovery that has crossed a router: hop limit 255 proves not.
    let hops: libc::c_int = 255;
    // SAFETY: hops is a live c_int of the length given.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IPV6,
            libc::IPV6_MULTICAST_HOPS,
            (&raw const hops).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    let at = |addr: Ipv6Addr| {
        // SAFETY: an all-zero sockaddr_in6 is valid; the fields that matter are set below.
        let mut sa: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
        sa.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        sa.sin6_addr.s6_addr = addr.octets();
        sa.sin6_scope_id = ifindex;
        sa
    };
    let from = at(ip);
    let len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
    // SAFETY: from is a live sockaddr_in6 of the length given.
    if unsafe { libc::bind(fd, (&raw const from).cast(), len) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // ICMPv6 type 136, code 0, checksum 0 (raw ICMPv6 sockets have the kernel fill it in),
    // flags (0x20: override), the target, and option 2 (target link-layer address, 8 bytes).
    let mut pkt = [0u8; 32];
    pkt[0] = 136;
    pkt[4] = 0x20;
    pkt[8..24].copy_from_slice(&ip.octets());
    pkt[24..26].copy_from_slice(&[2, 1]);
    pkt[26..32].copy_from_slice(&mac);
    let to = at(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1));
    send(&sock, &pkt, (&raw const to).cast(), len as usize)
}

/// sendto(2) of the whole of `pkt`.
fn send(sock: &impl AsRawFd, pkt: &[u8], to: *const libc::sockaddr, len: usize) -> io::Result<()> {
    let fd = sock.as_raw_fd();
    // SAFETY: pkt is live for the call and `to` points at a live address of `len` bytes.
    let sent = retry(|| unsafe {
        libc::sendto(
            fd,
            pkt.as_ptr().cast(),
            pkt.len(),
            0,
            to,
            len as libc::socklen_t,
        )
    })?;
    if sent != pkt.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
    }
    Ok(())
}

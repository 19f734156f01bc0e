//! What every input must satisfy, in one place: names, hosts, addresses and the term cap. The
//! server refuses what breaks them before it reaches the core, the command line refuses it
//! before a node starts, and registries skip records that break them.

use std::net::IpAddr;

/// The highest term accepted from anyone. Terms stay exact in every JSON implementation (the
/// largest integer a double holds exactly), and a forged message can never push a node's term
/// to where the next win would overflow.
pub const MAX_TERM: u64 = (1 << 53) - 1;

/// Names end up in file names, registry IDs and logs, so they are kept to a safe alphabet.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// What [`valid_name`] asks for, for error messages.
pub const NAME_RULE: &str = "1 to 64 letters, digits, '.', '_' or '-'";

/// A term a message may carry.
pub fn valid_term(term: u64) -> bool {
    term <= MAX_TERM
}

/// A host name or an IP literal.
pub fn valid_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && (s.parse::<IpAddr>().is_ok()
            || s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-'))
}

/// `host:port` or `[v6]:port`.
pub fn valid_host_port(s: &str) -> bool {
    let Some((host, port)) = s.rsplit_once(':') else {
        return false;
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    valid_host(host) && port.parse::<u16>().is_ok_and(|p| p != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hosts_and_terms() {
        assert!(valid_name("node-1.a_b"));
        for bad in ["", "a/b", "a b", &"x".repeat(65), "ü"] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert!(valid_host("10.0.0.1") && valid_host("::1") && valid_host("h.local"));
        assert!(!valid_host("bad host!") && !valid_host(""));
        assert!(valid_host_port("[::1]:5000") && valid_host_port("h:1"));
        assert!(!valid_host_port("h:0") && !valid_host_port("h") && !valid_host_port("h:x"));
        assert!(valid_term(MAX_TERM) && !valid_term(MAX_TERM + 1));
    }
}

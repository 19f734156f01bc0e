//! Consul's settings and the rules they must follow: which agent, which token, and the check
//! timings Consul itself would clamp. Read the way Consul's own CLI reads them.

use super::tls_files::RegistryTls;
use crate::core::rules::{valid_host, valid_host_port};
use std::time::Duration;

/// The agent to talk to and what to register there. Only checked when Consul is the registry,
/// so a `CONSUL_HTTP_ADDR` set for other tools never breaks a node on another registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsulOptions {
    /// `http://host:port` or `https://host:port`, without a trailing slash.
    pub address: String,
    /// TLS to an `https` agent: its CA, a client certificate for `verify_incoming`.
    pub tls: Option<RegistryTls>,
    /// ACL token, sent as `X-Consul-Token`; never logged.
    pub token: Option<String>,
    pub check_interval: Duration,
    pub deregister_after: Duration,
    /// `--consul-lock`: leading also takes holding the session lock on
    /// `bully/<cluster>/leader`.
    pub lock: bool,
    /// `--consul-lock-delay`: the lock-delay of this node's sessions: after one ends
    /// without releasing the lock (its check failed), Consul refuses the lock to everyone
    /// this long.
    pub lock_delay: Duration,
}

/// Consul's CLI default, used when neither `--consul` nor `CONSUL_HTTP_ADDR` is set.
pub const DEFAULT_ADDRESS: &str = "http://127.0.0.1:8500";
/// How often Consul checks a node unless told otherwise.
pub const DEFAULT_CHECK_INTERVAL: Duration = Duration::from_secs(10);
/// Consul clamps shorter check intervals to this; refusing them up front is clearer.
pub const MIN_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// Consul clamps shorter `DeregisterCriticalServiceAfter` values to this.
pub const MIN_DEREGISTER: Duration = Duration::from_secs(60);
/// Consul refuses sessions with a longer lock-delay.
pub const MAX_LOCK_DELAY: Duration = Duration::from_secs(60);

/// The token in `CONSUL_HTTP_TOKEN_FILE`'s file, as Consul reads it: white space around it
/// dropped, and an empty file the same as none (`Ok(None)`).
pub fn token_from_file(path: &std::path::Path) -> Result<Option<String>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let token = text.trim();
    Ok((!token.is_empty()).then(|| token.to_string()))
}

/// `http[s]://host[:port]` or a bare `host[:port]` (as `CONSUL_HTTP_ADDR` is often written,
/// taken as http) becomes a base URL without a trailing slash. Whether this build can speak
/// https is the caller's to check.
pub fn base_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    let expected = || format!("expected http[s]://HOST:PORT or HOST:PORT, got '{s}'");
    let (scheme, rest) = match s.split_once("://") {
        None => ("http", s),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => ("http", rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => ("https", rest),
        Some(_) => return Err(expected()),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if valid_host_port(rest) || (valid_host(rest) && !rest.contains(':')) {
        Ok(format!("{scheme}://{rest}"))
    } else {
        Err(expected())
    }
}

/// `CONSUL_HTTP_SSL=true`: `url` over https, as Consul's CLI does (it never falls back to
/// http once TLS was asked for, even for an `http://` address).
pub fn with_https(url: &str) -> String {
    match url.strip_prefix("http://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_string(),
    }
}

/// A token may only hold visible ASCII (it goes into a header); the check never echoes it.
pub fn valid_token(t: &str) -> bool {
    t.bytes().all(|b| b.is_ascii_graphic())
}

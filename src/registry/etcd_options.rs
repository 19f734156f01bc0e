//! etcd's settings and the rules they must follow: which endpoints (read as etcdctl reads
//! `ETCDCTL_ENDPOINTS`), the lease TTL, the leader lock and the user to authenticate as.

use super::consul_options::base_url;
use super::tls_files::RegistryTls;
use std::fmt;
use std::time::Duration;

/// The endpoints to try in turn, and what to keep there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdOptions {
    /// `http://host:port` or `https://host:port` each, without a trailing slash; never empty
    /// when etcd is used.
    pub endpoints: Vec<String>,
    /// TLS to `https` endpoints: etcd's CA, a client certificate for `--client-cert-auth`.
    pub tls: Option<RegistryTls>,
    /// The TTL of this node's leases (its member key's, and the leader key's): how long a
    /// node that stopped renewing stays listed, and holds the lock.
    pub ttl: Duration,
    /// `--etcd-lock`: leading also takes holding `bully/<cluster>/leader`.
    pub lock: bool,
    /// `--etcd-user` and the password from `--etcd-password-file`: token auth.
    pub auth: Option<Credentials>,
}

/// A user and password for `/v3/auth/authenticate`; the password never shows in a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Credentials {{ user: {:?}, password: (hidden) }}",
            self.user
        )
    }
}

/// etcdctl's default endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";
pub const DEFAULT_TTL: Duration = Duration::from_secs(5);
/// etcd raises shorter TTLs to ceil(1.5 × its election timeout), 2 s at its defaults;
/// refusing them up front is clearer than a lease that lives longer than asked.
pub const MIN_TTL: Duration = Duration::from_secs(2);
/// Longer than this and a dead node stays listed, and a dead holder keeps the lock, for
/// longer than anyone would want.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// `URL[,URL…]`, each `http[s]://host:port` or `host:port` as etcdctl takes them.
pub fn endpoints(list: &str) -> Result<Vec<String>, String> {
    let urls: Vec<&str> = list
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        return Err("expected http[s]://HOST:PORT[,http[s]://HOST:PORT...]".into());
    }
    urls.into_iter().map(base_url).collect()
}

/// A TTL in whole seconds (etcd's unit) within [`MIN_TTL`]..=[`MAX_TTL`].
pub fn valid_ttl(ttl: Duration) -> Result<Duration, String> {
    if ttl.subsec_nanos() != 0 {
        return Err("expected whole seconds (etcd's leases count in seconds)".into());
    }
    if ttl < MIN_TTL || ttl > MAX_TTL {
        return Err("expected 2s to 1h (etcd's minimum TTL is 2s at its defaults)".into());
    }
    Ok(ttl)
}

/// The password in `path`, as etcdctl's `--password` would take it: a trailing newline
/// dropped, nothing else.
pub fn password_from_file(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let password = text.strip_suffix('\n').unwrap_or(&text);
    let password = password.strip_suffix('\r').unwrap_or(password);
    if password.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(password.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_lists_read_like_etcdctl() {
        assert_eq!(
            endpoints("http://10.0.0.1:2379, 10.0.0.2:2379,").unwrap(),
            vec!["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert!(endpoints(" , ").is_err());
        assert_eq!(
            endpoints("HTTPS://h:2379/").unwrap(),
            vec!["https://h:2379"]
        );
        assert!(endpoints("h:2379,unix:///x").is_err());
    }

    #[test]
    fn ttls_are_whole_seconds_etcd_keeps() {
        assert_eq!(
            valid_ttl(Duration::from_secs(5)),
            Ok(Duration::from_secs(5))
        );
        assert!(valid_ttl(Duration::from_secs(1)).is_err());
        assert!(valid_ttl(Duration::from_millis(2500)).is_err());
        assert!(valid_ttl(Duration::from_secs(7200)).is_err());
    }

    #[test]
    fn passwords_are_hidden_and_read_without_the_newline() {
        let c = Credentials {
            user: "u".into(),
            password: "s3cret".into(),
        };
        assert!(!format!("{c:?}").contains("s3cret"));
        let dir = std::env::temp_dir().join(format!("bully-etcd-pw-{}", std::process::id()));
        std::fs::write(&dir, "pa ss\n").unwrap();
        assert_eq!(password_from_file(&dir).unwrap(), "pa ss");
        std::fs::write(&dir, "\n").unwrap();
        assert!(password_from_file(&dir).is_err());
        let _ = std::fs::remove_file(&dir);
    }
}

//! The registry options, shared by a node and `bully status`: which registry, which cluster,
//! and each back end's settings, with Consul's read the way Consul's own CLI reads them.

use super::flags::{parse_duration, Flags, UsageError};
use crate::core::rules::{valid_host_port, valid_name, NAME_RULE};
use crate::registry::consul_options::{
    base_url, token_from_file, valid_token, with_https, ConsulOptions, DEFAULT_ADDRESS,
    DEFAULT_CHECK_INTERVAL, MAX_LOCK_DELAY, MIN_CHECK_INTERVAL, MIN_DEREGISTER,
};
use crate::registry::etcd_options::{
    endpoints, password_from_file, valid_ttl, Credentials, EtcdOptions, DEFAULT_ENDPOINT,
    DEFAULT_TTL,
};
use crate::registry::tls_files::{self, Part, RegistryTls};
use crate::registry::{read_peers_file, RegistryKind, RegistryOptions};
use std::path::PathBuf;
use std::time::Duration;

impl Flags<'_> {
    /// Registry options; `timeout` bounds the calls registries make over the network.
    pub fn registry(&mut self, timeout: Duration) -> Result<RegistryOptions, UsageError> {
        let cluster = self
            .parsed("--cluster", &format!("a name of {NAME_RULE}"), |v| {
                valid_name(v).then(|| v.to_string())
            })?
            .unwrap_or_else(|| "bully".into());
        let kind = self.parsed("--registry", "dir, consul, etcd or static", |v| match v {
            "dir" => Some(RegistryKind::Dir),
            "consul" => Some(RegistryKind::Consul),
            "static" => Some(RegistryKind::Static),
            "etcd" => Some(RegistryKind::Etcd),
            _ => None,
        })?;
        let dir = self
            .value("--registry-dir")?
            .map(PathBuf::from)
            .unwrap_or_else(|| default_registry_dir((self.env)("XDG_RUNTIME_DIR")));
        let peers = self.parsed("--peers", "a comma-separated list of HOST:PORT", |v| {
            let list: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(String::from)
                .collect();
            (!list.is_empty() && list.iter().all(|p| valid_host_port(p))).then_some(list)
        })?;
        let peers_file = self.value("--peers-file")?.map(PathBuf::from);
        let peers = match (peers, &peers_file) {
            (Some(_), Some(_)) => {
                return Err(UsageError(
                    "--peers and --peers-file given together: choose one".into(),
                ))
            }
            (None, Some(f)) => Some(
                read_peers_file(f)
                    .map_err(|e| UsageError(format!("{}: {e}", self.source("--peers-file"))))?,
            ),
            (p, None) => p,
        };
        let consul = self.value("--consul")?;
        let etcd = self.value("--etcd")?;
        let kind = match (kind, &peers, &consul) {
            (Some(k), _, _) => k,
            (None, None, None) if etcd.is_some() => RegistryKind::Etcd,
            (None, Some(_), None) => RegistryKind::Static,
            (None, None, Some(_)) => RegistryKind::Consul,
            (None, Some(_), Some(_)) => {
                return Err(UsageError(
                    "--peers and --consul given together: choose one with --registry".into(),
                ))
            }
            (None, None, None) => RegistryKind::Dir,
        };
        if kind == RegistryKind::Static && peers.is_none() {
            return Err(UsageError(format!(
                "{} static: expected --peers HOST:PORT,... or --peers-file PATH",
                self.source("--registry")
            )));
        }
        let consul = self.consul(consul, kind == RegistryKind::Consul)?;
        let etcd = self.etcd(etcd, kind == RegistryKind::Etcd)?;
        let here = match kind {
            RegistryKind::Dir => "dir",
            RegistryKind::Consul => "consul",
            RegistryKind::Static => "static",
            RegistryKind::Etcd => "etcd",
        };
        if kind != RegistryKind::Static {
            for flag in ["--peers", "--peers-file"] {
                self.unused(
                    flag,
                    &format!("only the static registry reads it, and this one is {here}"),
                )?;
            }
        }
        if kind != RegistryKind::Consul {
            for flag in [
                "--consul",
                "--consul-token",
                "--consul-check-interval",
                "--consul-deregister-after",
                "--consul-lock-delay",
                "--consul-cacert",
                "--consul-client-cert",
                "--consul-client-key",
                "--consul-tls-server-name",
            ] {
                self.unused(
                    flag,
                    &format!("only the consul registry reads it, and this one is {here}"),
                )?;
            }
        }
        Ok(RegistryOptions {
            kind,
            cluster,
            dir,
            peers: peers.unwrap_or_default(),
            peers_file,
            consul,
            etcd,
            timeout,
        })
    }

    /// The etcd options: `--etcd`, else `ETCDCTL_ENDPOINTS` (as etcdctl reads it), else
    /// etcdctl's default; checked only when etcd is `used`, so an `ETCDCTL_ENDPOINTS` set for
    /// other tools never breaks a node on another registry.
    fn etcd(&mut self, flag: Option<String>, used: bool) -> Result<EtcdOptions, UsageError> {
        let lookup = self.env;
        let (source, raw) = match (flag, lookup("ETCDCTL_ENDPOINTS").filter(|v| !v.is_empty())) {
            (Some(v), _) => (self.source("--etcd"), v),
            (None, Some(v)) => ("ETCDCTL_ENDPOINTS".to_string(), v),
            (None, None) => ("--etcd".to_string(), DEFAULT_ENDPOINT.to_string()),
        };
        let ttl = self.duration("--etcd-ttl", DEFAULT_TTL)?;
        let lock = self.switch("--etcd-lock")?;
        let user = self.value("--etcd-user")?;
        let password_file = self.value("--etcd-password-file")?;
        let tls = [
            self.tls_setting("--etcd-cacert", "ETCDCTL_CACERT")?,
            self.tls_setting("--etcd-cert", "ETCDCTL_CERT")?,
            self.tls_setting("--etcd-key", "ETCDCTL_KEY")?,
            None,
        ];
        let flags = [
            "--etcd",
            "--etcd-ttl",
            "--etcd-user",
            "--etcd-password-file",
            "--etcd-cacert",
            "--etcd-cert",
            "--etcd-key",
        ];
        if !used {
            if lock {
                return Err(UsageError(
                    "--etcd-lock: only with the etcd registry (--registry etcd or --etcd URL)"
                        .into(),
                ));
            }
            for flag in flags {
                self.unused(flag, "only the etcd registry reads it")?;
            }
            return Ok(EtcdOptions {
                endpoints: Vec::new(),
                tls: None,
                ttl,
                lock,
                auth: None,
            });
        }
        let endpoints = endpoints(&raw).map_err(|e| UsageError(format!("{source}: {e}")))?;
        if lookup("ETCDCTL_INSECURE_SKIP_TLS_VERIFY").is_some_and(|v| v == "true") {
            return Err(UsageError(INSECURE_ETCD.into()));
        }
        let https = endpoints.iter().any(|e| tls_files::is_https(e));
        let tls = self.registry_tls(https.then_some(source.as_str()), tls, "etcd")?;
        let ttl = valid_ttl(ttl)
            .map_err(|e| UsageError(format!("{}: {e}", self.source("--etcd-ttl"))))?;
        let auth = match (user, password_file) {
            (None, None) => None,
            (Some(user), Some(file)) => {
                if user.is_empty() || user.contains(':') {
                    return Err(UsageError(format!(
                        "{}: expected a user name without ':'",
                        self.source("--etcd-user")
                    )));
                }
                let password = password_from_file(std::path::Path::new(&file)).map_err(|e| {
                    UsageError(format!("{}: {e}", self.source("--etcd-password-file")))
                })?;
                Some(Credentials { user, password })
            }
            (Some(_), None) => {
                return Err(UsageError(
                    "--etcd-user: expected --etcd-password-file PATH beside it".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(UsageError(
                    "--etcd-password-file: only means something with --etcd-user".into(),
                ))
            }
        };
        Ok(EtcdOptions {
            endpoints,
            tls,
            ttl,
            lock,
            auth,
        })
    }

    /// The Consul options: `--consul`, else `CONSUL_HTTP_ADDR`, else the local agent; the
    /// token in `CONSUL_HTTP_TOKEN_FILE`'s file, else `--consul-token`, else
    /// `CONSUL_HTTP_TOKEN` (Consul's CLI lets the file win over both, and so does this).
    /// Checked only when Consul is `used`.
    fn consul(&mut self, flag: Option<String>, used: bool) -> Result<ConsulOptions, UsageError> {
        let lookup = self.env;
        let env = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let (source, raw) = match (flag, env("CONSUL_HTTP_ADDR")) {
            (Some(v), _) => (self.source("--consul"), v),
            (None, Some(v)) => ("CONSUL_HTTP_ADDR".to_string(), v),
            (None, None) => ("--consul".to_string(), DEFAULT_ADDRESS.to_string()),
        };
        let (token_source, token) = match (self.value("--consul-token")?, env("CONSUL_HTTP_TOKEN"))
        {
            (Some(t), _) => (self.source("--consul-token"), Some(t)),
            (None, t) => ("CONSUL_HTTP_TOKEN".to_string(), t),
        };
        let ssl = env("CONSUL_HTTP_SSL")
            .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
        let token_file = env("CONSUL_HTTP_TOKEN_FILE");
        let tls = [
            self.tls_setting("--consul-cacert", "CONSUL_CACERT")?,
            self.tls_setting("--consul-client-cert", "CONSUL_CLIENT_CERT")?,
            self.tls_setting("--consul-client-key", "CONSUL_CLIENT_KEY")?,
            self.tls_setting("--consul-tls-server-name", "CONSUL_TLS_SERVER_NAME")?,
        ];
        let check_interval = self.duration("--consul-check-interval", DEFAULT_CHECK_INTERVAL)?;
        let deregister_after = self.duration("--consul-deregister-after", MIN_DEREGISTER)?;
        let lock = self.switch("--consul-lock")?;
        let lock_delay = self.parsed(
            "--consul-lock-delay",
            "a duration like 250ms, 15s, 2m or a number of seconds",
            parse_duration,
        )?;
        if !used {
            if lock {
                return Err(UsageError(
                    "--consul-lock: only with the consul registry (--registry consul or \
                     --consul URL)"
                        .into(),
                ));
            }
            return Ok(ConsulOptions {
                address: raw,
                tls: None,
                token,
                check_interval,
                deregister_after,
                lock,
                lock_delay: lock_delay.unwrap_or(Duration::ZERO),
            });
        }
        let (token_source, token) = match token_file {
            Some(path) => match token_from_file(std::path::Path::new(&path)) {
                Ok(Some(t)) => ("CONSUL_HTTP_TOKEN_FILE".to_string(), Some(t)),
                // An empty file counts as none, as in Consul.
                Ok(None) => (token_source, token),
                Err(e) => return Err(UsageError(format!("CONSUL_HTTP_TOKEN_FILE: {e}"))),
            },
            None => (token_source, token),
        };
        let address = base_url(&raw).map_err(|e| UsageError(format!("{source}: {e}")))?;
        // As Consul's CLI: CONSUL_HTTP_SSL=true makes any address https.
        let (https_source, address) = match (ssl, tls_files::is_https(&address)) {
            (_, true) => (Some(source.clone()), address),
            (true, false) => (Some("CONSUL_HTTP_SSL".to_string()), with_https(&address)),
            (false, false) => (None, address),
        };
        if https_source.is_some()
            && env("CONSUL_HTTP_SSL_VERIFY").is_some_and(|v| {
                matches!(v.as_str(), "0" | "f" | "F" | "false" | "FALSE" | "False")
            })
        {
            return Err(UsageError(INSECURE_CONSUL.into()));
        }
        if https_source.is_some() && tls[0].is_none() && env("CONSUL_CAPATH").is_some() {
            return Err(UsageError(
                "CONSUL_CAPATH: a directory of CAs is not read; give the CA bundle as one \
                 file with --consul-cacert FILE or CONSUL_CACERT"
                    .into(),
            ));
        }
        let tls = self.registry_tls(https_source.as_deref(), tls, "the agent")?;
        if token.as_deref().is_some_and(|t| !valid_token(t)) {
            return Err(UsageError(format!(
                "{token_source}: expected a token of visible ASCII characters"
            )));
        }
        if check_interval < MIN_CHECK_INTERVAL {
            return Err(UsageError(format!(
                "{}: expected 1s or more (Consul's minimum)",
                self.source("--consul-check-interval")
            )));
        }
        if deregister_after < MIN_DEREGISTER {
            return Err(UsageError(format!(
                "{}: expected 1m or more (Consul's minimum)",
                self.source("--consul-deregister-after")
            )));
        }
        if !lock && lock_delay.is_some() {
            return Err(UsageError(
                "--consul-lock-delay: only means something with --consul-lock".into(),
            ));
        }
        let lock_delay = lock_delay.unwrap_or(Duration::ZERO);
        if lock_delay > MAX_LOCK_DELAY {
            return Err(UsageError(
                "--consul-lock-delay: expected 60s or less (Consul's maximum)".into(),
            ));
        }
        Ok(ConsulOptions {
            address,
            tls,
            token,
            check_interval,
            deregister_after,
            lock,
            lock_delay,
        })
    }
}

/// One TLS setting as it was given: where from (a flag, its `BULLY_` variable, or the
/// registry's own variable), whether by a flag, and the value.
struct Setting {
    flag: &'static str,
    source: String,
    by_flag: bool,
    value: String,
}

/// Why the insecure switches are refused: bully never talks to a registry it cannot verify.
const INSECURE_CONSUL: &str = "CONSUL_HTTP_SSL_VERIFY=false: not supported, bully always \
     verifies the agent's certificate; give its CA with --consul-cacert FILE (and \
     --consul-tls-server-name NAME when the certificate does not name the address)";
const INSECURE_ETCD: &str = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY=true: not supported, bully \
     always verifies etcd's certificate; give its CA with --etcd-cacert FILE";

impl Flags<'_> {
    /// `flag` (or its `BULLY_` variable), else the registry tool's own `var`.
    fn tls_setting(
        &mut self,
        flag: &'static str,
        var: &str,
    ) -> Result<Option<Setting>, UsageError> {
        if let Some(value) = self.value(flag)? {
            let source = self.source(flag);
            let by_flag = source == flag;
            return Ok(Some(Setting {
                flag,
                source,
                by_flag,
                value,
            }));
        }
        Ok((self.env)(var)
            .filter(|v| !v.is_empty())
            .map(|value| Setting {
                flag,
                source: var.to_string(),
                by_flag: false,
                value,
            }))
    }

    /// The TLS settings `[ca, cert, key, server name]` of a registry, loaded and checked now
    /// when `https` (where the https came from) is set. For a plain http address a setting
    /// given by flag is an error (by variable, it is ignored: a shell may export Consul's
    /// and etcdctl's variables for other tools).
    fn registry_tls(
        &mut self,
        https: Option<&str>,
        settings: [Option<Setting>; 4],
        server: &str,
    ) -> Result<Option<RegistryTls>, UsageError> {
        let [ca, cert, key, name] = settings;
        let given = || [&ca, &cert, &key, &name].into_iter().flatten();
        if !tls_files::BUILT_IN {
            if let Some(from) = https
                .map(str::to_string)
                .or_else(|| given().find(|s| s.by_flag).map(|s| s.source.clone()))
            {
                return Err(UsageError(format!("{from}: {}", tls_files::NOT_BUILT_IN)));
            }
        }
        let Some(https) = https else {
            for s in given().filter(|s| s.by_flag) {
                let why = format!("only for https, and {server} is reached over plain http");
                self.unused(s.flag, &why)?;
            }
            return Ok(None);
        };
        let Some(ca) = ca else {
            return Err(UsageError(format!(
                "{https}: https needs the CA that signed {server}'s certificate \
                 (bully trusts no system roots): give it with {}",
                if server == "etcd" {
                    "--etcd-cacert FILE or ETCDCTL_CACERT"
                } else {
                    "--consul-cacert FILE or CONSUL_CACERT"
                }
            )));
        };
        let (cert, key) = match (cert, key) {
            (Some(c), Some(k)) => (Some(c), Some(k)),
            (None, None) => (None, None),
            (Some(c), None) | (None, Some(c)) => {
                return Err(UsageError(format!(
                    "{}: a client certificate needs its key and the key its certificate: \
                     give both",
                    c.source
                )))
            }
        };
        let identity = cert.as_ref().zip(key.as_ref());
        RegistryTls::load(
            PathBuf::from(&ca.value),
            identity.map(|(c, k)| (PathBuf::from(&c.value), PathBuf::from(&k.value))),
            name.as_ref().map(|n| n.value.clone()),
        )
        .map(Some)
        .map_err(|(part, e)| {
            let source = match (part, identity) {
                (Part::Ca, _) => ca.source.clone(),
                (Part::Cert, Some((c, _))) => c.source.clone(),
                (Part::Key, Some((_, k))) => k.source.clone(),
                (Part::Pair, Some((c, k))) => format!("{} and {}", c.source, k.source),
                (Part::ServerName, _) => {
                    name.as_ref().map_or_else(String::new, |n| n.source.clone())
                }
                _ => ca.source.clone(),
            };
            UsageError(format!("{source}: {e}"))
        })
    }
}

/// `$XDG_RUNTIME_DIR/bully`, else `/tmp/bully-<uid>`.
fn default_registry_dir(xdg_runtime_dir: Option<String>) -> PathBuf {
    match xdg_runtime_dir.filter(|d| !d.is_empty()) {
        Some(d) => PathBuf::from(d).join("bully"),
        None => {
            use std::os::unix::fs::MetadataExt;
            let uid = std::fs::metadata("/proc/self")
                .map(|m| m.uid())
                .unwrap_or(0);
            PathBuf::from(format!("/tmp/bully-{uid}"))
        }
    }
}

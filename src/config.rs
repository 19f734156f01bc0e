//! Command line and `BULLY_*` environment: everything a node is told before it starts.
//!
//! A flag always wins over its environment variable, so a unit file can set defaults that an
//! operator still overrides by hand.

use crate::auth::ClusterKey;
use log::LevelFilter;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

pub const USAGE: &str = "\
bully - leader election with the Bully algorithm

USAGE:
    bully PORT NAME [options]
    bully status [registry options] [--timeout DUR] [--json]

OPTIONS (each also read from BULLY_<FLAG>, e.g. BULLY_HEALTH_INTERVAL=500ms; a flag wins):
    --id N                 election priority, unsigned 64-bit; higher wins [default: random]
    --cluster NAME         cluster name; clusters never see each other [default: bully]
    --registry KIND        dir | consul | static [default: dir; --consul or --peers alone
                           select consul or static]
    --registry-dir PATH    where the dir registry lives, one sub-directory per cluster
                           [default: $XDG_RUNTIME_DIR/bully, else /tmp/bully-<uid>]
    --peers LIST           static registry: comma-separated HOST:PORT of the other nodes
    --consul URL           consul registry: agent address, http://HOST:PORT or HOST:PORT
                           [default: $CONSUL_HTTP_ADDR, else http://127.0.0.1:8500]
    --consul-token TOKEN   consul ACL token, sent as X-Consul-Token [default: $CONSUL_HTTP_TOKEN]
    --consul-check-interval DUR
                           how often Consul checks GET / on this node, 1s or more [default: 10s]
    --consul-deregister-after DUR
                           Consul drops a node whose check stays critical this long, 1m or
                           more [default: 1m]
    --bind ADDR            listen address [default: 127.0.0.1]
    --advertise HOST       address others use to reach this node [default: the bind address;
                           127.0.0.1 when binding 0.0.0.0]
    --startup-delay DUR    first election after this long [default: 15s]
    --health-interval DUR  how often a follower checks the coordinator [default: 20s]
    --timeout DUR          per-request timeout to peers [default: 1s]
    --log-level LEVEL      error | warn | info | debug | trace [default: info]
    --cluster-key KEY      sign every POST with HMAC-SHA256 and refuse unsigned ones; set it
                           whenever a node listens beyond loopback (at least 16 bytes)
    --cluster-key-file PATH
                           the key from a file (trailing white space dropped)
    --on-elected CMD       run CMD with sh -c each time this node becomes coordinator
    --on-demoted CMD       run CMD with sh -c each time it stops being coordinator, also
                           on SIGINT/SIGTERM before exiting
    --hook-timeout DUR     kill a hook and its children after this long [default: 30s]
    --exec CMD             keep CMD (sh -c) running only while this node is coordinator
    --exec-grace DUR       on demotion or exit the --exec child gets SIGTERM, then SIGKILL
                           after this long [default: 10s]
    -h, --help             print this help
    -V, --version          print the version

Durations: 250ms, 15s, 2m, 1h, or a bare number of seconds.

bully status prints one row per registry member with what it reports in GET /nodeDetails
(registry options and --timeout as above; --json for JSON). Exit code 0 when every reachable
member names the same coordinator, 1 when they disagree or none is reachable.
";

/// A bad command line: one line for the user, then exit code 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryKind {
    Dir,
    Consul,
    Static,
}

/// Where members are found; shared by the node and `bully status`.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    pub kind: RegistryKind,
    pub cluster: String,
    pub dir: PathBuf,
    pub peers: Vec<String>,
    pub consul: ConsulOptions,
    pub timeout: Duration,
}

/// What follows from leadership: hooks and the `--exec` child, carried out by `hooks.rs`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookOptions {
    pub on_elected: Option<String>,
    pub on_demoted: Option<String>,
    pub timeout: Duration,
    pub exec: Option<String>,
    pub exec_grace: Duration,
}

impl HookOptions {
    /// Whether anything follows from leadership at all (else no hook thread is started).
    pub fn any(&self) -> bool {
        self.on_elected.is_some() || self.on_demoted.is_some() || self.exec.is_some()
    }
}

/// The agent to talk to and what to register there. Only checked when Consul is the registry,
/// so a `CONSUL_HTTP_ADDR` set for other tools never breaks a node on another registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsulOptions {
    /// `http://host:port`, without a trailing slash.
    pub address: String,
    /// ACL token, sent as `X-Consul-Token`; never logged.
    pub token: Option<String>,
    pub check_interval: Duration,
    pub deregister_after: Duration,
}

/// Consul's CLI default, used when neither `--consul` nor `CONSUL_HTTP_ADDR` is set.
pub const CONSUL_DEFAULT_ADDRESS: &str = "http://127.0.0.1:8500";
/// Consul clamps shorter check intervals to this; refusing them up front is clearer.
const CONSUL_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Consul clamps shorter `DeregisterCriticalServiceAfter` values to this.
const CONSUL_MIN_DEREGISTER: Duration = Duration::from_secs(60);

/// Everything a node needs to run.
#[derive(Clone, Debug)]
pub struct Config {
    pub port: u16,
    pub name: String,
    pub id: u64,
    pub id_is_random: bool,
    pub registry: RegistryOptions,
    pub bind: IpAddr,
    pub advertise: String,
    pub startup_delay: Duration,
    pub health_interval: Duration,
    pub timeout: Duration,
    pub log_level: LevelFilter,
    /// Signs and checks every POST; `Debug` shows it redacted.
    pub cluster_key: Option<ClusterKey>,
    pub hooks: HookOptions,
}

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// Reads flags, falling back to `BULLY_*` variables from `env`.
pub struct Flags<'a> {
    args: pico_args::Arguments,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Flags<'a> {
    pub fn new(args: Vec<OsString>, env: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Flags {
            args: pico_args::Arguments::from_vec(args),
            env,
        }
    }

    pub fn contains(&mut self, flag: &'static str) -> bool {
        self.args.contains(flag)
    }

    /// The flag's value, else its `BULLY_` variable's.
    pub fn value(&mut self, flag: &'static str) -> Result<Option<String>, UsageError> {
        match self.args.opt_value_from_str::<_, String>(flag) {
            Ok(Some(v)) => Ok(Some(v)),
            Ok(None) => Ok((self.env)(&env_name(flag)).filter(|v| !v.is_empty())),
            Err(e) => Err(UsageError(format!("{flag}: {e}"))),
        }
    }

    pub fn parsed<T>(
        &mut self,
        flag: &'static str,
        expects: &str,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Result<Option<T>, UsageError> {
        match self.value(flag)? {
            None => Ok(None),
            Some(v) => parse(&v)
                .map(Some)
                .ok_or_else(|| UsageError(format!("{flag}: expected {expects}, got '{v}'"))),
        }
    }

    pub fn duration(
        &mut self,
        flag: &'static str,
        default: Duration,
    ) -> Result<Duration, UsageError> {
        Ok(self
            .parsed(
                flag,
                "a duration like 250ms, 15s, 2m or a number of seconds",
                parse_duration,
            )?
            .unwrap_or(default))
    }

    pub fn free(&mut self, what: &str, expects: &str) -> Result<String, UsageError> {
        match self.args.opt_free_from_str::<String>() {
            Ok(Some(v)) if !v.starts_with('-') => Ok(v),
            Ok(Some(v)) => Err(UsageError(format!("unknown option '{v}'"))),
            Ok(None) => Err(UsageError(format!("missing {what} ({expects})"))),
            Err(e) => Err(UsageError(format!("{what}: {e}"))),
        }
    }

    /// A shell command; an empty one counts as none, so `BULLY_EXEC=` turns it off.
    pub fn command(&mut self, flag: &'static str) -> Result<Option<String>, UsageError> {
        Ok(self.value(flag)?.filter(|c| !c.trim().is_empty()))
    }

    /// Anything left over is a mistake worth naming.
    pub fn finish(self) -> Result<(), UsageError> {
        let rest = self.args.finish();
        match rest.first() {
            None => Ok(()),
            Some(a) => Err(UsageError(format!(
                "unexpected argument '{}'",
                a.to_string_lossy()
            ))),
        }
    }

    /// Registry options, shared by the node and `bully status`.
    pub fn registry(&mut self, timeout: Duration) -> Result<RegistryOptions, UsageError> {
        let cluster = self
            .parsed(
                "--cluster",
                "a name of letters, digits, '.', '_' or '-'",
                |v| valid_name(v).then(|| v.to_string()),
            )?
            .unwrap_or_else(|| "bully".into());
        let kind = self.parsed("--registry", "dir, consul or static", |v| match v {
            "dir" => Some(RegistryKind::Dir),
            "consul" => Some(RegistryKind::Consul),
            "static" => Some(RegistryKind::Static),
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
        let consul = self.value("--consul")?;
        let kind = match (kind, &peers, &consul) {
            (Some(k), _, _) => k,
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
            return Err(UsageError(
                "--registry static: expected --peers HOST:PORT,...".into(),
            ));
        }
        let consul = self.consul(consul, kind == RegistryKind::Consul)?;
        Ok(RegistryOptions {
            kind,
            cluster,
            dir,
            peers: peers.unwrap_or_default(),
            consul,
            timeout,
        })
    }

    /// The Consul options, read the way Consul's own CLI reads them: `--consul`, else
    /// `CONSUL_HTTP_ADDR`, else the local agent; `--consul-token`, else `CONSUL_HTTP_TOKEN`.
    fn consul(&mut self, flag: Option<String>, used: bool) -> Result<ConsulOptions, UsageError> {
        let lookup = self.env;
        let env = |k: &str| lookup(k).filter(|v| !v.is_empty());
        let (source, raw) = match (flag, env("CONSUL_HTTP_ADDR")) {
            (Some(v), _) => ("--consul", v),
            (None, Some(v)) => ("CONSUL_HTTP_ADDR", v),
            (None, None) => ("--consul", CONSUL_DEFAULT_ADDRESS.to_string()),
        };
        let (token_source, token) = match (self.value("--consul-token")?, env("CONSUL_HTTP_TOKEN"))
        {
            (Some(t), _) => ("--consul-token", Some(t)),
            (None, t) => ("CONSUL_HTTP_TOKEN", t),
        };
        let ssl = env("CONSUL_HTTP_SSL")
            .is_some_and(|v| matches!(v.as_str(), "1" | "t" | "T" | "true" | "TRUE" | "True"));
        let check_interval = self.duration("--consul-check-interval", Duration::from_secs(10))?;
        let deregister_after = self.duration("--consul-deregister-after", CONSUL_MIN_DEREGISTER)?;
        if !used {
            return Ok(ConsulOptions {
                address: raw,
                token,
                check_interval,
                deregister_after,
            });
        }
        let address = consul_base_url(&raw).map_err(|e| UsageError(format!("{source}: {e}")))?;
        if ssl {
            return Err(UsageError(
                "CONSUL_HTTP_SSL: https is not supported (this build has no TLS); \
                 use the agent's plain HTTP address"
                    .into(),
            ));
        }
        // Checked without echoing the value: it is a secret.
        if token
            .as_ref()
            .is_some_and(|t| !t.bytes().all(|b| b.is_ascii_graphic()))
        {
            return Err(UsageError(format!(
                "{token_source}: expected a token of visible ASCII characters"
            )));
        }
        if check_interval < CONSUL_MIN_INTERVAL {
            return Err(UsageError(
                "--consul-check-interval: expected 1s or more (Consul's minimum)".into(),
            ));
        }
        if deregister_after < CONSUL_MIN_DEREGISTER {
            return Err(UsageError(
                "--consul-deregister-after: expected 1m or more (Consul's minimum)".into(),
            ));
        }
        Ok(ConsulOptions {
            address,
            token,
            check_interval,
            deregister_after,
        })
    }
}

/// `http://host[:port]` or a bare `host[:port]` (as `CONSUL_HTTP_ADDR` is often written)
/// becomes a base URL without a trailing slash.
pub fn consul_base_url(s: &str) -> Result<String, String> {
    let s = s.trim();
    let expected = || format!("expected http://HOST:PORT or HOST:PORT, got '{s}'");
    let rest = match s.split_once("://") {
        None => s,
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
            return Err(
                "https is not supported (this build has no TLS); use the agent's plain HTTP \
                 address"
                    .into(),
            )
        }
        Some(_) => return Err(expected()),
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if valid_host_port(rest) || (valid_host(rest) && !rest.contains(':')) {
        Ok(format!("http://{rest}"))
    } else {
        Err(expected())
    }
}

/// `--health-interval` becomes `BULLY_HEALTH_INTERVAL`.
pub fn env_name(flag: &str) -> String {
    format!(
        "BULLY_{}",
        flag.trim_start_matches('-')
            .replace('-', "_")
            .to_uppercase()
    )
}

/// Parses the node's command line (without the program name).
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Command, UsageError> {
    let mut f = Flags::new(args, env);
    if f.contains("-h") || f.contains("--help") {
        return Ok(Command::Help);
    }
    if f.contains("-V") || f.contains("--version") {
        return Ok(Command::Version);
    }
    let id = f.parsed("--id", "an unsigned 64-bit integer", |v| {
        v.parse::<u64>().ok()
    })?;
    let bind = f
        .parsed("--bind", "an IP address", |v| v.parse::<IpAddr>().ok())?
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    let advertise = f.parsed("--advertise", "a host name or IP address", |v| {
        valid_host(v).then(|| v.to_string())
    })?;
    let startup_delay = f.duration("--startup-delay", Duration::from_secs(15))?;
    let health_interval = f.duration("--health-interval", Duration::from_secs(20))?;
    let timeout = f.duration("--timeout", Duration::from_secs(1))?;
    if health_interval.is_zero() || timeout.is_zero() {
        return Err(UsageError(
            "--health-interval and --timeout: expected a duration above zero".into(),
        ));
    }
    let log_level = f
        .parsed(
            "--log-level",
            "error, warn, info, debug or trace",
            |v| match v.to_ascii_lowercase().as_str() {
                "error" => Some(LevelFilter::Error),
                "warn" => Some(LevelFilter::Warn),
                "info" => Some(LevelFilter::Info),
                "debug" => Some(LevelFilter::Debug),
                "trace" => Some(LevelFilter::Trace),
                _ => None,
            },
        )?
        .unwrap_or(LevelFilter::Info);
    let cluster_key = cluster_key(&mut f)?;
    let hooks = HookOptions {
        on_elected: f.command("--on-elected")?,
        on_demoted: f.command("--on-demoted")?,
        timeout: f.duration("--hook-timeout", Duration::from_secs(30))?,
        exec: f.command("--exec")?,
        exec_grace: f.duration("--exec-grace", Duration::from_secs(10))?,
    };
    if hooks.timeout.is_zero() {
        return Err(UsageError(
            "--hook-timeout: expected a duration above zero".into(),
        ));
    }
    let registry = f.registry(timeout)?;
    let port = f.free("PORT", "a port number from 1 to 65535")?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| UsageError(format!("PORT: expected 1 to 65535, got '{port}'")))?;
    let name = f.free("NAME", "the node's name, e.g. node1")?;
    if !valid_name(&name) {
        return Err(UsageError(format!(
            "NAME: expected up to 64 letters, digits, '.', '_' or '-', got '{name}'"
        )));
    }
    f.finish()?;
    let advertise = advertise.unwrap_or_else(|| match bind {
        IpAddr::V4(a) if a.is_unspecified() => "127.0.0.1".into(),
        IpAddr::V6(a) if a.is_unspecified() => "::1".into(),
        a => a.to_string(),
    });
    Ok(Command::Run(Box::new(Config {
        port,
        name,
        id: id.unwrap_or_else(random_id),
        id_is_random: id.is_none(),
        registry,
        bind,
        advertise,
        startup_delay,
        health_interval,
        timeout,
        log_level,
        cluster_key,
        hooks,
    })))
}

/// `--cluster-key` (or `BULLY_CLUSTER_KEY`) or `--cluster-key-file`; errors never show the key.
fn cluster_key(f: &mut Flags) -> Result<Option<ClusterKey>, UsageError> {
    let key = f.value("--cluster-key")?;
    let file = f.value("--cluster-key-file")?;
    match (key, file) {
        (Some(_), Some(_)) => Err(UsageError(
            "--cluster-key and --cluster-key-file given together: choose one".into(),
        )),
        (Some(k), None) => ClusterKey::new(k.as_bytes())
            .map(Some)
            .map_err(|e| UsageError(format!("--cluster-key: {e}"))),
        (None, Some(path)) => ClusterKey::from_file(std::path::Path::new(&path))
            .map(Some)
            .map_err(|e| UsageError(format!("--cluster-key-file: {e}"))),
        (None, None) => Ok(None),
    }
}

/// `250ms`, `15s`, `2m`, `1h`, or a bare (possibly fractional) number of seconds.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let (num, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3600.0)
    } else {
        (s, 1.0)
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    let secs = num.parse::<f64>().ok()? * scale;
    (secs.is_finite() && secs <= 365.0 * 86400.0).then(|| Duration::from_secs_f64(secs))
}

/// Names end up in file names and registry IDs, so they are kept to a safe alphabet.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

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

/// A random id as the original had; std's randomly keyed hasher avoids a dependency.
fn random_id() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish() % 1_000_000_000 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, UsageError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match parse(args.iter().map(OsString::from).collect(), &lookup)? {
            Command::Run(c) => Ok(*c),
            other => panic!("expected Run, got {other:?}"),
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("3"), Some(Duration::from_secs(3)));
        assert_eq!(parse_duration("0.5"), Some(Duration::from_millis(500)));
        for bad in ["", "s", "-1s", "1x", "abc", "1e9", "99999999999h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn defaults() {
        let c = run(&["5004", "node4"], &[]).unwrap();
        assert_eq!((c.port, c.name.as_str()), (5004, "node4"));
        assert_eq!(c.registry.cluster, "bully");
        assert_eq!(c.registry.kind, RegistryKind::Dir);
        assert_eq!(c.startup_delay, Duration::from_secs(15));
        assert_eq!(c.health_interval, Duration::from_secs(20));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.advertise, "127.0.0.1");
        assert!(c.id_is_random);
    }

    #[test]
    fn flag_wins_over_environment() {
        let env = [("BULLY_HEALTH_INTERVAL", "500ms"), ("BULLY_ID", "9")];
        let c = run(&["1", "n"], &env).unwrap();
        assert_eq!(c.health_interval, Duration::from_millis(500));
        assert_eq!(c.id, 9);
        let c = run(&["1", "n", "--health-interval", "2s", "--id=3"], &env).unwrap();
        assert_eq!(c.health_interval, Duration::from_secs(2));
        assert_eq!(c.id, 3);
    }

    #[test]
    fn registry_selection() {
        let c = run(&["1", "n", "--peers", "127.0.0.1:5001,h:2"], &[]).unwrap();
        assert_eq!(c.registry.kind, RegistryKind::Static);
        let c = run(&["1", "n", "--consul", "http://x:8500"], &[]).unwrap();
        assert_eq!(c.registry.kind, RegistryKind::Consul);
        let c = run(&["1", "n", "--bind", "0.0.0.0"], &[]).unwrap();
        assert_eq!(c.advertise, "127.0.0.1");
        assert!(run(&["1", "n", "--registry", "static"], &[]).is_err());
    }

    #[test]
    fn cluster_key_from_flag_environment_or_file_and_never_in_debug() {
        let secret = "s3cret-cluster-key-0123";
        let c = run(&["1", "n", "--cluster-key", secret], &[]).unwrap();
        assert_eq!(
            c.cluster_key,
            Some(ClusterKey::new(secret.as_bytes()).unwrap())
        );
        assert!(!format!("{c:?}").contains(secret), "{c:?}");
        let c = run(&["1", "n"], &[("BULLY_CLUSTER_KEY", secret)]).unwrap();
        assert!(c.cluster_key.is_some());
        assert!(run(&["1", "n"], &[]).unwrap().cluster_key.is_none());

        let path = std::env::temp_dir().join(format!("bully-key-{}", std::process::id()));
        std::fs::write(&path, format!("{secret}\n")).unwrap();
        let file = path.display().to_string();
        let c = run(&["1", "n", "--cluster-key-file", &file], &[]).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            c.cluster_key,
            Some(ClusterKey::new(secret.as_bytes()).unwrap())
        );

        let e = run(&["1", "n", "--cluster-key", "short"], &[]).unwrap_err();
        assert!(
            e.0.starts_with("--cluster-key:") && !e.0.contains("short"),
            "{e}"
        );
        let e = run(&["1", "n", "--cluster-key-file", &file], &[]).unwrap_err();
        assert!(e.0.starts_with("--cluster-key-file"), "{e}");
        let both = ["1", "n", "--cluster-key", secret, "--cluster-key-file", "x"];
        assert!(run(&both, &[]).is_err());
    }

    #[test]
    fn hook_flags() {
        let c = run(&["1", "n"], &[]).unwrap();
        assert!(!c.hooks.any());
        assert_eq!(c.hooks.timeout, Duration::from_secs(30));
        assert_eq!(c.hooks.exec_grace, Duration::from_secs(10));
        let c = run(
            &[
                "1",
                "n",
                "--on-elected",
                "ip addr add 10.0.0.9/24 dev eth0",
                "--on-demoted=echo bye >> /tmp/x",
                "--hook-timeout",
                "5s",
                "--exec",
                "sleep 100",
                "--exec-grace",
                "0",
            ],
            &[],
        )
        .unwrap();
        assert!(c.hooks.any());
        let h = c.hooks;
        assert_eq!(
            h.on_elected.as_deref(),
            Some("ip addr add 10.0.0.9/24 dev eth0")
        );
        assert_eq!(h.on_demoted.as_deref(), Some("echo bye >> /tmp/x"));
        assert_eq!(h.timeout, Duration::from_secs(5));
        assert_eq!(h.exec.as_deref(), Some("sleep 100"));
        assert_eq!(h.exec_grace, Duration::ZERO);
    }

    #[test]
    fn hook_flags_from_environment_and_empty_means_none() {
        let env = [
            ("BULLY_EXEC", "my-job --once"),
            ("BULLY_HOOK_TIMEOUT", "250ms"),
            ("BULLY_ON_DEMOTED", "true"),
        ];
        let h = run(&["1", "n"], &env).unwrap().hooks;
        assert_eq!(h.exec.as_deref(), Some("my-job --once"));
        assert_eq!(h.timeout, Duration::from_millis(250));
        assert_eq!(h.on_demoted.as_deref(), Some("true"));
        let h = run(&["1", "n", "--exec", " ", "--on-demoted", "false"], &env)
            .unwrap()
            .hooks;
        assert_eq!(h.exec, None);
        assert_eq!(h.on_demoted.as_deref(), Some("false"));
        assert!(!run(&["1", "n", "--on-elected", ""], &[])
            .unwrap()
            .hooks
            .any());
    }

    #[test]
    fn bad_hook_durations_name_the_flag() {
        let e = run(&["1", "n", "--hook-timeout", "0"], &[]).unwrap_err();
        assert!(e.0.starts_with("--hook-timeout"), "{e}");
        let e = run(&["1", "n", "--exec-grace", "later"], &[]).unwrap_err();
        assert!(e.0.starts_with("--exec-grace: expected a duration"), "{e}");
        let e = run(&["1", "n", "--exec"], &[]).unwrap_err();
        assert!(e.0.starts_with("--exec"), "{e}");
    }

    #[test]
    fn bad_arguments_name_the_flag() {
        let e = run(&["1", "n", "--timeout", "soon"], &[]).unwrap_err();
        assert!(e.0.starts_with("--timeout: expected a duration"), "{e}");
        let e = run(&["1", "n", "--id", "-3"], &[]).unwrap_err();
        assert!(e.0.starts_with("--id"), "{e}");
        let e = run(&["99999", "n"], &[]).unwrap_err();
        assert!(e.0.starts_with("PORT"), "{e}");
        let e = run(&["1", "a/b"], &[]).unwrap_err();
        assert!(e.0.starts_with("NAME"), "{e}");
        let e = run(&["1", "n", "--bogus", "x"], &[]).unwrap_err();
        assert!(e.0.contains("--bogus"), "{e}");
        assert!(run(&["1"], &[]).unwrap_err().0.contains("NAME"));
        let e = run(&["1", "n", "--peers", "nope"], &[]).unwrap_err();
        assert!(e.0.starts_with("--peers"), "{e}");
    }

    fn consul_run(args: &[&str], env: &[(&str, &str)]) -> Result<ConsulOptions, UsageError> {
        let c = run(args, env)?;
        assert_eq!(c.registry.kind, RegistryKind::Consul);
        Ok(c.registry.consul)
    }

    #[test]
    fn consul_options_read_like_consuls_own_cli() {
        let o = consul_run(&["1", "n", "--registry", "consul"], &[]).unwrap();
        assert_eq!(
            o,
            ConsulOptions {
                address: "http://127.0.0.1:8500".into(),
                token: None,
                check_interval: Duration::from_secs(10),
                deregister_after: Duration::from_secs(60),
            }
        );
        // CONSUL_HTTP_ADDR with or without a scheme; CONSUL_HTTP_TOKEN.
        let env = [
            ("CONSUL_HTTP_ADDR", "10.0.0.5:8500"),
            ("CONSUL_HTTP_TOKEN", "abc-123"),
        ];
        let o = consul_run(&["1", "n", "--registry", "consul"], &env).unwrap();
        assert_eq!(o.address, "http://10.0.0.5:8500");
        assert_eq!(o.token.as_deref(), Some("abc-123"));
        let env2 = [("CONSUL_HTTP_ADDR", "http://[::1]:8500/")];
        let o = consul_run(&["1", "n", "--registry", "consul"], &env2).unwrap();
        assert_eq!(o.address, "http://[::1]:8500");
        // Flags win, and --consul alone selects the registry.
        let args = [
            "1",
            "n",
            "--consul-token",
            "t2",
            "--consul=consul.local",
            "--consul-check-interval",
            "2s",
            "--consul-deregister-after=5m",
        ];
        let o = consul_run(&args, &env).unwrap();
        assert_eq!(o.address, "http://consul.local");
        assert_eq!(o.token.as_deref(), Some("t2"));
        assert_eq!(o.check_interval, Duration::from_secs(2));
        assert_eq!(o.deregister_after, Duration::from_secs(300));
        // BULLY_* variables work as for every flag.
        let env3 = [
            ("BULLY_CONSUL", "h:1"),
            ("BULLY_CONSUL_TOKEN", "t3"),
            ("BULLY_CONSUL_CHECK_INTERVAL", "1s"),
        ];
        let o = consul_run(&["1", "n"], &env3).unwrap();
        assert_eq!(o.address, "http://h:1");
        assert_eq!(o.token.as_deref(), Some("t3"));
        assert_eq!(o.check_interval, Duration::from_secs(1));
    }

    #[test]
    fn bad_consul_settings_say_what_is_wrong() {
        let consul = |args: &[&str], env: &[(&str, &str)]| {
            let mut all = vec!["1", "n", "--registry", "consul"];
            all.extend_from_slice(args);
            run(&all, env).unwrap_err().0
        };
        let e = consul(&["--consul", "https://h:8501"], &[]);
        assert!(e.starts_with("--consul: https is not supported"), "{e}");
        let e = consul(&[], &[("CONSUL_HTTP_ADDR", "unix:///run/consul.sock")]);
        assert!(e.starts_with("CONSUL_HTTP_ADDR: expected http://"), "{e}");
        let e = consul(&["--consul", "h:0"], &[]);
        assert!(e.starts_with("--consul: expected"), "{e}");
        let e = consul(&[], &[("CONSUL_HTTP_SSL", "true")]);
        assert!(e.starts_with("CONSUL_HTTP_SSL"), "{e}");
        let e = consul(&[], &[("CONSUL_HTTP_TOKEN", "sec ret")]);
        assert!(e.starts_with("CONSUL_HTTP_TOKEN: expected"), "{e}");
        assert!(!e.contains("sec ret"), "the token is never echoed: {e}");
        let e = consul(&["--consul-check-interval", "500ms"], &[]);
        assert!(e.starts_with("--consul-check-interval: expected 1s"), "{e}");
        let e = consul(&["--consul-deregister-after", "30s"], &[]);
        assert!(
            e.starts_with("--consul-deregister-after: expected 1m"),
            "{e}"
        );
        // Consul settings made for other tools do not break a node on another registry.
        let env = [
            ("CONSUL_HTTP_ADDR", "unix:///run/consul.sock"),
            ("CONSUL_HTTP_SSL", "true"),
        ];
        let c = run(&["1", "n"], &env).unwrap();
        assert_eq!(c.registry.kind, RegistryKind::Dir);
    }
}

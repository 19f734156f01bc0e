//! The node's command line: `bully PORT NAME [options]`, each option also read from its
//! `BULLY_*` variable, into the [`Config`] a node runs with.

use super::flags::{Flags, UsageError};
use super::logger::LogSpec;
use super::tls::TlsFiles;
use crate::core::rules::{valid_host, valid_name, NAME_RULE};
use crate::http::auth::ClusterKey;
use crate::registry::RegistryOptions;
use crate::runtime::work::check::CheckOptions;
use crate::runtime::work::hooks::HookOptions;
use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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
    /// How often the coordinator beats on each follower's watch stream.
    pub heartbeat: Duration,
    pub log: LogSpec,
    /// Signs and checks every POST; `Debug` shows it redacted.
    pub cluster_key: Option<ClusterKey>,
    /// `--cluster-key-file`: read again on SIGHUP.
    pub cluster_key_file: Option<PathBuf>,
    /// `--tls-cert`, `--tls-key`, `--tls-ca`: mutual TLS, read again on SIGHUP.
    pub tls: Option<TlsFiles>,
    pub hooks: HookOptions,
    /// Quorum mode: the cluster's size.
    pub quorum: Option<usize>,
    /// Quorum mode: how long a follower's promise lasts.
    pub lease: Duration,
    /// Votes in quorum mode but never stands for election.
    pub witness: bool,
    /// Where the terms this node used are kept across restarts.
    pub state_dir: PathBuf,
    /// The health check.
    pub check: CheckOptions,
    /// A higher node follows a live coordinator instead of taking over.
    pub no_preempt: bool,
    /// A higher node takes over only once healthy this long.
    pub preempt_delay: Duration,
    /// `--vip ADDR/PREFIX` (repeatable): the addresses the coordinator holds, fenced like
    /// its `--exec` child.
    pub vips: Vec<(IpAddr, u8)>,
    /// `--vip-dev`: their interface; else the one of the route to each prefix, or of
    /// `--bind` (resolved at start, see `cli::vips`).
    pub vip_dev: Option<String>,
    /// What the command line set that does nothing: logged as warnings at start.
    pub warnings: Vec<String>,
}

/// A small positive count (`--check-rise`, `--check-fall`).
fn count(v: &str) -> Option<u32> {
    v.parse().ok().filter(|n| (1..=100).contains(n))
}

/// Bounds on `--heartbeat`, those the coordinator's beat hub accepts.
const MIN_HEARTBEAT: Duration = crate::runtime::watch::beats::MIN_BEAT;
const MAX_HEARTBEAT: Duration = crate::runtime::watch::beats::MAX_BEAT;

/// The shortest `--lease`: renewals go out eight times a lease and must get a round trip in.
const MIN_LEASE: Duration = Duration::from_millis(200);
/// The largest `--quorum`.
const MAX_QUORUM: usize = 10_000;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Run(Box<Config>),
    Help,
    Version,
}

/// Parses the node's command line (without the program name); `variables` are the names of
/// the `BULLY_*` variables set.
pub fn parse(
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    variables: &[String],
) -> Result<Command, UsageError> {
    let mut f = Flags::new(args, env, variables);
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
    let advertise = f.parsed(
        "--advertise",
        "a host name or IP address the other nodes can reach (not 0.0.0.0 or ::)",
        |v| {
            let unspecified = v.parse::<IpAddr>().is_ok_and(|a| a.is_unspecified());
            (valid_host(v) && !unspecified).then(|| v.to_string())
        },
    )?;
    let startup_delay = f.duration("--startup-delay", Duration::from_secs(15))?;
    let health_interval = f.duration("--health-interval", Duration::from_secs(20))?;
    let timeout = f.duration("--timeout", Duration::from_secs(1))?;
    let heartbeat = f.duration("--heartbeat", Duration::from_millis(250))?;
    if !(MIN_HEARTBEAT..=MAX_HEARTBEAT).contains(&heartbeat) {
        return Err(UsageError(format!(
            "{}: expected {} ms to {} s",
            f.source("--heartbeat"),
            MIN_HEARTBEAT.as_millis(),
            MAX_HEARTBEAT.as_secs()
        )));
    }
    for (flag, d) in [
        ("--health-interval", health_interval),
        ("--timeout", timeout),
    ] {
        if d.is_zero() {
            return Err(UsageError(format!(
                "{}: expected a duration above zero",
                f.source(flag)
            )));
        }
    }
    // `--log-level` (or `BULLY_LOG_LEVEL`) first, else `RUST_LOG` as Rust programs read it.
    let log = match f.parsed("--log-level", LogSpec::EXPECTS, LogSpec::parse)? {
        Some(spec) => spec,
        None => match (f.env)("RUST_LOG").filter(|v| !v.trim().is_empty()) {
            Some(v) => LogSpec::parse(&v).ok_or_else(|| {
                UsageError(format!(
                    "RUST_LOG: expected {}, got '{v}'",
                    LogSpec::EXPECTS
                ))
            })?,
            None => LogSpec::default(),
        },
    };
    let (cluster_key, cluster_key_file) = cluster_key(&mut f)?;
    let tls = super::tls::files(&mut f)?;
    let hooks = HookOptions {
        on_elected: f.command("--on-elected")?,
        on_demoted: f.command("--on-demoted")?,
        timeout: f.duration("--hook-timeout", Duration::from_secs(30))?,
        exec: f.command("--exec")?,
        exec_grace: f.duration("--exec-grace", Duration::from_secs(10))?,
        exit_unhealthy: f.switch("--exec-exit-unhealthy")?,
    };
    let check = CheckOptions {
        command: f.command("--check")?,
        url: f.parsed("--check-url", "an http:// URL", |v| {
            v.starts_with("http://").then(|| v.to_string())
        })?,
        interval: f.duration("--check-interval", Duration::from_secs(2))?,
        timeout: f.duration("--check-timeout", Duration::from_secs(1))?,
        rise: f
            .parsed("--check-rise", "a count from 1 to 100", count)?
            .unwrap_or(2),
        fall: f
            .parsed("--check-fall", "a count from 1 to 100", count)?
            .unwrap_or(3),
    };
    if check.command.is_some() && check.url.is_some() {
        return Err(UsageError(
            "--check and --check-url given together: choose one".into(),
        ));
    }
    for (flag, d) in [
        ("--check-interval", check.interval),
        ("--check-timeout", check.timeout),
    ] {
        if d.is_zero() {
            return Err(UsageError(format!(
                "{}: expected a duration above zero",
                f.source(flag)
            )));
        }
    }
    if check.command.is_none() && check.url.is_none() {
        for flag in [
            "--check-interval",
            "--check-timeout",
            "--check-rise",
            "--check-fall",
        ] {
            f.idle(
                flag,
                "it tunes the health check, and neither --check nor --check-url is set",
            );
        }
    }
    let vips = f.repeated(
        "--vip",
        "an address with its prefix, like 10.0.0.100/24",
        crate::vip::parse,
    )?;
    let vip_dev = f.value("--vip-dev")?;
    if vips.is_empty() {
        f.idle(
            "--vip-dev",
            "it names the interface of --vip, and no --vip is set",
        );
    }
    let no_preempt = f.switch("--no-preempt")?;
    let preempt_delay = f.duration("--preempt-delay", Duration::ZERO)?;
    if no_preempt && !preempt_delay.is_zero() {
        return Err(UsageError(
            "--no-preempt and --preempt-delay given together: a node that never preempts has \
             no delay to wait"
                .into(),
        ));
    }
    if hooks.timeout.is_zero() {
        return Err(UsageError(format!(
            "{}: expected a duration above zero",
            f.source("--hook-timeout")
        )));
    }
    if hooks.on_elected.is_none() && hooks.on_demoted.is_none() {
        f.idle(
            "--hook-timeout",
            "it bounds --on-elected and --on-demoted, and neither is set",
        );
    }
    let quorum = f.parsed(
        "--quorum",
        &format!("the cluster's size, 1 to {MAX_QUORUM}"),
        |v| {
            v.parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_QUORUM).contains(n))
        },
    )?;
    let lease = f.duration("--lease", Duration::from_secs(2))?;
    if lease < MIN_LEASE {
        return Err(UsageError(format!(
            "{}: expected {} ms or more",
            f.source("--lease"),
            MIN_LEASE.as_millis()
        )));
    }
    let witness = f.switch("--witness")?;
    if witness && quorum.is_none() {
        return Err(UsageError(format!(
            "{}: only means something with --quorum N (a witness votes, and votes count only \
             in quorum mode)",
            f.source("--witness")
        )));
    }
    if quorum.is_none() {
        f.idle("--lease", "only quorum mode (--quorum N) has a lease");
    }
    let state_dir = f.value("--state-dir")?.map(PathBuf::from);
    let registry = f.registry(timeout)?;
    let state_dir = state_dir.unwrap_or_else(|| beside(&registry.dir, "state"));
    let port = f.free("PORT", "a port number from 1 to 65535")?;
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| UsageError(format!("PORT: expected 1 to 65535, got '{port}'")))?;
    let name = f.free("NAME", "the node's name, e.g. node1")?;
    if !valid_name(&name) {
        return Err(UsageError(format!(
            "NAME: expected {NAME_RULE}, got '{name}'"
        )));
    }
    let warnings = f.finish()?;
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
        heartbeat,
        log,
        cluster_key,
        cluster_key_file,
        tls,
        hooks,
        quorum,
        lease,
        witness,
        state_dir,
        check,
        no_preempt,
        preempt_delay,
        vips,
        vip_dev,
        warnings,
    })))
}

/// `/run/bully` and `state` make `/run/bully-state`: a sibling, never inside the registry
/// directory, whose sub-directories are clusters.
fn beside(dir: &Path, what: &str) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "bully".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}-{what}"))
}

/// `--cluster-key` (or `BULLY_CLUSTER_KEY`) or `--cluster-key-file`, and the file when it
/// came from one; errors never show the key.
fn cluster_key(f: &mut Flags) -> Result<(Option<ClusterKey>, Option<PathBuf>), UsageError> {
    let key = f.value("--cluster-key")?;
    let file = f.value("--cluster-key-file")?;
    match (key, file) {
        (Some(_), Some(_)) => Err(UsageError(
            "--cluster-key and --cluster-key-file given together: choose one".into(),
        )),
        (Some(k), None) => ClusterKey::new(k.as_bytes())
            .map(|k| (Some(k), None))
            .map_err(|e| UsageError(format!("{}: {e}", f.source("--cluster-key")))),
        (None, Some(path)) => ClusterKey::from_file(Path::new(&path))
            .map(|k| (Some(k), Some(PathBuf::from(path))))
            .map_err(|e| UsageError(format!("{}: {e}", f.source("--cluster-key-file")))),
        (None, None) => Ok((None, None)),
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
    use crate::registry::{ConsulOptions, RegistryKind};

    fn run(args: &[&str], env: &[(&str, &str)]) -> Result<Config, UsageError> {
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let names: Vec<String> = env.iter().map(|(k, _)| k.clone()).collect();
        let lookup = move |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        match parse(args.iter().map(OsString::from).collect(), &lookup, &names)? {
            Command::Run(c) => Ok(*c),
            other => panic!("expected Run, got {other:?}"),
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
        assert_eq!(c.quorum, None);
        assert_eq!(c.lease, Duration::from_secs(2));
        assert!(!c.witness);
        let state = c.state_dir.display().to_string();
        assert!(state.ends_with("-state"), "{state}");
    }

    #[test]
    fn quorum_flags() {
        let c = run(
            &["1", "n", "--quorum", "5", "--lease=1s", "--witness"],
            &[
                ("BULLY_STATE_DIR", "/var/lib/bully"),
                ("BULLY_REGISTRY_DIR", "/run/b"),
            ],
        )
        .unwrap();
        assert_eq!(c.quorum, Some(5));
        assert_eq!(c.lease, Duration::from_secs(1));
        assert!(c.witness);
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/bully"));
        let c = run(&["1", "n", "--registry-dir", "/run/b/"], &[]).unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/run/b-state"));
        let c = run(&["1", "n", "--quorum", "3"], &[("BULLY_WITNESS", "yes")]).unwrap();
        assert!(c.witness);
        for (args, flag) in [
            (&["1", "n", "--quorum", "0"][..], "--quorum"),
            (&["1", "n", "--quorum", "x"][..], "--quorum"),
            (
                &["1", "n", "--quorum", "3", "--lease", "50ms"][..],
                "--lease",
            ),
            (&["1", "n", "--witness"][..], "--witness"),
        ] {
            let e = run(args, &[]).unwrap_err();
            assert!(e.0.starts_with(flag), "{args:?}: {e}");
        }
        let e = run(&["1", "n", "--quorum", "3"], &[("BULLY_WITNESS", "maybe")]).unwrap_err();
        assert!(e.0.starts_with("BULLY_WITNESS"), "{e}");
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
    fn flags_that_do_nothing_are_errors_and_their_variables_warnings() {
        for (args, error) in [
            (
                &["1", "n", "--registry", "dir", "--peers", "h:1"][..],
                "--peers: only the static registry reads it, and this one is dir",
            ),
            (
                &["1", "n", "--consul-deregister-after", "5m"][..],
                "--consul-deregister-after: only the consul registry reads it, and this one is dir",
            ),
            (
                &["1", "n", "--peers", "h:1", "--consul-token", "t"][..],
                "--consul-token: only the consul registry reads it, and this one is static",
            ),
        ] {
            assert_eq!(run(args, &[]).unwrap_err().0, error, "{args:?}");
        }
        // Options that tune what is not there are warnings however given: one set of options
        // may serve nodes with and without it.
        let c = run(&["1", "n", "--lease", "1s", "--hook-timeout", "1s"], &[]).unwrap();
        assert_eq!(
            c.warnings,
            vec![
                "--hook-timeout is set, but it bounds --on-elected and --on-demoted, and \
                 neither is set; ignored"
                    .to_string(),
                "--lease is set, but only quorum mode (--quorum N) has a lease; ignored".into(),
            ]
        );
        let env = [
            ("BULLY_PEERS", "h:1"),
            ("BULLY_REGISTRY", "consul"),
            ("BULLY_HEALTHINTERVAL", "1s"),
            ("BULLY_NODE", "set for hooks"),
        ];
        let c = run(&["1", "n"], &env).unwrap();
        assert_eq!(
            c.warnings,
            vec![
                "BULLY_PEERS is set, but only the static registry reads it, and this one is \
                 consul; ignored"
                    .to_string(),
                "BULLY_HEALTHINTERVAL is not a bully variable (did you mean \
                 BULLY_HEALTH_INTERVAL?); ignored"
                    .into(),
            ]
        );
        assert!(run(&["1", "n"], &[]).unwrap().warnings.is_empty());
    }

    #[test]
    fn bad_values_name_the_variable_they_came_from() {
        let e = run(&["1", "n"], &[("BULLY_TIMEOUT", "0")]).unwrap_err();
        assert_eq!(e.0, "BULLY_TIMEOUT: expected a duration above zero");
        let e = run(&["1", "n"], &[("BULLY_ID", "x")]).unwrap_err();
        assert_eq!(
            e.0,
            "BULLY_ID: expected an unsigned 64-bit integer, got 'x'"
        );
        let e = run(&["1", "n", "--quorum", "3"], &[("BULLY_LEASE", "1ms")]).unwrap_err();
        assert!(e.0.starts_with("BULLY_LEASE: expected"), "{e}");
        let e = run(&["1", "n"], &[("BULLY_CLUSTER_KEY", "short")]).unwrap_err();
        assert!(e.0.starts_with("BULLY_CLUSTER_KEY: expected a key"), "{e}");
        let e = run(
            &["1", "n", "--registry", "consul"],
            &[("BULLY_CONSUL", "https://h")],
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("BULLY_CONSUL: ") && e.0.contains(NO_CA),
            "{e}"
        );
        let e = run(&["1", "n"], &[("BULLY_ADVERTISE", "0.0.0.0")]).unwrap_err();
        assert!(
            e.0.starts_with("BULLY_ADVERTISE: expected a host name"),
            "{e}"
        );
        for unspecified in ["0.0.0.0", "::"] {
            let e = run(&["1", "n", "--advertise", unspecified], &[]).unwrap_err();
            assert_eq!(
                e.0,
                format!(
                    "--advertise: expected a host name or IP address the other nodes can \
                     reach (not 0.0.0.0 or ::), got '{unspecified}'"
                )
            );
        }
        let e = run(&["1", "n", "--timeuot", "1s"], &[]).unwrap_err();
        assert_eq!(e.0, "unknown option '--timeuot'; did you mean '--timeout'?");
        let e = run(&["1", "n", "--bind", "127.0.0.1", "--bind", "::1"], &[]).unwrap_err();
        assert_eq!(e.0, "--bind: given more than once; give it once");
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

    /// What an https address without a CA is told, with and without TLS built in.
    const NO_CA: &str = if crate::registry::tls_files::BUILT_IN {
        "https needs the CA"
    } else {
        "this build has no TLS"
    };

    #[test]
    fn registry_tls_settings_name_their_flag_or_variable() {
        let err = |args: &[&str], env: &[(&str, &str)]| {
            let mut all = vec!["1", "n"];
            all.extend_from_slice(args);
            run(&all, env).unwrap_err().0
        };
        let https = ["--consul", "https://h:8501"];
        let missing = "/nonexistent/bully/ca.pem";
        // The flag beats Consul's variable, and a missing file is named with it.
        let e = err(
            &[&https[..], &["--consul-cacert", missing]].concat(),
            &[("CONSUL_CACERT", "/other.pem")],
        );
        if crate::registry::tls_files::BUILT_IN {
            assert!(
                e.starts_with("--consul-cacert: ") && e.contains(missing),
                "{e}"
            );
            let e = err(&https, &[("CONSUL_CACERT", missing)]);
            assert!(
                e.starts_with("CONSUL_CACERT: ") && e.contains(missing),
                "{e}"
            );
            let e = err(&["--etcd", "https://h:1"], &[("ETCDCTL_CACERT", missing)]);
            assert!(
                e.starts_with("ETCDCTL_CACERT: ") && e.contains(missing),
                "{e}"
            );
            let e = err(
                &[
                    &https[..],
                    &["--consul-cacert", missing, "--consul-client-cert", "c"],
                ]
                .concat(),
                &[],
            );
            assert!(
                e.starts_with("--consul-client-cert: ") && e.contains("its key"),
                "{e}"
            );
        } else {
            assert!(e.contains("this build has no TLS"), "{e}");
        }
        let e = err(&https, &[("CONSUL_HTTP_SSL_VERIFY", "false")]);
        assert!(
            e.starts_with("CONSUL_HTTP_SSL_VERIFY=false: not supported"),
            "{e}"
        );
        let e = err(
            &["--etcd", "https://h:1"],
            &[("ETCDCTL_INSECURE_SKIP_TLS_VERIFY", "true")],
        );
        assert!(
            e.starts_with("ETCDCTL_INSECURE_SKIP_TLS_VERIFY=true"),
            "{e}"
        );
        // A file for a plain http address: an error by flag, ignored by variable.
        let e = err(&["--consul", "h:1", "--consul-cacert", missing], &[]);
        if crate::registry::tls_files::BUILT_IN {
            assert!(e.starts_with("--consul-cacert: only for https"), "{e}");
        }
        let e = err(&["--etcd", "h:1", "--etcd-cert", "c"], &[]);
        assert!(e.starts_with("--etcd-cert: "), "{e}");
        let c = run(
            &["1", "n", "--consul", "h:1"],
            &[("CONSUL_CACERT", missing)],
        )
        .unwrap();
        assert_eq!(c.registry.consul.tls, None);
        // Consul's settings do nothing to a node on another registry.
        let e = err(&["--consul-cacert", missing], &[]);
        assert!(
            e.starts_with("--consul-cacert: only the consul registry"),
            "{e}"
        );
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
                tls: None,
                token: None,
                check_interval: Duration::from_secs(10),
                deregister_after: Duration::from_secs(60),
                lock: false,
                lock_delay: Duration::ZERO,
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
        assert!(e.starts_with("--consul: ") && e.contains(NO_CA), "{e}");
        let e = consul(&[], &[("CONSUL_HTTP_ADDR", "unix:///run/consul.sock")]);
        assert!(e.starts_with("CONSUL_HTTP_ADDR: expected http"), "{e}");
        let e = consul(&["--consul", "h:0"], &[]);
        assert!(e.starts_with("--consul: expected"), "{e}");
        let e = consul(&[], &[("CONSUL_HTTP_SSL", "true")]);
        assert!(
            e.starts_with("CONSUL_HTTP_SSL: ") && e.contains(NO_CA),
            "{e}"
        );
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

    /// A file with `text` for one test; removed on drop.
    struct TokenFile(PathBuf);

    impl TokenFile {
        fn new(tag: &str, text: &str) -> TokenFile {
            let p = std::env::temp_dir().join(format!("bully-token-{tag}-{}", std::process::id()));
            std::fs::write(&p, text).unwrap();
            TokenFile(p)
        }
        fn path(&self) -> String {
            self.0.display().to_string()
        }
    }

    impl Drop for TokenFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn consul_http_token_file_is_read_like_consul_and_wins_as_in_consul() {
        let f = TokenFile::new("wins", "  file-token-1\n\n");
        let path = f.path();
        let file = [("CONSUL_HTTP_TOKEN_FILE", path.as_str())];
        let o = consul_run(&["1", "n", "--registry", "consul"], &file).unwrap();
        assert_eq!(o.token.as_deref(), Some("file-token-1"));
        // Consul's CLI uses the file "instead of one specified via the -token argument or
        // CONSUL_HTTP_TOKEN": so does bully, over --consul-token and BULLY_CONSUL_TOKEN too.
        let env = [
            ("CONSUL_HTTP_TOKEN_FILE", path.as_str()),
            ("CONSUL_HTTP_TOKEN", "env-token"),
            ("BULLY_CONSUL_TOKEN", "bully-token"),
        ];
        let args = ["1", "n", "--registry", "consul", "--consul-token", "flag"];
        assert_eq!(
            consul_run(&args, &env).unwrap().token.as_deref(),
            Some("file-token-1")
        );
        // An empty file is no token at all, so the others apply, as in Consul.
        let empty = TokenFile::new("empty", " \n");
        let empty_path = empty.path();
        let env = [
            ("CONSUL_HTTP_TOKEN_FILE", empty_path.as_str()),
            ("CONSUL_HTTP_TOKEN", "env-token"),
        ];
        let o = consul_run(&["1", "n", "--registry", "consul"], &env).unwrap();
        assert_eq!(o.token.as_deref(), Some("env-token"));
    }

    #[test]
    fn an_unreadable_token_file_names_the_variable_but_not_the_token() {
        let missing = std::env::temp_dir().join("bully-no-such-token-file");
        let missing = missing.display().to_string();
        let env = [("CONSUL_HTTP_TOKEN_FILE", missing.as_str())];
        let e = run(&["1", "n", "--registry", "consul"], &env).unwrap_err();
        assert!(
            e.0.starts_with(&format!("CONSUL_HTTP_TOKEN_FILE: cannot read {missing}")),
            "{e}"
        );
        // A directory cannot be read as a file either.
        let dir = std::env::temp_dir().display().to_string();
        let e = run(
            &["1", "n", "--registry", "consul"],
            &[("CONSUL_HTTP_TOKEN_FILE", dir.as_str())],
        )
        .unwrap_err();
        assert!(
            e.0.starts_with("CONSUL_HTTP_TOKEN_FILE: cannot read"),
            "{e}"
        );
        // A token that cannot go into a header is refused under the variable's name.
        let f = TokenFile::new("bad", "sec ret\n");
        let path = f.path();
        let e = run(
            &["1", "n", "--registry", "consul"],
            &[("CONSUL_HTTP_TOKEN_FILE", path.as_str())],
        )
        .unwrap_err();
        assert!(e.0.starts_with("CONSUL_HTTP_TOKEN_FILE: expected"), "{e}");
        assert!(!e.0.contains("sec ret"), "{e}");
        // Only read when Consul is the registry.
        assert!(run(&["1", "n"], &env).is_ok());
    }

    #[test]
    fn consul_lock_flags() {
        let o = consul_run(&["1", "n", "--consul", "h:1", "--consul-lock"], &[]).unwrap();
        assert!(o.lock);
        assert_eq!(o.lock_delay, Duration::ZERO);
        let env = [
            ("BULLY_CONSUL_LOCK", "1"),
            ("BULLY_CONSUL_LOCK_DELAY", "15s"),
        ];
        let o = consul_run(&["1", "n", "--registry", "consul"], &env).unwrap();
        assert!(o.lock);
        assert_eq!(o.lock_delay, Duration::from_secs(15));
        for (args, flag) in [
            (
                &["1", "n", "--consul-lock"][..],
                "--consul-lock: only with the consul",
            ),
            (
                &["1", "n", "--peers", "h:1", "--consul-lock"][..],
                "--consul-lock: only with the consul",
            ),
            (
                &["1", "n", "--consul", "h:1", "--consul-lock-delay", "1s"][..],
                "--consul-lock-delay: only means something with --consul-lock",
            ),
            (
                &[
                    "1",
                    "n",
                    "--consul",
                    "h:1",
                    "--consul-lock",
                    "--consul-lock-delay",
                    "2m",
                ][..],
                "--consul-lock-delay: expected 60s or less",
            ),
            (
                &["1", "n", "--consul", "h:1", "--consul-lock-delay", "soon"][..],
                "--consul-lock-delay: expected a duration",
            ),
        ] {
            let e = run(args, &[]).unwrap_err();
            assert!(e.0.starts_with(flag), "{args:?}: {e}");
        }
    }

    #[test]
    fn etcd_options_read_like_etcdctl() {
        let etcd = |args: &[&str], env: &[(&str, &str)]| {
            let c = run(args, env).unwrap();
            assert_eq!(c.registry.kind, RegistryKind::Etcd);
            c.registry.etcd
        };
        let o = etcd(&["1", "n", "--registry", "etcd"], &[]);
        assert_eq!(o.endpoints, vec!["http://127.0.0.1:2379"]);
        assert_eq!(
            (o.ttl, o.lock, o.auth),
            (Duration::from_secs(5), false, None)
        );
        // ETCDCTL_ENDPOINTS as etcdctl reads it; --etcd alone selects the registry and wins.
        let env = [("ETCDCTL_ENDPOINTS", "10.0.0.1:2379,http://10.0.0.2:2379")];
        let o = etcd(&["1", "n", "--registry", "etcd"], &env);
        assert_eq!(
            o.endpoints,
            vec!["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        let o = etcd(
            &[
                "1",
                "n",
                "--etcd",
                "h:1",
                "--etcd-ttl",
                "10s",
                "--etcd-lock",
            ],
            &env,
        );
        assert_eq!(o.endpoints, vec!["http://h:1"]);
        assert_eq!((o.ttl, o.lock), (Duration::from_secs(10), true));
        let pw = TokenFile::new("etcd", "pass word\n");
        let o = etcd(
            &["1", "n", "--etcd", "h:1", "--etcd-user", "bully"],
            &[("BULLY_ETCD_PASSWORD_FILE", pw.path().as_str())],
        );
        let auth = o.auth.unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.as_str()),
            ("bully", "pass word")
        );
        // Only read when etcd is the registry.
        assert!(run(&["1", "n"], &[("ETCDCTL_ENDPOINTS", "unix:///x")]).is_ok());
    }

    #[test]
    fn bad_etcd_settings_say_what_is_wrong() {
        let missing = std::env::temp_dir().join("bully-no-such-password-file");
        let missing = missing.display().to_string();
        for (args, env, start) in [
            (
                &["--etcd-lock"][..],
                &[][..],
                "--etcd-lock: only with the etcd registry",
            ),
            (
                &["--registry", "consul", "--etcd-ttl", "5s"][..],
                &[][..],
                "--etcd-ttl: only",
            ),
            (
                &["--etcd", "https://h:1"][..],
                &[][..],
                if crate::registry::tls_files::BUILT_IN {
                    "--etcd: https needs the CA"
                } else {
                    "--etcd: this build has no TLS"
                },
            ),
            (
                &["--registry", "etcd"][..],
                &[("ETCDCTL_ENDPOINTS", " , ")][..],
                "ETCDCTL_ENDPOINTS: expected",
            ),
            (
                &["--etcd", "h:1", "--etcd-ttl", "1s"][..],
                &[][..],
                "--etcd-ttl: expected 2s to 1h",
            ),
            (
                &["--etcd", "h:1", "--etcd-ttl", "2500ms"][..],
                &[][..],
                "--etcd-ttl: expected whole seconds",
            ),
            (
                &["--etcd", "h:1", "--etcd-user", "u"][..],
                &[][..],
                "--etcd-user: expected --etcd-password-file",
            ),
            (
                &["--etcd", "h:1", "--etcd-password-file", "f"][..],
                &[][..],
                "--etcd-password-file: only means",
            ),
            (
                &[
                    "--etcd",
                    "h:1",
                    "--etcd-user",
                    "a:b",
                    "--etcd-password-file",
                    "f",
                ][..],
                &[][..],
                "--etcd-user: expected a user name",
            ),
            (
                &[
                    "--etcd",
                    "h:1",
                    "--etcd-user",
                    "u",
                    "--etcd-password-file",
                    &missing,
                ][..],
                &[][..],
                "--etcd-password-file: cannot read",
            ),
        ] {
            let mut all = vec!["1", "n"];
            all.extend_from_slice(args);
            let e = run(&all, env).unwrap_err();
            assert!(e.0.starts_with(start), "{args:?}: {e}");
        }
    }
}

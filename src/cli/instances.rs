//! The packaged instances on this host (`bully@NAME`), so that `bully status`, `step-down` and
//! `maintenance` find their node and cluster without flags: each instance's settings are what
//! its unit reads, in the unit's order (its `Environment=` defaults, then `/etc/default/bully`,
//! then `/etc/default/bully-NAME`). The instances are the per-instance files beside the
//! defaults file and, with the package's own file, the units enabled or running in systemd.

use super::flags::UsageError;
use crate::core::rules::{valid_name, NAME_RULE};
use crate::registry::{RegistryKind, RegistryOptions};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The package's defaults file; `--defaults PATH` (or `BULLY_DEFAULTS`) names another.
pub const PACKAGED: &str = "/etc/default/bully";

/// Where systemd lists the enabled instances (the unit's `WantedBy=`) and the running ones
/// (their control groups under cgroup v2, then v1).
const ENABLED: &str = "/etc/systemd/system/multi-user.target.wants";
const RUNNING: [&str; 2] = [
    "/sys/fs/cgroup/system.slice/system-bully.slice",
    "/sys/fs/cgroup/systemd/system.slice/system-bully.slice",
];

/// One instance and the variables its node runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    settings: BTreeMap<String, String>,
}

impl Instance {
    /// The instance's value of `key`; an empty value counts as unset, as for the node.
    pub fn get(&self, key: &str) -> Option<String> {
        self.settings.get(key).filter(|v| !v.is_empty()).cloned()
    }

    pub fn cluster(&self) -> String {
        self.get("BULLY_CLUSTER")
            .unwrap_or_else(|| self.name.clone())
    }
}

/// What the command line says about its target, read before the flags are: `--instance`,
/// `--defaults`, `--cluster`, and whether it locates the node or registry by itself.
pub struct Scan {
    pub instance: Option<String>,
    pub defaults: PathBuf,
    pub cluster: Option<String>,
    /// One of the flags (or their variables in the environment) that say where to look.
    pub located: bool,
}

impl Scan {
    /// `located_by` are the flags that say where to look: the registry's for `status`,
    /// `--port` for the node's commands.
    pub fn new(
        args: &[OsString],
        env: &dyn Fn(&str) -> Option<String>,
        located_by: &[&'static str],
    ) -> Scan {
        let mut a = pico_args::Arguments::from_vec(args.to_vec());
        let env = |k: &str| env(k).filter(|v| !v.is_empty());
        let mut value = |flag: &'static str| {
            a.opt_value_from_str::<_, String>(flag)
                .ok()
                .flatten()
                .or_else(|| env(&super::flags::env_name(flag)))
        };
        let instance = value("--instance");
        let defaults = value("--defaults").unwrap_or_else(|| PACKAGED.into());
        let cluster = value("--cluster");
        // A flag without its value still says where to look; the parse names the mistake.
        let located = located_by.iter().any(|flag| {
            args.iter().any(|a| {
                a.to_str()
                    .is_some_and(|a| a == *flag || a.starts_with(&format!("{flag}=")))
            }) || env(&super::flags::env_name(flag)).is_some()
        });
        Scan {
            instance,
            defaults: defaults.into(),
            cluster,
            located,
        }
    }
}

/// The instances a command works on.
pub enum Picked {
    /// None here, or the command line says where to look: the flags alone.
    Flags,
    One(Instance),
    Several(Vec<Instance>),
}

/// `--instance NAME`, else (unless the command line says where to look) the instances found
/// here, those of `--cluster` only when `by_cluster`. Unreadable files are `warnings`.
pub fn pick(
    scan: &Scan,
    by_cluster: bool,
    warnings: &mut Vec<String>,
) -> Result<Picked, UsageError> {
    if let Some(name) = &scan.instance {
        if !valid_name(name) {
            return Err(UsageError(format!(
                "--instance: expected an instance name of {NAME_RULE}, got '{name}'"
            )));
        }
        return Ok(Picked::One(load(&scan.defaults, name, warnings)));
    }
    if scan.located {
        return Ok(Picked::Flags);
    }
    let mut found: Vec<Instance> = discover(&scan.defaults)
        .iter()
        .map(|n| load(&scan.defaults, n, warnings))
        .collect();
    if let (true, Some(c)) = (by_cluster, &scan.cluster) {
        found.retain(|i| i.cluster() == *c);
    }
    Ok(match found.len() {
        0 => Picked::Flags,
        1 => Picked::One(found.remove(0)),
        _ => Picked::Several(found),
    })
}

/// The error for a command that works on one node when there are several here.
pub fn choose(what: &str, several: &[Instance]) -> UsageError {
    let names: Vec<&str> = several.iter().map(|i| i.name.as_str()).collect();
    UsageError(format!(
        "{} instances here ({}): choose one with --instance NAME{what}",
        names.len(),
        names.join(", ")
    ))
}

/// The instance names here, sorted: `DEFAULTS-NAME` files, and with the package's defaults
/// file the enabled and running `bully@NAME` units.
pub fn discover(defaults: &Path) -> Vec<String> {
    let mut names = Vec::new();
    if let (Some(dir), Some(base)) = (
        defaults.parent(),
        defaults.file_name().and_then(|b| b.to_str()),
    ) {
        let prefix = format!("{base}-");
        for file in entries(dir) {
            if let Some(name) = file.strip_prefix(&prefix) {
                if !leftover(name) {
                    names.push(name.to_string());
                }
            }
        }
    }
    if defaults == Path::new(PACKAGED) {
        for dir in std::iter::once(ENABLED).chain(RUNNING) {
            for unit in entries(Path::new(dir)) {
                if let Some(name) = unit
                    .strip_prefix("bully@")
                    .and_then(|u| u.strip_suffix(".service"))
                {
                    names.push(name.to_string());
                }
            }
        }
    }
    names.retain(|n| valid_name(n));
    names.sort();
    names.dedup();
    names
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// What editors and dpkg leave beside a conffile: not an instance.
fn leftover(name: &str) -> bool {
    name.ends_with('~')
        || [".dpkg-", ".ucf-", ".bak", ".orig", ".swp", ".save"]
            .iter()
            .any(|s| name.contains(s))
}

/// Instance `name`'s settings in the unit's order; a file that exists but cannot be read is a
/// warning (the package's is root's only), and the rest still count.
pub fn load(defaults: &Path, name: &str, warnings: &mut Vec<String>) -> Instance {
    let mut settings = BTreeMap::new();
    // The unit's Environment= lines (BULLY_NAME, the host name, is only the node's).
    for (k, v) in [
        ("BULLY_PORT", "5000"),
        ("BULLY_CLUSTER", name),
        ("BULLY_REGISTRY_DIR", "/run/bully"),
        ("BULLY_STATE_DIR", "/var/lib/bully"),
    ] {
        settings.insert(k.to_string(), v.to_string());
    }
    let own = PathBuf::from(format!("{}-{name}", defaults.display()));
    for file in [defaults, own.as_path()] {
        match std::fs::read_to_string(file) {
            Ok(text) => settings.extend(parse_env_file(&text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => warnings.push(format!(
                "cannot read {} ({e}); instance {name} read without it (run as root?)",
                file.display()
            )),
        }
    }
    Instance {
        name: name.to_string(),
        settings,
    }
}

/// `KEY=VALUE` lines as systemd's `EnvironmentFile=` reads them: `#` and `;` comments, white
/// space around both trimmed, a value in single or double quotes (in double ones `\"` and
/// `\\` escape), a trailing backslash continuing the line.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        if let Some(start) = line.strip_suffix('\\') {
            pending.push_str(start);
            continue;
        }
        let line = std::mem::take(&mut pending) + line;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        out.push((key.to_string(), unquote(value.trim())));
    }
    out
}

fn unquote(v: &str) -> String {
    let quoted = |q: char| v.len() >= 2 && v.starts_with(q) && v.ends_with(q);
    if quoted('\'') {
        return v[1..v.len() - 1].to_string();
    }
    if !quoted('"') {
        return v.to_string();
    }
    let mut out = String::new();
    let mut chars = v[1..v.len() - 1].chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(n @ ('"' | '\\'))) => {
                out.push(n);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// The node's own address as its settings give it: its bind address (loopback when it binds
/// every address) and port.
pub fn node_host(i: &Instance) -> String {
    match i.get("BULLY_BIND").as_deref() {
        None | Some("0.0.0.0") => "127.0.0.1".into(),
        Some("::" | "[::]") => "::1".into(),
        Some(b) => b.trim_start_matches('[').trim_end_matches(']').to_string(),
    }
}

/// A static registry's peers are the other nodes: the instance's own node joins them, as it
/// joins the list it runs with, so a report (or a search for the leader) counts it too.
pub fn with_own_node(registry: &mut RegistryOptions, i: &Instance) {
    if registry.kind != RegistryKind::Static {
        return;
    }
    let host = i.get("BULLY_ADVERTISE").unwrap_or_else(|| node_host(i));
    let port = i.get("BULLY_PORT").unwrap_or_default();
    let me = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    if !registry.peers.contains(&me) {
        registry.peers.push(me);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_files_read_as_systemd_reads_them() {
        let text = "# comment\n; also\n\nBULLY_CLUSTER=lab\n  BULLY_PORT = 5001 \n\
                    BULLY_EXEC=\"run \\\"x\\\" \\\\ y\"\nBULLY_ON_ELECTED='a \"b\"'\n\
                    BULLY_PEERS=h1:1,\\\nh2:2\nnot a line\nBAD-KEY=1\nBULLY_ID=\n";
        assert_eq!(
            parse_env_file(text),
            [
                ("BULLY_CLUSTER", "lab"),
                ("BULLY_PORT", "5001"),
                ("BULLY_EXEC", "run \"x\" \\ y"),
                ("BULLY_ON_ELECTED", "a \"b\""),
                ("BULLY_PEERS", "h1:1,h2:2"),
                ("BULLY_ID", ""),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn instances_are_the_files_beside_the_defaults_and_later_files_win() {
        let dir = std::env::temp_dir().join(format!("bully-instances-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let defaults = dir.join("bully");
        std::fs::write(&defaults, "BULLY_REGISTRY_DIR=/r\nBULLY_PORT=6000\n").unwrap();
        std::fs::write(
            dir.join("bully-web"),
            "BULLY_PORT=6001\nBULLY_BIND=0.0.0.0\n",
        )
        .unwrap();
        std::fs::write(dir.join("bully-db"), "BULLY_CLUSTER=pg\n").unwrap();
        for junk in ["bully-db.dpkg-old", "bully-web~", "bully-", "other-x"] {
            std::fs::write(dir.join(junk), "").unwrap();
        }
        assert_eq!(discover(&defaults), ["db", "web"]);
        let mut warnings = Vec::new();
        let web = load(&defaults, "web", &mut warnings);
        assert_eq!(web.get("BULLY_PORT").as_deref(), Some("6001"));
        assert_eq!(web.get("BULLY_REGISTRY_DIR").as_deref(), Some("/r"));
        assert_eq!(
            (web.cluster(), node_host(&web)),
            ("web".into(), "127.0.0.1".into())
        );
        let db = load(&defaults, "db", &mut warnings);
        assert_eq!(
            (db.cluster(), db.get("BULLY_PORT")),
            ("pg".into(), Some("6000".into()))
        );
        // Unknown to the files: the unit's defaults.
        let lab = load(&defaults, "lab", &mut warnings);
        assert_eq!(
            lab.get("BULLY_STATE_DIR").as_deref(),
            Some("/var/lib/bully")
        );
        assert!(warnings.is_empty(), "{warnings:?}");

        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>();
        let env = |k: &str| (k == "BULLY_DEFAULTS").then(|| defaults.display().to_string());
        let picked = |a: &[&str], by_cluster| {
            let scan = Scan::new(&args(a), &env, &["--port"]);
            pick(&scan, by_cluster, &mut Vec::new()).unwrap()
        };
        assert!(matches!(picked(&[], false), Picked::Several(v) if v.len() == 2));
        assert!(matches!(picked(&["--instance", "web"], false), Picked::One(i) if i.name == "web"));
        assert!(matches!(picked(&["--cluster=pg"], true), Picked::One(i) if i.name == "db"));
        assert!(matches!(
            picked(&["--cluster=pg"], false),
            Picked::Several(_)
        ));
        assert!(matches!(picked(&["--port", "1"], false), Picked::Flags));
        let scan = Scan::new(&args(&["--instance", "a/b"]), &env, &[]);
        let e = pick(&scan, false, &mut Vec::new()).err().unwrap();
        assert!(e.0.starts_with("--instance: expected"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! `bully step-down [--to NODE]` and `bully maintenance on|off`: an operator's requests to the
//! node on this host (its port from `--port`, `BULLY_PORT` or the packaged instance's
//! settings), or with `step-down --cluster X` to whoever leads X (found through the registry,
//! as `bully status` finds it), signed with the cluster key when one is set. Exit 0 when the
//! node does it, 1 when it cannot (with its reason) or does not answer, 2 on a bad command line.

use super::flags::{Flags, UsageError};
use super::instances::{self, node_host, Instance, Picked, Scan};
use super::output;
use super::status::{self, LOCATION};
use crate::core::rules::{valid_host, valid_name, NAME_RULE};
use crate::core::wire::{Maintenance, StepDown};
use crate::http::auth::{ClusterKey, Keys};
use crate::http::peer::PeerClient;
use crate::http::routes::Route;
use crate::registry::RegistryOptions;
use serde::Serialize;
use serde_json::Value;
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

pub const STEP_DOWN_HELP: &str = "\
bully step-down [--to NODE] [--instance NAME | --port PORT [--host HOST]] [--cluster-key-file PATH]
                [--timeout DUR]
bully step-down --cluster NAME [--to NODE] [registry options] [--cluster-key-file PATH]

Asks the node of this host to hand over leadership (to NODE, or the next node); with
--cluster, asks whoever leads that cluster, found through its registry as bully status finds
it. The node is the packaged instance here (bully@NAME, its settings from /etc/default/bully
and /etc/default/bully-NAME; --instance NAME when there are several), else the one at
HOST:PORT (default 127.0.0.1 and $BULLY_PORT). Signed with the cluster key when
--cluster-key, --cluster-key-file or BULLY_CLUSTER_KEY (or the instance's settings) give one;
over HTTPS with --tls-cert FILE --tls-key FILE --tls-ca FILE (a node with --tls-* needs them).
Exit code 0 when the node does it, 1 when it cannot (it says why), does not answer within
--timeout (default 5s) or no node leads; 2 on a bad command line.
";

pub const MAINTENANCE_HELP: &str = "\
bully maintenance on|off [--instance NAME | --port PORT [--host HOST]] [--cluster-key-file PATH]
                  [--timeout DUR]

Asks the node of this host to stand for election or not; maintenance survives a restart, and
a leader in maintenance steps down. The node is found as for bully step-down: the packaged
instance here (--instance NAME when there are several), else HOST:PORT. Exit code 0 when the
node does it, 1 when it cannot or does not answer within --timeout (default 5s), 2 on a bad
command line. Signed and over HTTPS as for bully step-down.
";

/// `bully step-down ARGS` or `bully maintenance ARGS`.
pub fn main(
    what: &str,
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    variables: &[String],
) -> ExitCode {
    // `step-down --cluster X`: whoever leads X, through the registry of X's instance here, if
    // one is, for the registry's place and the key.
    let leader = what == "step-down" && given(&args, "--cluster");
    if let Some(flag) = ["--port", "--host", "--instance"]
        .into_iter()
        .find(|f| leader && given(&args, f))
    {
        let e = format!("{flag}: not with --cluster, which asks whoever leads it; give one");
        return usage(what, &UsageError(e));
    }
    let scan = if leader {
        Scan::new(&args, env, &LOCATION)
    } else {
        Scan::new(&args, env, &["--port"])
    };
    let mut warnings = Vec::new();
    let picked = match instances::pick(&scan, leader, &mut warnings) {
        Ok(p) => p,
        Err(e) => return usage(what, &e),
    };
    for w in warnings {
        output::err(&format!("bully {what}: warning: {w}"));
    }
    let instance = match picked {
        Picked::Flags => None,
        Picked::One(i) => Some(i),
        // Nodes of one cluster on one host share its registry and key: any will do.
        Picked::Several(mut list) if leader => Some(list.remove(0)),
        Picked::Several(list) => return usage(what, &instances::choose("", &list)),
    };
    let layered = |k: &str| instance.as_ref().and_then(|i| i.get(k)).or_else(|| env(k));
    match request(what, args, &layered, variables, leader, instance.as_ref()) {
        Ok(None) => {
            output::out(if what == "step-down" {
                STEP_DOWN_HELP
            } else {
                MAINTENANCE_HELP
            });
            ExitCode::SUCCESS
        }
        Ok(Some(r)) => {
            let address = match r.target {
                Target::Node(address) => address,
                Target::Leader(registry) => match leader_of(&registry) {
                    Ok(address) => address,
                    Err(e) => {
                        output::err(&format!("bully {what}: {e}"));
                        return ExitCode::from(1);
                    }
                },
            };
            send(&r.client, &address, r.route, &r.body)
        }
        Err(e) => usage(what, &e),
    }
}

fn usage(what: &str, e: &UsageError) -> ExitCode {
    output::err(&format!("bully {what}: {e}\nTry 'bully {what} --help'."));
    ExitCode::from(2)
}

/// Whether `flag` is on the command line (not from a variable).
fn given(args: &[OsString], flag: &str) -> bool {
    args.iter().any(|a| {
        a.to_str()
            .is_some_and(|a| a == flag || a.starts_with(&format!("{flag}=")))
    })
}

/// Whom to ask: a node's address, or whoever leads the cluster of a registry.
enum Target {
    Node(String),
    Leader(Box<RegistryOptions>),
}

struct Request {
    client: PeerClient,
    target: Target,
    route: Route,
    body: Value,
}

fn request(
    what: &str,
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
    variables: &[String],
    leader: bool,
    instance: Option<&Instance>,
) -> Result<Option<Request>, UsageError> {
    let mut f = Flags::new(args, env, variables);
    if f.contains("-h") || f.contains("--help") {
        return Ok(None);
    }
    // Read before the flags, by Scan; asked here so they are known.
    f.value("--instance")?;
    f.value("--defaults")?;
    let timeout = f.duration("--timeout", Duration::from_secs(5))?;
    let target = if leader {
        let mut registry = f.registry(timeout)?;
        if let Some(i) = instance {
            instances::with_own_node(&mut registry, i);
        }
        Target::Leader(Box::new(registry))
    } else {
        let port = f
            .parsed("--port", "a port number from 1 to 65535", |v| {
                v.parse::<u16>().ok().filter(|p| *p != 0)
            })?
            .ok_or_else(|| {
                UsageError(
                    "--port: expected the node's port (or BULLY_PORT); no packaged instance \
                     found here (--instance NAME names one)"
                        .into(),
                )
            })?;
        let host = f
            .parsed("--host", "a host name or IP address", |v| {
                valid_host(v).then(|| v.to_string())
            })?
            .or_else(|| instance.map(node_host))
            .unwrap_or_else(|| "127.0.0.1".into());
        Target::Node(if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        })
    };
    let key = key(&mut f)?;
    let tls = super::tls::files(&mut f)?;
    let (route, body) = match what {
        "step-down" => {
            let to = f.parsed("--to", &format!("a node name of {NAME_RULE}"), |v| {
                valid_name(v).then(|| v.to_string())
            })?;
            (Route::StepDown, json(&StepDown { to }))
        }
        _ => {
            let on = match f.free("on|off", "on or off")?.as_str() {
                "on" => true,
                "off" => false,
                other => return Err(UsageError(format!("expected on or off, got '{other}'"))),
            };
            (Route::Maintenance, json(&Maintenance { on }))
        }
    };
    for w in f.finish()? {
        output::err(&format!("bully {what}: warning: {w}"));
    }
    if let Some(files) = &tls {
        super::tls::install(files).map_err(UsageError)?;
    }
    Ok(Some(Request {
        client: PeerClient::new(timeout).signing(key.map(Keys::new)),
        target,
        route,
        body,
    }))
}

/// The address of the one member of the registry's cluster that says it leads.
fn leader_of(registry: &RegistryOptions) -> Result<String, String> {
    let report = status::gather(registry, false)?;
    let leading: Vec<_> = report
        .members
        .iter()
        .filter(|r| {
            r.reachable
                && r.coordinator.as_deref() == Some(&r.name)
                && r.coordinator_id == Some(r.id)
        })
        .collect();
    match leading[..] {
        [one] => Ok(one.address.clone()),
        [] => Err(format!(
            "no member of cluster '{}' leads: {}",
            report.cluster,
            report.summary()
        )),
        _ => Err(format!(
            "several members of cluster '{}' say they lead: {}",
            report.cluster,
            report.summary()
        )),
    }
}

fn json<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

fn key(f: &mut Flags) -> Result<Option<ClusterKey>, UsageError> {
    match (f.value("--cluster-key")?, f.value("--cluster-key-file")?) {
        (Some(_), Some(_)) => Err(UsageError(
            "--cluster-key and --cluster-key-file given together: choose one".into(),
        )),
        (Some(k), None) => ClusterKey::new(k.as_bytes())
            .map(Some)
            .map_err(|e| UsageError(format!("{}: {e}", f.source("--cluster-key")))),
        (None, Some(p)) => ClusterKey::from_file(std::path::Path::new(&p))
            .map(Some)
            .map_err(|e| UsageError(format!("{}: {e}", f.source("--cluster-key-file")))),
        (None, None) => Ok(None),
    }
}

fn send(client: &PeerClient, address: &str, route: Route, body: &Value) -> ExitCode {
    match client.post::<_, Value>(address, route.path(), body) {
        Ok((200, answer)) => {
            let message = answer
                .as_ref()
                .and_then(|a| a["message"].as_str())
                .unwrap_or("done");
            output::out(&format!("{message}\n"));
            ExitCode::SUCCESS
        }
        Ok((status, answer)) => {
            let why = answer
                .as_ref()
                .and_then(|a| a["error"].as_str().map(String::from))
                .unwrap_or_else(|| format!("answered {status}"));
            output::err(&format!("bully: {address}: {why}"));
            ExitCode::from(1)
        }
        Err(e) => {
            output::err(&format!("bully: {address} does not answer: {e}"));
            ExitCode::from(1)
        }
    }
}

//! `bully step-down [--to NODE]` and `bully maintenance on|off`: an operator's requests to the
//! node on this host (its port from `--port` or `BULLY_PORT`), signed with the cluster key
//! when one is set. Exit 0 when the node does it, 1 when it cannot (with its reason) or does
//! not answer, 2 on a bad command line.

use super::flags::{Flags, UsageError};
use crate::core::rules::{valid_host, valid_name, NAME_RULE};
use crate::core::wire::{Maintenance, StepDown};
use crate::http::auth::ClusterKey;
use crate::http::peer::PeerClient;
use crate::http::routes::Route;
use serde::Serialize;
use serde_json::Value;
use std::ffi::OsString;
use std::process::ExitCode;
use std::time::Duration;

const HELP: &str = "\
bully step-down [--to NODE] [--port PORT] [--host HOST] [--cluster-key-file PATH] [--timeout DUR]
bully maintenance on|off [--port PORT] [--host HOST] [--cluster-key-file PATH] [--timeout DUR]

Asks the node at HOST:PORT (default 127.0.0.1 and $BULLY_PORT) to hand over leadership (to
NODE, or the next node), or to stand for election or not (maintenance survives a restart).
Signed with the cluster key when --cluster-key, --cluster-key-file or BULLY_CLUSTER_KEY gives
one. Exit code 0 when the node does it, 1 when it cannot (it says why) or does not answer
within --timeout (default 5s).
";

/// `bully step-down ARGS` or `bully maintenance ARGS`.
pub fn main(what: &str, args: Vec<OsString>, env: &dyn Fn(&str) -> Option<String>) -> ExitCode {
    match request(what, args, env) {
        Ok(None) => {
            print!("{HELP}");
            ExitCode::SUCCESS
        }
        Ok(Some((client, address, route, body))) => send(&client, &address, route, &body),
        Err(e) => {
            eprintln!("bully {what}: {e}\nTry 'bully {what} --help'.");
            ExitCode::from(2)
        }
    }
}

type Request = (PeerClient, String, Route, Value);

fn request(
    what: &str,
    args: Vec<OsString>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Request>, UsageError> {
    let mut f = Flags::new(args, env);
    if f.contains("-h") || f.contains("--help") {
        return Ok(None);
    }
    let port = f
        .parsed("--port", "a port number from 1 to 65535", |v| {
            v.parse::<u16>().ok().filter(|p| *p != 0)
        })?
        .ok_or_else(|| UsageError("--port: expected the node's port (or BULLY_PORT)".into()))?;
    let host = f
        .parsed("--host", "a host name or IP address", |v| {
            valid_host(v).then(|| v.to_string())
        })?
        .unwrap_or_else(|| "127.0.0.1".into());
    let key = key(&mut f)?;
    let timeout = f.duration("--timeout", Duration::from_secs(5))?;
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
    f.finish()?;
    let address = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Some((
        PeerClient::new(timeout).signing(key),
        address,
        route,
        body,
    )))
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
            .map_err(|e| UsageError(format!("--cluster-key: {e}"))),
        (None, Some(p)) => ClusterKey::from_file(std::path::Path::new(&p))
            .map(Some)
            .map_err(|e| UsageError(format!("--cluster-key-file: {e}"))),
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
            println!("{message}");
            ExitCode::SUCCESS
        }
        Ok((status, answer)) => {
            let why = answer
                .as_ref()
                .and_then(|a| a["error"].as_str().map(String::from))
                .unwrap_or_else(|| format!("answered {status}"));
            eprintln!("bully: {address}: {why}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("bully: {address} does not answer: {e}");
            ExitCode::from(1)
        }
    }
}

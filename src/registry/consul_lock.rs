//! `--consul-lock` against the local Consul agent: a session per node, bound to the node's
//! service check (and the agent's `serfHealth`), and the leader key `bully/<cluster>/leader`
//! taken with `?acquire=`, read, watched with blocking queries and let go with `?release=`.
//! Consul's servers keep the key in Raft; each new holder raises its `LockIndex`, the fencing
//! token hooks get. Every answer is untrusted, as the registry's are.

use super::consul::{expect_ok, go_duration, parse_json, service_id, shown, ConsulClient};
use super::consul_options::ConsulOptions;
use crate::core::member::Member;
use serde_json::{json, Value};
use std::time::Duration;

/// How long one blocking query on the key waits for a change. Releasing the lock changes the
/// key, so a watch that must stop returns at once.
pub const WATCH_WAIT: Duration = Duration::from_secs(20);
/// Consul adds up to a sixteenth of the wait to spread the answers out; and some time more.
const WATCH_MARGIN: Duration = Duration::from_secs(5);
/// The longest session name or holder description put into a log line.
const MAX_SHOWN: usize = 120;

/// The leader key as Consul describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyState {
    /// The session holding the lock, if any.
    pub session: Option<String>,
    /// How many times the key was taken by a session: raised by every new holder.
    pub lock_index: u64,
    /// The Raft index of its last change, for blocking queries.
    pub modify_index: u64,
}

/// What `?acquire=` came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Acquire {
    Taken,
    /// Held by another session, or free but within a lock-delay.
    Refused,
    /// Consul no longer knows the session (invalidated when its check failed, or destroyed).
    InvalidSession,
}

pub struct ConsulLock {
    client: ConsulClient,
    /// For blocking queries, which wait up to [`WATCH_WAIT`] for the answer.
    watcher: ConsulClient,
    /// `bully/<cluster>/leader`.
    key: String,
    session_body: Value,
    /// What the key holds: who took it.
    value: Value,
}

impl ConsulLock {
    pub fn new(opts: &ConsulOptions, cluster: &str, me: &Member, timeout: Duration) -> Self {
        let name = format!("bully {cluster} {}", me.name);
        ConsulLock {
            client: ConsulClient::new(opts, timeout, timeout),
            watcher: ConsulClient::new(opts, timeout, WATCH_WAIT + WATCH_MARGIN + timeout),
            key: format!("bully/{cluster}/leader"),
            session_body: json!({
                "Name": name,
                "Checks": ["serfHealth", format!("service:{}", service_id(cluster, &me.name))],
                "LockDelay": go_duration(opts.lock_delay),
                "Behavior": "release",
            }),
            value: json!({
                "node_name": me.name,
                "node_id": me.id.to_string(),
                "address": me.address(),
            }),
        }
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// A new session bound to this node's checks. Consul refuses one while a check is
    /// critical: a node is critical until its first check passed.
    pub fn create_session(&self) -> Result<String, String> {
        let path = "/v1/session/create";
        let what = format!("PUT {path}");
        let body = expect_ok(self.client.put(path, Some(&self.session_body))?, &what)?;
        let answer = parse_json(&body, &what)?;
        answer["ID"]
            .as_str()
            .filter(|id| valid_session(id))
            .map(String::from)
            .ok_or_else(|| format!("{what}: no valid session ID in {}", shown(&body)))
    }

    pub fn acquire(&self, session: &str) -> Result<Acquire, String> {
        let path = format!("/v1/kv/{}?acquire={session}", self.key);
        let answer = self.client.put(&path, Some(&self.value))?;
        if answer.status == 500 && String::from_utf8_lossy(&answer.body).contains("invalid session")
        {
            return Ok(Acquire::InvalidSession);
        }
        let what = format!("PUT {path}");
        let body = expect_ok(answer, &what)?;
        match parse_json(&body, &what)? {
            Value::Bool(true) => Ok(Acquire::Taken),
            Value::Bool(false) => Ok(Acquire::Refused),
            _ => Err(format!(
                "{what}: expected true or false, got {}",
                shown(&body)
            )),
        }
    }

    /// Lets go of the lock if `session` holds it (else Consul changes nothing: `false`).
    pub fn release(&self, session: &str) -> Result<bool, String> {
        let path = format!("/v1/kv/{}?release={session}", self.key);
        let what = format!("PUT {path}");
        let body = expect_ok(self.client.put(&path, Some(&self.value))?, &what)?;
        Ok(parse_json(&body, &what)? == Value::Bool(true))
    }

    /// The key now; `None` when it does not exist.
    pub fn read(&self) -> Result<Option<KeyState>, String> {
        self.query(&self.client, &format!("/v1/kv/{}", self.key))
            .map(|(k, _)| k)
    }

    /// Waits (up to [`WATCH_WAIT`]) until the key changes after `index`; returns it and the
    /// index to wait on next.
    pub fn wait_change(&self, index: u64) -> Result<(Option<KeyState>, u64), String> {
        let path = format!(
            "/v1/kv/{}?index={index}&wait={}",
            self.key,
            go_duration(WATCH_WAIT)
        );
        let (state, next) = self.query(&self.watcher, &path)?;
        // Consul's rule for blocking queries: an index that went backwards starts over.
        let next = next.unwrap_or(0);
        Ok((state, if next < index { 0 } else { next }))
    }

    fn query(
        &self,
        client: &ConsulClient,
        path: &str,
    ) -> Result<(Option<KeyState>, Option<u64>), String> {
        let answer = client.get(path)?;
        let index = answer.index;
        if answer.status == 404 {
            return Ok((None, index));
        }
        let what = format!("GET {path}");
        let body = expect_ok(answer, &what)?;
        let entry = match parse_json(&body, &what)? {
            Value::Array(mut entries) if entries.len() == 1 => entries.remove(0),
            _ => return Err(format!("{what}: expected one entry: {}", shown(&body))),
        };
        Ok((Some(key_state(&entry, &self.key, &what)?), index))
    }

    /// Who holds the lock, for a log line: the session's name and node as Consul has them.
    pub fn describe_session(&self, session: &str) -> String {
        let path = format!("/v1/session/info/{session}");
        let info = self
            .client
            .get(&path)
            .and_then(|a| expect_ok(a, &path))
            .and_then(|b| parse_json(&b, &path));
        let first = info.as_ref().ok().and_then(|v| v.get(0));
        match first {
            Some(s) => format!(
                "session {session} (\"{}\" on node {})",
                clipped(s["Name"].as_str().unwrap_or("")),
                clipped(s["Node"].as_str().unwrap_or("?"))
            ),
            None => format!("session {session}"),
        }
    }
}

/// Session IDs are UUIDs; only such go into URLs and logs.
fn valid_session(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// One KV entry, checked: it is our key, its indexes are numbers, its session a session ID.
fn key_state(entry: &Value, key: &str, what: &str) -> Result<KeyState, String> {
    let bad = || {
        format!(
            "{what}: not the leader key: {}",
            shown(entry.to_string().as_bytes())
        )
    };
    if entry["Key"].as_str() != Some(key) {
        return Err(bad());
    }
    let session = match &entry["Session"] {
        Value::Null => None,
        Value::String(s) if valid_session(s) => Some(s.clone()),
        _ => return Err(bad()),
    };
    Ok(KeyState {
        session,
        lock_index: entry["LockIndex"].as_u64().ok_or_else(bad)?,
        modify_index: entry["ModifyIndex"].as_u64().ok_or_else(bad)?,
    })
}

/// A name from Consul on one short line.
fn clipped(s: &str) -> String {
    shown(s.as_bytes()).chars().take(MAX_SHOWN).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "bully/alpha/leader";

    #[test]
    fn key_entries_are_checked() {
        let e = json!({"Key": KEY, "LockIndex": 3, "ModifyIndex": 40,
                       "Session": "01369c0d-14ce-92b2-f35b-055416cfc301"});
        assert_eq!(
            key_state(&e, KEY, "GET"),
            Ok(KeyState {
                session: Some("01369c0d-14ce-92b2-f35b-055416cfc301".into()),
                lock_index: 3,
                modify_index: 40
            })
        );
        let free = json!({"Key": KEY, "LockIndex": 3, "ModifyIndex": 41});
        assert_eq!(key_state(&free, KEY, "GET").unwrap().session, None);
        for bad in [
            json!({"Key": "other", "LockIndex": 1, "ModifyIndex": 1}),
            json!({"Key": KEY, "LockIndex": "1", "ModifyIndex": 1}),
            json!({"Key": KEY, "LockIndex": 1}),
            json!({"Key": KEY, "LockIndex": 1, "ModifyIndex": 1, "Session": "../../x"}),
            json!({"Key": KEY, "LockIndex": 1, "ModifyIndex": 1, "Session": 7}),
            json!([]),
        ] {
            assert!(key_state(&bad, KEY, "GET").is_err(), "{bad}");
        }
    }

    #[test]
    fn only_uuid_like_session_ids_are_used() {
        assert!(valid_session("01369c0d-14ce-92b2-f35b-055416cfc301"));
        for bad in ["", "a b", "x?y=1", &"a".repeat(65)] {
            assert!(!valid_session(bad), "{bad}");
        }
    }

    #[test]
    fn sessions_are_bound_to_the_service_check_with_the_lock_delay() {
        let opts = ConsulOptions {
            address: "http://127.0.0.1:1".into(),
            tls: None,
            token: None,
            check_interval: Duration::from_secs(10),
            deregister_after: Duration::from_secs(60),
            lock: true,
            lock_delay: Duration::from_secs(5),
        };
        let me = Member {
            name: "node4".into(),
            id: 4,
            host: "10.0.0.4".into(),
            port: 5004,
            witness: false,
        };
        let l = ConsulLock::new(&opts, "alpha", &me, Duration::from_secs(1));
        assert_eq!(l.key(), KEY);
        assert_eq!(
            l.session_body,
            json!({"Name": "bully alpha node4", "Checks": ["serfHealth", "service:alpha-node4"],
                   "LockDelay": "5000ms", "Behavior": "release"})
        );
        assert_eq!(
            l.value,
            json!({"node_name": "node4", "node_id": "4", "address": "10.0.0.4:5004"})
        );
    }
}

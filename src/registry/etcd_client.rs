//! A small synchronous client for etcd's JSON gateway (etcd 3.4 serves it under `/v3/`): every
//! call a POST of JSON, `bytes` fields in base64, `int64` fields as JSON strings, and a zero
//! or false field left out of an answer altogether. The endpoints are tried in turn, starting
//! with the one that answered last; only what this project needs is here: leases, one key,
//! a prefix, a create-if-absent transaction, and token auth.
//!
//! Every answer is untrusted: bodies are size-limited, and fields that are missing or of the
//! wrong type make an error or a skipped entry, never a panic.

use super::base64;
use super::consul::shown;
use super::etcd_options::{Credentials, EtcdOptions};
use super::tls_files::RegistryTls;
use super::RegistryError;
use crate::sync::lock;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Largest answer read from etcd: the member list of a large cluster, with room to spare.
const MAX_ANSWER: u64 = 8 * 1024 * 1024;
/// A single request to a member never waits less: a member forwards writes to its leader.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

/// One key as etcd lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: Vec<u8>,
    /// The revision that created the key: raised by every new holder of a lock key.
    pub create_revision: u64,
    /// The lease the key lives on; 0 for none.
    pub lease: i64,
}

pub struct EtcdClient {
    endpoints: Vec<String>,
    /// The endpoint that answered last: tried first next time.
    current: AtomicUsize,
    agent: ureq::Agent,
    /// For [`EtcdClient::request_spec`]: the supervisor that sends it needs the files too.
    tls: Option<RegistryTls>,
    auth: Option<Credentials>,
    /// The token `/v3/auth/authenticate` gave, until etcd no longer takes it.
    token: Mutex<Option<String>>,
}

/// How an answer went wrong: no answer at all (try the next endpoint), or etcd's own.
enum Sent {
    NoAnswer(String),
    Answer(u16, Vec<u8>),
}

impl EtcdClient {
    pub fn new(opts: &EtcdOptions, timeout: Duration) -> EtcdClient {
        let timeout = timeout.max(MIN_TIMEOUT);
        EtcdClient {
            endpoints: opts.endpoints.clone(),
            current: AtomicUsize::new(0),
            agent: super::tls_files::agent(opts.tls.as_ref(), timeout, timeout),
            tls: opts.tls.clone(),
            auth: opts.auth.clone(),
            token: Mutex::new(None),
        }
    }

    /// The TLS files and configuration, shared with every client made from the same options.
    pub fn tls(&self) -> Option<&RegistryTls> {
        self.tls.as_ref()
    }

    pub fn endpoints(&self) -> String {
        self.endpoints.join(",")
    }

    /// POSTs `body` to `path` at each endpoint in turn until one answers and is not
    /// unavailable; the answer as JSON, or an error saying how it failed. With auth, a token
    /// etcd no longer takes is replaced once.
    pub fn call(&self, path: &str, body: &Value) -> Result<Value, RegistryError> {
        match self.call_as(path, body, true) {
            Err(e) if self.auth.is_some() && token_refused(&e.message) => {
                *lock(&self.token) = None;
                self.call_as(path, body, true)
            }
            other => other,
        }
    }

    fn call_as(&self, path: &str, body: &Value, authed: bool) -> Result<Value, RegistryError> {
        let token = if authed && self.auth.is_some() {
            Some(self.token()?)
        } else {
            None
        };
        let n = self.endpoints.len().max(1);
        let first = self.current.load(Ordering::Relaxed);
        let mut last = RegistryError::unreachable(format!("POST {path}: no etcd endpoint"));
        for i in 0..n {
            let at = (first + i) % n;
            let Some(endpoint) = self.endpoints.get(at) else {
                break;
            };
            let what = format!("POST {endpoint}{path}");
            match self.send(endpoint, path, body, token.as_deref()) {
                Sent::NoAnswer(e) => last = RegistryError::unreachable(format!("{what}: {e}")),
                Sent::Answer(status, bytes) => {
                    let answer = judged(status, &bytes, &what);
                    match answer {
                        // A member without a leader, or one that cannot reach it: another
                        // member may do.
                        Err(e) if e.failure == super::Failure::Unreachable => last = e,
                        other => {
                            self.current.store(at, Ordering::Relaxed);
                            return other;
                        }
                    }
                }
            }
        }
        Err(last)
    }

    fn send(&self, endpoint: &str, path: &str, body: &Value, token: Option<&str>) -> Sent {
        let mut rq = self.agent.post(format!("{endpoint}{path}"));
        if let Some(t) = token {
            rq = rq.header("Authorization", t);
        }
        let mut resp = match rq.send_json(body) {
            Ok(r) => r,
            Err(e) => return Sent::NoAnswer(e.to_string()),
        };
        let status = resp.status().as_u16();
        match resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
        {
            Ok(bytes) => Sent::Answer(status, bytes),
            Err(e) => Sent::NoAnswer(format!("reading the answer: {e}")),
        }
    }

    /// The current token, authenticating first when there is none.
    fn token(&self) -> Result<String, RegistryError> {
        if let Some(t) = lock(&self.token).clone() {
            return Ok(t);
        }
        let Some(c) = &self.auth else {
            return Err(RegistryError::refused("no credentials"));
        };
        let path = "/v3/auth/authenticate";
        let answer = self.call_as(
            path,
            &json!({"name": c.user, "password": c.password}),
            false,
        )?;
        let token = answer["token"]
            .as_str()
            .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                RegistryError::refused(format!("POST {path}: no token in etcd's answer"))
            })?;
        *lock(&self.token) = Some(token.to_string());
        Ok(token.to_string())
    }

    /// `path` at every endpoint, the current token (`-` for none) and `body`, on one line
    /// for another process to send (`supervisor::orphaned`); with TLS, the files first (see
    /// [`RegistryTls::field`]).
    pub fn request_spec(&self, path: &str, body: &Value) -> String {
        let urls: Vec<String> = self
            .endpoints
            .iter()
            .map(|e| format!("{e}{path}"))
            .collect();
        let token = lock(&self.token).clone().unwrap_or_else(|| "-".into());
        let tls = self
            .tls
            .as_ref()
            .map(|t| t.field() + " ")
            .unwrap_or_default();
        format!("{tls}{} {token} {body}", urls.join(","))
    }

    /// A new lease of `ttl`; its ID.
    pub fn grant(&self, ttl: Duration) -> Result<i64, RegistryError> {
        let path = "/v3/lease/grant";
        let answer = self.call(path, &json!({"TTL": ttl.as_secs().to_string()}))?;
        match (int(&answer["ID"]), int(&answer["TTL"])) {
            (Some(id), Some(t)) if id != 0 && t > 0 => Ok(id),
            _ => Err(malformed(path, &answer)),
        }
    }

    /// Renews `lease` once; the TTL it has now, `None` when etcd no longer knows it.
    pub fn keepalive(&self, lease: i64) -> Result<Option<u64>, RegistryError> {
        let path = "/v3/lease/keepalive";
        // The gateway answers a stream: one JSON object per line, `result` or `error`.
        let answer = self.call(path, &json!({"ID": lease.to_string()}))?;
        if let Some(e) = answer.get("error") {
            return Err(RegistryError::unreachable(format!(
                "POST {path}: {}",
                shown(e.to_string().as_bytes())
            )));
        }
        let result = &answer["result"];
        if !result.is_object() {
            return Err(malformed(path, &answer));
        }
        Ok(int(&result["TTL"]).filter(|t| *t > 0).map(|t| t as u64))
    }

    /// Ends `lease` and deletes every key on it; `false` when etcd did not know it.
    pub fn revoke(&self, lease: i64) -> Result<bool, RegistryError> {
        match self.call("/v3/lease/revoke", &json!({"ID": lease.to_string()})) {
            Ok(_) => Ok(true),
            Err(e) if e.message.contains("lease not found") => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Puts `key` on `lease`; the revision of the write.
    pub fn put(&self, key: &str, value: &[u8], lease: i64) -> Result<u64, RegistryError> {
        let path = "/v3/kv/put";
        let answer = self.call(
            path,
            &json!({"key": base64::encode(key.as_bytes()),
            "value": base64::encode(value), "lease": lease.to_string()}),
        )?;
        revision(&answer).ok_or_else(|| malformed(path, &answer))
    }

    /// `key` now, if it exists.
    pub fn get(&self, key: &str) -> Result<Option<Kv>, RegistryError> {
        let path = "/v3/kv/range";
        let answer = self.call(path, &json!({"key": base64::encode(key.as_bytes())}))?;
        let mut kvs = kvs(&answer).ok_or_else(|| malformed(path, &answer))?;
        kvs.retain(|kv| kv.key == key);
        Ok(kvs.pop())
    }

    /// Every key under `prefix` (which ends in `/`), in key order.
    pub fn prefix(&self, prefix: &str) -> Result<Vec<Kv>, RegistryError> {
        let path = "/v3/kv/range";
        let answer = self.call(
            path,
            &json!({"key": base64::encode(prefix.as_bytes()),
                    "range_end": base64::encode(&range_end(prefix.as_bytes()))}),
        )?;
        let mut kvs = kvs(&answer).ok_or_else(|| malformed(path, &answer))?;
        kvs.retain(|kv| kv.key.starts_with(prefix));
        Ok(kvs)
    }

    /// Creates `key` on `lease` only if no key of that name exists, in one transaction:
    /// `Ok(Ok(revision))` when it was created (the key's create revision), else `Ok(Err)`
    /// with the key that stood in the way (`None` if it went meanwhile).
    pub fn create(
        &self,
        key: &str,
        value: &[u8],
        lease: i64,
    ) -> Result<Result<u64, Option<Kv>>, RegistryError> {
        let path = "/v3/kv/txn";
        let k = base64::encode(key.as_bytes());
        let answer = self.call(
            path,
            &json!({
                "compare": [{"key": k, "target": "CREATE", "result": "EQUAL",
                             "create_revision": "0"}],
                "success": [{"request_put": {"key": k, "value": base64::encode(value),
                                             "lease": lease.to_string()}}],
                "failure": [{"request_range": {"key": k}}],
            }),
        )?;
        let rev = revision(&answer).ok_or_else(|| malformed(path, &answer))?;
        if answer["succeeded"].as_bool() == Some(true) {
            return Ok(Ok(rev));
        }
        let range = &answer["responses"][0]["response_range"];
        let holder = kvs(range).ok_or_else(|| malformed(path, &answer))?;
        Ok(Err(holder.into_iter().find(|kv| kv.key == key)))
    }
}

/// An answer's status and body as a result: 2xx is JSON (for a stream, its first object);
/// 5xx and 429 are etcd unable to serve now; any other status is a refusal.
fn judged(status: u16, body: &[u8], what: &str) -> Result<Value, RegistryError> {
    let first = body
        .split(|&b| b == b'\n')
        .find(|l| !l.iter().all(u8::is_ascii_whitespace))
        .unwrap_or(body);
    let parsed: Option<Value> = serde_json::from_slice(first).ok();
    if (200..300).contains(&status) {
        return parsed.filter(Value::is_object).ok_or_else(|| {
            RegistryError::unreachable(format!(
                "{what}: etcd's answer is not the expected JSON: {}",
                shown(body)
            ))
        });
    }
    let message = parsed
        .as_ref()
        .and_then(|v| v["message"].as_str().or(v["error"].as_str()))
        .map_or_else(|| shown(body), |m| shown(m.as_bytes()));
    let e = format!("{what}: etcd answered {status}: {message}");
    if status >= 500 || status == 429 {
        Err(RegistryError::unreachable(e))
    } else {
        Err(RegistryError::refused(e))
    }
}

/// etcd's words for a token it no longer takes (expired, or etcd restarted), or for none.
fn token_refused(message: &str) -> bool {
    message.contains("invalid auth token") || message.contains("user name is empty")
}

/// An `int64` field: a JSON string, or (leniently) a number; a missing field is 0.
fn int(v: &Value) -> Option<i64> {
    match v {
        Value::Null => Some(0),
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

fn revision(answer: &Value) -> Option<u64> {
    int(&answer["header"]["revision"])
        .filter(|r| *r > 0)
        .map(|r| r as u64)
}

/// The keys of a range answer; `None` when it is not one. A key that does not decode is
/// skipped.
fn kvs(answer: &Value) -> Option<Vec<Kv>> {
    let list = match &answer["kvs"] {
        Value::Null => return answer.is_object().then(Vec::new),
        Value::Array(list) => list,
        _ => return None,
    };
    Some(list.iter().filter_map(kv).collect())
}

fn kv(v: &Value) -> Option<Kv> {
    let key = String::from_utf8(base64::decode(v["key"].as_str()?)?).ok()?;
    let value = match &v["value"] {
        Value::Null => Vec::new(),
        Value::String(s) => base64::decode(s)?,
        _ => return None,
    };
    Some(Kv {
        key,
        value,
        create_revision: u64::try_from(int(&v["create_revision"])?).ok()?,
        lease: int(&v["lease"])?,
    })
}

/// The end of the range of keys that start with `prefix`: its last byte raised by one, as
/// `etcdctl get --prefix` does.
fn range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn malformed(path: &str, answer: &Value) -> RegistryError {
    RegistryError::unreachable(format!(
        "POST {path}: not the answer etcd gives: {}",
        shown(answer.to_string().as_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Failure;

    #[test]
    fn answers_are_judged_by_status_and_body() {
        let ok = judged(200, b"{\"result\":{\"TTL\":\"5\"}}\n", "w").unwrap();
        assert_eq!(int(&ok["result"]["TTL"]), Some(5));
        let e = judged(503, br#"{"error":"etcdserver: no leader","code":14}"#, "w").unwrap_err();
        assert_eq!(e.failure, Failure::Unreachable);
        assert!(e.message.contains("no leader"), "{}", e.message);
        let e = judged(400, br#"{"message":"etcdserver: user name is empty"}"#, "w").unwrap_err();
        assert_eq!(e.failure, Failure::Refused);
        assert!(token_refused(&e.message));
        assert!(judged(200, b"[1]", "w").is_err());
        assert!(judged(200, b"", "w").is_err());
        assert_eq!(
            judged(403, b"\xff", "w").unwrap_err().failure,
            Failure::Refused
        );
    }

    #[test]
    fn keys_are_decoded_and_odd_ones_skipped() {
        let answer = json!({"header": {"revision": "9"}, "kvs": [
            {"key": "YnVsbHkvYS9sZWFkZXI=", "create_revision": "2", "mod_revision": "2",
             "value": "djE=", "lease": "7"},
            {"key": "!!", "create_revision": "2"},
            {"key": "YQ==", "create_revision": "x"},
            {"key": "YQ==", "create_revision": "3", "value": 5},
            {"key": "YQ==", "create_revision": "3"},
        ]});
        let found = kvs(&answer).unwrap();
        assert_eq!(
            found,
            vec![
                Kv {
                    key: "bully/a/leader".into(),
                    value: b"v1".to_vec(),
                    create_revision: 2,
                    lease: 7
                },
                Kv {
                    key: "a".into(),
                    value: vec![],
                    create_revision: 3,
                    lease: 0
                }
            ]
        );
        assert_eq!(revision(&answer), Some(9));
        assert_eq!(kvs(&json!({"header": {}})), Some(vec![]));
        assert_eq!(kvs(&json!({"kvs": "x"})), None);
        assert_eq!(revision(&json!({})), None);
    }

    #[test]
    fn prefixes_end_where_etcdctl_ends_them() {
        assert_eq!(range_end(b"bully/a/"), b"bully/a0");
        assert_eq!(range_end(b"a\xff"), b"b");
        assert_eq!(range_end(b"\xff"), vec![0]);
    }
}

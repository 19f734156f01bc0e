//! Consul as the registry, through the local agent's HTTP API: one service per cluster, one
//! instance per node with an HTTP check on its `GET /`, and members read from the catalog's
//! health endpoint, which is cluster-wide, so nodes on different hosts (each host with its own
//! agent) see each other. The coordinator's instance is tagged `leader` and every other one
//! `follower`, with the term in its Meta, so Consul's DNS and health API name the leader.
//! A new coordinator also takes the tag off any older leader's instance at once (a node
//! killed with -9 cannot, and would pass until its next check): clients should ask
//! `leader.<cluster>.service.consul` or `/v1/health/service/<cluster>?tag=leader&passing`,
//! which leave out failing instances, never the catalog, where a dead node's agent puts its
//! old tag back when its check fails.
//!
//! Every answer is untrusted: bodies are size-limited, entries that do not make a valid member
//! are skipped, and a non-2xx status becomes an error carrying the status and the start of the
//! body.

use super::consul_entries::{badness, demoted, stale_leaders};
use super::consul_options::ConsulOptions;
use super::{check_listed_name, process_token, Registry, RegistryError, Role};
use crate::core::member::Member;
use crate::core::rules::{valid_host, valid_name};
use crate::sync::lock;
use serde_json::{json, Value};
use std::sync::Mutex;
use std::time::Duration;

/// Largest answer read from Consul: the health list of a large cluster, with room to spare.
const MAX_ANSWER: u64 = 8 * 1024 * 1024;
/// How much of an unexpected answer goes into an error (and so a log line).
const SHOWN_BODY: usize = 200;
/// Consul's timeout for one HTTP check of a node; `GET /` answers in microseconds.
const CHECK_TIMEOUT: &str = "1s";
/// Consul's agent is local and its catalog reads may go to a server: never below this.
const MIN_TIMEOUT: Duration = Duration::from_secs(1);

pub struct ConsulRegistry {
    client: ConsulClient,
    opts: ConsulOptions,
    cluster: String,
    /// What the instance shows of this node's part (tag and Meta `term`), for every write.
    role: Mutex<Role>,
    /// Each request's timeout, for asking a namesake whether it lives.
    timeout: Duration,
    /// In the instance's Meta as `instance`: the instance this process registered.
    token: String,
}

/// One Consul agent over HTTP or HTTPS, the token on every request, every answer bounded.
pub(super) struct ConsulClient {
    address: String,
    token: Option<String>,
    agent: ureq::Agent,
}

/// A bounded answer from Consul, with its `X-Consul-Index` (the index blocking queries wait
/// on) when it had a valid one.
pub(super) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    pub index: Option<u64>,
}

impl ConsulClient {
    /// Each call is bounded by `timeout` (at least 1 s); the wait for the answer's head by
    /// `response`, which is longer for blocking queries.
    pub(super) fn new(opts: &ConsulOptions, timeout: Duration, response: Duration) -> Self {
        let timeout = timeout.max(MIN_TIMEOUT);
        ConsulClient {
            address: opts.address.clone(),
            token: opts.token.clone(),
            agent: super::tls_files::agent(opts.tls.as_ref(), timeout, response.max(timeout)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    fn authorised<B>(&self, rq: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => rq.header("X-Consul-Token", t),
            None => rq,
        }
    }

    pub(super) fn get(&self, path: &str) -> Result<Answer, String> {
        let sent = self.authorised(self.agent.get(self.url(path))).call();
        Self::read(sent, "GET", path)
    }

    pub(super) fn put(&self, path: &str, body: Option<&Value>) -> Result<Answer, String> {
        let rq = self.authorised(self.agent.put(self.url(path)));
        let sent = match body {
            Some(b) => rq.send_json(b),
            None => rq.send_empty(),
        };
        Self::read(sent, "PUT", path)
    }

    fn read(
        sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
        method: &str,
        path: &str,
    ) -> Result<Answer, String> {
        let mut resp = sent.map_err(|e| format!("{method} {path}: {e}"))?;
        let status = resp.status().as_u16();
        let index = resp
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_vec()
            .map_err(|e| format!("{method} {path}: reading the answer: {e}"))?;
        Ok(Answer {
            status,
            body,
            index,
        })
    }
}

/// The 2xx answer's body, else an error naming the status and the start of the body.
pub(super) fn expect_ok(answer: Answer, what: &str) -> Result<Vec<u8>, String> {
    if (200..300).contains(&answer.status) {
        Ok(answer.body)
    } else {
        Err(format!(
            "{what}: Consul answered {}: {}",
            answer.status,
            shown(&answer.body)
        ))
    }
}

pub(super) fn parse_json(body: &[u8], what: &str) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| {
        format!(
            "{what}: Consul's answer is not the expected JSON ({e}): {}",
            shown(body)
        )
    })
}

/// The instance ID of node `name`: unique per agent, and readable in the Consul UI.
pub(super) fn service_id(cluster: &str, name: &str) -> String {
    format!("{cluster}-{name}")
}

impl ConsulRegistry {
    pub fn new(opts: ConsulOptions, cluster: &str, timeout: Duration) -> Self {
        ConsulRegistry {
            client: ConsulClient::new(&opts, timeout, timeout),
            opts,
            cluster: cluster.to_string(),
            role: Mutex::new(Role::default()),
            timeout,
            token: process_token(),
        }
    }

    fn service_id(&self, me: &Member) -> String {
        service_id(&self.cluster, &me.name)
    }

    /// What the local agent has under this node's service ID: `None` when it has nothing.
    fn registered_here(&self, me: &Member) -> Result<Option<Value>, String> {
        let path = format!("/v1/agent/service/{}", self.service_id(me));
        let answer = self.client.get(&path)?;
        if answer.status == 404 {
            return Ok(None);
        }
        let body = expect_ok(answer, &format!("GET {path}"))?;
        parse_json(&body, &format!("GET {path}")).map(Some)
    }

    /// The agent's instance under our ID is this process's (not a same-named node's, nor
    /// one an earlier run of this node left).
    fn is_mine(&self, service: &Value, me: &Member) -> bool {
        match service["Meta"]["instance"].as_str() {
            Some(t) => t == self.token,
            None => self.member_of(service, "").as_ref() == Some(me),
        }
    }

    /// A write the agent did not take: no answer, or a 5xx (no cluster leader yet), may pass;
    /// a 4xx (an ACL that refuses, a bad request) will not.
    fn written(sent: Result<Answer, String>, what: &str) -> Result<(), RegistryError> {
        let answer = sent.map_err(RegistryError::unreachable)?;
        let status = answer.status;
        expect_ok(answer, what).map(|_| ()).map_err(|e| {
            if status >= 500 {
                RegistryError::unreachable(e)
            } else {
                RegistryError::refused(e)
            }
        })
    }

    /// The agent's instance shows `role`: its tag, and the leader's Meta `term`.
    fn shows(service: &Value, role: Role) -> bool {
        let term = role.leader.then(|| role.term.to_string());
        service["Tags"] == json!([role.tag()])
            && service["Meta"]["term"].as_str() == term.as_deref()
    }

    /// A member from one service instance as Consul describes it (`/v1/agent/service/<id>`,
    /// or the `Service` of a health entry); the node's address stands in for an empty service
    /// address, as in Consul's own DNS answers.
    fn member_of(&self, service: &Value, node_address: &str) -> Option<Member> {
        if service["Service"].as_str() != Some(self.cluster.as_str()) {
            return None;
        }
        let meta = &service["Meta"];
        let name = meta["node_name"].as_str().filter(|n| valid_name(n))?;
        let id = meta["node_id"].as_str()?.parse::<u64>().ok()?;
        let host = match service["Address"].as_str() {
            Some(a) if !a.is_empty() => a,
            _ => node_address,
        };
        let port = service["Port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)?;
        valid_host(host).then(|| Member {
            name: name.to_string(),
            id,
            host: host.to_string(),
            port,
            witness: meta["witness"].as_str() == Some("true"),
        })
    }

    /// Takes the `leader` tag off every instance that still shows an older leadership than
    /// `term` (see [`stale_leaders`]). A coordinator killed with -9, or whose host went away,
    /// keeps its tag and passes its check until the next one fails, up to
    /// `--consul-check-interval` (10 s by default): meanwhile Consul's DNS would name it
    /// beside its successor, which learnt of its death within milliseconds. Written into
    /// the catalog, which holds every agent's instances, in a transaction that only applies
    /// if the instance is still as read (a node that took the tag again meanwhile keeps it);
    /// the token's `service:write` covers it, and the check is left alone. The dead node's
    /// agent writes its own copy back when its check turns critical, and then Consul's DNS
    /// and `?passing` leave it out anyway.
    fn demote_predecessors(&self, term: u64) -> Result<(), String> {
        let path = format!("/v1/health/service/{}?tag=leader", self.cluster);
        let what = format!("GET {path}");
        let body = expect_ok(self.client.get(&path)?, &what)?;
        let Value::Array(entries) = parse_json(&body, &what)? else {
            return Err(format!("{what}: expected a JSON array: {}", shown(&body)));
        };
        let ours = |e: &&Value| {
            let node_address = e["Node"]["Address"].as_str().unwrap_or("");
            self.member_of(&e["Service"], node_address).is_some()
        };
        for entry in stale_leaders(&entries, &self.token, term)
            .into_iter()
            .filter(ours)
        {
            let service = &entry["Service"];
            let id = service["ID"].as_str().unwrap_or_default();
            let path = "/v1/txn";
            let answer = self.client.put(path, Some(&demoted(entry)))?;
            if answer.status == 409 {
                log::debug!("{id} changed in Consul while being untagged: left as it is");
                continue;
            }
            expect_ok(answer, &format!("PUT {path} (untagging {id})"))?;
            log::info!(
                "Took the leader tag off {id} in Consul (term {}): this node leads in term \
                 {term}",
                service["Meta"]["term"].as_str().unwrap_or("unknown")
            );
        }
        Ok(())
    }
}

/// The start of an unexpected body, on one line, for an error message.
pub(super) fn shown(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out: String = text
        .chars()
        .take(SHOWN_BODY)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if text.chars().nth(SHOWN_BODY).is_some() {
        out.push_str("...");
    }
    if out.trim().is_empty() {
        out = "(empty body)".into();
    }
    out
}

/// The instance's Meta: Consul Meta values are strings. `instance` is this process's token;
/// the leader's carries the term it became coordinator in (a coordinator that moves to a
/// higher term keeps it, as its hooks' `BULLY_TERM` does).
fn meta(me: &Member, token: &str, role: Role) -> Value {
    let mut m = json!({"node_name": me.name, "node_id": me.id.to_string(), "instance": token});
    if role.leader {
        m["term"] = json!(role.term.to_string());
    }
    if me.witness {
        m["witness"] = json!("true");
    }
    m
}

/// Consul reads Go durations; whole milliseconds say any of ours exactly.
pub(super) fn go_duration(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

impl Registry for ConsulRegistry {
    /// One instance of the cluster's service, tagged `leader` or `follower` with the term in
    /// its Meta, and an HTTP check Consul runs on `GET /`; after `deregister_after` critical,
    /// Consul drops it by itself (a node killed with -9). Registering again over an instance
    /// keeps its check's status (Consul 1.8 and later), so a new tag costs no health.
    fn register(&self, me: &Member) -> Result<(), RegistryError> {
        let role = *lock(&self.role);
        let body = json!({
            "ID": self.service_id(me),
            "Name": self.cluster,
            "Address": me.host,
            "Port": me.port,
            "Tags": [role.tag()],
            "Meta": meta(me, &self.token, role),
            "Check": {
                "Name": format!("bully {} answers GET /", me.name),
                "HTTP": format!("http://{}/", me.address()),
                "Method": "GET",
                "Interval": go_duration(self.opts.check_interval),
                "Timeout": CHECK_TIMEOUT,
                "DeregisterCriticalServiceAfter": go_duration(self.opts.deregister_after),
            },
        });
        let path = "/v1/agent/service/register";
        Self::written(self.client.put(path, Some(&body)), &format!("PUT {path}"))
    }

    /// Any instance of the service, on any agent, under our name but at another address
    /// that answers as a node of that name. Best effort: when the instances cannot be read,
    /// the registration itself decides.
    fn check_name(&self, me: &Member) -> Result<(), RegistryError> {
        check_listed_name(
            self.members(),
            me,
            &self.cluster,
            self.timeout,
            &self.describe(),
        )
    }

    /// Removes the instance only when it is still ours: a node of the same name may have
    /// registered over it since.
    fn deregister(&self, me: &Member) -> Result<(), String> {
        match self.registered_here(me)? {
            Some(s) if self.is_mine(&s, me) => {}
            _ => return Ok(()),
        }
        let path = format!("/v1/agent/service/deregister/{}", self.service_id(me));
        expect_ok(self.client.put(&path, None)?, &format!("PUT {path}")).map(|_| ())
    }

    /// Every instance, whatever its check says: a just-registered node is critical until its
    /// first check passes, and the election finds dead nodes itself (they do not answer), so
    /// listing a dead node costs one timeout while leaving out a live one could elect two
    /// coordinators. Of two instances with one node name, the healthier is kept.
    fn members(&self) -> Result<Vec<Member>, String> {
        let path = format!("/v1/health/service/{}", self.cluster);
        let what = format!("GET {path}");
        let body = expect_ok(self.client.get(&path)?, &what)?;
        let entries = match parse_json(&body, &what)? {
            Value::Array(entries) => entries,
            _ => return Err(format!("{what}: expected a JSON array: {}", shown(&body))),
        };
        let mut found: Vec<(Member, u8)> = entries
            .iter()
            .filter_map(|e| {
                let node_address = e["Node"]["Address"].as_str().unwrap_or("");
                let m = self.member_of(&e["Service"], node_address);
                if m.is_none() {
                    log::debug!(
                        "skipping a Consul entry that is not a bully node: {}",
                        shown(e.to_string().as_bytes())
                    );
                }
                m.map(|m| (m, badness(e)))
            })
            .collect();
        found.sort_by(|(a, x), (b, y)| (&a.name, x).cmp(&(&b.name, y)));
        found.dedup_by(|(a, _), (b, _)| a.name == b.name);
        let mut members: Vec<Member> = found.into_iter().map(|(m, _)| m).collect();
        members.sort_by_key(|m| m.node_ref());
        Ok(members)
    }

    /// A restarted agent without persisted state (a dev agent) has forgotten the node; an
    /// instance that shows another role (a tag update that failed) is registered again.
    fn maintain(&self, me: &Member) -> Result<bool, RegistryError> {
        match self
            .registered_here(me)
            .map_err(RegistryError::unreachable)?
        {
            None => self.register(me).map(|()| true),
            Some(s) if self.is_mine(&s, me) => {
                let role = *lock(&self.role);
                // Again at every upkeep: a demotion that failed, or an old leader's agent
                // that wrote its tag back while its check still passes.
                if role.leader {
                    if let Err(e) = self.demote_predecessors(role.term) {
                        log::debug!("cannot take the leader tag off an earlier coordinator: {e}");
                    }
                }
                if !Self::shows(&s, role) {
                    self.register(me)?;
                    log::info!(
                        "Consul showed this node with another role: registered again as {} \
                         (term {})",
                        role.tag(),
                        role.term
                    );
                }
                Ok(false)
            }
            // Another instance under our ID: a namesake's, or one an earlier run of this node
            // left (same address, it is not answering for us).
            Some(s) => match self.member_of(&s, "") {
                Some(m) if m.address() == me.address() => self.register(me).map(|()| true),
                _ => Err(RegistryError::name_taken(format!(
                    "service ID {} on this agent belongs to another node ({}); node names must \
                     be unique within a cluster",
                    self.service_id(me),
                    shown(s.to_string().as_bytes())
                ))),
            },
        }
    }

    /// Registers the instance again with the new tag and term when the agent has it; when
    /// it does not (not registered yet, or the agent restarted), the next registration
    /// carries them.
    fn set_role(&self, me: &Member, role: Role) -> Result<(), String> {
        {
            let mut current = lock(&self.role);
            if *current == role {
                return Ok(());
            }
            *current = role;
        }
        // Untagging the old leader first: a client may find no leader for a moment, never two.
        if role.leader {
            if let Err(e) = self.demote_predecessors(role.term) {
                log::warn!("cannot take the leader tag off an earlier coordinator: {e}");
            }
        }
        match self.registered_here(me)? {
            Some(s) if self.is_mine(&s, me) && !Self::shows(&s, role) => {
                self.register(me).map_err(|e| e.message)
            }
            _ => Ok(()),
        }
    }

    fn publishes_role(&self) -> bool {
        true
    }

    fn describe(&self) -> String {
        format!("consul {} (service '{}')", self.opts.address, self.cluster)
    }

    /// The TLS files again: connections opened from now on use them, the lock's included
    /// (its clients share the configuration through the options).
    fn reload(&self) -> Result<Option<String>, String> {
        super::tls_files::reload_said(self.opts.tls.as_ref(), "consul")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> ConsulRegistry {
        let opts = ConsulOptions {
            address: "http://127.0.0.1:1".into(),
            tls: None,
            token: None,
            check_interval: Duration::from_secs(10),
            deregister_after: Duration::from_secs(60),
            lock: false,
            lock_delay: Duration::ZERO,
        };
        ConsulRegistry::new(opts, "alpha", Duration::from_secs(1))
    }

    fn instance(name: &str, id: &str, address: &str, port: Value) -> Value {
        json!({"Service": "alpha", "Address": address, "Port": port,
               "Meta": {"node_name": name, "node_id": id}})
    }

    #[test]
    fn instances_become_members_and_odd_ones_are_skipped() {
        let r = registry();
        let m = r.member_of(&instance("node1", "7", "10.0.0.2", json!(5001)), "");
        assert_eq!(
            m,
            Some(Member {
                name: "node1".into(),
                id: 7,
                host: "10.0.0.2".into(),
                port: 5001,
                witness: false,
            })
        );
        let m = r.member_of(&instance("node1", "7", "", json!(5001)), "10.0.0.9");
        assert_eq!(m.map(|m| m.host), Some("10.0.0.9".into()));
        for bad in [
            instance("node1", "x", "h", json!(1)),
            instance("node1", "-1", "h", json!(1)),
            instance("a/b", "1", "h", json!(1)),
            instance("node1", "1", "h", json!(0)),
            instance("node1", "1", "h", json!(70000)),
            instance("node1", "1", "h", json!("5001")),
            instance("node1", "1", "bad host!", json!(1)),
            instance("node1", "1", "", json!(1)),
            json!({"Service": "beta", "Address": "h", "Port": 1,
                   "Meta": {"node_name": "n", "node_id": "1"}}),
            json!("not an object"),
            json!({"Meta": 3}),
        ] {
            assert_eq!(r.member_of(&bad, ""), None, "{bad}");
        }
    }

    #[test]
    fn shown_bodies_are_short_single_lines() {
        assert_eq!(shown(b""), "(empty body)");
        assert_eq!(shown(b"rpc error\nmore"), "rpc error more");
        let long = "x".repeat(1000);
        assert_eq!(shown(long.as_bytes()).len(), SHOWN_BODY + 3);
        assert_eq!(shown(&[0xff, b'a']), "\u{fffd}a");
    }

    #[test]
    fn durations_are_go_durations() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10000ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1500ms");
    }

    #[test]
    fn an_instance_shows_its_role_in_its_tag_and_meta() {
        let me = Member {
            name: "node4".into(),
            id: 4,
            host: "h".into(),
            port: 1,
            witness: false,
        };
        let leader = Role::leader(7);
        assert_eq!(
            meta(&me, "t1", leader),
            json!({"node_name": "node4", "node_id": "4", "instance": "t1", "term": "7"})
        );
        assert_eq!(
            meta(&me, "t1", Role::follower()),
            json!({"node_name": "node4", "node_id": "4", "instance": "t1"})
        );
        let s = json!({"Tags": ["leader"], "Meta": meta(&me, "t1", leader)});
        assert!(ConsulRegistry::shows(&s, leader));
        assert!(!ConsulRegistry::shows(&s, Role::follower()));
        assert!(!ConsulRegistry::shows(&s, Role::leader(8)));
        assert!(!ConsulRegistry::shows(&json!({"Tags": null}), leader));
        let f = json!({"Tags": ["follower"], "Meta": meta(&me, "t1", Role::follower())});
        assert!(ConsulRegistry::shows(&f, Role::follower()));
        assert_eq!(Role::follower().tag(), "follower");
    }
}

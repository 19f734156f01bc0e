//! The HTTP client nodes use to reach each other: short, bounded, no pooled connections.

use crate::auth::{ClusterKey, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::election::Member;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::time::Duration;

/// Largest answer body read from a peer; anything bigger is not a bully node.
const MAX_ANSWER: u64 = 64 * 1024;

/// A ureq agent tuned for many small calls to peers that may be dead, frozen or hostile.
#[derive(Clone)]
pub struct PeerClient {
    agent: ureq::Agent,
    /// Signs every POST when the cluster has a key.
    key: Option<ClusterKey>,
}

/// A ureq agent for short calls to a server that may be dead, frozen or hostile (peers, and
/// the Consul agent). Every phase has its own timeout (a frozen server still accepts TCP, so
/// only the response timeout catches it); `response` may be longer, for held requests.
/// `timeout_global` is avoided: it spawns a resolver thread per call. No idle connections are
/// kept: each would pin a handler thread on a peer.
pub fn agent(timeout: Duration, response: Duration) -> ureq::Agent {
    let t = Some(timeout);
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(t)
        .timeout_send_request(t)
        .timeout_send_body(t)
        .timeout_recv_response(Some(response))
        .timeout_recv_body(t)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .input_buffer_size(16 * 1024)
        .output_buffer_size(16 * 1024)
        .max_redirects(0)
        .user_agent(concat!("bully/", env!("CARGO_PKG_VERSION")))
        .build()
        .new_agent()
}

impl PeerClient {
    pub fn new(timeout: Duration) -> Self {
        Self::with_response_timeout(timeout, timeout)
    }

    /// Like [`PeerClient::new`], but waits up to `response` for the answer: for held
    /// requests such as `/watch`.
    pub fn with_response_timeout(timeout: Duration, response: Duration) -> Self {
        PeerClient {
            agent: agent(timeout, response),
            key: None,
        }
    }

    /// Signs every POST with `key` (see [`crate::auth`]).
    pub fn signing(mut self, key: Option<ClusterKey>) -> Self {
        self.key = key;
        self
    }

    pub fn url(address: &str, path: &str) -> String {
        format!("http://{address}{path}")
    }

    /// `POST` a JSON body, signed when there is a key; returns the status and the parsed
    /// answer (if it was JSON).
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        body: &B,
    ) -> Result<(u16, Option<T>), String> {
        let body = serde_json::to_vec(body).map_err(|e| e.to_string())?;
        let mut rq = self
            .agent
            .post(Self::url(address, path))
            .header("Connection", "close")
            .header("Content-Type", "application/json");
        if let Some(key) = &self.key {
            let (timestamp, signature) = key.sign("POST", path, &body);
            rq = rq
                .header(TIMESTAMP_HEADER, timestamp)
                .header(SIGNATURE_HEADER, signature);
        }
        let resp = rq.send(&body[..]).map_err(|e| e.to_string())?;
        Ok(Self::read(resp))
    }

    /// `GET` a path; returns the status and the parsed answer (if it was JSON).
    pub fn get<T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
    ) -> Result<(u16, Option<T>), String> {
        let resp = self
            .agent
            .get(Self::url(address, path))
            .header("Connection", "close")
            .call()
            .map_err(|e| e.to_string())?;
        Ok(Self::read(resp))
    }

    fn read<T: DeserializeOwned>(mut resp: ureq::http::Response<ureq::Body>) -> (u16, Option<T>) {
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_json::<T>()
            .ok();
        (status, body)
    }

    /// Is the node at `member` alive? (`GET /` answers 200.)
    pub fn is_alive(&self, member: &Member) -> bool {
        matches!(
            self.get::<serde_json::Value>(&member.address(), "/"),
            Ok((200, _))
        )
    }

    /// Runs `f` on every item in parallel (one scoped thread each) and collects the results in
    /// order: with per-call timeouts, a round takes one timeout however many peers are dead.
    pub fn fan_out<I: Sync, R: Send>(items: &[I], f: impl Fn(&I) -> R + Sync) -> Vec<R> {
        std::thread::scope(|s| {
            let handles: Vec<_> = items.iter().map(|i| s.spawn(|| f(i))).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("peer call panicked"))
                .collect()
        })
    }
}

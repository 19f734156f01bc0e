//! The HTTP client nodes use to reach each other: short, bounded, no pooled connections. It
//! reports what happened, typed, and leaves judging it to the caller.

use super::auth::{Keys, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::limits::MAX_ANSWER;
use crate::core::event::Unreachable;
use crate::sync::assert_no_state_lock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fmt;
use std::io::ErrorKind;
use std::time::Duration;

/// A call that got no HTTP answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerError {
    pub kind: Unreachable,
    /// What the client said, for logs.
    pub detail: String,
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl From<ureq::Error> for PeerError {
    fn from(e: ureq::Error) -> Self {
        let kind = match &e {
            ureq::Error::Timeout(_) => Unreachable::Timeout,
            ureq::Error::Io(io) => match io.kind() {
                ErrorKind::TimedOut | ErrorKind::WouldBlock => Unreachable::Timeout,
                ErrorKind::ConnectionRefused => Unreachable::Refused,
                ErrorKind::ConnectionReset
                | ErrorKind::ConnectionAborted
                | ErrorKind::UnexpectedEof
                | ErrorKind::BrokenPipe => Unreachable::Closed,
                _ => Unreachable::Other,
            },
            ureq::Error::ConnectionFailed => Unreachable::Refused,
            _ => Unreachable::Other,
        };
        PeerError {
            kind,
            detail: e.to_string(),
        }
    }
}

/// A status and the answer's body parsed as `T` (`None` when it was not that JSON).
pub type Reply<T> = Result<(u16, Option<T>), PeerError>;

/// A ureq agent tuned for many small calls to peers that may be dead, frozen or hostile.
#[derive(Clone)]
pub struct PeerClient {
    agent: ureq::Agent,
    /// Signs every POST when the cluster has a key (the one in force at each call).
    key: Option<Keys>,
}

/// A ureq agent for short calls to a server that may be dead, frozen or hostile (peers, and
/// the Consul agent). Every phase has its own timeout (a frozen server still accepts TCP, so
/// only the response timeout catches it); `response` may be longer, for held requests.
/// `timeout_global` is avoided: it spawns a resolver thread per call. No idle connections are
/// kept: each would pin a handler thread on a peer.
pub fn agent(timeout: Duration, response: Duration) -> ureq::Agent {
    agent_config(timeout, response).new_agent()
}

/// The configuration of [`agent`], for an agent built with a TLS connector.
pub fn agent_config(timeout: Duration, response: Duration) -> ureq::config::Config {
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
}

/// `https` when the node speaks TLS, else `http`.
pub fn scheme() -> &'static str {
    #[cfg(feature = "tls")]
    if crate::tls::node::active().is_some() {
        return "https";
    }
    "http"
}

/// [`agent`], or with the node's TLS when it has it. Each call opens its own connection, TLS
/// or not (see [`agent`]); TLS 1.3 session resumption keeps the repeated handshakes to one
/// key exchange, without certificates.
fn peer_agent(timeout: Duration, response: Duration) -> ureq::Agent {
    #[cfg(feature = "tls")]
    if let Some(tls) = crate::tls::node::active() {
        let connector = crate::tls::client::TlsConnector {
            source: tls.client.clone(),
            server_name: None,
        };
        return crate::tls::client::agent(agent_config(timeout, response), connector);
    }
    agent(timeout, response)
}

impl PeerClient {
    pub fn new(timeout: Duration) -> Self {
        Self::with_response_timeout(timeout, timeout)
    }

    /// Like [`PeerClient::new`], but waits up to `response` for the answer: for held
    /// requests such as `/watch`.
    /// With `--tls-*` the agent speaks TLS (the node's identity, the cluster's CA) and
    /// [`PeerClient::url`] says `https`.
    pub fn with_response_timeout(timeout: Duration, response: Duration) -> Self {
        PeerClient {
            agent: peer_agent(timeout, response),
            key: None,
        }
    }

    /// Signs every POST with `key` (see [`super::auth`]).
    pub fn signing(mut self, key: Option<Keys>) -> Self {
        self.key = key;
        self
    }

    pub fn url(address: &str, path: &str) -> String {
        format!("{}://{address}{path}", scheme())
    }

    /// `POST` a JSON body, signed when there is a key.
    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        address: &str,
        path: &str,
        body: &B,
    ) -> Reply<T> {
        assert_no_state_lock("a peer call");
        let body = serde_json::to_vec(body).map_err(|e| PeerError {
            kind: Unreachable::Other,
            detail: e.to_string(),
        })?;
        let mut rq = self
            .agent
            .post(Self::url(address, path))
            .header("Connection", "close")
            .header("Content-Type", "application/json");
        if let Some(keys) = &self.key {
            let (timestamp, signature) = keys.current().sign("POST", path, &body);
            rq = rq
                .header(TIMESTAMP_HEADER, timestamp)
                .header(SIGNATURE_HEADER, signature);
        }
        let resp = rq.send(&body[..])?;
        Ok(Self::read(resp))
    }

    /// `GET` a path.
    pub fn get<T: DeserializeOwned>(&self, address: &str, path: &str) -> Reply<T> {
        assert_no_state_lock("a peer call");
        let resp = self
            .agent
            .get(Self::url(address, path))
            .header("Connection", "close")
            .call()?;
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

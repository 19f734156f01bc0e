//! The HTTP side of a node: a tiny_http loop that hands each request to a std thread, and the
//! guards the crate leaves to us (read timeouts, the body limit, a cap on handlers; the head
//! limit and the connection cap are handed to the crate from `limits`).
//! A request is checked and parsed here, at the door, into a typed [`Call`]; what it means
//! for the election is the [`Service`]'s business.

use super::auth::{Refusal, Verifier, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::limits::{BACKLOG, IO_TIMEOUT, MAX_BODY, MAX_CONNECTIONS, MAX_HANDLERS, MAX_HEAD};
use super::routes::{Method, Route};
use crate::core::event::Event;
use crate::core::rules::{valid_name, valid_term, MAX_TERM, NAME_RULE};
use crate::core::wire::{Announcement, ElectionMessage, Maintenance, StepDown};
use crate::sync::spawn_named;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tiny_http::{Header, Request, Response, Server, ServerConfig};
use tiny_http_fork as tiny_http;

/// A request that passed every check at the door.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Health,
    NodeDetails,
    Metrics,
    /// `GET /watch?hold_ms=N`: `hold` is what the follower asked for, if it said.
    Watch {
        hold: Option<Duration>,
    },
    /// A peer's message (`/proxy`, `/response`, `/announce`, `/release`, `/takeover`) or an
    /// operator's request (`/stepDown`, `/maintenance`), checked and already in the core's
    /// words: the event to step.
    Step(Event),
}

/// What to send back.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    Json {
        status: u16,
        body: Value,
    },
    /// Prometheus text.
    Metrics(String),
}

impl Answer {
    pub fn ok(body: Value) -> Answer {
        Answer::Json { status: 200, body }
    }

    /// An error: a 4xx or 5xx status and a body with at least an `error` field.
    pub fn error(status: u16, msg: impl Into<String>) -> Answer {
        Answer::Json {
            status,
            body: json!({ "error": msg.into() }),
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            Answer::Json { status, .. } => *status,
            Answer::Metrics(_) => 200,
        }
    }
}

/// What the node behind the server provides.
/// A connection taken over after `101 Switching Protocols`.
pub trait UpgradedIo: Read + std::io::Write + Send {}
impl<T: Read + std::io::Write + Send> UpgradedIo for T {}

/// Names the coordinator on the `101` of a beat stream (`NAME ID`): the follower knows whose
/// beats it hears, as a health check knows whose `/nodeDetails` it read.
pub const NODE_HEADER: &str = "Bully-Node";

pub trait Service: Send + Sync + 'static {
    /// Answers a checked request. May block (a held watch); each call has its own thread.
    fn answer(&self, call: Call) -> Answer;
    /// `GET /watch` asking for a beat stream: `Ok` with this node's `NAME ID` to switch
    /// protocols (sent as [`NODE_HEADER`]), else the answer to send instead (409 on a node
    /// that is not the coordinator, 503 at the cap).
    fn accept_stream(&self) -> Result<String, Answer>;
    /// Takes over the switched connection (its socket is `fd`), beating every `every`.
    fn take_stream(&self, io: Box<dyn UpgradedIo>, fd: RawFd, every: Duration);
    /// Checks signatures when the cluster has a key.
    fn verifier(&self) -> Option<&Verifier>;
    /// Counts an answered request for the metrics.
    fn answered(&self, route: Route, status: u16);
}

/// Binds the node's port. Socket timeouts set on the listening socket are inherited by every
/// accepted connection, which is how idle or stalled clients get dropped: tiny_http has no
/// read timeout of its own.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let listener = TcpListener::bind(addr)?;
    let socket = TcpStream::from(OwnedFd::from(listener));
    socket.set_read_timeout(Some(IO_TIMEOUT))?;
    socket.set_write_timeout(Some(IO_TIMEOUT))?;
    // SAFETY: listen(2) again on a listening socket we own only changes its backlog (capped
    // by net.core.somaxconn).
    if unsafe { libc::listen(socket.as_raw_fd(), BACKLOG) } != 0 {
        log::warn!(
            "cannot raise the listen backlog: {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(TcpListener::from(OwnedFd::from(socket)))
}

/// Serves forever, one std thread per request.
pub fn serve(listener: TcpListener, service: Arc<dyn Service>) {
    let server = match start(listener) {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start the HTTP server: {e}");
            std::process::exit(1);
        }
    };
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        match server.recv() {
            Ok(Ok(rq)) => dispatch(&service, &live, rq),
            // A client that sent garbage, stalled or left: tiny_http answered it already.
            Ok(Err(_)) => {}
            Err(e) => {
                log::error!("HTTP server: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// The vendored server on `listener`, with the connection cap and head limit of `limits`.
fn start(listener: TcpListener) -> Result<Server, String> {
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let config = ServerConfig::new_http(addr).map_err(|e| e.to_string())?;
    // No idle pool threads: an idle node should cost next to nothing. The head limit is
    // enforced while the head is read, so no header check is needed past this point.
    let config = config
        .set_min_threads(0)
        .set_max_threads(MAX_CONNECTIONS)
        .set_max_head_bytes(MAX_HEAD);
    // With --tls-*: HTTPS only, every client presenting a certificate from the cluster CA.
    #[cfg(feature = "tls")]
    let config = match crate::tls::node::active() {
        Some(tls) => config.set_stream_wrapper(crate::tls::server::wrapper(tls.server.clone())),
        None => config,
    };
    Server::from_listener(listener, addr.into(), config).map_err(|e| e.to_string())
}

/// Hands the request to its own thread, unless too many are running already. Held watches
/// have a cap of their own (the service's) so they never crowd out elections.
fn dispatch(service: &Arc<dyn Service>, live: &Arc<AtomicUsize>, rq: Request) {
    let (route, _) = Route::parse(rq.url());
    if route == Route::Watch && *rq.method() == tiny_http::Method::Get {
        let service = Arc::clone(service);
        let stream = rq
            .headers()
            .get("Upgrade")
            .is_some_and(|v| v.as_str().eq_ignore_ascii_case(super::stream::PROTOCOL));
        let spawned = if stream {
            spawn_named("watch", move || open_stream(&*service, rq))
        } else {
            spawn_named("watch", move || handle(&*service, route, rq))
        };
        if let Err(e) = spawned {
            log::error!("cannot start a watch thread: {e}");
        }
        return;
    }
    if live.fetch_add(1, Ordering::AcqRel) >= MAX_HANDLERS {
        live.fetch_sub(1, Ordering::AcqRel);
        let answer = Answer::error(503, "too many requests in flight; retry shortly");
        service.answered(route, answer.status());
        respond(rq, answer);
        return;
    }
    let service = Arc::clone(service);
    let guard = InFlight(Arc::clone(live));
    let spawned = spawn_named("http", move || {
        // Dropped also when the handler panics: a panicking request must not use up a slot
        // for good (after MAX_HANDLERS of them the node would answer only 503).
        let _guard = guard;
        handle(&*service, route, rq);
    });
    // On failure the closure, and with it the guard, is dropped: the slot comes back.
    if let Err(e) = spawned {
        log::error!("cannot start a request thread: {e}");
    }
}

/// One request thread counted in the `live` total until dropped.
struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn handle(service: &dyn Service, route: Route, mut rq: Request) {
    let answer = match check(service, route, &mut rq) {
        Ok(call) => service.answer(call),
        Err(refusal) => {
            if let Answer::Json { status, body } = &refusal {
                log::debug!(
                    "{} {} -> {status}: {}",
                    rq.method(),
                    rq.url(),
                    body["error"]
                );
            }
            refusal
        }
    };
    service.answered(route, answer.status());
    respond(rq, answer);
}

/// `GET /watch` with `Upgrade: bully-beat`: switch protocols and hand the connection to the
/// node's beat hub, or answer as a plain request would be.
fn open_stream(service: &dyn Service, rq: Request) {
    let (_, query) = Route::parse(rq.url());
    let every = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("beat_ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(Duration::from_millis(250), Duration::from_millis);
    let node = match service.accept_stream() {
        Ok(node) => node,
        Err(answer) => {
            service.answered(Route::Watch, answer.status());
            return respond(rq, answer);
        }
    };
    let fd = rq.socket_fd();
    let mut switch = Response::empty(101).with_header(header("Connection", "Upgrade"));
    if let Ok(h) = Header::from_bytes(NODE_HEADER.as_bytes(), node.as_bytes()) {
        switch.add_header(h);
    }
    match rq.upgrade(super::stream::PROTOCOL, switch) {
        Ok(io) => {
            service.answered(Route::Watch, 101);
            service.take_stream(Box::new(io), fd, every);
        }
        Err(e) => log::debug!("could not switch a watch to a beat stream: {e}"),
    }
}

/// Everything a request must pass before the node sees it: a known route and its method,
/// then for POSTs the body limit, the signature and the JSON shape. (The head limit is the
/// server's: [`start`].)
fn check(service: &dyn Service, route: Route, rq: &mut Request) -> Result<Call, Answer> {
    let path = route.path();
    let method = match rq.method() {
        tiny_http::Method::Get => Some(Method::Get),
        tiny_http::Method::Post => Some(Method::Post),
        _ => None,
    };
    match (route.method(), method) {
        (None, _) => {
            let path = rq.url().split('?').next().unwrap_or("");
            return Err(Answer::error(404, format!("no route {path}")));
        }
        (Some(wanted), got) if got != Some(wanted) => {
            let takes = if wanted == Method::Get { "GET" } else { "POST" };
            return Err(Answer::error(
                405,
                format!("{path} takes {takes}, not {}", rq.method()),
            ));
        }
        _ => {}
    }
    let (_, query) = Route::parse(rq.url());
    match route {
        Route::Health => Ok(Call::Health),
        Route::NodeDetails => Ok(Call::NodeDetails),
        Route::Metrics => Ok(Call::Metrics),
        Route::Watch => Ok(Call::Watch {
            hold: hold_from(query),
        }),
        Route::Proxy | Route::Response => {
            let msg: ElectionMessage = read_signed_json(service, rq)?;
            let from = msg.sender();
            check_sender(&from.name, msg.term)?;
            let term = msg.term;
            Ok(Call::Step(if route == Route::Proxy {
                Event::Proxy { from, term }
            } else {
                Event::Response { from, term }
            }))
        }
        Route::Announce | Route::Release | Route::TakeOver => {
            let msg: Announcement = read_signed_json(service, rq)?;
            let from = msg.coordinator();
            check_sender(&from.name, msg.term)?;
            let term = msg.term;
            Ok(Call::Step(match route {
                Route::Announce => Event::Announce { from, term },
                Route::Release => Event::Release { from, term },
                _ => Event::TakeOver { from, term },
            }))
        }
        Route::StepDown | Route::Maintenance => {
            // Without a cluster key only this host may ask; with one, the signature checked
            // while reading the body is what counts.
            let local = rq.remote_addr().is_some_and(|a| a.ip().is_loopback());
            if service.verifier().is_none() && !local {
                return Err(Answer::error(
                    403,
                    format!(
                        "{} is taken from this host only, unless the cluster has a key and the \
                         request is signed with it",
                        route.path()
                    ),
                ));
            }
            if route == Route::StepDown {
                let msg: StepDown = read_signed_json(service, rq)?;
                if msg.to.as_deref().is_some_and(|n| !valid_name(n)) {
                    return Err(Answer::error(
                        400,
                        format!("to: node name must be {NAME_RULE}"),
                    ));
                }
                Ok(Call::Step(Event::StepDown {
                    to: msg.to,
                    listing: None,
                }))
            } else {
                let msg: Maintenance = read_signed_json(service, rq)?;
                Ok(Call::Step(Event::Maintenance { on: msg.on }))
            }
        }
        Route::Unknown => Err(Answer::error(404, "no route")),
    }
}

/// `hold_ms=N` from a watch's query.
fn hold_from(query: &str) -> Option<Duration> {
    query
        .split('&')
        .find_map(|kv| kv.strip_prefix("hold_ms="))
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis)
}

/// Names end up in logs and file names; terms above [`MAX_TERM`] are refused so none can
/// push a node's term to where it would overflow.
fn check_sender(name: &str, term: u64) -> Result<(), Answer> {
    if !valid_name(name) {
        return Err(Answer::error(400, format!("node name must be {NAME_RULE}")));
    }
    if !valid_term(term) {
        return Err(Answer::error(
            400,
            format!("term must be at most {MAX_TERM}"),
        ));
    }
    Ok(())
}

/// Reads the body, checks its signature when the cluster has a key (401 otherwise, before
/// the body is even parsed), then parses it as `T`.
fn read_signed_json<T: DeserializeOwned>(
    service: &dyn Service,
    rq: &mut Request,
) -> Result<T, Answer> {
    let body = read_body(rq)?;
    if let Some(verifier) = service.verifier() {
        let header = |name: &str| rq.headers().get(name).map(|v| v.as_str());
        let checked = verifier.verify(
            rq.method().as_str(),
            rq.url(),
            header(TIMESTAMP_HEADER),
            header(SIGNATURE_HEADER),
            &body,
        );
        if let Err(why) = checked {
            let from = rq
                .remote_addr()
                .map_or_else(|| "unknown".to_string(), |a| a.to_string());
            verifier.log_refusal(&format!("{} {}", rq.method(), rq.url()), &from, &why);
            let status = if why == Refusal::Busy { 503 } else { 401 };
            return Err(Answer::error(status, why.to_string()));
        }
    }
    serde_json::from_slice(&body).map_err(|e| Answer::error(400, format!("invalid JSON body: {e}")))
}

/// Reads at most [`MAX_BODY`] bytes, never trusting Content-Length.
fn read_body(rq: &mut Request) -> Result<Vec<u8>, Answer> {
    if rq.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(Answer::error(413, format!("body exceeds {MAX_BODY} bytes")));
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| Answer::error(400, format!("cannot read the body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(Answer::error(413, format!("body exceeds {MAX_BODY} bytes")));
    }
    Ok(body)
}

fn header(k: &'static str, v: &'static str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header is valid")
}

/// Every answer closes the connection: one request per connection keeps a kept-alive client
/// from pinning a thread between requests.
fn respond(rq: Request, answer: Answer) {
    let resp = match answer {
        Answer::Json { status, body } => Response::from_string(body.to_string())
            .with_status_code(status)
            .with_header(header("Content-Type", "application/json")),
        Answer::Metrics(text) => Response::from_string(text)
            .with_header(header("Content-Type", "text/plain; version=0.0.4")),
    };
    if let Err(e) = rq.respond(resp.with_header(header("Connection", "close"))) {
        log::debug!("could not send the answer: {e}");
    }
}

//! The HTTP side of a node: a tiny_http loop that hands each request to a std thread, and the
//! guards the crate leaves to us (read timeouts, body and header limits, a cap on handlers).

use crate::auth::{Refusal, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::config::valid_name;
use crate::election::{AnnounceReply, ProxyReply, MAX_TERM};
use crate::messages::{Announcement, ElectionMessage, ProxyAnswer};
use crate::node::Node;
use crate::watch;
use serde::de::DeserializeOwned;
use serde_json::{json, Value};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tiny_http::{Header, Method, Request, Response, Server, ServerConfig};
use tiny_http_fork as tiny_http;

/// Largest request body accepted; election messages are tens of bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Largest total size of the request headers.
pub const MAX_HEADERS: usize = 16 * 1024;
/// Most requests handled at once; beyond it the loop answers 503 at once.
pub const MAX_HANDLERS: usize = 64;
/// Most connections read at once, one tiny_http thread each; beyond it the accept thread
/// answers 503 and closes. Without it every connection, idle ones too, cost a thread.
pub const MAX_CONNECTIONS: usize = 256;
/// A client that sends nothing for this long loses its connection (and its thread).
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections the kernel queues before tiny_http accepts them. std listens with 128, fewer
/// than a failover of a large cluster sends the new coordinator at once; the kernel dropped
/// the rest, their retry came after 1 s, and the senders had timed out and taken a live
/// coordinator for dead, which fed the storm with more elections.
const BACKLOG: i32 = 1024;

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
pub fn serve(listener: TcpListener, node: Arc<Node>) {
    let addr = listener.local_addr();
    let config = addr
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|a| ServerConfig::new_http(a).map_err(|e| e.to_string()));
    let server = match (addr, config) {
        // No idle pool threads: an idle node should cost next to nothing.
        (Ok(addr), Ok(config)) => Server::from_listener(
            listener,
            addr.into(),
            config.set_min_threads(0).set_max_threads(MAX_CONNECTIONS),
        )
        .map_err(|e| e.to_string()),
        (Err(e), _) => Err(e.to_string()),
        (_, Err(e)) => Err(e),
    };
    let server = match server {
        Ok(s) => s,
        Err(e) => {
            log::error!("cannot start the HTTP server: {e}");
            std::process::exit(1);
        }
    };
    let live = Arc::new(AtomicUsize::new(0));
    loop {
        match server.recv() {
            Ok(Ok(rq)) => dispatch(&node, &live, rq),
            // A client that sent garbage, stalled or left: tiny_http answered it already.
            Ok(Err(_)) => {}
            Err(e) => {
                log::error!("HTTP server: {e}");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

/// Hands the request to its own thread, unless too many are running already. Held watches
/// have a cap of their own ([`watch::MAX_WATCHERS`]) so they never crowd out elections.
fn dispatch(node: &Arc<Node>, live: &Arc<AtomicUsize>, rq: Request) {
    if route_label(rq.url()) == "/watch" && *rq.method() == Method::Get {
        let node = Arc::clone(node);
        let spawned = std::thread::Builder::new()
            .name("watch".into())
            .spawn(move || serve_watch(&node, rq));
        if let Err(e) = spawned {
            log::error!("cannot start a watch thread: {e}");
        }
        return;
    }
    if live.fetch_add(1, Ordering::AcqRel) >= MAX_HANDLERS {
        live.fetch_sub(1, Ordering::AcqRel);
        respond(
            rq,
            503,
            json!({"error": "too many requests in flight; retry shortly"}),
        );
        return;
    }
    let node = Arc::clone(node);
    let guard = Arc::clone(live);
    let spawned = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            handle(&node, rq);
            guard.fetch_sub(1, Ordering::AcqRel);
        });
    if let Err(e) = spawned {
        live.fetch_sub(1, Ordering::AcqRel);
        log::error!("cannot start a request thread: {e}");
    }
}

/// An error answer: status and a JSON body with at least an `error` field.
type Reject = (u16, Value);

fn reject(status: u16, msg: impl Into<String>) -> Reject {
    (status, json!({ "error": msg.into() }))
}

/// A bounded set of route labels for metrics, whatever paths clients send.
fn route_label(url: &str) -> &'static str {
    match url.split('?').next().unwrap_or("") {
        "/" => "/",
        "/nodeDetails" => "/nodeDetails",
        "/proxy" => "/proxy",
        "/response" => "/response",
        "/announce" => "/announce",
        "/metrics" => "/metrics",
        "/watch" => "/watch",
        _ => "other",
    }
}

/// `GET /watch`: held by the coordinator until leadership changes (see `watch`).
fn serve_watch(node: &Node, rq: Request) {
    if let Err((status, body)) = check_headers(&rq) {
        node.metrics.http_request("/watch", status);
        return respond(rq, status, body);
    }
    let (status, body) = match watch::enter(node) {
        Some(_slot) => {
            let query = rq.url().split_once('?').map_or("", |(_, q)| q).to_string();
            watch::serve(node, &query)
        }
        None => (
            503,
            json!({"error": "too many watches; use the health check"}),
        ),
    };
    node.metrics.http_request("/watch", status);
    respond(rq, status, body);
}

fn handle(node: &Arc<Node>, mut rq: Request) {
    let label = route_label(rq.url());
    let headers = check_headers(&rq);
    if label == "/metrics" && *rq.method() == Method::Get && headers.is_ok() {
        let text = node.metrics.render(&node.gauges());
        node.metrics.http_request(label, 200);
        let resp = Response::from_string(text)
            .with_header(header("Content-Type", "text/plain; version=0.0.4"))
            .with_header(header("Connection", "close"));
        if let Err(e) = rq.respond(resp) {
            log::debug!("could not send the answer: {e}");
        }
        return;
    }
    let answer = headers.and_then(|()| route(node, &mut rq));
    let (status, body) = match answer {
        Ok(v) => (200, v),
        Err((status, body)) => {
            log::debug!(
                "{} {} -> {status}: {}",
                rq.method(),
                rq.url(),
                body["error"]
            );
            (status, body)
        }
    };
    node.metrics.http_request(label, status);
    respond(rq, status, body);
}

fn route(node: &Arc<Node>, rq: &mut Request) -> Result<Value, Reject> {
    let path = rq.url().split('?').next().unwrap_or("").to_string();
    let method = rq.method().clone();
    let post = |rq: &mut Request, node: &Arc<Node>| -> Result<Value, Reject> {
        match path.as_str() {
            "/proxy" => {
                let msg: ElectionMessage = read_signed_json(node, rq)?;
                let from = msg.sender();
                check_sender(&from.name, msg.term)?;
                node.metrics.received("proxy");
                let reply = node.step_with(|e| e.on_proxy(&from, msg.term));
                let ok = |coordinator: Option<u64>| ProxyAnswer {
                    response: "OK".into(),
                    coordinator: coordinator.map(|_| node.me.name.clone()),
                    node_id: coordinator.map(|_| node.me.id),
                    term: coordinator,
                };
                match reply {
                    ProxyReply::Ok => to_value(&ok(None)),
                    ProxyReply::Coordinator { term } => to_value(&ok(Some(term))),
                    ProxyReply::NotLower => Err(reject(
                        409,
                        format!(
                            "{from} does not rank below this node; send /proxy only to higher nodes"
                        ),
                    )),
                }
            }
            "/response" => {
                let msg: ElectionMessage = read_signed_json(node, rq)?;
                let from = msg.sender();
                check_sender(&from.name, msg.term)?;
                node.metrics.received("response");
                node.step(|e| e.on_response(&from, msg.term));
                Ok(json!({"Response": "OK"}))
            }
            "/announce" => {
                let msg: Announcement = read_signed_json(node, rq)?;
                let coordinator = msg.coordinator();
                check_sender(&coordinator.name, msg.term)?;
                node.metrics.received("announce");
                let reply = node.step_with(|e| e.on_announce(&coordinator, msg.term));
                match reply {
                    AnnounceReply::Ok => Ok(json!({"Response": "OK"})),
                    AnnounceReply::Stale { term } => Err((
                        409,
                        json!({
                            "error": format!("stale announcement: this node follows term {term}"),
                            "term": term,
                        }),
                    )),
                }
            }
            _ => Err(reject(404, format!("no route {path}"))),
        }
    };
    match (path.as_str(), &method) {
        ("/", Method::Get) => Ok(json!({"status": "ok"})),
        ("/nodeDetails", Method::Get) => {
            serde_json::to_value(node.details()).map_err(|e| reject(500, e.to_string()))
        }
        ("/proxy" | "/response" | "/announce", Method::Post) => post(rq, node),
        ("/" | "/nodeDetails" | "/metrics" | "/watch", _) => {
            Err(reject(405, format!("{path} takes GET, not {method}")))
        }
        ("/proxy" | "/response" | "/announce", _) => {
            Err(reject(405, format!("{path} takes POST, not {method}")))
        }
        _ => Err(reject(404, format!("no route {path}"))),
    }
}

/// tiny_http keeps headers without a size limit and offers no way to list them but `Debug`:
/// measure that (a slight over-count per header) without building the string.
fn header_bytes(rq: &Request) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut c = Count(0);
    let _ = std::fmt::Write::write_fmt(&mut c, format_args!("{:?}", rq.headers()));
    c.0
}

/// 431 when the request headers exceed [`MAX_HEADERS`].
fn check_headers(rq: &Request) -> Result<(), Reject> {
    if header_bytes(rq) > MAX_HEADERS {
        return Err(reject(
            431,
            format!("request headers exceed {MAX_HEADERS} bytes"),
        ));
    }
    Ok(())
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, Reject> {
    serde_json::to_value(v).map_err(|e| reject(500, e.to_string()))
}

/// Names end up in logs and file names; terms above [`MAX_TERM`] are refused so none can
/// push a node's term to where it would overflow.
fn check_sender(name: &str, term: u64) -> Result<(), Reject> {
    if !valid_name(name) {
        return Err(reject(
            400,
            "node name must be 1 to 64 letters, digits, '.', '_' or '-'",
        ));
    }
    if term > MAX_TERM {
        return Err(reject(400, format!("term must be at most {MAX_TERM}")));
    }
    Ok(())
}

/// Reads the body, checks its signature when the cluster has a key (401 otherwise, before
/// the body is even parsed), then parses it as `T`.
fn read_signed_json<T: DeserializeOwned>(node: &Node, rq: &mut Request) -> Result<T, Reject> {
    let body = read_body(rq)?;
    if let Some(verifier) = &node.auth {
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
            return Err(reject(status, why.to_string()));
        }
    }
    serde_json::from_slice(&body).map_err(|e| reject(400, format!("invalid JSON body: {e}")))
}

/// Reads at most [`MAX_BODY`] bytes, never trusting Content-Length.
fn read_body(rq: &mut Request) -> Result<Vec<u8>, Reject> {
    if rq.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(reject(413, format!("body exceeds {MAX_BODY} bytes")));
    }
    let mut body = Vec::new();
    rq.as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
        .map_err(|e| reject(400, format!("cannot read the body: {e}")))?;
    if body.len() > MAX_BODY {
        return Err(reject(413, format!("body exceeds {MAX_BODY} bytes")));
    }
    Ok(body)
}

fn header(k: &'static str, v: &'static str) -> Header {
    Header::from_bytes(k.as_bytes(), v.as_bytes()).expect("static header is valid")
}

/// Every answer is JSON and closes the connection: one request per connection keeps a
/// kept-alive client from pinning a thread between requests.
fn respond(rq: Request, status: u16, body: Value) {
    let resp = Response::from_string(body.to_string())
        .with_status_code(status)
        .with_header(header("Content-Type", "application/json"))
        .with_header(header("Connection", "close"));
    if let Err(e) = rq.respond(resp) {
        log::debug!("could not send the answer: {e}");
    }
}

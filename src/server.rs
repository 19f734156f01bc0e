//! The HTTP side of a node: a tiny_http loop that hands each request to a std thread, and the
//! guards the crate leaves to us (read timeouts, body and header limits, a cap on handlers).

use crate::config::valid_name;
use crate::election::{AnnounceReply, ProxyReply};
use crate::messages::{Announcement, ElectionMessage, ProxyAnswer};
use crate::node::Node;
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
        (Ok(addr), Ok(config)) => {
            Server::from_listener(listener, addr.into(), config.set_min_threads(0))
                .map_err(|e| e.to_string())
        }
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

/// Hands the request to its own thread, unless too many are running already.
fn dispatch(node: &Arc<Node>, live: &Arc<AtomicUsize>, rq: Request) {
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
        _ => "other",
    }
}

fn handle(node: &Arc<Node>, mut rq: Request) {
    let label = route_label(rq.url());
    if label == "/metrics" && *rq.method() == Method::Get {
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
    let (status, body) = match route(node, &mut rq) {
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
    if header_bytes(rq) > MAX_HEADERS {
        return Err(reject(
            431,
            format!("request headers exceed {MAX_HEADERS} bytes"),
        ));
    }
    let path = rq.url().split('?').next().unwrap_or("").to_string();
    let method = rq.method().clone();
    let post = |rq: &mut Request, node: &Arc<Node>| -> Result<Value, Reject> {
        match path.as_str() {
            "/proxy" => {
                let msg: ElectionMessage = read_json(rq)?;
                let from = msg.sender();
                check_name(&from.name)?;
                node.metrics.received("proxy");
                let mut reply = ProxyReply::NotLower;
                node.step(|e| {
                    let (r, actions) = e.on_proxy(&from, msg.term);
                    reply = r;
                    actions
                });
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
                let msg: ElectionMessage = read_json(rq)?;
                let from = msg.sender();
                check_name(&from.name)?;
                node.metrics.received("response");
                node.step(|e| e.on_response(&from, msg.term));
                Ok(json!({"Response": "OK"}))
            }
            "/announce" => {
                let msg: Announcement = read_json(rq)?;
                let coordinator = msg.coordinator();
                check_name(&coordinator.name)?;
                node.metrics.received("announce");
                let mut reply = AnnounceReply::Ok;
                node.step(|e| {
                    let (r, actions) = e.on_announce(&coordinator, msg.term);
                    reply = r;
                    actions
                });
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
        ("/" | "/nodeDetails" | "/metrics", _) => {
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

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, Reject> {
    serde_json::to_value(v).map_err(|e| reject(500, e.to_string()))
}

fn check_name(name: &str) -> Result<(), Reject> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(reject(
            400,
            "node name must be 1 to 64 letters, digits, '.', '_' or '-'",
        ))
    }
}

/// Reads at most [`MAX_BODY`] bytes (never trusting Content-Length) and parses them as `T`.
fn read_json<T: DeserializeOwned>(rq: &mut Request) -> Result<T, Reject> {
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
    serde_json::from_slice(&body).map_err(|e| reject(400, format!("invalid JSON body: {e}")))
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

//! The server side: a rustls `ServerConfig` that demands a client certificate from the cluster
//! CA, and the wrapper the tiny_http fork speaks each accepted connection through (its patch
//! 11). The handshake runs on the connection's own thread at its first read, so a slow or
//! hostile client holds one connection thread for one read timeout, never the accept thread.

use super::client::provider;
use super::pem;
use super::source::Source;
use crate::log_limit::PerSecond;
use rustls::server::WebPkiClientVerifier;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use tiny_http_fork::{StreamWrapper, WrappedStream};

/// Serves the chain in `cert` with `key`, and takes only clients whose certificate chains to
/// the CA bundle in `ca` and is valid now (rustls' WebPKI verifier: signature, validity dates,
/// the client-auth key usage when the certificate states usages).
pub fn config(
    cert: &std::path::Path,
    key: &std::path::Path,
    ca: &std::path::Path,
) -> Result<ServerConfig, String> {
    let roots = Arc::new(pem::roots(ca)?);
    let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| format!("{}: {e}", ca.display()))?;
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(pem::certificates(cert)?, pem::private_key(key)?)
        .map_err(|e| {
            format!(
                "{} and {} do not make a usable identity: {e}",
                cert.display(),
                key.display()
            )
        })?;
    // Stateless tickets: the session (with the client's certificate chain, about 1.5 KiB)
    // travels encrypted inside the ticket instead of waiting in a store on the server. A
    // store keeps up to 256 of them, so every fresh client (a `bully status` from cron, a
    // monitor) left 1.5 KiB behind until the node held some 370 KiB more heap. The ticket
    // key is random, in memory only, rotated every 6 h (a ticket lives at most 12 h), and a
    // reload makes a new one, so no session outlives the configuration that verified it.
    config.ticketer = rustls::crypto::ring::Ticketer::new().map_err(|e| format!("TLS: {e}"))?;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    // One ticket per connection, not rustls' two: every peer call is a connection of its
    // own that uses up one ticket, so one new ticket keeps the client resuming.
    config.send_tls13_tickets = 1;
    Ok(config)
}

/// The fork's wrapper: each accepted socket speaks TLS with the configuration in force when
/// it was accepted.
pub fn wrapper(source: Source<ServerConfig>) -> StreamWrapper {
    Arc::new(move |tcp: TcpStream| {
        let peer = tcp.peer_addr().ok();
        let conn = ServerConnection::new(source.current()).map_err(std::io::Error::other)?;
        Ok(Box::new(ServerStream {
            tls: StreamOwned::new(conn, tcp),
            peer,
            failed: false,
        }) as Box<dyn WrappedStream>)
    })
}

/// One accepted TLS connection.
struct ServerStream {
    tls: StreamOwned<ServerConnection, TcpStream>,
    peer: Option<SocketAddr>,
    /// The handshake failed: logged already (the reads after it fail the same way), and
    /// nothing more is written (tiny_http's own error answer would wait on the handshake).
    failed: bool,
}

impl ServerStream {
    /// A failure before the handshake completed is a refused client: logged (rate-limited)
    /// when TLS itself refused it, quietly when the client just left or stalled.
    fn noted(&mut self, e: std::io::Error) -> std::io::Error {
        if self.tls.conn.is_handshaking() && !self.failed {
            self.failed = true;
            let from = self
                .peer
                .map_or_else(|| "unknown".to_string(), |a| a.to_string());
            if e.kind() == ErrorKind::InvalidData {
                warn_refused(&from, &e);
            } else {
                log::debug!("TLS handshake with {from} did not complete: {e}");
            }
        }
        e
    }
}

impl Read for ServerStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.tls.read(buf).map_err(|e| self.noted(e))
    }
}

impl Write for ServerStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(refused());
        }
        self.tls.write(buf).map_err(|e| self.noted(e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if self.failed {
            return Err(refused());
        }
        self.tls.flush()
    }
}

fn refused() -> std::io::Error {
    std::io::Error::new(ErrorKind::BrokenPipe, "the TLS handshake failed")
}

impl WrappedStream for ServerStream {
    /// Ends the TLS session cleanly, so the client can tell an answer's end from a cut.
    fn shutdown_write(&mut self) {
        self.tls.conn.send_close_notify();
        while self.tls.conn.wants_write() {
            if self.tls.conn.write_tls(&mut self.tls.sock).is_err() {
                break;
            }
        }
    }
}

/// Refused handshakes are warnings, but a flood of them must not flood the log: at most five
/// a second, then one line counting the rest.
static REFUSALS: PerSecond = PerSecond::new(5);

fn warn_refused(from: &str, why: &std::io::Error) {
    let admit = REFUSALS.admit();
    if admit.left_out > 0 {
        log::warn!(
            "{} more TLS handshakes refused in the last second",
            admit.left_out
        );
    }
    if admit.show {
        log::warn!("TLS handshake from {from} refused: {why}");
    }
}

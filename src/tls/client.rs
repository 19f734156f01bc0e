//! The client side: a rustls `ClientConfig` from PEM files, and a ureq connector that speaks
//! TLS with it. ureq's own TLS features stay off: its connector builds the configuration
//! once per agent from its own settings, so neither a reload (SIGHUP) nor a server-name
//! override could reach it. Here the configuration is read at each new connection from a
//! [`Source`], which a reload swaps.

use super::pem;
pub use super::source::Source;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, LazyBuffers, NextTimeout, TcpConnector,
    Transport, TransportAdapter,
};

/// The crypto provider: ring, the one built in. rustls 0.23.48 deprecates it only because it
/// lacks post-quantum key exchange (aws-lc-rs has it, at about 1 MiB and a cmake build, too
/// much for the boards); classical ECDHE is what every peer here speaks.
///
/// X25519 comes first: ring's default order starts with P-384, whose key exchange ring does
/// in generic big-number code, about 20 times slower than X25519. Every connection (resumed
/// ones too: TLS 1.3 resumption still exchanges keys) paid it on both sides, which was most
/// of an idle TLS node's CPU (tests/bench/README.md "TLS cost"). P-256 and P-384 stay
/// offered, for a Consul or etcd that wants them. AES-128-GCM with SHA-256 comes first too
/// (ring's default puts AES-256 with SHA-384 first): each connection's key schedule is a
/// dozen HMACs, cheaper on SHA-256, 10 % of the idle TLS CPU; 128-bit strength is what
/// X25519 and P-256 give anyway, and AES-256 stays offered.
#[allow(deprecated)]
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    use rustls::crypto::ring::kx_group::{SECP256R1, SECP384R1, X25519};
    Arc::new(rustls::crypto::CryptoProvider {
        kx_groups: vec![X25519, SECP256R1, SECP384R1],
        cipher_suites: vec![
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
            rustls::crypto::ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            rustls::crypto::ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    })
}

/// A client configuration trusting only the CA bundle in `ca` (no system roots: a cluster,
/// a Consul or an etcd has its own CA, and the public roots would let anyone with a public
/// certificate for the address in), presenting the certificate chain and key in
/// `identity` (cert file, key file) when given. TLS 1.3 only (rustls is built without
/// `tls12`, which the boards' size budgets favour; Consul and etcd speak 1.3).
pub fn config(ca: &Path, identity: Option<(&Path, &Path)>) -> Result<ClientConfig, String> {
    let roots = pem::roots(ca)?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    match identity {
        None => Ok(builder.with_no_client_auth()),
        Some((cert, key)) => builder
            .with_client_auth_cert(pem::certificates(cert)?, pem::private_key(key)?)
            .map_err(|e| {
                format!(
                    "{} and {} do not make a usable identity: {e}",
                    cert.display(),
                    key.display()
                )
            }),
    }
}

/// Wraps ureq's TCP transport in TLS for `https` URLs (others pass through). The server's
/// certificate is checked against `server_name` when set (Consul's `CONSUL_TLS_SERVER_NAME`),
/// else against the URL's host: a DNS name or an IP address, which the certificate must
/// carry as a subject alternative name.
#[derive(Debug)]
pub struct TlsConnector {
    pub source: Source<ClientConfig>,
    pub server_name: Option<ServerName<'static>>,
}

/// A ureq agent with `config` (see [`crate::http::peer::agent_config`]) speaking TLS through
/// `connector`.
pub fn agent(config: ureq::config::Config, connector: TlsConnector) -> ureq::Agent {
    ureq::Agent::with_parts(
        config,
        TcpConnector::default().chain(connector),
        ureq::unversioned::resolver::DefaultResolver::default(),
    )
}

/// The server name to check: the override, else the host of `authority` (brackets of an IPv6
/// address removed).
pub fn name_for(
    host: &str,
    fixed: Option<&ServerName<'static>>,
) -> Result<ServerName<'static>, String> {
    if let Some(name) = fixed {
        return Ok(name.clone());
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(bare.to_string())
        .map_err(|e| format!("TLS: {bare:?} is no valid server name: {e}"))
}

fn tls_error(detail: String) -> ureq::Error {
    ureq::Error::Io(std::io::Error::other(detail))
}

impl<In: Transport> Connector<In> for TlsConnector {
    type Out = Either<In, TlsTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        let Some(transport) = chained else {
            return Ok(None);
        };
        if !details.needs_tls() || transport.is_tls() {
            return Ok(Some(Either::A(transport)));
        }
        let host = details.uri.host().unwrap_or_default();
        let name = name_for(host, self.server_name.as_ref()).map_err(tls_error)?;
        let mut conn = ClientConnection::new(self.source.current(), name)
            .map_err(|e| tls_error(format!("TLS: {e}")))?;
        let mut sock = TransportAdapter::new(transport.boxed(), details.current_time.clone());
        sock.set_timeout(details.timeout);
        if let Err(e) = conn.complete_io(&mut sock) {
            return Err(alert_instead_of(&mut conn, &mut sock, e).into());
        }
        Ok(Some(Either::B(TlsTransport {
            buffers: LazyBuffers::new(
                details.config.input_buffer_size(),
                details.config.output_buffer_size(),
            ),
            stream: StreamOwned::new(conn, sock),
        })))
    }
}

/// A TLS connection under ureq (the pattern of ureq's own rustls transport).
pub struct TlsTransport {
    buffers: LazyBuffers,
    stream: StreamOwned<ClientConnection, TransportAdapter>,
}

impl std::fmt::Debug for TlsTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TlsTransport")
    }
}

/// A write the server cut off (a broken pipe, a reset): the alert it sent before closing,
/// if one is still to be read, says why (a TLS 1.3 server judges the client's certificate
/// after the client's last handshake message, so a refused one shows only here). Read
/// straight from the socket: the stream's own read would first retry the failed write.
fn alert_instead_of(
    conn: &mut ClientConnection,
    sock: &mut impl Read,
    e: std::io::Error,
) -> std::io::Error {
    use std::io::ErrorKind::{BrokenPipe, ConnectionReset};
    if !matches!(e.kind(), BrokenPipe | ConnectionReset) {
        return e; // a timeout: reading would only wait again
    }
    for _ in 0..4 {
        match conn.read_tls(sock) {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if let Err(alert) = conn.process_new_packets() {
                    return std::io::Error::new(std::io::ErrorKind::InvalidData, alert);
                }
            }
        }
    }
    e
}

impl Transport for TlsTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let output = &self.buffers.output()[..amount];
        if let Err(e) = self.stream.write_all(output) {
            let (conn, sock) = (&mut self.stream.conn, &mut self.stream.sock);
            return Err(alert_instead_of(conn, sock, e).into());
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        self.stream.get_mut().set_timeout(timeout);
        let input = self.buffers.input_append_buf();
        // A read first finishes the last write (rustls's stream reports a failed write only
        // at the next call): the same cut-off write as in `transmit_output`.
        let amount = match self.stream.read(input) {
            Ok(n) => n,
            Err(e) => {
                let (conn, sock) = (&mut self.stream.conn, &mut self.stream.sock);
                return Err(alert_instead_of(conn, sock, e).into());
            }
        };
        self.buffers.input_appended(amount);
        Ok(amount > 0)
    }

    fn is_open(&mut self) -> bool {
        self.stream.get_mut().get_mut().is_open()
    }

    fn is_tls(&self) -> bool {
        true
    }
}

/// A blocking TLS client stream on `socket` for a caller outside ureq (the follower's beat
/// stream): the handshake is completed here, within the socket's timeouts.
pub fn wrap(
    source: &Source<ClientConfig>,
    host: &str,
    socket: std::net::TcpStream,
) -> Result<StreamOwned<ClientConnection, std::net::TcpStream>, std::io::Error> {
    let name = name_for(host, None).map_err(std::io::Error::other)?;
    let conn = ClientConnection::new(source.current(), name).map_err(std::io::Error::other)?;
    let mut stream = StreamOwned::new(conn, socket);
    stream.conn.complete_io(&mut stream.sock)?;
    Ok(stream)
}

//! Mutual TLS for the tests: certificates made at test time with the `openssl` command (a CA,
//! node certificates, expired and not-yet-valid ones, another CA), and the harness's own TLS
//! client, which `raw` (and so `get_json`, `NodeProc::details`) uses once [`use_client`] set it.

use bully::tls::client;
use rustls::{ClientConfig, StreamOwned};
use std::cell::RefCell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

/// A certificate authority in a directory of its own, issuing with `openssl ca` (which, unlike
/// `openssl x509` before OpenSSL 3.4, can set any validity window).
pub struct Pki {
    pub dir: PathBuf,
    pub name: String,
}

/// A certificate and its key.
#[derive(Clone, Debug)]
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Identity {
    /// `--tls-cert CERT --tls-key KEY --tls-ca CA` for a node.
    pub fn flags(&self, ca: &Path) -> Vec<String> {
        [
            "--tls-cert",
            &self.cert.display().to_string(),
            "--tls-key",
            &self.key.display().to_string(),
            "--tls-ca",
            &ca.display().to_string(),
        ]
        .map(String::from)
        .to_vec()
    }
}

/// Runs openssl, panicking with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("openssl (the tests make their certificates with it): {e}"));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    /// A new CA named `name` under `parent/name`: an EC P-256 key, valid for 30 days.
    pub fn new(parent: &Path, name: &str) -> Pki {
        let dir = parent.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("index.txt"), "").unwrap();
        std::fs::write(dir.join("serial"), "1000\n").unwrap();
        std::fs::write(
            dir.join("ca.cnf"),
            "[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nnew_certs_dir = .\n\
             serial = serial\ndefault_md = sha256\npolicy = any\ncopy_extensions = none\n\
             unique_subject = no\n[any]\ncommonName = supplied\n",
        )
        .unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "30",
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        Pki {
            dir,
            name: name.into(),
        }
    }

    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `name` (subject alternative names: DNS `name`, `localhost`, IP
    /// 127.0.0.1; usable as server and client), valid from `start` to `end`
    /// (`YYYYMMDDHHMMSSZ`), by default from an hour ago for 30 days. `file` names its files.
    pub fn issue(&self, file: &str, name: &str, window: Option<(&str, &str)>) -> Identity {
        self.issue_with(file, name, window, &[])
    }

    /// Like [`Pki::issue`] with the default window, and `ips` as IP names too: a node on a
    /// host of its own advertises that host's address, which its peers check.
    pub fn issue_for(&self, file: &str, name: &str, ips: &[std::net::IpAddr]) -> Identity {
        self.issue_with(file, name, None, ips)
    }

    fn issue_with(
        &self,
        file: &str,
        name: &str,
        window: Option<(&str, &str)>,
        ips: &[std::net::IpAddr],
    ) -> Identity {
        let key = format!("{file}.key");
        let csr = format!("{file}.csr");
        let ext = format!("{file}.ext");
        let cert = format!("{file}.pem");
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        );
        std::fs::write(
            self.dir.join(&ext),
            format!(
                "subjectAltName = DNS:{name}, DNS:localhost, IP:127.0.0.1{}\n\
                 extendedKeyUsage = serverAuth, clientAuth\n",
                ips.iter()
                    .map(|ip| format!(", IP:{ip}"))
                    .collect::<String>()
            ),
        )
        .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let (start, end) = match window {
            Some((s, e)) => (s.to_string(), e.to_string()),
            None => (stamp(now - 3600), stamp(now + 30 * 86400)),
        };
        openssl(
            &self.dir,
            &[
                "ca",
                "-batch",
                "-config",
                "ca.cnf",
                "-cert",
                "ca.pem",
                "-keyfile",
                "ca.key",
                "-in",
                &csr,
                "-out",
                &cert,
                "-extfile",
                &ext,
                "-notext",
                "-startdate",
                &start,
                "-enddate",
                &end,
            ],
        );
        Identity {
            cert: self.dir.join(cert),
            key: self.dir.join(key),
        }
    }
}

/// `YYYYMMDDHHMMSSZ` for seconds since 1970 (UTC), as `openssl ca` takes it.
pub fn stamp(secs: u64) -> String {
    let rem = secs % 86400;
    let (y, m, d) = bully::cli::status::civil_date((secs / 86400) as i64);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A client configuration trusting `ca`, presenting `identity` if any.
pub fn client_config(ca: &Path, identity: Option<&Identity>) -> Arc<ClientConfig> {
    let id = identity.map(|i| (i.cert.as_path(), i.key.as_path()));
    Arc::new(client::config(ca, id).unwrap())
}

thread_local! {
    static CLIENT: RefCell<Option<Arc<ClientConfig>>> = const { RefCell::new(None) };
}

/// From now on the harness speaks TLS with `config` on this thread (each test has its own
/// thread, and its own CA).
pub fn use_client(config: Option<Arc<ClientConfig>>) {
    CLIENT.with(|c| *c.borrow_mut() = config);
}

pub fn harness_client() -> Option<Arc<ClientConfig>> {
    CLIENT.with(|c| c.borrow().clone())
}

/// Like `support::raw`, over TLS with `config`: status 0 when no answer came (a refused
/// handshake included).
pub fn raw(port: u16, request: &[u8], config: &Arc<ClientConfig>) -> (u16, String) {
    let Ok(s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, "connect failed".into());
    };
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let name = "127.0.0.1".parse().unwrap();
    raw_on(s, name, request, config, Duration::from_secs(5))
}

/// `request` over TLS on the connected `stream` to the server at `server` (the address its
/// certificate must name): status 0 when no answer came within `within`.
pub fn raw_on(
    stream: TcpStream,
    server: std::net::IpAddr,
    request: &[u8],
    config: &Arc<ClientConfig>,
    within: Duration,
) -> (u16, String) {
    let conn = rustls::ClientConnection::new(Arc::clone(config), server.into()).unwrap();
    let mut tls = StreamOwned::new(conn, stream);
    if tls.write_all(request).and_then(|()| tls.flush()).is_err() {
        return (0, "handshake or write failed".into());
    }
    // Until the node closes, or `within` at most: a beat stream never ends by itself.
    let end = std::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while std::time::Instant::now() < end {
        match tls.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    super::parse_response(&buf)
}

//! TLS to Consul and etcd: the files given (the CA, a client certificate and key, a server
//! name) and the client configuration built from them. One [`RegistryTls`] is cloned into
//! every client of a registry (the registry, its lock, `bully status`), and the clones share
//! one configuration, so SIGHUP's [`RegistryTls::reload`] reaches them all.

use std::path::PathBuf;
use std::time::Duration;

/// Whether this build speaks TLS (feature `tls`).
pub const BUILT_IN: bool = cfg!(feature = "tls");

/// Which setting a load failed on, so the flag layer can name its flag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    Ca,
    Cert,
    Key,
    /// The certificate and key together (a key that does not match).
    Pair,
    ServerName,
}

/// The files, and (with TLS built in) the configuration every clone reads at each new
/// connection.
#[derive(Clone, Debug)]
pub struct RegistryTls {
    /// The CA bundle the server's certificate must chain to: only it is trusted.
    pub ca: PathBuf,
    /// The client certificate (chain) and its key, for servers that verify clients.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// The name the server's certificate must carry, instead of the URL's host.
    pub server_name: Option<String>,
    #[cfg(feature = "tls")]
    source: crate::tls::client::Source<rustls::ClientConfig>,
}

/// Equal when made from the same settings (the loaded configuration is theirs).
impl PartialEq for RegistryTls {
    fn eq(&self, other: &Self) -> bool {
        (&self.ca, &self.identity, &self.server_name)
            == (&other.ca, &other.identity, &other.server_name)
    }
}

impl Eq for RegistryTls {}

impl RegistryTls {
    /// Reads and checks every file now, so a bad one stops the node at start.
    pub fn load(
        ca: PathBuf,
        identity: Option<(PathBuf, PathBuf)>,
        server_name: Option<String>,
    ) -> Result<Self, (Part, String)> {
        #[cfg(feature = "tls")]
        {
            if let Some(name) = &server_name {
                rustls::pki_types::ServerName::try_from(name.clone())
                    .map_err(|e| (Part::ServerName, format!("{name:?}: {e}")))?;
            }
            let config = build(&ca, identity.as_ref())?;
            Ok(RegistryTls {
                ca,
                identity,
                server_name,
                source: crate::tls::client::Source::new(config),
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (ca, identity, server_name);
            Err((Part::Ca, NOT_BUILT_IN.into()))
        }
    }

    /// SIGHUP: reads the files again; connections opened from now on use them. An error
    /// keeps the configuration in force.
    pub fn reload(&self) -> Result<(), (Part, String)> {
        #[cfg(feature = "tls")]
        self.source
            .replace(build(&self.ca, self.identity.as_ref())?);
        Ok(())
    }

    /// The files as one word without spaces or commas, for a line to the supervisor
    /// (`supervisor::orphaned`): `tls:CA:CERT:KEY`, each path in hex (a path may hold any
    /// byte but NUL), CERT and KEY empty without a client certificate. The server name is
    /// left out: only etcd's lease revoke goes this way, and etcd takes none.
    pub fn field(&self) -> String {
        let (cert, key) = match &self.identity {
            Some((c, k)) => (hex(c), hex(k)),
            None => (String::new(), String::new()),
        };
        format!("tls:{}:{cert}:{key}", hex(&self.ca))
    }

    /// The files of [`RegistryTls::field`] loaded again; `None` when `word` is not one or a
    /// file no longer loads.
    pub fn from_field(word: &str) -> Option<Self> {
        let mut parts = word.strip_prefix("tls:")?.split(':');
        let (ca, cert, key) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let identity = match (cert, key) {
            ("", "") => None,
            (c, k) => Some((unhex(c)?, unhex(k)?)),
        };
        Self::load(unhex(ca)?, identity, None).ok()
    }

    /// What the files are, for a log line.
    pub fn describe(&self) -> String {
        match &self.identity {
            Some((cert, _)) => format!(
                "TLS (CA {}, client certificate {})",
                self.ca.display(),
                cert.display()
            ),
            None => format!("TLS (CA {})", self.ca.display()),
        }
    }
}

fn hex(path: &std::path::Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    path.as_os_str()
        .as_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn unhex(s: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    if s.is_empty() || s.len() % 2 != 0 {
        return None;
    }
    let bytes = (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(&bytes)))
}

/// Why a build without TLS refuses the settings that need it.
pub const NOT_BUILT_IN: &str =
    "this build has no TLS (built without the cargo feature `tls`); use plain http";

/// The configuration, each file checked on its own first so the error names the right one.
#[cfg(feature = "tls")]
fn build(
    ca: &std::path::Path,
    identity: Option<&(PathBuf, PathBuf)>,
) -> Result<rustls::ClientConfig, (Part, String)> {
    use crate::tls::{client, pem};
    pem::roots(ca).map_err(|e| (Part::Ca, e))?;
    if let Some((cert, key)) = identity {
        pem::certificates(cert).map_err(|e| (Part::Cert, e))?;
        pem::private_key(key).map_err(|e| (Part::Key, e))?;
    }
    let identity = identity.map(|(c, k)| (c.as_path(), k.as_path()));
    client::config(ca, identity).map_err(|e| (Part::Pair, e))
}

/// A ureq agent for a registry (see [`crate::http::peer::agent`]), speaking TLS with `tls`
/// to `https` URLs when given.
pub fn agent(tls: Option<&RegistryTls>, timeout: Duration, response: Duration) -> ureq::Agent {
    #[cfg(feature = "tls")]
    if let Some(t) = tls {
        let server_name = t
            .server_name
            .as_ref()
            .and_then(|n| rustls::pki_types::ServerName::try_from(n.clone()).ok());
        return crate::tls::client::agent(
            crate::http::peer::agent_config(timeout, response),
            crate::tls::client::TlsConnector {
                source: t.source.clone(),
                server_name,
            },
        );
    }
    let _ = tls;
    crate::http::peer::agent(timeout, response)
}

/// SIGHUP for a registry (`Registry::reload`) reached over TLS with `tls`: reads its files
/// again; what to log, or why the files in force stay.
pub fn reload_said(tls: Option<&RegistryTls>, what: &str) -> Result<Option<String>, String> {
    let Some(t) = tls else {
        return Ok(None);
    };
    t.reload()
        .map(|()| Some(format!("{what} TLS files read again")))
        .map_err(|(_, e)| format!("{what} TLS: {e}"))
}

/// Whether `url` needs TLS.
pub fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

#[cfg(all(test, feature = "tls"))]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_with_its_part() {
        let e = RegistryTls::load("/nonexistent/ca.pem".into(), None, None).unwrap_err();
        assert_eq!(e.0, Part::Ca);
        assert!(e.1.contains("/nonexistent/ca.pem"), "{e:?}");
        let e = RegistryTls::load("/x".into(), None, Some("bad name!".into())).unwrap_err();
        assert_eq!(e.0, Part::ServerName);
    }

    #[test]
    fn paths_go_through_a_field_whole() {
        let p = PathBuf::from("/a dir,x/ca:1.pem");
        assert_eq!(unhex(&hex(&p)), Some(p));
        assert_eq!(unhex("zz"), None);
        assert!(RegistryTls::from_field("tls:00").is_none());
        assert!(RegistryTls::from_field("nope").is_none());
    }

    #[test]
    fn https_is_seen_in_any_case() {
        assert!(is_https("https://h:1") && is_https("HTTPS://h:1"));
        assert!(!is_https("http://h:1") && !is_https("h:1"));
    }
}

//! The node's own TLS (`--tls-cert`, `--tls-key`, `--tls-ca`): one identity at a time per
//! process, used by its server, its peer calls, its beat streams, and by `bully status` and
//! the control commands. Installed at start; SIGHUP reads the files again ([`NodeTls::reload`]).

use super::source::Source;
use super::{client, server};
use crate::sync::lock;
use rustls::{ClientConfig, ServerConfig};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

/// The three files, as given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub ca: PathBuf,
}

/// The configurations in force, swapped by a reload.
pub struct NodeTls {
    files: Mutex<Files>,
    pub client: Source<ClientConfig>,
    pub server: Source<ServerConfig>,
    /// The files' contents last read, to tell a rotation from a reload that changed nothing.
    read: Mutex<Vec<u8>>,
}

static ACTIVE: OnceLock<NodeTls> = OnceLock::new();
/// Whether [`ACTIVE`] is in use: `bully status` over several instances sets it aside for one
/// without TLS.
static IN_USE: AtomicBool = AtomicBool::new(false);

/// The node's TLS, when it was started with it.
pub fn active() -> Option<&'static NodeTls> {
    ACTIVE.get().filter(|_| IN_USE.load(Ordering::SeqCst))
}

/// Loads the files and makes them this process's TLS. An error names the file. A second
/// install (`bully status` over several instances, each with its own files) replaces the
/// configurations of the first.
pub fn install(files: Files) -> Result<&'static NodeTls, String> {
    let (client, server) = configs(&files)?;
    let read = contents(&files);
    let mut fresh = Some((client, server, files.clone(), read.clone()));
    let tls = ACTIVE.get_or_init(|| {
        let (client, server, files, read) = fresh.take().expect("initialised once");
        NodeTls {
            files: Mutex::new(files),
            client: Source::new(client),
            server: Source::new(server),
            read: Mutex::new(read),
        }
    });
    if let Some((client, server, files, read)) = fresh {
        tls.client.replace(client);
        tls.server.replace(server);
        *lock(&tls.files) = files;
        *lock(&tls.read) = read;
    }
    IN_USE.store(true, Ordering::SeqCst);
    Ok(tls)
}

/// Stops using the installed TLS: the next calls are plain HTTP (`bully status` on an
/// instance without `--tls-*` after one with).
pub fn set_aside() {
    IN_USE.store(false, Ordering::SeqCst);
}

fn configs(files: &Files) -> Result<(ClientConfig, ServerConfig), String> {
    let client = client::config(&files.ca, Some((&files.cert, &files.key)))?;
    let server = server::config(&files.cert, &files.key, &files.ca)?;
    Ok((client, server))
}

fn contents(files: &Files) -> Vec<u8> {
    [&files.cert, &files.key, &files.ca]
        .iter()
        .flat_map(|p| std::fs::read(p).unwrap_or_default())
        .collect()
}

impl NodeTls {
    /// Reads the certificate, key and CA again: new connections use them, open ones (a held
    /// watch) keep theirs. When anything fails the configuration in force stays.
    pub fn reload(&self) -> Result<String, String> {
        let files = lock(&self.files).clone();
        let now = contents(&files);
        let (client, server) = configs(&files)?;
        let mut read = lock(&self.read);
        if *read == now {
            return Ok("TLS certificate, key and CA unchanged".into());
        }
        self.client.replace(client);
        self.server.replace(server);
        *read = now;
        Ok("TLS certificate, key and CA replaced (new connections use them)".into())
    }
}

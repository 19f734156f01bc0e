//! The node's own TLS (`--tls-cert`, `--tls-key`, `--tls-ca`): one identity per process, used
//! by its server, its peer calls, its beat streams, and by `bully status` and the control
//! commands. Installed once at start; SIGHUP reads the files again ([`NodeTls::reload`]).

use super::source::Source;
use super::{client, server};
use rustls::{ClientConfig, ServerConfig};
use std::path::PathBuf;
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
    files: Files,
    pub client: Source<ClientConfig>,
    pub server: Source<ServerConfig>,
    /// The files' contents last read, to tell a rotation from a reload that changed nothing.
    read: Mutex<Vec<u8>>,
}

static ACTIVE: OnceLock<NodeTls> = OnceLock::new();

/// The node's TLS, when it was started with it.
pub fn active() -> Option<&'static NodeTls> {
    ACTIVE.get()
}

/// Loads the files and makes them this process's TLS. An error names the file.
pub fn install(files: Files) -> Result<&'static NodeTls, String> {
    let (client, server) = configs(&files)?;
    let read = contents(&files);
    let tls = NodeTls {
        files,
        client: Source::new(client),
        server: Source::new(server),
        read: Mutex::new(read),
    };
    // A second install (in-process tests) keeps the first.
    Ok(ACTIVE.get_or_init(|| tls))
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
        let now = contents(&self.files);
        let (client, server) = configs(&self.files)?;
        let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
        if *read == now {
            return Ok("TLS certificate, key and CA unchanged".into());
        }
        self.client.replace(client);
        self.server.replace(server);
        *read = now;
        Ok("TLS certificate, key and CA replaced (new connections use them)".into())
    }
}

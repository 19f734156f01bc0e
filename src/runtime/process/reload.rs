//! SIGHUP: read again what was given as a file (`--cluster-key-file`, `--tls-*`, the TLS
//! files of Consul or etcd, `--peers-file`), log what changed, and keep running. What cannot
//! be read again stays as it was.

use crate::http::auth::{ClusterKey, Keys, ROTATION_GRACE};
use crate::runtime::membership::directory::Directory;
use std::path::PathBuf;
use std::sync::Arc;

/// What SIGHUP reads again.
pub struct Reload {
    /// `--cluster-key-file`, and the keys it feeds.
    pub key_file: Option<(PathBuf, Keys)>,
    pub directory: Arc<Directory>,
    /// `--tls-*`: the certificate, key and CA are read again.
    pub tls: bool,
}

impl Reload {
    /// Reads everything again and logs one line saying what changed (errors get their own).
    pub fn run(&self) {
        let mut said = Vec::new();
        if let Some((path, keys)) = &self.key_file {
            match ClusterKey::from_file(path).map(|key| keys.replace(key)) {
                Ok(true) => said.push(format!(
                    "cluster key replaced (the previous one is still accepted for {} s)",
                    ROTATION_GRACE.as_secs()
                )),
                Ok(false) => said.push("cluster key unchanged".to_string()),
                Err(e) => log::error!("SIGHUP: --cluster-key-file {e}; keeping the key in force"),
            }
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = crate::tls::node::active().filter(|_| self.tls) {
            match tls.reload() {
                Ok(change) => said.push(change),
                Err(e) => log::error!("SIGHUP: --tls-* {e}; keeping the TLS files in force"),
            }
        }
        let registry = self.directory.registry();
        match registry.reload() {
            Ok(Some(change)) => said.push(change),
            Ok(None) => {}
            Err(e) => log::error!("SIGHUP: {e}; {} keeps what it had", registry.describe()),
        }
        if said.is_empty() {
            log::info!(
                "SIGHUP: nothing to read again (only --cluster-key-file, --tls-*, the \
                 registry's TLS files and --peers-file are); still running"
            );
        } else {
            log::info!("SIGHUP: {}; still running", said.join("; "));
        }
    }
}

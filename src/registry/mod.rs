//! Where nodes find each other. One small trait, several back ends; the node never cares which.

mod consul;
pub mod consul_options;
mod dir;
mod static_peers;

pub use consul::ConsulRegistry;
pub use consul_options::ConsulOptions;
pub use dir::DirRegistry;
pub use static_peers::{read_peers_file, StaticRegistry};

use crate::core::member::Member;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryKind {
    Dir,
    Consul,
    Static,
}

/// Where members are found; shared by the node and `bully status`.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    pub kind: RegistryKind,
    pub cluster: String,
    pub dir: PathBuf,
    pub peers: Vec<String>,
    /// `--peers-file`: where `peers` came from, read again on SIGHUP.
    pub peers_file: Option<PathBuf>,
    pub consul: ConsulOptions,
    /// Per-request timeout for registries that ask over the network.
    pub timeout: Duration,
}

/// A service registry for one cluster.
pub trait Registry: Send + Sync {
    /// Make this node known. Called once at start; may be called again to re-register.
    fn register(&self, me: &Member) -> Result<(), String>;
    /// Forget this node (clean shutdown).
    fn deregister(&self, me: &Member) -> Result<(), String>;
    /// Every member the registry knows now, this node included where it registered.
    fn members(&self) -> Result<Vec<Member>, String>;
    /// Called every health interval once registered, never under the state lock: puts the
    /// registration back when the registry lost it (a restarted Consul dev agent forgets every
    /// service). `Ok(true)` when it had to.
    fn maintain(&self, _me: &Member) -> Result<bool, String> {
        Ok(false)
    }
    /// Short human name for logs.
    fn describe(&self) -> String;
    /// Whether reading the members costs next to nothing (a directory whose listing is
    /// cached until it changes), so a lookup may always read afresh.
    fn cheap_reads(&self) -> bool {
        false
    }
    /// SIGHUP: reads again what this registry was configured from, if it can; says what
    /// changed (`None`: nothing to read again). An error leaves everything as it was.
    fn reload(&self) -> Result<Option<String>, String> {
        Ok(None)
    }
}

/// Builds the registry the options ask for.
pub fn open(opts: &RegistryOptions) -> Result<Box<dyn Registry>, String> {
    match opts.kind {
        RegistryKind::Dir => Ok(Box::new(DirRegistry::new(&opts.dir, &opts.cluster))),
        RegistryKind::Static => Ok(Box::new(StaticRegistry::new(
            opts.peers.clone(),
            opts.peers_file.clone(),
            &opts.cluster,
            opts.timeout,
        ))),
        RegistryKind::Consul => Ok(Box::new(ConsulRegistry::new(
            opts.consul.clone(),
            &opts.cluster,
            opts.timeout,
        ))),
    }
}

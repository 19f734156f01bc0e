//! Where nodes find each other. One small trait, several back ends; the node never cares which.

mod consul;
pub mod consul_lock;
pub mod consul_options;
mod dir;
mod peer_answers;
mod static_peers;

pub use consul::ConsulRegistry;
pub use consul_lock::ConsulLock;
pub use consul_options::ConsulOptions;
pub use dir::DirRegistry;
pub use static_peers::StaticRegistry;

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
    pub consul: ConsulOptions,
    /// Per-request timeout for registries that ask over the network.
    pub timeout: Duration,
}

/// This node's part in the election as a registry shows it to the world (Consul: the tag
/// `leader` or `follower` of its instance, and for the leader the Meta `term`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Role {
    /// It is the coordinator.
    pub leader: bool,
    /// The term it became coordinator in (its hooks' `BULLY_TERM`); 0 for a follower.
    pub term: u64,
}

impl Role {
    pub fn follower() -> Role {
        Role::default()
    }

    pub fn leader(term: u64) -> Role {
        Role { leader: true, term }
    }

    pub fn tag(self) -> &'static str {
        if self.leader {
            "leader"
        } else {
            "follower"
        }
    }
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
    /// Shows `role` from now on, in this write and every later one; never called under the
    /// state lock. Only called when [`Registry::publishes_role`] says so.
    fn set_role(&self, _me: &Member, _role: Role) -> Result<(), String> {
        Ok(())
    }
    /// Whether the registry shows each node's role (so a thread follows the changes).
    fn publishes_role(&self) -> bool {
        false
    }
    /// Short human name for logs.
    fn describe(&self) -> String;
    /// Whether reading the members costs next to nothing (a directory whose listing is
    /// cached until it changes), so a lookup may always read afresh.
    fn cheap_reads(&self) -> bool {
        false
    }
}

/// Builds the registry the options ask for.
pub fn open(opts: &RegistryOptions) -> Result<Box<dyn Registry>, String> {
    match opts.kind {
        RegistryKind::Dir => Ok(Box::new(DirRegistry::new(&opts.dir, &opts.cluster))),
        RegistryKind::Static => Ok(Box::new(StaticRegistry::new(
            opts.peers.clone(),
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

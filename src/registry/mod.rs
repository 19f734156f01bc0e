//! Where nodes find each other. One small trait, several back ends; the node never cares which.

mod base64;
mod consul;
mod consul_entries;
pub mod consul_lock;
pub mod consul_options;
mod dir;
mod etcd;
mod etcd_client;
pub mod etcd_lock;
pub mod etcd_options;
mod peer_answers;
mod process;
mod static_peers;
pub mod tls_files;

pub use consul::ConsulRegistry;
pub use consul_lock::ConsulLock;
pub use consul_options::ConsulOptions;
pub use dir::DirRegistry;
pub use etcd::EtcdRegistry;
pub use etcd_lock::EtcdLock;
pub use etcd_options::EtcdOptions;
pub use static_peers::{read_peers_file, StaticRegistry};

use crate::core::member::Member;
use crate::core::wire::NodeDetails;
use crate::http::peer::PeerClient;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RegistryKind {
    Dir,
    Consul,
    Static,
    Etcd,
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
    pub etcd: EtcdOptions,
    /// Per-request timeout for registries that ask over the network.
    pub timeout: Duration,
}

/// How a registry call failed. The node treats a registry it cannot reach (it may come back,
/// and the others cannot read it either) apart from one that answered no.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer: an agent that is down or not up yet, or one that says it cannot serve now.
    Unreachable,
    /// The registry answered no: a directory that cannot be written (permissions, a full or
    /// read-only disk), an ACL that refuses.
    Refused,
    /// Another live node holds this node's name.
    NameTaken,
}

/// A failed registry call: how, and a message with the path or address and the cause.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegistryError {
    pub failure: Failure,
    pub message: String,
}

impl RegistryError {
    pub fn unreachable(message: impl Into<String>) -> Self {
        Self::new(Failure::Unreachable, message)
    }

    pub fn refused(message: impl Into<String>) -> Self {
        Self::new(Failure::Refused, message)
    }

    pub fn name_taken(message: impl Into<String>) -> Self {
        Self::new(Failure::NameTaken, message)
    }

    fn new(failure: Failure, message: impl Into<String>) -> Self {
        RegistryError {
            failure,
            message: message.into(),
        }
    }
}

impl fmt::Display for RegistryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
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
    /// Make this node known. Called at start, and again after a registration was lost.
    fn register(&self, me: &Member) -> Result<(), RegistryError>;
    /// `Err` ([`Failure::NameTaken`]) when another live node already holds `me`'s name:
    /// checked before every registration, so a second node of one name never overwrites the
    /// first one's record.
    fn check_name(&self, me: &Member) -> Result<(), RegistryError>;
    /// Forget this node (clean shutdown).
    fn deregister(&self, me: &Member) -> Result<(), String>;
    /// Every member the registry knows now, this node included where it registered.
    fn members(&self) -> Result<Vec<Member>, String>;
    /// Called every health interval once registered, never under the state lock: puts the
    /// registration back when the registry lost it (a restarted Consul dev agent forgets every
    /// service). `Ok(true)` when it had to.
    fn maintain(&self, _me: &Member) -> Result<bool, RegistryError> {
        Ok(false)
    }
    /// `bully status --prune`: removes `m`'s record (a member that did not answer) if it is
    /// still the one listed; `Ok(false)` when it was gone or replaced meanwhile.
    fn prune(&self, _m: &Member) -> Result<bool, String> {
        Err("this registry keeps no records to remove".into())
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
    /// SIGHUP: reads again what this registry was configured from, if it can (a peers file,
    /// TLS files); says what changed (`None`: nothing to read again). An error, which starts
    /// with the setting it was about, leaves everything as it was.
    fn reload(&self) -> Result<Option<String>, String> {
        Ok(None)
    }
}

/// A random token for this process, written into its records so that it only ever removes
/// or keeps up its own, never those of another node of the same name. std's randomly keyed
/// hasher avoids a dependency.
pub fn process_token() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    format!("{:016x}", h.finish())
}

/// The name check of a registry that lists its members remotely (Consul, etcd): any member
/// under `me`'s name at another address that answers as a node of that name. Best effort:
/// when the listing cannot be read, registering decides.
pub(crate) fn check_listed_name(
    listed: Result<Vec<Member>, String>,
    me: &Member,
    cluster: &str,
    timeout: Duration,
    describe: &str,
) -> Result<(), RegistryError> {
    let members = match listed {
        Ok(m) => m,
        Err(e) => {
            log::debug!("cannot check whether the name '{}' is free: {e}", me.name);
            return Ok(());
        }
    };
    match live_namesake(&members, me, cluster, timeout) {
        Some(m) => Err(name_taken(me, &m, describe)),
        None => Ok(()),
    }
}

/// A member listed under `me`'s name at another address that answers as a node of that name
/// in `cluster`: another live node holds the name.
pub fn live_namesake(
    members: &[Member],
    me: &Member,
    cluster: &str,
    timeout: Duration,
) -> Option<Member> {
    let client = PeerClient::new(timeout);
    let namesakes: Vec<&Member> = members
        .iter()
        .filter(|m| m.name == me.name && m.address() != me.address())
        .collect();
    let answers = PeerClient::fan_out(&namesakes, |m| {
        match client.get::<NodeDetails>(&m.address(), "/nodeDetails") {
            Ok((200, Some(d))) => d.node_name == me.name && d.cluster == cluster,
            _ => false,
        }
    });
    namesakes
        .into_iter()
        .zip(answers)
        .find_map(|(m, live)| live.then(|| m.clone()))
}

/// The error for a live namesake found at `m`.
pub fn name_taken(me: &Member, m: &Member, registry: &str) -> RegistryError {
    RegistryError::name_taken(format!(
        "node name '{}' is taken: a live node answers as '{}' at {} ({registry}); choose \
         another NAME or stop that node",
        me.name,
        m.name,
        m.address()
    ))
}

/// Builds the registry the options ask for.
pub fn open(opts: &RegistryOptions) -> Result<Box<dyn Registry>, String> {
    match opts.kind {
        RegistryKind::Dir => Ok(Box::new(DirRegistry::new(
            &opts.dir,
            &opts.cluster,
            opts.timeout,
        ))),
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
        RegistryKind::Etcd => Ok(Box::new(EtcdRegistry::new(
            &opts.etcd,
            &opts.cluster,
            opts.timeout,
        ))),
    }
}

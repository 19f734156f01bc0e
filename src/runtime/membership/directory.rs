//! The member directory: the one place that reads the registry and the one `locate`. It keeps
//! the last listing for when the registry cannot be read, and the last address of every member
//! seen, since registries can lose records (a restarted Consul dev agent forgets every
//! service) while the node behind one runs on.

use super::outage::Outage;
use crate::core::member::{Member, NodeRef};
use crate::registry::Registry;
use crate::runtime::metrics::Metrics;
use crate::sync::{assert_no_state_lock, lock};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Most members remembered by address; a hostile registry cannot make the map grow without
/// bound.
const MAX_SEEN: usize = 4096;

pub struct Directory {
    registry: Box<dyn Registry>,
    metrics: Arc<Metrics>,
    /// Failed reads, logged quietly while they go on (a registry that is away).
    outage: Outage,
    /// The last listing the registry gave.
    known: Mutex<Vec<Member>>,
    /// The last record seen of each member, by name.
    seen: Mutex<HashMap<String, Member>>,
    /// Ids that several members use, as last warned about.
    shared_ids: Mutex<Vec<(u64, Vec<String>)>>,
}

impl Directory {
    pub fn new(registry: Box<dyn Registry>, metrics: Arc<Metrics>) -> Self {
        let outage = Outage::new(format!("reading the registry {}", registry.describe()));
        Directory {
            registry,
            metrics,
            outage,
            known: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
            shared_ids: Mutex::new(Vec::new()),
        }
    }

    pub fn registry(&self) -> &dyn Registry {
        self.registry.as_ref()
    }

    /// The registry's members, or the last known ones when it cannot be read.
    pub fn members(&self) -> Vec<Member> {
        assert_no_state_lock("a registry read");
        match self.registry.members() {
            Ok(members) => {
                self.outage.ok();
                let mut seen = lock(&self.seen);
                for m in &members {
                    if seen.len() < MAX_SEEN || seen.contains_key(&m.name) {
                        seen.insert(m.name.clone(), m.clone());
                    }
                }
                drop(seen);
                self.warn_of_shared_ids(&members);
                lock(&self.known).clone_from(&members);
                members
            }
            Err(e) => {
                self.metrics.registry_failed("read");
                self.outage
                    .failed("read", &format!("{e}; using the last known members"));
                lock(&self.known).clone()
            }
        }
    }

    /// Two members with one id rank by name between themselves, which nobody meant: said
    /// once each time the set of shared ids changes, by every member that reads the list.
    fn warn_of_shared_ids(&self, members: &[Member]) {
        let shared = shared_ids(members);
        let mut last = lock(&self.shared_ids);
        if *last == shared {
            return;
        }
        for (id, names) in &shared {
            log::warn!(
                "Id {id} is used by {}: they rank by name between themselves; give each \
                 node its own --id",
                names.join(" and ")
            );
        }
        *last = shared;
    }

    /// How many members the last listing had.
    pub fn count(&self) -> usize {
        lock(&self.known).len()
    }

    /// Where `node` is: in the last listing, else in a fresh one, else where it was last seen.
    /// A registry that is cheap to read is read afresh first: a node restarted on another port
    /// under its old name is then found where it is now, not where it was.
    pub fn locate(&self, node: &NodeRef) -> Option<Member> {
        let find = |ms: &[Member]| ms.iter().find(|m| m.is(node)).cloned();
        if self.registry.cheap_reads() {
            if let Some(m) = find(&self.members()) {
                return Some(m);
            }
        } else if let Some(m) = find(&lock(&self.known)) {
            return Some(m);
        }
        find(&self.members()).or_else(|| {
            lock(&self.seen)
                .get(&node.name)
                .filter(|m| m.is(node))
                .cloned()
        })
    }
}

/// The ids more than one member uses, each with its members' names, in order.
fn shared_ids(members: &[Member]) -> Vec<(u64, Vec<String>)> {
    let mut by_id: std::collections::BTreeMap<u64, Vec<String>> = Default::default();
    for m in members {
        by_id.entry(m.id).or_default().push(m.name.clone());
    }
    by_id
        .into_iter()
        .filter(|(_, names)| names.len() > 1)
        .map(|(id, mut names)| {
            names.sort();
            (id, names)
        })
        .collect()
}

//! The member directory: the one place that reads the registry and the one `locate`. It keeps
//! the last listing for when the registry cannot be read, and the last address of every member
//! seen, since registries can lose records (a restarted Consul dev agent forgets every
//! service) while the node behind one runs on.

use crate::core::member::{Member, NodeRef};
use crate::registry::Registry;
use crate::sync::{assert_no_state_lock, lock};
use std::collections::HashMap;
use std::sync::Mutex;

/// Most members remembered by address; a hostile registry cannot make the map grow without
/// bound.
const MAX_SEEN: usize = 4096;

pub struct Directory {
    registry: Box<dyn Registry>,
    /// The last listing the registry gave.
    known: Mutex<Vec<Member>>,
    /// The last record seen of each member, by name.
    seen: Mutex<HashMap<String, Member>>,
}

impl Directory {
    pub fn new(registry: Box<dyn Registry>) -> Self {
        Directory {
            registry,
            known: Mutex::new(Vec::new()),
            seen: Mutex::new(HashMap::new()),
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
                let mut seen = lock(&self.seen);
                for m in &members {
                    if seen.len() < MAX_SEEN || seen.contains_key(&m.name) {
                        seen.insert(m.name.clone(), m.clone());
                    }
                }
                drop(seen);
                lock(&self.known).clone_from(&members);
                members
            }
            Err(e) => {
                log::warn!(
                    "registry {}: {e}; using the last known members",
                    self.registry.describe()
                );
                lock(&self.known).clone()
            }
        }
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

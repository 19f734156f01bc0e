//! Who takes part in an election and how nodes rank: priority (the id) first, the name breaking
//! ties, so any two distinct nodes are always ordered and agree on that order.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;

/// A node's identity in an election.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NodeRef {
    pub id: u64,
    pub name: String,
}

impl NodeRef {
    pub fn new(name: impl Into<String>, id: u64) -> Self {
        NodeRef {
            id,
            name: name.into(),
        }
    }
}

impl Ord for NodeRef {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.id, &self.name).cmp(&(other.id, &other.name))
    }
}

impl PartialOrd for NodeRef {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for NodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (id {})", self.name, self.id)
    }
}

/// A cluster member as a registry lists it: identity plus where to reach it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub id: u64,
    pub host: String,
    pub port: u16,
    /// A witness (`--witness`) votes in quorum mode but never stands for election, so it is
    /// never among the members an election message goes to.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub witness: bool,
}

impl Member {
    pub fn node_ref(&self) -> NodeRef {
        NodeRef::new(self.name.clone(), self.id)
    }

    /// `host:port`, with IPv6 literals bracketed.
    pub fn address(&self) -> String {
        if self.host.contains(':') && !self.host.starts_with('[') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether this member is `node` (same name and id).
    pub fn is(&self, node: &NodeRef) -> bool {
        self.id == node.id && self.name == node.name
    }
}

/// The members other than `me`, and of those the ones ranking above it. The single place
/// where "others" and "higher" are worked out.
pub fn others<'a>(members: &'a [Member], me: &'a NodeRef) -> impl Iterator<Item = &'a Member> {
    members.iter().filter(move |m| m.name != me.name)
}

/// The others, highest first: the order a coordinator announces itself in. After a crash
/// every survivor waits in rank order before electing (the highest the least), so the ones
/// that wait least must hear of the new coordinator first; told lowest first, the higher half
/// of 128 nodes ran out their waits and elected needlessly.
pub fn others_highest_first(members: &[Member], me: &NodeRef) -> Vec<Member> {
    let mut to: Vec<Member> = others(members, me).cloned().collect();
    to.sort_by_key(|m| std::cmp::Reverse(m.node_ref()));
    to
}

/// The members ranking above `me` that stand for election (witnesses never do).
pub fn higher<'a>(members: &'a [Member], me: &'a NodeRef) -> impl Iterator<Item = &'a Member> {
    others(members, me).filter(move |m| !m.witness && m.node_ref() > *me)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(name: &str, id: u64) -> Member {
        Member {
            name: name.into(),
            id,
            host: "::1".into(),
            port: 1,
            witness: false,
        }
    }

    #[test]
    fn equal_ids_are_ordered_by_name() {
        assert!(NodeRef::new("b", 7) > NodeRef::new("a", 7));
        assert!(NodeRef::new("a", 8) > NodeRef::new("z", 7));
    }

    #[test]
    fn others_and_higher_leave_out_this_node() {
        let ms = [m("a", 1), m("b", 2), m("c", 3)];
        let me = NodeRef::new("b", 2);
        let names = |it: Vec<&Member>| it.iter().map(|m| m.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(others(&ms, &me).collect()), ["a", "c"]);
        assert_eq!(names(higher(&ms, &me).collect()), ["c"]);
        assert_eq!(ms[0].address(), "[::1]:1");
        assert!(ms[2].is(&NodeRef::new("c", 3)) && !ms[2].is(&NodeRef::new("c", 4)));
        let mut w = ms.to_vec();
        w[2].witness = true;
        assert!(higher(&w, &me).next().is_none(), "a witness never stands");
        assert_eq!(others(&w, &me).count(), 2, "but it hears announcements");
    }
}

//! The properties the model checks, each by name, and the history some of them need: which
//! node led in which term, the highest term granted, and what each node followed last.

use std::collections::BTreeMap;

/// (a) Quorum mode: at no real moment do two nodes say `is_coordinator`.
pub const ONE_LEADER_AT_A_TIME: &str = "at_most_one_leader_at_a_time";
/// (a') Quorum mode, the reason (a) holds: while a node acts, a majority (itself included) is
/// bound to it, each other member of it promised to it (or down, or quiet after a restart).
pub const LEADER_HAS_A_BOUND_MAJORITY: &str = "a_leader_acts_only_while_a_majority_is_bound";
/// (b) No term ever has two coordinators.
pub const ONE_COORDINATOR_PER_TERM: &str = "no_two_coordinators_in_one_term";
/// (c) Each term a node starts acting in is above every term granted before (fencing).
pub const GRANTED_TERMS_INCREASE: &str = "terms_granted_to_leaders_strictly_increase";
/// (d) No node follows a coordinator of an older term than one it followed, nor two
/// coordinators in one term.
pub const FOLLOWED_TERMS_NEVER_GO_BACK: &str = "a_node_never_follows_an_older_term";
/// (g) Quorum mode, the leader's work: an `--exec` child runs only while its supervisor's
/// fence (the deadline it got before the child started, and every later one) lies inside
/// promises a majority made: each other member of that majority is bound to the child's node
/// until at least the fence, on real time. So no two children ever run at once.
pub const WORK_IS_FENCED: &str = "a_child_runs_only_inside_a_lease_a_majority_granted";
/// (e) Liveness: after the last fault, the cluster agrees on its highest standing node.
pub const AGREEMENT: &str = "eventually_agreement_on_the_highest_node";

/// Which safety properties a run checks.
#[derive(Clone, Copy, Debug)]
pub struct Props {
    pub one_leader_at_a_time: bool,
    pub bound_majority: bool,
    pub one_coordinator_per_term: bool,
    pub granted_terms_increase: bool,
    pub followed_terms_never_go_back: bool,
    pub work_is_fenced: bool,
}

impl Props {
    pub fn all() -> Props {
        Props {
            one_leader_at_a_time: true,
            bound_majority: true,
            one_coordinator_per_term: true,
            granted_terms_increase: true,
            followed_terms_never_go_back: true,
            work_is_fenced: true,
        }
    }
}

/// A property that failed, and how.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub property: &'static str,
    pub detail: String,
}

/// What happened so far that the properties look back on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct History {
    /// Every term some node acted as coordinator in, and that node.
    pub granted: BTreeMap<u64, usize>,
    /// Per node: the highest term it followed another node in, and that node.
    pub followed: Vec<Option<(u64, usize)>>,
}

impl History {
    pub fn new(nodes: usize) -> History {
        History {
            granted: BTreeMap::new(),
            followed: vec![None; nodes],
        }
    }

    /// Node `node` acts as coordinator in `term`: (b) and (c).
    pub fn acting(
        &mut self,
        props: &Props,
        names: &[String],
        node: usize,
        term: u64,
    ) -> Result<(), Violation> {
        match self.granted.get(&term) {
            Some(&holder) if holder == node => return Ok(()),
            Some(&holder) if props.one_coordinator_per_term => {
                return Err(Violation {
                    property: ONE_COORDINATOR_PER_TERM,
                    detail: format!(
                        "{} acts in term {term}, which {} held",
                        names[node], names[holder]
                    ),
                })
            }
            _ => {}
        }
        let highest = self.granted.keys().next_back().copied();
        self.granted.insert(term, node);
        match highest {
            Some(h) if props.granted_terms_increase && term <= h => Err(Violation {
                property: GRANTED_TERMS_INCREASE,
                detail: format!(
                    "{} starts acting in term {term}, not above term {h} granted before",
                    names[node]
                ),
            }),
            _ => Ok(()),
        }
    }

    /// Node `node` follows `coordinator` in `term`: (d).
    pub fn following(
        &mut self,
        props: &Props,
        names: &[String],
        node: usize,
        coordinator: usize,
        term: u64,
    ) -> Result<(), Violation> {
        let before = self.followed[node];
        self.followed[node] = Some((term, coordinator));
        match before {
            Some((t, c))
                if props.followed_terms_never_go_back
                    && (term < t || (term == t && c != coordinator)) =>
            {
                Err(Violation {
                    property: FOLLOWED_TERMS_NEVER_GO_BACK,
                    detail: format!(
                        "{} follows {} in term {term} after following {} in term {t}",
                        names[node], names[coordinator], names[c]
                    ),
                })
            }
            _ => Ok(()),
        }
    }
}

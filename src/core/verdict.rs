//! What a check, a probe or an answer of another node says, as pure functions: whether a
//! coordinator that was checked lives, rests (it answers as itself but leads no more) or
//! failed, whether a probed node contends for leadership, the terms and leaders the members
//! asked name, and the highest term a refusal names. The identity check (a member counts
//! only when it answers as itself) is made here. The shell only fetches a peer's
//! `/nodeDetails` and hands the body over: how it becomes a check's or a probe's answer is
//! read here too.

use super::event::{AnnounceAnswer, CheckAnswer, ProbeAnswer, Unreachable};
use super::lease::QuorumState;
use super::member::{Member, NodeRef};
use super::rules::MAX_TERM;
use super::wire::NodeDetails;

/// What a check of the coordinator found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// It answers as itself and leads (or, in quorum mode, claims a term), or is too busy to
    /// answer (`503`): the next check decides.
    Alive,
    /// It answers as itself but leads no more: it stepped down or was demoted, and its
    /// successor's announcement is normally on its way.
    Resting,
    /// It does not answer as a leader; `gone` when nothing listens there (the process is
    /// gone, and its child with it).
    Failed { gone: bool },
}

/// The verdict on `coordinator` from `answer`; `quorum`: a claimant counts as leading.
pub fn check(coordinator: &NodeRef, answer: &CheckAnswer, quorum: bool) -> Verdict {
    match answer {
        CheckAnswer::Details {
            name,
            id,
            is_coordinator,
            claiming,
            ..
        } if coordinator.name == *name && coordinator.id == *id => {
            if *is_coordinator || (*claiming && quorum) {
                Verdict::Alive
            } else {
                Verdict::Resting
            }
        }
        CheckAnswer::Busy => Verdict::Alive,
        CheckAnswer::Unreachable(Unreachable::Refused | Unreachable::Closed) => {
            Verdict::Failed { gone: true }
        }
        _ => Verdict::Failed { gone: false },
    }
}

/// `node` answered the probe and would take over from a lower coordinator.
pub fn wants_to_lead(answers: &[(NodeRef, ProbeAnswer)], node: &NodeRef) -> bool {
    answers
        .iter()
        .any(|(n, a)| n == node && matches!(a, ProbeAnswer::Node { preempts: true, .. }))
}

/// `node` still leads in its own eyes, or would take over, or answers 200 without saying.
pub fn contends(answers: &[(NodeRef, ProbeAnswer)], node: &NodeRef) -> bool {
    answers.iter().any(|(n, a)| {
        n == node
            && matches!(
                a,
                ProbeAnswer::Node { preempts: true, .. }
                    | ProbeAnswer::Node { leads: true, .. }
                    | ProbeAnswer::Status(200)
            )
    })
}

/// The details `m` gave, if it answered as itself.
fn own_details(m: &Member, a: &CheckAnswer) -> Option<(bool, Option<NodeRef>, u64)> {
    match a {
        CheckAnswer::Details {
            name,
            id,
            is_coordinator,
            follows,
            term,
            ..
        } if *name == m.name && *id == m.id => Some((*is_coordinator, follows.clone(), *term)),
        _ => None,
    }
}

/// The highest term the members asked follow.
pub fn highest_term(answers: &[(Member, CheckAnswer)]) -> Option<u64> {
    answers
        .iter()
        .filter_map(|(m, a)| own_details(m, a).map(|(_, _, term)| term))
        .max()
}

/// The highest member above `me` that answered that it leads a term at least `newest` (an
/// older one's leader may be cut off from the rest), with its term.
pub fn leader_above(
    answers: &[(Member, CheckAnswer)],
    me: &NodeRef,
    newest: u64,
) -> Option<(NodeRef, u64)> {
    answers
        .iter()
        .filter_map(|(m, a)| match own_details(m, a)? {
            (true, Some(c), term) if m.is(&c) && c > *me && term >= newest => Some((c, term)),
            _ => None,
        })
        .max()
}

/// The coordinator the first member that answers follows (not `me`), with its term.
pub fn followed(answers: &[(Member, CheckAnswer)], me: &NodeRef) -> Option<(NodeRef, u64)> {
    answers.iter().find_map(|(m, a)| match own_details(m, a)? {
        (_, Some(c), term) if c != *me => Some((c, term)),
        _ => None,
    })
}

/// The highest term named by a refusal of an announcement (capped: no input may push the
/// terms to overflow).
pub fn highest_refusal(answers: &[(Member, AnnounceAnswer)]) -> Option<u64> {
    answers
        .iter()
        .filter_map(|(_, a)| match a {
            AnnounceAnswer::Stale { term } => Some(*term),
            _ => None,
        })
        .max()
        .map(|t| t.min(MAX_TERM))
}

impl CheckAnswer {
    /// A coordinator's `/nodeDetails`, read as the health check reads it.
    pub fn from_details(d: NodeDetails) -> CheckAnswer {
        CheckAnswer::Details {
            follows: match (&d.coordinator, d.coordinator_id) {
                (Some(name), Some(id)) => Some(NodeRef::new(name.clone(), id)),
                _ => None,
            },
            preempts: d.preempts,
            claiming: claims(&d),
            name: d.node_name,
            id: d.node_id,
            is_coordinator: d.is_coordinator,
            term: d.term,
        }
    }
}

impl ProbeAnswer {
    /// `asked`'s `/nodeDetails`. An answer in another node's name (an address reused by a
    /// node that restarted under another name or id) says nothing about `asked`: it counts as
    /// any other answer that is not node details, so a probe never takes one node's word for
    /// another's.
    pub fn from_details(asked: &NodeRef, d: &NodeDetails) -> ProbeAnswer {
        if d.node_name != asked.name || d.node_id != asked.id {
            return ProbeAnswer::Status(200);
        }
        ProbeAnswer::Node {
            preempts: d.preempts,
            leads: d.is_coordinator,
        }
    }
}

/// In quorum mode a node that claims a term, with or without its majority yet, asks to be
/// followed as a coordinator does. A state this build does not know claims nothing.
fn claims(d: &NodeDetails) -> bool {
    d.quorum
        .as_ref()
        .and_then(|q| QuorumState::from_label(&q.state))
        .is_some_and(QuorumState::asks_to_be_followed)
}

#[cfg(test)]
#[path = "tests/verdict.rs"]
mod tests;

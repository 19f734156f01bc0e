//! What a check or a probe of another node says about it, as pure functions: whether a
//! coordinator that was checked lives, rests (it answers as itself but leads no more) or
//! failed, and whether a probed node contends for leadership. The identity check (it must
//! answer as the node asked) is made here, once.

use super::event::{CheckAnswer, ProbeAnswer, Unreachable};
use super::member::NodeRef;

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

#[cfg(test)]
#[path = "tests/verdict.rs"]
mod tests;

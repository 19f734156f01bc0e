//! Announcements, a sub-machine of the election: numbers every announcement sent (so its
//! answers find their send time) and, in plain mode, remembers the members that missed this
//! term's announcement and sends it again a few times, each wait longer than the last.

use super::event::{AnnounceAnswer, Unreachable};
use super::member::Member;
use super::quorum::Millis;

/// Plain mode: how often a coordinator announces again to members that were too busy to take
/// its announcement or did not answer in time, and the wait before the first (it grows by as
/// much each time). A follower without a watch has nothing else to learn it from before its
/// next health check.
const REANNOUNCE_TRIES: u32 = 3;
const REANNOUNCE_STEP_MS: Millis = 200;

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Announcements {
    /// The number of the last announcement sent.
    seq: u64,
    /// Members that missed this term's announcement (busy, or no answer in time).
    missed: Vec<Member>,
    /// How often this term's announcement was sent again.
    resent: u32,
}

impl Announcements {
    /// The number of the next announcement.
    pub fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    /// A new term's first announcement: nobody has missed it yet. Returns its number.
    pub fn new_term(&mut self) -> u64 {
        self.missed.clear();
        self.resent = 0;
        self.next_seq()
    }

    /// Answers to this term's announcement: the members that were busy or slow get it again
    /// after the wait returned, unless it was sent again often enough already.
    pub fn missed(&mut self, answers: &[(Member, AnnounceAnswer)]) -> Option<Millis> {
        if self.resent >= REANNOUNCE_TRIES {
            return None;
        }
        let missed: Vec<Member> = answers
            .iter()
            .filter(|(_, a)| {
                matches!(
                    a,
                    AnnounceAnswer::Busy | AnnounceAnswer::Unreachable(Unreachable::Timeout)
                )
            })
            .map(|(m, _)| m.clone())
            .collect();
        if missed.is_empty() {
            return None;
        }
        self.resent += 1;
        self.missed = missed;
        Some(REANNOUNCE_STEP_MS * Millis::from(self.resent))
    }

    /// The members to send the announcement again, once.
    pub fn take_missed(&mut self) -> Vec<Member> {
        std::mem::take(&mut self.missed)
    }
}

#[cfg(test)]
#[path = "tests/announcements.rs"]
mod tests;

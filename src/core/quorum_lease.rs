//! The quorum lease, a sub-machine of the election (quorum mode): the coordinator's side, the
//! term it claims or leads with the acknowledgements that hold it up, and the follower's side,
//! the promise it gave. Its rules: a term bump keeps the lease held until the new term has its
//! own; a lease only ever grows; a node acts only while its lease holds, less the margin its
//! `--exec` child gets to stop; a promise binds until it runs out or its coordinator releases
//! it. The transitions that send and log are in `claim.rs`.

use super::event::AnnounceAnswer;
use super::lease::{QuorumState, QuorumView};
use super::member::{Member, NodeRef};
use super::quorum::{Acks, Millis, Promise, Quorum};

/// Send times remembered per term, to date the answers that come back.
const SENT_KEPT: usize = 32;

/// The term this node claims, leads or hands over, with what holds it up.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Lead {
    term: u64,
    acks: Acks,
    /// Until when a majority's promises hold (this node's clock); `None` before a majority
    /// acknowledged. Kept across a term bump until the new term has its own.
    lease_until: Option<Millis>,
    /// Letting go (for a higher node, a step-down, ...): renewing until the hooks let go,
    /// then releasing.
    releasing: bool,
    /// The announcements out for this term, whose answers come back one by one.
    sent: Vec<Sent>,
    retry_armed: bool,
    /// "No quorum" was logged for this term.
    warned: bool,
    /// When the member list was last read for this claim.
    members_read: Millis,
}

/// One announcement: when it was handed to the shell, how many answers are still due, and
/// whether any said its member was promised to another coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Sent {
    seq: u64,
    at: Millis,
    due: usize,
    promised: bool,
}

/// What the answers to one announcement came to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counted {
    /// Some member is promised to another coordinator: worth asking again soon.
    pub promised: bool,
    /// Every member answered, and none was promised elsewhere.
    pub all_in: bool,
}

/// Why an announcement this node would otherwise accept is refused in quorum mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// This node holds a lease itself (or is releasing one) for `remaining_ms` more; it hands
    /// over when the announcer ranks higher and it is not releasing already.
    Leads {
        remaining_ms: Millis,
        hand_over: bool,
    },
    /// This node is promised to `to` (`None`: to nobody, after a restart) for `remaining_ms`.
    Promised {
        to: Option<NodeRef>,
        remaining_ms: Millis,
    },
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct QuorumLease {
    /// The term this node claims, leads or hands over.
    lead: Option<Lead>,
    /// This node's promise as a follower.
    promise: Option<Promise>,
}

impl QuorumLease {
    /// A node that starts at `now`: in quorum mode it acknowledges nobody for one `lease` (it
    /// may have promised someone just before it stopped).
    pub fn new(lease: Option<Millis>, now: Millis) -> QuorumLease {
        QuorumLease {
            lead: None,
            promise: lease.map(|l| Promise {
                to: None,
                until: now + l,
            }),
        }
    }

    /// Claims, leads or hands over a term.
    pub fn has_lead(&self) -> bool {
        self.lead.is_some()
    }

    /// The term claimed, led or handed over.
    pub fn lead_term(&self) -> Option<u64> {
        self.lead.as_ref().map(|l| l.term)
    }

    /// Claims or leads `term`.
    pub fn leads_term(&self, term: u64) -> bool {
        self.lead_term() == Some(term)
    }

    /// Claims `term` at `now`. A term bump while leading keeps the lease it holds until the
    /// new term has its own.
    pub fn claim(&mut self, term: u64, now: Millis) {
        let held = self
            .lead
            .as_ref()
            .filter(|l| !l.releasing)
            .and_then(|l| l.lease_until);
        self.lead = Some(Lead {
            term,
            acks: Acks::default(),
            lease_until: held,
            releasing: false,
            sent: Vec::new(),
            retry_armed: false,
            warned: false,
            members_read: now,
        });
    }

    /// Remembers announcement `seq` of the lead, sent at `at` to `due` members; returns the
    /// term it announces.
    pub fn sent(&mut self, seq: u64, at: Millis, due: usize) -> Option<u64> {
        let lead = self.lead.as_mut()?;
        lead.sent.push(Sent {
            seq,
            at,
            due,
            promised: false,
        });
        if lead.sent.len() > SENT_KEPT {
            lead.sent.remove(0);
        }
        Some(lead.term)
    }

    /// Ends the lead (lost, handed over, or a newer coordinator accepted); returns its term.
    pub fn end_lead(&mut self) -> Option<u64> {
        self.lead.take().map(|l| l.term)
    }

    /// Until when a majority's promises hold; `None` before a majority acknowledged.
    pub fn lease_until(&self) -> Option<Millis> {
        self.lead.as_ref().and_then(|l| l.lease_until)
    }

    /// Whether the lease still holds at `now` with `margin` to spare.
    pub fn acts(&self, now: Millis, margin: Millis) -> bool {
        self.lease_until().is_some_and(|u| now + margin < u)
    }

    /// The lease of `term` no longer holds at `now` with `margin` to spare, and nobody let it
    /// go on purpose (a lease being released runs out as planned): leadership is lost.
    pub fn lapsed(&self, term: u64, now: Millis, margin: Millis) -> bool {
        self.leads_term(term) && !self.releasing() && !self.acts(now, margin)
    }

    /// Letting go: keep renewing until the hooks let go, then release.
    pub fn releasing(&self) -> bool {
        self.lead.as_ref().is_some_and(|l| l.releasing)
    }

    pub fn begin_release(&mut self) {
        if let Some(lead) = self.lead.as_mut() {
            lead.releasing = true;
        }
    }

    /// Counts the acknowledgements in answers (some or all) to announcement `seq` of `term`,
    /// each from the moment that announcement was sent. `None` if it is not the lead's.
    pub fn count(
        &mut self,
        term: u64,
        seq: u64,
        answers: &[(Member, AnnounceAnswer)],
    ) -> Option<Counted> {
        let lead = self.lead.as_mut().filter(|l| l.term == term)?;
        let sent = lead.sent.iter_mut().find(|s| s.seq == seq)?;
        let sent_at = sent.at;
        let mut promised = false;
        for (m, a) in answers {
            match a {
                AnnounceAnswer::Accepted {
                    promise_ms: Some(granted),
                } => lead.acks.record(&m.node_ref(), sent_at, *granted),
                AnnounceAnswer::Promised { .. } => promised = true,
                _ => {}
            }
        }
        sent.due = sent.due.saturating_sub(answers.len());
        sent.promised |= promised;
        Some(Counted {
            promised,
            all_in: sent.due == 0 && !sent.promised,
        })
    }

    /// Extends the lease from the acknowledgements held at `now`; returns the term and the
    /// new end when it grew (a lease never shrinks).
    pub fn extend(&mut self, now: Millis, q: &Quorum) -> Option<(u64, Millis)> {
        let lead = self.lead.as_mut()?;
        let until = lead
            .acks
            .lease_until(now, q.needed_from_others(), q.lease)?;
        if lead.lease_until.is_some_and(|held| until <= held) {
            return None;
        }
        lead.lease_until = Some(until);
        Some((lead.term, until))
    }

    /// Arms the quick retry of a claim whose members are promised elsewhere; false if armed.
    pub fn arm_retry(&mut self) -> bool {
        match self.lead.as_mut() {
            Some(lead) if !lead.retry_armed => {
                lead.retry_armed = true;
                true
            }
            _ => false,
        }
    }

    /// The retry of `term` fired; false if `term` is no longer the lead's.
    pub fn retry_fired(&mut self, term: u64) -> bool {
        match self.lead.as_mut().filter(|l| l.term == term) {
            Some(lead) => {
                lead.retry_armed = false;
                true
            }
            None => false,
        }
    }

    /// A claim of `term` has no majority: the live acknowledgements (this node's included)
    /// the first time it is said for the term, `None` after.
    pub fn warn(&mut self, term: u64, now: Millis) -> Option<usize> {
        let lead = self.lead.as_mut().filter(|l| l.term == term && !l.warned)?;
        lead.warned = true;
        Some(lead.acks.live(now) + 1)
    }

    /// A claim (not being released) whose member list is older than `every` at `now`: it is
    /// read again from now.
    pub fn members_due(&mut self, now: Millis, every: Millis) -> bool {
        let Some(lead) = self.lead.as_mut().filter(|l| !l.releasing) else {
            return false;
        };
        if now.saturating_sub(lead.members_read) < every {
            return false;
        }
        lead.members_read = now;
        true
    }

    /// What `/nodeDetails` shows at `now`; `awaiting_lock`: a claim that waits for the leader
    /// lock shows as claiming.
    pub fn view(&self, now: Millis, q: &Quorum, awaiting_lock: bool) -> QuorumView {
        let acting = self.acts(now, q.stop_margin);
        let state = match &self.lead {
            Some(l) if l.releasing => QuorumState::Releasing,
            Some(_) if awaiting_lock => QuorumState::Claiming,
            Some(_) if acting => QuorumState::Leading,
            Some(l) if l.warned => QuorumState::NoQuorum,
            Some(_) => QuorumState::Claiming,
            None => QuorumState::Following,
        };
        let promise = self.promise.as_ref().filter(|p| now < p.until);
        QuorumView {
            size: q.size,
            needed: q.majority(),
            acks: self.lead.as_ref().map_or(0, |l| l.acks.live(now) + 1),
            state,
            lease_ms_left: self.lease_until().filter(|u| *u > now).map(|u| u - now),
            promised_to: promise.map(|p| {
                p.to.as_ref()
                    .map_or_else(|| "(restart)".to_string(), |n| n.name.clone())
            }),
            promise_ms_left: promise.map(|p| p.until - now),
        }
    }

    /// Whether an announcement by `coordinator` is refused at `now`: this node's own lease
    /// holds (with `margin` to spare, or it is being released), or its promise binds.
    pub fn refusal(
        &self,
        coordinator: &NodeRef,
        me: &NodeRef,
        now: Millis,
        margin: Millis,
    ) -> Option<Refusal> {
        if self.lead.is_some() {
            let (until, releasing) = (self.lease_until(), self.releasing());
            let holds = until.is_some_and(|u| u > now);
            if holds && (releasing || self.acts(now, margin)) {
                return Some(Refusal::Leads {
                    remaining_ms: until.map_or(0, |u| u - now),
                    hand_over: coordinator > me && !releasing,
                });
            }
        }
        let promise = self.promise.as_ref()?;
        promise.binds(coordinator, now).then(|| Refusal::Promised {
            to: promise.to.clone(),
            remaining_ms: promise.until - now,
        })
    }

    /// The promise given, if any (it may have run out).
    pub fn promise(&self) -> Option<&Promise> {
        self.promise.as_ref()
    }

    /// Promises `coordinator`, at `now`, to acknowledge nobody else for one `lease`; returns
    /// how long the promise runs. One millisecond more than granted: `now` is rounded down,
    /// so the announcement came up to a millisecond after it, and a promise counted from it
    /// would end that much early, which the coordinator's 2 % drift margin does not cover
    /// (tests/model.rs).
    pub fn promise_to(&mut self, coordinator: &NodeRef, now: Millis, lease: Millis) -> Millis {
        self.promise = Some(Promise {
            to: Some(coordinator.clone()),
            until: now + lease + 1,
        });
        lease + 1
    }

    /// The promise that keeps `me` from claiming at `now` (to another node, or the silence
    /// after a restart), if any.
    pub fn binding(&self, me: &NodeRef, now: Millis) -> Option<&Promise> {
        self.promise.as_ref().filter(|p| p.binds(me, now))
    }

    /// Whether the promise is to `coordinator`.
    pub fn promised_to(&self, coordinator: &NodeRef) -> bool {
        self.promise
            .as_ref()
            .is_some_and(|p| p.to.as_ref() == Some(coordinator))
    }

    /// Frees the promise to `coordinator`, if that is whom it is to; true if it was.
    pub fn release_promise(&mut self, coordinator: &NodeRef) -> bool {
        let to_it = self.promised_to(coordinator);
        if to_it {
            self.promise = None;
        }
        to_it
    }

    /// Frees the promise to `coordinator` if it ran out at `now`; true if it did.
    pub fn promise_expired(&mut self, coordinator: &NodeRef, now: Millis) -> bool {
        let expired = self
            .promise
            .as_ref()
            .is_some_and(|p| p.to.as_ref() == Some(coordinator) && now >= p.until);
        if expired {
            self.promise = None;
        }
        expired
    }
}

#[cfg(test)]
#[path = "tests/quorum_lease.rs"]
mod tests;

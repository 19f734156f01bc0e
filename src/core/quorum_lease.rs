//! The quorum lease, a sub-machine of the election (quorum mode): the coordinator's side, the
//! term it claims or leads with the acknowledgements that hold it up, and the follower's side,
//! the promise it gave. Its rules: a term bump keeps the lease held until the new term has its
//! own; a lease only ever grows; a node acts only while its lease holds, less the margin its
//! `--exec` child gets to stop; a promise binds until it runs out or its coordinator releases
//! it. The transitions that send and log are in `claim.rs`.

use super::lease::{Lead, Sent};
use super::member::NodeRef;
use super::quorum::{Acks, Millis, Promise};

/// Send times remembered per term, to date the answers that come back.
const SENT_KEPT: usize = 32;

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

    pub fn lead(&self) -> Option<&Lead> {
        self.lead.as_ref()
    }

    pub(super) fn lead_mut(&mut self) -> Option<&mut Lead> {
        self.lead.as_mut()
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

    /// Ends the lead (lost, handed over, or a newer coordinator accepted); returns it.
    pub fn end_lead(&mut self) -> Option<Lead> {
        self.lead.take()
    }

    /// Until when a majority's promises hold; `None` before a majority acknowledged.
    pub fn lease_until(&self) -> Option<Millis> {
        self.lead.as_ref().and_then(|l| l.lease_until)
    }

    /// Whether the lease still holds at `now` with `margin` to spare.
    pub fn acts(&self, now: Millis, margin: Millis) -> bool {
        self.lease_until().is_some_and(|u| now + margin < u)
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

    /// The promise given, if any (it may have run out).
    pub fn promise(&self) -> Option<&Promise> {
        self.promise.as_ref()
    }

    /// Promises `coordinator` to acknowledge nobody else until `until`.
    pub fn promise_to(&mut self, coordinator: &NodeRef, until: Millis) {
        self.promise = Some(Promise {
            to: Some(coordinator.clone()),
            until,
        });
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

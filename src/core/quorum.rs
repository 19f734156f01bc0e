//! Quorum mode's arithmetic: majorities, the acknowledgements a coordinator collects, the
//! lease they grant, and the promise a follower gives. Pure functions of times the caller
//! passes in (milliseconds of one node's monotonic clock).
//!
//! The argument, in short (src/README.md "Guarantees" has it in full): a follower that acknowledges a
//! coordinator promises to acknowledge no other until `lease` has passed on its own clock. The
//! coordinator counts a lease from the moment it *sent* the request, shortened by the worst
//! clock-rate drift between two hosts, so on every host's clock its lease ends before the
//! promises of a majority do. Any other coordinator needs a majority too, and every majority
//! shares a node with the old one, whose promise holds it back until the old lease is over.

use super::member::NodeRef;
use std::collections::BTreeMap;
use std::time::Duration;

/// Milliseconds on this node's monotonic clock.
pub type Millis = u64;

/// The largest difference in clock *rate* between two hosts that the lease argument allows:
/// 1 % (ten seconds a quarter of an hour). NTP-disciplined clocks drift by parts per million;
/// an undisciplined crystal by up to about 100 ppm.
pub const MAX_DRIFT_PERCENT: u64 = 1;

/// Quorum mode's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quorum {
    /// The cluster's size; a majority is `size / 2 + 1`, this node included.
    pub size: usize,
    /// How long a follower's promise lasts, on its own clock.
    pub lease: Millis,
    /// How long before its lease ends a coordinator that could not renew stops acting, so its
    /// `--exec` child gets SIGTERM this long before the SIGKILL at the lease's end: its
    /// `--exec-grace`, at most a quarter of the lease.
    pub stop_margin: Millis,
}

impl Quorum {
    pub fn new(size: usize, lease: Duration, exec_grace: Duration) -> Quorum {
        let lease = lease.as_millis().max(1) as Millis;
        Quorum {
            size: size.max(1),
            lease,
            stop_margin: (exec_grace.as_millis() as Millis).min(lease / 4),
        }
    }

    pub fn majority(&self) -> usize {
        self.size / 2 + 1
    }

    /// Acknowledgements needed from others (this node counts for itself).
    pub fn needed_from_others(&self) -> usize {
        self.majority() - 1
    }

    /// How often a coordinator (or a node claiming) renews: eight times a lease, so two lost
    /// renewals in a row still leave it acting (it stops a quarter lease before the end).
    pub fn renew_every(&self) -> Millis {
        (self.lease / 8).max(1)
    }

    /// The part of a follower's promise of `granted` ms the coordinator may count on: both
    /// clocks may drift by [`MAX_DRIFT_PERCENT`], in opposite directions.
    pub fn trusted(granted: Millis) -> Millis {
        granted * (100 - MAX_DRIFT_PERCENT) / (100 + MAX_DRIFT_PERCENT)
    }
}

/// The acknowledgements a coordinator holds for one term: for each member, until when (on
/// this node's clock) its promise can be counted on.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acks {
    until: BTreeMap<String, (NodeRef, Millis)>,
}

impl Acks {
    /// `from` acknowledged a request sent at `sent_at`, promising `granted` ms.
    pub fn record(&mut self, from: &NodeRef, sent_at: Millis, granted: Millis) {
        let until = sent_at.saturating_add(Quorum::trusted(granted));
        let entry = self
            .until
            .entry(from.name.clone())
            .or_insert((from.clone(), 0));
        if entry.0 == *from {
            entry.1 = entry.1.max(until);
        }
    }

    /// Members whose promise still holds at `now`.
    pub fn live(&self, now: Millis) -> usize {
        self.until.values().filter(|(_, u)| *u > now).count()
    }

    /// Until when this node holds a lease, given that it needs `needed` promises from
    /// others: the `needed`-th latest promise. `None` when fewer than `needed` hold at `now`.
    /// With nobody needed (a cluster of one) the lease is one trusted lease from `now`.
    pub fn lease_until(&self, now: Millis, needed: usize, lease: Millis) -> Option<Millis> {
        if needed == 0 {
            return Some(now + Quorum::trusted(lease));
        }
        let mut live: Vec<Millis> = self
            .until
            .values()
            .map(|(_, u)| *u)
            .filter(|u| *u > now)
            .collect();
        if live.len() < needed {
            return None;
        }
        live.sort_unstable_by(|a, b| b.cmp(a));
        Some(live[needed - 1])
    }
}

/// A follower's promise: to acknowledge no coordinator but `to` until `until`. `to` is `None`
/// right after a (re)start: the node may have promised someone before it died, and keeps quiet
/// for one lease.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Promise {
    pub to: Option<NodeRef>,
    pub until: Millis,
}

impl Promise {
    /// Whether the promise stops this node from acknowledging (or claiming for itself) anyone
    /// but `candidate` at `now`.
    pub fn binds(&self, candidate: &NodeRef, now: Millis) -> bool {
        now < self.until && self.to.as_ref() != Some(candidate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(i: u64) -> NodeRef {
        NodeRef::new(format!("node{i}"), i)
    }

    #[test]
    fn majorities() {
        let q = |size| Quorum::new(size, Duration::from_secs(2), Duration::from_secs(10));
        assert_eq!([1, 2, 3, 4, 5].map(|s| q(s).majority()), [1, 2, 2, 3, 3]);
        assert_eq!(q(5).needed_from_others(), 2);
        assert_eq!(q(5).renew_every(), 250);
        assert_eq!(q(5).stop_margin, 500, "at most a quarter of the lease");
        let short = Quorum::new(5, Duration::from_secs(2), Duration::from_millis(300));
        assert_eq!(short.stop_margin, 300);
    }

    #[test]
    fn a_lease_is_shortened_by_the_drift_of_both_clocks() {
        // 2 s granted: 2000 * 99 / 101 = 1960 ms counted.
        assert_eq!(Quorum::trusted(2000), 1960);
        // The coordinator's lease ends before the promise on any clock within the drift:
        // its 1960 ms run at most 1 % fast (1960 / 0.99 = 1980 real ms) against a follower's
        // 2000 ms run at most 1 % slow (2000 / 1.01 = 1980.2 real ms).
        let leader_real = 1960.0 / 0.99;
        let follower_real = 2000.0 / 1.01;
        assert!(
            leader_real <= follower_real,
            "{leader_real} > {follower_real}"
        );
    }

    #[test]
    fn the_lease_is_the_needed_th_latest_promise() {
        let mut a = Acks::default();
        assert_eq!(a.lease_until(0, 2, 2000), None);
        a.record(&n(1), 100, 2000); // until 2060
        assert_eq!(a.lease_until(100, 2, 2000), None);
        a.record(&n(2), 600, 2000); // until 2560
        assert_eq!(a.lease_until(600, 2, 2000), Some(2060));
        a.record(&n(3), 700, 2000); // until 2660
        assert_eq!(a.lease_until(700, 2, 2000), Some(2560));
        assert_eq!(a.live(2100), 2);
        // A renewal only ever extends; an older answer arriving late changes nothing.
        a.record(&n(1), 50, 2000);
        assert_eq!(a.lease_until(700, 2, 2000), Some(2560));
        // Past every promise: no lease.
        assert_eq!(a.lease_until(2600, 2, 2000), None);
        // Alone: nobody needed.
        assert_eq!(Acks::default().lease_until(10, 0, 2000), Some(1970));
        // A member of the same name but another id does not overwrite the one that acked.
        let mut b = Acks::default();
        b.record(&n(1), 0, 2000);
        b.record(&NodeRef::new("node1", 99), 1000, 2000);
        assert_eq!(b.lease_until(0, 1, 2000), Some(1960));
    }

    #[test]
    fn a_promise_binds_until_it_runs_out_except_for_its_holder() {
        let p = Promise {
            to: Some(n(5)),
            until: 1000,
        };
        assert!(p.binds(&n(4), 999));
        assert!(!p.binds(&n(5), 999));
        assert!(!p.binds(&n(4), 1000));
        let quiet = Promise {
            to: None,
            until: 1000,
        };
        assert!(
            quiet.binds(&n(5), 0),
            "after a restart nobody is acknowledged"
        );
    }
}

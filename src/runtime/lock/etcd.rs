//! `--etcd-lock`'s shell: one thread takes and lets go of the leader key in the order the core
//! asked, and while it is held another thread renews its lease every third of the TTL. Each
//! renewal moves the fence (see [`crate::runtime::node::fence`]) to the instant the request was sent plus the
//! TTL, less a margin: etcd counts the TTL from when it received the renewal, which is later,
//! so the `--exec` child's supervisor kills the child before etcd can free the key for
//! anyone else, even when this process is frozen or cut off. A lease that etcd no longer
//! knows, a key that is gone or on another lease, or renewals that fail until the lease
//! would have run out, are reported to the core as a loss. Neither thread holds the state
//! lock.

use crate::core::event::{Event, LockAnswer};
use crate::registry::etcd_lock::{EtcdLock, Take};
use crate::runtime::lock::{CarryOut, LockOp, LockStore};
use crate::runtime::node::clock::Clock;
use crate::runtime::node::fence::Fence;
use crate::runtime::node::handle::Handle;
use crate::sync::spawn_named;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// The wait between renewals that failed.
const RETRY: Duration = Duration::from_millis(500);
/// How often a renewing thread looks whether its holding was let go meanwhile.
const TICK: Duration = Duration::from_millis(50);

/// What the lock thread and the renewing threads share.
#[derive(Clone)]
struct Keeper {
    etcd: Arc<EtcdLock>,
    fence: Arc<Fence>,
    clock: Clock,
    /// Whether the lease fences the leader's work (not in quorum mode, whose own lease does:
    /// two sources could only be joined by the earlier, and the fence never moves back).
    fences: bool,
    /// Raised whenever the key is let go or taken again: a renewal of an older one stops.
    generation: Arc<AtomicU64>,
}

/// etcd's way to take and let go of the leader key.
pub struct EtcdLockRunner {
    keeper: Keeper,
}

impl EtcdLockRunner {
    /// `fences`: the lease fences the leader's work (see [`Keeper::fences`]).
    pub fn new(etcd: EtcdLock, fence: Arc<Fence>, clock: Clock, fences: bool) -> EtcdLockRunner {
        EtcdLockRunner {
            keeper: Keeper {
                etcd: Arc::new(etcd),
                fence,
                clock,
                fences,
                generation: Arc::new(AtomicU64::new(0)),
            },
        }
    }
}

impl LockStore for EtcdLockRunner {
    fn thread(&self) -> &'static str {
        "etcd-lock"
    }

    fn left_to(&self) -> &'static str {
        "its lease"
    }

    fn start(self: Box<Self>, node: Weak<dyn Handle>) -> CarryOut {
        let keeper = self.keeper;
        let mut held = None;
        Box::new(move |op| match op {
            LockOp::Acquire(attempt) => keeper.acquire(&node, &mut held, attempt),
            LockOp::Release => keeper.release(&mut held),
        })
    }
}

impl Keeper {
    fn step(node: &Weak<dyn Handle>, answer: LockAnswer) {
        if let Some(node) = node.upgrade() {
            node.step(Event::Lock(answer));
        }
    }

    /// The TTL in ms, less what two clocks' rates may differ by over it (and then some).
    fn fenced_ms(ttl: Duration) -> u64 {
        let ms = ttl.as_millis() as u64;
        ms - ms / 50
    }

    fn acquire(&self, node: &Weak<dyn Handle>, held: &mut Option<i64>, attempt: u64) {
        if held.is_some() {
            self.release(held);
        }
        // Before the lease is asked for: etcd's TTL starts later than this.
        let sent = self.clock.now();
        match self.etcd.take() {
            Ok(Take::Taken { lease, revision }) => {
                *held = Some(lease);
                let mine = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
                // The fence first, so the leader's work starts fenced; and what its
                // supervisor does once this node is gone: revoke the lease.
                let until = sent + Self::fenced_ms(self.etcd.ttl());
                self.extend(until);
                self.fence.set_orphaned(Some(self.etcd.revoke_spec(lease)));
                Self::step(
                    node,
                    LockAnswer::Held {
                        attempt,
                        index: revision,
                    },
                );
                let renewal = Renewal {
                    keeper: self.clone(),
                    node: node.clone(),
                    mine,
                    attempt,
                    lease,
                };
                if let Err(e) = spawn_named("etcd-lock-renew", move || renewal.run(until)) {
                    log::error!("cannot renew the leader lock ({e}): letting go of it");
                    Self::step(
                        node,
                        LockAnswer::Lost {
                            attempt,
                            why: "cannot start the thread that renews it".into(),
                        },
                    );
                }
            }
            Ok(Take::Held(why)) => Self::step(node, LockAnswer::Refused { attempt, why }),
            Err(e) => Self::step(
                node,
                LockAnswer::Refused {
                    attempt,
                    why: e.message,
                },
            ),
        }
    }

    fn extend(&self, until: u64) {
        if self.fences {
            self.fence.extend(until);
        }
    }

    /// Revokes the lease, which deletes the key at once: the next node need not wait out
    /// the TTL.
    fn release(&self, held: &mut Option<i64>) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.etcd.drop_spare();
        self.fence.set_orphaned(None);
        let Some(lease) = held.take() else { return };
        match self.etcd.release(lease) {
            Ok(_) => log::info!("Released the leader lock {}", self.etcd.key()),
            Err(e) => log::warn!(
                "releasing the leader lock failed: {e}; etcd frees it when its lease runs out"
            ),
        }
    }
}

/// Renews one holding of the key until it is let go (its generation passes) or lost.
struct Renewal {
    keeper: Keeper,
    node: Weak<dyn Handle>,
    mine: u64,
    attempt: u64,
    lease: i64,
}

impl Renewal {
    fn current(&self) -> bool {
        self.keeper.generation.load(Ordering::Acquire) == self.mine
    }

    /// Sleeps `d` in ticks; `false` once the holding was let go.
    fn wait(&self, d: Duration) -> bool {
        let end = std::time::Instant::now() + d;
        while std::time::Instant::now() < end {
            if !self.current() {
                return false;
            }
            std::thread::sleep(TICK.min(end - std::time::Instant::now()));
        }
        self.current()
    }

    /// `until`: the fence of the last renewal (core ms), past which etcd may have let the
    /// lease run out.
    fn run(self, mut until: u64) {
        let etcd = &self.keeper.etcd;
        let clock = self.keeper.clock;
        let mut pause = etcd.ttl() / 3;
        let mut failing = false;
        let why = loop {
            if !self.wait(pause) {
                return;
            }
            let sent = clock.now();
            match etcd.renew(self.lease) {
                Ok(Some(ttl)) => {
                    until = sent + Keeper::fenced_ms(ttl);
                    self.keeper.extend(until);
                    if failing {
                        log::info!("renewing the leader lock works again");
                        failing = false;
                    }
                    pause = etcd.ttl() / 3;
                    match etcd.held_on(self.lease) {
                        Ok(false) => {
                            break format!(
                                "{} was deleted or put on another lease by someone else",
                                etcd.key()
                            )
                        }
                        Ok(true) => {}
                        Err(e) => log::debug!("reading the leader key: {e}"),
                    }
                }
                Ok(None) => {
                    break format!(
                        "etcd no longer knows the lease of {} (it ran out: this node was away \
                         or frozen for longer than the TTL)",
                        etcd.key()
                    )
                }
                Err(e) => {
                    if clock.now() + RETRY.as_millis() as u64 >= until {
                        break format!(
                            "etcd did not renew the lease of {} within its TTL (last: {e})",
                            etcd.key()
                        );
                    }
                    if !failing {
                        log::warn!("renewing the leader lock failed: {e}; trying again");
                        failing = true;
                    }
                    pause = RETRY;
                }
            }
        };
        if self.current() {
            Keeper::step(
                &self.node,
                LockAnswer::Lost {
                    attempt: self.attempt,
                    why,
                },
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_ends_before_etcds_lease_can() {
        assert_eq!(Keeper::fenced_ms(Duration::from_secs(5)), 4900);
        assert_eq!(Keeper::fenced_ms(Duration::from_secs(2)), 1960);
    }
}

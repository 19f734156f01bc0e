//! The shell's half of the core's lock gate (`core::lock`), whichever store holds the lock:
//! Consul (`--consul-lock`) or etcd (`--etcd-lock`). The node hands it the core's lock
//! effects in order while it publishes a step; one thread carries them out in that order with
//! the store's own way to take and let go, which answers with `Event::Lock` steps.

pub mod consul;
pub mod etcd;

use crate::core::ready::Effect;
use crate::runtime::node::handle::Handle;
use crate::sync::{lock, spawn_named};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// One of the core's lock effects, for the lock thread.
pub enum LockOp {
    Acquire(u64),
    Release,
}

/// A store's way to take and let go of the leader lock.
pub trait LockStore: Send + 'static {
    /// The thread's name in `top -H`.
    fn thread(&self) -> &'static str;
    /// What frees the lock if the thread is gone: "its session", "its lease".
    fn left_to(&self) -> &'static str;
    /// The handler of the operations on the lock thread, stepping `node` with what it finds.
    fn start(self: Box<Self>, node: Weak<dyn Handle>) -> CarryOut;
}

/// The lock thread's handler of the operations.
pub type CarryOut = Box<dyn FnMut(LockOp) + Send>;

/// The lock thread's end of the queue, with the store it takes the lock from.
type Worker = (Receiver<LockOp>, Box<dyn LockStore>);

/// Hands lock effects to the lock thread.
pub struct LeaderLock {
    tx: Mutex<Sender<LockOp>>,
    /// Operations handed over and not yet done, so shutdown can wait for the release.
    queued: Arc<AtomicUsize>,
    left_to: &'static str,
    /// The thread's half, until it starts.
    worker: Mutex<Option<Worker>>,
}

impl LeaderLock {
    pub fn new(store: Box<dyn LockStore>) -> LeaderLock {
        let (tx, rx) = channel();
        LeaderLock {
            tx: Mutex::new(tx),
            queued: Arc::new(AtomicUsize::new(0)),
            left_to: store.left_to(),
            worker: Mutex::new(Some((rx, store))),
        }
    }

    /// Starts the lock thread, which steps `node` with what it finds.
    pub fn run_for(&self, node: Weak<dyn Handle>) -> std::io::Result<()> {
        let Some((rx, store)) = lock(&self.worker).take() else {
            return Ok(());
        };
        let queued = Arc::clone(&self.queued);
        let name = store.thread();
        let mut carry_out = store.start(node);
        spawn_named(name, move || {
            for op in rx {
                carry_out(op);
                queued.fetch_sub(1, Ordering::AcqRel);
            }
        })?;
        Ok(())
    }

    /// Queues one of the core's lock effects; never blocks (called while the node publishes).
    pub fn submit(&self, effect: &Effect) {
        let op = match effect {
            Effect::AcquireLock { attempt } => LockOp::Acquire(*attempt),
            Effect::ReleaseLock => LockOp::Release,
            _ => return,
        };
        self.queued.fetch_add(1, Ordering::AcqRel);
        if lock(&self.tx).send(op).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            log::error!(
                "the leader lock's thread is gone: the lock is left to {}",
                self.left_to
            );
        }
    }

    /// Waits until every queued operation is done, at most `within` (shutdown: the release).
    pub fn flush(&self, within: Duration) {
        let end = Instant::now() + within;
        while self.queued.load(Ordering::Acquire) > 0 && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

//! `--consul-lock`'s shell: one thread takes and lets go of the leader lock in the order the
//! core asked (the node hands it the core's lock effects while it publishes a step, so in
//! order), and while the lock is held another thread watches the key with blocking queries and
//! reports a loss. Each outcome goes back into the core as an event; neither thread ever
//! holds the state lock.

use crate::core::event::{Event, LockAnswer};
use crate::registry::consul_lock::{Acquire, ConsulLock, KeyState};
use crate::runtime::lock::{CarryOut, LockOp, LockStore};
use crate::runtime::node::handle::Handle;
use crate::sync::spawn_named;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Failed watches in a row (transport errors, 5xx) before the lock counts as lost: a node
/// that cannot hear from Consul cannot know that it still holds it.
const WATCH_TRIES: u32 = 3;
/// The wait between those tries.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// Consul's way to take and let go of the leader lock.
pub struct LockRunner {
    consul: ConsulLock,
}

impl LockRunner {
    pub fn new(consul: ConsulLock) -> LockRunner {
        LockRunner { consul }
    }
}

impl LockStore for LockRunner {
    fn thread(&self) -> &'static str {
        "consul-lock"
    }

    fn left_to(&self) -> &'static str {
        "its session"
    }

    fn start(self: Box<Self>, node: Weak<dyn Handle>) -> CarryOut {
        let mut worker = Worker {
            consul: Arc::new(self.consul),
            node,
            session: None,
            generation: Arc::new(AtomicU64::new(0)),
        };
        Box::new(move |op| match op {
            LockOp::Acquire(attempt) => worker.acquire(attempt),
            LockOp::Release => worker.release(),
        })
    }
}

struct Worker {
    consul: Arc<ConsulLock>,
    node: Weak<dyn Handle>,
    /// This node's session, reused until Consul no longer knows it.
    session: Option<String>,
    /// Raised whenever the lock is let go or taken again: a watch of an older one stops.
    generation: Arc<AtomicU64>,
}

impl Worker {
    fn step(&self, answer: LockAnswer) {
        if let Some(node) = self.node.upgrade() {
            node.step(Event::Lock(answer));
        }
    }

    fn acquire(&mut self, attempt: u64) {
        match self.take() {
            Ok((session, key)) => {
                let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
                // Stepped before the watch starts, so a loss is never reported first.
                self.step(LockAnswer::Held {
                    attempt,
                    index: key.lock_index,
                });
                let watch = Watch {
                    consul: Arc::clone(&self.consul),
                    node: self.node.clone(),
                    generation: Arc::clone(&self.generation),
                    mine: generation,
                    attempt,
                    session,
                };
                let index = key.modify_index;
                if let Err(e) = spawn_named("consul-lock-watch", move || watch.run(index)) {
                    log::error!("cannot watch the leader lock ({e}): letting go of it");
                    self.step(LockAnswer::Lost {
                        attempt,
                        why: "cannot start the thread that watches it".into(),
                    });
                }
            }
            Err(why) => self.step(LockAnswer::Refused { attempt, why }),
        }
    }

    /// Takes the lock with this node's session, making one when needed (once more when
    /// Consul had forgotten the last one); returns the session and the key as taken.
    fn take(&mut self) -> Result<(String, KeyState), String> {
        for _ in 0..2 {
            let session = match &self.session {
                Some(s) => s.clone(),
                None => {
                    let s = self
                        .consul
                        .create_session()
                        .map_err(|e| format!("cannot create a session: {e}"))?;
                    self.session = Some(s.clone());
                    s
                }
            };
            match self.consul.acquire(&session)? {
                Acquire::Taken => {
                    let key = self.consul.read()?.ok_or("the key vanished once taken")?;
                    if key.session.as_deref() != Some(session.as_str()) {
                        return Err("taken, then lost at once".into());
                    }
                    return Ok((session, key));
                }
                Acquire::Refused => return Err(self.why_refused()),
                Acquire::InvalidSession => self.session = None,
            }
        }
        Err("Consul did not know either session it was given".into())
    }

    fn why_refused(&self) -> String {
        match self.consul.read() {
            Ok(Some(KeyState {
                session: Some(holder),
                ..
            })) => format!(
                "{} is held by {}",
                self.consul.key(),
                self.consul.describe_session(&holder)
            ),
            Ok(_) => format!(
                "{} is free but refused: a lock-delay is running (the last holder's session \
                 ended without releasing it)",
                self.consul.key()
            ),
            Err(e) => format!("refused, and reading the key failed: {e}"),
        }
    }

    fn release(&mut self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let Some(session) = &self.session else { return };
        match self.consul.release(session) {
            Ok(true) => log::info!("Released the leader lock {}", self.consul.key()),
            Ok(false) => {}
            Err(e) => log::warn!(
                "releasing the leader lock failed: {e}; Consul frees it when this node's \
                 session ends"
            ),
        }
    }
}

/// Watches one holding of the lock until it is let go (its generation passes) or lost.
struct Watch {
    consul: Arc<ConsulLock>,
    node: Weak<dyn Handle>,
    generation: Arc<AtomicU64>,
    mine: u64,
    attempt: u64,
    session: String,
}

impl Watch {
    fn current(&self) -> bool {
        self.generation.load(Ordering::Acquire) == self.mine
    }

    fn run(self, mut index: u64) {
        let mut failures = 0;
        let why = loop {
            if !self.current() {
                return;
            }
            match self.consul.wait_change(index) {
                Ok((key, next)) => {
                    failures = 0;
                    index = next;
                    match key {
                        Some(k) if k.session.as_deref() == Some(self.session.as_str()) => {}
                        Some(KeyState {
                            session: Some(other),
                            ..
                        }) => {
                            break format!("{} is now held by session {other}", self.consul.key())
                        }
                        Some(_) => {
                            break format!(
                                "{} was released without this node: its session ended (its \
                                 check failed, or the session was destroyed)",
                                self.consul.key()
                            )
                        }
                        None => break format!("{} was deleted", self.consul.key()),
                    }
                }
                Err(e) => {
                    failures += 1;
                    if failures >= WATCH_TRIES {
                        break format!(
                            "Consul did not confirm it {WATCH_TRIES} times in a row (last: {e})"
                        );
                    }
                    log::warn!("watching the leader lock: {e}; trying again");
                    std::thread::sleep(WATCH_RETRY);
                }
            }
        };
        if !self.current() {
            return;
        }
        if let Some(node) = self.node.upgrade() {
            node.step(Event::Lock(LockAnswer::Lost {
                attempt: self.attempt,
                why,
            }));
        }
    }
}

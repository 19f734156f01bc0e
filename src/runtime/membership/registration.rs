//! Keeping this node in the registry: the first attempt at start (an error there ends the
//! node), retries with backoff while the registry cannot be reached, upkeep every health
//! interval afterwards (a registry may forget the node), showing its role (Consul's
//! `leader`/`follower` tag) after every change of coordinator, and leaving on shutdown. None
//! of it holds the state lock, and none of it keeps the election from going on.
//!
//! A node the registry does not hold stands for no election (the core decides that from
//! [`Event::Registered`]): the others cannot find it, and it would elect itself beside them.
//! A registry that cannot be reached at all is another matter once registered: its record
//! stays where it was and the others read no newer listing either, so the node keeps
//! standing.

use super::directory::Directory;
use super::outage::Outage;
use crate::core::event::Event;
use crate::core::member::Member;
use crate::registry::{Failure, RegistryError, Role};
use crate::runtime::metrics::Metrics;
use crate::runtime::node::handle::{Handle, Notice};
use crate::sync::{lock, spawn_named};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First wait after a failed attempt; doubled on each failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

pub struct Registration {
    me: Member,
    directory: Arc<Directory>,
    node: Arc<dyn Handle>,
    metrics: Arc<Metrics>,
    /// Upkeep runs this often once registered.
    interval: Duration,
    /// Failed writes, logged quietly while they go on.
    outage: Outage,
    /// Serialises registry writes, so a SIGTERM never races a registration in flight: leaving
    /// waits for it, then nothing registers again.
    leaving: Mutex<bool>,
    /// The coordinator changes, for a registry that shows roles, until its thread starts.
    changes: Mutex<Option<Receiver<Notice>>>,
}

impl Registration {
    pub fn new(
        me: Member,
        directory: Arc<Directory>,
        node: Arc<dyn Handle>,
        metrics: Arc<Metrics>,
        interval: Duration,
    ) -> Arc<Registration> {
        let outage = Outage::new(format!(
            "registering in {}",
            directory.registry().describe()
        ));
        // Subscribed now, before the server and the schedules start, so no change is missed.
        let changes = directory
            .registry()
            .publishes_role()
            .then(|| node.subscribe());
        Arc::new(Registration {
            me,
            directory,
            node,
            metrics,
            interval,
            outage,
            leaving: Mutex::new(false),
            changes: Mutex::new(changes),
        })
    }

    fn describe(&self) -> String {
        self.directory.registry().describe()
    }

    /// The first attempt, before the node serves or elects. `Err` when the node must not
    /// start: a registry that refuses the write, or a name another live node holds. A
    /// registry that does not answer is retried by [`Registration::keep_up`]; meanwhile the
    /// node stands for nothing.
    pub fn first(&self) -> Result<bool, RegistryError> {
        match self.attempt() {
            Some(Ok(())) => {
                log::info!("Registered in {}", self.describe());
                Ok(true)
            }
            Some(Err(e)) if e.failure == Failure::Unreachable => {
                self.failed(&e);
                self.node.step(Event::Registered { ok: false });
                Ok(false)
            }
            Some(Err(e)) => {
                self.metrics.registry_failed("register");
                Err(e)
            }
            None => Ok(false),
        }
    }

    /// Starts the thread that retries until registered, then keeps the registration up, and
    /// for a registry that shows roles the one that shows them (the changes since
    /// [`Registration::new`] are queued for it).
    pub fn keep_up(self: &Arc<Self>, registered: bool) {
        if let Some(changes) = lock(&self.changes).take() {
            let this = Arc::clone(self);
            if let Err(e) = spawn_named("registry-role", move || this.show_roles(changes)) {
                log::error!("cannot start the thread that shows this node's role ({e})");
            }
        }
        let this = Arc::clone(self);
        if let Err(e) = spawn_named("registration", move || this.keep(registered)) {
            log::error!("cannot start the registration thread ({e}): no retries, no upkeep");
        }
    }

    /// Forever: retries until registered, then upkeep. The core hears when the node gains or
    /// loses its registration, and when the registry had lost it (it may need to elect).
    fn keep(&self, mut registered: bool) {
        let mut retry = FIRST_RETRY;
        let mut wait = if registered {
            self.interval
        } else {
            FIRST_RETRY
        };
        loop {
            std::thread::sleep(wait);
            let outcome = if registered {
                self.upkeep()
            } else {
                self.attempt().map(|r| r.map(|()| true))
            };
            wait = match outcome {
                None => return,
                Some(Ok(rewritten)) => {
                    self.outage.ok();
                    self.metrics.registered.store(true, Ordering::Relaxed);
                    if !registered {
                        log::info!("Registered in {}", self.describe());
                        self.node.step(Event::Registered { ok: true });
                    } else if rewritten {
                        log::warn!("{} had lost this node: registered again", self.describe());
                        self.node.step(Event::Rejoined);
                    }
                    registered = true;
                    retry = FIRST_RETRY;
                    self.interval
                }
                // Still registered as far as anyone can tell: the record is where it was.
                Some(Err(e)) if registered && e.failure == Failure::Unreachable => {
                    self.failed(&e);
                    self.interval
                }
                Some(Err(e)) => {
                    self.failed(&e);
                    if registered {
                        registered = false;
                        retry = FIRST_RETRY;
                        self.node.step(Event::Registered { ok: false });
                    } else {
                        retry = (retry * 2).min(MAX_RETRY);
                    }
                    retry
                }
            };
        }
    }

    fn failed(&self, e: &RegistryError) {
        self.metrics.registry_failed("register");
        if e.failure != Failure::Unreachable {
            self.metrics.registered.store(false, Ordering::Relaxed);
        }
        let kind = match e.failure {
            Failure::Unreachable => "unreachable",
            Failure::Refused => "refused",
            Failure::NameTaken => "name taken",
        };
        self.outage.failed(kind, &e.message);
    }

    /// Checks the name, then registers, unless the node is leaving.
    fn attempt(&self) -> Option<Result<(), RegistryError>> {
        let leaving = lock(&self.leaving);
        if *leaving {
            return None;
        }
        let registry = self.directory.registry();
        let done = registry
            .check_name(&self.me)
            .and_then(|()| registry.register(&self.me));
        if done.is_ok() {
            self.metrics.registered.store(true, Ordering::Relaxed);
        }
        Some(done)
    }

    /// Keeps the registration up unless the node is leaving; `Ok(true)` when the record had
    /// to be written again.
    fn upkeep(&self) -> Option<Result<bool, RegistryError>> {
        let leaving = lock(&self.leaving);
        if *leaving {
            return None;
        }
        Some(self.directory.registry().maintain(&self.me))
    }

    /// Shows this node's role after each change of coordinator, on its own thread so that a
    /// slow registry never holds up an election. Changes that queued up meanwhile are read
    /// at once and only the last one is shown. A write that fails is logged; the upkeep puts
    /// it right (it registers again when the registry shows another role).
    fn show_roles(&self, changes: Receiver<Notice>) {
        let me = self.me.node_ref();
        while let Ok(first) = changes.recv() {
            let queued = std::iter::from_fn(|| changes.try_recv().ok());
            let last = std::iter::once(first)
                .chain(queued)
                .filter_map(|n| match n {
                    Notice::Changed(c) => Some(c),
                    Notice::LetGo { .. } | Notice::LeadingAgain { .. } => None,
                })
                .last();
            let Some(change) = last else {
                continue;
            };
            let role = if change.after.as_ref() == Some(&me) {
                Role::leader(change.term)
            } else {
                Role::follower()
            };
            let leaving = lock(&self.leaving);
            if *leaving {
                return;
            }
            if let Err(e) = self.directory.registry().set_role(&self.me, role) {
                log::warn!(
                    "registry {}: showing this node as {} failed: {e}; the upkeep tries again",
                    self.describe(),
                    role.tag()
                );
            }
        }
    }

    /// Leaves the registry for good (SIGINT/SIGTERM), after any write in flight.
    pub fn leave(&self) {
        let mut leaving = lock(&self.leaving);
        *leaving = true;
        if let Err(e) = self.directory.registry().deregister(&self.me) {
            log::warn!("deregistering failed: {e}");
        }
        self.metrics.registered.store(false, Ordering::Relaxed);
    }
}

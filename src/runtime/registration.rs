//! Keeping this node in the registry: one attempt before the first election, retries with
//! backoff while the registry cannot be reached, upkeep every health interval afterwards (a
//! registry may forget the node), showing its role (Consul's `leader`/`follower` tag) after
//! every change of coordinator, and leaving on shutdown. None of it holds the state lock, and
//! none of it keeps the HTTP server or the election from going on.

use super::directory::Directory;
use super::handle::{Handle, Notice};
use crate::core::event::Event;
use crate::core::member::Member;
use crate::registry::Role;
use crate::sync::{lock, spawn_named};
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
    /// Upkeep runs this often once registered.
    interval: Duration,
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
        interval: Duration,
    ) -> Arc<Registration> {
        // Subscribed now, before the server and the schedules start, so no change is missed.
        let changes = directory
            .registry()
            .publishes_role()
            .then(|| node.subscribe());
        Arc::new(Registration {
            me,
            directory,
            node,
            interval,
            leaving: Mutex::new(false),
            changes: Mutex::new(changes),
        })
    }

    fn describe(&self) -> String {
        self.directory.registry().describe()
    }

    /// The first attempt, then the upkeep thread. Runs before the first election so that it
    /// usually finds this node registered.
    pub fn start(self: &Arc<Self>) {
        if let Some(changes) = lock(&self.changes).take() {
            let this = Arc::clone(self);
            if let Err(e) = spawn_named("registry-role", move || this.show_roles(changes)) {
                log::error!("cannot start the thread that shows this node's role ({e})");
            }
        }
        let registered = match self.write(false) {
            Some(Ok(_)) => {
                log::info!("Registered in {}", self.describe());
                true
            }
            Some(Err(e)) => {
                log::error!(
                    "registering in {} failed: {e}; retrying in {FIRST_RETRY:?} (others cannot \
                     find this node until it succeeds)",
                    self.describe()
                );
                false
            }
            None => return,
        };
        let this = Arc::clone(self);
        if let Err(e) = spawn_named("registration", move || this.keep(registered)) {
            log::error!("cannot start the registration thread ({e}): no retries, no upkeep");
        }
    }

    /// Forever: retries until registered, then upkeep. A node the registry lists again after
    /// missing from it tells the election core, which may need to elect again.
    fn keep(&self, mut registered: bool) {
        let mut retry = FIRST_RETRY;
        let mut wait = if registered {
            self.interval
        } else {
            FIRST_RETRY
        };
        loop {
            std::thread::sleep(wait);
            wait = match self.write(registered) {
                None => return,
                Some(Ok(rejoined)) => {
                    if !registered {
                        log::info!("Registered in {}", self.describe());
                    } else if rejoined {
                        log::warn!("{} had lost this node: registered again", self.describe());
                    }
                    if rejoined || !registered {
                        self.node.step(Event::Rejoined);
                    }
                    registered = true;
                    retry = FIRST_RETRY;
                    self.interval
                }
                Some(Err(e)) => {
                    retry = (retry * 2).min(MAX_RETRY);
                    log::warn!("registry {}: {e}; retrying in {retry:?}", self.describe());
                    retry
                }
            };
        }
    }

    /// Registers (or keeps the registration up) unless the node is leaving; `Ok(true)` when
    /// the registry did not list this node before.
    fn write(&self, registered: bool) -> Option<Result<bool, String>> {
        let leaving = lock(&self.leaving);
        if *leaving {
            return None;
        }
        let registry = self.directory.registry();
        Some(if registered {
            registry.maintain(&self.me)
        } else {
            registry.register(&self.me).map(|()| true)
        })
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
                    Notice::LetGo { .. } => None,
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
    }
}

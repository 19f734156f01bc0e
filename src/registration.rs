//! Keeping this node in the registry: one attempt before the first election, retries with
//! backoff while the registry cannot be reached, upkeep every health interval afterwards (a
//! registry may forget the node), and leaving on shutdown. None of it holds the state lock,
//! and none of it keeps the HTTP server from serving.

use crate::node::{lock, Node};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// First wait after a failed attempt; doubled on each failure up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(500);
const MAX_RETRY: Duration = Duration::from_secs(30);

/// Serialises registry writes, so a SIGTERM never races a registration in flight: leaving
/// waits for it, then nothing registers again.
#[derive(Default)]
pub struct Registration {
    leaving: Mutex<bool>,
}

impl Node {
    /// The first attempt, then the upkeep thread. Runs before the first election so that it
    /// usually finds this node registered.
    pub fn start_registration(self: &Arc<Self>) {
        let registered = match self.registry_write(false) {
            Some(Ok(_)) => {
                log::info!("Registered in {}", self.registry().describe());
                true
            }
            Some(Err(e)) => {
                log::error!(
                    "registering in {} failed: {e}; retrying in {FIRST_RETRY:?} (others cannot \
                     find this node until it succeeds)",
                    self.registry().describe()
                );
                false
            }
            None => return,
        };
        let node = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("registration".into())
            .spawn(move || node.keep_registered(registered));
        if let Err(e) = spawned {
            log::error!("cannot start the registration thread ({e}): no retries, no upkeep");
        }
    }

    /// Forever: retries until registered, then upkeep. A node the registry lists again after
    /// missing from it tells the election core, which may need to elect again.
    fn keep_registered(self: &Arc<Self>, mut registered: bool) {
        let mut retry = FIRST_RETRY;
        let mut wait = if registered {
            self.timing.health_interval
        } else {
            FIRST_RETRY
        };
        loop {
            std::thread::sleep(wait);
            wait = match self.registry_write(registered) {
                None => return,
                Some(Ok(rejoined)) => {
                    if !registered {
                        log::info!("Registered in {}", self.registry().describe());
                    } else if rejoined {
                        log::warn!(
                            "{} had lost this node: registered again",
                            self.registry().describe()
                        );
                    }
                    if rejoined || !registered {
                        self.step(|e| e.on_rejoined());
                    }
                    registered = true;
                    retry = FIRST_RETRY;
                    self.timing.health_interval
                }
                Some(Err(e)) => {
                    retry = (retry * 2).min(MAX_RETRY);
                    log::warn!(
                        "registry {}: {e}; retrying in {retry:?}",
                        self.registry().describe()
                    );
                    retry
                }
            };
        }
    }

    /// Registers (or keeps the registration up) unless the node is leaving; `Ok(true)` when
    /// the registry did not list this node before.
    fn registry_write(&self, registered: bool) -> Option<Result<bool, String>> {
        let leaving = lock(&self.registration.leaving);
        if *leaving {
            return None;
        }
        Some(if registered {
            self.registry().maintain(&self.me)
        } else {
            self.registry().register(&self.me).map(|()| true)
        })
    }

    /// Leaves the registry for good (SIGINT/SIGTERM), after any write in flight.
    pub fn leave(&self) {
        let mut leaving = lock(&self.registration.leaving);
        *leaving = true;
        if let Err(e) = self.registry().deregister(&self.me) {
            log::warn!("deregistering failed: {e}");
        }
    }
}

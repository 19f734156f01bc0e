//! The shell around the election core: it owns the state lock, the registry and the peer
//! client, and carries out the core's actions. The lock is only ever held inside
//! [`Node::with_election`], which takes no I/O, so no network call runs under it.

use crate::election::{Action, Election, Member, NodeRef, Snapshot};
use crate::messages::{Announcement, ElectionMessage, NodeDetails};
use crate::peer::PeerClient;
use crate::registry::Registry;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Timers and limits of one node.
#[derive(Clone, Debug)]
pub struct Timing {
    pub startup_delay: Duration,
    pub health_interval: Duration,
    /// Per-request timeout to peers.
    pub timeout: Duration,
}

impl Timing {
    /// How long a node waits for the announcement of a higher node that answered its election
    /// message: that node may itself wait out one timeout on a dead node above it, then
    /// announce, so a few timeouts are ample.
    pub fn announce_wait(&self) -> Duration {
        self.timeout * 4
    }
}

pub struct Node {
    pub me: Member,
    pub cluster: String,
    pub timing: Timing,
    election: Mutex<Election>,
    registry: Box<dyn Registry>,
    client: PeerClient,
    /// The last member list the registry gave: used while the registry is unreachable.
    known_members: Mutex<Vec<Member>>,
}

/// Locks a mutex even when a panicking thread poisoned it: the state is only changed by the
/// core's transitions, which leave it consistent at every step.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Node {
    pub fn new(
        me: Member,
        cluster: String,
        timing: Timing,
        registry: Box<dyn Registry>,
    ) -> Arc<Node> {
        Arc::new(Node {
            election: Mutex::new(Election::new(me.node_ref())),
            client: PeerClient::new(timing.timeout),
            me,
            cluster,
            timing,
            registry,
            known_members: Mutex::new(Vec::new()),
        })
    }

    pub fn registry(&self) -> &dyn Registry {
        self.registry.as_ref()
    }

    /// Runs `f` on the state under the lock. `f` must not do I/O.
    pub fn with_election<R>(&self, f: impl FnOnce(&mut Election) -> R) -> R {
        f(&mut lock(&self.election))
    }

    /// Applies one transition, then carries out what it asked for, outside the lock.
    pub fn step(self: &Arc<Self>, f: impl FnOnce(&mut Election) -> Vec<Action>) {
        let actions = self.with_election(f);
        self.execute(actions);
    }

    pub fn snapshot(&self) -> Snapshot {
        self.with_election(|e| e.snapshot())
    }

    pub fn details(&self) -> NodeDetails {
        let s = self.snapshot();
        NodeDetails {
            node_name: self.me.name.clone(),
            node_id: self.me.id,
            port: self.me.port,
            cluster: self.cluster.clone(),
            coordinator: s.coordinator.as_ref().map(|c| c.name.clone()),
            coordinator_id: s.coordinator.as_ref().map(|c| c.id),
            is_coordinator: s.is_coordinator,
            election: s.election,
            host: self.me.host.clone(),
        }
    }

    /// The registry's members, or the last known ones when it cannot be read.
    pub fn members(&self) -> Vec<Member> {
        match self.registry.members() {
            Ok(m) => {
                *lock(&self.known_members) = m.clone();
                m
            }
            Err(e) => {
                log::warn!(
                    "registry {}: {e}; using the last known members",
                    self.registry.describe()
                );
                lock(&self.known_members).clone()
            }
        }
    }

    /// Carries out the core's actions; each one that waits on the network or a timer gets its
    /// own thread so no request handler or schedule is held up by it.
    pub fn execute(self: &Arc<Self>, actions: Vec<Action>) {
        for action in actions {
            let node = Arc::clone(self);
            let spawned = std::thread::Builder::new()
                .name("election".into())
                .spawn(move || node.run(action));
            if let Err(e) = spawned {
                log::error!("cannot start a thread for the election: {e}");
            }
        }
    }

    fn run(self: &Arc<Self>, action: Action) {
        match action {
            Action::CollectMembers { round } => {
                let members = self.members();
                self.step(|e| e.members_collected(round, members));
            }
            Action::SendElection { round, to } => {
                let msg = ElectionMessage::from_node(&self.me.node_ref());
                let answers = PeerClient::fan_out(&to, |m| {
                    match self
                        .client
                        .post::<_, serde_json::Value>(&m.address(), "/proxy", &msg)
                    {
                        Ok((200, Some(v))) if v["Response"] == "OK" => true,
                        Ok((status, _)) => {
                            log::debug!("{} answered /proxy with {status}", m.name);
                            false
                        }
                        Err(e) => {
                            log::debug!("{} did not answer /proxy: {e}", m.name);
                            false
                        }
                    }
                });
                let ok = answers.iter().filter(|a| **a).count();
                self.step(|e| e.election_answered(round, ok));
            }
            Action::AwaitAnnouncement { round } => {
                std::thread::sleep(self.timing.announce_wait());
                self.step(|e| e.announcement_timed_out(round));
            }
            Action::Announce { to } => {
                let msg = Announcement::from_node(&self.me.node_ref());
                PeerClient::fan_out(&to, |m| {
                    let r =
                        self.client
                            .post::<_, serde_json::Value>(&m.address(), "/announce", &msg);
                    if !matches!(r, Ok((200, _))) {
                        log::debug!("announcement to {} failed: {r:?}", m.name);
                    }
                });
            }
            Action::CheckCoordinator { coordinator } => {
                if !self.coordinator_alive(&coordinator) {
                    self.step(|e| e.coordinator_failed(&coordinator));
                }
            }
        }
    }

    /// The coordinator is alive when the registry still lists it and it answers `GET /`.
    fn coordinator_alive(&self, coordinator: &NodeRef) -> bool {
        let members = self.members();
        match members.iter().find(|m| m.node_ref() == *coordinator) {
            Some(m) => self.client.is_alive(m),
            None => false,
        }
    }

    /// The two schedules of the original: the first election after the startup delay, then a
    /// coordinator health check every interval. Runs forever on the calling thread.
    pub fn run_schedules(self: &Arc<Self>) {
        std::thread::sleep(self.timing.startup_delay);
        self.step(|e| e.request_election());
        loop {
            std::thread::sleep(self.timing.health_interval);
            self.step(|e| e.on_health_tick());
        }
    }
}

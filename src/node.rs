//! The shell around the election core: it owns the state lock, the registry and the peer
//! client, and carries out the core's actions. The lock is only ever held inside
//! [`Node::with_election`], which takes no I/O, so no network call runs under it.

use crate::auth::{ClusterKey, Verifier};
use crate::election::{Action, Election, Member, NodeRef, Phase, Snapshot};
use crate::messages::{Announcement, ElectionMessage, NodeDetails, ProxyAnswer, Refusal};
use crate::metrics::{Gauges, Metrics};
use crate::peer::PeerClient;
use crate::registration::Registration;
use crate::registry::Registry;
use crate::watch::Leadership;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Tries of a message to a member that answers 503, the waits between them growing by
/// [`BUSY_BACKOFF`]: 50 + 100 + 150 + 200 ms at most.
const BUSY_TRIES: u32 = 5;
const BUSY_BACKOFF: Duration = Duration::from_millis(50);

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

/// A change of the coordinator this node knows, delivered to subscribers in the order the
/// transitions happened (they are sent under the state lock).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub before: Option<NodeRef>,
    pub after: Option<NodeRef>,
    /// The term followed (or led) right after the change, so a subscriber needs no second
    /// look at the state, which may have moved on by then.
    pub term: u64,
}

impl Change {
    /// This node became coordinator.
    pub fn elected(&self, me: &NodeRef) -> bool {
        self.after.as_ref() == Some(me)
    }

    /// This node stopped being coordinator.
    pub fn demoted(&self, me: &NodeRef) -> bool {
        self.before.as_ref() == Some(me)
    }
}

pub struct Node {
    pub me: Member,
    pub cluster: String,
    pub timing: Timing,
    pub metrics: Metrics,
    /// Checks the signatures of incoming POSTs when the cluster has a key.
    pub auth: Option<Verifier>,
    election: Mutex<Election>,
    registry: Box<dyn Registry>,
    client: PeerClient,
    /// The last member list the registry gave: used while the registry is unreachable.
    known_members: Mutex<Vec<Member>>,
    subscribers: Mutex<Vec<Sender<Change>>>,
    /// When this node's current election round started, for `bully_last_election_seconds`.
    round_started: Mutex<Option<Instant>>,
    /// Wakes the `/watch` requests this node holds as coordinator.
    pub leadership: Leadership,
    /// `/watch` requests held now.
    pub watchers: AtomicUsize,
    /// The coordinator as the registry last listed it: where to check it while the registry
    /// is unreachable or has lost its record.
    coordinator_seen: Mutex<Option<Member>>,
    pub(crate) registration: Registration,
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
        key: Option<ClusterKey>,
    ) -> Arc<Node> {
        Arc::new(Node {
            election: Mutex::new(Election::new(me.node_ref())),
            client: PeerClient::new(timing.timeout).signing(key.clone()),
            auth: key.map(Verifier::new),
            me,
            cluster,
            timing,
            registry,
            metrics: Metrics::default(),
            known_members: Mutex::new(Vec::new()),
            subscribers: Mutex::new(Vec::new()),
            round_started: Mutex::new(None),
            leadership: Leadership::default(),
            watchers: AtomicUsize::new(0),
            coordinator_seen: Mutex::new(None),
            registration: Registration::default(),
        })
    }

    /// Every later change of coordinator, in order.
    pub fn subscribe(&self) -> Receiver<Change> {
        let (tx, rx) = channel();
        lock(&self.subscribers).push(tx);
        rx
    }

    /// Ends every subscription: each receiver gets the changes already sent, then sees the
    /// channel closed. Used on shutdown, so no hook starts for a change after it.
    pub fn close_subscriptions(&self) {
        lock(&self.subscribers).clear();
    }

    pub fn registry(&self) -> &dyn Registry {
        self.registry.as_ref()
    }

    /// Runs `f` on the state under the lock. `f` must not do I/O.
    pub fn with_election<R>(&self, f: impl FnOnce(&mut Election) -> R) -> R {
        f(&mut lock(&self.election))
    }

    /// Applies one transition, then carries out what it asked for, outside the lock. A change
    /// of coordinator is counted and published while the lock is still held, so subscribers
    /// see changes in the order they happened (sending on a channel does not block).
    pub fn step(self: &Arc<Self>, f: impl FnOnce(&mut Election) -> Vec<Action>) {
        self.step_with(|e| ((), f(e)));
    }

    /// Like [`Node::step`], for transitions that also return an answer for the caller (the
    /// reply to an election message or an announcement).
    pub fn step_with<R>(self: &Arc<Self>, f: impl FnOnce(&mut Election) -> (R, Vec<Action>)) -> R {
        let (answer, actions) = self.with_election(|e| {
            let before = e.coordinator().cloned();
            let was_electing = e.phase() != &Phase::Idle;
            let (answer, actions) = f(e);
            let after = e.coordinator().cloned();
            self.time_round(was_electing, e.phase() != &Phase::Idle);
            if before != after {
                let term = e.term();
                self.publish(Change {
                    before,
                    after,
                    term,
                });
            }
            (answer, actions)
        });
        self.execute(actions);
        answer
    }

    /// Times rounds for `bully_last_election_seconds`, from the step that starts one to the
    /// step that ends it (won, or an announcement accepted). It used to end only on a change
    /// of coordinator, so a round that ended on the same one left its start behind and the
    /// next round was timed from there.
    fn time_round(&self, was_electing: bool, electing: bool) {
        let mut started = lock(&self.round_started);
        match (was_electing, electing) {
            (false, true) => *started = Some(Instant::now()),
            (true, false) => {
                if let Some(t) = started.take() {
                    self.metrics.election_finished(t.elapsed());
                }
            }
            _ => {}
        }
    }

    fn publish(&self, change: Change) {
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.coordinator_changes.fetch_add(1, Relaxed);
        lock(&self.subscribers).retain(|tx| tx.send(change.clone()).is_ok());
        self.leadership.bump();
    }

    pub fn gauges(&self) -> Gauges {
        let s = self.snapshot();
        Gauges {
            is_coordinator: s.is_coordinator,
            coordinator_id: s.coordinator.map(|c| c.id),
            members: lock(&self.known_members).len(),
            term: s.term,
            watchers: self.watchers.load(std::sync::atomic::Ordering::Relaxed),
        }
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
            term: s.term,
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

    /// Where to reach `node`: from the last known members, else from the registry.
    pub fn find_member(&self, node: &NodeRef) -> Option<Member> {
        let find = |ms: &[Member]| ms.iter().find(|m| m.node_ref() == *node).cloned();
        let known = find(&lock(&self.known_members));
        known.or_else(|| find(&self.members()))
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
        use std::sync::atomic::Ordering::Relaxed;
        match action {
            Action::CollectMembers { round } => {
                self.metrics.elections_started.fetch_add(1, Relaxed);
                let members = self.members();
                self.step(|e| e.members_collected(round, members));
            }
            Action::SendElection { round, to, term } => {
                let msg = ElectionMessage::from_node(&self.me.node_ref(), term);
                self.metrics.sent("proxy", to.len());
                let answers = PeerClient::fan_out(&to, |m| {
                    match self.post::<_, ProxyAnswer>(m, "/proxy", &msg, "proxy") {
                        Ok((200, Some(a))) if a.response == "OK" => Some(a),
                        Ok((status, _)) => {
                            log::debug!("{} answered /proxy with {status}", m.name);
                            None
                        }
                        Err(e) => {
                            log::debug!("{} did not answer /proxy: {e}", m.name);
                            None
                        }
                    }
                });
                // An answer in which the member names itself coordinator is its announcement.
                for (m, a) in to.iter().zip(&answers) {
                    if let Some(ProxyAnswer {
                        coordinator: Some(c),
                        node_id: Some(id),
                        term: Some(t),
                        ..
                    }) = a
                    {
                        if *c == m.name && *id == m.id {
                            self.step(|e| e.on_announce(&m.node_ref(), *t).1);
                        }
                    }
                }
                let ok = answers.iter().filter(|a| a.is_some()).count();
                self.step(|e| e.election_answered(round, ok));
            }
            Action::AwaitAnnouncement { round } => {
                std::thread::sleep(self.timing.announce_wait());
                self.step(|e| e.announcement_timed_out(round));
            }
            Action::Announce { to, term } => {
                self.metrics.elections_won.fetch_add(1, Relaxed);
                self.announce(&to, term);
            }
            Action::CheckCoordinator { coordinator } => {
                self.metrics.sent("health", 1);
                if self.coordinator_alive(&coordinator) {
                    self.with_election(|e| e.coordinator_confirmed(&coordinator));
                } else {
                    self.metrics.failover_detected("health_check");
                    self.step(|e| e.coordinator_failed(&coordinator));
                }
            }
            Action::CheckPrevious { previous } => {
                let alive = self
                    .members()
                    .iter()
                    .find(|m| m.node_ref() == previous)
                    .is_some_and(|m| self.client.is_alive(m));
                if alive {
                    self.step(|e| e.previous_alive(&previous));
                }
            }
            Action::LookForHigher => {
                let me = self.me.node_ref();
                let higher: Vec<Member> = self
                    .members()
                    .into_iter()
                    .filter(|m| m.name != me.name && m.node_ref() > me)
                    .collect();
                if PeerClient::fan_out(&higher, |m| self.client.is_alive(m))
                    .into_iter()
                    .any(|alive| alive)
                {
                    self.step(|e| e.higher_alive());
                }
            }
        }
    }

    /// POSTs an election message or announcement to `m`. A member too busy to take it (503:
    /// in a large cluster the election messages of every lower node reach it at once) is asked
    /// again shortly: a message it never saw could leave a node waiting out four timeouts for
    /// an announcement, then electing again.
    fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        m: &Member,
        path: &str,
        body: &B,
        kind: &str,
    ) -> Result<(u16, Option<T>), String> {
        let mut attempt = 1;
        loop {
            let answer = self.client.post(&m.address(), path, body);
            if !matches!(answer, Ok((503, _))) || attempt == BUSY_TRIES {
                return answer;
            }
            self.metrics.sent(kind, 1);
            std::thread::sleep(BUSY_BACKOFF * attempt);
            attempt += 1;
        }
    }

    /// Sends this node's announcement for `term` to `to`; a refusal makes it elect again above
    /// the highest term the refusers named.
    fn announce(self: &Arc<Self>, to: &[Member], term: u64) {
        let msg = Announcement::from_node(&self.me.node_ref(), term);
        self.metrics.sent("announce", to.len());
        let refusals = PeerClient::fan_out(to, |m| {
            match self.post::<_, Refusal>(m, "/announce", &msg, "announce") {
                Ok((409, Some(r))) => Some(r.term),
                Ok((200, _)) => None,
                r => {
                    log::debug!("announcement to {} failed: {r:?}", m.name);
                    None
                }
            }
        });
        if let Some(highest) = refusals.into_iter().flatten().max() {
            self.step(|e| e.announcement_refused(highest));
        }
    }

    /// Asks the other members for the term they follow, so that a (re)started node, which
    /// remembers none, does not win a term the cluster has used already.
    fn learn_term(&self) {
        let others: Vec<Member> = self
            .members()
            .into_iter()
            .filter(|m| m.name != self.me.name)
            .collect();
        let terms = PeerClient::fan_out(&others, |m| {
            match self.client.get::<NodeDetails>(&m.address(), "/nodeDetails") {
                Ok((200, Some(d))) if d.node_name == m.name => Some(d.term),
                _ => None,
            }
        });
        if let Some(term) = terms.into_iter().flatten().max() {
            log::info!("The members follow term {term} at most");
            self.with_election(|e| e.observe_term(term));
        }
    }

    /// Where the coordinator is: its registry entry, else the last entry seen of it, since
    /// registries can lose records (a restarted Consul dev agent forgets every service) or
    /// become unreachable while the coordinator runs on.
    fn locate_coordinator(&self, coordinator: &NodeRef) -> Option<Member> {
        let listed = self
            .members()
            .into_iter()
            .find(|m| m.node_ref() == *coordinator);
        let mut seen = lock(&self.coordinator_seen);
        if listed.is_some() {
            seen.clone_from(&listed);
        }
        seen.clone().filter(|m| m.node_ref() == *coordinator)
    }

    /// The coordinator is alive when it answers `GET /nodeDetails` saying it still leads: a
    /// node named coordinator by a stale or forged announcement, or restarted since, does not
    /// pass; one that left cleanly or died does not answer, whether a registry lists it or not.
    /// A `503` (too busy) passes.
    fn coordinator_alive(&self, coordinator: &NodeRef) -> bool {
        let Some(m) = self.locate_coordinator(coordinator) else {
            return false;
        };
        match self.client.get::<NodeDetails>(&m.address(), "/nodeDetails") {
            Ok((200, Some(d))) => d.is_coordinator && d.node_name == m.name && d.node_id == m.id,
            // Too many requests in flight: alive, only busy (a failover storm in a large
            // cluster). Taking it for dead started needless elections and terms that fed the
            // storm; the next check decides.
            Ok((503, _)) => true,
            _ => false,
        }
    }

    /// The two schedules of the original: the first election after the startup delay, then a
    /// coordinator health check every interval. Registration starts first, so the first
    /// election usually finds this node registered. Runs forever on the calling thread.
    pub fn run_schedules(self: &Arc<Self>) {
        self.start_registration();
        std::thread::sleep(self.timing.startup_delay);
        self.learn_term();
        self.step(|e| e.request_election());
        loop {
            std::thread::sleep(self.timing.health_interval);
            self.step(|e| e.on_health_tick());
        }
    }
}

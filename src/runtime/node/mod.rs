//! The node: the election state behind its lock, and the one `step` that applies an event,
//! publishes what changed and hands the effects to the executor. The lock is held only while
//! the core steps and its changes are published (channel sends, which never block); no I/O
//! ever runs under it.

pub mod api;
pub mod clock;
pub mod effects;
pub mod fence;
pub mod handle;
pub mod repeats;
pub mod schedules;
pub mod state_file;
pub mod timers;
pub mod timing;
pub mod turns;

use self::clock::Clock;
use self::effects::Executor;
use self::fence::Fence;
use self::handle::{Handle, Notice};
use self::repeats::{Repeats, Verdict};
use self::state_file::StateFile;
use self::timers::Timers;
use self::turns::Turns;
use crate::core::election::{Election, Settings, Snapshot};
use crate::core::event::Event;
use crate::core::member::{Member, NodeRef};
use crate::core::ready::{Change, Effect, Note, Persisted, Reply, RoundEdge};
use crate::http::peer::PeerClient;
use crate::runtime::lock::LeaderLock;
use crate::runtime::membership::directory::Directory;
use crate::runtime::metrics::Metrics;
use crate::runtime::watch::leadership::Leadership;
use crate::sync::{lock, StateLockHeld};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

pub struct Node {
    clock: Clock,
    election: Mutex<Election>,
    /// Terms used or acknowledged go here before anyone hears of them.
    state: StateFile,
    subscribers: Mutex<Vec<Sender<Notice>>>,
    /// Steps publish their changes and hand on their effects in the order they were taken.
    turns: Turns,
    /// When the current election round started, for `bully_last_election_seconds`.
    round_started: Mutex<Option<Instant>>,
    metrics: Arc<Metrics>,
    directory: Arc<Directory>,
    executor: Arc<Executor>,
    /// Wakes the `/watch` requests this node holds as coordinator.
    leadership: Arc<Leadership>,
    /// Set by the SIGINT/SIGTERM handler itself, a moment before the core hears of it.
    stopping: Arc<AtomicBool>,
    /// `--consul-lock`, `--etcd-lock`: takes and releases the leader lock.
    lock: Option<LeaderLock>,
    /// Bursts of one kind of log line are summarised.
    repeats: Repeats<std::mem::Discriminant<Note>>,
    this: Weak<Node>,
}

/// What a node is built from.
pub struct Parts {
    pub me: NodeRef,
    pub settings: Settings,
    pub clock: Clock,
    pub state: StateFile,
    /// What `state` held at start.
    pub persisted: Persisted,
    pub client: PeerClient,
    pub directory: Arc<Directory>,
    pub metrics: Arc<Metrics>,
    pub leadership: Arc<Leadership>,
    pub fence: Arc<Fence>,
    /// Set when SIGINT or SIGTERM arrives (see [`crate::runtime::process::signals`]).
    pub stopping: Arc<AtomicBool>,
    /// `--consul-lock`, `--etcd-lock`: the leader lock's shell.
    pub lock: Option<LeaderLock>,
}

impl Node {
    /// The node, with its timer thread running.
    pub fn start(parts: Parts) -> std::io::Result<Arc<Node>> {
        let timers = Timers::new();
        let executor = Executor::new(
            parts.me.clone(),
            parts.client,
            Arc::clone(&parts.directory),
            Arc::clone(&parts.metrics),
            timers.clone(),
            parts.fence,
        );
        let now = parts.clock.now();
        let node = Arc::new_cyclic(|this| Node {
            clock: parts.clock,
            election: Mutex::new(Election::new(
                parts.me,
                parts.settings,
                parts.persisted,
                now,
            )),
            state: parts.state,
            subscribers: Mutex::new(Vec::new()),
            turns: Turns::default(),
            round_started: Mutex::new(None),
            metrics: parts.metrics,
            directory: parts.directory,
            executor: Arc::new(executor),
            leadership: parts.leadership,
            stopping: parts.stopping,
            lock: parts.lock,
            repeats: Repeats::default(),
            this: this.clone(),
        });
        let handle: Weak<dyn Handle> = node.this.clone();
        timers.run_for(handle.clone())?;
        if let Some(lock) = &node.lock {
            lock.run_for(handle)?;
        }
        Ok(node)
    }

    /// Sends a change to every subscriber and wakes the held watches. Called in the
    /// step's turn, so subscribers see changes in the order they happened.
    fn publish(&self, change: &Change) {
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.coordinator_changes.fetch_add(1, Relaxed);
        self.notify(Notice::Changed(change.clone()));
        self.leadership.bump();
    }

    fn notify(&self, notice: Notice) {
        lock(&self.subscribers).retain(|tx| tx.send(notice.clone()).is_ok());
    }

    /// Times rounds for `bully_last_election_seconds` and counts them: a round that restarts
    /// is timed from its first start.
    fn count_rounds(&self, edges: &[RoundEdge]) {
        use std::sync::atomic::Ordering::Relaxed;
        let mut started = lock(&self.round_started);
        for edge in edges {
            match edge {
                RoundEdge::Started { .. } => {
                    self.metrics.elections_started.fetch_add(1, Relaxed);
                    started.get_or_insert_with(Instant::now);
                }
                RoundEdge::Ended { won, .. } => {
                    if *won {
                        self.metrics.elections_won.fetch_add(1, Relaxed);
                    }
                    if let Some(t) = started.take() {
                        self.metrics.election_finished(t.elapsed());
                    }
                }
            }
        }
    }

    fn log(&self, note: &Note) {
        if let Note::CoordinatorDown { by, .. } = note {
            self.metrics.failover_detected(by.label());
        }
        let verdict = if note.is_refusal() {
            self.repeats
                .admit(std::mem::discriminant(note), Instant::now())
        } else {
            Verdict::Show { left_out: 0 }
        };
        let left_out = match verdict {
            Verdict::Show { left_out: 0 } => String::new(),
            Verdict::Show { left_out } => format!(" ({left_out} more like this not shown)"),
            Verdict::LeaveOut => return,
        };
        if note.is_warning() {
            log::warn!(target: "bully::election", "{note}{left_out}");
        } else {
            log::info!(target: "bully::election", "{note}{left_out}");
        }
    }
}

impl Handle for Node {
    fn step(&self, event: Event) -> Option<Reply> {
        let (ready, ticket) = {
            let mut election = lock(&self.election);
            let _held = StateLockHeld::enter();
            let ready = election.step(self.clock.now(), event);
            // Drawn under the state lock: changes are published in the order the steps made
            // them, yet after their term is on disk, and no step waits on a disk holding it.
            (ready, self.turns.draw())
        };
        let turn = self.turns.wait(ticket);
        self.count_rounds(&ready.rounds);
        for note in &ready.notes {
            self.log(note);
        }
        // On disk before anyone hears of the term (the hooks included): a node that cannot
        // make sure of that must not go on, or a restart could hand the same term out twice.
        if let Some(p) = &ready.persist {
            if let Err(e) = self.state.save(p) {
                log::error!(
                    "cannot write the state file {}: {e}; exiting so that no term is ever used \
                     twice",
                    self.state.path().display()
                );
                std::process::exit(1);
            }
        }
        for change in &ready.changes {
            self.publish(change);
        }
        // Letting go is the hook runner's to carry out, in order with the changes; the lock
        // thread's, in order with each other.
        let (ordered, effects): (Vec<Effect>, Vec<Effect>) =
            ready.effects.into_iter().partition(|e| {
                matches!(
                    e,
                    Effect::StopLeading { .. }
                        | Effect::LeadingAgain { .. }
                        | Effect::AcquireLock { .. }
                        | Effect::ReleaseLock
                )
            });
        for effect in ordered {
            match effect {
                Effect::StopLeading { reason, term } => self.notify(Notice::LetGo { reason, term }),
                Effect::LeadingAgain { term } => self.notify(Notice::LeadingAgain { term }),
                lock_effect => {
                    if let Some(lock) = &self.lock {
                        lock.submit(&lock_effect);
                    }
                }
            }
        }
        drop(turn);
        if !effects.is_empty() {
            if let Some(this) = self.this.upgrade() {
                let handle: Arc<dyn Handle> = this;
                self.executor.execute(effects, &handle);
            }
        }
        ready.reply
    }

    /// The core's view, as the core says it reads once SIGINT or SIGTERM has arrived.
    fn snapshot(&self) -> Snapshot {
        let s = lock(&self.election).snapshot(self.clock.now());
        if self.stopping.load(Ordering::SeqCst) {
            s.once_stopping()
        } else {
            s
        }
    }

    fn subscribe(&self) -> Receiver<Notice> {
        let (tx, rx) = channel();
        lock(&self.subscribers).push(tx);
        rx
    }

    fn close_subscriptions(&self) {
        lock(&self.subscribers).clear();
    }

    fn locate(&self, node: &NodeRef) -> Option<Member> {
        self.directory.locate(node)
    }

    fn flush(&self, within: std::time::Duration) {
        self.executor.flush(within);
        if let Some(lock) = &self.lock {
            lock.flush(within);
        }
    }
}

//! The cluster as the model plays it: each node's real [`Election`], and around it what the
//! shell in `src/runtime` does with a step's output. Effects become messages, timers and
//! registry reads (`effects.rs`); a request is stepped into its receiver as the event
//! `api.rs` makes of it, and the receiver's reply travels back and is stepped into the sender
//! as the matching answer event (`effects.rs` again, one event per fan-out, one per announce
//! answer). A follower's held watch ends when its coordinator dies, is cut off or stops
//! leading (`watch.rs`). The network reorders freely and loses, duplicates and delays within a
//! fault budget; a node crashes (losing all but the floor its last persist wrote) and
//! restarts with a fresh clock; each node's clock runs at its own rate within the drift bound.
//! Each node's `--exec` child is played as `hooks.rs` and its supervisor run it: started on the
//! "elected" change with the change's fence, fenced further by every `Fence` effect, stopped
//! before the hooks step `LetGo` and with a crash of its node, and otherwise left running to
//! its fence, as a runner frozen for good would leave it.

use super::props::{
    History, Props, Violation, LEADER_HAS_A_BOUND_MAJORITY, ONE_LEADER_AT_A_TIME, WORK_IS_FENCED,
};
use super::time::{self, Clock, Rate};
use bully::core::election::{Election, QuorumState, Settings, Snapshot};
use bully::core::event::{
    AnnounceAnswer, CheckAnswer, Claim, ElectionAnswer, Event, ProbeAnswer, ProbePurpose, Purpose,
    Timer, Unreachable, WatchEnd,
};
use bully::core::member::{Member, NodeRef};
use bully::core::quorum::Quorum;
use bully::core::ready::{AnnounceReply, Change, Effect, Persisted, ProxyReply, Ready, Reply};
use std::fmt::Write as _;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

/// Every node's timers, in milliseconds of its own clock.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// `--startup-delay`: the first election.
    pub startup_ms: u64,
    /// `--health-interval`.
    pub health_ms: u64,
    /// `--timeout`: a request that gets no answer is reported this long after it was sent.
    pub timeout_ms: u64,
}

/// The cluster: its members and how each is configured. Constant through a run.
pub struct Spec {
    pub members: Vec<Member>,
    pub refs: Vec<NodeRef>,
    pub names: Vec<String>,
    pub settings: Vec<Settings>,
    pub timing: Timing,
    pub quorum: Option<Quorum>,
    pub props: Props,
    /// The highest node that stands for election: the one the cluster must agree on.
    pub highest: usize,
    /// A planted fault, to show that (g) catches it: each fence reaches the supervisor this
    /// many real ms late and is counted from its arrival (the relative deadlines of before).
    pub stretch_fence_ms: u64,
}

impl Spec {
    /// Nodes `node{id}` for each of `ids`; `witness` (an index) votes but never stands.
    pub fn new(
        ids: &[u64],
        witness: Option<usize>,
        quorum: Option<Quorum>,
        timing: Timing,
        props: Props,
    ) -> Spec {
        let members: Vec<Member> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| Member {
                name: format!("node{id}"),
                id,
                host: format!("10.0.0.{}", i + 1),
                port: 5000,
                witness: witness == Some(i),
            })
            .collect();
        let refs: Vec<NodeRef> = members.iter().map(Member::node_ref).collect();
        let settings = (0..ids.len())
            .map(|i| Settings {
                quorum: quorum.clone(),
                witness: witness == Some(i),
                // Quorum mode's nodes run an `--exec` child (see `start_work`): their hooks
                // let go before they release their followers.
                has_hooks: quorum.is_some(),
                ..Settings::for_timeout(Duration::from_millis(timing.timeout_ms))
            })
            .collect();
        let highest = (0..ids.len())
            .filter(|&i| witness != Some(i))
            .max_by_key(|&i| refs[i].clone())
            .expect("a node that stands");
        Spec {
            names: members.iter().map(|m| m.name.clone()).collect(),
            members,
            refs,
            settings,
            timing,
            quorum,
            props,
            highest,
            stretch_fence_ms: 0,
        }
    }

    fn index(&self, name: &str) -> usize {
        self.names
            .iter()
            .position(|n| n == name)
            .unwrap_or_else(|| panic!("{name} is no member"))
    }
}

/// How many faults of each kind are left to spend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Faults {
    /// A message lost on the wire (a request, or the answer to one).
    pub drops: u8,
    /// A message delivered twice.
    pub duplicates: u8,
    /// A message kept in flight while time goes on (a slow link, a frozen receiver).
    pub delays: u8,
    /// A node killed (`kill -9`); it may restart at any later moment.
    pub crashes: u8,
    /// The cluster split in two sides that cannot reach each other, until healed.
    pub partitions: u8,
}

/// A request the shell sends for an effect.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Req {
    /// `POST /proxy`.
    Proxy { term: u64 },
    /// `POST /announce`.
    Announce { term: u64 },
    /// `POST /release`.
    Release { term: u64 },
    /// `POST /takeover`.
    TakeOver { term: u64 },
    /// `GET /nodeDetails` (also what a probe asks).
    Details,
}

/// What an answer is for, so the sender can step the event it belongs to.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Tag {
    /// One answer of a fan-out that is stepped as one event once all are in.
    Slot {
        batch: u32,
        slot: usize,
    },
    Announce {
        term: u64,
        seq: u64,
    },
    Check(usize),
    Gone(usize),
    /// A release: nothing comes back.
    None,
}

/// An answer as the sender's client reads it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ans {
    /// No answer within the timeout (lost on the way there or back, or cut off).
    Timeout,
    /// Connection refused: nothing listens (the node is down).
    Refused,
    /// `/proxy` 200, with the answering node's term when it claims to lead.
    ProxyOk(Option<u64>),
    /// `/proxy` 409: the sender does not rank below.
    NotLower,
    Accepted(Option<u64>),
    Stale(u64),
    Promised(u64),
    Details {
        is_coordinator: bool,
        claiming: bool,
        term: u64,
        /// The coordinator it follows (a node index).
        follows: Option<usize>,
        preempts: bool,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Body {
    /// The registry read for `CollectMembers`: local, never lost.
    Members(Purpose),
    /// The hook runner's `LetGo` after `StopLeading`: local, never lost.
    LetGo,
    Request(Req, Tag),
    Reply(Ans, Tag),
}

/// Something in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Msg {
    pub from: usize,
    pub to: usize,
    /// The incarnation of the node that asked: an answer to a process that has died since is
    /// never delivered.
    pub inc: u32,
    pub body: Body,
    /// When the request was sent (real time): its timeout runs from then.
    pub asked: u64,
    /// Real time by which it must be delivered or lost before time may pass, unless delayed.
    pub due: u64,
    /// Spent a delay: may stay in flight while time passes.
    pub held: bool,
}

impl Msg {
    /// Whether it crosses the network (and so can be lost, duplicated or cut off). Timeouts and
    /// refusals are the sender's own client reporting.
    pub fn on_wire(&self) -> bool {
        match &self.body {
            Body::Members(_) | Body::LetGo => false,
            Body::Request(..) => true,
            Body::Reply(a, _) => !matches!(a, Ans::Timeout | Ans::Refused),
        }
    }
}

/// The answers of one fan-out (`fan_out` in `effects.rs`): stepped as one event once all
/// are in.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Batch {
    pub id: u32,
    pub join: Join,
    pub targets: Vec<usize>,
    pub answers: Vec<Option<Ans>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Join {
    Terms,
    Election(u64),
    Probe(ProbePurpose),
}

/// A timer or schedule of a running node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Due {
    Startup,
    Health,
    Core(Timer),
}

/// A running node process.
#[derive(Clone, Debug)]
pub struct Live {
    pub e: Election,
    pub clock: Clock,
    /// Pending timers: due at this clock reading.
    pub timers: Vec<(u64, Due)>,
    pub batches: Vec<Batch>,
    pub next_batch: u32,
    /// Its watch on the coordinator may end (armed by a change of coordinator here, or of
    /// leadership there).
    pub watch: bool,
    /// The fingerprint of `e`, renewed after every step (the core changes only in steps).
    pub fp: u64,
}

#[derive(Clone, Debug)]
pub struct Node {
    pub rate: Rate,
    /// What the state file holds.
    pub floor: u64,
    pub inc: u32,
    /// Shared between states until a step changes it.
    pub live: Option<Arc<Live>>,
    /// When it crashed, while it is down.
    pub down_since: Option<u64>,
    /// Its `--exec` child, while one may run: the real time its supervisor's fence ends it
    /// (`u64::MAX` without one).
    pub work: Option<u64>,
}

/// One state of the whole cluster.
#[derive(Clone, Debug)]
pub struct World {
    /// Real time.
    pub t: u64,
    pub nodes: Vec<Node>,
    pub net: Vec<Msg>,
    /// The nodes on one side of a partition (a bit each); 0 when whole.
    pub cut: u8,
    pub left: Faults,
    pub hist: History,
}

/// One move of the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Deliver(usize),
    Drop(usize),
    Duplicate(usize),
    Delay(usize),
    /// A due timer of a node (its index in the node's list).
    Fire(usize, usize),
    Watch(usize),
    Crash(usize),
    Restart(usize),
    Partition(u8),
    Heal,
    /// Real time moves on to the next moment anything is due.
    Advance,
}

impl Live {
    fn start(spec: &Spec, i: usize, floor: u64, t: u64, rate: Rate) -> Live {
        let e = Election::new(
            spec.refs[i].clone(),
            spec.settings[i].clone(),
            Persisted {
                floor,
                maintenance: false,
            },
            0,
        );
        Live {
            fp: debug_fingerprint(&e),
            e,
            clock: Clock { epoch: t, rate },
            timers: vec![(spec.timing.startup_ms, Due::Startup)],
            batches: Vec::new(),
            next_batch: 0,
            watch: false,
        }
    }
}

/// Whether `/watch` holds for a node in this state (`asks_to_be_followed` in `watch.rs`).
fn followed(s: &Snapshot) -> bool {
    s.is_coordinator
        || s.quorum
            .as_ref()
            .is_some_and(|q| matches!(q.state, QuorumState::Claiming | QuorumState::NoQuorum))
}

impl World {
    /// Every node started at real time 0 with an empty state directory.
    pub fn fresh(spec: &Spec, rates: &[Rate], faults: Faults) -> World {
        World {
            t: 0,
            nodes: rates
                .iter()
                .enumerate()
                .map(|(i, &rate)| Node {
                    rate,
                    floor: 0,
                    inc: 0,
                    live: Some(Arc::new(Live::start(spec, i, 0, 0, rate))),
                    work: None,
                    down_since: None,
                })
                .collect(),
            net: Vec::new(),
            cut: 0,
            left: faults,
            hist: History::new(rates.len()),
        }
    }

    fn live_mut(&mut self, i: usize) -> &mut Live {
        Arc::make_mut(self.nodes[i].live.as_mut().expect("a running node"))
    }

    pub fn now(&self, i: usize) -> Option<u64> {
        self.nodes[i].live.as_ref().map(|l| l.clock.at(self.t))
    }

    pub fn snapshot(&self, i: usize) -> Option<Snapshot> {
        let l = self.nodes[i].live.as_ref()?;
        Some(l.e.snapshot(l.clock.at(self.t)))
    }

    fn cut_between(&self, a: usize, b: usize) -> bool {
        self.cut != 0 && ((self.cut >> a) & 1) != ((self.cut >> b) & 1)
    }

    /// The next real time anything is due: a timer, an answer's timeout, the end of a
    /// promise or of a lease. `None` while something is due now.
    pub fn next_instant(&self, spec: &Spec) -> Option<u64> {
        let mut next = u64::MAX;
        for m in self.net.iter().filter(|m| !m.held) {
            if m.due <= self.t {
                return None;
            }
            next = next.min(m.due);
        }
        let margin = spec.quorum.as_ref().map_or(0, |q| q.stop_margin);
        for l in self.nodes.iter().filter_map(|n| n.live.as_ref()) {
            let now = l.clock.at(self.t);
            for (due, _) in &l.timers {
                if *due <= now {
                    return None;
                }
                next = next.min(l.clock.when(*due));
            }
            if let Some(q) = l.e.snapshot(now).quorum {
                if let Some(left) = q.promise_ms_left {
                    next = next.min(l.clock.when(now + left));
                }
                if let Some(left) = q.lease_ms_left {
                    let end = (now + left).saturating_sub(margin);
                    if end > now {
                        next = next.min(l.clock.when(end));
                    }
                }
            }
        }
        (next != u64::MAX).then_some(next)
    }

    /// Every message and timer of this moment has been handled (delivered, lost or delayed;
    /// fired).
    pub fn moment_handled(&self) -> bool {
        self.net.iter().all(|m| m.held || m.due > self.t)
            && self.nodes.iter().filter_map(|n| n.live.as_ref()).all(|l| {
                let now = l.clock.at(self.t);
                l.timers.iter().all(|(due, _)| *due > now)
            })
    }

    /// Nothing is left to happen at this moment: its messages and timers are handled and
    /// every watch whose end it brought has ended.
    pub fn moment_settled(&self, spec: &Spec) -> bool {
        self.moment_handled() && (0..self.nodes.len()).all(|i| self.watch_end(spec, i).is_none())
    }

    /// Nothing in flight, every node started and in no election round.
    pub fn quiet(&self) -> bool {
        self.net.is_empty()
            && self.nodes.iter().all(|n| {
                n.live.as_ref().is_some_and(|l| {
                    *l.e.phase() == bully::core::election::Phase::Idle
                        && l.batches.is_empty()
                        && !l.timers.iter().any(|(_, d)| *d == Due::Startup)
                })
            })
    }

    /// Every move possible now; time moves on only up to `horizon`. Messages and timers of
    /// one moment interleave freely, and single messages are lost, duplicated or delayed at
    /// any point. Watches end once the moment's messages and timers are handled; crashes,
    /// partitions strike once nothing more is left of the moment. A crashed node restarts at
    /// once (a supervisor restarting it) or stays down, and a partition stays: the fair runs of
    /// the liveness check heal it and restart every node from every later state, checking the
    /// safety properties all along.
    pub fn actions(&self, spec: &Spec, horizon: u64) -> Vec<Action> {
        let mut out = Vec::new();
        let handled = self.moment_handled();
        let between = handled && self.moment_settled(spec);
        for (k, m) in self.net.iter().enumerate() {
            if self.net[..k].contains(m) {
                continue;
            }
            out.push(Action::Deliver(k));
            if m.on_wire() && self.left.drops > 0 {
                out.push(Action::Drop(k));
            }
            if m.on_wire() && self.left.duplicates > 0 {
                out.push(Action::Duplicate(k));
            }
            if !m.held && m.due <= self.t && self.left.delays > 0 {
                out.push(Action::Delay(k));
            }
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(l) = &n.live else {
                if between && n.down_since == Some(self.t) {
                    out.push(Action::Restart(i));
                }
                continue;
            };
            let now = l.clock.at(self.t);
            for (j, timer) in l.timers.iter().enumerate() {
                if timer.0 <= now && !l.timers[..j].contains(timer) {
                    out.push(Action::Fire(i, j));
                }
            }
            if handled && self.watch_end(spec, i).is_some() {
                out.push(Action::Watch(i));
            }
            if between && self.left.crashes > 0 {
                out.push(Action::Crash(i));
            }
        }
        if between && self.cut == 0 && self.left.partitions > 0 {
            let n = self.nodes.len();
            for side in 1..(1u8 << (n - 1)) {
                out.push(Action::Partition(side));
            }
        }

        if between && self.next_instant(spec).is_some_and(|t| t <= horizon) {
            out.push(Action::Advance);
        }
        out
    }

    /// The moves that end every fault at once: heal the partition, restart every node down.
    pub fn recovery_moves(&self) -> Vec<Action> {
        let heal = (self.cut != 0).then_some(Action::Heal);
        let down = (0..self.nodes.len()).filter(|&i| self.nodes[i].live.is_none());
        heal.into_iter().chain(down.map(Action::Restart)).collect()
    }

    /// The move a fair, fault-free run makes next: the oldest message, else the earliest due
    /// timer, else a watch that ends, else time moves on (up to `limit`).
    pub fn fair_action(&self, spec: &Spec, limit: u64) -> Option<Action> {
        if let Some(k) = self.net.iter().position(|m| m.held || m.due <= self.t) {
            return Some(Action::Deliver(k));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            let Some(l) = &n.live else { continue };
            let now = l.clock.at(self.t);
            let due = l.timers.iter().enumerate().filter(|(_, t)| t.0 <= now);
            if let Some((j, _)) = due.min_by_key(|(_, t)| t.0) {
                return Some(Action::Fire(i, j));
            }
        }
        if let Some(i) = (0..self.nodes.len()).find(|&i| self.watch_end(spec, i).is_some()) {
            return Some(Action::Watch(i));
        }
        self.next_instant(spec)
            .filter(|t| *t <= limit)
            .map(|_| Action::Advance)
    }

    /// Applies `a`; `Err` when a property fails in the state it leads to.
    pub fn apply(&mut self, spec: &Spec, a: Action) -> Result<(), Violation> {
        match a {
            Action::Deliver(k) => {
                let m = self.net.remove(k);
                self.deliver(spec, m)?;
            }
            Action::Drop(k) => {
                self.left.drops -= 1;
                let m = self.net.remove(k);
                self.lose(spec, m);
            }
            Action::Duplicate(k) => {
                self.left.duplicates -= 1;
                let m = self.net[k].clone();
                self.net.push(m);
            }
            Action::Delay(k) => {
                self.left.delays -= 1;
                self.net[k].held = true;
            }
            Action::Fire(i, j) => {
                let l = self.live_mut(i);
                let (due, what) = l.timers.remove(j);
                let event = match what {
                    Due::Startup => {
                        l.timers.push((due + spec.timing.health_ms, Due::Health));
                        Event::Startup
                    }
                    Due::Health => {
                        l.timers.push((due + spec.timing.health_ms, Due::Health));
                        Event::HealthTick
                    }
                    Due::Core(timer) => Event::Timer(timer),
                };
                self.step(spec, i, event)?;
            }
            Action::Watch(i) => {
                let (c, end) = self.watch_end(spec, i).expect("a watch that ends");
                self.live_mut(i).watch = false;
                let coordinator = spec.refs[c].clone();
                self.step(spec, i, Event::WatchEnded { coordinator, end })?;
            }
            Action::Crash(i) => {
                self.left.crashes -= 1;
                let node = &mut self.nodes[i];
                node.live = None;
                // Its supervisor sees the socket close and kills the child at once.
                node.work = None;
                node.inc += 1;
                node.down_since = Some(self.t);
                // Its answers and registry reads die with it; its requests already sent
                // still arrive.
                self.net
                    .retain(|m| m.to != i || matches!(m.body, Body::Request(..)) && m.from != i);
                self.wake_watchers(spec, i);
            }
            Action::Restart(i) => {
                let node = &mut self.nodes[i];
                node.down_since = None;
                node.live = Some(Arc::new(Live::start(
                    spec, i, node.floor, self.t, node.rate,
                )));
            }
            Action::Partition(side) => {
                self.left.partitions -= 1;
                self.cut = side;
            }
            Action::Heal => self.cut = 0,
            Action::Advance => {
                self.t = self.next_instant(spec).expect("time to move to");
            }
        }
        self.check_now(spec)
    }

    /// Steps node `i` with `event` at its clock's reading and carries out the result as the
    /// shell would (`Node::step` in `src/runtime/node.rs`): persist, then the effects.
    fn step(&mut self, spec: &Spec, i: usize, event: Event) -> Result<Option<Reply>, Violation> {
        let t = self.t;
        let l = self.live_mut(i);
        let ready = l.e.step(l.clock.at(t), event);
        l.fp = debug_fingerprint(&l.e);
        self.carry_out(spec, i, ready)
    }

    fn carry_out(
        &mut self,
        spec: &Spec,
        i: usize,
        ready: Ready,
    ) -> Result<Option<Reply>, Violation> {
        if let Some(p) = &ready.persist {
            let node = &mut self.nodes[i];
            node.floor = node.floor.max(p.floor);
        }
        for effect in ready.effects {
            self.effect(spec, i, effect)?;
        }
        for change in &ready.changes {
            self.start_work(spec, i, change)?;
        }
        if !ready.changes.is_empty() {
            self.live_mut(i).watch = true;
            self.wake_watchers(spec, i);
        }
        self.observe(spec, i)?;
        Ok(ready.reply)
    }

    /// The hook runner on an "elected" change: the child starts under the change's fence.
    /// Started at the change, the earliest the shell could; a later start only shortens it.
    fn start_work(&mut self, spec: &Spec, i: usize, change: &Change) -> Result<(), Violation> {
        if spec.quorum.is_none() || !change.elected(&spec.refs[i]) {
            return Ok(());
        }
        let Some(fence) = change.fence else {
            return Err(Violation {
                property: WORK_IS_FENCED,
                detail: format!(
                    "{} is elected in term {} with no fence for its child",
                    spec.names[i], change.term
                ),
            });
        };
        let until = self.fence_end(spec, i, fence);
        let node = &mut self.nodes[i];
        node.work = Some(node.work.map_or(until, |w| w.max(until)));
        Ok(())
    }

    /// The real time a supervisor ends the child at, given fence `ms` of node `i`'s clock.
    fn fence_end(&self, spec: &Spec, i: usize, ms: u64) -> u64 {
        let clock = self.nodes[i].live.as_ref().expect("running").clock;
        clock.when(ms) + spec.stretch_fence_ms * time::UNITS_PER_MS
    }

    /// Node `c`'s leadership changed or it died: every watch held on it ends and is renewed.
    fn wake_watchers(&mut self, spec: &Spec, c: usize) {
        for l in self.nodes.iter_mut().filter_map(|n| n.live.as_mut()) {
            if !l.watch && l.e.coordinator() == Some(&spec.refs[c]) {
                Arc::make_mut(l).watch = true;
            }
        }
    }

    fn send(&mut self, from: usize, to: usize, body: Body) {
        self.net.push(Msg {
            from,
            to,
            inc: self.nodes[from].inc,
            body,
            asked: self.t,
            due: self.t,
            held: false,
        });
    }

    fn index_of(spec: &Spec, m: &Member) -> usize {
        spec.index(&m.name)
    }

    fn effect(&mut self, spec: &Spec, i: usize, effect: Effect) -> Result<(), Violation> {
        let targets = |ms: &[Member]| ms.iter().map(|m| Self::index_of(spec, m)).collect();
        match effect {
            Effect::CollectMembers { purpose } => self.send(i, i, Body::Members(purpose)),
            Effect::AskTerms { members } => {
                self.fan_out(spec, i, Join::Terms, targets(&members), Req::Details)?
            }
            Effect::SendElection { round, to, term } => self.fan_out(
                spec,
                i,
                Join::Election(round),
                targets(&to),
                Req::Proxy { term },
            )?,
            Effect::Announce { to, term, seq } => {
                for m in &to {
                    let tag = Tag::Announce { term, seq };
                    let body = Body::Request(Req::Announce { term }, tag);
                    self.send(i, Self::index_of(spec, m), body);
                }
            }
            Effect::AnnounceTo { nodes, term, seq } => {
                for n in &nodes {
                    let tag = Tag::Announce { term, seq };
                    let body = Body::Request(Req::Announce { term }, tag);
                    self.send(i, spec.index(&n.name), body);
                }
            }
            Effect::StopLeading { .. } => self.send(i, i, Body::LetGo),
            // Only the virtual IPs' announcements, which the model has none of.
            Effect::LeadingAgain { .. } => {}
            Effect::TakeOver { to, term } => {
                let body = Body::Request(Req::TakeOver { term }, Tag::None);
                self.send(i, spec.index(&to.name), body);
            }
            Effect::AcquireLock { .. } | Effect::ReleaseLock => {
                panic!("the model runs no --consul-lock")
            }
            Effect::Release { to, term } => {
                for m in &to {
                    let body = Body::Request(Req::Release { term }, Tag::None);
                    self.send(i, Self::index_of(spec, m), body);
                }
            }
            Effect::ConfirmGone { coordinator } => {
                let c = spec.index(&coordinator.name);
                self.send(i, c, Body::Request(Req::Details, Tag::Gone(c)));
            }
            Effect::CheckCoordinator { coordinator } => {
                let c = spec.index(&coordinator.name);
                self.send(i, c, Body::Request(Req::Details, Tag::Check(c)));
            }
            Effect::Probe { purpose, nodes } => {
                let ts = nodes.iter().map(|n| spec.index(&n.name)).collect();
                self.fan_out(spec, i, Join::Probe(purpose), ts, Req::Details)?
            }
            // The supervisor's deadline, moved forward for a child that runs.
            Effect::Fence { until } => {
                let end = self.fence_end(spec, i, until);
                if let Some(w) = self.nodes[i].work.as_mut() {
                    *w = (*w).max(end);
                }
            }
            Effect::StartTimer { timer, after } => {
                let t = self.t;
                let l = self.live_mut(i);
                let due = l.clock.at(t) + after.as_millis() as u64;
                l.timers.push((due, Due::Core(timer)));
            }
        }
        Ok(())
    }

    fn fan_out(
        &mut self,
        spec: &Spec,
        i: usize,
        join: Join,
        targets: Vec<usize>,
        req: Req,
    ) -> Result<(), Violation> {
        let l = self.live_mut(i);
        let id = l.next_batch;
        l.next_batch += 1;
        let batch = Batch {
            id,
            join,
            answers: vec![None; targets.len()],
            targets: targets.clone(),
        };
        if targets.is_empty() {
            let event = batch.event(spec);
            return self.step(spec, i, event).map(|_| ());
        }
        l.batches.push(batch);
        for (slot, to) in targets.into_iter().enumerate() {
            self.send(
                i,
                to,
                Body::Request(req.clone(), Tag::Slot { batch: id, slot }),
            );
        }
        Ok(())
    }

    /// A message lost on the wire: the sender's client reports a timeout once it runs out.
    fn lose(&mut self, spec: &Spec, m: Msg) {
        let (asker, answerer, tag) = match m.body {
            Body::Request(Req::Release { .. } | Req::TakeOver { .. }, _)
            | Body::Members(_)
            | Body::LetGo => return,
            Body::Request(_, tag) => (m.from, m.to, tag),
            Body::Reply(_, tag) => (m.to, m.from, tag),
        };
        let due = match &self.nodes[asker].live {
            Some(l) if self.nodes[asker].inc == m.inc => {
                let due = l.clock.when(l.clock.at(m.asked) + spec.timing.timeout_ms);
                due.max(self.t)
            }
            _ => self.t,
        };
        self.net.push(Msg {
            from: answerer,
            to: asker,
            inc: m.inc,
            body: Body::Reply(Ans::Timeout, tag),
            asked: m.asked,
            due,
            held: false,
        });
    }

    fn deliver(&mut self, spec: &Spec, m: Msg) -> Result<(), Violation> {
        if m.on_wire() && self.cut_between(m.from, m.to) {
            self.lose(spec, m);
            return Ok(());
        }
        match m.body.clone() {
            Body::Members(purpose) => {
                let members = spec.members.clone();
                self.step(spec, m.to, Event::Members { purpose, members })?;
            }
            Body::LetGo => {
                // The hooks stop the child before they let go.
                self.nodes[m.to].work = None;
                self.step(spec, m.to, Event::LetGo)?;
            }
            Body::Request(req, tag) => {
                let answer = if self.nodes[m.to].live.is_none() {
                    Some(Ans::Refused)
                } else {
                    self.serve(spec, m.from, m.to, req.clone())?
                };
                if let (Some(answer), false) = (
                    answer,
                    matches!(req, Req::Release { .. } | Req::TakeOver { .. }),
                ) {
                    self.net.push(Msg {
                        from: m.to,
                        to: m.from,
                        inc: m.inc,
                        body: Body::Reply(answer, tag),
                        asked: m.asked,
                        due: self.t,
                        held: false,
                    });
                }
            }
            Body::Reply(ans, tag) => {
                if self.nodes[m.to].live.is_some() && self.nodes[m.to].inc == m.inc {
                    self.answered(spec, m.to, m.from, ans, tag)?;
                }
            }
        }
        Ok(())
    }

    /// Node `j` answers `req` from `from` as `api.rs` does.
    fn serve(
        &mut self,
        spec: &Spec,
        from: usize,
        j: usize,
        req: Req,
    ) -> Result<Option<Ans>, Violation> {
        let sender = spec.refs[from].clone();
        Ok(Some(match req {
            Req::Proxy { term } => {
                match self.step(spec, j, Event::Proxy { from: sender, term })? {
                    Some(Reply::Proxy(ProxyReply::Ok)) => Ans::ProxyOk(None),
                    Some(Reply::Proxy(ProxyReply::Coordinator { term })) => {
                        Ans::ProxyOk(Some(term))
                    }
                    Some(Reply::Proxy(ProxyReply::NotLower)) => Ans::NotLower,
                    other => panic!("/proxy answered with {other:?}"),
                }
            }
            Req::Announce { term } => {
                match self.step(spec, j, Event::Announce { from: sender, term })? {
                    Some(Reply::Announce(AnnounceReply::Ok { promise_ms })) => {
                        Ans::Accepted(promise_ms)
                    }
                    Some(Reply::Announce(AnnounceReply::Stale { term })) => Ans::Stale(term),
                    Some(Reply::Announce(AnnounceReply::Promised { remaining_ms, .. })) => {
                        Ans::Promised(remaining_ms)
                    }
                    other => panic!("/announce answered with {other:?}"),
                }
            }
            Req::Release { term } => {
                self.step(spec, j, Event::Release { from: sender, term })?;
                return Ok(None);
            }
            Req::TakeOver { term } => {
                self.step(spec, j, Event::TakeOver { from: sender, term })?;
                return Ok(None);
            }
            Req::Details => {
                let s = self.snapshot(j).expect("running");
                Ans::Details {
                    is_coordinator: s.is_coordinator,
                    claiming: s.quorum.as_ref().is_some_and(|q| {
                        matches!(q.state, QuorumState::Claiming | QuorumState::NoQuorum)
                    }),
                    term: s.term,
                    follows: s.coordinator.map(|c| spec.index(&c.name)),
                    preempts: s.preempts,
                }
            }
        }))
    }

    /// An answer reached node `i` from `from`.
    fn answered(
        &mut self,
        spec: &Spec,
        i: usize,
        from: usize,
        ans: Ans,
        tag: Tag,
    ) -> Result<(), Violation> {
        let event = match tag {
            Tag::Slot { batch, slot } => {
                let l = self.live_mut(i);
                let Some(k) = l.batches.iter().position(|b| b.id == batch) else {
                    return Ok(());
                };
                let b = &mut l.batches[k];
                if b.answers[slot].is_some() {
                    return Ok(());
                }
                b.answers[slot] = Some(ans);
                if b.answers.iter().any(Option::is_none) {
                    return Ok(());
                }
                l.batches.remove(k).event(spec)
            }
            Tag::Announce { term, seq } => Event::AnnounceAnswered {
                term,
                seq,
                answers: vec![(spec.members[from].clone(), ans.announce())],
            },
            Tag::Check(c) => Event::CoordinatorChecked {
                coordinator: spec.refs[c].clone(),
                answer: ans.check(spec, from),
            },
            Tag::Gone(c) => Event::GoneChecked {
                coordinator: spec.refs[c].clone(),
                answer: ans.check(spec, from),
            },
            Tag::None => return Ok(()),
        };
        self.step(spec, i, event).map(|_| ())
    }

    /// How node `i`'s watch ends now, if it does (`follow` and `serve` in `watch.rs`): on
    /// the coordinator it knows whenever it does not lead itself.
    pub fn watch_end(&self, spec: &Spec, i: usize) -> Option<(usize, WatchEnd)> {
        let l = self.nodes[i].live.as_ref()?;
        if !l.watch {
            return None;
        }
        let s = l.e.snapshot(l.clock.at(self.t));
        if s.is_coordinator {
            return None;
        }
        let c = spec.index(&s.coordinator?.name);
        if self.cut_between(i, c) {
            return Some((c, WatchEnd::TimedOut));
        }
        match self.snapshot(c) {
            None => Some((c, WatchEnd::Closed)),
            Some(cs) if followed(&cs) => None,
            Some(_) => Some((c, WatchEnd::NotCoordinator)),
        }
    }

    /// Records what node `i` now does, for the properties that look back.
    fn observe(&mut self, spec: &Spec, i: usize) -> Result<(), Violation> {
        let s = self.snapshot(i).expect("running");
        if s.is_coordinator {
            self.hist.acting(&spec.props, &spec.names, i, s.term)?;
        }
        if let Some(c) = s.coordinator.filter(|c| *c != spec.refs[i]) {
            let c = spec.index(&c.name);
            self.hist
                .following(&spec.props, &spec.names, i, c, s.term)?;
        }
        Ok(())
    }

    /// The properties of a moment: (a) and (a').
    pub fn check_now(&self, spec: &Spec) -> Result<(), Violation> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| self.snapshot(i).is_some_and(|s| s.is_coordinator))
            .collect();
        if spec.props.one_leader_at_a_time && leaders.len() > 1 {
            let names: Vec<&str> = leaders.iter().map(|&i| spec.names[i].as_str()).collect();
            return Err(Violation {
                property: ONE_LEADER_AT_A_TIME,
                detail: format!(
                    "{} all act as coordinator at {}",
                    names.join(", "),
                    time::ms(self.t)
                ),
            });
        }
        self.check_work(spec)?;
        let Some(q) = spec.quorum.as_ref().filter(|_| spec.props.bound_majority) else {
            return Ok(());
        };
        for &l in &leaders {
            let bound = (0..self.nodes.len())
                .filter(|&f| f != l && self.bound_to(spec, f, l))
                .count();
            if bound < q.needed_from_others() {
                return Err(Violation {
                    property: LEADER_HAS_A_BOUND_MAJORITY,
                    detail: format!(
                        "{} acts at {} with {bound} other node(s) bound to it, {} needed",
                        spec.names[l],
                        time::ms(self.t),
                        q.needed_from_others()
                    ),
                });
            }
        }
        Ok(())
    }

    /// (g): every child still inside its fence has a majority bound to its node until the
    /// fence ends.
    fn check_work(&self, spec: &Spec) -> Result<(), Violation> {
        let Some(q) = spec.quorum.as_ref().filter(|_| spec.props.work_is_fenced) else {
            return Ok(());
        };
        let working: Vec<(usize, u64)> = (0..self.nodes.len())
            .filter_map(|i| {
                self.nodes[i]
                    .work
                    .filter(|&end| self.t < end)
                    .map(|e| (i, e))
            })
            .collect();
        for &(l, end) in &working {
            let bound = (0..self.nodes.len())
                .filter(|&f| f != l && self.bound_until(spec, f, l, end))
                .count();
            if bound < q.needed_from_others() {
                let fence = if end == u64::MAX {
                    "no fence".to_string()
                } else {
                    format!("its fence at {}", time::ms(end))
                };
                return Err(Violation {
                    property: WORK_IS_FENCED,
                    detail: format!(
                        "{}'s child runs at {} with {fence}, {bound} other node(s) bound to it \
                         that long, {} needed",
                        spec.names[l],
                        time::ms(self.t),
                        q.needed_from_others()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Whether node `f` acknowledges nobody but `l` until real time `end`: promised to it (or
    /// quiet after a restart) until then, or down.
    fn bound_until(&self, spec: &Spec, f: usize, l: usize, end: u64) -> bool {
        let Some(live) = &self.nodes[f].live else {
            return true;
        };
        let now = live.clock.at(self.t);
        let Some(q) = live.e.snapshot(now).quorum else {
            return false;
        };
        let (Some(to), Some(left)) = (q.promised_to, q.promise_ms_left) else {
            return false;
        };
        (to == spec.names[l] || to == "(restart)") && live.clock.when(now + left) >= end
    }

    /// Whether node `f` would acknowledge nobody but `l` now: promised to it, quiet after a
    /// restart, or down.
    fn bound_to(&self, spec: &Spec, f: usize, l: usize) -> bool {
        let Some(s) = self.snapshot(f) else {
            return true;
        };
        let to = s.quorum.and_then(|q| q.promised_to);
        to.is_some_and(|to| to == spec.names[l] || to == "(restart)")
    }

    /// The cluster agrees: every node runs, the highest standing one leads and the others
    /// follow it.
    pub fn agreed(&self, spec: &Spec) -> bool {
        let h = &spec.refs[spec.highest];
        (0..self.nodes.len()).all(|i| match self.snapshot(i) {
            None => false,
            Some(s) if i == spec.highest => s.is_coordinator,
            Some(s) => s.coordinator.as_ref() == Some(h),
        })
    }

    /// A fingerprint of the whole state: the cores by their `Debug` text, the rest by value;
    /// messages, timers and fan-outs as multisets, so their order does not matter.
    pub fn fingerprint(&self) -> u64 {
        let mut h = Fp::default();
        (self.t, self.cut, self.left, &self.hist).hash(&mut h);
        for n in &self.nodes {
            (n.rate, n.floor, n.inc, n.down_since, n.work).hash(&mut h);
            match &n.live {
                None => 0u8.hash(&mut h),
                Some(l) => {
                    (1u8, l.fp, l.clock, l.next_batch, l.watch).hash(&mut h);
                    multiset(&l.timers).hash(&mut h);
                    multiset(&l.batches).hash(&mut h);
                }
            }
        }
        multiset(&self.net).hash(&mut h);
        h.finish()
    }

    /// One line per node, for traces.
    pub fn summary(&self, spec: &Spec) -> Vec<String> {
        (0..self.nodes.len())
            .map(|i| {
                let n = &self.nodes[i];
                let name = &spec.names[i];
                let Some(l) = &n.live else {
                    return format!("{name}: down (floor {})", n.floor);
                };
                let now = l.clock.at(self.t);
                let s = l.e.snapshot(now);
                let mut line = format!(
                    "{name} [{} clock, {now} ms]: coordinator {}, term {}, {:?}",
                    n.rate.label(),
                    s.coordinator.as_ref().map_or("none", |c| c.name.as_str()),
                    s.term,
                    l.e.phase()
                );
                if s.is_coordinator {
                    line.push_str(", ACTING");
                }
                if let Some(q) = &s.quorum {
                    let _ = write!(line, ", {}", q.state.label());
                    if let Some(left) = q.lease_ms_left {
                        let _ = write!(line, " (lease {left} ms left)");
                    }
                    if let (Some(to), Some(left)) = (&q.promised_to, q.promise_ms_left) {
                        let _ = write!(line, ", promised to {to} for {left} ms");
                    }
                }
                line
            })
            .collect()
    }

    /// Everything of the state, for debugging the model.
    pub fn dump(&self, spec: &Spec) -> String {
        let mut out = format!(
            "t = {}, cut {:b}, left {:?}\n",
            time::ms(self.t),
            self.cut,
            self.left
        );
        for line in self.summary(spec) {
            out.push_str(&format!("  {line}\n"));
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(l) = &n.live {
                out.push_str(&format!(
                    "  {} timers {:?} batches {}\n",
                    spec.names[i],
                    l.timers,
                    l.batches.len()
                ));
            }
        }
        for m in &self.net {
            out.push_str(&format!(
                "  msg {} due {}\n",
                self.describe(spec, m),
                time::ms(m.due)
            ));
        }
        out
    }

    /// What `a` does, in words; replays find their moves by it.
    pub fn label(&self, spec: &Spec, a: Action) -> String {
        let name = |i: usize| spec.names[i].as_str();
        match a {
            Action::Deliver(k) => format!("deliver {}", self.describe(spec, &self.net[k])),
            Action::Drop(k) => format!("drop {}", self.describe(spec, &self.net[k])),
            Action::Duplicate(k) => format!("duplicate {}", self.describe(spec, &self.net[k])),
            Action::Delay(k) => format!("delay {}", self.describe(spec, &self.net[k])),
            Action::Fire(i, j) => {
                let l = self.nodes[i].live.as_ref().expect("running");
                let (due, what) = &l.timers[j];
                let what = match what {
                    Due::Startup => "Startup".to_string(),
                    Due::Health => "HealthTick".to_string(),
                    Due::Core(t) => format!("{t:?}"),
                };
                format!("{} fires {what} (due at {due} ms of its clock)", name(i))
            }
            Action::Watch(i) => {
                let (c, end) = self.watch_end(spec, i).expect("a watch that ends");
                format!("{}'s watch on {} ends: {end:?}", name(i), name(c))
            }
            Action::Crash(i) => format!("crash {}", name(i)),
            Action::Restart(i) => format!("restart {}", name(i)),
            Action::Partition(side) => {
                let (a, b): (Vec<usize>, Vec<usize>) =
                    (0..self.nodes.len()).partition(|i| (side >> i) & 1 == 1);
                let list = |v: Vec<usize>| v.into_iter().map(name).collect::<Vec<_>>().join(", ");
                format!("partition {{{}}} | {{{}}}", list(a), list(b))
            }
            Action::Heal => "heal the partition".to_string(),
            Action::Advance => format!(
                "time passes to {}",
                time::ms(self.next_instant(spec).unwrap_or(self.t))
            ),
        }
    }

    fn describe(&self, spec: &Spec, m: &Msg) -> String {
        let (a, b) = (&spec.names[m.from], &spec.names[m.to]);
        let held = if m.held { " (delayed)" } else { "" };
        match &m.body {
            Body::Members(p) => format!("{a}'s registry read for {p:?}{held}"),
            Body::LetGo => format!("{a}'s hooks let go{held}"),
            Body::Request(r, _) => {
                let r = match r {
                    Req::Proxy { term } => format!("POST /proxy (term {term})"),
                    Req::Announce { term } => format!("POST /announce (term {term})"),
                    Req::Release { term } => format!("POST /release (term {term})"),
                    Req::Details => "GET /nodeDetails".to_string(),
                    Req::TakeOver { term } => format!("POST /takeover (term {term})"),
                };
                format!("{a} -> {b} {r}{held}")
            }
            Body::Reply(ans, tag) => {
                let what = match tag {
                    Tag::Slot { batch, .. } => format!("fan-out {batch}"),
                    Tag::Announce { term, seq } => format!("announce {seq} of term {term}"),
                    Tag::Check(_) => "coordinator check".to_string(),
                    Tag::Gone(_) => "gone check".to_string(),
                    Tag::None => "release".to_string(),
                };
                format!("{a} -> {b} answer to {what}: {ans:?}{held}")
            }
        }
    }
}

impl Batch {
    /// The event `effects.rs` steps once every answer of the fan-out is in.
    fn event(&self, spec: &Spec) -> Event {
        let answers = self.targets.iter().zip(&self.answers);
        let answered = answers.map(|(&j, a)| (j, a.clone().expect("every answer is in")));
        match &self.join {
            Join::Terms => Event::TermsAnswered {
                answers: answered
                    .map(|(j, a)| (spec.members[j].clone(), a.check(spec, j)))
                    .collect(),
            },
            Join::Election(round) => Event::ElectionAnswered {
                round: *round,
                answers: answered
                    .map(|(j, a)| (spec.members[j].clone(), a.election(spec, j)))
                    .collect(),
            },
            Join::Probe(purpose) => Event::Probed {
                purpose: purpose.clone(),
                answers: answered
                    .map(|(j, a)| (spec.refs[j].clone(), a.probe()))
                    .collect(),
            },
        }
    }
}

impl Ans {
    fn unreachable(&self) -> Unreachable {
        match self {
            Ans::Timeout => Unreachable::Timeout,
            Ans::Refused => Unreachable::Refused,
            other => panic!("{other:?} is an answer"),
        }
    }

    /// As `check_answer` in `effects.rs` reads `/nodeDetails` of node `j`.
    fn check(&self, spec: &Spec, j: usize) -> CheckAnswer {
        match *self {
            Ans::Details {
                is_coordinator,
                claiming,
                term,
                follows,
                preempts,
            } => CheckAnswer::Details {
                name: spec.members[j].name.clone(),
                id: spec.members[j].id,
                is_coordinator,
                claiming,
                term,
                follows: follows.map(|f| spec.refs[f].clone()),
                preempts,
            },
            _ => CheckAnswer::Unreachable(self.unreachable()),
        }
    }

    /// As `election_answer` reads `/proxy` of node `j`.
    fn election(&self, spec: &Spec, j: usize) -> ElectionAnswer {
        match *self {
            Ans::ProxyOk(claim) => ElectionAnswer::Ok {
                claim: claim.map(|term| Claim {
                    name: spec.members[j].name.clone(),
                    id: spec.members[j].id,
                    term,
                }),
            },
            Ans::NotLower => ElectionAnswer::Refused { status: 409 },
            _ => ElectionAnswer::Unreachable(self.unreachable()),
        }
    }

    /// As `announce_answer` reads `/announce`.
    fn announce(&self) -> AnnounceAnswer {
        match *self {
            Ans::Accepted(promise_ms) => AnnounceAnswer::Accepted { promise_ms },
            Ans::Stale(term) => AnnounceAnswer::Stale { term },
            Ans::Promised(remaining_ms) => AnnounceAnswer::Promised { remaining_ms },
            _ => AnnounceAnswer::Unreachable(self.unreachable()),
        }
    }

    fn probe(&self) -> ProbeAnswer {
        match self {
            Ans::Details {
                preempts,
                is_coordinator,
                ..
            } => ProbeAnswer::Node {
                preempts: *preempts,
                leads: *is_coordinator,
            },
            _ => ProbeAnswer::Unreachable(self.unreachable()),
        }
    }
}

/// A fast 64-bit hash for fingerprints (a multiply-rotate mix, eight bytes at a time, with
/// a strong finish): states are told apart by it, not protected against an adversary.
#[derive(Default)]
struct Fp {
    h: u64,
    tail: u64,
    tail_len: u32,
}

impl Fp {
    fn push(&mut self, b: u8) {
        self.tail |= (b as u64) << (8 * self.tail_len);
        self.tail_len += 1;
        if self.tail_len == 8 {
            let w = self.tail;
            self.mix(w);
            self.tail = 0;
            self.tail_len = 0;
        }
    }

    fn mix(&mut self, word: u64) {
        self.h = (self.h ^ word)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .rotate_left(31);
    }
}

impl Hasher for Fp {
    fn write(&mut self, bytes: &[u8]) {
        let mut rest = bytes;
        while self.tail_len > 0 && !rest.is_empty() {
            self.push(rest[0]);
            rest = &rest[1..];
        }
        let mut words = rest.chunks_exact(8);
        for w in &mut words {
            self.mix(u64::from_le_bytes(w.try_into().expect("eight bytes")));
        }
        for &b in words.remainder() {
            self.push(b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }

    fn finish(&self) -> u64 {
        let mut x = self.h ^ self.tail ^ (self.tail_len as u64).rotate_left(56);
        x ^= x >> 33;
        x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
        x ^= x >> 33;
        x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        x ^ (x >> 33)
    }
}

/// A fingerprint of a core by its `Debug` text, which shows every field.
fn debug_fingerprint(e: &Election) -> u64 {
    thread_local! {
        static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
    }
    TEXT.with(|text| {
        let mut text = text.borrow_mut();
        text.clear();
        write!(text, "{e:?}").expect("formatting");
        let mut h = Fp::default();
        h.write(text.as_bytes());
        h.finish()
    })
}

/// An order-free hash of `items`.
fn multiset<T: Hash>(items: &[T]) -> (usize, u64) {
    let sum = items.iter().fold(0u64, |acc, x| {
        let mut h = Fp::default();
        x.hash(&mut h);
        acc.wrapping_add(h.finish())
    });
    (items.len(), sum)
}

//! What follows from leadership: the `--on-elected` and `--on-demoted` hooks, the `--exec`
//! child and the virtual IPs (`--vip`).
//!
//! One thread consumes the node's coordinator changes in the order they happened, so a hook
//! never holds up an election and hooks never run out of order: every "elected" is followed by
//! exactly one "demoted" (at the latest on shutdown) before the next "elected". Every command
//! runs through `sh -c` as the leader of its own process group under a [`Supervised`]
//! process, so a timeout or a demotion stops the children it started as well, and none of
//! them outlives the node. The virtual IPs are held by a supervisor of their own (see
//! `supervisor::holder`), fenced like the `--exec` child: they go up first when this node
//! wins, before the `--on-elected` hook, and go first when it lets go, before the child stops.

use super::child_output::Output;
use super::vips::Vips;
use crate::core::event::Event;
use crate::core::member::NodeRef;
use crate::core::ready::{Change, Reason};
use crate::monotonic::MonoMs;
use crate::runtime::metrics::Metrics;
use crate::runtime::node::fence::Fence;
use crate::runtime::node::handle::{Handle, Notice};
use crate::supervisor::{holder, Killed, Supervised};
use crate::sync::spawn_named;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the runner looks at a running `--exec` child while no change arrives.
const EXEC_POLL: Duration = Duration::from_millis(250);
/// How long a finished hook's output may still trickle in before its exit is logged.
const OUTPUT_DRAIN: Duration = Duration::from_millis(500);
/// The variables every hook and the `--exec` child get: a `bully` they run sees them, and
/// the command line knows them.
pub const VARIABLES: [&str; 6] = [
    "BULLY_NODE",
    "BULLY_NODE_ID",
    "BULLY_COORDINATOR",
    "BULLY_COORDINATOR_ID",
    "BULLY_TERM",
    "BULLY_REASON",
];

/// What follows from leadership, as the command line set it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HookOptions {
    pub on_elected: Option<String>,
    pub on_demoted: Option<String>,
    /// A hook still running after this long is killed with its process group.
    pub timeout: Duration,
    pub exec: Option<String>,
    /// On demotion or exit the exec child gets SIGTERM, then SIGKILL after this long.
    pub exec_grace: Duration,
    /// `--exec-exit-unhealthy`: an exec child that exits by itself takes the node out of the
    /// running (the core decides; this only tells it).
    pub exit_unhealthy: bool,
}

impl HookOptions {
    /// Whether anything follows from leadership at all (else no hook thread is started).
    pub fn any(&self) -> bool {
        self.on_elected.is_some() || self.on_demoted.is_some() || self.exec.is_some()
    }
}

/// The lease keeper's name in `ps` and the command it runs: nothing, for as long as it may.
const KEEPER: &str = "lease-keeper";
const KEEPER_CMD: &str = "exec sleep 2147483647";

/// The running hook thread, kept so that shutdown can let go of leadership first.
pub struct Hooks {
    node: Arc<dyn Handle>,
    stopping: Arc<AtomicBool>,
    /// The node's term when shutdown began, for the last demoted hook.
    final_term: Arc<AtomicU64>,
    done: Receiver<()>,
    /// Longest the runner can take to finish after shutdown begins: the hook under way, the
    /// exec child's grace, and the demoted hook.
    bound: Duration,
}

impl Hooks {
    /// Subscribes to `node`'s changes and starts the runner thread. Call before the node's
    /// schedules and server start, so no change is missed.
    pub fn start(
        node: Arc<dyn Handle>,
        me: NodeRef,
        opts: HookOptions,
        fence: Arc<Fence>,
        vips: Arc<Vips>,
        metrics: Arc<Metrics>,
        lock_variable: &'static str,
    ) -> std::io::Result<Hooks> {
        let changes = node.subscribe();
        let stopping = Arc::new(AtomicBool::new(false));
        let final_term = Arc::new(AtomicU64::new(0));
        let (done_tx, done) = channel();
        let bound = opts.timeout * 2 + opts.exec_grace + Duration::from_secs(5);
        let runner = Runner {
            node: Arc::clone(&node),
            fence,
            me,
            opts,
            stopping: Arc::clone(&stopping),
            final_term: Arc::clone(&final_term),
            leading: false,
            lock_index: None,
            lock_variable,
            exec: None,
            keeper: None,
            vips,
            holder: None,
            metrics,
        };
        spawn_named("hooks", move || {
            runner.run(changes);
            let _ = done_tx.send(());
        })?;
        Ok(Hooks {
            node,
            stopping,
            final_term,
            done,
            bound,
        })
    }

    /// On shutdown: no hook starts for a later change; if this node leads, its exec child is
    /// stopped and the demoted hook runs. Waits for that, at most for the timeouts it is
    /// bounded by.
    pub fn leave(self) {
        self.final_term
            .store(self.node.snapshot().term, Ordering::SeqCst);
        self.stopping.store(true, Ordering::SeqCst);
        self.node.close_subscriptions();
        if self.done.recv_timeout(self.bound).is_err() {
            log::warn!(
                "hooks did not finish within {:?}; exiting anyway",
                self.bound
            );
        }
    }
}

struct Runner {
    /// Told when the hooks have let go of leadership.
    node: Arc<dyn Handle>,
    /// Quorum mode: the end of the lease, which the exec child's supervisor enforces.
    fence: Arc<Fence>,
    me: NodeRef,
    opts: HookOptions,
    stopping: Arc<AtomicBool>,
    final_term: Arc<AtomicU64>,
    /// The elected hook ran and its demoted hook is still owed.
    leading: bool,
    /// `--consul-lock`, `--etcd-lock`: the lock's fencing token this leadership holds (the
    /// `LockIndex`, the leader key's revision), for its hooks.
    lock_index: Option<u64>,
    /// The variable hooks get it in: `BULLY_CONSUL_LOCK_INDEX` or `BULLY_ETCD_REVISION`.
    lock_variable: &'static str,
    exec: Option<Supervised>,
    /// `--etcd-lock` without an `--exec` child: a supervised placeholder that outlives a
    /// killed node just long enough to revoke its lease, so the next node need not wait out
    /// the TTL (with a child, the child's supervisor does it).
    keeper: Option<Supervised>,
    /// `--vip`: the addresses, and their holder while it holds them.
    vips: Arc<Vips>,
    holder: Option<Supervised>,
    /// Failed hooks and exec children are counted.
    metrics: Arc<Metrics>,
}

impl Runner {
    /// Handles changes until the node closes the subscription (shutdown), then lets go of
    /// leadership if it still holds it.
    fn run(mut self, changes: Receiver<Notice>) {
        loop {
            let next = if self.exec.is_some() || self.holder.is_some() {
                changes.recv_timeout(EXEC_POLL)
            } else {
                changes.recv().map_err(|_| RecvTimeoutError::Disconnected)
            };
            match next {
                // Changes still queued when shutdown began are skipped: leave() runs the one
                // demoted hook that is owed.
                Ok(Notice::Changed(change)) if !self.stopping.load(Ordering::SeqCst) => {
                    self.handle(&change)
                }
                Ok(Notice::LeadingAgain { term }) if !self.stopping.load(Ordering::SeqCst) => {
                    if let Some(holder) = self.holder.as_mut().filter(|_| self.leading) {
                        log::info!(
                            "announcing the virtual IPs again: leading again in term {term}"
                        );
                        holder.announce_again();
                    }
                }
                Ok(Notice::LetGo { reason, term }) if !self.stopping.load(Ordering::SeqCst) => {
                    // Still coordinator, letting go (step-down, unhealthy, maintenance, a
                    // higher node): stop the work now, then tell the node it may hand over.
                    if std::mem::take(&mut self.leading) {
                        self.let_go(None, term, reason);
                    }
                    self.node.step(Event::LetGo);
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            self.reap_exec();
            self.reap_holder();
            self.push_fence();
        }
        if std::mem::take(&mut self.leading) {
            self.let_go(
                None,
                self.final_term.load(Ordering::SeqCst),
                Reason::Shutdown,
            );
        }
        self.node.step(Event::LetGo);
    }

    /// Hands the exec child's supervisor the latest end of the lease: past it the child is
    /// killed even if this process can no longer say so (frozen, cut off).
    fn push_fence(&mut self) {
        if self.exec.is_none() && self.holder.is_none() {
            return;
        }
        let Some(until) = self.fence.until() else {
            return;
        };
        for child in [&mut self.exec, &mut self.holder].into_iter().flatten() {
            if child.fence().is_none_or(|f| until > f) {
                child.set_fence(Some(until));
            }
        }
    }

    /// The fence a child of this leadership starts under: the lease the win was granted
    /// with, or a later one of this node's already known. `Err` in quorum mode when there is
    /// none (nothing may start then).
    fn start_fence(&self, change: &Change) -> Result<Option<MonoMs>, ()> {
        let fence = match (change.fence.map(|f| self.fence.at(f)), self.fence.until()) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        if self.fence.enforced() && fence.is_none() {
            log::error!(
                "leader's work not started: term {} has no lease to fence it with",
                change.term
            );
            return Err(());
        }
        Ok(fence)
    }

    fn handle(&mut self, change: &Change) {
        if change.demoted(&self.me) {
            if std::mem::take(&mut self.leading) {
                self.let_go(change.after.as_ref(), change.term, change.reason);
            }
            // A node handing over (quorum mode) releases its followers only now.
            self.node.step(Event::LetGo);
        }
        if change.elected(&self.me) && !self.leading {
            self.leading = true;
            self.lock_index = change.lock_index;
            let env = self.env(Some(&self.me), change.term, change.reason);
            if !self.vips.is_empty() {
                let spec = holder::spec(self.vips.list());
                self.holder =
                    self.start_fenced("virtual IP holder", holder::WHAT, &spec, &[], change);
                self.vips.set_held(self.holder.is_some());
            }
            if let Some(cmd) = &self.opts.on_elected {
                self.hook("on-elected", cmd, &env);
            }
            if let Some(cmd) = self.opts.exec.clone() {
                self.exec = self.start_fenced("exec child", "exec", &cmd, &env, change);
            } else if self.fence.orphaned().is_some() {
                self.keeper = self.start_fenced("lease keeper", KEEPER, KEEPER_CMD, &[], change);
            }
        }
    }

    /// Starts the leader's work (`label` in the log) under the fence of this leadership: in
    /// quorum mode its supervisor holds the fence before the work starts, and the work does
    /// not start at all once the fence has passed (this node was held up between winning and
    /// now, and another may lead already). Nothing starts once the node is shutting down.
    fn start_fenced(
        &self,
        label: &str,
        what: &'static str,
        cmd: &str,
        env: &[(&'static str, String)],
        change: &Change,
    ) -> Option<Supervised> {
        if self.stopping.load(Ordering::SeqCst) {
            return None;
        }
        let fence = self.start_fence(change).ok()?;
        match spawn(what, cmd, env, fence) {
            Ok((mut child, _)) => {
                log::info!("{label} {} started: {cmd}", child.pid());
                if let Some(spec) = self
                    .fence
                    .orphaned()
                    .filter(|_| what == "exec" || what == KEEPER)
                {
                    child.when_orphaned(&spec);
                }
                Some(child)
            }
            Err(e) if Supervised::fenced_out(&e) => {
                log::warn!(
                    "{label} not started: the lease of term {} ended before it could start \
                     (this node was held up)",
                    change.term
                );
                None
            }
            Err(e) => {
                log::error!("{label} could not start: {e}");
                self.metrics.work_failed(what);
                None
            }
        }
    }

    /// Releases the virtual IPs at once (no grace: clients should reach the next leader).
    fn release_vips(&mut self) {
        if let Some(mut h) = self.holder.take() {
            let s = h.kill();
            self.vips.set_held(false);
            if h.killed() == Some(Killed::Deadline) {
                log::warn!("virtual IPs were released by the fence (the lease ran out)");
            } else {
                log::info!("released the virtual IPs ({s})");
            }
        }
    }

    /// The holder gave the addresses up by itself: the fence passed before this node noticed.
    fn reap_holder(&mut self) {
        let Some(h) = &mut self.holder else { return };
        if let Some(s) = h.try_wait() {
            log::warn!("virtual IPs released by their holder itself ({s}): the lease ran out");
            self.holder = None;
            self.vips.set_held(false);
        }
    }

    /// Releases the virtual IPs, stops the exec child, then runs the demoted hook.
    fn let_go(&mut self, coordinator: Option<&NodeRef>, term: u64, reason: Reason) {
        self.release_vips();
        if let Some(child) = self.exec.take() {
            self.stop_exec(child);
        }
        if let Some(mut keeper) = self.keeper.take() {
            keeper.kill();
        }
        if let Some(cmd) = &self.opts.on_demoted {
            let env = self.env(coordinator, term, reason);
            self.hook("on-demoted", cmd, &env);
        }
    }

    /// `BULLY_COORDINATOR` and `BULLY_COORDINATOR_ID` are empty when no coordinator is known
    /// (this node is shutting down). `BULLY_CONSUL_LOCK_INDEX` (`--consul-lock`) or
    /// `BULLY_ETCD_REVISION` (`--etcd-lock`) is the leader lock's fencing token of the
    /// leadership the hook is about.
    fn env(
        &self,
        coordinator: Option<&NodeRef>,
        term: u64,
        reason: Reason,
    ) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("BULLY_NODE", self.me.name.clone()),
            ("BULLY_NODE_ID", self.me.id.to_string()),
            (
                "BULLY_COORDINATOR",
                coordinator.map(|c| c.name.clone()).unwrap_or_default(),
            ),
            (
                "BULLY_COORDINATOR_ID",
                coordinator.map(|c| c.id.to_string()).unwrap_or_default(),
            ),
            ("BULLY_TERM", term.to_string()),
            ("BULLY_REASON", reason.label().to_string()),
        ];
        if let Some(index) = self.lock_index {
            env.push((self.lock_variable, index.to_string()));
        }
        env
    }

    /// Runs one hook to its end or its timeout; a failure is logged and nothing more.
    fn hook(&self, what: &'static str, cmd: &str, env: &[(&'static str, String)]) {
        let started = Instant::now();
        let (mut child, output) = match spawn(what, cmd, env, None) {
            Ok(c) => c,
            Err(e) => {
                log::error!("{what} hook could not start: {e}");
                self.metrics.work_failed(what);
                return;
            }
        };
        let status = child.wait_until(started + self.opts.timeout);
        if status.is_none() {
            child.kill();
        }
        output.drain(OUTPUT_DRAIN);
        if !status.is_some_and(|s| s.success()) {
            self.metrics.work_failed(what);
        }
        match status {
            Some(s) if s.success() => log::info!(
                "{what} hook finished in {} ms",
                started.elapsed().as_millis()
            ),
            Some(s) => log::warn!("{what} hook failed: {s}"),
            None => log::warn!(
                "{what} hook still running after {:?} (--hook-timeout): killed it and its process group",
                self.opts.timeout
            ),
        }
    }

    /// An exec child that exited on its own is logged and not restarted; the node keeps
    /// leading (leadership is the node's, not the child's).
    fn reap_exec(&mut self) {
        let Some(child) = &mut self.exec else { return };
        if let Some(s) = child.try_wait() {
            self.metrics.work_failed("exec");
            if self.opts.exit_unhealthy {
                log::warn!(
                    "exec child {} exited by itself ({s}); --exec-exit-unhealthy: stepping down",
                    child.pid()
                );
                self.exec = None;
                self.node.step(Event::ExecExited);
                return;
            }
            log::warn!(
                "exec child {} exited by itself ({s}); still coordinator, not restarting it",
                child.pid()
            );
            self.exec = None;
        }
    }

    /// SIGTERM to the child's process group, SIGKILL after `--exec-grace`.
    fn stop_exec(&self, mut child: Supervised) {
        let pid = child.pid();
        if let Some(s) = child.try_wait() {
            log::warn!("exec child {pid} had already exited ({s})");
            return;
        }
        log::info!("stopping exec child {pid} (SIGTERM)");
        let s = child.terminate(self.opts.exec_grace);
        if child.killed() == Some(Killed::Grace) {
            log::warn!(
                "exec child {pid} still running {:?} after SIGTERM (--exec-grace): SIGKILL",
                self.opts.exec_grace
            );
        } else {
            log::info!("exec child {pid} stopped ({s})");
        }
    }
}

/// Starts `sh -c cmd` as the leader of a new process group under its supervisor, its output
/// logged line by line.
fn spawn(
    what: &'static str,
    cmd: &str,
    env: &[(&'static str, String)],
    fence: Option<MonoMs>,
) -> std::io::Result<(Supervised, Output)> {
    let mut child = Supervised::spawn(what, cmd, env, fence)?;
    let (stdout, stderr) = child.take_output();
    let output = Output::log(what, stdout, stderr);
    Ok((child, output))
}

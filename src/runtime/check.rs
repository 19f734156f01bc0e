//! The health check (`--check CMD` or `--check-url URL`): run every `--check-interval` on a
//! thread of its own, so a slow check never holds up an election; a command killed with its
//! process group at `--check-timeout` (a timeout counts as a failure); the verdict changes
//! only after `--check-rise` passes in a row or `--check-fall` failures in a row, so a check
//! that jitters inside its window moves nothing. The core hears only the changes.

use super::handle::Handle;
use super::metrics::Metrics;
use crate::core::event::Event;
use crate::supervisor::Supervised;
use crate::sync::spawn_named;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What to check, and how often.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// `sh -c CMD`: exit status 0 is healthy.
    pub command: Option<String>,
    /// `GET URL`: a 2xx is healthy.
    pub url: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub rise: u32,
    pub fall: u32,
}

impl CheckOptions {
    pub fn any(&self) -> bool {
        self.command.is_some() || self.url.is_some()
    }
}

/// Starts the checker thread. The node starts unhealthy when a check is set (it stands only
/// once the check has passed `rise` times).
pub fn start(
    node: Arc<dyn Handle>,
    opts: CheckOptions,
    metrics: Arc<Metrics>,
) -> std::io::Result<()> {
    metrics.checks.store(true, Ordering::Relaxed);
    spawn_named("check", move || run(&*node, &opts, &metrics))?;
    Ok(())
}

fn run(node: &dyn Handle, opts: &CheckOptions, metrics: &Metrics) {
    let agent = crate::http::peer::agent(opts.timeout, opts.timeout);
    let (mut healthy, mut passes, mut fails) = (false, 0, 0);
    loop {
        let started = Instant::now();
        let ok = match (&opts.command, &opts.url) {
            (Some(cmd), _) => command_passes(cmd, opts.timeout),
            (None, Some(url)) => url_passes(&agent, url),
            (None, None) => return,
        };
        if ok {
            passes += 1;
            fails = 0;
        } else {
            fails += 1;
            passes = 0;
            metrics.check_failures.fetch_add(1, Ordering::Relaxed);
        }
        let verdict = if healthy {
            fails < opts.fall
        } else {
            passes >= opts.rise
        };
        if verdict != healthy {
            healthy = verdict;
            metrics
                .check_up
                .store(u64::from(healthy), Ordering::Relaxed);
            node.step(Event::Health { healthy });
        }
        std::thread::sleep(opts.interval.saturating_sub(started.elapsed()));
    }
}

/// Runs `sh -c cmd` under a supervisor; killed with its group at `timeout`.
fn command_passes(cmd: &str, timeout: Duration) -> bool {
    let mut child = match Supervised::spawn("check", cmd, &[], None) {
        Ok(c) => c,
        Err(e) => {
            log::warn!("health check could not start: {e}");
            return false;
        }
    };
    // The check's output is not logged: a check runs every few seconds.
    let _ = child.take_output();
    match child.wait_until(Instant::now() + timeout) {
        Some(status) => status.success(),
        None => {
            child.kill();
            log::debug!("health check still running after {timeout:?}: killed");
            false
        }
    }
}

fn url_passes(agent: &ureq::Agent, url: &str) -> bool {
    match agent.get(url).call() {
        Ok(resp) => resp.status().is_success(),
        Err(e) => {
            log::debug!("health check {url}: {e}");
            false
        }
    }
}

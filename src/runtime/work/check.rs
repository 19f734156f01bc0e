//! The health check (`--check CMD` or `--check-url URL`): run every `--check-interval` on a
//! thread of its own, so a slow check never holds up an election; a command killed with its
//! process group at `--check-timeout` (a timeout counts as a failure); the verdict changes
//! only after `--check-rise` passes in a row or `--check-fall` failures in a row, so a check
//! that jitters inside its window moves nothing. The core hears only the changes.

use crate::core::event::Event;
use crate::runtime::metrics::Metrics;
use crate::runtime::node::handle::Handle;
use crate::supervisor::Supervised;
use crate::sync::spawn_named;
use std::io::Read;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
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
    // The failure last logged: a check that keeps failing the same way is logged once.
    let mut failing: Option<String> = None;
    loop {
        let started = Instant::now();
        let outcome = match (&opts.command, &opts.url) {
            (Some(cmd), _) => command_outcome(cmd, opts.timeout),
            (None, Some(url)) => url_outcome(&agent, url),
            (None, None) => return,
        };
        if let Err(why) = &outcome {
            if failing.as_ref() != Some(why) {
                log::warn!("Health check failed: {why}");
                failing = Some(why.clone());
            }
        } else if failing.take().is_some() {
            log::info!("Health check passed again");
        }
        if outcome.is_ok() {
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

/// Runs `sh -c cmd` under a supervisor; killed with its group at `timeout`. A failure says
/// how (exit code, signal, timeout) and the last line the command wrote.
fn command_outcome(cmd: &str, timeout: Duration) -> Result<(), String> {
    let mut child = Supervised::spawn("check", cmd, &[], None)
        .map_err(|e| format!("`{cmd}` could not start: {e}"))?;
    let (stdout, stderr) = child.take_output();
    let mut outputs: Vec<Box<dyn Read + Send>> = Vec::new();
    outputs.extend(stdout.map(|o| Box::new(o) as Box<dyn Read + Send>));
    outputs.extend(stderr.map(|e| Box::new(e) as Box<dyn Read + Send>));
    let (tx, lines) = mpsc::channel();
    for (i, out) in outputs.into_iter().enumerate() {
        let tx = tx.clone();
        // Ends when the command's side closes; a check that leaves a process holding its
        // output open only keeps this thread, never the checker.
        let _ = spawn_named("check-output", move || {
            let _ = tx.send((i, last_line(out)));
        });
    }
    drop(tx);
    let status = child.wait_until(Instant::now() + timeout);
    if status.is_none() {
        child.kill();
    }
    // Stderr's last line if it wrote one, else stdout's.
    let mut said = (0, String::new());
    while let Ok((i, line)) = lines.recv_timeout(OUTPUT_WAIT) {
        if !line.is_empty() && (said.1.is_empty() || i > said.0) {
            said = (i, line);
        }
    }
    let said = said.1;
    let said = if said.is_empty() {
        String::new()
    } else {
        format!(": {said}")
    };
    match status {
        Some(s) if s.success() => Ok(()),
        Some(s) => Err(format!("`{cmd}` {}{said}", describe(s))),
        None => Err(format!(
            "`{cmd}` still running after {timeout:?} (--check-timeout): killed{said}"
        )),
    }
}

/// How long the command's output may take to be read once it has ended.
const OUTPUT_WAIT: Duration = Duration::from_millis(200);

/// The last non-empty line of `out`, at most 200 characters of it.
fn last_line(mut out: Box<dyn Read + Send>) -> String {
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = out.read(&mut buf) {
        if n == 0 {
            break;
        }
        all.extend_from_slice(&buf[..n]);
        // Only the tail matters: keep the last 4 KiB.
        if all.len() > 8192 {
            all.drain(..all.len() - 4096);
        }
    }
    let text = String::from_utf8_lossy(&all);
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    line.trim().chars().take(200).collect()
}

/// `exited with code 3`, `killed by signal 9`.
fn describe(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exited with code {c}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => format!("ended ({s})"),
    }
}

fn url_outcome(agent: &ureq::Agent, url: &str) -> Result<(), String> {
    match agent.get(url).call() {
        Ok(resp) if resp.status().is_success() => Ok(()),
        Ok(resp) => Err(format!("GET {url} answered {}", resp.status())),
        Err(ureq::Error::StatusCode(code)) => Err(format!("GET {url} answered {code}")),
        Err(e) => Err(format!("GET {url}: {e}")),
    }
}

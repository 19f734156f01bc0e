//! The supervisor of the virtual IPs (`--vip`): `bully __supervise vip "ADDR/PREFIX DEV ..."
//! [FENCE]`. It runs no command: it holds the addresses itself, so they are the leader's work
//! under the same fence as the `--exec` child. It gives them up when the node says so, when
//! the node is gone (the control socket closes: `kill -9`, a crash) and when the fence passes
//! (the node frozen or cut off), and never adds them once the fence has passed. It speaks the
//! protocol of the parent module: `pid N` once the addresses are up, `sigkill deadline` when
//! the fence took them, `exit 0` once they are gone.

use super::process::report;
use super::{pollfd, readable, retry, take_line};
use crate::monotonic::{self, MonoMs};
use crate::vip::Vip;
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The `WHAT` that makes a supervisor a holder.
pub const WHAT: &str = "vip";

/// When each address is announced again after it went up (gratuitous ARP, unsolicited
/// neighbour advertisement): at once, then again for switches and hosts that missed the first,
/// as keepalived repeats its own.
const ANNOUNCE_AT: [Duration; 5] = [
    Duration::ZERO,
    Duration::from_millis(200),
    Duration::from_secs(1),
    Duration::from_secs(2),
    Duration::from_secs(5),
];

/// The holder's argument: pairs of `ADDR/PREFIX` and device, separated by white space (which
/// no interface name contains).
pub fn spec(vips: &[Vip]) -> String {
    let pairs: Vec<String> = vips
        .iter()
        .map(|v| format!("{}/{} {}", v.addr, v.prefix, v.dev))
        .collect();
    pairs.join(" ")
}

fn parse_spec(spec: &str) -> Result<Vec<Vip>, String> {
    let words: Vec<&str> = spec.split_whitespace().collect();
    if words.is_empty() || words.len() % 2 != 0 {
        return Err(format!("expected ADDR/PREFIX DEV pairs, got {spec:?}"));
    }
    words
        .chunks(2)
        .map(|pair| {
            let (addr, prefix) = crate::vip::parse(pair[0])?;
            Vip::new(addr, prefix, pair[1])
        })
        .collect()
}

/// Holds the addresses of `spec` until the node lets go, is gone, or the fence passes; then
/// removes them and exits 0 (1 when they could not be added).
pub fn run(spec: &OsString, fence: Option<MonoMs>, control: &mut File) -> ExitCode {
    let vips = match parse_spec(&spec.to_string_lossy()) {
        Ok(v) => v,
        Err(e) => {
            report(control, &format!("error {} {e}", libc::EINVAL));
            return ExitCode::from(1);
        }
    };
    if fence.is_some_and(monotonic::passed) {
        report(control, &format!("error {} the fence passed", libc::ETIME));
        return ExitCode::from(1);
    }
    let mut holding = Holding {
        vips,
        up: 0,
        deadline: fence,
    };
    if let Err(e) = holding.add() {
        holding.release();
        let errno = e.raw_os_error().unwrap_or(0);
        report(control, &format!("error {errno} {e}"));
        return ExitCode::from(1);
    }
    report(control, &format!("pid {}", std::process::id()));
    let why = holding.hold(control);
    holding.release();
    if let Some(why) = why {
        report(control, why);
    }
    report(control, "exit 0");
    ExitCode::SUCCESS
}

struct Holding {
    vips: Vec<Vip>,
    /// How many of `vips` were added, in order.
    up: usize,
    /// The fence: the addresses go when the host's monotonic clock reaches it.
    deadline: Option<MonoMs>,
}

impl Holding {
    fn add(&mut self) -> io::Result<()> {
        for v in &self.vips {
            v.add()?;
            say(&format!("added {v}"));
            self.up += 1;
        }
        Ok(())
    }

    /// Removes what was added; a failure is said and the rest still removed.
    fn release(&mut self) {
        for v in self.vips[..self.up].iter().rev() {
            match v.remove() {
                Ok(()) => say(&format!("removed {v}")),
                Err(e) => say(&format!("cannot remove {v}: {e}")),
            }
        }
        self.up = 0;
    }

    /// Announces and follows the node's messages until it is time to let go; returns the
    /// report that says why when the holder decided that itself (the fence).
    fn hold(&mut self, control: &mut File) -> Option<&'static str> {
        let mut started = Instant::now();
        let mut next = 0;
        let mut unread = Vec::new();
        loop {
            if self.deadline.is_some_and(monotonic::passed) {
                return Some("sigkill deadline");
            }
            let now = Instant::now();
            while next < ANNOUNCE_AT.len() && started + ANNOUNCE_AT[next] <= now {
                for v in &self.vips {
                    if let Err(e) = v.announce() {
                        say(&format!("cannot announce {v}: {e}"));
                    }
                }
                next += 1;
            }
            let fence = self.deadline.map(|d| {
                Duration::from_millis(d.saturating_sub(monotonic::now_ms()).saturating_add(1))
            });
            let announce = ANNOUNCE_AT
                .get(next)
                .map(|at| (started + *at).saturating_duration_since(now));
            let timeout = [fence, announce].into_iter().flatten().min();
            let mut fds = [pollfd(control.as_raw_fd())];
            if !readable(&mut fds, timeout) {
                continue;
            }
            let mut chunk = [0; 256];
            match control.read(&mut chunk) {
                Ok(n) if n > 0 => unread.extend_from_slice(&chunk[..n]),
                Err(e) if retry(&e) => continue,
                // EOF or a broken socket: the node is gone.
                _ => return None,
            }
            while let Some(line) = take_line(&mut unread) {
                match line.split_once(' ').unwrap_or((&line, "")) {
                    ("fence", "none") => self.deadline = None,
                    ("fence", v) if v.parse::<MonoMs>().is_ok() => self.deadline = v.parse().ok(),
                    // Leading again after a split: clients may have learnt another host.
                    ("announce", "") => {
                        started = Instant::now();
                        next = 0;
                    }
                    // Letting go: the addresses go at once; a grace is for commands.
                    ("term", _) | ("kill", "") => return None,
                    _ => say(&format!("unknown message {line:?}")),
                }
            }
        }
    }
}

/// One line for the node's log (it logs the holder's stderr as `vip: ...`).
fn say(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}

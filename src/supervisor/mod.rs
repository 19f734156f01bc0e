//! Starting and controlling a supervised command: every hook and the `--exec` child runs under
//! a supervisor, bully itself re-executed as `bully __supervise WHAT CMD`, one small
//! single-threaded process between the node and `sh -c CMD`. It makes sure the command never
//! outlives the node, and lets the node fence it with a deadline:
//!
//! - `kill -9` of the node (or a crash) closes the control socket: the supervisor sees EOF and
//!   SIGKILLs the command's whole process group at once.
//! - A frozen node (SIGSTOP) sends nothing, but its supervisor is not frozen: it SIGKILLs the
//!   group when the last deadline the node sent runs out. Deadlines are points on the host's
//!   monotonic clock, not durations, so a message that waited in a frozen node or in the
//!   socket names the same instant it was meant to; and the first one is an argument of the
//!   supervisor, in force before the command starts, which does not start once it has passed.
//! - The supervisor dying takes `sh` with it (PR_SET_PDEATHSIG). The supervisor has no such
//!   signal itself: it must outlive the node to kill the group on EOF.
//! - When the command ends, by itself or killed, what is left of its group is killed too.
//!
//! What still escapes: a grandchild that leaves the process group (`setsid`, a daemon forking
//! into its own session), and the rest of the group if the supervisor itself is SIGKILLed
//! (only `sh` has the parent-death signal). Under systemd the unit's control-group kill covers
//! both.
//!
//! The protocol is one text line per message over a socket pair on the supervisor's stdin, one
//! descriptor for both directions, so its stdout and stderr stay the command's own and the node
//! logs them directly. The node sends `fence MONO_MS` / `fence none` (MONO_MS on the host's
//! monotonic clock), `term GRACE_MS` and `kill`; the supervisor answers `pid N` (the command started) or `error ERRNO TEXT` (it could
//! not), `sigkill deadline` / `sigkill grace` when it SIGKILLs the group on its own, and last
//! `exit RAW`, the command's wait status. This module is the node's side; `process.rs` is the
//! supervisor's.

use crate::monotonic::MonoMs;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub mod holder;
pub mod orphaned;
pub mod process;
pub use process::main;

/// The hidden subcommand `main` dispatches before parsing any flag.
pub const ENTRY: &str = "__supervise";

/// How long a supervisor may take to start its command and say so.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long a supervisor may take to report an exit once its group was SIGKILLed; past it
/// the supervisor itself is SIGKILLed.
const EXIT_WAIT: Duration = Duration::from_secs(5);

/// Why the supervisor SIGKILLed the command's group on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Killed {
    /// The last deadline ran out with no newer one.
    Deadline,
    /// The command was still running when the grace after `terminate` ran out.
    Grace,
}

/// One command running under its supervisor process.
pub struct Supervised {
    process: Child,
    control: UnixStream,
    pid: u32,
    unread: Vec<u8>,
    ended: Option<ExitStatus>,
    killed: Option<Killed>,
    /// The last fence the supervisor was given.
    fence: Option<MonoMs>,
}

enum Report {
    Line(String),
    Timeout,
    Closed,
}

impl Supervised {
    /// Starts `sh -c cmd` with `env` added under a new supervisor; `what` names it in `ps`.
    /// With a `fence` (a point on the host's monotonic clock) the supervisor holds that
    /// deadline before the command starts, and fails with `ETIME` instead of starting it once
    /// the deadline has passed ([`Supervised::fenced_out`]). Returns once the command runs;
    /// its output is on [`Supervised::take_output`].
    pub fn spawn(
        what: &str,
        cmd: &str,
        env: &[(&str, String)],
        fence: Option<MonoMs>,
    ) -> io::Result<Supervised> {
        let (ours, theirs) = UnixStream::pair()?;
        // /proc/self/exe rather than a path: still this binary after an upgrade replaced it.
        let process = Command::new("/proc/self/exe")
            .arg0("bully")
            .args([ENTRY, what, cmd])
            .args(fence.map(|f| f.to_string()))
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let mut s = Supervised {
            process,
            control: ours,
            pid: 0,
            unread: Vec::new(),
            ended: None,
            killed: None,
            fence,
        };
        let line = match s.read_line(Instant::now() + START_WAIT) {
            Report::Line(l) => l,
            Report::Timeout => return Err(io::Error::other("its supervisor did not answer")),
            Report::Closed => {
                let status = s.reap();
                s.ended = Some(status);
                let why = format!("its supervisor (/proc/self/exe) exited ({status}) first");
                return Err(io::Error::other(why));
            }
        };
        if let Some(pid) = line.strip_prefix("pid ").and_then(|p| p.parse().ok()) {
            s.pid = pid;
            return Ok(s);
        }
        let (errno, text) = line
            .strip_prefix("error ")
            .and_then(|e| e.split_once(' '))
            .unwrap_or(("0", &line));
        Err(match errno.parse() {
            Ok(n) if n > 0 => io::Error::from_raw_os_error(n),
            _ => io::Error::other(text.to_string()),
        })
    }

    /// The command's stdout and stderr (the first call only).
    pub fn take_output(&mut self) -> (Option<ChildStdout>, Option<ChildStderr>) {
        (self.process.stdout.take(), self.process.stderr.take())
    }

    /// The command's pid, which is also its process group's id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Why the supervisor SIGKILLed the command on its own, if it did.
    pub fn killed(&self) -> Option<Killed> {
        self.killed
    }

    /// Whether `spawn` failed because the fence had passed before the command could start.
    pub fn fenced_out(e: &io::Error) -> bool {
        e.raw_os_error() == Some(libc::ETIME)
    }

    /// The last fence given (at the start or since).
    pub fn fence(&self) -> Option<MonoMs> {
        self.fence
    }

    /// The command's group is SIGKILLed once the host's monotonic clock reaches `at`, unless
    /// a newer fence came first; `None` clears it.
    pub fn set_fence(&mut self, at: Option<MonoMs>) {
        self.fence = at;
        match at {
            Some(at) => self.send(&format!("fence {at}\n")),
            None => self.send("fence none\n"),
        }
    }

    /// What the supervisor sends once the node is gone and the command's group is dead
    /// (see [`orphaned`]): `URL[,URL...] TOKEN BODY`.
    pub fn when_orphaned(&mut self, spec: &str) {
        self.send(&format!("orphaned {spec}\n"));
    }

    /// The command's exit status once it has ended; never blocks.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.wait_report(Instant::now())
    }

    /// Waits for the command to end until `until`; `None` if it still runs then.
    pub fn wait_until(&mut self, until: Instant) -> Option<ExitStatus> {
        self.wait_report(until)
    }

    /// SIGKILLs the command's group and waits until it is gone (a few seconds at most).
    pub fn kill(&mut self) -> ExitStatus {
        if let Some(s) = self.try_wait() {
            return s;
        }
        self.send("kill\n");
        match self.wait_report(Instant::now() + EXIT_WAIT) {
            Some(s) => s,
            None => self.abandon(),
        }
    }

    /// SIGTERMs the command's group, SIGKILLs it after `grace` ([`Killed::Grace`]), and waits
    /// until it is gone: `grace` and a few seconds at most.
    pub fn terminate(&mut self, grace: Duration) -> ExitStatus {
        if let Some(s) = self.try_wait() {
            return s;
        }
        self.send(&format!("term {}\n", grace.as_millis()));
        match self.wait_report(Instant::now() + grace + EXIT_WAIT) {
            Some(s) => s,
            None => self.kill(),
        }
    }

    /// A virtual IP holder announces its addresses again, on its schedule from the start.
    pub fn announce_again(&mut self) {
        self.send("announce\n");
    }

    /// Write errors are left to the next read, which then sees the supervisor gone.
    fn send(&mut self, msg: &str) {
        if self.ended.is_none() {
            let _ = self.control.write_all(msg.as_bytes());
        }
    }

    fn wait_report(&mut self, until: Instant) -> Option<ExitStatus> {
        while self.ended.is_none() {
            match self.read_line(until) {
                Report::Line(l) => self.note(&l),
                Report::Timeout => return None,
                Report::Closed => {
                    let s = self.reap();
                    log::warn!(
                        "the supervisor of command {} exited without a report ({s})",
                        self.pid
                    );
                    self.ended = Some(s);
                }
            }
        }
        self.ended
    }

    fn note(&mut self, line: &str) {
        match line.split_once(' ') {
            Some(("exit", raw)) => {
                let raw = raw.parse().unwrap_or(0xff00);
                self.ended = Some(ExitStatus::from_raw(raw));
                self.reap();
            }
            Some(("sigkill", "deadline")) => self.killed = Some(Killed::Deadline),
            Some(("sigkill", "grace")) => self.killed = Some(Killed::Grace),
            _ => log::warn!("supervisor of command {}: unexpected {line:?}", self.pid),
        }
    }

    /// The next report line, read until `until`.
    fn read_line(&mut self, until: Instant) -> Report {
        loop {
            if let Some(line) = take_line(&mut self.unread) {
                return Report::Line(line);
            }
            let left = until.saturating_duration_since(Instant::now());
            if !readable(&mut [pollfd(self.control.as_raw_fd())], Some(left)) {
                if Instant::now() >= until {
                    return Report::Timeout;
                }
                continue;
            }
            let mut chunk = [0; 256];
            match self.control.read(&mut chunk) {
                Ok(0) => return Report::Closed,
                Ok(n) => self.unread.extend_from_slice(&chunk[..n]),
                Err(e) if retry(&e) => {}
                Err(_) => return Report::Closed,
            }
        }
    }

    /// The supervisor does not answer: SIGKILL it, which kills `sh` (its parent-death signal).
    fn abandon(&mut self) -> ExitStatus {
        log::warn!(
            "the supervisor of command {} did not answer within {EXIT_WAIT:?}: killed it; \
             what the command started may still run",
            self.pid
        );
        let _ = self.process.kill();
        let s = self.reap();
        self.ended = Some(s);
        s
    }

    fn reap(&mut self) -> ExitStatus {
        self.process.wait().unwrap_or_else(|e| {
            log::error!("cannot wait for supervisor {}: {e}", self.process.id());
            ExitStatus::from_raw(0xff00)
        })
    }
}

/// Dropped while the command runs: closing the socket makes the supervisor kill the group.
impl Drop for Supervised {
    fn drop(&mut self) {
        if self.ended.is_some() {
            return;
        }
        let _ = self.control.shutdown(Shutdown::Both);
        let end = Instant::now() + EXIT_WAIT;
        while Instant::now() < end {
            if let Ok(Some(_)) = self.process.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

fn pollfd(fd: libc::c_int) -> libc::pollfd {
    libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    }
}

/// poll(2) for at most `timeout` (`None`: no limit, rounded up to whole milliseconds); true
/// when some descriptor is ready.
fn readable(fds: &mut [libc::pollfd], timeout: Option<Duration>) -> bool {
    let ms = timeout.map_or(-1, |t| {
        t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int
    });
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd of the given length.
    unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) > 0 }
}

fn retry(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
    )
}

/// The first complete line of `buf`, taken out of it. Lines are a few bytes; a runaway one is
/// dropped rather than buffered.
fn take_line(buf: &mut Vec<u8>) -> Option<String> {
    let Some(end) = buf.iter().position(|&b| b == b'\n') else {
        if buf.len() > 4096 {
            buf.clear();
        }
        return None;
    };
    let line: Vec<u8> = buf.drain(..=end).collect();
    Some(String::from_utf8_lossy(&line[..end]).trim().to_string())
}

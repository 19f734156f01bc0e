//! Starting and controlling a supervised command: every hook and the `--exec` child runs under
//! a supervisor, bully itself re-executed as `bully __supervise WHAT CMD`, one small
//! single-threaded process between the node and `sh -c CMD`. It makes sure the command never
//! outlives the node, and lets the node fence it with a deadline:
//!
//! - `kill -9` of the node (or a crash) closes the control socket: the supervisor sees EOF and
//!   SIGKILLs the command's whole process group at once.
//! - A frozen node (SIGSTOP) sends nothing, but its supervisor is not frozen: it SIGKILLs the
//!   group when the last deadline the node sent runs out.
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
//! logs them directly. The node sends `deadline MS` / `deadline none`, `term GRACE_MS` and
//! `kill`; the supervisor answers `pid N` (the command started) or `error ERRNO TEXT` (it could
//! not), `sigkill deadline` / `sigkill grace` when it SIGKILLs the group on its own, and last
//! `exit RAW`, the command's wait status.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The hidden subcommand `main` dispatches before parsing any flag.
pub const ENTRY: &str = "__supervise";
/// How long a supervisor may take to start its command and say so.
const START_WAIT: Duration = Duration::from_secs(10);
/// How long a supervisor may take to report an exit once its group was SIGKILLed; past it
/// the supervisor itself is SIGKILLed.
const EXIT_WAIT: Duration = Duration::from_secs(5);
/// How often the supervisor looks at its command when the kernel has no pidfd (before 5.3).
const TICK: Duration = Duration::from_millis(20);
/// Signals the supervisor ignores, so only the node decides when the command stops: Ctrl-C
/// (and Ctrl-Z) in a terminal reach the node's whole process group, systemd's stop sends
/// SIGTERM to every process of the unit. The command gets them back at their defaults.
const SHIELDED: [libc::c_int; 7] = [
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGTERM,
    libc::SIGPIPE,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
];

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
}

enum Report {
    Line(String),
    Timeout,
    Closed,
}

impl Supervised {
    /// Starts `sh -c cmd` with `env` added under a new supervisor; `what` names it in `ps`.
    /// Returns once the command runs; its output is on [`Supervised::take_output`].
    pub fn spawn(what: &str, cmd: &str, env: &[(&str, String)]) -> io::Result<Supervised> {
        let (ours, theirs) = UnixStream::pair()?;
        // /proc/self/exe rather than a path: still this binary after an upgrade replaced it.
        let process = Command::new("/proc/self/exe")
            .arg0("bully")
            .args([ENTRY, what, cmd])
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
        };
        let line = match s.read_line(Instant::now() + START_WAIT) {
            Report::Line(l) => l,
            Report::Timeout => return Err(io::Error::other("its supervisor did not answer")),
            Report::Closed => return Err(io::Error::other("its supervisor exited")),
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

    /// The command's group is SIGKILLed once `within` has passed on the supervisor's monotonic
    /// clock without a newer deadline; `None` clears it. Truncated to whole milliseconds, so a
    /// deadline is never later than asked.
    pub fn set_deadline(&mut self, within: Option<Duration>) {
        match within {
            Some(d) => self.send(&format!("deadline {}\n", d.as_millis())),
            None => self.send("deadline none\n"),
        }
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

/// `bully __supervise WHAT CMD`, with the control socket on stdin: runs `sh -c CMD` and
/// supervises it as the module documentation says, then exits 0 (2 on bad arguments, 1 when
/// the command could not start).
pub fn main(args: Vec<OsString>) -> ExitCode {
    let Ok([what, cmd]) = <[OsString; 2]>::try_from(args) else {
        eprintln!("bully: {ENTRY} is internal to bully and takes WHAT and CMD");
        return ExitCode::from(2);
    };
    // SAFETY: fcntl only asks whether descriptor 0 is open.
    if unsafe { libc::fcntl(0, libc::F_GETFD) } < 0 {
        eprintln!("bully: {ENTRY} needs its control socket on stdin");
        return ExitCode::from(2);
    }
    // SAFETY: descriptor 0 is open (checked above) and nothing else in this process owns it.
    let mut control = File::from(unsafe { OwnedFd::from_raw_fd(0) });
    // SAFETY: plain libc calls on a single-threaded process before it starts anything; the
    // name is NUL-terminated and shorter than the 16 bytes prctl allows.
    unsafe {
        for sig in SHIELDED {
            libc::signal(sig, libc::SIG_IGN);
        }
        // An inherited SIG_IGN would make the kernel reap the command before we can.
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        libc::prctl(libc::PR_SET_NAME, c"bully-supervise".as_ptr());
    }
    let me = std::process::id() as libc::pid_t;
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(&cmd)
        .stdin(Stdio::null())
        .process_group(0);
    // SAFETY: between fork and exec the closure only makes async-signal-safe calls (signal,
    // prctl, getppid) and allocates nothing.
    unsafe { command.pre_exec(move || start_child(me)) };
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            report(&mut control, &format!("error {errno} {e}"));
            return ExitCode::from(1);
        }
    };
    report(&mut control, &format!("pid {}", child.id()));
    Watch::new(child.id() as libc::pid_t).run(&mut control, &what);
    let status = finish(child);
    report(&mut control, &format!("exit {}", status.into_raw()));
    ExitCode::SUCCESS
}

/// In the command, between fork and exec: the shielded signals back at their defaults, and
/// SIGKILL when the supervisor dies. The signal follows the thread that forked, which is the
/// supervisor's only thread; checking the parent after prctl closes the race with a
/// supervisor that died just before.
fn start_child(supervisor: libc::pid_t) -> io::Result<()> {
    // SAFETY: async-signal-safe calls only.
    unsafe {
        for sig in SHIELDED {
            libc::signal(sig, libc::SIG_DFL);
        }
        let sigkill = libc::SIGKILL as libc::c_ulong;
        if libc::prctl(libc::PR_SET_PDEATHSIG, sigkill, 0, 0, 0) != 0 {
            return Err(io::Error::last_os_error());
        }
        if libc::getppid() != supervisor {
            return Err(io::Error::from_raw_os_error(libc::ESRCH));
        }
    }
    Ok(())
}

/// Kills what is left of the group while `sh` is still an unreaped zombie (so its group id
/// cannot have been reused), then reaps it.
fn finish(mut child: Child) -> ExitStatus {
    signal_group(child.id() as libc::pid_t, libc::SIGKILL);
    child
        .wait()
        .unwrap_or_else(|_| ExitStatus::from_raw(0xff00))
}

/// The supervisor's state while its command runs.
struct Watch {
    pid: libc::pid_t,
    deadline: Option<Instant>,
    grace_end: Option<Instant>,
    killed: bool,
    pidfd: Option<OwnedFd>,
}

impl Watch {
    fn new(pid: libc::pid_t) -> Watch {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        Watch {
            pid,
            deadline: None,
            grace_end: None,
            killed: false,
            // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
            pidfd: (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }),
        }
    }

    /// Until `sh` has exited (it stays unreaped): follows the node's messages, fires the
    /// deadline and the grace, and kills the group when the node is gone.
    fn run(mut self, control: &mut File, what: &OsString) {
        let mut open = true;
        let mut unread = Vec::new();
        while !self.exited() {
            let now = Instant::now();
            self.fire(now, control);
            let wake = [self.deadline, self.grace_end]
                .into_iter()
                .flatten()
                .min()
                .filter(|_| !self.killed);
            let mut timeout = wake.map(|w| w.saturating_duration_since(now));
            if self.pidfd.is_none() {
                timeout = Some(timeout.map_or(TICK, |t| t.min(TICK)));
            }
            let mut fds = Vec::with_capacity(2);
            if open {
                fds.push(pollfd(control.as_raw_fd()));
            }
            if let Some(p) = &self.pidfd {
                fds.push(pollfd(p.as_raw_fd()));
            }
            if !(readable(&mut fds, timeout) && open && fds[0].revents != 0) {
                continue;
            }
            let mut chunk = [0; 256];
            match control.read(&mut chunk) {
                Ok(n) if n > 0 => {
                    unread.extend_from_slice(&chunk[..n]);
                    while let Some(line) = take_line(&mut unread) {
                        self.on_message(&line, Instant::now(), what);
                    }
                }
                Err(e) if retry(&e) => {}
                // EOF or a broken socket: the node is gone.
                _ => {
                    open = false;
                    self.kill();
                }
            }
        }
    }

    fn fire(&mut self, now: Instant, control: &mut File) {
        if self.killed {
            return;
        }
        let why = if self.deadline.is_some_and(|d| d <= now) {
            "deadline"
        } else if self.grace_end.is_some_and(|g| g <= now) {
            "grace"
        } else {
            return;
        };
        self.kill();
        report(control, &format!("sigkill {why}"));
    }

    fn on_message(&mut self, line: &str, now: Instant, what: &OsString) {
        let ms = |v: &str| v.parse().ok().map(Duration::from_millis);
        match line.split_once(' ').unwrap_or((line, "")) {
            ("deadline", "none") => self.deadline = None,
            ("deadline", v) if ms(v).is_some() => self.deadline = ms(v).map(|d| now + d),
            ("term", v) if ms(v).is_some() => {
                if self.grace_end.is_none() && !self.killed {
                    signal_group(self.pid, libc::SIGTERM);
                    self.grace_end = ms(v).map(|d| now + d);
                }
            }
            ("kill", "") => self.kill(),
            _ => eprintln!("bully supervisor of {what:?}: unknown message {line:?}"),
        }
    }

    fn kill(&mut self) {
        signal_group(self.pid, libc::SIGKILL);
        self.killed = true;
    }

    /// `sh` has exited; WNOWAIT leaves it unreaped.
    fn exited(&self) -> bool {
        // SAFETY: waitid fills the zeroed siginfo_t it is given.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            libc::waitid(libc::P_PID, self.pid as libc::id_t, &mut info, flags) == 0
                && info.si_pid() == self.pid
        }
    }
}

fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill with a negative pid signals that process group; errors (the group is gone)
    // are fine.
    unsafe { libc::kill(-pgid, sig) };
}

/// Reports go to the node; when it is gone there is nobody to tell.
fn report(control: &mut File, line: &str) {
    let _ = control.write_all(format!("{line}\n").as_bytes());
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

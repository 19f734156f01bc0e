//! The supervisor process itself: `bully __supervise WHAT CMD`, single-threaded, between the
//! node and `sh -c CMD` (see the parent module for what it guarantees and its protocol).

use super::{pollfd, readable, retry, take_line, ENTRY};
use crate::monotonic::{self, MonoMs};
use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The glibc tunable a node sets for itself (see `runtime::memory`), appended to whatever the
/// user had.
pub const NO_STACK_CACHE: &str = "glibc.pthread.stack_cache_size=0";

/// `GLIBC_TUNABLES` as the user gave it: the node's own addition is not the user's command's
/// business.
pub fn tunables_for_commands(current: Option<String>) -> Option<String> {
    let current = current?;
    let user = current
        .strip_suffix(NO_STACK_CACHE)
        .map(|rest| rest.strip_suffix(':').unwrap_or(rest))
        .unwrap_or(&current);
    (!user.is_empty()).then(|| user.to_string())
}

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

/// How often the supervisor looks at its command when the kernel has no pidfd (before 5.3).
const TICK: Duration = Duration::from_millis(20);

/// `bully __supervise WHAT CMD [FENCE]`, with the control socket on stdin: runs `sh -c CMD`
/// and supervises it as the module documentation says, then exits 0 (2 on bad arguments, 1
/// when the command could not start). `FENCE`, milliseconds on the host's monotonic clock, is
/// the command's first deadline: in force before the command starts, and the command is not
/// started at all once it has passed.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let parsed = match <[OsString; 2]>::try_from(args) {
        Ok([what, cmd]) => Some((what, cmd, None)),
        Err(args) => match <[OsString; 3]>::try_from(args) {
            Ok([what, cmd, fence]) => fence
                .to_str()
                .and_then(|f| f.parse::<MonoMs>().ok())
                .map(|f| (what, cmd, Some(f))),
            Err(_) => None,
        },
    };
    let Some((what, cmd, fence)) = parsed else {
        let _ = writeln!(
            io::stderr(),
            "bully: {ENTRY} is internal to bully and takes WHAT, CMD and a deadline"
        );
        return ExitCode::from(2);
    };
    // SAFETY: fcntl only asks whether descriptor 0 is open.
    if unsafe { libc::fcntl(0, libc::F_GETFD) } < 0 {
        let _ = writeln!(
            io::stderr(),
            "bully: {ENTRY} needs its control socket on stdin"
        );
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
    if what == super::holder::WHAT {
        return super::holder::run(&cmd, fence, &mut control);
    }
    // The command's orphans (a trapping script whose `sh` died of the SIGTERM) become ours, so
    // we reap them as they exit: reparented to an init that reaps late (a container's), they
    // stayed zombies of the group, which looked alive for seconds after its cleanup ended.
    // SAFETY: prctl with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1) };
    let me = std::process::id() as libc::pid_t;
    let mut command = Command::new("sh");
    match tunables_for_commands(std::env::var("GLIBC_TUNABLES").ok()) {
        Some(v) => command.env("GLIBC_TUNABLES", v),
        None => command.env_remove("GLIBC_TUNABLES"),
    };
    command
        .arg("-c")
        .arg(&cmd)
        .stdin(Stdio::null())
        .process_group(0);
    // SAFETY: between fork and exec the closure only makes async-signal-safe calls (signal,
    // prctl, getppid, clock_gettime) and allocates nothing.
    unsafe { command.pre_exec(move || start_child(me, fence)) };
    let child = match command.spawn() {
        Ok(c) => c,
        Err(e) => {
            let errno = e.raw_os_error().unwrap_or(0);
            report(&mut control, &format!("error {errno} {e}"));
            return ExitCode::from(1);
        }
    };
    report(&mut control, &format!("pid {}", child.id()));
    let mut watch = Watch::new(child, fence);
    let status = watch.run(&mut control, &what);
    report(&mut control, &format!("exit {}", status.into_raw()));
    if watch.node_gone {
        if let Some(spec) = watch.orphaned.take() {
            super::orphaned::post(&spec);
        }
    }
    ExitCode::SUCCESS
}

/// In the command, between fork and exec: the shielded signals back at their defaults, and
/// SIGKILL when the supervisor dies. The signal follows the thread that forked, which is the
/// supervisor's only thread; checking the parent after prctl closes the race with a
/// supervisor that died just before. Last, the fence: a command whose deadline passed before
/// it could start fails with `ETIME` instead (the last instant before it would run).
fn start_child(supervisor: libc::pid_t, fence: Option<MonoMs>) -> io::Result<()> {
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
    if fence.is_some_and(monotonic::passed) {
        return Err(io::Error::from_raw_os_error(libc::ETIME));
    }
    Ok(())
}

/// The supervisor's state while its command runs.
struct Watch {
    child: Child,
    pid: libc::pid_t,
    /// The fence: SIGKILL for the group when the host's monotonic clock reaches it.
    deadline: Option<MonoMs>,
    grace_end: Option<Instant>,
    killed: bool,
    /// Watches `sh` for its exit, while it runs (kernels before 5.3 have none: then a tick).
    pidfd: Option<OwnedFd>,
    /// `sh`'s status once it was reaped while the rest of its group had its grace.
    reaped: Option<ExitStatus>,
    /// The control socket closed: the node is gone.
    node_gone: bool,
    /// What to send once the node is gone and the group dead (see `orphaned`).
    orphaned: Option<String>,
}

impl Watch {
    fn new(child: Child, fence: Option<MonoMs>) -> Watch {
        let pid = child.id() as libc::pid_t;
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        Watch {
            child,
            pid,
            deadline: fence,
            grace_end: None,
            killed: false,
            // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
            pidfd: (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) }),
            reaped: None,
            node_gone: false,
            orphaned: None,
        }
    }

    /// Until the command is over: follows the node's messages, fires the deadline and the
    /// grace, and kills the group when the node is gone. The command is over when `sh` has
    /// exited, except during a graceful stop: then what `sh` started (its foreground program,
    /// a trapping script) gets the rest of its grace, however quickly `sh` itself died of
    /// the SIGTERM. Returns `sh`'s exit status once nothing of the group is left.
    fn run(&mut self, control: &mut File, what: &OsString) -> ExitStatus {
        let mut open = true;
        let mut unread = Vec::new();
        loop {
            if self.reaped.is_none() && self.exited() {
                if self.grace_end.is_none() || self.killed {
                    return self.finish();
                }
                // sh is gone, the group may not be: reap sh and wait for the rest. The group's
                // id stays taken while any member lives, so signalling it cannot reach another.
                self.reaped = Some(self.reap());
                self.pidfd = None;
            }
            if self.reaped.is_some() {
                reap_orphans();
            }
            if self.reaped.is_some() && !group_alive(self.pid) {
                return self.reaped.unwrap_or_else(|| ExitStatus::from_raw(0xff00));
            }
            let now = Instant::now();
            self.fire(now, control);
            let wake = [self.deadline_instant(now), self.grace_end]
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
                    self.node_gone = true;
                    self.kill();
                }
            }
        }
    }

    /// The deadline as an `Instant`, to sleep until (rounded up: waking early only loops).
    fn deadline_instant(&self, now: Instant) -> Option<Instant> {
        let left = self.deadline?.saturating_sub(monotonic::now_ms());
        Some(now + Duration::from_millis(left + 1))
    }

    /// Kills what is left of the group while `sh` is still an unreaped zombie (so its group
    /// id cannot have been reused), then reaps it.
    fn finish(&mut self) -> ExitStatus {
        signal_group(self.pid, libc::SIGKILL);
        self.reap()
    }

    fn reap(&mut self) -> ExitStatus {
        self.child
            .wait()
            .unwrap_or_else(|_| ExitStatus::from_raw(0xff00))
    }

    fn fire(&mut self, now: Instant, control: &mut File) {
        if self.killed {
            return;
        }
        let why = if self.deadline.is_some_and(monotonic::passed) {
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
            ("fence", "none") => self.deadline = None,
            ("fence", v) if v.parse::<MonoMs>().is_ok() => self.deadline = v.parse().ok(),
            ("term", v) if ms(v).is_some() => {
                if self.grace_end.is_none() && !self.killed {
                    signal_group(self.pid, libc::SIGTERM);
                    self.grace_end = ms(v).map(|d| now + d);
                }
            }
            ("kill", "") => self.kill(),
            ("orphaned", spec) if super::orphaned::parse(spec).is_some() => {
                self.orphaned = Some(spec.to_string())
            }
            _ => {
                // Never println!: a closed stderr must not panic the supervisor.
                let _ = writeln!(
                    io::stderr(),
                    "bully supervisor of {what:?}: unknown message {line:?}"
                );
            }
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

/// Reaps every child that has exited: once `sh` is reaped, the only children left are the
/// command's orphans (this process is their subreaper).
fn reap_orphans() {
    loop {
        // SAFETY: waitpid with a null status pointer, not blocking.
        let pid = unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) };
        if pid <= 0 {
            return;
        }
    }
}

/// Whether any process of the group lives (an unreaped zombie counts).
fn group_alive(pgid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the group exists and may be signalled.
    let r = unsafe { libc::kill(-pgid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn signal_group(pgid: libc::pid_t, sig: libc::c_int) {
    // SAFETY: kill with a negative pid signals that process group; errors (the group is gone)
    // are fine.
    unsafe { libc::kill(-pgid, sig) };
}

/// Reports go to the node; when it is gone there is nobody to tell.
pub(super) fn report(control: &mut File, line: &str) {
    let _ = control.write_all(format!("{line}\n").as_bytes());
}

#[cfg(test)]
mod tunable_tests {
    use super::*;

    #[test]
    fn commands_get_the_users_tunables_back() {
        let ours = NO_STACK_CACHE.to_string();
        assert_eq!(tunables_for_commands(None), None);
        assert_eq!(tunables_for_commands(Some(ours.clone())), None);
        assert_eq!(
            tunables_for_commands(Some(format!("glibc.malloc.check=3:{ours}"))),
            Some("glibc.malloc.check=3".to_string())
        );
        assert_eq!(
            tunables_for_commands(Some("glibc.malloc.check=3".into())),
            Some("glibc.malloc.check=3".to_string())
        );
    }
}

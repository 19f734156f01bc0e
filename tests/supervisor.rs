//! `bully __supervise` driven directly over its control socket, as the node drives it: the
//! fence that holds a frozen node's command from before it starts, SIGTERM with a grace that
//! holds for any command, and what the command inherits. The supervisor and its command are
//! real processes; the test plays the node.

mod support;

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use support::*;

/// One supervisor with the test on the other end of its socket.
struct Sup {
    process: Child,
    control: UnixStream,
    unread: Vec<u8>,
    /// The command's pid, from the supervisor's first report.
    pid: u32,
    /// When that report arrived.
    started: Instant,
}

impl Sup {
    /// Starts `bully __supervise test CMD`, its output (the command's) to `DIR/out`.
    fn start(dir: &Path, cmd: &str) -> Sup {
        Sup::fenced(dir, cmd, None)
    }

    /// Starts `bully __supervise test CMD FENCE`: the fence in force from the start.
    fn fenced(dir: &Path, cmd: &str, fence: Option<u64>) -> Sup {
        let (mut s, first) = Sup::spawn(dir, cmd, fence);
        s.pid = first
            .as_deref()
            .and_then(|l| l.strip_prefix("pid "))
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("first report: {first:?}"));
        s.started = Instant::now();
        s
    }

    /// Starts the supervisor and reads its first report, whatever it says.
    fn spawn(dir: &Path, cmd: &str, fence: Option<u64>) -> (Sup, Option<String>) {
        let (ours, theirs) = UnixStream::pair().unwrap();
        let out = std::fs::File::create(dir.join("out")).unwrap();
        let process = Command::new(BIN)
            .args(["__supervise", "test", cmd])
            .args(fence.map(|f| f.to_string()))
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut s = Sup {
            process,
            control: ours,
            unread: Vec::new(),
            pid: 0,
            started: Instant::now(),
        };
        let first = s.report(secs(20));
        (s, first)
    }

    fn send(&mut self, msg: &str) {
        self.control
            .write_all(format!("{msg}\n").as_bytes())
            .unwrap();
    }

    /// The next report line, or `None` when none came within `within` (or the socket closed).
    fn report(&mut self, within: Duration) -> Option<String> {
        let end = Instant::now() + within;
        loop {
            if let Some(i) = self.unread.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.unread.drain(..=i).collect();
                return Some(String::from_utf8_lossy(&line[..i]).to_string());
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.control.set_read_timeout(Some(left)).unwrap();
            let mut chunk = [0; 256];
            match self.control.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.unread.extend_from_slice(&chunk[..n]),
                Err(_) => {}
            }
        }
    }

    /// The reports up to and including `exit RAW`, and that status.
    fn until_exit(&mut self, within: Duration) -> (Vec<String>, ExitStatus) {
        let mut seen = Vec::new();
        let end = Instant::now() + within;
        while let Some(l) = self.report(end.saturating_duration_since(Instant::now())) {
            if let Some(raw) = l.strip_prefix("exit ") {
                let status = ExitStatus::from_raw(raw.parse().expect("a raw wait status"));
                seen.push(l);
                return (seen, status);
            }
            seen.push(l);
        }
        panic!("no exit report within {within:?}; saw {seen:?}");
    }

    /// The supervisor's own exit status, within `within`.
    fn reaped(&mut self, within: Duration) -> ExitStatus {
        wait_for("the supervisor to exit", within, || {
            self.process
                .try_wait()
                .unwrap()
                .ok_or_else(|| "running".to_string())
        })
    }
}

impl Drop for Sup {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// Running and not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            s.rsplit_once(')')
                .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(false)
}

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([&format!("-{sig}"), &pid.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "kill -{sig} {pid}");
}

/// A field of `/proc/PID/status`.
fn status_field(pid: u32, key: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .map(|v| v.trim().to_string())
        .unwrap_or_default()
}

/// Waits until `path` exists: the command got past its traps.
fn await_file(path: &Path) {
    wait_for(&format!("{}", path.display()), secs(20), || {
        path.exists().then_some(()).ok_or_else(|| "missing".into())
    });
}

/// This process's descriptors above 2 without close-on-exec (as `fdinfo` shows them).
fn inherited_fds() -> Vec<String> {
    let cloexec = 0o2000000;
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| n.parse::<u32>().is_ok_and(|n| n > 2))
        .filter(|n| {
            std::fs::read_to_string(format!("/proc/self/fdinfo/{n}"))
                .ok()
                .and_then(|i| {
                    let flags = i.lines().find_map(|l| l.strip_prefix("flags:"))?;
                    u32::from_str_radix(flags.trim(), 8).ok()
                })
                .is_some_and(|f| f & cloexec == 0)
        })
        .collect()
}

fn fds(pid: u32) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .map(|e| {
                    let target = std::fs::read_link(e.path()).unwrap_or_default();
                    format!("{}->{}", e.file_name().to_string_lossy(), target.display())
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A point `ms` from now on the host's monotonic clock, as the node names fences.
fn in_ms(ms: u64) -> u64 {
    bully::monotonic::now_ms() + ms
}

/// A SIGSTOPped node is, to its supervisor, a peer that keeps its socket open and says nothing
/// more; the supervisor is not stopped with it. So it SIGKILLs the command at the last
/// deadline, and the signals that reach a node's whole process group from a terminal or
/// systemd (Ctrl-C, Ctrl-Z, SIGTERM, SIGHUP) do not stop or kill the supervisor first.
#[test]
fn a_silent_node_is_fenced_at_its_deadline() {
    let dir = TempDir::new("sup-deadline");
    let mut s = Sup::start(dir.path(), "sleep 1000 & wait");
    s.send(&format!("fence {}", in_ms(1500)));
    let sent = Instant::now();
    for sig in ["TSTP", "INT", "TERM", "HUP"] {
        signal(s.process.id(), sig);
    }
    let state = status_field(s.process.id(), "State");
    assert!(!state.starts_with('T'), "supervisor state {state}");
    let (reports, status) = s.until_exit(secs(20));
    let took = sent.elapsed();
    println!("killed {took:?} after a 1500 ms deadline; reports {reports:?}");
    assert_eq!(
        reports,
        ["sigkill deadline", &format!("exit {}", status.into_raw())]
    );
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < secs(10), "{took:?}");
    assert!(!alive(s.pid));
    assert!(s.reaped(secs(10)).success());
}

/// A node that keeps pushing its fence forward keeps its command; `fence none` lifts it.
#[test]
fn deadlines_pushed_forward_keep_the_command_running() {
    let dir = TempDir::new("sup-renew");
    let mut s = Sup::fenced(dir.path(), "exec sleep 1000", Some(in_ms(800)));
    let end = Instant::now() + Duration::from_millis(2500);
    while Instant::now() < end {
        s.send(&format!("fence {}", in_ms(800)));
        std::thread::sleep(Duration::from_millis(100));
        assert!(alive(s.pid), "killed though renewed");
    }
    s.send("fence none");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(alive(s.pid), "killed though the deadline was lifted");
    assert_eq!(s.report(Duration::ZERO), None);

    s.send("kill");
    let (reports, status) = s.until_exit(secs(20));
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(!alive(s.pid));
}

/// The fence given at start holds before the node says anything: a node frozen right after
/// it started the command (or before it could send a first deadline) still has it fenced.
#[test]
fn a_fence_given_at_start_holds_with_no_message() {
    let dir = TempDir::new("sup-fence-start");
    let fence = in_ms(1500);
    let mut s = Sup::fenced(dir.path(), "sleep 1000 & wait", Some(fence));
    let (reports, status) = s.until_exit(secs(20));
    let late = bully::monotonic::now_ms().saturating_sub(fence);
    println!("killed {late} ms after the fence; reports {reports:?}");
    assert_eq!(reports[0], "sigkill deadline", "{reports:?}");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(bully::monotonic::now_ms() >= fence);
    assert!(late < 5000, "killed {late} ms after the fence");
    assert!(!alive(s.pid));
}

/// A fence that has passed when the command would start starts nothing: the supervisor says
/// `error 62` (ETIME) and exits 1, and the command never ran. This is the node woken from a
/// freeze that still handles the "elected" of a leadership whose lease is over.
#[test]
fn a_fence_that_passed_starts_nothing() {
    let dir = TempDir::new("sup-fence-passed");
    let ran = dir.path().join("ran");
    let cmd = format!("touch '{}'", ran.display());
    let (mut s, first) = Sup::spawn(dir.path(), &cmd, Some(in_ms(0).saturating_sub(1)));
    let first = first.unwrap_or_default();
    assert!(first.starts_with("error 62 "), "first report: {first:?}");
    let status = s.reaped(secs(10));
    assert_eq!(status.code(), Some(1), "{status:?}");
    assert!(!ran.exists(), "the command ran though its fence had passed");
    // A fence still ahead starts it.
    let mut s = Sup::fenced(dir.path(), &cmd, Some(in_ms(60_000)));
    let (_, status) = s.until_exit(secs(20));
    assert!(status.success(), "{status:?}");
    assert!(ran.exists());
}

/// A fence names an instant, not a duration: one that waited 700 ms on the way (in a frozen
/// node, in the socket) still ends the command when it was meant to, not 700 ms later.
#[test]
fn a_fence_that_arrives_late_is_not_stretched() {
    let dir = TempDir::new("sup-fence-late");
    let mut s = Sup::start(dir.path(), "exec sleep 1000");
    let fence = in_ms(1200);
    std::thread::sleep(Duration::from_millis(700));
    s.send(&format!("fence {fence}"));
    let (reports, _) = s.until_exit(secs(20));
    let killed = bully::monotonic::now_ms();
    println!("killed {} ms after the fence", killed.saturating_sub(fence));
    assert_eq!(reports[0], "sigkill deadline", "{reports:?}");
    // A relative deadline would have ended it at fence + 700 ms; allow a loaded machine
    // 400 ms of lateness, well under that.
    assert!(killed < fence + 400, "killed {} ms late", killed - fence);
}

/// A script that traps SIGTERM and cleans up for a second: `cleaned` once it has.
fn slow_stop_script(dir: &Path) -> String {
    let script = dir.join("slowstop.sh");
    let text = format!(
        "#!/bin/sh\ntrap 'sleep 1; echo cleaned > \"{d}/cleaned\"; exit 0' TERM\n\
         touch \"{d}/ready\"\nwhile :; do sleep 0.05; done\n",
        d = dir.display()
    );
    std::fs::write(&script, text).unwrap();
    let made = Command::new("chmod").arg("+x").arg(&script).status();
    assert!(made.is_ok_and(|s| s.success()));
    script.display().to_string()
}

/// `term GRACE` gives the whole group its grace, whatever the command line looks like: a
/// script run by `sh -c`, a foreground program under a shell that dies of the SIGTERM at once
/// (dash does), and `exec CMD`. Each cleans up for a second inside a 10 s grace, and nothing
/// is SIGKILLed.
#[test]
fn the_grace_holds_for_any_command() {
    for form in ["plain", "foreground", "exec"] {
        let dir = TempDir::new(&format!("sup-grace-{form}"));
        let script = slow_stop_script(dir.path());
        let cmd = match form {
            "plain" => script.clone(),
            // `; true` keeps sh in front: it cannot exec the script.
            "foreground" => format!("{script}; true"),
            _ => format!("exec {script}"),
        };
        let mut s = Sup::start(dir.path(), &cmd);
        await_file(&dir.path().join("ready"));
        s.send("term 10000");
        let sent = Instant::now();
        let (reports, status) = s.until_exit(secs(30));
        let took = sent.elapsed();
        println!("{form}: {cmd:?} stopped after {took:?}: {reports:?} ({status:?})");
        assert!(
            !reports.iter().any(|r| r.starts_with("sigkill")),
            "{form}: {reports:?}"
        );
        let cleaned = std::fs::read_to_string(dir.path().join("cleaned")).unwrap_or_default();
        assert_eq!(
            cleaned.trim(),
            "cleaned",
            "{form}: the cleanup did not finish"
        );
        assert!(took >= Duration::from_millis(900), "{form}: {took:?}");
        assert!(took < secs(10), "{form}: {took:?}");
    }
}

/// The grace ends in SIGKILL for what is left of the group even after `sh` is gone.
#[test]
fn the_grace_ends_in_sigkill_for_the_rest_of_the_group() {
    let dir = TempDir::new("sup-grace-rest");
    let ready = dir.path().join("ready");
    let cmd = format!(
        "sh -c \"trap '' TERM; touch '{}'; while :; do sleep 0.05; done\"; true",
        ready.display()
    );
    let mut s = Sup::start(dir.path(), &cmd);
    await_file(&ready);
    s.send("term 700");
    let sent = Instant::now();
    let (reports, _) = s.until_exit(secs(20));
    let took = sent.elapsed();
    println!("stubborn grandchild killed {took:?} after term 700; reports {reports:?}");
    assert_eq!(reports[0], "sigkill grace", "{reports:?}");
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < secs(10), "{took:?}");
    assert!(!group_alive(s.pid), "the group outlived its grace");
}

/// Whether any process of group `pgid` is still there.
fn group_alive(pgid: u32) -> bool {
    Command::new("kill")
        .args(["-0", "--", &format!("-{pgid}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `term GRACE`: a command that ignores SIGTERM is SIGKILLed once the grace ran out.
#[test]
fn a_command_ignoring_sigterm_is_killed_after_the_grace() {
    let dir = TempDir::new("sup-stubborn");
    let ready = dir.path().join("ready");
    let cmd = format!(
        "trap '' TERM; touch '{}'; sleep 1000 & wait; sleep 1000",
        ready.display()
    );
    let mut s = Sup::start(dir.path(), &cmd);
    await_file(&ready);
    s.send("term 700");
    let sent = Instant::now();
    let (reports, status) = s.until_exit(secs(20));
    let took = sent.elapsed();
    println!("stubborn command killed {took:?} after term 700; reports {reports:?}");
    assert_eq!(reports[0], "sigkill grace", "{reports:?}");
    assert_eq!(status.signal(), Some(9), "{status:?}");
    assert!(took >= Duration::from_millis(700), "{took:?}");
    assert!(took < secs(10), "{took:?}");
}

/// `term GRACE`: a command that exits on SIGTERM reports its own status, before the grace.
#[test]
fn a_command_exiting_on_sigterm_reports_its_status() {
    let dir = TempDir::new("sup-polite");
    let ready = dir.path().join("ready");
    let cmd = format!(
        "trap 'exit 7' TERM; touch '{}'; sleep 1000 & wait",
        ready.display()
    );
    let mut s = Sup::start(dir.path(), &cmd);
    await_file(&ready);
    s.send("term 20000");
    let (reports, status) = s.until_exit(secs(15));
    assert_eq!(reports.len(), 1, "no sigkill: {reports:?}");
    assert_eq!(status.code(), Some(7), "{status:?}");

    let mut s = Sup::start(dir.path(), "exec sleep 1000");
    s.send("term 20000");
    let (_, status) = s.until_exit(secs(15));
    assert_eq!(status.signal(), Some(15), "{status:?}");
}

/// The ignored signals of a probe, 1 to 31 (the realtime ones glibc uses itself vary with
/// how a process was started).
fn ignored(probe: &str) -> u64 {
    probe
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0)
        & 0x7fff_ffff
}

/// The signals the supervisor ignores itself and gives the command at their defaults.
fn handed_back() -> u64 {
    [
        libc::SIGINT,
        libc::SIGHUP,
        libc::SIGTERM,
        libc::SIGPIPE,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ]
    .iter()
    .map(|s| 1u64 << (s - 1))
    .fold(0, |a, b| a | b)
}

/// The signals the command starts with ignored and blocked, as `grep` run by it sees them.
fn probe_signals(probe: &Path) -> String {
    format!(
        "grep -E '^(SigIgn|SigBlk)' /proc/self/status > '{}'",
        probe.display()
    )
}

/// The command starts as a plain `sh -c` would from here (the supervisor's ignored signals
/// are not inherited), with stdin from /dev/null and no descriptor but its output; what it
/// leaves behind in its group is killed when it exits.
#[test]
fn the_command_starts_clean_and_leaves_nothing_behind() {
    let dir = TempDir::new("sup-clean");
    let p = |name: &str| dir.path().join(name);
    let direct = Command::new("sh")
        .args(["-c", &probe_signals(&p("direct"))])
        .status()
        .unwrap();
    assert!(direct.success());
    let cmd = format!(
        "{}; sleep 1000 & echo $! > '{}'; while [ ! -e '{}' ]; do sleep 0.05; done; exit 3",
        probe_signals(&p("probe")),
        p("bg").display(),
        p("go").display()
    );
    let mut s = Sup::start(dir.path(), &cmd);
    let supervisor = s.process.id();
    await_file(&p("bg"));
    let sup_fds = fds(supervisor);
    let sh_fds = fds(s.pid);
    std::fs::write(p("go"), "").unwrap();
    let (_, status) = s.until_exit(secs(20));
    assert_eq!(status.code(), Some(3), "{status:?}");

    let seen = std::fs::read_to_string(p("probe")).unwrap();
    let direct = std::fs::read_to_string(p("direct")).unwrap();
    println!("supervisor fds {sup_fds:?}\ncommand fds {sh_fds:?}\nsignals:\n{seen}");
    // As from a plain `sh -c`, but with the signals the supervisor hands back at their
    // defaults: a test run from a background job (`make test &`, nohup) has SIGINT ignored,
    // which a plain `sh -c` inherits and the command does not.
    assert_eq!(
        ignored(&seen),
        ignored(&direct) & !handed_back(),
        "signals as from a plain sh -c:\n{seen}\n{direct}"
    );
    assert!(seen.contains("SigBlk:\t0000000000000000"), "{seen}");
    // Descriptors this test process was given without close-on-exec reach every child.
    let inherited = inherited_fds();
    let own = |fds: &[String]| -> Vec<String> {
        fds.iter()
            .filter(|f| !inherited.contains(&f.split("->").next().unwrap().to_string()))
            .cloned()
            .collect()
    };
    let sh_own = own(&sh_fds);
    assert_eq!(sh_own.len(), 3, "stdin, stdout, stderr: {sh_fds:?}");
    assert_eq!(sh_own[0], "0->/dev/null", "{sh_fds:?}");
    // The supervisor: its socket, the two output descriptors and the pidfd, nothing more.
    let sup_own = own(&sup_fds);
    assert!(sup_own.len() <= 4, "{sup_fds:?}");
    assert!(sup_own[0].starts_with("0->socket:"), "{sup_fds:?}");

    let left: u32 = std::fs::read_to_string(p("bg"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_for("the background sleep killed", secs(10), || {
        if alive(left) {
            Err(format!("{left} alive"))
        } else {
            Ok(())
        }
    });
    assert!(s.reaped(secs(10)).success());
}

/// A command that cannot start (no `sh` on the PATH) is reported with its errno, exit 1.
#[test]
fn a_command_that_cannot_start_is_reported() {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let mut process = Command::new(BIN)
        .args(["__supervise", "test", "true"])
        .env("PATH", "/nonexistent")
        .stdin(Stdio::from(OwnedFd::from(theirs)))
        .spawn()
        .unwrap();
    let mut s = Sup {
        process: Command::new("true").spawn().unwrap(),
        control: ours,
        unread: Vec::new(),
        pid: 0,
        started: Instant::now(),
    };
    let first = s.report(secs(20));
    assert_eq!(
        first.as_deref(),
        Some("error 2 No such file or directory (os error 2)")
    );
    let status = process.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{status:?}");
}

/// `__supervise` is for bully alone: wrong arguments get one line and exit 2, and `--help`
/// does not mention it.
#[test]
fn bad_arguments_exit_2_with_one_line() {
    let out = Command::new(BIN)
        .arg("__supervise")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("__supervise"), "{err}");
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(!String::from_utf8_lossy(&help.stdout).contains("supervise"));
}

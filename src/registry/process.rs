//! Which process wrote a record, and whether it still runs: a node killed with SIGKILL leaves
//! its record behind, and a record whose process is gone must not stay a member for good.
//!
//! A process is named by its pid together with the boot it runs in (`boot_id`), its pid
//! namespace and its start time, so a pid reused after a reboot, in another container or by
//! a later process is never taken for the node. Only a record written on this boot in this
//! pid namespace can be judged at all; any other (another host on a shared file system,
//! another container) is left to the caller.

use serde::{Deserialize, Serialize};

/// The writer of a record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// `/proc/sys/kernel/random/boot_id`: differs after every boot and on every host.
    pub boot_id: String,
    /// The pid namespace, as `/proc/self/ns/pid` names it (`pid:[4026531836]`).
    pub pid_ns: String,
    /// Clock ticks from boot to the process's start (`/proc/PID/stat`, field 22).
    pub start_time: u64,
    /// Random per process: the records that are this process's own.
    pub token: String,
}

/// What can be said about a record's writer from here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// It runs (or a process of its pid runs that this one may not look into).
    Alive,
    /// It is gone: no process has its pid, or one that started at another time.
    Gone,
    /// Another boot, host or pid namespace: nothing can be told from here.
    Unknown,
}

impl Process {
    /// This process, with `token`; `None` where `/proc` does not say (not Linux, no `/proc`).
    pub fn current(token: &str) -> Option<Process> {
        let pid = std::process::id();
        Some(Process {
            pid,
            boot_id: boot_id()?,
            pid_ns: pid_namespace()?,
            start_time: start_time(pid)?,
            token: token.to_string(),
        })
    }

    /// Whether the writer still runs, judged from `here` (this process's identity).
    pub fn liveness(&self, here: &Process) -> Liveness {
        if self.boot_id != here.boot_id || self.pid_ns != here.pid_ns {
            return Liveness::Unknown;
        }
        let Ok(pid) = libc::pid_t::try_from(self.pid) else {
            return Liveness::Gone;
        };
        // SAFETY: signal 0 sends nothing; kill only checks that the process exists.
        let exists = unsafe { libc::kill(pid, 0) } == 0
            || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH);
        if !exists {
            return Liveness::Gone;
        }
        match start_time(self.pid) {
            Some(t) if t != self.start_time => Liveness::Gone,
            // Its start time matches, or /proc hides it (another user's process under
            // hidepid): alive.
            _ => Liveness::Alive,
        }
    }
}

fn boot_id() -> Option<String> {
    let id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    Some(id.trim().to_string()).filter(|s| !s.is_empty())
}

fn pid_namespace() -> Option<String> {
    let link = std::fs::read_link("/proc/self/ns/pid").ok()?;
    Some(link.to_string_lossy().into_owned())
}

/// Field 22 of the process's stat, counted after the command name (which may hold spaces and
/// parentheses, so it is skipped up to the last `)`). Read from its main thread's entry,
/// `/proc/PID/task/PID/stat`, which holds the same start time as `/proc/PID/stat`: qemu-user
/// (the ARM nodes of `make cross-test`) answers `/proc/PID/stat` of its own process itself,
/// with the start of whichever thread asks, so an emulated node took its own record for one
/// of a process that is gone.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_finished_one_is_gone() {
        let me = Process::current("t").expect("/proc describes this process");
        assert_eq!(me.liveness(&me), Liveness::Alive);
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let gone = Process { pid, ..me.clone() };
        assert_eq!(gone.liveness(&me), Liveness::Gone);
        let reused = Process {
            start_time: me.start_time + 1,
            ..me.clone()
        };
        assert_eq!(
            reused.liveness(&me),
            Liveness::Gone,
            "same pid, other start"
        );
        let elsewhere = Process {
            boot_id: "another boot".into(),
            ..gone.clone()
        };
        assert_eq!(elsewhere.liveness(&me), Liveness::Unknown);
        let container = Process {
            pid_ns: "pid:[1]".into(),
            ..gone
        };
        assert_eq!(container.liveness(&me), Liveness::Unknown);
    }
}

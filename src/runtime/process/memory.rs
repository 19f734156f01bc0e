//! How the process allocates: from one malloc arena, whose free pages go back to the system
//! every little while.
//!
//! glibc gives each thread that allocates an arena of its own, up to eight per core, and an
//! arena keeps what was freed in it. A node starts a thread for each peer call and each
//! connection, so its bursts left a dozen arenas behind, each holding on to memory: in the
//! soak (tests/support/soak.rs) a long-lived node's anonymous memory grew by a fifth in the
//! four minutes after its first one (1872 → 2232 KiB) and kept climbing. With one arena it
//! grows by steps that only partly come back (1480 to 2008 KiB over ten minutes): freed
//! chunks amid the heap are kept until the top of the heap is free. Trimming every
//! [`TRIM_EVERY`] hands those pages back. The lock the threads now share, and the trim (a walk
//! over a heap of a few hundred KiB), cost nothing measurable next to the network calls.

//!
//! glibc also keeps the stacks of exited threads, up to 40 MiB, for the next threads, and
//! with them every page those threads touched: a minute after a burst of 200 concurrent
//! requests a node held 1410 KiB PSS (918 KiB before it); with the cache off, 871 KiB. The
//! cache is a tunable glibc reads only when a program starts, so a node re-executes itself
//! once with it set ([`without_stack_cache`]); its hooks and `--exec` child get the user's
//! `GLIBC_TUNABLES` back.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often [`trim`] gives free pages back at most.
pub const TRIM_EVERY: Duration = Duration::from_secs(10);

/// Limits malloc to one arena; call first thing, before any thread is started.
pub fn one_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes a setting of the allocator; it is called before this
    // process starts any thread, and a refusal (a return of 0) only leaves the default.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Runs this program again with glibc's stack cache off, unless `GLIBC_TUNABLES` already
/// says how large it is; returns only when that is so, or when the exec failed (the node then
/// runs with the cache). Call first thing, before any thread is started.
pub fn without_stack_cache() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use crate::supervisor::process::NO_STACK_CACHE;
        use std::os::unix::process::CommandExt;
        let current = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if current.contains("glibc.pthread.stack_cache_size") {
            return;
        }
        let value = if current.is_empty() {
            NO_STACK_CACHE.to_string()
        } else {
            format!("{current}:{NO_STACK_CACHE}")
        };
        let mut args = std::env::args_os();
        let name = args.next().unwrap_or_default();
        // The program's own path rather than /proc/self/exe, whose name ("exe") the kernel
        // would give the process (in ps, and as its journal identifier). exec returns only on
        // failure.
        let program = std::env::current_exe().unwrap_or_else(|_| "/proc/self/exe".into());
        let _ = std::process::Command::new(program)
            .arg0(name)
            .args(args)
            .env("GLIBC_TUNABLES", value)
            .exec();
    }
}

/// Gives the heap's free pages back to the system, at most every [`TRIM_EVERY`]; call it from
/// a schedule.
pub fn trim() {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = crate::sync::lock(&LAST);
    if last.is_some_and(|t| t.elapsed() < TRIM_EVERY) {
        return;
    }
    *last = Some(Instant::now());
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory of the allocator to the system.
    unsafe {
        libc::malloc_trim(0);
    }
}

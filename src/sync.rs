//! Two helpers every part uses: locks that survive a panicked holder, and named threads.

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex even when a panicking thread poisoned it. Every shared value in the node is
/// changed in single steps that leave it consistent (the election state only by the core's
/// transitions), so the value behind a poisoned lock is still sound, and one panicking request
/// handler must not take every later request down with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts a thread with a name (it shows in `top -H`, `/proc/PID/task/*/comm` and panics).
pub fn spawn_named<F>(name: &str, f: F) -> std::io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() + Send + 'static,
{
    std::thread::Builder::new().name(name.into()).spawn(f)
}

thread_local! {
    static STATE_LOCKED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread as holding the election state lock for as long as it lives.
/// Network and registry calls check [`assert_no_state_lock`], so a call made under the lock
/// fails loudly in every debug build (and so in every test run) instead of stalling a node.
pub struct StateLockHeld(());

impl StateLockHeld {
    pub fn enter() -> StateLockHeld {
        STATE_LOCKED.with(|s| s.set(true));
        StateLockHeld(())
    }
}

impl Drop for StateLockHeld {
    fn drop(&mut self) {
        STATE_LOCKED.with(|s| s.set(false));
    }
}

/// Panics (in debug builds) when called while this thread holds the election state lock.
pub fn assert_no_state_lock(what: &str) {
    debug_assert!(
        !STATE_LOCKED.with(|s| s.get()),
        "{what} while holding the election state lock"
    );
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn io_under_the_state_lock_panics() {
        assert_no_state_lock("a call");
        let held = StateLockHeld::enter();
        let r = std::panic::catch_unwind(|| assert_no_state_lock("a call"));
        assert!(r.is_err(), "no panic while the lock was held");
        drop(held);
        assert_no_state_lock("a call");
    }
}

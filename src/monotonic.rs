//! The host's monotonic clock (`CLOCK_MONOTONIC`) as plain numbers. Unlike an `Instant`, a
//! reading means the same in every process of the host, so the node can hand its
//! supervisors a deadline as a point on this clock: a message that waits in a frozen node or
//! in a socket arrives late, but says the same instant, and no delay on the way can stretch
//! it. The clock does not jump with the wall clock (NTP steps, `date -s`).

/// Milliseconds on the host's monotonic clock.
pub type MonoMs = u64;

/// Now, in nanoseconds on the host's monotonic clock.
pub fn now_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the timespec it is given; CLOCK_MONOTONIC always exists on
    // Linux. It is async-signal-safe, so a child may call this between fork and exec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Now, in whole milliseconds (rounded down) on the host's monotonic clock.
pub fn now_ms() -> MonoMs {
    now_ns() / 1_000_000
}

/// Whether the deadline `at` has come: the clock reads `at` or later.
pub fn passed(at: MonoMs) -> bool {
    now_ms() >= at
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    #[test]
    fn it_is_the_clock_instant_reads() {
        // std's Instant is CLOCK_MONOTONIC on Linux: the same elapsed time on both.
        let (a, i) = (now_ns(), Instant::now());
        std::thread::sleep(Duration::from_millis(20));
        let (b, j) = (now_ns(), Instant::now());
        let ours = Duration::from_nanos(b - a);
        let std = j - i;
        let diff = ours.abs_diff(std);
        assert!(diff < Duration::from_millis(5), "{ours:?} vs {std:?}");
        assert!(!passed(now_ms() + 1000));
        assert!(passed(now_ms()));
    }
}

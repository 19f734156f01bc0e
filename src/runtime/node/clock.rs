//! The node's clock: milliseconds of the host's monotonic clock since the node started, the
//! unit the core counts leases and promises in. Monotonic, so wall-clock jumps (NTP steps, an
//! operator setting the date) never shorten or stretch a lease; read straight from
//! `CLOCK_MONOTONIC`, so a core time converts exactly into a deadline the node's supervisors
//! read on the same clock.

use crate::monotonic::{self, MonoMs};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    /// The host's monotonic clock when the node started, in nanoseconds.
    epoch_ns: u64,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            epoch_ns: monotonic::now_ns(),
        }
    }

    /// Now, in the core's milliseconds.
    pub fn now(&self) -> u64 {
        monotonic::now_ns().saturating_sub(self.epoch_ns) / 1_000_000
    }

    /// The core time `ms` as a point on the host's monotonic clock, rounded down: a deadline
    /// made from it never falls later than the core meant.
    pub fn monotonic(&self, ms: u64) -> MonoMs {
        (self.epoch_ns / 1_000_000).saturating_add(ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_core_time_is_never_later_on_the_host_clock() {
        let c = Clock::start();
        let now = c.now();
        let host = monotonic::now_ms();
        // Rounding both down can put the host reading at most 1 ms past the conversion.
        let at = c.monotonic(now);
        assert!(at <= host && host - at <= 1, "{at} vs {host}");
    }
}

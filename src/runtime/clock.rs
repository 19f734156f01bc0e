//! The node's clock: milliseconds of the monotonic clock since the node started, the unit the
//! core counts leases and promises in. Monotonic, so wall-clock jumps (NTP steps, an operator
//! setting the date) never shorten or stretch a lease.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct Clock {
    epoch: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            epoch: Instant::now(),
        }
    }

    /// Now, in the core's milliseconds.
    pub fn now(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// The instant a core time stands for.
    pub fn instant(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }
}

//! The timers and limits of one node, as the command line set them.

use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Timing {
    /// The first election runs this long after start.
    pub startup_delay: Duration,
    /// How often a follower checks its coordinator (and a coordinator looks up).
    pub health_interval: Duration,
    /// Per-request timeout to peers.
    pub timeout: Duration,
    /// How often the coordinator beats on each follower's stream; a follower that hears
    /// nothing for [`Timing::silence`] takes the coordinator for gone.
    pub heartbeat: Duration,
}

/// Beats a follower may miss before it takes the coordinator for gone: one late beat (a busy
/// machine) costs nothing.
pub const MISSED_BEATS: u32 = 3;

impl Timing {
    /// How long a follower waits for the next beat.
    pub fn silence(&self) -> Duration {
        self.heartbeat * MISSED_BEATS
    }
}

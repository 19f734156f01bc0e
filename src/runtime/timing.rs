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
}

//! How a node takes part in elections, as the command line set it up: the mode, the waits
//! the core asks the shell to time, what follows from leadership. Read-only to the core.

use super::quorum::{Millis, Quorum};
use std::time::Duration;

/// How soon a node that was refused the lock asks again, by default (Consul). The usual
/// holder is a coordinator that just died, whose session Consul invalidates once its check
/// fails.
pub const LOCK_RETRY_MS: Millis = 1000;
/// etcd: a refused try costs one transaction, and the dead holder's key may go any moment
/// (its supervisor revokes the lease once the child is dead), so the next node asks often.
pub const ETCD_LOCK_RETRY_MS: Millis = 50;

/// How a node takes part, and the waits it asks the shell to time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// How long to wait for the announcement of a higher node that answered this node's
    /// election message: that node may itself wait out one timeout on a dead node above it,
    /// then announce, so a few timeouts are ample.
    pub announce_wait: Duration,
    /// How long to wait for the successor's announcement after the watched coordinator said
    /// it stopped leading.
    pub successor_wait: Duration,
    /// Quorum mode (`--quorum`); `None` is plain Bully.
    pub quorum: Option<Quorum>,
    /// A witness votes but never stands for election.
    pub witness: bool,
    /// Whether hooks or an `--exec` child follow leadership: if so, a coordinator that hands
    /// over waits for them to let go ([`Event::LetGo`]) before it releases its followers.
    pub has_hooks: bool,
    /// `--no-preempt`: a higher node follows a live coordinator instead of taking over.
    pub no_preempt: bool,
    /// `--preempt-delay`: a higher node takes over only once healthy this long.
    pub preempt_delay_ms: Millis,
    /// A health check is configured: the node stands only once it has passed.
    pub health_checked: bool,
    /// `--exec-exit-unhealthy`: an `--exec` child that exits by itself takes the node out
    /// of the running for `recover_after_ms`.
    pub exec_exit_unhealthy: bool,
    pub recover_after_ms: Millis,
    /// `--consul-lock`, `--etcd-lock`: leading also takes holding the leader lock (see
    /// `lock.rs`).
    pub lock: bool,
    /// How soon a node refused the lock asks again.
    pub lock_retry_ms: Millis,
    /// Whether a follower that hears its coordinator's beats skips its health checks (see
    /// [`Settings::beats_notice_first`]).
    pub beats_stand_in: bool,
}

impl Settings {
    /// Plain Bully for a node whose peer calls time out after `timeout`.
    pub fn for_timeout(timeout: Duration) -> Self {
        Settings {
            announce_wait: timeout * 4,
            successor_wait: timeout,
            quorum: None,
            witness: false,
            has_hooks: false,
            no_preempt: false,
            preempt_delay_ms: 0,
            health_checked: false,
            exec_exit_unhealthy: false,
            recover_after_ms: 0,
            lock: false,
            lock_retry_ms: LOCK_RETRY_MS,
            beats_stand_in: false,
        }
    }

    /// Beats stand in for the health check when their silence (`silence`: the missed beats
    /// after which a follower takes the coordinator for gone) notices a frozen or cut-off
    /// coordinator no later than a check would: one interval, then one timeout for the
    /// answer. A process that dies closes the stream at once either way. With a long
    /// `--heartbeat` and a short `--health-interval` the checks stay.
    pub fn beats_notice_first(
        silence: Duration,
        health_interval: Duration,
        timeout: Duration,
    ) -> bool {
        silence <= health_interval + timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beats_stand_in_only_where_they_notice_a_failure_no_later_than_a_check() {
        let ms = Duration::from_millis;
        // The defaults: 3 × 250 ms against 20 s + 1 s.
        assert!(Settings::beats_notice_first(ms(750), ms(20_000), ms(1000)));
        // A 200 ms interval still waits 1 s for a frozen coordinator's answer.
        assert!(Settings::beats_notice_first(ms(750), ms(200), ms(1000)));
        assert!(Settings::beats_notice_first(ms(1200), ms(200), ms(1000)));
        // --heartbeat 5s beside --health-interval 500ms: 15 s of silence, the checks stay.
        assert!(!Settings::beats_notice_first(ms(15_000), ms(500), ms(1000)));
    }
}

//! The coordinator's beat hub: every follower holds one upgraded connection (`GET /watch` with
//! `Upgrade: bully-beat`), and one thread writes `beat TERM` down each of them at the interval
//! the follower asked for. A follower that hears no beat within a few intervals knows the
//! coordinator is frozen, dead or cut off, in well under a second, where a held request only
//! noticed after its hold; one thread serves every follower, where held requests cost a
//! thread each. When the node stops leading it writes `demoted`, when it shuts down
//! `shutdown`, then closes every stream.

use super::leadership::{Leadership, Signal};
use crate::core::election::Snapshot;
use crate::http::server::UpgradedIo;
use crate::sync::{lock, spawn_named};
use std::io::Write;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest a write to one follower may block: a follower frozen so long that its socket
/// buffer filled is dropped rather than let it hold up the beats of the others.
const SEND_TIMEOUT: Duration = Duration::from_millis(50);
/// Bounds on the interval a follower may ask for.
pub const MIN_BEAT: Duration = Duration::from_millis(20);
pub const MAX_BEAT: Duration = Duration::from_secs(5);

struct Stream {
    io: Box<dyn UpgradedIo>,
    every: Duration,
    next: Instant,
}

pub struct Beats {
    streams: Mutex<Vec<Stream>>,
    leadership: Arc<Leadership>,
}

impl Beats {
    /// Starts the hub thread; `snapshot` tells whether the node still asks to be followed
    /// and in which term.
    pub fn start(
        leadership: Arc<Leadership>,
        snapshot: impl Fn() -> Snapshot + Send + 'static,
        followed: fn(&Snapshot) -> bool,
    ) -> std::io::Result<Arc<Beats>> {
        let beats = Arc::new(Beats {
            streams: Mutex::new(Vec::new()),
            leadership,
        });
        let hub = Arc::clone(&beats);
        spawn_named("beats", move || hub.run(&snapshot, followed))?;
        Ok(beats)
    }

    /// Takes over an upgraded connection (its socket is `fd`). At the cap of watches the
    /// follower is told `busy` (it falls back to the health check).
    pub fn add(&self, mut io: Box<dyn UpgradedIo>, fd: RawFd, every: Duration) {
        if !self.leadership.enter_held() {
            let _ = io.write_all(b"busy\n").and_then(|()| io.flush());
            return;
        }
        set_send_timeout(fd, SEND_TIMEOUT);
        lock(&self.streams).push(Stream {
            io,
            every: every.clamp(MIN_BEAT, MAX_BEAT),
            next: Instant::now(),
        });
        self.leadership.stream_added();
    }

    fn run(&self, snapshot: &dyn Fn() -> Snapshot, followed: fn(&Snapshot) -> bool) {
        let mut seen = Signal::default();
        loop {
            let wait = {
                let streams = lock(&self.streams);
                let next = streams.iter().map(|s| s.next).min();
                match next {
                    Some(at) => at.saturating_duration_since(Instant::now()),
                    None => Duration::from_secs(3600),
                }
            };
            seen = self.leadership.wait_from(seen, wait);
            let now = snapshot();
            // A node that stops leading because it is leaving has let go of its work (it says
            // so only then): followers may elect at once.
            if seen.closing || (now.leaving && !followed(&now)) {
                self.end_all(b"shutdown\n");
                continue;
            }
            if !followed(&now) {
                self.end_all(b"demoted\n");
                continue;
            }
            self.beat(now.term);
        }
    }

    /// Writes a beat to every stream that is due; drops the ones that fail.
    fn beat(&self, term: u64) {
        let line = format!("beat {term}\n");
        let now = Instant::now();
        let mut streams = lock(&self.streams);
        let before = streams.len();
        streams.retain_mut(|s| {
            // Streams due within a quarter beat go along with this one: they fall into step,
            // and the hub wakes once per beat for all followers instead of once for each.
            if s.next > now + s.every / 4 {
                return true;
            }
            s.next = now + s.every;
            s.io.write_all(line.as_bytes())
                .and_then(|()| s.io.flush())
                .is_ok()
        });
        for _ in streams.len()..before {
            self.leadership.leave();
        }
    }

    /// Tells every follower why the streams end, and closes them.
    fn end_all(&self, why: &[u8]) {
        let ended: Vec<Stream> = std::mem::take(&mut *lock(&self.streams));
        for mut s in ended {
            let _ = s.io.write_all(why).and_then(|()| s.io.flush());
            self.leadership.leave();
        }
    }
}

/// SO_SNDTIMEO on the socket: std cannot set it on a descriptor it does not own as a stream.
fn set_send_timeout(fd: RawFd, timeout: Duration) {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as _,
        tv_usec: timeout.subsec_micros() as _,
    };
    // SAFETY: a valid timeval of the right size for SO_SNDTIMEO on a socket the caller
    // keeps open; a failure only leaves the default timeout in place.
    let r = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if r != 0 {
        log::debug!(
            "cannot set a send timeout on a beat stream: {}",
            std::io::Error::last_os_error()
        );
    }
}

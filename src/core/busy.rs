//! What to do when a member answers 503 (too many requests in flight): ask again shortly, a
//! few times. In a large cluster the election messages of every lower node reach one node at
//! once; a message it never saw could leave a node waiting out four timeouts for an
//! announcement. The shell sleeps and sends; how often and how long is decided here.

use std::time::Duration;

/// Tries of one message, the first included: 50 + 100 + 150 + 200 ms of waiting at most.
const TRIES: u32 = 5;
const BACKOFF: Duration = Duration::from_millis(50);

/// How long to wait before sending again after try number `attempt` (from 1) was answered
/// 503, or `None` when that was the last try.
pub fn retry_after(attempt: u32) -> Option<Duration> {
    (attempt < TRIES).then(|| BACKOFF * attempt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_tries_with_growing_waits_then_none() {
        let waits: Vec<_> = (1..=6).map(retry_after).collect();
        let ms = |m| Some(Duration::from_millis(m));
        assert_eq!(waits, vec![ms(50), ms(100), ms(150), ms(200), None, None]);
    }
}

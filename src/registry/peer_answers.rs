//! Asking every listed peer who it is without waiting on the ones that do not answer. A frozen
//! peer, a dead host or a cut link answers nothing until the timeout, and every member list,
//! so every election round, would wait that long: after a frozen coordinator the round that
//! replaces it started a whole `--timeout` late. A peer that has answered before and is slow
//! now is listed as it last answered (or left out, if its last question failed); its question
//! goes on in the background, one at a time per peer, and its answer serves the next list. A
//! peer never asked before is waited for, up to its timeout, as before.

use crate::core::member::Member;
use crate::sync::lock;
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a list waits for peers that answered before.
pub const KNOWN_WAIT: Duration = Duration::from_millis(50);

#[derive(Default)]
struct Peer {
    /// What its last finished question gave (`None`: not a member, or no answer).
    last: Option<Member>,
    /// A question finished at least once.
    answered: bool,
    /// A question is out.
    asking: bool,
}

/// The peers' last answers, shared with the questions still out.
#[derive(Default)]
pub struct PeerAnswers {
    peers: Arc<Mutex<HashMap<String, Peer>>>,
}

impl PeerAnswers {
    /// The members among `addresses`: asks each with `ask` (which gives up by itself after
    /// `timeout`), waits for the ones never asked before and at most [`KNOWN_WAIT`] for the
    /// others.
    pub fn collect<F>(&self, addresses: &[String], timeout: Duration, ask: F) -> Vec<Member>
    where
        F: Fn(&str) -> Option<Member> + Clone + Send + 'static,
    {
        let start = Instant::now();
        let (done, finished) = mpsc::channel::<String>();
        // Questions this list waits for: address and whether the peer answered before.
        let mut waiting: HashMap<String, bool> = HashMap::new();
        for address in addresses {
            let answered = {
                let mut peers = lock(&self.peers);
                let peer = peers.entry(address.clone()).or_default();
                if peer.asking {
                    // Still out from an earlier list: its last answer serves.
                    continue;
                }
                peer.asking = true;
                peer.answered
            };
            let (peers, done, ask, who) = (
                Arc::clone(&self.peers),
                done.clone(),
                ask.clone(),
                address.clone(),
            );
            let spawned = std::thread::Builder::new()
                .name("peer-ask".into())
                .spawn(move || {
                    let member = ask(&who);
                    if let Some(peer) = lock(&peers).get_mut(&who) {
                        peer.last = member;
                        peer.answered = true;
                        peer.asking = false;
                    }
                    let _ = done.send(who);
                });
            match spawned {
                Ok(_) => {
                    waiting.insert(address.clone(), answered);
                }
                Err(_) => {
                    // No thread to ask with: the last answer serves this time.
                    if let Some(peer) = lock(&self.peers).get_mut(address) {
                        peer.asking = false;
                    }
                }
            }
        }
        drop(done);
        // The questions give up at their timeout; the margin covers a slow thread start.
        let new_deadline = start + timeout + Duration::from_millis(500);
        let known_deadline = start + KNOWN_WAIT.min(timeout);
        while !waiting.is_empty() {
            let deadline = if waiting.values().any(|answered| !answered) {
                new_deadline
            } else {
                known_deadline
            };
            let left = deadline.saturating_duration_since(Instant::now());
            match finished.recv_timeout(left) {
                Ok(who) => {
                    waiting.remove(&who);
                }
                Err(_) => break,
            }
        }
        let peers = lock(&self.peers);
        addresses
            .iter()
            .filter_map(|a| peers.get(a).and_then(|p| p.last.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn member(id: u64) -> Member {
        Member {
            name: format!("node{id}"),
            id,
            host: "10.0.0.1".into(),
            port: 5000 + id as u16,
            witness: false,
        }
    }

    #[test]
    fn a_peer_that_goes_silent_is_listed_as_it_last_answered_without_holding_the_list() {
        let answers = PeerAnswers::default();
        let frozen = Arc::new(AtomicBool::new(false));
        let peers = vec!["a:1".to_string(), "b:2".to_string()];
        let ask = {
            let frozen = Arc::clone(&frozen);
            move |who: &str| {
                if who == "b:2" && frozen.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_secs(5));
                    return None;
                }
                Some(member(if who == "a:1" { 1 } else { 2 }))
            }
        };
        let timeout = Duration::from_secs(10);
        assert_eq!(
            answers.collect(&peers, timeout, ask.clone()),
            vec![member(1), member(2)]
        );
        frozen.store(true, Ordering::SeqCst);
        let t = Instant::now();
        assert_eq!(
            answers.collect(&peers, timeout, ask.clone()),
            vec![member(1), member(2)]
        );
        // Not a timing test: the silent peer's question takes 5 s, the list did not wait it out.
        assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
        // Its question is still out: the next list does not ask again, and lists it as before.
        assert_eq!(
            answers.collect(&peers, timeout, ask.clone()),
            vec![member(1), member(2)]
        );
        // Once the question failed, the peer is left out.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let listed = answers.collect(&peers, timeout, ask.clone());
            if listed == vec![member(1)] {
                break;
            }
            assert!(Instant::now() < deadline, "still listed: {listed:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_peer_never_asked_before_is_waited_for() {
        let answers = PeerAnswers::default();
        let peers = vec!["slow:1".to_string()];
        let ask = |_: &str| {
            std::thread::sleep(Duration::from_millis(300));
            Some(member(1))
        };
        assert_eq!(
            answers.collect(&peers, Duration::from_secs(10), ask),
            vec![member(1)]
        );
    }
}

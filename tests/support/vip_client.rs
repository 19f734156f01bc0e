//! What a user of a virtual IP sees: every host answers its own name on a TCP port (on every
//! address it has, so on the VIP while it holds it), and a client in a namespace of its own
//! connects to the VIP every few milliseconds and records who answered, or that nobody did.
//! The longest stretch between two answers around a fault is the outage a user saw.
#![allow(dead_code)]

use super::activity::now_ns;
use super::netns::{in_namespace, Host};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one try waits for its connection and answer: the bridge answers in microseconds,
/// so anything slower is a host that is gone (or a box so loaded the figure says so too).
const TRY_TIMEOUT: Duration = Duration::from_millis(30);

/// A name server on every host; they stop on drop.
pub struct NameServers {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl NameServers {
    /// Host `i` answers `names[i]` on `port`, on all its addresses.
    pub fn start(hosts: &[Host], names: &[String], port: u16) -> NameServers {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = hosts
            .iter()
            .map(|h| {
                let listener = in_namespace(h.ns(), || {
                    TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port))
                })
                .unwrap_or_else(|e| panic!("name server on {}: {e}", h.ns()));
                listener.set_nonblocking(true).expect("nonblocking");
                let (stop, name) = (stop.clone(), names[h.index].clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        match listener.accept() {
                            Ok((mut s, _)) => {
                                let _ = s.write_all(format!("{name}\n").as_bytes());
                            }
                            Err(_) => std::thread::sleep(Duration::from_millis(1)),
                        }
                    }
                })
            })
            .collect();
        NameServers { stop, threads }
    }
}

impl Drop for NameServers {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// One try: when it started (ns of the wall clock) and the name that answered.
pub type Answer = (u128, Option<String>);

/// The client: tries the VIP every `every` from its own namespace.
pub struct VipClient {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VipClient {
    pub fn start(client: &Host, vip: Ipv4Addr, port: u16, every: Duration) -> VipClient {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let (s, a, ns) = (stop.clone(), answers.clone(), client.ns().to_string());
        let to = SocketAddr::V4(SocketAddrV4::new(vip, port));
        let thread = std::thread::spawn(move || {
            in_namespace(&ns, || {
                while !s.load(Ordering::Relaxed) {
                    let at = now_ns();
                    let name = ask(to);
                    a.lock().unwrap().push((at, name));
                    std::thread::sleep(every);
                }
            })
        });
        VipClient {
            stop,
            answers,
            thread: Some(thread),
        }
    }

    pub fn answers(&self) -> Vec<Answer> {
        self.answers.lock().unwrap().clone()
    }

    /// Waits until a try made after `since` (ns) got an answer from `name`; how many ms after
    /// `since` that try started, or None when `within` passed first.
    pub fn await_answer(&self, name: &str, since: u128, within: Duration) -> Option<f64> {
        let end = std::time::Instant::now() + within;
        loop {
            let seen = self
                .answers
                .lock()
                .unwrap()
                .iter()
                .find(|(at, n)| *at > since && n.as_deref() == Some(name))
                .map(|(at, _)| (at - since) as f64 / 1e6);
            if seen.is_some() || std::time::Instant::now() > end {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops trying; every answer.
    pub fn finish(mut self) -> Vec<Answer> {
        self.stop_trying();
        self.answers()
    }

    fn stop_trying(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for VipClient {
    fn drop(&mut self) {
        self.stop_trying();
    }
}

fn ask(to: SocketAddr) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&to, TRY_TIMEOUT).ok()?;
    s.set_read_timeout(Some(TRY_TIMEOUT)).ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_string())
}

/// The outage a user saw around a fault at `from` (ns): the longest stretch between two
/// answered tries that ends after `from` and starts before `to`, in ms. A stretch still open
/// at the last try counts up to it.
pub fn outage_ms(answers: &[Answer], from: u128, to: u128) -> f64 {
    let mut last_ok: Option<u128> = None;
    let mut worst = 0u128;
    for (at, name) in answers {
        if name.is_none() {
            continue;
        }
        if let Some(prev) = last_ok {
            if *at > from && prev < to {
                worst = worst.max(at - prev);
            }
        }
        last_ok = Some(*at);
    }
    if let (Some(prev), Some((end, _))) = (last_ok, answers.last()) {
        if *end > from && prev < to {
            worst = worst.max(end - prev);
        }
    }
    worst as f64 / 1e6
}

/// Every stretch with no answer longer than `min_ms`, as (start, length in ms), start in ns.
pub fn outages(answers: &[Answer], min_ms: f64) -> Vec<(u128, f64)> {
    let mut out = Vec::new();
    let mut last_ok: Option<u128> = None;
    for (at, name) in answers {
        if name.is_none() {
            continue;
        }
        if let Some(prev) = last_ok {
            let ms = (at - prev) as f64 / 1e6;
            if ms > min_ms {
                out.push((prev, ms));
            }
        }
        last_ok = Some(*at);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_outage_is_the_longest_stretch_between_answers_around_the_fault() {
        let ms = |m: u128| m * 1_000_000;
        let a = |m: u128, ok: bool| (ms(m), ok.then(|| "n".to_string()));
        let answers = vec![
            a(0, true),
            a(10, true),
            a(20, false),
            a(30, false),
            a(40, true),
            a(100, false),
            a(200, false),
            a(300, true),
            a(310, true),
        ];
        // A fault at 35 ms: the 40 → 300 stretch (260 ms), not the earlier one.
        assert_eq!(super::outage_ms(&answers, ms(35), ms(400)), 260.0);
        // A fault at 15 ms up to 50: the 10 → 40 stretch.
        assert_eq!(super::outage_ms(&answers, ms(15), ms(35)), 30.0);
        assert_eq!(
            super::outages(&answers, 20.0),
            vec![(ms(10), 30.0), (ms(40), 260.0)]
        );
    }
}

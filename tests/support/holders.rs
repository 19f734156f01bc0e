//! Who holds a virtual IP, seen from every host at once: one thread per host, inside its
//! namespace, tries to bind the address every few milliseconds (a bind succeeds only on a host
//! that has the address). Each unbroken run of successes is one holding interval, in the shape
//! of `activity`'s, so its overlap analysis tells whether two hosts held the address at once.

use super::activity::{now_ns, Interval};
use super::netns::{in_namespace, Host};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct HoldWatch {
    stop: Arc<AtomicBool>,
    /// Per host: (when, holds) for each look.
    looks: Arc<Mutex<Vec<(usize, u128, bool)>>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    names: Vec<String>,
}

impl HoldWatch {
    /// Starts looking at `vip` on each of `hosts` every `every`; `names[i]` names host `i`'s
    /// node in the intervals.
    pub fn start(hosts: &[Host], names: Vec<String>, vip: IpAddr, every: Duration) -> HoldWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let looks = Arc::new(Mutex::new(Vec::new()));
        let threads = hosts
            .iter()
            .map(|h| {
                let (stop, looks) = (stop.clone(), looks.clone());
                let (ns, i) = (h.ns().to_string(), h.index);
                std::thread::spawn(move || {
                    in_namespace(&ns, || {
                        while !stop.load(Ordering::Relaxed) {
                            let held = UdpSocket::bind(SocketAddr::new(vip, 0)).is_ok();
                            looks.lock().unwrap().push((i, now_ns(), held));
                            std::thread::sleep(every);
                        }
                    })
                })
            })
            .collect();
        HoldWatch {
            stop,
            looks,
            threads,
            names,
        }
    }

    /// Whether host `i` held the address at its latest look.
    pub fn holds_now(&self, i: usize) -> bool {
        let looks = self.looks.lock().unwrap();
        looks.iter().rev().find(|l| l.0 == i).is_some_and(|l| l.2)
    }

    /// The holding intervals so far: per host, first to last look of each run that held.
    pub fn intervals(&self) -> Vec<Interval> {
        let looks = self.looks.lock().unwrap().clone();
        let mut open: Vec<Option<Interval>> = vec![None; self.names.len()];
        let mut out = Vec::new();
        for (i, at, held) in looks {
            match (&mut open[i], held) {
                (Some(iv), true) => {
                    iv.end = at;
                    iv.beats += 1;
                }
                (None, true) => {
                    open[i] = Some(Interval {
                        node: self.names[i].clone(),
                        file: Default::default(),
                        start: at,
                        end: at,
                        beats: 1,
                    })
                }
                (Some(_), false) => out.extend(open[i].take()),
                (None, false) => {}
            }
        }
        out.extend(open.into_iter().flatten());
        out.sort_by_key(|iv| iv.start);
        out
    }

    /// Stops looking; the intervals seen.
    pub fn finish(mut self) -> Vec<Interval> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        self.intervals()
    }
}

impl Drop for HoldWatch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

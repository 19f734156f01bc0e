//! What leader work looked like, from the outside: every `--exec` child of a test appends a
//! timestamp (nanoseconds of the shared wall clock, which all namespaces of one machine read
//! alike) every 20 ms to a file of its own, named after its node, start and pid. Each file is
//! one child's active interval, first to last line; two intervals that overlap mean two
//! leaders did the work at once.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `--exec` command: one file per child under `dir`, named after its node, its start
/// time and its pid (pids alone repeat: with a pid_max of 32768 and a fork per beat they wrap
/// within minutes, and a reused name would merge two children into one interval).
pub fn worker(dir: &Path) -> String {
    format!(
        "f='{}'/$BULLY_NODE.$(date +%s%N).$$.work; while :; do date +%s%N >> \"$f\"; sleep 0.02; done",
        dir.display()
    )
}

/// One child's active time, in nanoseconds of the wall clock.
#[derive(Clone, Debug)]
pub struct Interval {
    pub node: String,
    pub file: PathBuf,
    pub start: u128,
    pub end: u128,
    pub beats: usize,
}

/// Every child's interval under `dir`, by start.
pub fn intervals(dir: &Path) -> Vec<Interval> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".work") else {
            continue;
        };
        let node = stem.split('.').next().unwrap_or(stem).to_string();
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        // The last line may be cut short by the kill: keep whole numbers only.
        let stamps: Vec<u128> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        if let (Some(&start), Some(&end)) = (stamps.first(), stamps.last()) {
            out.push(Interval {
                node,
                file: path,
                start,
                end,
                beats: stamps.len(),
            });
        }
    }
    out.sort_by_key(|i| i.start);
    out
}

/// Every pair of intervals of different children that overlap, with the overlap in ms.
pub fn overlaps(all: &[Interval]) -> Vec<(Interval, Interval, f64)> {
    let mut out = Vec::new();
    for (i, a) in all.iter().enumerate() {
        for b in &all[i + 1..] {
            if b.start < a.end {
                let ms = (a.end.min(b.end) - b.start) as f64 / 1e6;
                out.push((a.clone(), b.clone(), ms));
            }
        }
    }
    out
}

/// Total overlap in ms: time during which two or more children were active.
pub fn overlap_ms(all: &[Interval]) -> f64 {
    let mut edges: Vec<(u128, i32)> = all
        .iter()
        .flat_map(|i| [(i.start, 1), (i.end, -1)])
        .collect();
    edges.sort();
    let (mut active, mut since, mut total) = (0, 0u128, 0u128);
    for (t, d) in edges {
        if active >= 2 {
            total += t - since;
        }
        active += d;
        since = t;
    }
    total as f64 / 1e6
}

/// The longest stretch in ms between `from` and `to` (ns) with no child active.
pub fn longest_gap_ms(all: &[Interval], from: u128, to: u128) -> f64 {
    let mut covered_to = from;
    let mut gap = 0u128;
    for i in all {
        if i.start > covered_to {
            // A child that started after `to` ends the search's window, not a gap.
            gap = gap.max(i.start.min(to).saturating_sub(covered_to));
        }
        covered_to = covered_to.max(i.end);
    }
    if to > covered_to {
        gap = gap.max(to - covered_to);
    }
    gap as f64 / 1e6
}

/// The wall clock in the unit the workers write.
pub fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

/// A readable list, for failure messages.
pub fn describe(all: &[Interval]) -> String {
    let base = all.first().map_or(0, |i| i.start);
    all.iter()
        .map(|i| {
            format!(
                "{} {:.0}..{:.0} ms ({} beats)",
                i.node,
                (i.start - base) as f64 / 1e6,
                (i.end - base) as f64 / 1e6,
                i.beats
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Like [`describe`], with times from `base` (ns), so they line up with a fault log.
pub fn describe_since(all: &[Interval], base: u128) -> String {
    let ms = |t: u128| (t as f64 - base as f64) / 1e6;
    all.iter()
        .map(|i| {
            format!(
                "{} {:.0}..{:.0} ms ({} beats)",
                i.node,
                ms(i.start),
                ms(i.end),
                i.beats
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// How much of `from..to` (ns) some child was active, in ms.
pub fn covered_ms(all: &[Interval], from: u128, to: u128) -> f64 {
    let mut spans: Vec<(u128, u128)> = all
        .iter()
        .map(|i| (i.start.max(from), i.end.min(to)))
        .filter(|(a, b)| a < b)
        .collect();
    spans.sort();
    let (mut total, mut reach) = (0u128, from);
    for (a, b) in spans {
        let a = a.max(reach);
        if b > a {
            total += b - a;
            reach = b;
        }
    }
    total as f64 / 1e6
}

/// Waits (up to `within`) until no worker file under `dir` grows any more: every child has
/// stopped writing. Returns whether they did.
pub fn await_still(dir: &Path, within: std::time::Duration) -> bool {
    let sizes = || -> Vec<(PathBuf, u64)> {
        let mut v: Vec<(PathBuf, u64)> = std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| (e.path(), e.metadata().map_or(0, |m| m.len())))
            .collect();
        v.sort();
        v
    };
    let end = std::time::Instant::now() + within;
    let mut last = sizes();
    while std::time::Instant::now() < end {
        // Longer than a worker's beat, so a live one always shows growth.
        std::thread::sleep(std::time::Duration::from_millis(150));
        let now = sizes();
        if now == last {
            return true;
        }
        last = now;
    }
    false
}

/// Whether process `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

/// The pids of the `--exec` children (`sh -c CMD`, the supervisors' children) of the bully
/// process `pid`.
pub fn exec_children(pid: u32) -> Vec<u32> {
    // Children are listed per thread that forked them: look at every thread's.
    let children = |p: u32| -> Vec<u32> {
        std::fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|t| {
                std::fs::read_to_string(t.path().join("children"))
                    .unwrap_or_default()
                    .split_whitespace()
                    .filter_map(|s| s.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    };
    children(pid)
        .into_iter()
        .filter(|s| {
            std::fs::read_to_string(format!("/proc/{s}/cmdline"))
                .unwrap_or_default()
                .contains("__supervise\0exec")
        })
        .flat_map(children)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iv(node: &str, start: u128, end: u128) -> Interval {
        Interval {
            node: node.into(),
            file: PathBuf::new(),
            start: start * 1_000_000,
            end: end * 1_000_000,
            beats: 1,
        }
    }

    #[test]
    fn overlap_and_gaps() {
        let all = [iv("a", 0, 100), iv("b", 90, 200), iv("c", 300, 400)];
        assert_eq!(overlaps(&all).len(), 1);
        assert_eq!(overlap_ms(&all), 10.0);
        assert_eq!(longest_gap_ms(&all, 0, 500 * 1_000_000), 100.0);
        // A window that ends inside the first interval, with others after it: no gap.
        assert_eq!(longest_gap_ms(&all, 0, 50 * 1_000_000), 0.0);
        // 0..200 and 300..400 covered, within 50..350.
        assert_eq!(covered_ms(&all, 50_000_000, 350_000_000), 200.0);
    }
}

//! What leader work looked like, from the outside: every `--exec` child of a test appends a
//! timestamp (nanoseconds of the shared wall clock, which all namespaces of one machine read
//! alike) every 20 ms to a file of its own, named after its node and pid. Each file is one
//! child's active interval, first to last line; two intervals that overlap mean two leaders
//! did the work at once.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The `--exec` command: one file per child under `dir`.
pub fn worker(dir: &Path) -> String {
    format!(
        "f='{}'/$BULLY_NODE.$$.work; while :; do date +%s%N >> \"$f\"; sleep 0.02; done",
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
            gap = gap.max(i.start.min(to) - covered_to);
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
    }
}

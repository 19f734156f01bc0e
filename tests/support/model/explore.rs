//! The explorer: breadth first over every state the world can reach within the bounds, each
//! state kept once by its fingerprint, so the first trace found to a failing state is a
//! shortest one. Liveness is checked from every state reached: a fair, fault-free run from
//! it must reach agreement within a bound of time (each state on such a run remembers when
//! agreement came, so runs that meet share the rest).

use super::props::{Violation, AGREEMENT};
use super::time::{self, UNITS_PER_MS};
use super::world::{Action, Spec, World};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// One exploration.
pub struct Run<'a> {
    pub name: &'a str,
    pub spec: &'a Spec,
    /// The states it starts from.
    pub roots: Vec<World>,
    /// Real time (units) beyond which time does not move.
    pub horizon: u64,
    /// A guard: the run stops (incomplete) when it has seen this many states.
    pub max_states: usize,
    /// Check liveness: a fair run from every state must agree within this many real ms.
    pub agree_within_ms: Option<u64>,
    /// Stop at the first property that fails.
    pub stop_at_first: bool,
}

/// A failing state and a shortest way there.
#[derive(Debug)]
pub struct Found {
    pub property: &'static str,
    pub detail: String,
    pub root: usize,
    pub actions: Vec<Action>,
}

#[derive(Debug)]
pub struct Report {
    pub states: usize,
    pub transitions: u64,
    /// Moves on the longest of the shortest paths explored.
    pub depth: usize,
    /// The latest real time reached.
    pub reached: u64,
    pub elapsed: Duration,
    /// Every state within the bounds was explored.
    pub complete: bool,
    pub found: Vec<Found>,
    /// States whose fair continuation was run, and the slowest agreement (real units).
    pub liveness_checked: usize,
    pub slowest_agreement: u64,
}

impl Report {
    pub fn line(&self, name: &str) -> String {
        format!(
            "model {name}: {} states, {} transitions, depth {}, real time up to {}, {:.1} s{}; \
             liveness from {} states, slowest agreement {}; {} propert{} failed",
            self.states,
            self.transitions,
            self.depth,
            time::ms(self.reached),
            self.elapsed.as_secs_f64(),
            if self.complete {
                ", complete"
            } else {
                ", INCOMPLETE (state cap)"
            },
            self.liveness_checked,
            time::ms(self.slowest_agreement),
            self.found.len(),
            if self.found.len() == 1 { "y" } else { "ies" },
        )
    }

    pub fn failed(&self, property: &str) -> Option<&Found> {
        self.found.iter().find(|f| f.property == property)
    }
}

/// Where each state was first reached from.
enum Origin {
    Root(usize),
    From(u64, Action),
}

pub fn explore(run: &Run) -> Report {
    let start = Instant::now();
    let spec = run.spec;
    let mut seen: HashMap<u64, Origin> = HashMap::new();
    let mut frontier: Vec<(u64, World)> = Vec::new();
    for (k, w) in run.roots.iter().enumerate() {
        let fp = w.fingerprint();
        if seen.insert(fp, Origin::Root(k)).is_none() {
            frontier.push((fp, w.clone()));
        }
    }
    let mut report = Report {
        states: 0,
        transitions: 0,
        depth: 0,
        reached: 0,
        elapsed: Duration::ZERO,
        complete: true,
        found: Vec::new(),
        liveness_checked: 0,
        slowest_agreement: 0,
    };
    // Liveness: for states on fair runs, the real time agreement came.
    let mut agreed_at: HashMap<u64, u64> = HashMap::new();
    let mut stop = false;
    // MODEL_PROGRESS=1: a line per level, to size new bounds.
    let progress = std::env::var_os("MODEL_PROGRESS").is_some();
    while !frontier.is_empty() && !stop {
        let mut next = Vec::new();
        for (fp, w) in frontier {
            report.reached = report.reached.max(w.t);
            if let Some(within) = run
                .agree_within_ms
                .filter(|_| report.failed(AGREEMENT).is_none())
            {
                report.liveness_checked += 1;
                match recovers(spec, &w, within * UNITS_PER_MS, &mut agreed_at) {
                    Ok(took) => report.slowest_agreement = report.slowest_agreement.max(took),
                    Err((violation, tail)) => {
                        if report.failed(violation.property).is_none() {
                            let (root, mut actions) = path(&seen, fp);
                            actions.extend(tail);
                            report.found.push(Found {
                                property: violation.property,
                                detail: violation.detail,
                                root,
                                actions,
                            });
                        }
                        if run.stop_at_first {
                            stop = true;
                            break;
                        }
                    }
                }
            }
            for a in w.actions(spec, run.horizon) {
                report.transitions += 1;
                let mut w2 = w.clone();
                let result = w2.apply(spec, a);
                let fp2 = w2.fingerprint();
                if seen.contains_key(&fp2) {
                    continue;
                }
                seen.insert(fp2, Origin::From(fp, a));
                if seen.len() >= run.max_states {
                    report.complete = false;
                    stop = true;
                }
                match result {
                    Ok(()) => next.push((fp2, w2)),
                    Err(v) => {
                        if report.failed(v.property).is_none() {
                            let (root, actions) = path(&seen, fp2);
                            report.found.push(Found {
                                property: v.property,
                                detail: v.detail,
                                root,
                                actions,
                            });
                        }
                        if run.stop_at_first {
                            stop = true;
                        }
                    }
                }
                if stop {
                    break;
                }
            }
            if stop {
                break;
            }
        }
        if !next.is_empty() {
            report.depth += 1;
        }
        if progress {
            eprintln!(
                "  {}: depth {}, {} states, frontier {}, {:.0?}",
                run.name,
                report.depth,
                seen.len(),
                next.len(),
                start.elapsed()
            );
        }
        frontier = next;
    }
    report.states = seen.len();
    report.elapsed = start.elapsed();
    report
}

/// The moves from a root to the state `fp`.
fn path(seen: &HashMap<u64, Origin>, mut fp: u64) -> (usize, Vec<Action>) {
    let mut actions = Vec::new();
    loop {
        match seen[&fp] {
            Origin::Root(k) => {
                actions.reverse();
                return (k, actions);
            }
            Origin::From(parent, a) => {
                actions.push(a);
                fp = parent;
            }
        }
    }
}

/// Runs `w` on fairly with no more faults (the partition healed, every node restarted) until
/// the cluster agrees; returns how long that took. On failure: what failed, and the moves
/// from `w` that show it.
fn recovers(
    spec: &Spec,
    w: &World,
    within: u64,
    agreed_at: &mut HashMap<u64, u64>,
) -> Result<u64, (Violation, Vec<Action>)> {
    let mut c = w.clone();
    let mut moves = Vec::new();
    let limit = w.t + within;
    let mut on_the_way = Vec::new();
    let fail = |detail: String, moves: Vec<Action>| {
        Err((
            Violation {
                property: AGREEMENT,
                detail,
            },
            moves,
        ))
    };
    for a in c.recovery_moves() {
        c.apply(spec, a).map_err(|v| (v, moves.clone()))?;
        moves.push(a);
    }
    let when = loop {
        if c.agreed(spec) {
            break c.t;
        }
        let fp = c.fingerprint();
        if let Some(&t) = agreed_at.get(&fp) {
            break t;
        }
        on_the_way.push(fp);
        let Some(a) = c.fair_action(spec, limit) else {
            return fail(
                format!(
                    "no agreement within {} of fault-free running (from {}): {}",
                    time::ms(within),
                    time::ms(w.t),
                    c.summary(spec).join("; ")
                ),
                moves,
            );
        };
        moves.push(a);
        c.apply(spec, a).map_err(|v| (v, moves.clone()))?;
    };
    for fp in on_the_way {
        agreed_at.insert(fp, when);
    }
    let took = when.saturating_sub(w.t);
    if took > within {
        return fail(
            format!(
                "agreement only after {} of fault-free running (from {})",
                time::ms(took),
                time::ms(w.t)
            ),
            moves,
        );
    }
    Ok(took)
}

/// Replays `actions` from `root`, returning each move's label and the state after it, and
/// the property that failed, if one did.
pub fn replay(
    spec: &Spec,
    root: &World,
    actions: &[Action],
) -> (Vec<(String, Vec<String>)>, Option<Violation>) {
    let mut w = root.clone();
    let mut steps = Vec::new();
    for &a in actions {
        let label = w.label(spec, a);
        let result = w.apply(spec, a);
        steps.push((label, w.summary(spec)));
        if let Err(v) = result {
            return (steps, Some(v));
        }
    }
    (steps, None)
}

/// A trace as text: the labels of its moves, one a line, each followed by the nodes' state.
pub fn render(spec: &Spec, root: &World, actions: &[Action]) -> String {
    let (steps, violation) = replay(spec, root, actions);
    let mut out = String::new();
    out.push_str(&format!("start: {}\n", root.summary(spec).join("; ")));
    let last = steps.len().saturating_sub(1);
    for (n, (label, summary)) in steps.iter().enumerate() {
        out.push_str(&format!("{:3}. {label}\n", n + 1));
        let changed = n == 0 || steps[n - 1].1 != *summary;
        if n == last || (changed && std::env::var_os("MODEL_COMPACT").is_none()) {
            for line in summary {
                out.push_str(&format!("       {line}\n"));
            }
        }
    }
    if let Some(v) = violation {
        out.push_str(&format!("=> {} fails: {}\n", v.property, v.detail));
    }
    out
}

/// The labels of a trace, for a replay test.
pub fn labels(spec: &Spec, root: &World, actions: &[Action]) -> Vec<String> {
    replay(spec, root, actions)
        .0
        .into_iter()
        .map(|(label, _)| label)
        .collect()
}

/// Replays a trace given by its labels against the real core, move by move: each label must
/// name a move possible at that point (or one that ends the faults, as the liveness runs
/// make). Returns the state it leads to, or the property that failed on the way.
pub fn replay_labels(spec: &Spec, root: &World, labels: &[&str]) -> Result<World, Violation> {
    let mut w = root.clone();
    for (n, want) in labels.iter().enumerate() {
        let mut moves = w.actions(spec, u64::MAX);
        moves.extend(w.recovery_moves());
        let Some(a) = moves.iter().copied().find(|&a| w.label(spec, a) == *want) else {
            let possible: Vec<String> = moves.iter().map(|&a| w.label(spec, a)).collect();
            panic!(
                "step {}: no move {want:?}; possible:\n  {}\nstate:\n  {}",
                n + 1,
                possible.join("\n  "),
                w.summary(spec).join("\n  ")
            );
        };
        w.apply(spec, a)?;
    }
    Ok(w)
}

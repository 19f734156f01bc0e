#[path = "support/model/mod.rs"]
mod model;
use model::explore::{explore, render, Run};
use model::props::Props;
use model::time::{Rate, UNITS_PER_MS};
use model::world::{Faults, World};
use model::*;
fn env(k: &str, d: u64) -> u64 { std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d) }
#[test]
fn smoke() {
    let quorum = env("Q", 1) == 1;
    let n = env("N", 3) as usize;
    let ids: Vec<u64> = (1..=n as u64).collect();
    let witness = if env("W", 0) == 1 { Some(n - 1) } else { None };
    let spec = if quorum { let mut p = Props::all(); p.bound_majority = env("AP",1)==1; quorum_spec(&ids, witness, p) } else {
        let mut p = Props::all(); p.one_leader_at_a_time = env("A", 0) == 1; p.one_coordinator_per_term = env("B",0)==1; p.granted_terms_increase = env("B",0)==1;
        p.bound_majority = false;
        plain_spec(&ids, p) };
    let faults = Faults { drops: env("D",0) as u8, duplicates: env("U",0) as u8, delays: env("L",0) as u8, crashes: env("C",0) as u8, partitions: env("P",0) as u8 };
    let rates: Vec<Vec<Rate>> = if env("ALLRATES",0)==1 { extreme_rates(n) } else { let mut r = vec![Rate::Fast; n]; r[n-1] = Rate::Slow; vec![r] };
    let roots: Vec<World> = rates.iter().map(|r| if env("SETTLED",1)==1 { settled(&spec, r, faults) } else { World::fresh(&spec, r, faults) }).collect();
    let t0 = roots.iter().map(|w| w.t).max().unwrap();
    println!("root at {}", model::time::ms(t0));
    let run = Run { name: "smoke", spec: &spec, roots, horizon: t0 + env("H", 150) * UNITS_PER_MS, max_states: env("MAX", 3_000_000) as usize,
        agree_within_ms: if env("LIVE",0) > 0 { Some(env("LIVE",0)) } else { None }, stop_at_first: env("FIRST",0)==1 };
    let r = explore(&run);
    println!("{}", r.line("smoke"));
    for f in &r.found {
        println!("{} {}\n{}", f.property, f.detail, render(&spec, &run.roots[f.root], &f.actions));
        if std::env::var_os("LABELS").is_some() { for l in model::explore::labels(&spec, &run.roots[f.root], &f.actions) { println!("    {l:?},"); } }
    }
}

//! The source tree keeps its shape: no file imports another that (directly or not) imports it
//! back, and the layers only point down (`cli` → `runtime` → `http`/`registry` → `core`).
//! Read from the files themselves, so a new import that breaks either fails here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/`, as its module path (`core::election`, `runtime::node`, ...).
fn modules(root: &Path) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                let rel = p.strip_prefix(root).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|l| l == "mod") {
                    parts.pop();
                }
                let name = parts.join("::");
                if !name.is_empty() && name != "lib" && name != "main" {
                    out.insert(name, p);
                }
            }
        }
    }
    out
}

/// The modules a file's `use` lines name, resolved against the known modules (the longest
/// known prefix of each path), with `crate::`, `self::` and `super::` made absolute. In the
/// module `core::election` (core/election.rs) `super::` is `core`, as it is in `core::lock`:
/// a file's own module path is the base, whatever the file is called.
fn imports(module: &str, text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut code = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("//") {
            continue;
        }
        code.push_str(t);
        code.push('\n');
    }
    // Only top-level `use` items and paths: test modules may use anything.
    let code = code.split("#[cfg(test)]").next().unwrap_or("");
    for stmt in code.split(';') {
        let stmt = stmt.trim();
        let Some(path) = ["use ", "pub use ", "pub(crate) use ", "pub(super) use "]
            .iter()
            .find_map(|p| stmt.strip_prefix(p))
        else {
            continue;
        };
        let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
        let absolute = if let Some(rest) = path.strip_prefix("crate::") {
            rest.to_string()
        } else if let Some(rest) = path.strip_prefix("self::") {
            format!("{module}::{rest}")
        } else if path.starts_with("super::") {
            let mut base: Vec<&str> = module.split("::").collect();
            let mut rest = path.as_str();
            while let Some(r) = rest.strip_prefix("super::") {
                base.pop();
                rest = r;
            }
            if base.is_empty() {
                rest.to_string()
            } else {
                format!("{}::{rest}", base.join("::"))
            }
        } else {
            continue;
        };
        // `a::b::{c, d::e}` names a::b::c and a::b::d::e.
        for full in expand(&absolute) {
            let parts: Vec<&str> = full.split("::").collect();
            if let Some(m) = (1..=parts.len())
                .rev()
                .map(|n| parts[..n].join("::"))
                .find(|p| known.contains_key(p))
            {
                if m != module {
                    out.insert(m);
                }
            }
        }
    }
    out
}

/// Expands one level of braces, recursively.
fn expand(path: &str) -> Vec<String> {
    let Some(open) = path.find('{') else {
        return vec![path.to_string()];
    };
    let prefix = &path[..open];
    let inner = &path[open + 1..path.rfind('}').unwrap_or(path.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| {
            let p = if p == "self" {
                String::new()
            } else {
                p.to_string()
            };
            expand(&format!("{prefix}{p}"))
                .into_iter()
                .map(|s| s.trim_end_matches("::").to_string())
        })
        .collect()
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let known = modules(&root);
    known
        .iter()
        .map(|(m, p)| {
            let text = std::fs::read_to_string(p).unwrap();
            (m.clone(), imports(m, &text, &known))
        })
        .collect()
}

/// A circle of imports among `g`'s modules, of any length, if there is one.
fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // Depth-first search for a cycle.
    fn visit(
        m: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == m) {
            let mut cycle = path[i..].to_vec();
            cycle.push(m.to_string());
            return Some(cycle);
        }
        if done.contains(m) {
            return None;
        }
        path.push(m.to_string());
        for next in g.get(m).into_iter().flatten() {
            if let Some(c) = visit(next, g, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(m.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|m| visit(m, g, &mut Vec::new(), &mut done))
}

#[test]
fn no_file_imports_another_that_imports_it_back() {
    let g = graph();
    assert!(g.len() > 20, "found only {} modules: {g:?}", g.len());
    // The resolver sees the imports inside core/, which an earlier one missed (it took
    // `super::` one level too high in every file but mod.rs).
    assert!(
        g["runtime::node"].contains("core::election")
            && g["core::control"].contains("core::election"),
        "{g:?}"
    );
    if let Some(cycle) = find_cycle(&g) {
        panic!("import loop: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_resolver_and_the_circle_search_catch_a_planted_circle() {
    let known: BTreeMap<String, PathBuf> = ["core", "core::a", "core::b", "core::c", "cli"]
        .iter()
        .map(|m| (m.to_string(), PathBuf::from(format!("{m}.rs"))))
        .collect();
    let files = [
        ("core::a", "use super::b::B;\n"),
        ("core::b", "use crate::core::{c::C, a};\n"),
        (
            "core::c",
            "pub(crate) use self::inner::X;\nuse super::super::cli::Run;\n",
        ),
        ("core", "pub use self::a::A;\n"),
        ("cli", "use std::fmt;\n"),
    ];
    let g: BTreeMap<String, BTreeSet<String>> = files
        .iter()
        .map(|(m, text)| (m.to_string(), imports(m, text, &known)))
        .collect();
    let set = |ms: &[&str]| ms.iter().map(|m| m.to_string()).collect::<BTreeSet<_>>();
    assert_eq!(g["core::a"], set(&["core::b"]));
    assert_eq!(g["core::b"], set(&["core::a", "core::c"]));
    assert_eq!(g["core::c"], set(&["cli"]));
    assert_eq!(g["core"], set(&["core::a"]));
    let cycle = find_cycle(&g).expect("a -> b -> a");
    assert!(cycle.len() >= 3, "{cycle:?}");
    // Without b's import of a, the three-file circle b -> c -> cli -> ... is gone too.
    let mut g = g;
    g.get_mut("core::b").unwrap().remove("core::a");
    g.get_mut("cli").unwrap().insert("core::b".into());
    let cycle = find_cycle(&g).expect("b -> c -> cli -> b");
    assert_eq!(cycle.len(), 4, "{cycle:?}");
}

#[test]
fn layers_only_point_down() {
    // A module may import from its own layer or the ones after it in this list.
    let order = [
        "cli",
        "runtime",
        "supervisor",
        "vip",
        "registry",
        "http",
        "tls",
        "core",
        "log_limit",
        "sync",
        "monotonic",
    ];
    let rank = |m: &str| {
        let top = m.split("::").next().unwrap_or(m);
        order.iter().position(|l| *l == top)
    };
    let g = graph();
    let mut wrong = Vec::new();
    for (m, deps) in &g {
        let Some(r) = rank(m) else {
            wrong.push(format!("{m}: not in a known layer"));
            continue;
        };
        for d in deps {
            match rank(d) {
                Some(rd) if rd >= r => {}
                _ => wrong.push(format!("{m} imports {d}")),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_core_does_no_io() {
    // The protocol core names no socket, file, clock, thread or process.
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let banned = [
        "TcpStream",
        "TcpListener",
        "UdpSocket",
        "std::fs",
        "std::thread",
        "std::process",
        "std::env",
        "Instant::now",
        "SystemTime",
        "ureq",
        "tiny_http",
        "Mutex",
    ];
    for entry in std::fs::read_dir(&root).unwrap().flatten() {
        // core/tests/ holds the sub-machines' unit tests, not the core.
        if entry.path().is_dir() {
            continue;
        }
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for b in banned {
            assert!(!code.contains(b), "{} uses {b}", entry.path().display());
        }
    }
}

#[test]
fn the_readme_layout_names_every_file() {
    // A file, or its folder, in the Layout table of src/README.md: a newcomer finds every concern there.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(dir.join("src/README.md")).unwrap();
    let layout = readme
        .split("\n## Layout\n")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("a Layout section");
    let known = modules(&dir.join("src"));
    let missing: Vec<String> = known
        .values()
        .filter(|p| p.file_name().is_some_and(|f| f != "mod.rs"))
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .filter(|p| {
            let folder = format!("{}/", Path::new(p).parent().unwrap().display());
            !layout.contains(&format!("`{p}`")) && !layout.contains(&format!("`{folder}`"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "not in the Layout of src/README.md: {missing:?}"
    );
}

#[test]
fn the_cores_sub_machines_never_reach_the_election() {
    // `Election` composes its sub-machines; none of them may lean on it, directly or through
    // another file, or the machines are one object again.
    let machines = [
        "core::terms",
        "core::quorum_lease",
        "core::standing",
        "core::round_state",
        "core::announcements",
        "core::lock",
    ];
    let g = graph();
    for m in machines {
        let mut seen = BTreeSet::new();
        let mut todo = vec![m.to_string()];
        while let Some(n) = todo.pop() {
            for d in g.get(&n).into_iter().flatten() {
                if seen.insert(d.clone()) {
                    todo.push(d.clone());
                }
            }
        }
        assert!(g.contains_key(m), "no module {m}");
        assert!(
            !seen.contains("core::election"),
            "{m} reaches core::election through {seen:?}"
        );
    }
}

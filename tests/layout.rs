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
/// known prefix of each path), with `super::` made absolute.
fn imports(module: &str, text: &str, known: &BTreeMap<String, PathBuf>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let is_dir_module = known
        .get(module)
        .is_some_and(|p| p.file_name().is_some_and(|f| f == "mod.rs"));
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
        let Some(path) = stmt
            .strip_prefix("use ")
            .or_else(|| stmt.strip_prefix("pub use "))
        else {
            continue;
        };
        let path: String = path.chars().filter(|c| !c.is_whitespace()).collect();
        let absolute = if let Some(rest) = path.strip_prefix("crate::") {
            rest.to_string()
        } else if path.starts_with("super::") {
            let mut base: Vec<&str> = module.split("::").collect();
            if !is_dir_module {
                base.pop();
            }
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

#[test]
fn no_file_imports_another_that_imports_it_back() {
    let g = graph();
    assert!(g.len() > 20, "found only {} modules: {g:?}", g.len());
    // Depth-first search for a cycle, printing it when found.
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
    for m in g.keys() {
        if let Some(cycle) = visit(m, &g, &mut Vec::new(), &mut done) {
            panic!("import loop: {}", cycle.join(" -> "));
        }
    }
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
        "core",
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
        let text = std::fs::read_to_string(entry.path()).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        for b in banned {
            assert!(!code.contains(b), "{} uses {b}", entry.path().display());
        }
    }
}

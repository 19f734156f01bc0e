//! The documentation a newcomer walks: README.md is the short door (at most 400 lines, with a
//! table of contents), the depth lives in Markdown files beside the code, and every link
//! between them lands: a relative link names a file that exists and, with `#anchor`, a heading
//! of that file as GitHub spells its anchors. The Debian package ships every one of them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every `*.md` under `src/` and `tests/`, relative to the repository root.
fn documents() -> Vec<PathBuf> {
    let mut out = vec![PathBuf::from("README.md")];
    let mut stack = vec![root().join("src"), root().join("tests")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "md") {
                out.push(p.strip_prefix(root()).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}

/// The lines outside fenced code blocks: headings and links inside them are examples.
fn prose(text: &str) -> Vec<&str> {
    let mut fenced = false;
    text.lines()
        .filter(|l| {
            if l.starts_with("```") {
                fenced = !fenced;
                return false;
            }
            !fenced
        })
        .collect()
}

/// A heading's anchor as GitHub makes it: links reduced to their text, lower case, every
/// character but letters, digits, spaces, `-` and `_` dropped, spaces turned into `-`.
fn slug(heading: &str) -> String {
    let mut text = String::new();
    let mut rest = heading;
    // `[text](target)` counts as its text.
    while let Some(open) = rest.find('[') {
        let Some(mid) = rest[open..].find("](").map(|i| open + i) else {
            break;
        };
        let Some(close) = rest[mid..].find(')').map(|i| mid + i) else {
            break;
        };
        text.push_str(&rest[..open]);
        text.push_str(&rest[open + 1..mid]);
        rest = &rest[close + 1..];
    }
    text.push_str(rest);
    text.trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a document's headings make; a repeated heading gets `-1`, `-2`, ... as on GitHub.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for line in prose(text) {
        let hashes = line.chars().take_while(|&c| c == '#').count();
        if !(1..=6).contains(&hashes) || !line[hashes..].starts_with(' ') {
            continue;
        }
        let s = slug(line[hashes..].trim().trim_end_matches('#'));
        let n = seen.entry(s.clone()).or_default();
        out.insert(if *n == 0 {
            s.clone()
        } else {
            format!("{s}-{n}")
        });
        *n += 1;
    }
    out
}

/// The targets of a document's Markdown links (`](target)`), web links left out.
fn links(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for line in prose(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let end = rest.find([')', ' ']).unwrap_or(rest.len());
            let target = &rest[..end];
            if !target.contains("://") && !target.starts_with("mailto:") {
                out.push(target.to_string());
            }
            rest = &rest[end..];
        }
    }
    out
}

/// The links of `doc` (its text `text`) that land nowhere, each with the reason. `read` gives
/// another document's text by its path from the repository root, `None` when it is missing.
fn broken(doc: &Path, text: &str, read: &dyn Fn(&Path) -> Option<String>) -> Vec<String> {
    let mut out = Vec::new();
    for link in links(text) {
        let (file, anchor) = link.split_once('#').unwrap_or((&link, ""));
        let target = if file.is_empty() {
            doc.to_path_buf()
        } else {
            normalise(&doc.parent().unwrap_or(Path::new("")).join(file))
        };
        let Some(body) = (if file.is_empty() {
            Some(text.to_string())
        } else {
            read(&target)
        }) else {
            out.push(format!(
                "{}: ]({link}): no file {}",
                doc.display(),
                target.display()
            ));
            continue;
        };
        let is_markdown = target.extension().is_some_and(|e| e == "md");
        if !anchor.is_empty() && (!is_markdown || !anchors(&body).contains(anchor)) {
            out.push(format!(
                "{}: ]({link}): {} has no heading #{anchor}",
                doc.display(),
                target.display()
            ));
        }
    }
    out
}

/// `a/b/../c` as `a/c`, so a link's target can be compared and read.
fn normalise(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn read_repo(p: &Path) -> Option<String> {
    let full = root().join(p);
    if full.is_dir() {
        return Some(String::new());
    }
    std::fs::read_to_string(full).ok()
}

#[test]
fn every_link_between_the_documents_lands_on_a_heading() {
    let docs = documents();
    assert!(
        docs.len() > 5,
        "found only {docs:?}: the documents beside the code are gone"
    );
    let mut bad = Vec::new();
    for doc in &docs {
        let text = read_repo(doc).unwrap();
        bad.extend(broken(doc, &text, &read_repo));
    }
    assert!(
        bad.is_empty(),
        "broken links:\n{}\n(checked {} documents: {docs:?})",
        bad.join("\n"),
        docs.len()
    );
}

#[test]
fn the_checker_finds_a_planted_broken_link() {
    // The checker itself, on documents in memory: a good link passes, each planted fault fails.
    let files = |p: &Path| match p.to_str() {
        Some("src/a.md") => Some("# A\n\n## Step two\n\n```\n## Not a heading\n```\n".to_string()),
        Some("README.md") => Some(String::new()),
        _ => None,
    };
    let doc = Path::new("src/b.md");
    let good = "# B\n\n## Guarantees, in short\n\nSee [two](a.md#step-two), [up](../README.md), \
                [here](#guarantees-in-short), [web](https://example.org/#x).\n";
    assert_eq!(broken(doc, good, &files), Vec::<String>::new());
    for planted in [
        "[gone](a.md#step-three)",
        "[code](a.md#not-a-heading)",
        "[nofile](c.md#a)",
        "[self](#guarantees)",
        "[nodoc](../CHANGES.md)",
    ] {
        let text = format!("{good}\n{planted}\n");
        let found = broken(doc, &text, &files);
        assert_eq!(found.len(), 1, "{planted}: {found:?}");
    }
}

#[test]
fn the_readme_is_a_short_door_with_contents() {
    let text = read_repo(Path::new("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines <= 400,
        "README.md has {lines} lines; the depth belongs beside the code"
    );
    assert!(
        anchors(&text).contains("contents"),
        "README.md has no Contents section"
    );
    // Every document beside the code is one link away from the door.
    let linked: BTreeSet<PathBuf> = links(&text)
        .iter()
        .map(|l| PathBuf::from(l.split('#').next().unwrap()))
        .collect();
    for doc in documents().iter().filter(|d| d.as_os_str() != "README.md") {
        assert!(
            linked.contains(doc),
            "README.md does not link to {}",
            doc.display()
        );
    }
}

#[test]
fn the_package_ships_every_document() {
    // /usr/share/doc/bully/ holds each document at its path here, so the README's links work.
    let cargo = read_repo(Path::new("Cargo.toml")).unwrap();
    for doc in documents() {
        let d = doc.display();
        let asset = format!("[\"{d}\", \"usr/share/doc/bully/{d}\", \"644\"]");
        assert!(
            cargo.contains(&asset),
            "Cargo.toml does not ship {d}: no {asset}"
        );
    }
}

//! House rules the tree keeps, checked on the tree itself:
//!
//! - a source file in `src/`, `actors/src/`, `simulation/src/` or
//!   `support/src/` longer than 450 lines says why it is kept whole (a
//!   module doc line starting `//! Kept whole:` near its top);
//! - no module cycle in `src/` or `actors/src/`: an edge A -> B when a file
//!   of the top-level module A names `crate::B` or `super::B` (resolved to
//!   the top-level module B) in a `use` or a path;
//! - no comment or document cites a design document that is not in the
//!   repository (its name followed by a section sign), an issue by its
//!   number, or links a relative markdown target that does not exist.
//!
//! Each check is a function of a directory, run on the tree and, in the
//! `checks_can_fail` tests, on a small fake tree that breaks it.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Longer than this, a file says why it is kept whole.
const LONGEST: usize = 450;
/// "Near its top": the marker is looked for in this many first lines.
const MARKER_WITHIN: usize = 40;
const MARKER: &str = "//! Kept whole:";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file under `dir` (recursively) whose name ends with one of `exts`,
/// sorted; build output, dependencies, the vendored advisories (others'
/// text) and VCS data are skipped.
fn files(dir: &Path, exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().to_string();
            if p.is_dir() {
                if !matches!(
                    name.as_str(),
                    "target" | "node_modules" | ".git" | ".next" | "dist" | "advisory-db"
                ) {
                    stack.push(p);
                }
            } else if exts.iter().any(|x| name.ends_with(&format!(".{x}"))) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn rel(root: &Path, p: &Path) -> String {
    p.strip_prefix(root)
        .unwrap_or(p)
        .to_string_lossy()
        .replace('\\', "/")
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

// ---- long files ----

/// Files over [`LONGEST`] lines under `root`'s `dirs` without the marker.
fn long_files(root: &Path, dirs: &[&str]) -> Vec<String> {
    let mut found = Vec::new();
    for d in dirs {
        for f in files(&root.join(d), &["rs"]) {
            let text = read(&f);
            let lines = text.lines().count();
            let marked = text
                .lines()
                .take(MARKER_WITHIN)
                .any(|l| l.trim_start().starts_with(MARKER));
            if lines > LONGEST && !marked {
                found.push(format!("{} ({lines} lines)", rel(root, &f)));
            }
        }
    }
    found
}

// ---- module cycles ----

/// The code of a Rust file without its comments and string literals (kept
/// as blanks, so nothing in them reads as a path).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                i += 1;
            }
            i += 2;
            out.push(' ');
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal such as '{' (lifetimes are left alone).
            i += 3;
            out.push_str("' '");
        } else {
            let ch = src[i..].chars().next().unwrap_or(' ');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The first identifier of `s` (after whitespace).
fn ident(s: &str) -> &str {
    let s = s.trim_start();
    let end = s.find(|c: char| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}

/// The first segment of each path in a `{…}` group that starts `s`
/// (`{a, b::c, self}` gives a, b, self).
fn group_heads(s: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in s.char_indices() {
        match c {
            '{' => {
                depth += 1;
                if depth == 1 {
                    start = true;
                    continue;
                }
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                start = true;
                continue;
            }
            _ => {}
        }
        if start && depth == 1 && !c.is_whitespace() {
            start = false;
            heads.push(ident(&s[i..]).to_string());
        }
    }
    heads
}

/// The module path a file under a crate's source directory defines:
/// `a.rs` and `a/mod.rs` are `[a]`, `a/b.rs` is `[a, b]`, the crate roots
/// are `[]`.
fn module_path(src_dir: &Path, f: &Path) -> Vec<String> {
    let r = rel(src_dir, f);
    let r = r.strip_suffix(".rs").unwrap_or(&r);
    let mut parts: Vec<String> = r.split('/').map(String::from).collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main") {
        parts.clear();
    }
    parts
}

/// The top-level modules that the code of a file at `path` names through
/// `crate::` or `super::`.
fn named_top_modules(code: &str, path: &[String]) -> BTreeSet<String> {
    let mut named = BTreeSet::new();
    for (i, _) in code.match_indices("::") {
        // The keyword that ends right before this `::`.
        let before = &code[..i];
        let kw_start = before
            .char_indices()
            .rev()
            .find(|&(_, c)| !is_ident(c))
            .map_or(0, |(p, c)| p + c.len_utf8());
        let kw = &before[kw_start..];
        if kw != "crate" && kw != "super" {
            continue;
        }
        let prev = before[..kw_start].chars().next_back();
        if prev == Some('$') || prev.is_some_and(is_ident) {
            continue;
        }
        // Only the first keyword of a chain (`super::super::x`) is read.
        if before[..kw_start].ends_with("::") {
            continue;
        }
        let mut rest = &code[i + 2..];
        let mut base: Vec<String> = if kw == "crate" {
            Vec::new()
        } else {
            path[..path.len().saturating_sub(1)].to_vec()
        };
        while let Some(r) = rest.trim_start().strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        let heads = if rest.trim_start().starts_with('{') {
            group_heads(rest.trim_start())
        } else {
            vec![ident(rest).to_string()]
        };
        for h in heads {
            if h.is_empty() || h == "self" {
                if let Some(top) = base.first() {
                    named.insert(top.clone());
                }
                continue;
            }
            match base.first() {
                Some(top) => named.insert(top.clone()),
                None => named.insert(h),
            };
        }
    }
    named
}

/// The module graph of the crate whose sources are in `src_dir`: for each
/// top-level module, the others it names, with a file that names each.
fn module_graph(src_dir: &Path) -> BTreeMap<String, BTreeMap<String, String>> {
    let all = files(src_dir, &["rs"]);
    let tops: BTreeSet<String> = all
        .iter()
        .filter_map(|f| module_path(src_dir, f).first().cloned())
        .collect();
    let mut graph: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in &all {
        let path = module_path(src_dir, f);
        let Some(from) = path.first() else {
            continue;
        };
        let code = code_only(&read(f));
        for to in named_top_modules(&code, &path) {
            if &to != from && tops.contains(&to) {
                graph
                    .entry(from.clone())
                    .or_default()
                    .entry(to)
                    .or_insert_with(|| rel(src_dir, f));
            }
        }
    }
    graph
}

/// Every cycle of the module graph of `src_dir`, once each (from its
/// smallest module), with the file behind each edge.
fn module_cycles(src_dir: &Path) -> Vec<String> {
    let graph = module_graph(src_dir);
    let mut cycles = BTreeSet::new();
    for start in graph.keys() {
        // Depth-first from `start`, through modules after it only, back to
        // it: each elementary cycle is found from its smallest module.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, trail)) = stack.pop() {
            for next in graph.get(&at).map(|m| m.keys()).into_iter().flatten() {
                if next == start {
                    let mut text = String::new();
                    for w in trail.windows(2) {
                        text.push_str(&format!("{} -> ({}) ", w[0], graph[&w[0]][&w[1]]));
                    }
                    text.push_str(&format!("{at} -> ({}) {start}", graph[&at][start]));
                    cycles.insert(text);
                } else if next > start && !trail.contains(next) && cycles.len() < 50 {
                    let mut t = trail.clone();
                    t.push(next.clone());
                    stack.push((next.clone(), t));
                }
            }
        }
    }
    cycles.into_iter().collect()
}

// ---- references that lead nowhere ----

/// The comments of a source file (Rust or TypeScript), one per line, with
/// their line numbers.
fn comments(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_block = false;
    for (n, line) in src.lines().enumerate() {
        let t = line.trim_start();
        if in_block {
            out.push((n + 1, line.to_string()));
            if t.contains("*/") {
                in_block = false;
            }
        } else if t.starts_with("/*") {
            out.push((n + 1, line.to_string()));
            in_block = !t.contains("*/");
        } else if let Some(i) = comment_start(line) {
            out.push((n + 1, line[i..].to_string()));
        }
    }
    out
}

/// Where a `//` comment starts on a line, outside string literals.
fn comment_start(line: &str) -> Option<usize> {
    let b = line.as_bytes();
    let mut in_str = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' if in_str => i += 1,
            b'"' => in_str = !in_str,
            b'/' if !in_str && b.get(i + 1) == Some(&b'/') => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

/// An issue cited by number: the word (or its plural, any case), one
/// space, then a digit or `#` and a digit.
fn cites_issue(text: &str) -> bool {
    let lower = text.to_lowercase();
    lower.match_indices("issue").any(|(i, _)| {
        let before = lower[..i].chars().next_back();
        if before.is_some_and(is_ident) {
            return false;
        }
        let rest = lower[i + "issue".len()..]
            .strip_prefix('s')
            .unwrap_or(&lower[i + 5..]);
        let rest = rest.strip_prefix(' ').unwrap_or("x");
        let rest = rest.strip_prefix('#').unwrap_or(rest);
        rest.starts_with(|c: char| c.is_ascii_digit())
    })
}

/// The relative link targets of markdown text: `[text](target)` and
/// `[label]: target`, without their `#anchor`.
fn relative_links(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for (i, _) in text.match_indices("](") {
        let rest = &text[i + 2..];
        if let Some(end) = rest.find(')') {
            targets.push(rest[..end].to_string());
        }
    }
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(close) = t.strip_prefix('[').and_then(|r| r.find("]: ")) {
            targets.push(t[close + 4..].trim().to_string());
        }
    }
    targets
        .into_iter()
        .map(|t| {
            let t = t.split_whitespace().next().unwrap_or("").to_string();
            t.split('#').next().unwrap_or("").to_string()
        })
        .filter(|t| {
            !t.is_empty()
                && !t.contains("://")
                && !t.contains("::")
                && !t.starts_with("mailto:")
                && !t.starts_with('<')
                && (t.contains('/') || t.contains('.'))
        })
        .collect()
}

fn dead_references_in(root: &Path, file: &Path, numbered: &[(usize, String)]) -> Vec<String> {
    let mut found = Vec::new();
    let name = rel(root, file);
    let markdown = name.ends_with(".md");
    for (n, text) in numbered {
        if text.contains("DESIGN §") {
            found.push(format!("{name}:{n}: cites DESIGN §: {}", text.trim()));
        }
        if cites_issue(text) {
            found.push(format!("{name}:{n}: cites an issue: {}", text.trim()));
        }
        for target in relative_links(text) {
            // A Rust or TypeScript comment links markdown files only; a
            // markdown document links anything in the repository.
            if !markdown && !target.ends_with(".md") {
                continue;
            }
            let dir = file.parent().unwrap_or(root);
            let exists = if let Some(abs) = target.strip_prefix('/') {
                root.join(abs).exists()
            } else {
                dir.join(&target).exists() || (!markdown && root.join(&target).exists())
            };
            if !exists {
                found.push(format!("{name}:{n}: links {target}, which does not exist"));
            }
        }
    }
    found
}

/// Comments (Rust, TypeScript) and documents (markdown) under `root` that
/// cite what is not there.
fn dead_references(root: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for f in files(root, &["rs", "ts", "tsx", "md"]) {
        let text = read(&f);
        let numbered: Vec<(usize, String)> = if f.extension().is_some_and(|e| e == "md") {
            text.lines()
                .enumerate()
                .map(|(n, l)| (n + 1, l.to_string()))
                .collect()
        } else {
            comments(&text)
        };
        found.extend(dead_references_in(root, &f, &numbered));
    }
    found
}

// ---- the checks, on the tree ----

#[test]
fn long_files_say_why_they_are_kept_whole() {
    let found = long_files(
        &root(),
        &["src", "actors/src", "simulation/src", "support/src"],
    );
    assert!(
        found.is_empty(),
        "over {LONGEST} lines without a `{MARKER}` line near the top:\n{}",
        found.join("\n")
    );
}

#[test]
fn no_module_cycles() {
    let mut found = Vec::new();
    for dir in ["src", "actors/src"] {
        for c in module_cycles(&root().join(dir)) {
            found.push(format!("{dir}: {c}"));
        }
    }
    assert!(
        found.is_empty(),
        "module cycles (each edge with a file that makes it):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_references_that_lead_nowhere() {
    let found = dead_references(&root());
    assert!(
        found.is_empty(),
        "references that lead nowhere:\n{}",
        found.join("\n")
    );
}

// ---- the checks can fail: a small fake tree that breaks each ----

fn fake_tree(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (path, text) in files {
        let p = dir.path().join(path);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("a directory in the fake tree");
        }
        fs::write(p, text).expect("a file in the fake tree");
    }
    dir
}

#[test]
fn checks_can_fail_on_a_long_file() {
    let long = "fn f() {}\n".repeat(LONGEST + 1);
    let kept = format!("//! A module.\n//!\n{MARKER} one state machine.\n{long}");
    let short = "fn f() {}\n".repeat(LONGEST);
    let tree = fake_tree(&[
        ("src/long.rs", long.as_str()),
        ("src/kept.rs", kept.as_str()),
        ("src/short.rs", short.as_str()),
    ]);
    assert_eq!(
        long_files(tree.path(), &["src"]),
        vec![format!("src/long.rs ({} lines)", LONGEST + 1)]
    );
}

#[test]
fn checks_can_fail_on_a_module_cycle() {
    let tree = fake_tree(&[
        (
            "src/lib.rs",
            "pub mod a;\npub mod b;\npub mod c;\npub mod d;\n",
        ),
        ("src/a.rs", "use crate::b::Thing;\n"),
        // `super::` from a nested file climbs to the crate root.
        ("src/b/mod.rs", "mod inner;\n"),
        ("src/b/inner.rs", "use super::super::{c::X, d};\n"),
        // A path in code, not in a `use`.
        ("src/c.rs", "fn f() { let _ = super::a::g(); }\n"),
        // Named only in comments and strings: no edge.
        ("src/d.rs", "// crate::a\nconst S: &str = \"crate::a\";\n"),
    ]);
    let src = tree.path().join("src");
    let cycles = module_cycles(&src);
    assert_eq!(
        cycles,
        vec!["a -> (a.rs) b -> (b/inner.rs) c -> (c.rs) a".to_string()],
        "graph: {:?}",
        module_graph(&src)
    );
    // Without the edge that closes it, no cycle.
    fs::write(src.join("c.rs"), "fn f() {}\n").expect("rewrite");
    assert!(module_cycles(&src).is_empty());
}

#[test]
fn checks_can_fail_on_references_that_lead_nowhere() {
    let tree = fake_tree(&[
        ("docs/there.md", "# There\n"),
        (
            "README.md",
            "See [there](docs/there.md#top) and [gone](docs/gone.md).\n\
             The issued token is fine; DESIGN §7 is not.\n",
        ),
        (
            "src/lib.rs",
            "//! Fixed in issue 12.\nconst S: &str = \"issue 3\"; // see docs/there.md\n",
        ),
        ("clients/ts/index.ts", "/**\n * Issues #4 and 5.\n */\n"),
    ]);
    let found = dead_references(tree.path());
    let expected = [
        "README.md:1: links docs/gone.md, which does not exist",
        "README.md:2: cites DESIGN §: The issued token is fine; DESIGN §7 is not.",
        "clients/ts/index.ts:2: cites an issue: * Issues #4 and 5.",
        "src/lib.rs:1: cites an issue: //! Fixed in issue 12.",
    ];
    assert_eq!(found, expected);
}

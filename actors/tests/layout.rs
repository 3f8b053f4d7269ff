//! The crate's shape, checked on its own sources: its modules form layers
//! with no cycle, no file grows long without saying why it is kept whole,
//! and the crate root still names what consumers use.
//!
//! A module A depends on a module B when A's file names `crate::B` or
//! `super::B` anywhere (a `use`, a path, a doc link), `crate::{B, ..}`
//! included. The files of a directory module (`memory/`) count as that
//! module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

// Everything the crate root offers, named once: a removed or renamed item
// stops this file from compiling.
#[allow(unused_imports)]
use sessiond_actors::{
    duration, memory, process_nonce, sync, Acks, BoxFuture, CacheConfig, Changes, Fetched,
    FlushReason, Holder, InvalidationSource, Lease, LeaseKeeper, LeaseStore, Link, LinkError,
    Lookup, MissReason, NoopObserver, Observer, PauseCheck, ResolveError, Router, Served, Status,
    StoreError, Unconfirmed, User, UserId, UserIdError, UserState, UserStore, ViewChange,
    MAX_USER_ID_LEN,
};

/// The most lines a file may have without a `//! Kept whole:` line.
const LONG: usize = 450;

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The top-level module a file of `src/` belongs to (`None`: the root).
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    match first {
        "lib.rs" => None,
        f => Some(f.trim_end_matches(".rs").to_string()),
    }
}

fn ident_at(text: &str) -> &str {
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The first path segment of each item of a `{a::X, b, c::{..}}` group
/// that `text` starts with.
fn group_heads(text: &str) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut start = true;
    for (i, c) in text.char_indices() {
        match c {
            '{' => {
                depth += 1;
                start = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => start = true,
            c if start && depth == 1 && !c.is_whitespace() => {
                heads.push(ident_at(&text[i..]));
                start = false;
            }
            _ => {}
        }
    }
    heads
}

/// The names `text` reaches through `prefix` (`crate::` or `super::`).
fn named_through<'a>(text: &'a str, prefix: &str) -> Vec<&'a str> {
    let mut names = Vec::new();
    for (at, _) in text.match_indices(prefix) {
        let rest = &text[at + prefix.len()..];
        if rest.starts_with('{') {
            names.extend(group_heads(rest));
        } else {
            names.push(ident_at(rest));
        }
    }
    names
}

/// Module → the modules its files name.
fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = crate_dir().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeSet<String> = files.iter().filter_map(|f| module_of(&src, f)).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(from) = module_of(&src, file) else {
            continue;
        };
        let text = read(file);
        let deps = graph.entry(from.clone()).or_default();
        // `super::` in a top-level module's file is the root (or, in its
        // own `mod tests`, the module itself); in a directory module's
        // file it is the directory module: neither is another module.
        let names = named_through(&text, "crate::")
            .into_iter()
            .chain(named_through(&text, "super::"));
        for name in names {
            if name != from && modules.contains(name) {
                deps.insert(name.to_string());
            }
        }
    }
    graph
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // 0: not seen, 1: on the current path, 2: done.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let from = path.iter().position(|m| m == next).unwrap_or(0);
                    let mut cycle = path[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node).copied().unwrap_or(0) == 0 {
            if let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new()) {
                return Some(cycle);
            }
        }
    }
    None
}

#[test]
fn the_modules_form_layers_with_no_cycle() {
    let graph = edges();
    // The reading of the sources sees the edges it must: a wrong reading
    // would find no cycle for want of edges.
    assert!(graph["router"].contains("registry"), "{graph:?}");
    assert!(graph["memory"].contains("router"), "{graph:?}");
    assert!(graph["near"].contains("router"), "{graph:?}");
    assert!(graph.len() >= 20, "{} modules found", graph.len());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_cycle_finder_finds_cycles_and_group_imports() {
    let text = "use crate::{a::X, b, c::{D, E}};\nuse super::f::G;\n[`crate::h`]";
    let mut crate_names = named_through(text, "crate::");
    crate_names.sort_unstable();
    assert_eq!(crate_names, ["a", "b", "c", "h"]);
    assert_eq!(named_through(text, "super::"), ["f"]);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", &["b"][..]),
        ("b", &["c"][..]),
        ("c", &["a"][..]),
        ("d", &[][..]),
    ]
    .into_iter()
    .map(|(m, deps)| (m.into(), deps.iter().map(|d| d.to_string()).collect()))
    .collect();
    let cycle = find_cycle(&graph).unwrap_or_default();
    assert_eq!(cycle, ["a", "b", "c", "a"]);
    let mut acyclic = graph;
    acyclic.insert("c".into(), BTreeSet::new());
    assert_eq!(find_cycle(&acyclic), None);
}

#[test]
fn long_files_say_why_they_are_kept_whole() {
    let dir = crate_dir();
    let mut files = Vec::new();
    for sub in ["src", "tests", "benches", "examples"] {
        rust_files(&dir.join(sub), &mut files);
    }
    assert!(files.len() > 20, "{} files found", files.len());
    let unexplained: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = read(f);
            let lines = text.lines().count();
            let explained = text.lines().any(|l| l.starts_with("//! Kept whole:"));
            (lines > LONG && !explained).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(
        unexplained.is_empty(),
        "over {LONG} lines without a `//! Kept whole:` line: {unexplained:?}"
    );
}

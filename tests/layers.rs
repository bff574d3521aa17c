//! The library's top-level modules form layers (`../shared/LAYOUT.md`, and
//! the module map in `src/lib.rs`): a module uses modules of its own layer
//! or of layers below it, never one above, and no two modules use each other
//! through any chain. This test reads `src/**/*.rs`, collects every
//! `crate::X` path (also inside `use crate::{X, …}` groups) and every
//! `super::` path that climbs out of its top-level module, and fails on
//!
//! * a cycle between top-level modules, naming it with the lines that make
//!   it;
//! * a module that uses a module of a higher layer;
//! * a library module missing from [`LAYERS`]: a new module must be placed
//!   in a layer when it is added.
//!
//! Comments and string literals are blanked before the paths are read, so a
//! path mentioned in a doc comment is not a dependency; test code inside a
//! module (`#[cfg(test)]`) is. The binary's own modules (declared in
//! `src/main.rs`) are above every layer and are not checked.
//!
//! Run: `cargo test --test layers` (no server needed).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, bottom first. A module may use the modules of its own layer
/// and of the layers before it. Names not (yet) in the crate are allowed:
/// they are where planned modules go.
const LAYERS: &[(&str, &[&str])] = &[
    // Bytes on disk and on the wire.
    (
        "format and client",
        &["binlog", "group", "position", "text", "trace", "wire"],
    ),
    // Throwaway servers for tests and benchmarks; may use the client.
    ("test gear", &["sandbox"]),
    // One server's parapply state; pure decisions.
    ("state", &["progress", "schedule", "replica", "metrics"]),
    // One pipeline stage each.
    ("stages", &["apply", "mirror", "inspect"]),
    // Procedures over several servers, built from the stages.
    (
        "operations",
        &["catchup", "promote", "bench", "corpus", "demo"],
    ),
    // The command line belongs to the binary (`src/cli/`, declared in
    // `src/main.rs`, is not checked); were it a library module again, no
    // library module could use it.
    ("binary", &["cli"]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// `mod NAME;` declarations of a crate root (attributes such as `#[cfg]`
/// before them do not matter).
fn declared_modules(root: &Path) -> BTreeSet<String> {
    let text = blank_comments_and_strings(&fs::read_to_string(root).unwrap());
    let mut out = BTreeSet::new();
    for line in text.lines() {
        let mut words = line.split_whitespace().peekable();
        if words.peek().is_some_and(|w| w.starts_with("pub")) {
            words.next();
        }
        if words.next() != Some("mod") {
            continue;
        }
        if let Some(name) = words.next().and_then(|w| w.strip_suffix(';')) {
            out.insert(name.to_owned());
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a source file: `src/apply/worker.rs` is
/// `["apply", "worker"]`, `src/apply/mod.rs` and `src/apply.rs` are
/// `["apply"]`.
fn module_path(file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.strip_suffix(".rs").unwrap();
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem.to_owned());
    }
    parts
}

/// `text` with comments, string and character literals replaced by
/// spaces (newlines kept, so line numbers stay).
fn blank_comments_and_strings(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |out: &mut String, s: &[char]| {
        for &ch in s {
            out.push(if ch == '\n' { '\n' } else { ' ' });
        }
    };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let rest = &c[i..];
        let prev_ident = i > 0 && ident(c[i - 1]);
        // Line comment (doc comments too).
        if rest.starts_with(&['/', '/']) {
            let end = rest.iter().position(|&ch| ch == '\n').unwrap_or(rest.len());
            blank(&mut out, &rest[..end]);
            i += end;
            continue;
        }
        // Block comment, nested.
        if rest.starts_with(&['/', '*']) {
            let (mut depth, mut j) = (0usize, 0usize);
            while j < rest.len() {
                if rest[j..].starts_with(&['/', '*']) {
                    depth += 1;
                    j += 2;
                } else if rest[j..].starts_with(&['*', '/']) {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, &rest[..j]);
            i += j;
            continue;
        }
        // Raw string: r"…", r#"…"#, br#"…"#.
        if !prev_ident && (rest[0] == 'r' || rest.starts_with(&['b', 'r'])) {
            let start = if rest[0] == 'b' { 2 } else { 1 };
            let hashes = rest[start..].iter().take_while(|&&ch| ch == '#').count();
            if rest.get(start + hashes) == Some(&'"') {
                let body = start + hashes + 1;
                let mut j = body;
                while j < rest.len() {
                    if rest[j] == '"'
                        && rest[j + 1..]
                            .iter()
                            .take(hashes)
                            .filter(|&&h| h == '#')
                            .count()
                            == hashes
                    {
                        j += 1 + hashes;
                        break;
                    }
                    j += 1;
                }
                blank(&mut out, &rest[..j.min(rest.len())]);
                i += j.min(rest.len());
                continue;
            }
        }
        // String: "…" (and b"…").
        if rest[0] == '"' {
            let mut j = 1;
            while j < rest.len() && rest[j] != '"' {
                j += if rest[j] == '\\' { 2 } else { 1 };
            }
            let j = (j + 1).min(rest.len());
            blank(&mut out, &rest[..j]);
            i += j;
            continue;
        }
        // Character literal ('x', '\n', '\u{7f}', '{'); a lifetime is left.
        if rest[0] == '\'' {
            let end = if rest.get(1) == Some(&'\\') {
                // After the backslash and the escaped character.
                rest.iter()
                    .skip(3)
                    .position(|&ch| ch == '\'')
                    .map(|p| p + 4)
            } else if rest.get(2) == Some(&'\'') {
                Some(3)
            } else {
                None
            };
            if let Some(end) = end {
                blank(&mut out, &rest[..end]);
                i += end;
                continue;
            }
        }
        out.push(rest[0]);
        i += 1;
    }
    out
}

/// Where a dependency was seen.
#[derive(Debug, Clone)]
struct Site {
    file: String,
    line: usize,
    text: String,
}

/// The top-level modules that `text` (the source of a file whose module
/// path is `path`) uses, with where.
fn uses(path: &[String], text: &str) -> Vec<(String, usize)> {
    let c: Vec<char> = text.chars().collect();
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let line_of = |i: usize| c[..i].iter().filter(|&&ch| ch == '\n').count() + 1;
    let skip_ws = |mut i: usize| {
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let word_at = |i: usize| -> (String, usize) {
        let mut j = i;
        while j < c.len() && ident(c[j]) {
            j += 1;
        }
        (c[i..j].iter().collect(), j)
    };
    // `::` after optional whitespace: the index after it.
    let colons = |i: usize| {
        let i = skip_ws(i);
        (c.get(i) == Some(&':') && c.get(i + 1) == Some(&':')).then(|| skip_ws(i + 2))
    };
    // The first segments named at `i`: one word, or each item of a group.
    let firsts = |i: usize| -> Vec<String> {
        if c.get(i) != Some(&'{') {
            let (w, _) = word_at(i);
            return if w.is_empty() { vec![] } else { vec![w] };
        }
        let (mut depth, mut j, mut out, mut expect) = (0usize, i, Vec::new(), true);
        while j < c.len() {
            match c[j] {
                '{' => {
                    depth += 1;
                    expect = depth == 1;
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' if depth == 1 => expect = true,
                ch if depth == 1 && expect && ident(ch) => {
                    let (w, end) = word_at(j);
                    out.push(w);
                    expect = false;
                    j = end;
                    continue;
                }
                ch if !ch.is_whitespace() => expect = false,
                _ => {}
            }
            j += 1;
        }
        out
    };
    // Inline modules (`mod tests { … }`): (name, brace depth inside).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut found = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '{' => depth += 1,
            '}' => {
                if inline.last().is_some_and(|(_, d)| *d == depth) {
                    inline.pop();
                }
                depth = depth.saturating_sub(1);
            }
            _ => {}
        }
        if !ident(c[i]) || (i > 0 && (ident(c[i - 1]) || c[i - 1] == '$')) {
            i += 1;
            continue;
        }
        let (word, end) = word_at(i);
        match word.as_str() {
            "mod" => {
                let (name, after) = word_at(skip_ws(end));
                if c.get(skip_ws(after)) == Some(&'{') {
                    inline.push((name, depth + 1));
                }
            }
            "crate" => {
                if let Some(next) = colons(end) {
                    for m in firsts(next) {
                        found.push((m, line_of(i)));
                    }
                }
            }
            "super" => {
                // Climb from the module this code is in.
                let mut here: Vec<String> = path.to_vec();
                here.extend(inline.iter().map(|(n, _)| n.clone()));
                let mut j = end;
                let mut next = None;
                while let Some(after) = colons(j) {
                    here.pop();
                    next = Some(after);
                    let (w, e) = word_at(after);
                    if w != "super" {
                        break;
                    }
                    j = e;
                }
                if let Some(next) = next {
                    if here.is_empty() {
                        for m in firsts(next) {
                            found.push((m, line_of(i)));
                        }
                    }
                }
            }
            _ => {}
        }
        i = end;
    }
    found
}

struct Crate {
    /// Library modules (declared in `src/lib.rs`).
    modules: BTreeSet<String>,
    /// `(from, to)` → the first place it is seen.
    edges: BTreeMap<(String, String), Site>,
}

fn read_crate() -> Crate {
    let modules = declared_modules(&src().join("lib.rs"));
    let binary = declared_modules(&src().join("main.rs"));
    let mut files = Vec::new();
    rust_files(&src(), &mut files);
    let mut edges = BTreeMap::new();
    for file in files {
        let path = module_path(&file);
        let Some(top) = path.first() else {
            continue; // lib.rs or main.rs
        };
        if binary.contains(top) && !modules.contains(top) {
            continue; // the binary's own modules
        }
        let raw = fs::read_to_string(&file).unwrap();
        let text = blank_comments_and_strings(&raw);
        let rel = file
            .strip_prefix(Path::new(env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .display()
            .to_string();
        for (to, line) in uses(&path, &text) {
            if &to == top || !modules.contains(&to) {
                continue;
            }
            edges.entry((top.clone(), to)).or_insert_with(|| Site {
                file: rel.clone(),
                line,
                text: raw.lines().nth(line - 1).unwrap_or("").trim().to_owned(),
            });
        }
    }
    Crate { modules, edges }
}

fn layer_of(module: &str) -> Option<(usize, &'static str)> {
    LAYERS
        .iter()
        .enumerate()
        .find(|(_, (_, ms))| ms.contains(&module))
        .map(|(i, (name, _))| (i, *name))
}

/// The cycles of a graph: one per strongly connected component of two or
/// more modules, as a shortest closed walk from its first module.
fn cycles(edges: &BTreeMap<(String, String), Site>) -> Vec<Vec<String>> {
    let mut next: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
    }
    let succ = |m: &str| next.get(m).cloned().unwrap_or_default();
    let reach = |from: &str| -> BTreeSet<&str> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from];
        while let Some(m) = stack.pop() {
            for n in succ(m) {
                if seen.insert(n) {
                    stack.push(n);
                }
            }
        }
        seen
    };
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    let mut out = Vec::new();
    for &start in next.keys() {
        let from_start = reach(start);
        if placed.contains(start) || !from_start.contains(start) {
            continue;
        }
        placed.extend(from_start.iter().filter(|m| reach(m).contains(start)));
        // Breadth first from `start` until an edge leads back to it.
        let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = std::collections::VecDeque::from([start]);
        'search: while let Some(m) = queue.pop_front() {
            for n in succ(m) {
                if n == start {
                    let mut walk = vec![m.to_owned()];
                    let mut at = m;
                    while let Some(&p) = prev.get(at) {
                        walk.push(p.to_owned());
                        at = p;
                    }
                    walk.reverse();
                    walk.push(start.to_owned());
                    out.push(walk);
                    break 'search;
                }
                if !prev.contains_key(n) {
                    prev.insert(n, m);
                    queue.push_back(n);
                }
            }
        }
    }
    out
}

fn describe(edges: &BTreeMap<(String, String), Site>, from: &str, to: &str) -> String {
    let s = &edges[&(from.to_owned(), to.to_owned())];
    format!("  {from} → {to}: {}:{}: {}", s.file, s.line, s.text)
}

#[test]
fn every_library_module_is_placed_in_a_layer() {
    let k = read_crate();
    let unplaced: Vec<&String> = k.modules.iter().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "library modules not in the layer table: {unplaced:?}. Place each new module in \
         LAYERS in tests/layers.rs (see ../shared/LAYOUT.md) and in the module map of \
         src/lib.rs"
    );
}

#[test]
fn no_cycle_between_top_level_modules() {
    let k = read_crate();
    let found = cycles(&k.edges);
    let mut msg = String::new();
    for walk in &found {
        writeln!(msg, "cycle: {}", walk.join(" → ")).unwrap();
        for pair in walk.windows(2) {
            writeln!(msg, "{}", describe(&k.edges, &pair[0], &pair[1])).unwrap();
        }
    }
    assert!(found.is_empty(), "top-level modules use each other:\n{msg}");
}

#[test]
fn no_module_uses_a_higher_layer() {
    let k = read_crate();
    let mut msg = String::new();
    for (from, to) in k.edges.keys() {
        let (Some((lf, nf)), Some((lt, nt))) = (layer_of(from), layer_of(to)) else {
            continue; // reported by every_library_module_is_placed_in_a_layer
        };
        if lt > lf {
            writeln!(
                msg,
                "{from} ({nf}) uses {to} ({nt}), a higher layer:\n{}",
                describe(&k.edges, from, to)
            )
            .unwrap();
        }
    }
    assert!(msg.is_empty(), "{msg}");
}

/// The checker itself: the path forms it must see, and the ones it must not.
#[test]
fn the_path_reader_sees_uses_and_ignores_comments_and_strings() {
    let src = r##"
//! Mentions crate::commented in a doc comment.
use crate::binlog::Event;
use crate::{group::Group, position, wire::{Conn, WireError}};
use super::sibling;
/* crate::blocked /* nested crate::deeper */ */
fn f() {
    let s = "crate::quoted";
    let r = r#"crate::raw "quote" inside"#;
    let c = '{';
    let d = '\'';
    let x = crate::apply::engine::run;
    my_crate::not_this();
    $crate::not_this_either();
}
#[cfg(test)]
mod tests {
    use super::*;
    use super::super::super::progress::Watermark;
    fn g() { let _ = '}'; crate::schedule::Scheduler::new(); }
}
"##;
    let text = blank_comments_and_strings(src);
    // As if in src/mirror/dir.rs: `super::sibling` stays in `mirror`.
    let got: Vec<(String, usize)> = uses(&["mirror".to_owned(), "dir".to_owned()], &text);
    let names: Vec<&str> = got.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(
        names,
        ["binlog", "group", "position", "wire", "apply", "progress", "schedule"],
        "{text}"
    );
    assert_eq!(got[0].1, 3, "line numbers are kept");
    // `super::` from a nested file stays in its module until it climbs out.
    let nested = blank_comments_and_strings("use super::error::X; use super::super::wire::Conn;");
    let got = uses(&["apply".to_owned(), "worker".to_owned()], &nested);
    assert_eq!(got, [("wire".to_owned(), 1)]);
}

#[test]
fn a_cycle_is_found_and_named() {
    let site = || Site {
        file: "src/x.rs".into(),
        line: 1,
        text: String::new(),
    };
    let mut edges = BTreeMap::new();
    for (a, b) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("e", "d")] {
        edges.insert((a.to_owned(), b.to_owned()), site());
    }
    assert_eq!(cycles(&edges), [["a", "b", "c", "a"]]);
    edges.remove(&("c".to_owned(), "a".to_owned()));
    assert!(cycles(&edges).is_empty());
}

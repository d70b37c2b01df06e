//! The crate's floors, checked: reads `src/` as text, builds the graph of which file
//! names which (`use crate::…`, `super::…`, `self::…` and child-module paths, in `use`
//! declarations and inline), and fails on
//!
//! * a core layer or ground-floor module that names `crate::http`, `crate::grpc` or
//!   `crate::axum` (the core knows no protocol);
//! * a protocol file (`http/`, `axum.rs`, `grpc.rs`) that names a concrete layer,
//!   except where a documented protocol impl of that layer's trait lives;
//! * an import circle between files;
//! * a layer off the shape the crate docs' architecture section states: a layer
//!   without public `error` and `future` modules, an error type outside `error.rs` or
//!   not re-exported at the layer's root, a future not in `future`; a `Layer`,
//!   `Builder`, `Handle` or `Permit` not named `{Variant}{Layer}{Role}`, or a
//!   `FooLayer` that makes something other than a `Foo`; a builder whose plain
//!   settings are not in one `settings` field; a keyed variant without the shared
//!   entry (`FooBuilder::keyed`), knobs (`max_keys`, `idle_timeout`) or handle (`len`,
//!   `is_empty`, `contains_key`, `get`); a setter taking an `Option` without its
//!   `no_*` twin.
//!
//! What it reads: code only — comments (doc links may point anywhere), string and
//! character literals and `#[cfg(test)]` modules are stripped first. A `pub use` is a
//! re-export: it counts as naming (for the floor rules) and is followed when resolving
//! a path (`super::Foo` re-exported by `mod.rs` from `foo.rs` is an edge to `foo.rs`),
//! but it is not an edge of the import graph, since a module's front door lists its
//! children without depending on them. A path through a local alias (`use
//! crate::observe; observe::Event`) is seen only at its `use`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Modules that are a layer or the ground floor: none may name a protocol module.
const CORE: &[&str] = &[
    "retry",
    "circuit_breaker",
    "bulkhead",
    "failover",
    "timeout",
    "rate_limit",
    "hedge",
    "fallback",
    "budget",
    "backoff",
    "classify",
    "observe",
    "chaos",
    "guard",
];

/// The concrete layers, which the protocol floor may not name.
const LAYERS: &[&str] = &[
    "retry",
    "circuit_breaker",
    "bulkhead",
    "failover",
    "timeout",
    "rate_limit",
    "hedge",
    "fallback",
];

/// The protocol modules.
const PROTOCOLS: &[&str] = &["http", "grpc", "axum"];

/// Where the protocol floor implements a layer's trait, as the architecture section of
/// the crate docs allows: (file, layer).
const PROTOCOL_IMPLS: &[(&str, &str)] = &[
    ("http/replay.rs", "retry"),   // HttpReplay: retry::Replay
    ("http/tried.rs", "failover"), // HttpTried: failover::TriedAccess
    ("grpc.rs", "retry"),          // GrpcReplay: retry::Replay
];

/// Circles known and left for now, each with its reason. The test fails if one of
/// them is gone, so that the list is kept short.
const KNOWN_CIRCLES: &[(&[&str], &str)] = &[];

/// One source file.
struct File {
    /// Relative to `src/`, with `/`.
    rel: String,
    /// Its module path below the crate root (`["http", "hold"]`).
    module: Vec<String>,
    /// Child modules it declares (`mod foo;` or `mod foo { .. }`).
    children: BTreeSet<String>,
    /// The paths it names: (absolute segments, line, is a re-export).
    paths: Vec<(Vec<String>, usize, bool)>,
    /// Names its `use` declarations bring in, to the absolute path they stand for.
    imports: BTreeMap<String, Vec<String>>,
}

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            // `src/bin` holds separate crates.
            if p.file_name().unwrap() != "bin" || p.parent().unwrap() != src_dir() {
                walk(&p, out);
            }
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .trim_end_matches(".rs")
        .split('/')
        .map(String::from)
        .collect();
    let last = parts.last().unwrap().as_str();
    if last == "mod" || (last == "lib" && parts.len() == 1) {
        parts.pop();
    }
    parts
}

/// The text with comments, string and character literals blanked out (newlines are
/// kept, so line numbers still hold).
fn strip(text: &str) -> String {
    let b: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"' | '#'))
            && !is_ident(if i == 0 { None } else { b.get(i - 1) })
        {
            // A raw string: r"..", r#".."#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == '"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            for &ch in &b[i..j.min(b.len())] {
                out.push(blank(ch));
            }
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' {
            // A character literal ('a', '\n', '\u{..}'), not a lifetime.
            let end = if next == Some('\\') {
                (i + 2..b.len().min(i + 12)).find(|&j| b[j] == '\'')
            } else if b.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(e) => {
                    for _ in i..=e {
                        out.push(' ');
                    }
                    i = e + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn is_ident(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// Blanks out `#[cfg(test)]` modules: test code is not part of the crate's structure.
fn strip_test_modules(text: &str) -> String {
    let mut out: Vec<char> = text.chars().collect();
    let s: String = out.iter().collect();
    let mut from = 0;
    while let Some(at) = s[from..].find("#[cfg(test)]") {
        let start = from + at;
        let rest = &s[start + "#[cfg(test)]".len()..];
        let trimmed = rest.trim_start();
        let is_mod = trimmed.starts_with("mod ") || trimmed.starts_with("pub mod ");
        let open = rest.find('{');
        let semi = rest.find(';');
        if is_mod
            && let Some(open) = open
            && semi.is_none_or(|s| s > open)
        {
            let open = start + "#[cfg(test)]".len() + open;
            let mut depth = 0;
            let mut end = open;
            for (k, ch) in s[open..].char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + k;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            // Byte offsets equal char offsets: the stripped text is ASCII outside
            // literals and comments, and those are blanked already... mostly; map
            // through char indices to be safe.
            let (cs, ce) = (s[..start].chars().count(), s[..=end].chars().count());
            for ch in &mut out[cs..ce] {
                if *ch != '\n' {
                    *ch = ' ';
                }
            }
            from = end + 1;
        } else {
            from = start + 1;
        }
    }
    out.into_iter().collect()
}

/// One `use` tree, flattened: (segments, the name it binds).
fn flatten_use(tree: &str) -> Vec<(Vec<String>, Option<String>)> {
    fn go(prefix: &[String], t: &str, out: &mut Vec<(Vec<String>, Option<String>)>) {
        let t = t.trim();
        if t.is_empty() {
            return;
        }
        // Split at the first `{` on the top level.
        if let Some(open) = t.find('{') {
            let head = t[..open].trim().trim_end_matches("::").trim();
            let close = t.rfind('}').unwrap_or(t.len());
            let inner = &t[open + 1..close];
            let mut p = prefix.to_vec();
            p.extend(
                head.split("::")
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
            let mut depth = 0;
            let mut last = 0;
            for (k, ch) in inner.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        go(&p, &inner[last..k], out);
                        last = k + 1;
                    }
                    _ => {}
                }
            }
            go(&p, &inner[last..], out);
            return;
        }
        let (path, alias) = match t.split_once(" as ") {
            Some((p, a)) => (p.trim(), Some(a.trim().to_string())),
            None => (t, None),
        };
        let mut p = prefix.to_vec();
        p.extend(
            path.split("::")
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from),
        );
        if p.last().is_some_and(|l| l == "self") {
            p.pop();
        }
        let bound = match alias {
            Some(a) if a == "_" => None,
            Some(a) => Some(a),
            None => p.last().filter(|l| *l != "*").cloned(),
        };
        out.push((p, bound));
    }
    let mut out = Vec::new();
    go(&[], tree, &mut out);
    out
}

/// Makes `segs` (as written in `file`) absolute below the crate root; `None` for an
/// external crate or a local name.
fn absolute(
    file_module: &[String],
    children: &BTreeSet<String>,
    segs: &[String],
) -> Option<Vec<String>> {
    let first = segs.first()?.as_str();
    match first {
        "crate" => Some(segs[1..].to_vec()),
        "self" => {
            let mut p = file_module.to_vec();
            p.extend(segs[1..].iter().cloned());
            Some(p)
        }
        "super" => {
            let mut p = file_module.to_vec();
            let mut rest = segs;
            while rest.first().is_some_and(|s| s == "super") {
                p.pop()?;
                rest = &rest[1..];
            }
            p.extend(rest.iter().cloned());
            Some(p)
        }
        _ if children.contains(first) => {
            let mut p = file_module.to_vec();
            p.extend(segs.iter().cloned());
            Some(p)
        }
        _ => None,
    }
}

fn parse(rel: String, text: &str) -> File {
    let module = module_of(&rel);
    let code = strip_test_modules(&strip(text));
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let mut children = BTreeSet::new();
    let tokens: Vec<(usize, &str)> = code
        .match_indices(|c: char| !(c.is_alphanumeric() || c == '_'))
        .scan(0, |last, (at, sep)| {
            let word = (*last, &code[*last..at]);
            *last = at + sep.len();
            Some(word)
        })
        .filter(|(_, w)| !w.is_empty())
        .collect();
    for pair in tokens.windows(2) {
        if pair[0].1 == "mod" {
            children.insert(pair[1].1.to_string());
        }
    }
    let mut file = File {
        rel,
        module,
        children,
        paths: Vec::new(),
        imports: BTreeMap::new(),
    };
    // `use` declarations.
    let mut use_spans = Vec::new();
    for (at, word) in &tokens {
        if *word != "use" {
            continue;
        }
        let Some(end) = code[*at..].find(';') else {
            continue;
        };
        let tree = &code[at + 3..at + end];
        let before = code[..*at].trim_end();
        let reexport = before.ends_with("pub")
            || before.ends_with(')') && {
                let b = before.trim_end_matches(|c| c != '(');
                b.trim_end_matches('(').trim_end().ends_with("pub")
            };
        use_spans.push((*at, at + end));
        for (segs, bound) in flatten_use(&tree.split_whitespace().collect::<Vec<_>>().join(" ")) {
            let Some(abs) = absolute(&file.module, &file.children, &segs) else {
                continue;
            };
            if let Some(name) = bound {
                file.imports.insert(name, abs.clone());
            }
            file.paths.push((abs, line_of(*at), reexport));
        }
    }
    // Inline paths: `crate::a::b`, `super::a`, `self::a` outside `use` declarations.
    let bytes = code.as_bytes();
    for start_word in ["crate::", "super::", "self::"] {
        let mut from = 0;
        while let Some(k) = code[from..].find(start_word) {
            let at = from + k;
            from = at + 1;
            if at > 0
                && (bytes[at - 1].is_ascii_alphanumeric()
                    || bytes[at - 1] == b'_'
                    || bytes[at - 1] == b'$'
                    || bytes[at - 1] == b':')
            {
                continue;
            }
            if use_spans.iter().any(|&(s, e)| s <= at && at < e) {
                continue;
            }
            let mut end = at;
            while end < bytes.len()
                && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_' || bytes[end] == b':')
            {
                end += 1;
            }
            let segs: Vec<String> = code[at..end]
                .split("::")
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            if let Some(abs) = absolute(&file.module, &file.children, &segs) {
                file.paths.push((abs, line_of(at), false));
            }
        }
    }
    file
}

struct Tree {
    files: Vec<File>,
    by_module: BTreeMap<Vec<String>, usize>,
}

impl Tree {
    fn read() -> Tree {
        let root = src_dir();
        let mut paths = Vec::new();
        walk(&root, &mut paths);
        let files: Vec<File> = paths
            .iter()
            .map(|p| {
                let rel = p
                    .strip_prefix(&root)
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                parse(rel, &fs::read_to_string(p).unwrap())
            })
            .collect();
        let by_module = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        Tree { files, by_module }
    }

    /// The file that defines what `abs` names, following re-exports.
    fn resolve(&self, abs: &[String], depth: usize) -> Option<usize> {
        let (len, &file) = (0..=abs.len())
            .rev()
            .find_map(|n| self.by_module.get(&abs[..n]).map(|f| (n, f)))?;
        if len < abs.len()
            && depth < 8
            && let Some(target) = self.files[file].imports.get(&abs[len])
        {
            let mut t = target.clone();
            t.extend(abs[len + 1..].iter().cloned());
            if t != abs {
                return self.resolve(&t, depth + 1).or(Some(file));
            }
        }
        Some(file)
    }

    /// Import edges: file -> (file, line of the first path that makes it).
    fn edges(&self) -> Vec<BTreeMap<usize, usize>> {
        self.files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let mut out = BTreeMap::new();
                for (abs, line, reexport) in &f.paths {
                    if *reexport {
                        continue;
                    }
                    if let Some(j) = self.resolve(abs, 0)
                        && j != i
                    {
                        out.entry(j).or_insert(*line);
                    }
                }
                out
            })
            .collect()
    }
}

/// Strongly connected components of more than one file (Tarjan).
fn cycles(edges: &[BTreeMap<usize, usize>]) -> Vec<Vec<usize>> {
    struct St<'a> {
        edges: &'a [BTreeMap<usize, usize>],
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut St<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on[v] = true;
        let targets: Vec<usize> = s.edges[v].keys().copied().collect();
        for w in targets {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on[w] => s.low[v] = s.low[v].min(iw),
                _ => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.out.push(comp);
            }
        }
    }
    let n = edges.len();
    let mut s = St {
        edges,
        index: vec![None; n],
        low: vec![0; n],
        on: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

fn top(f: &File) -> &str {
    f.module.first().map_or("", String::as_str)
}

#[test]
fn no_core_module_names_a_protocol() {
    let tree = Tree::read();
    let mut found = Vec::new();
    for f in tree.files.iter().filter(|f| CORE.contains(&top(f))) {
        for (abs, line, _) in &f.paths {
            if abs.first().is_some_and(|m| PROTOCOLS.contains(&m.as_str())) {
                found.push(format!(
                    "src/{}:{line} names crate::{}",
                    f.rel,
                    abs.join("::")
                ));
            }
        }
    }
    assert!(
        found.is_empty(),
        "the core names the protocol floor:\n{}",
        found.join("\n")
    );
}

#[test]
fn the_protocol_floor_names_no_layer_outside_its_protocol_impls() {
    let tree = Tree::read();
    let mut found = Vec::new();
    for f in tree.files.iter().filter(|f| PROTOCOLS.contains(&top(f))) {
        for (abs, line, _) in &f.paths {
            let Some(layer) = abs.first().filter(|m| LAYERS.contains(&m.as_str())) else {
                continue;
            };
            if PROTOCOL_IMPLS.contains(&(f.rel.as_str(), layer.as_str())) {
                continue;
            }
            found.push(format!(
                "src/{}:{line} names crate::{}",
                f.rel,
                abs.join("::")
            ));
        }
    }
    assert!(
        found.is_empty(),
        "the protocol floor names a concrete layer (implement a ground-floor trait in the layer instead):\n{}",
        found.join("\n")
    );
}

#[test]
fn no_import_circle_between_files() {
    let tree = Tree::read();
    let edges = tree.edges();
    let mut report = Vec::new();
    let found = cycles(&edges);
    for (files, why) in KNOWN_CIRCLES {
        let names: Vec<&str> = files.to_vec();
        assert!(
            found.iter().any(|c| c
                .iter()
                .map(|&i| tree.files[i].rel.as_str())
                .eq(names.iter().copied())),
            "the known circle {names:?} ({why}) is gone: take it off KNOWN_CIRCLES"
        );
    }
    for comp in found {
        let rels: Vec<&str> = comp.iter().map(|&i| tree.files[i].rel.as_str()).collect();
        if KNOWN_CIRCLES
            .iter()
            .any(|(files, _)| *files == rels.as_slice())
        {
            continue;
        }
        let mut lines = vec![format!(
            "circle: {}",
            comp.iter()
                .map(|&i| format!("src/{}", tree.files[i].rel))
                .collect::<Vec<_>>()
                .join(", ")
        )];
        for &i in &comp {
            for (&j, line) in &edges[i] {
                if comp.contains(&j) {
                    lines.push(format!(
                        "  src/{}:{line} -> src/{}",
                        tree.files[i].rel, tree.files[j].rel
                    ));
                }
            }
        }
        report.push(lines.join("\n"));
    }
    assert!(
        report.is_empty(),
        "{} import circle(s):\n{}",
        report.len(),
        report.join("\n")
    );
}

/// The checker itself: the parts that would let a violation through if they broke.
#[test]
fn the_checker_sees_use_trees_inline_paths_and_circles() {
    let f = parse(
        "a/b.rs".into(),
        "// use crate::http::X;\nuse super::{c::D, e::{F, G as H}};\npub use crate::grpc::S;\nfn f() { let _ = crate::axum::Y; let _ = \"crate::http::Z\"; }\n#[cfg(test)]\nmod tests { use crate::http::T; }\n",
    );
    let named: Vec<String> = f.paths.iter().map(|(p, _, _)| p.join("::")).collect();
    assert_eq!(
        named,
        ["a::c::D", "a::e::F", "a::e::G", "grpc::S", "axum::Y"]
    );
    assert!(f.paths[3].2, "a `pub use` is a re-export");
    assert_eq!(
        f.imports.get("H").map(|p| p.join("::")).as_deref(),
        Some("a::e::G")
    );
    let e = |pairs: &[(usize, usize)]| {
        let mut v = vec![BTreeMap::new(); 3];
        for &(a, b) in pairs {
            v[a].insert(b, 1);
        }
        v
    };
    assert_eq!(cycles(&e(&[(0, 1), (1, 2)])), Vec::<Vec<usize>>::new());
    assert_eq!(cycles(&e(&[(0, 1), (1, 2), (2, 0)])), vec![vec![0, 1, 2]]);
}

// ----- the layers' common shape ---------------------------------------------------
//
// The convention the crate docs' architecture section states: every layer has a
// public `error` module (its errors, re-exported at the layer's root) and a public
// `future` module (every future it returns); its public types are named
// `{Variant}{Layer}{Role}`; a builder keeps its plain settings in one `settings`
// field; a keyed variant is made the same way in every layer; an option that a
// setter takes as `Option` also has its `no_*` twin.

/// Each layer's folder and the names its types start with.
const LAYER_NAMES: &[(&str, &[&str])] = &[
    ("retry", &["Retry"]),
    ("circuit_breaker", &["CircuitBreaker"]),
    ("bulkhead", &["Bulkhead"]),
    ("failover", &["Failover"]),
    ("timeout", &["Timeout", "Deadline"]),
    ("hedge", &["Hedge"]),
    ("fallback", &["Fallback"]),
    ("rate_limit", &["RateLimit"]),
    ("chaos", &["Chaos"]),
];

/// The variants a layer may come in, as the first word of a type's name.
const VARIANTS: &[&str] = &["", "Keyed", "Partitioned", "Redis"];

/// The roles a type's name ends with.
const ROLES: &[&str] = &["Layer", "Builder", "Handle", "Permit"];

/// The code of every file of one layer: (path below `src/`, code without comments,
/// literals and test modules).
fn layer_files(layer: &str) -> Vec<(String, String)> {
    let root = src_dir();
    let mut paths = Vec::new();
    walk(&root.join(layer), &mut paths);
    paths
        .iter()
        .map(|p| {
            let rel = p
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let code = strip_test_modules(&strip(&fs::read_to_string(p).unwrap()));
            (rel, code)
        })
        .collect()
}

/// The words of `code` with their byte offsets.
fn words(code: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in code.char_indices() {
        let w = c.is_alphanumeric() || c == '_';
        match (w, start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s, &code[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &code[s..]));
    }
    out
}

/// Whether the item that starts at word `i` is declared plain `pub` (not
/// `pub(crate)`, not private).
fn is_pub_at(code: &str, ws: &[(usize, &str)], i: usize) -> bool {
    i > 0 && ws[i - 1].1 == "pub" && !code[ws[i - 1].0 + 3..ws[i].0].contains('(')
}

/// Public structs and enums a file declares (`pub struct X`, `pub enum X`, also inside
/// `pin_project!`).
fn pub_types(code: &str) -> Vec<String> {
    let ws = words(code);
    let mut out = Vec::new();
    for i in 1..ws.len().saturating_sub(1) {
        if matches!(ws[i].1, "struct" | "enum") && is_pub_at(code, &ws, i) {
            out.push(ws[i + 1].1.to_string());
        }
    }
    out
}

/// The text from the `{` at or after `at` to its matching `}`.
fn block_at(code: &str, at: usize) -> &str {
    let Some(open) = code[at..].find('{').map(|k| at + k) else {
        return "";
    };
    let mut depth = 0;
    for (k, ch) in code[open..].char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &code[open + 1..open + k];
                }
            }
            _ => {}
        }
    }
    &code[open + 1..]
}

/// The public methods of `ty`'s inherent impls in `code`: (name, signature up to the
/// body).
fn pub_methods(code: &str, ty: &str) -> Vec<(String, String)> {
    let ws = words(code);
    let mut out = Vec::new();
    for &(at, w) in &ws {
        if w != "impl" {
            continue;
        }
        // `impl<..> Ty<..> {` (not `impl Trait for Ty`): the header up to the `{`.
        let Some(open) = code[at..].find('{') else {
            continue;
        };
        let header = &code[at..at + open];
        let hw = words(header);
        if hw.iter().any(|(_, w)| *w == "for") {
            continue;
        }
        // The type is the first word after the generics of `impl`.
        let after_generics = if header[4..].trim_start().starts_with('<') {
            let mut depth = 0;
            let mut end = 4;
            for (k, ch) in header[4..].char_indices() {
                match ch {
                    '<' => depth += 1,
                    '>' => {
                        depth -= 1;
                        if depth == 0 {
                            end = 4 + k + 1;
                            break;
                        }
                    }
                    _ => {}
                }
            }
            &header[end..]
        } else {
            &header[4..]
        };
        if words(after_generics).first().map(|(_, w)| *w) != Some(ty) {
            continue;
        }
        let body = block_at(code, at);
        let bw = words(body);
        for j in 1..bw.len().saturating_sub(1) {
            if bw[j].1 == "fn" && is_pub_at(body, &bw, j) {
                let sig_end = body[bw[j].0..]
                    .find(['{', ';'])
                    .map_or(body.len(), |k| bw[j].0 + k);
                let sig = body[bw[j].0..sig_end]
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push((bw[j + 1].1.to_string(), sig));
            }
        }
    }
    out
}

/// The fields of `pub struct ty { .. }` in `code`, if it is declared there with fields.
fn struct_fields(code: &str, ty: &str) -> Option<Vec<String>> {
    let ws = words(code);
    let i = (1..ws.len()).find(|&i| ws[i - 1].1 == "struct" && ws[i].1 == ty)?;
    // A tuple or unit struct has no named fields.
    let rest = &code[ws[i].0..];
    let brace = rest.find('{')?;
    if rest.find([';', '(']).is_some_and(|k| k < brace) {
        return None;
    }
    let body = block_at(code, ws[i].0);
    let mut fields = Vec::new();
    let mut depth = 0;
    let mut last = 0;
    let mut parts = Vec::new();
    for (k, ch) in body.char_indices() {
        match ch {
            '<' | '(' | '[' | '{' => depth += 1,
            '>' | ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&body[last..k]);
                last = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&body[last..]);
    for part in parts {
        if let Some((name, _)) = part.split_once(':') {
            let name = name.split_whitespace().last().unwrap_or("");
            if !name.is_empty() {
                fields.push(name.to_string());
            }
        }
    }
    Some(fields)
}

#[test]
fn every_layer_has_a_public_error_and_future_module() {
    let mut found = Vec::new();
    for (layer, _) in LAYER_NAMES {
        let files = layer_files(layer);
        let get = |name: &str| files.iter().find(|(r, _)| r == &format!("{layer}/{name}"));
        let Some((_, root)) = get("mod.rs") else {
            found.push(format!("src/{layer}: no mod.rs"));
            continue;
        };
        for module in ["error", "future"] {
            if get(&format!("{module}.rs")).is_none() {
                found.push(format!("src/{layer}: no {module}.rs"));
            }
            let declared = root
                .lines()
                .any(|l| l.trim() == format!("pub mod {module};"));
            if !declared {
                found.push(format!("src/{layer}/mod.rs: no `pub mod {module};`"));
            }
        }
        // Every error type lives in error.rs and is re-exported at the layer's root.
        let reexported: BTreeSet<Vec<String>> = parse(format!("{layer}/mod.rs"), root)
            .paths
            .into_iter()
            .filter(|(_, _, reexport)| *reexport)
            .map(|(p, _, _)| p)
            .collect();
        for (rel, code) in &files {
            let is_error_file = rel == &format!("{layer}/error.rs");
            let ws = words(code);
            let implements_error = (1..ws.len()).any(|k| {
                ws[k].1 == "for"
                    && matches!(ws[k - 1].1, "Error" | "StdError")
                    && ws[k.saturating_sub(4)..k].iter().any(|(_, w)| *w == "impl")
            });
            if implements_error && !is_error_file {
                found.push(format!(
                    "src/{rel}: implements std::error::Error outside {layer}/error.rs"
                ));
            }
            if is_error_file {
                for ty in pub_types(code) {
                    let path = vec![layer.to_string(), "error".to_string(), ty.clone()];
                    if !reexported.contains(&path) {
                        found.push(format!(
                            "src/{layer}/mod.rs: does not re-export error::{ty} (`pub use error::{ty};`)"
                        ));
                    }
                }
            }
        }
        // Every public future is defined in future.rs or re-exported there.
        let future = get("future.rs").map(|(_, c)| c.as_str()).unwrap_or("");
        for (rel, code) in &files {
            if rel == &format!("{layer}/future.rs") {
                continue;
            }
            for ty in pub_types(code) {
                if ty.ends_with("Future") && !words(future).iter().any(|(_, w)| *w == ty) {
                    found.push(format!(
                        "src/{rel}: the future {ty} is not in {layer}/future.rs (define or re-export it there)"
                    ));
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "the layers' front doors differ:\n{}",
        found.join("\n")
    );
}

#[test]
fn public_types_are_named_variant_layer_role() {
    let mut found = Vec::new();
    for (layer, prefixes) in LAYER_NAMES {
        for (rel, code) in layer_files(layer) {
            for ty in pub_types(&code) {
                let Some(role) = ROLES.iter().find(|r| ty.ends_with(*r)) else {
                    continue;
                };
                let stem = &ty[..ty.len() - role.len()];
                let ok = VARIANTS
                    .iter()
                    .any(|v| prefixes.iter().any(|p| stem == format!("{v}{p}")));
                if !ok {
                    found.push(format!(
                        "src/{rel}: `{ty}` is not named {{{}}}{{{}}}{role}",
                        VARIANTS.join("|"),
                        prefixes.join("|")
                    ));
                }
            }
            // A layer makes the service named like it: `FooLayer` makes `Foo`.
            let ws = words(&code);
            for i in 0..ws.len().saturating_sub(3) {
                if ws[i].1 == "Layer" && ws[i + 2].1 == "for" {
                    // `impl<S..> Layer<S> for NameLayer<..> { type Service = Name<..>;`
                    let name = ws[i + 3].1;
                    let body = block_at(&code, ws[i + 3].0);
                    let bw = words(body);
                    let svc = bw
                        .windows(3)
                        .find(|w| w[0].1 == "type" && w[1].1 == "Service")
                        .map(|w| w[2].1);
                    if let Some(svc) = svc
                        && name.strip_suffix("Layer") != Some(svc)
                    {
                        found.push(format!(
                            "src/{rel}: `{name}` makes `{svc}`; a `FooLayer` makes a `Foo`"
                        ));
                    }
                }
            }
        }
    }
    assert!(
        found.is_empty(),
        "public types off the naming convention:\n{}",
        found.join("\n")
    );
}

#[test]
fn keyed_variants_have_one_shape() {
    let mut found = Vec::new();
    let mut keyed_layers = Vec::new();
    for (layer, prefixes) in LAYER_NAMES {
        let files = layer_files(layer);
        let all: String = files
            .iter()
            .map(|(_, c)| c.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        let types: BTreeSet<String> = files.iter().flat_map(|(_, c)| pub_types(c)).collect();
        if !types.iter().any(|t| t.starts_with("Keyed")) {
            continue;
        }
        keyed_layers.push(*layer);
        let p = prefixes[0];
        let methods = |ty: &str| -> Vec<(String, String)> { pub_methods(&all, ty) };
        let has = |ty: &str, m: &str| methods(ty).iter().any(|(n, _)| n == m);
        for role in ["", "Layer", "Builder", "Handle"] {
            let ty = format!("Keyed{p}{role}");
            if !types.contains(&ty) {
                found.push(format!("src/{layer}: no `{ty}`"));
            }
        }
        let keyed_from_builder = methods(&format!("{p}Builder"))
            .iter()
            .any(|(n, sig)| n == "keyed" && sig.contains(&format!("-> Keyed{p}Builder")));
        if !keyed_from_builder {
            found.push(format!(
                "src/{layer}: no `{p}Builder::keyed(key) -> Keyed{p}Builder`"
            ));
        }
        for m in ["max_keys", "idle_timeout", "build"] {
            if !has(&format!("Keyed{p}Builder"), m) {
                found.push(format!("src/{layer}: no `Keyed{p}Builder::{m}`"));
            }
        }
        let handle = methods(&format!("Keyed{p}Layer"))
            .iter()
            .any(|(n, sig)| n == "handle" && sig.contains(&format!("-> Keyed{p}Handle")));
        if !handle {
            found.push(format!(
                "src/{layer}: no `Keyed{p}Layer::handle() -> Keyed{p}Handle`"
            ));
        }
        // A handle on the map: its size, its keys, and each key's own handle where the
        // layer has one. The rate limiter's handle changes the quota, which all keys
        // share: its keyed handle changes it for every key instead.
        let mut wanted = vec!["len", "is_empty", "contains_key"];
        if types.contains(&format!("{p}Handle")) {
            wanted.push(if *layer == "rate_limit" {
                "reconfigure"
            } else {
                "get"
            });
        }
        for m in wanted {
            if !has(&format!("Keyed{p}Handle"), m) {
                found.push(format!("src/{layer}: no `Keyed{p}Handle::{m}`"));
            }
        }
    }
    assert_eq!(
        keyed_layers,
        ["circuit_breaker", "bulkhead", "rate_limit"],
        "the layers with a keyed variant changed: update this test and the crate docs"
    );
    assert!(
        found.is_empty(),
        "keyed variants differ in shape:\n{}",
        found.join("\n")
    );
}

#[test]
fn builders_keep_their_settings_in_one_struct_and_switch_off_alike() {
    let mut found = Vec::new();
    let mut builders = 0;
    for (layer, _) in LAYER_NAMES {
        let files = layer_files(layer);
        let all: String = files
            .iter()
            .map(|(_, c)| c.as_str())
            .collect::<Vec<_>>()
            .join("\n");
        for (rel, code) in &files {
            for ty in pub_types(code)
                .into_iter()
                .filter(|t| t.ends_with("Builder"))
            {
                builders += 1;
                let Some(fields) = struct_fields(code, &ty) else {
                    continue;
                };
                // Besides `settings`: the fields whose type a method may change
                // (classifier, replay, key, ...), a base builder, a phantom.
                if !fields.iter().any(|f| f == "settings") || fields.len() > 4 {
                    found.push(format!(
                        "src/{rel}: `{ty}` has the fields {fields:?}; keep its plain settings in one `settings` field"
                    ));
                }
                for (name, sig) in pub_methods(&all, &ty) {
                    if sig.contains(": Option<") && !sig.contains("Option<Self>") {
                        let twin = format!("no_{name}");
                        if !pub_methods(&all, &ty).iter().any(|(n, _)| *n == twin) {
                            found.push(format!(
                                "src/{rel}: `{ty}::{name}` takes an `Option` but has no `{twin}()`"
                            ));
                        }
                    }
                }
            }
        }
    }
    assert!(
        builders >= 10,
        "found only {builders} builders: is the test reading src/?"
    );
    assert!(
        found.is_empty(),
        "builders off the settings and \"off\" conventions:\n{}",
        found.join("\n")
    );
}

/// The shape checker itself, on small inputs.
#[test]
fn the_shape_checker_reads_types_methods_and_fields() {
    let code = strip(
        "pub struct A { settings: S, classifier: C }\npub(crate) struct B;\npin_project! { pub struct CFuture<F> { #[pin] f: F } }\nimpl<C> A<C> { pub fn keyed<K>(self, k: K) -> KeyedABuilder<K> { x } pub(crate) fn hidden(&self) {} fn private() {} }\nimpl Clone for A { pub fn clone(&self) -> Self { x } }\n",
    );
    assert_eq!(pub_types(&code), ["A", "CFuture"]);
    let m = pub_methods(&code, "A");
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].0, "keyed");
    assert!(m[0].1.contains("-> KeyedABuilder<K>"));
    assert_eq!(
        struct_fields(&code, "A").unwrap(),
        ["settings", "classifier"]
    );
}

//! Tidy checks over the workspace's own sources (as rust-analyzer's `tidy` test does): facts
//! about the code that the compiler does not enforce but `ARCHITECTURE.md` promises.
//!
//! The one check so far: inside each crate (`crates/*`, `adapters/*`) the modules form layers,
//! so no module reaches back up. A module is a top-level module of the crate (`src/x.rs` or
//! `src/x/`, with everything under it); it depends on another when its code names it
//! (`use crate::other…`, a `crate::other::` path, or an item `lib.rs`/`main.rs` re-exports
//! from it). Unit tests (`#[cfg(test)]` items) do not count: a test may reach anywhere.
//! Any circle (a strongly connected component of more than one module) fails the test, with
//! the references that make it up, so the fix (moving the shared item down a layer) is plain.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Which module depends on which, with one place (file:line) that shows each reference.
type Graph = BTreeMap<String, BTreeMap<String, String>>;

#[test]
fn modules_of_every_crate_form_layers_without_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace")
        .to_path_buf();
    let crates = crate_dirs(&root);
    assert!(
        crates.len() >= 10,
        "expected the workspace's crates under crates/ and adapters/, found {crates:?}"
    );
    let mut report = String::new();
    let mut checked = 0;
    for dir in &crates {
        let graph = module_graph(&dir.join("src"));
        if std::env::var_os("TIDY_PRINT").is_some_and(|v| dir.ends_with(&v)) {
            for (from, to) in &graph {
                eprintln!("{from} -> {:?}", to.keys().collect::<Vec<_>>());
            }
        }
        checked += graph.len();
        for circle in circles(&graph) {
            let name = dir.strip_prefix(&root).unwrap_or(dir).display();
            let _ = writeln!(
                report,
                "{name}: modules {} depend on each other:",
                circle.join(", ")
            );
            for from in &circle {
                for (to, place) in &graph[from] {
                    if circle.contains(to) {
                        let place = Path::new(place)
                            .strip_prefix(&root)
                            .unwrap_or(Path::new(place));
                        let _ = writeln!(report, "    {from} -> {to}   ({})", place.display());
                    }
                }
            }
        }
    }
    assert!(
        checked > 50,
        "only {checked} modules found: is the scan broken?"
    );
    assert!(
        report.is_empty(),
        "module circles (move the shared item down a layer):\n{report}"
    );
}

/// `crates/*` and `adapters/*` that have a `src/`.
fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for group in ["crates", "adapters"] {
        let Ok(entries) = std::fs::read_dir(root.join(group)) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.path().join("src").is_dir() {
                dirs.push(entry.path());
            }
        }
    }
    dirs.sort();
    dirs
}

/// The graph of one crate's top-level modules, read from the files under `src`.
fn module_graph(src: &Path) -> Graph {
    let root_file = ["lib.rs", "main.rs"]
        .iter()
        .map(|f| src.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("{} has neither lib.rs nor main.rs", src.display()));
    let root_code = strip(&std::fs::read_to_string(&root_file).expect("readable"));
    let modules = declared_modules(&root_code);
    let reexports = reexports(&root_code, &modules);
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for file in rust_files(src) {
        let Some(from) = top_module(src, &file) else {
            continue;
        };
        if !modules.contains(&from) {
            continue;
        }
        let code = strip(&std::fs::read_to_string(&file).expect("readable"));
        for (name, line) in crate_references(&code) {
            let to = if modules.contains(&name) {
                name
            } else if let Some(m) = reexports.get(&name) {
                m.clone()
            } else {
                continue;
            };
            if to != from {
                let place = format!("{}:{line}", file.display());
                graph
                    .get_mut(&from)
                    .expect("a module of the crate")
                    .entry(to)
                    .or_insert(place);
            }
        }
    }
    graph
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("readable dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// `src/engine.rs` → `engine`, `src/render/split.rs` → `render`; the crate root → `None`.
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let mut parts = rel.components();
    let first = parts.next()?.as_os_str().to_str()?;
    if parts.next().is_some() {
        return Some(first.to_string());
    }
    match first.strip_suffix(".rs")? {
        "lib" | "main" => None,
        m => Some(m.to_string()),
    }
}

/// The `mod x;` items of a crate root (outside `#[cfg(test)]` code, which `strip` removed).
fn declared_modules(root: &str) -> BTreeSet<String> {
    let words = words(root);
    let mut modules = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        if w == "mod" {
            if let (Some(name), Some(end)) = (words.get(i + 1), words.get(i + 2)) {
                if end == ";" && is_ident(name) {
                    modules.insert(name.clone());
                }
            }
        }
    }
    modules
}

/// Names the crate root re-exports from a module (`pub use engine::{Engine, Submission};`),
/// so `crate::Engine` counts as a reference to `engine`.
fn reexports(root: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for statement in root.split(';') {
        // A chunk may start with the end of the item before it: look at its last `use`.
        let Some(path) = ["pub use ", "pub(crate) use "]
            .iter()
            .filter_map(|u| statement.rfind(u).map(|at| &statement[at + u.len()..]))
            .next()
        else {
            continue;
        };
        let path = path
            .trim()
            .trim_start_matches("crate::")
            .trim_start_matches("self::");
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        if !modules.contains(module.trim()) {
            continue;
        }
        // The last name of each imported path (`a::{B, c::D as E}` → B, E).
        for item in rest.split([',', '{', '}']) {
            let item = item.trim();
            if item.is_empty() || item == "self" || item == "*" {
                continue;
            }
            let name = match item.split_once(" as ") {
                Some((_, alias)) => alias.trim(),
                None => item.rsplit("::").next().unwrap_or(item).trim(),
            };
            if is_ident(name) {
                map.insert(name.to_string(), module.trim().to_string());
            }
        }
    }
    map
}

/// Every `crate::name` the code refers to, with its line: `use crate::a::…`, `crate::a::f()`,
/// `$crate::a`, and each first name in `use crate::{a::X, b}`.
fn crate_references(code: &str) -> Vec<(String, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(pos) = code[at..].find("crate") {
        let start = at + pos;
        at = start + "crate".len();
        let before = start.checked_sub(1).map(|i| bytes[i]);
        if before.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let rest = code[at..].trim_start();
        let Some(rest) = rest.strip_prefix("::") else {
            continue;
        };
        let rest = rest.trim_start();
        let line = code[..start].matches('\n').count() + 1;
        if let Some(group) = rest.strip_prefix('{') {
            for name in group_heads(group) {
                found.push((name, line));
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((name, line));
            }
        }
    }
    found
}

/// The first name of each item of a `{…}` use group, up to its closing brace.
fn group_heads(group: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expecting = true;
    let mut current = String::new();
    for c in group.chars() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => expecting = true,
            c if expecting && (c.is_alphanumeric() || c == '_') => current.push(c),
            _ if expecting && !current.is_empty() => {
                heads.push(std::mem::take(&mut current));
                expecting = false;
            }
            _ => {}
        }
    }
    if !current.is_empty() {
        heads.push(current);
    }
    heads.retain(|h| h != "self");
    heads
}

/// The code without comments, string and char literals (their text is not a reference), and
/// without items marked `#[cfg(test)]`. Newlines are kept so line numbers still match.
fn strip(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len());
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    if chars[i] == '\n' {
                        out.push('\n');
                    }
                    i += 1;
                }
            }
        } else if c == 'r'
            && matches!(next, Some('"') | Some('#'))
            && starts_literal(&chars[..i])
            && raw_string_hashes(&chars[i + 1..]).is_some()
        {
            let hashes = raw_string_hashes(&chars[i + 1..]).expect("checked");
            i += 2 + hashes;
            while i < chars.len() {
                if chars[i] == '"'
                    && chars.len() > i + hashes
                    && chars[i + 1..=i + hashes].iter().all(|h| *h == '#')
                {
                    i += 1 + hashes;
                    break;
                }
                if chars[i] == '\n' {
                    out.push('\n');
                }
                i += 1;
            }
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    i += 1;
                }
                if chars.get(i) == Some(&'\n') {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal: '\n', '\'', '\u{..}'.
            i += 2;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            i += 3;
            out.push_str("' '");
        } else {
            out.push(c);
            i += 1;
        }
    }
    drop_test_items(&out)
}

/// Whether an `r` after `before` starts a raw string (`r"`, `br"`) rather than ending a name.
fn starts_literal(before: &[char]) -> bool {
    let ident = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
    match before.last() {
        Some('b') => !ident(before.iter().rev().nth(1)),
        last => !ident(last),
    }
}

/// For `r"…"`/`r#"…"#` starting after the `r`: how many `#` it has.
fn raw_string_hashes(after_r: &[char]) -> Option<usize> {
    let hashes = after_r.iter().take_while(|c| **c == '#').count();
    (after_r.get(hashes) == Some(&'"')).then_some(hashes)
}

/// Removes each item marked `#[cfg(test)]` (a `mod tests { … }`, a test-only `use` or `fn`):
/// everything from the attribute to the end of the item (its `;` or its balanced braces).
fn drop_test_items(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(pos) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..pos]);
        let item = &rest[pos..];
        let mut depth = 0;
        let mut end = item.len();
        for (i, c) in item.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = i + 1;
                        break;
                    }
                }
                ';' if depth == 0 => {
                    end = i + 1;
                    break;
                }
                _ => {}
            }
        }
        // Keep the line count.
        out.extend(item[..end].chars().filter(|c| *c == '\n'));
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

/// Identifiers and single punctuation characters, in order.
fn words(code: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    for c in code.chars() {
        if c.is_alphanumeric() || c == '_' {
            current.push(c);
            continue;
        }
        if !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        if !c.is_whitespace() {
            words.push(c.to_string());
        }
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

fn is_ident(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with(|c: char| c.is_ascii_digit())
        && s.chars().all(|c| c.is_alphanumeric() || c == '_')
}

/// The strongly connected components of more than one module (Tarjan's algorithm), each
/// sorted, in a stable order.
fn circles(graph: &Graph) -> Vec<Vec<String>> {
    struct Tarjan<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Tarjan<'g> {
        fn visit(&mut self, v: &'g str) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            self.on_stack.insert(v);
            let graph = self.graph;
            for w in graph.get(v).into_iter().flat_map(|e| e.keys()) {
                let w = w.as_str();
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.on_stack.contains(w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                loop {
                    let w = self.stack.pop().expect("v is on the stack");
                    self.on_stack.remove(w);
                    component.push(w.to_string());
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut t = Tarjan {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !t.index.contains_key(v.as_str()) {
            t.visit(v.as_str());
        }
    }
    t.found.sort();
    t.found
}

mod unit {
    //! The checker's own parts, on hand-made input, so a passing tidy test means "no circle"
    //! and not "saw nothing".

    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string())
                .or_default()
                .insert(b.to_string(), "here".into());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn a_layered_graph_has_no_circle() {
        let g = graph(&[("engine", "turn"), ("turn", "reply"), ("engine", "reply")]);
        assert!(circles(&g).is_empty());
    }

    #[test]
    fn a_circle_is_found_with_every_module_in_it() {
        let g = graph(&[
            ("engine", "turn"),
            ("turn", "tools"),
            ("tools", "engine"),
            ("turn", "reply"),
            ("config", "gvisor"),
            ("gvisor", "config"),
        ]);
        assert_eq!(
            circles(&g),
            vec![
                vec!["config".to_string(), "gvisor".to_string()],
                vec![
                    "engine".to_string(),
                    "tools".to_string(),
                    "turn".to_string()
                ],
            ]
        );
    }

    #[test]
    fn references_count_uses_paths_and_groups_but_not_tests_comments_or_strings() {
        let code = r##"
use crate::a::X;
use crate::{b::{self, Y}, c};
// crate::commented
/* crate::block */
fn f() {
    let s = "crate::quoted";
    let r = r#"crate::raw"#;
    crate::d::call();
    my_crate::e::not_ours();
    let _ = '"';
}
#[cfg(test)]
mod tests {
    use crate::t::Z;
}
"##;
        let names: Vec<String> = crate_references(&strip(code))
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
    }

    #[test]
    fn reexported_names_lead_to_their_module() {
        let root = strip(
            "mod engine;\npub mod render;\n#[cfg(test)]\nmod fixtures;\n\
             pub use engine::{Engine, Submission as S};\npub use render::split::split;\n",
        );
        let modules = declared_modules(&root);
        assert_eq!(
            modules,
            BTreeSet::from(["engine".to_string(), "render".to_string()])
        );
        let map = reexports(&root, &modules);
        assert_eq!(map["Engine"], "engine");
        assert_eq!(map["S"], "engine");
        assert_eq!(map["split"], "render");
    }
}

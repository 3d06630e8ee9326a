//! The house rules a program can check: no import cycles between the
//! top-level modules of `src/`.
//!
//! Each top-level module (`src/x.rs` or `src/x/`) may use the modules below
//! it, never one that (through others) uses it back: so each can be read,
//! tested and changed knowing only what it uses (see ARCHITECTURE.md). The
//! check reads the source, not the compiler: every `crate::x` path (in `use`
//! lines, `use crate::{x, y::z}` groups and paths in code), every root
//! re-export that stands for a module's item (`crate::Topic` is
//! `protocol`'s), and `super::` paths that climb out of a module. Comments,
//! doc links and string literals are not code and do not count, and
//! neither do `#[cfg(test)]` items: a test may build its fixtures with any
//! module. The binary (`src/bin/`) is a user of the library, not part of it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

/// Where an edge of the graph was first found: file, line and its text.
#[derive(Debug, Clone)]
struct Seen {
    file: String,
    line: usize,
    text: String,
}

/// Module -> the modules it uses, each with where it was first seen.
type Graph = BTreeMap<String, BTreeMap<String, Seen>>;

#[test]
fn src_has_no_import_cycles_between_top_level_modules() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    // The parser found the imports it must find: a broken one would pass
    // any tree.
    for (from, to) in [("router", "inbox"), ("hub", "router"), ("conn", "protocol")] {
        assert!(
            graph.get(from).is_some_and(|uses| uses.contains_key(to)),
            "the check did not see {from} use {to}: is it still reading src/ right?"
        );
    }
    let cycles = cycles(&graph);
    assert!(cycles.is_empty(), "{}", report(&graph, &cycles));
}

#[test]
fn the_source_reader_sees_code_only() {
    let text = r##"
        use crate::{alpha, beta::Gamma};
        // crate::comment
        /* crate::block /* nested crate::inner */ */
        let s = "crate::string";
        let r = r#"crate::raw"#;
        let c = '"'; let d = '\''; fn f<'a>(x: &'a str) {}
        #[cfg(test)]
        mod tests { use crate::tested; }
        crate::delta::call();
    "##;
    let code = skip_test_items(&strip(text));
    let found: BTreeSet<String> = uses_in(&code, &[], &BTreeMap::new())
        .into_iter()
        .map(|(module, _)| module)
        .collect();
    let expected: BTreeSet<String> = ["alpha", "beta", "delta"].map(String::from).into();
    assert_eq!(found, expected);
}

/// The graph of `src/`'s top-level modules.
fn import_graph(src: &Path) -> Graph {
    let lib = fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let lib = skip_test_items(&strip(&lib));
    let modules = declared_modules(&lib);
    let exports = root_exports(&lib, &modules);
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeMap::new()))
        .collect();
    for file in rust_files(src) {
        let relative = file.strip_prefix(src).expect("under src/");
        let parts: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        let Some(top) = parts.first().map(|p| p.trim_end_matches(".rs").to_owned()) else {
            continue;
        };
        if !modules.contains(&top) {
            // lib.rs, main.rs, the binary's files.
            continue;
        }
        let text = fs::read_to_string(&file).expect("readable source");
        let code = skip_test_items(&strip(&text));
        let path = module_path(&parts);
        let lines: Vec<&str> = text.lines().collect();
        for (used, line) in uses_in(&code, &path, &exports) {
            if used != top && modules.contains(&used) {
                let uses = graph.entry(top.clone()).or_default();
                uses.entry(used).or_insert_with(|| Seen {
                    file: format!("src/{}", relative.display()),
                    line,
                    text: lines.get(line - 1).map_or("", |l| l.trim()).to_owned(),
                });
            }
        }
    }
    graph
}

/// Every `.rs` file under `dir`, in a stable order.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .expect("readable directory")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// A file's module path: `router/app.rs` is `[router, app]`,
/// `router/mod.rs` is `[router]`.
fn module_path(parts: &[String]) -> Vec<String> {
    let mut path: Vec<String> = parts
        .iter()
        .map(|p| p.trim_end_matches(".rs").to_owned())
        .collect();
    if path.last().is_some_and(|last| last == "mod") {
        path.pop();
    }
    path
}

/// The modules `lib.rs` declares (`mod x;`, `pub mod x;`).
fn declared_modules(lib: &str) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    let words: Vec<&str> = lib.split(|c: char| c.is_whitespace()).collect();
    for pair in words.windows(2) {
        if pair[0] == "mod" && pair[1].ends_with(';') {
            modules.insert(pair[1].trim_end_matches(';').to_owned());
        }
    }
    modules
}

/// The names `lib.rs` re-exports, and the module each comes from:
/// `pub use crate::protocol::{Topic, ...}` makes `crate::Topic` protocol's.
fn root_exports(lib: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut exports = BTreeMap::new();
    for statement in lib.split(';') {
        let statement = statement.trim();
        let Some(path) = statement.strip_prefix("pub use crate::") else {
            continue;
        };
        let Some((module, rest)) = path.split_once("::") else {
            continue;
        };
        if !modules.contains(module) {
            continue;
        }
        let names = rest.trim().trim_start_matches('{').trim_end_matches('}');
        for name in names.split(',') {
            let name = name.trim();
            // `a::b::C` is exported as `C`; `C as D` as `D`.
            let name = name.rsplit(" as ").next().unwrap_or(name);
            let name = name.rsplit("::").next().unwrap_or(name).trim();
            if !name.is_empty() {
                exports.insert(name.to_owned(), module.to_owned());
            }
        }
    }
    exports
}

/// The top-level modules `code` (of the module at `path`) names, each with
/// its line.
fn uses_in(
    code: &str,
    path: &[String],
    exports: &BTreeMap<String, String>,
) -> Vec<(String, usize)> {
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let line_of = |at: usize| code[..at].matches('\n').count() + 1;
    let resolve = |name: &str| -> String {
        exports
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_owned())
    };
    let mut at = 0;
    while at < bytes.len() {
        let start = at;
        let word = ident_at(code, at);
        if word.is_empty() {
            at += code[at..].chars().next().map_or(1, char::len_utf8);
            continue;
        }
        at += word.len();
        // Only at the start of a path: not `x::crate` or `foo_crate`.
        let preceded = code[..start].trim_end().ends_with("::");
        if preceded || (word != "crate" && word != "super") {
            continue;
        }
        let mut depth = path.len();
        let mut cursor = start;
        let mut segments = Vec::new();
        // Walk `crate::` or a chain of `super::`.
        let mut head = word;
        loop {
            cursor += head.len();
            let rest = &code[cursor..];
            let trimmed = rest.trim_start();
            let Some(after) = trimmed.strip_prefix("::") else {
                break;
            };
            cursor += rest.len() - after.len();
            let after_trimmed = after.trim_start();
            cursor += after.len() - after_trimmed.len();
            if head == "super" {
                depth = depth.saturating_sub(1);
            } else {
                depth = 0;
            }
            let next = ident_at(code, cursor);
            if next == "super" && head == "super" {
                head = next;
                continue;
            }
            segments.push(next.to_owned());
            break;
        }
        // `super::x` within a module only names a top-level module when it
        // climbs to the crate's root.
        if depth != 0 || segments.is_empty() {
            continue;
        }
        if segments[0].is_empty() && code[cursor..].starts_with('{') {
            // `crate::{a, b::c}`: the first name of each item.
            let group = balanced(code, cursor);
            for item in split_top_level(&group[1..group.len() - 1]) {
                let name = ident_at(item.trim_start(), 0);
                if !name.is_empty() && name != "self" {
                    found.push((resolve(name), line_of(start)));
                }
            }
            at = cursor + group.len();
            continue;
        }
        if !segments[0].is_empty() {
            found.push((resolve(&segments[0]), line_of(start)));
        }
    }
    found
}

/// The identifier starting at byte `at` (empty if none).
fn ident_at(code: &str, at: usize) -> &str {
    let rest = &code[at..];
    let end = rest
        .char_indices()
        .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
        .map_or(rest.len(), |(i, _)| i);
    let word = &rest[..end];
    match word.chars().next() {
        Some(c) if c.is_ascii_digit() => "",
        _ => word,
    }
}

/// The balanced `{...}` starting at byte `at`.
fn balanced(code: &str, at: usize) -> &str {
    let mut depth = 0;
    for (i, c) in code[at..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return &code[at..at + i + 1];
                }
            }
            _ => {}
        }
    }
    &code[at..]
}

/// The items of a `use` group, split at its own commas.
fn split_top_level(group: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&group[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&group[start..]);
    items.into_iter().filter(|i| !i.trim().is_empty()).collect()
}

/// The source with comments, string and character literals blanked out
/// (newlines kept, so lines still count).
fn strip(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        let prev_ident = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if !prev_ident
            && (c == 'r' || (c == 'b' && next == Some('r')))
            && raw_string_at(&chars, i)
        {
            // r"..", r#".."#, br#".."#
            let mut j = i + if c == 'b' { 2 } else { 1 };
            let mut hashes = 0;
            while chars[j] == '#' {
                hashes += 1;
                j += 1;
            }
            j += 1;
            while j < chars.len() {
                if chars[j] == '"' && (0..hashes).all(|h| chars.get(j + 1 + h) == Some(&'#')) {
                    j += 1 + hashes;
                    break;
                }
                j += 1;
            }
            out.extend(chars[i..j.min(chars.len())].iter().map(|c| blank(*c)));
            i = j;
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\'' && (next == Some('\\') || chars.get(i + 2) == Some(&'\'')) {
            // A character literal; `'a` alone is a lifetime.
            let mut j = i + 1;
            if chars.get(j) == Some(&'\\') {
                j += 2;
            } else {
                j += 1;
            }
            while j < chars.len() && chars[j] != '\'' {
                j += 1;
            }
            for _ in i..=j.min(chars.len() - 1) {
                out.push(' ');
            }
            i = j + 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Whether a raw string literal starts at `i` (`r"`, `r#`..., `br"`...).
fn raw_string_at(chars: &[char], i: usize) -> bool {
    let mut j = i + if chars[i] == 'b' { 2 } else { 1 };
    while chars.get(j) == Some(&'#') {
        j += 1;
    }
    chars.get(j) == Some(&'"')
}

/// The code without its `#[cfg(test)]` items (blanked, lines kept).
fn skip_test_items(code: &str) -> String {
    let mut out = code.to_owned();
    let marker = "#[cfg(test)]";
    let mut from = 0;
    while let Some(found) = out[from..].find(marker) {
        let start = from + found;
        // The item: up to its `;`, or through its balanced `{...}`.
        let mut end = out.len();
        let mut depth = 0;
        for (i, c) in out[start + marker.len()..].char_indices() {
            let at = start + marker.len() + i;
            match c {
                ';' if depth == 0 => {
                    end = at + 1;
                    break;
                }
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let blanked: String = out[start..end]
            .chars()
            .map(|c| if c == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blanked);
        from = start + blanked.len();
    }
    out
}

/// Each cycle: the modules of one strongly connected component, as one
/// shortest loop through its first module.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut cycles = Vec::new();
    for component in components(graph) {
        let first = component.iter().next().cloned().unwrap_or_default();
        if component.len() > 1 {
            cycles.push(shortest_loop(graph, &first, &component));
        }
    }
    cycles
}

/// Strongly connected components (Tarjan), each as a set of modules.
fn components(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        on_stack: BTreeSet<&'g str>,
        next: usize,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'g>(s: &mut State<'g>, v: &'g str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let uses: Vec<&'g str> = s
            .graph
            .get(v)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for w in uses {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            s.found.push(component);
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

/// The shortest path from `start` back to itself within `component`.
fn shortest_loop(graph: &Graph, start: &str, component: &BTreeSet<String>) -> Vec<String> {
    let mut came_from: BTreeMap<String, String> = BTreeMap::new();
    let mut queue = VecDeque::from([start.to_owned()]);
    while let Some(v) = queue.pop_front() {
        for w in graph.get(&v).into_iter().flat_map(|m| m.keys()) {
            if !component.contains(w) {
                continue;
            }
            if w == start {
                let mut path = vec![start.to_owned()];
                let mut at = v.clone();
                while at != start {
                    path.push(at.clone());
                    at = came_from[&at].clone();
                }
                path.push(start.to_owned());
                path.reverse();
                return path;
            }
            if !came_from.contains_key(w) {
                came_from.insert(w.clone(), v.clone());
                queue.push_back(w.clone());
            }
        }
    }
    vec![start.to_owned()]
}

/// What a failure says: each cycle, and where each of its imports is.
fn report(graph: &Graph, cycles: &[Vec<String>]) -> String {
    let mut out = String::from(
        "import cycles between src/'s top-level modules (move the item both need below both, \
         or give the lower module what it needs as a parameter):\n",
    );
    for cycle in cycles {
        let _ = writeln!(out, "  {}", cycle.join(" -> "));
        for pair in cycle.windows(2) {
            let seen = &graph[&pair[0]][&pair[1]];
            let _ = writeln!(
                out,
                "    {} -> {}: {}:{}: {}",
                pair[0], pair[1], seen.file, seen.line, seen.text
            );
        }
    }
    out
}

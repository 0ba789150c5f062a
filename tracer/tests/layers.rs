//! The shape of `tracer/src`: its top-level modules are layers and every `use crate::...` or
//! `super::...` path points to a lower one; inside every folder, the sibling modules import each
//! other without a cycle. A new upward import fails here, naming the file and the path.
use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::Path,
};

/// From the bottom: kernel records and time, the pure model and its statistics, which sockets
/// to follow, where events come from, the engine, what people read, the services, the
/// subcommands, the command line.
const LAYERS: &[&[&str]] = &[
    &["time", "error"],
    &["model"],
    &["stats"],
    &["filter"],
    &["source"],
    &["engine"],
    &["view"],
    &["service"],
    &["commands"],
    &["cli"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// A source file's module path: `service/daemon/client.rs` → `[service, daemon, client]`,
/// `service/daemon/mod.rs` → `[service, daemon]`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let file = parts.pop().unwrap_or_default();
    let stem = file.trim_end_matches(".rs");
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_string());
    }
    parts
}

/// The code without comments (doc links name modules without importing them) or strings.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '/' if chars.peek() == Some(&'/') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            chars.next();
                        }
                        '"' => break,
                        _ => {}
                    }
                }
                out.push_str("\"\"");
            }
            _ => out.push(c),
        }
    }
    out
}

/// Every path a use tree starting at `text` names, as segments: `a::{b::c, d}` → `a::b::c`,
/// `a::d`. Stops at the end of the tree.
fn use_tree(text: &str) -> Vec<Vec<String>> {
    fn ident(s: &str) -> (&str, &str) {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        (&s[..end], &s[end..])
    }
    fn tree<'a>(s: &'a str, prefix: &[String], out: &mut Vec<Vec<String>>) -> &'a str {
        let s = s.trim_start();
        if let Some(rest) = s.strip_prefix('{') {
            let mut rest = rest;
            loop {
                rest = rest.trim_start();
                if let Some(r) = rest.strip_prefix('}') {
                    return r;
                }
                rest = tree(rest, prefix, out);
                rest = rest.trim_start();
                rest = rest.strip_prefix(',').unwrap_or(rest);
                if rest.is_empty() {
                    return rest;
                }
            }
        }
        let (name, rest) = ident(s);
        if name.is_empty() {
            if !prefix.is_empty() {
                out.push(prefix.to_vec());
            }
            return s.strip_prefix('*').unwrap_or(s);
        }
        let mut path = prefix.to_vec();
        if name != "self" {
            path.push(name.to_string());
        }
        match rest.strip_prefix("::") {
            Some(more) => tree(more, &path, out),
            None => {
                if !path.is_empty() {
                    out.push(path);
                }
                rest
            }
        }
    }
    let mut out = Vec::new();
    tree(text, &[], &mut out);
    out
}

/// The absolute module paths (from the crate root) a file at `module` names.
fn imports(module: &[String], code: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    for (at, _) in code.match_indices("crate::") {
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b'_') {
            continue;
        }
        found.extend(use_tree(&code[at + "crate::".len()..]));
    }
    for (at, _) in code.match_indices("super::") {
        if at > 0 && (bytes[at - 1].is_ascii_alphanumeric() || bytes[at - 1] == b':') {
            continue; // counted from the first `super::` of a `super::super::` chain
        }
        let mut rest = &code[at..];
        let mut base = module.to_vec();
        while let Some(r) = rest.strip_prefix("super::") {
            base.pop();
            rest = r;
        }
        for path in use_tree(rest) {
            found.push(base.iter().cloned().chain(path).collect());
        }
    }
    found
}

/// One source file: its path under `src`, its module path and the paths it imports.
struct File {
    name: String,
    module: Vec<String>,
    imports: Vec<Vec<String>>,
}

/// Every source file under `src` but main.rs (the binary names the library as `tracer::`,
/// from above every layer).
fn files(src: &Path) -> Vec<File> {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(src, &mut paths);
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|f| f != "main.rs"))
        .map(|p| {
            let rel = p.strip_prefix(src).unwrap();
            let module = module_path(rel);
            let code = code_only(&fs::read_to_string(&p).unwrap());
            let imports = imports(&module, &code);
            File {
                name: rel.display().to_string(),
                module,
                imports,
            }
        })
        .collect()
}

/// Upward imports between top-level modules, as `file: path (from → to)` lines.
fn upward(files: &[File]) -> Vec<String> {
    let mut bad = Vec::new();
    for File {
        name: file,
        module,
        imports: found,
    } in files
    {
        let Some(from) = module.first() else { continue };
        let Some(from_rank) = rank(from) else {
            bad.push(format!("{file}: module `{from}` is in no layer of LAYERS"));
            continue;
        };
        for path in found {
            let Some(to) = path.first() else { continue };
            if to == from
                || rank(to).is_none() && !files.iter().any(|f| f.module.first() == Some(to))
            {
                continue; // within the module, or not a module (a macro, an item of lib.rs)
            }
            match rank(to) {
                Some(r) if r < from_rank => {}
                _ => bad.push(format!(
                    "{file}: crate::{} ({from} imports {to}, which is not below it)",
                    path.join("::")
                )),
            }
        }
    }
    bad.sort();
    bad.dedup();
    bad
}

/// Cycles among the sibling modules of each folder (the top level included), as lists of
/// module paths.
fn cycles(files: &[File]) -> Vec<Vec<String>> {
    // Edges between siblings: the first segments where importer and imported part.
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| f.module.clone()).collect();
    for File {
        module, imports, ..
    } in files
    {
        for path in imports {
            let common = module.iter().zip(path).take_while(|(a, b)| a == b).count();
            if common >= module.len() || common >= path.len() {
                continue; // a parent or a child of the importer
            }
            let to: Vec<String> = path[..=common].to_vec();
            if !modules.contains(&to) {
                continue; // an item of the common parent, not a module
            }
            let from = module[..=common].join("::");
            edges.entry(from).or_default().insert(to.join("::"));
        }
    }
    // Tarjan's strongly connected components.
    struct Walk<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<String, usize>,
        low: BTreeMap<String, usize>,
        stack: Vec<String>,
        found: Vec<Vec<String>>,
    }
    fn visit(w: &mut Walk, v: &str) {
        let i = w.index.len();
        w.index.insert(v.to_string(), i);
        w.low.insert(v.to_string(), i);
        w.stack.push(v.to_string());
        for next in w.edges.get(v).into_iter().flatten() {
            if !w.index.contains_key(next) {
                visit(w, next);
                let l = w.low[next].min(w.low[v]);
                w.low.insert(v.to_string(), l);
            } else if w.stack.contains(next) {
                let l = w.index[next].min(w.low[v]);
                w.low.insert(v.to_string(), l);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            while let Some(top) = w.stack.pop() {
                let done = top == v;
                component.push(top);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut w = Walk {
        edges: &edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    let nodes: BTreeSet<String> = edges
        .iter()
        .flat_map(|(k, v)| std::iter::once(k.clone()).chain(v.iter().cloned()))
        .collect();
    for v in &nodes {
        if !w.index.contains_key(v) {
            visit(&mut w, v);
        }
    }
    w.found
}

fn src() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

#[test]
fn every_import_points_to_a_lower_layer() {
    let files = files(&src());
    assert!(files.len() > 50, "found only {} source files", files.len());
    let bad = upward(&files);
    assert!(
        bad.is_empty(),
        "imports that do not point down:\n{}",
        bad.join("\n")
    );
}

#[test]
fn no_folder_has_a_cycle_among_its_modules() {
    let found = cycles(&files(&src()));
    let text: Vec<String> = found.iter().map(|c| c.join(" <-> ")).collect();
    assert!(
        found.is_empty(),
        "modules that import each other in a ring:\n{}",
        text.join("\n")
    );
}

#[test]
fn every_top_level_module_has_a_layer() {
    let lib = fs::read_to_string(src().join("lib.rs")).unwrap();
    let declared: Vec<&str> = lib
        .lines()
        .filter_map(|l| l.strip_prefix("pub mod ")?.strip_suffix(';'))
        .collect();
    assert!(declared.len() >= 10, "{declared:?}");
    for module in declared {
        assert!(
            rank(module).is_some(),
            "lib.rs declares `{module}`, which no layer lists"
        );
    }
}

// The checker itself, on small made-up trees: an upward import and a ring are caught.

fn made_up(sources: &[(&str, &str)]) -> Vec<File> {
    sources
        .iter()
        .map(|(file, code)| {
            let module = module_path(Path::new(file));
            let imports = imports(&module, &code_only(code));
            File {
                name: file.to_string(),
                module,
                imports,
            }
        })
        .collect()
}

#[test]
fn use_trees_expand_to_every_path_they_name() {
    let paths = use_tree("{a::{b, c::D}, e, self} ;");
    assert_eq!(paths, vec![vec!["a", "b"], vec!["a", "c", "D"], vec!["e"]]);
    let module = vec!["x".to_string(), "y".to_string()];
    let code = code_only("use super::super::z::W; // crate::cli\nlet s = \"crate::cli\";");
    let found = imports(&module, &code);
    assert_eq!(found, vec![vec!["z".to_string(), "W".to_string()]]);
}

#[test]
fn the_checker_catches_an_upward_import_and_a_ring() {
    let tree = made_up(&[
        ("model/mod.rs", "use crate::view::line::endpoint;"),
        ("view/mod.rs", "use crate::model::Service;"),
        ("service/doctor/a.rs", "use super::b::X;"),
        ("service/doctor/b.rs", "use crate::service::doctor::a::Y;"),
    ]);
    let bad = upward(&tree);
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert!(
        bad[0].starts_with("model/mod.rs: crate::view::line::endpoint"),
        "{bad:?}"
    );
    let rings = cycles(&tree);
    assert!(
        rings.contains(&vec!["model".to_string(), "view".to_string()]),
        "{rings:?}"
    );
    assert!(
        rings.contains(&vec![
            "service::doctor::a".to_string(),
            "service::doctor::b".to_string()
        ]),
        "{rings:?}"
    );
}

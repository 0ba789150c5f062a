//! Every repository path and test name the docs mention exists, so the docs cannot send a reader
//! to a file or test that was renamed or never was. Read: README.md, BENCHMARKS.md, docs/*.md.
//! Checked (conventions in docs/development.md, "Names in the docs"):
//! - words in backticks or code blocks whose first folder is a top-level entry of the
//!   repository (`scripts/dev.sh`, `tests/tests/lost.rs`, `docs/usage.md`);
//! - `tests/tests/FILE.rs::NAME`: `fn NAME` is in that file (`::*`: the whole file);
//! - `LAYER::...::NAME`, LAYER one of the `tracer/src` layers: `fn NAME` or `mod NAME` is
//!   under tracer/src;
//! - markdown links to local files, relative to the file that holds them.
//!
//! Needs no root and no build of tracer.
use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
};

/// The top folders of tracer/src, from the bottom layer up (docs/development.md).
const LAYERS: [&str; 10] = [
    "time", "model", "stats", "filter", "source", "engine", "view", "service", "commands", "cli",
];

/// Placeholders the docs write in paths (`tests/tests/FILE.rs::NAME`): not real names.
const PLACEHOLDERS: [&str; 5] = ["FILE", "NAME", "PATH", "PID", "LAYER"];

/// Top-level entries that are never in a fresh clone: build output.
const NOT_CHECKED: [&str; 1] = ["target"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn docs(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md"), root.join("BENCHMARKS.md")];
    let mut more: Vec<PathBuf> = fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    more.sort();
    files.extend(more);
    files
}

/// Inline code spans outside code blocks, and the whole text of code blocks, line by line.
fn code_texts(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            out.push((i + 1, line.to_string()));
            continue;
        }
        for (n, span) in line.split('`').enumerate() {
            if n % 2 == 1 {
                out.push((i + 1, span.to_string()));
            }
        }
    }
    out
}

/// Markdown link targets `[text](target)`, outside code blocks.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((i + 1, after[..end].to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// A word as a doc writes it, without the punctuation around it.
fn trim(word: &str) -> &str {
    word.trim_matches(|c: char| {
        matches!(
            c,
            '"' | '\''
                | '`'
                | '('
                | ')'
                | '['
                | ']'
                | ','
                | ';'
                | ':'
                | '.'
                | '<'
                | '>'
                | '{'
                | '}'
        )
    })
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// True when `fn NAME` (followed by a non-identifier character) is in `text`.
fn defines(text: &str, name: &str) -> bool {
    declares(text, "fn", name)
}

/// True when `KEYWORD NAME` (followed by a non-identifier character) is in `text`.
fn declares(text: &str, keyword: &str, name: &str) -> bool {
    let needle = format!("{keyword} {name}");
    text.match_indices(&needle).any(|(at, _)| {
        text[at + needle.len()..]
            .chars()
            .next()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'))
    })
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else {
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

struct Checker {
    root: PathBuf,
    top: BTreeSet<String>,
    tracer_src: String,
    problems: Vec<String>,
    checked: usize,
}

impl Checker {
    fn new(root: PathBuf) -> Checker {
        let top = fs::read_dir(&root)
            .expect("repository root")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !NOT_CHECKED.contains(&n.as_str()))
            .collect();
        let mut files = Vec::new();
        rust_files(&root.join("tracer/src"), &mut files);
        let tracer_src = files
            .iter()
            .filter_map(|f| fs::read_to_string(f).ok())
            .collect::<Vec<_>>()
            .join("\n");
        Checker {
            root,
            top,
            tracer_src,
            problems: Vec::new(),
            checked: 0,
        }
    }

    fn problem(&mut self, at: &str, what: String) {
        self.problems.push(format!("{at}: {what}"));
    }

    /// One word of code: a repository path, a path with a test name, or a unit test's path.
    fn word(&mut self, at: &str, word: &str) {
        let word = trim(word);
        if word.is_empty() || word.contains("://") {
            return;
        }
        let (path, test) = match word.split_once("::") {
            Some((path, test)) => (path, Some(test)),
            None => (word, None),
        };
        if path.contains('/') {
            self.path(at, path, test);
        } else if let Some(test) = test
            && LAYERS.contains(&path)
        {
            self.unit_test(at, word, test);
        }
    }

    fn path(&mut self, at: &str, path: &str, test: Option<&str>) {
        let first = path.split('/').next().unwrap_or_default();
        if !self.top.contains(first) {
            return; // not a repository path: /proc/..., ~/.cache/..., time/ in a diagram
        }
        if path
            .split('/')
            .any(|part| PLACEHOLDERS.contains(&part.split('.').next().unwrap_or_default()))
        {
            return;
        }
        self.checked += 1;
        // A wildcard: the folder before it must exist.
        let literal = match path.find('*') {
            Some(star) => &path[..path[..star].rfind('/').map_or(0, |s| s + 1)],
            None => path,
        };
        let file = self.root.join(literal);
        if !file.exists() {
            self.problem(at, format!("`{path}` does not exist"));
            return;
        }
        if let Some(test) = test
            && test != "*"
        {
            let text = fs::read_to_string(&file).unwrap_or_default();
            if !is_identifier(test) {
                self.problem(at, format!("`{path}::{test}`: not a test name"));
            } else if !defines(&text, test) {
                self.problem(at, format!("`{path}::{test}`: no `fn {test}` in {path}"));
            }
        }
    }

    /// `model::tests::seed::NAME`: `fn NAME` or `mod NAME` is somewhere under tracer/src (its
    /// module may move within the layers); `*` or a path ending in `tests` names a whole module.
    fn unit_test(&mut self, at: &str, word: &str, rest: &str) {
        let name = rest.rsplit("::").next().unwrap_or_default();
        if name == "*" || name == "tests" || !is_identifier(name) {
            return;
        }
        self.checked += 1;
        if !(defines(&self.tracer_src, name) || declares(&self.tracer_src, "mod", name)) {
            self.problem(
                at,
                format!("`{word}`: no `fn {name}` or `mod {name}` under tracer/src"),
            );
        }
    }

    fn link(&mut self, at: &str, doc: &Path, target: &str) {
        let target = target.split_whitespace().next().unwrap_or_default();
        if target.is_empty()
            || target.starts_with('#')
            || target.contains("://")
            || target.starts_with("mailto:")
        {
            return;
        }
        let file = target.split('#').next().unwrap_or_default();
        self.checked += 1;
        let dir = doc.parent().unwrap_or(&self.root);
        if !dir.join(file).exists() {
            self.problem(at, format!("link to {target}: no such file"));
        }
    }
}

#[test]
fn every_path_and_test_name_in_the_docs_exists() {
    let root = root();
    let mut checker = Checker::new(root.clone());
    for doc in docs(&root) {
        let name = doc
            .strip_prefix(&root)
            .unwrap_or(&doc)
            .display()
            .to_string();
        let text = fs::read_to_string(&doc).unwrap_or_else(|e| panic!("{name}: {e}"));
        for (line, code) in code_texts(&text) {
            for word in code.split_whitespace() {
                checker.word(&format!("{name}:{line}"), word);
            }
        }
        for (line, target) in links(&text) {
            checker.link(&format!("{name}:{line}"), &doc, &target);
        }
    }
    assert!(
        checker.problems.is_empty(),
        "the docs name what does not exist:\n{}",
        checker.problems.join("\n")
    );
    assert!(
        checker.checked > 50,
        "only {} names checked",
        checker.checked
    );
}

#[test]
fn the_checker_finds_what_is_missing() {
    let mut checker = Checker::new(root());
    checker.word("x", "`tests/filters.rs`");
    checker.word("x", "tests/tests/lost.rs::no_such_test");
    checker.word("x", "tracer/src/output/table.rs");
    checker.word("x", "model::tests::no_such_unit_test");
    checker.link("x", &root().join("README.md"), "docs/no-such-page.md#a");
    assert_eq!(checker.problems.len(), 5, "{:#?}", checker.problems);

    let mut checker = Checker::new(root());
    checker.word(
        "x",
        "`tests/tests/lost.rs::a_tiny_ring_reports_every_lost_event`",
    );
    checker.word("x", "scripts/dev.sh");
    checker.word("x", "tests/tests/*.rs");
    checker.word("x", "tests/tests/FILE.rs::NAME");
    checker.word("x", "tracer/src/model/");
    checker.word("x", "/proc/PID/fd");
    checker.word("x", "model::tests::seed::*");
    checker.link("x", &root().join("docs/usage.md"), "../deploy/README.md");
    assert!(checker.problems.is_empty(), "{:#?}", checker.problems);
}

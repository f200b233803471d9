//! Holds the crate to its layers (issue 15): every `crate::<module>` a source file names outside
//! its `#[cfg(test)]` code must be in the same layer or a lower one, and no modules may name
//! each other in a circle, within a layer or across. Reads `src/**/*.rs` as text; a new
//! top-level module must be placed in [`LAYERS`] before the test passes.
//!
//! The layers, lowest first:
//!
//! | layer | modules | what they are |
//! |---|---|---|
//! | values | `exit_status`, `error_chain`, `secret`, `byte_size`, `input_names`, `progress`, `platform`, `oci`, `tag_mutability`, `tag_rules`, `timings`, `dockerfile`, `context`, `build_digest` | pure values and the progress sink's trait; no outside system |
//! | outside systems | `github`, `ecr`, `engine`, `emulation`, `image_export`, `registry`, `handoff` | one outside system each (the runner's log and files, ECR, the Engine, the kernel, the export stream, the registry, result files between jobs); each takes small typed settings and a [`crate::progress::Progress`] sink |
//! | judges | `gate` | ECR's scans judged against a policy; returns what it judged |
//! | request | `inputs`, `plan` | every input read and checked once into a `Request` (which builds the settings of the rooms below), and the pure plan made of it |
//! | report | `report`, `github_api` | what a run tells: summary, outputs, commit status and release notes |
//! | run | `run` | wires the rooms for each mode |
//! | root | `lib`, `main` | declares and starts it |
//!
//! `handoff` sits with the outside systems (not with `inputs`) because `inputs` checks result
//! files by its rules; `github_api` sits with `report` because it renders a run's outcome to
//! the GitHub API.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, lowest first: a module may name modules of its own layer (without a circle) and
/// of the layers before it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "values",
        &[
            "exit_status",
            "error_chain",
            "secret",
            "byte_size",
            "input_names",
            "progress",
            "platform",
            "oci",
            "tag_mutability",
            "tag_rules",
            "timings",
            "dockerfile",
            "context",
            "build_digest",
        ],
    ),
    (
        "outside systems",
        &[
            "github",
            "ecr",
            "engine",
            "emulation",
            "image_export",
            "registry",
            "handoff",
        ],
    ),
    ("judges", &["gate"]),
    ("request", &["inputs", "plan"]),
    ("report", &["report", "github_api"]),
    ("run", &["run"]),
    ("root", &["lib", "main"]),
];

/// One `crate::<module>` reference: which file names which module where.
#[derive(Debug, Clone)]
struct Reference {
    from: String,
    to: String,
    file: PathBuf,
    line: usize,
}

/// Whether the character before `at`, ignoring a byte string's `b`, belongs to a name (so
/// that an `r` there is no raw string's).
fn code_char_before(chars: &[char], at: usize) -> bool {
    let name_char = |i: usize| {
        chars
            .get(i)
            .is_some_and(|p| p.is_alphanumeric() || *p == '_')
    };
    match at.checked_sub(1) {
        None => false,
        Some(b) if chars[b] == 'b' => b.checked_sub(1).is_some_and(name_char),
        Some(b) => name_char(b),
    }
}

/// The code of a Rust file with comments, strings and character literals blanked out (lines
/// kept, so that offsets still give line numbers).
fn code_only(text: &str) -> Vec<char> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for c in &mut out[from..to.min(chars.len())] {
            if *c != '\n' {
                *c = ' ';
            }
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            let end = chars[i..]
                .iter()
                .position(|c| *c == '\n')
                .map_or(chars.len(), |p| i + p);
            blank(&mut out, i, end);
            i = end;
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            let mut j = i;
            while j < chars.len() {
                if chars[j] == '/' && chars.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if chars[j] == '*' && chars.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if c == 'r'
            && (next == Some('"') || next == Some('#'))
            && !code_char_before(&chars, i)
        {
            // A raw string: r"..." or r#"..."#.
            let hashes = chars[i + 1..].iter().take_while(|c| **c == '#').count();
            if chars.get(i + 1 + hashes) != Some(&'"') {
                i += 1;
                continue;
            }
            let closing: Vec<char> = std::iter::once('"')
                .chain(std::iter::repeat_n('#', hashes))
                .collect();
            let start = i + 2 + hashes;
            let end = (start..chars.len())
                .find(|j| chars[*j..].starts_with(&closing))
                .map_or(chars.len(), |j| j + closing.len());
            blank(&mut out, i, end);
            i = end;
        } else if c == '"' {
            let mut j = i + 1;
            while j < chars.len() && chars[j] != '"' {
                j += if chars[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i, j + 1);
            i = j + 1;
        } else if c == '\'' {
            // A character literal, or a lifetime (left alone).
            if next == Some('\\') {
                let end = (i + 2..chars.len())
                    .find(|j| chars[*j] == '\'')
                    .map_or(chars.len(), |j| j + 1);
                blank(&mut out, i, end);
                i = end;
            } else if chars.get(i + 2) == Some(&'\'') {
                blank(&mut out, i, i + 3);
                i += 3;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// Blanks every item under `#[cfg(test)]`; answers the names of test-only module files it
/// declares (`#[cfg(test)] mod proptests;`).
fn without_tests(code: &mut [char]) -> Vec<String> {
    let marker: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut test_files = Vec::new();
    let mut i = 0;
    while i + marker.len() <= code.len() {
        if !code[i..].starts_with(&marker) {
            i += 1;
            continue;
        }
        // The item runs to its first `;` outside braces, or to the `}` closing its body.
        let start = i;
        let mut j = i + marker.len();
        let mut depth = 0usize;
        while j < code.len() {
            match code[j] {
                '{' => depth += 1,
                '}' if depth <= 1 => break,
                '}' => depth -= 1,
                ';' if depth == 0 => break,
                _ => {}
            }
            j += 1;
        }
        let item: String = code[start + marker.len()..j].iter().collect();
        let words: Vec<&str> = item.split_whitespace().collect();
        if let [.., "mod", name] = words.as_slice() {
            test_files.push((*name).to_owned());
        }
        let end = (j + 1).min(code.len());
        for c in &mut code[start..end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = j + 1;
    }
    test_files
}

/// Every `crate::<module>` in `code`, with its line; `crate::{a, b::c}` names `a` and `b`.
fn crate_references(code: &[char]) -> Vec<(String, usize)> {
    let prefix: Vec<char> = "crate::".chars().collect();
    let line_of = |at: usize| code[..at].iter().filter(|c| **c == '\n').count() + 1;
    let ident = |from: usize| -> String {
        code[from..]
            .iter()
            .take_while(|c| c.is_alphanumeric() || **c == '_')
            .collect()
    };
    let mut found = Vec::new();
    let mut i = 0;
    while i + prefix.len() <= code.len() {
        let starts_word = i == 0 || !(code[i - 1].is_alphanumeric() || code[i - 1] == '_');
        if !(starts_word && code[i..].starts_with(&prefix)) {
            i += 1;
            continue;
        }
        let mut j = i + prefix.len();
        while code.get(j).is_some_and(|c| c.is_whitespace()) {
            j += 1;
        }
        if code.get(j) == Some(&'{') {
            // The group's items at its top level.
            let mut depth = 0usize;
            let mut expect_item = true;
            while j < code.len() {
                match code[j] {
                    '{' => {
                        depth += 1;
                        expect_item = depth == 1;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_item = true,
                    c if expect_item && depth == 1 && (c.is_alphabetic() || c == '_') => {
                        let name = ident(j);
                        j += name.len();
                        found.push((name, line_of(j)));
                        expect_item = false;
                        continue;
                    }
                    _ => {}
                }
                j += 1;
            }
        } else {
            let name = ident(j);
            if !name.is_empty() {
                found.push((name, line_of(i)));
            }
        }
        i = j.max(i + 1);
    }
    found
}

fn rust_files(folder: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).expect("src is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

/// The top-level module a file under `src` belongs to.
fn module_of(src: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(src).expect("under src");
    let first = relative
        .components()
        .next()
        .expect("a name")
        .as_os_str()
        .to_string_lossy();
    first.strip_suffix(".rs").unwrap_or(&first).to_owned()
}

/// Every reference of non-test code under `src` from one top-level module to another.
fn references(src: &Path) -> Vec<Reference> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.sort();
    let mut test_only: BTreeSet<PathBuf> = BTreeSet::new();
    let mut read: Vec<(PathBuf, Vec<char>)> = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("source is readable");
        let mut code = code_only(&text);
        let folder = if file
            .file_name()
            .is_some_and(|n| n == "mod.rs" || n == "lib.rs")
        {
            file.parent().expect("parent").to_path_buf()
        } else {
            file.with_extension("")
        };
        for name in without_tests(&mut code) {
            test_only.insert(folder.join(format!("{name}.rs")));
            test_only.insert(folder.join(&name).join("mod.rs"));
        }
        read.push((file, code));
    }
    let mut found = Vec::new();
    for (file, code) in read {
        if test_only.contains(&file) {
            continue;
        }
        let from = module_of(src, &file);
        for (to, line) in crate_references(&code) {
            if to != from {
                found.push(Reference {
                    from: from.clone(),
                    to,
                    file: file.clone(),
                    line,
                });
            }
        }
    }
    found
}

/// Each module's layer, by its index in [`LAYERS`].
fn layer_of() -> BTreeMap<&'static str, usize> {
    LAYERS
        .iter()
        .enumerate()
        .flat_map(|(index, (_, modules))| modules.iter().map(move |m| (*m, index)))
        .collect()
}

/// Every broken rule among `references`, one line each.
fn violations(src: &Path, references: &[Reference]) -> Vec<String> {
    let layers = layer_of();
    let shown = |r: &Reference| {
        format!(
            "{}:{}",
            r.file
                .strip_prefix(src.parent().unwrap_or(src))
                .unwrap_or(&r.file)
                .display(),
            r.line
        )
    };
    let mut problems = Vec::new();
    for r in references {
        match (layers.get(r.from.as_str()), layers.get(r.to.as_str())) {
            (None, _) => problems.push(format!(
                "{}: module `{}` is in no layer: place it in `LAYERS` (src/layering.rs)",
                shown(r),
                r.from
            )),
            (_, None) => problems.push(format!(
                "{}: `crate::{}` is in no layer: place it in `LAYERS` (src/layering.rs)",
                shown(r),
                r.to
            )),
            (Some(from), Some(to)) if to > from => problems.push(format!(
                "{}: `{}` ({}) imports `{}` ({}), a higher layer",
                shown(r),
                r.from,
                LAYERS[*from].0,
                r.to,
                LAYERS[*to].0
            )),
            _ => {}
        }
    }
    // Circles: a path back to where it started, each step with the place that makes it.
    let mut edges: BTreeMap<&str, BTreeMap<&str, &Reference>> = BTreeMap::new();
    for r in references {
        edges
            .entry(r.from.as_str())
            .or_default()
            .entry(r.to.as_str())
            .or_insert(r);
    }
    let mut reported: BTreeSet<Vec<&str>> = BTreeSet::new();
    for start in edges.keys() {
        let mut stack: Vec<(&str, Vec<&str>)> = vec![(start, vec![start])];
        let mut seen: BTreeSet<&str> = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in edges.get(at).into_iter().flat_map(BTreeMap::keys) {
                if next == start {
                    let mut circle = path.clone();
                    let lowest = circle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, m)| **m)
                        .map_or(0, |(i, _)| i);
                    circle.rotate_left(lowest);
                    if reported.insert(circle.clone()) {
                        let steps: Vec<String> = circle
                            .iter()
                            .zip(circle.iter().cycle().skip(1))
                            .map(|(a, b)| format!("`{a}` -> `{b}` ({})", shown(edges[a][b])))
                            .collect();
                        problems.push(format!("a circle: {}", steps.join(", ")));
                    }
                } else if seen.insert(next) {
                    let mut longer = path.clone();
                    longer.push(next);
                    stack.push((next, longer));
                }
            }
        }
    }
    problems
}

#[test]
fn no_module_imports_a_higher_layer_or_forms_a_circle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let references = references(&src);
    assert!(
        references
            .iter()
            .any(|r| r.from == "run" && r.to == "engine"),
        "the reader finds the run's imports"
    );
    let problems = violations(&src, &references);
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_reader_skips_comments_strings_and_test_code() {
    let text = r##"
use crate::{engine::{self, Engine}, platform::Platform};
// crate::comment
let s = "crate::string"; let r = r#"crate::raw"#; let c = '{';
fn f<'a>(x: &'a crate::ecr::Ecr) {}
#[cfg(test)]
mod tests { use crate::run; fn g() { let _ = "}"; } }
#[cfg(test)]
mod proptests;
let y = crate::report::human;
"##;
    let mut code = code_only(text);
    assert_eq!(without_tests(&mut code), vec!["proptests".to_owned()]);
    let found: Vec<(String, usize)> = crate_references(&code);
    assert_eq!(
        found,
        vec![
            ("engine".to_owned(), 2),
            ("platform".to_owned(), 2),
            ("ecr".to_owned(), 5),
            ("report".to_owned(), 10),
        ]
    );
}

#[test]
fn an_upward_import_and_a_circle_are_named_with_their_place() {
    let src = Path::new("/x/src");
    let reference = |from: &str, to: &str, line| Reference {
        from: from.to_owned(),
        to: to.to_owned(),
        file: src.join(format!("{from}.rs")),
        line,
    };
    let problems = violations(
        src,
        &[
            reference("engine", "inputs", 7),
            reference("platform", "secret", 3),
            reference("secret", "platform", 4),
        ],
    );
    assert_eq!(
        problems,
        vec![
            "src/engine.rs:7: `engine` (outside systems) imports `inputs` (request), a higher layer".to_owned(),
            "a circle: `platform` -> `secret` (src/platform.rs:3), `secret` -> `platform` (src/secret.rs:4)".to_owned(),
        ]
    );
}

//! A Dockerfile read into its stages and the instructions that decide what a build takes from
//! outside: parser directives, continuation lines and comments, heredoc bodies skipped.
//!
//! What it takes from outside the build context: the images it builds on (`FROM`,
//! `COPY --from=<image>`, `RUN --mount=from=<image>`, a `# syntax=` frontend), for the stages a
//! build of a platform (and `target`) really runs, with the global `ARG`s substituted as
//! BuildKit substitutes them (`images`); `skip-unchanged` resolves these to digests.
//!
//! It also tells which paths of the build context the Dockerfile reads (`COPY`/`ADD` sources,
//! `RUN --mount` binds), the paths BuildKit's frontend asks the session for, so that
//! `skip-unchanged` hashes the context as sent (`context_paths`).
//!
//! Pure: reads text, knows no server. Where it cannot tell what BuildKit would pull (a
//! `--from` that uses a stage's own `ARG`, a substitution form it does not know, `ADD` of a URL
//! without `--checksum`, whose content can change while the Dockerfile does not), it says so
//! and the caller builds. Syntax: <https://docs.docker.com/reference/dockerfile/>.

mod context_paths;
mod images;
mod platform_args;
mod words;

use std::collections::BTreeSet;

pub use images::ImageUse;
pub use platform_args::platform_args;
pub use words::expand;
use words::{heredoc_words, json_array, split_words, unquote};

/// Why the images of a Dockerfile cannot be told for certain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unresolvable(pub String);

/// A global `ARG`: its name and its default as written.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ArgDeclaration {
    name: String,
    default: Option<String>,
}

/// One `FROM` and what its stage takes from other stages or images.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Stage {
    /// `AS <name>`, lowercased (BuildKit compares stage names without case).
    name: Option<String>,
    /// The base as written.
    base: String,
    /// `--platform=` as written.
    platform: Option<String>,
    /// `COPY --from=` and `RUN --mount=...,from=` values as written.
    sources: Vec<String>,
    /// `ADD` sources that are URLs or git repositories without `--checksum`.
    unpinned: Vec<String>,
}

/// The parts of a Dockerfile that decide which images a build pulls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dockerfile {
    /// The `# syntax=` frontend image, when given.
    syntax: Option<String>,
    global_args: Vec<ArgDeclaration>,
    stages: Vec<Stage>,
    /// The context paths `COPY`, `ADD` and `RUN --mount` binds read, cleaned (every stage's).
    context_paths: BTreeSet<String>,
    /// Why the paths read cannot be told, for the first instruction that hides them.
    context_unknown: Option<String>,
}

impl Dockerfile {
    /// Reads the instructions that matter here; every other instruction is skipped, heredoc
    /// bodies included.
    pub fn parse(text: &str) -> Result<Dockerfile, Unresolvable> {
        let mut dockerfile = Dockerfile::default();
        let lines: Vec<&str> = text.lines().collect();
        let mut escape = '\\';
        let mut index = 0;
        // Parser directives: `# key=value` lines at the very top.
        while index < lines.len() {
            let Some(directive) = lines[index].trim().strip_prefix('#') else {
                break;
            };
            let Some((key, value)) = directive.split_once('=') else {
                break;
            };
            let key = key.trim().to_ascii_lowercase();
            if key.contains(char::is_whitespace) {
                break;
            }
            match key.as_str() {
                "syntax" => dockerfile.syntax = Some(value.trim().to_owned()),
                "escape" => escape = value.trim().chars().next().unwrap_or('\\'),
                _ => {}
            }
            index += 1;
        }
        while index < lines.len() {
            // One instruction: continuation lines joined, comment lines inside dropped.
            let start = index + 1;
            let mut instruction = String::new();
            let mut continuing = false;
            loop {
                let line = lines[index];
                index += 1;
                let blank_or_comment = line.trim().is_empty() || line.trim_start().starts_with('#');
                if blank_or_comment {
                    // A comment or blank line is skipped, inside a continuation too.
                    if continuing && index < lines.len() {
                        continue;
                    }
                    break;
                }
                let trimmed = line.trim_end();
                if let Some(continued) = trimmed.strip_suffix(escape) {
                    instruction.push_str(continued);
                    instruction.push(' ');
                    continuing = true;
                    if index >= lines.len() {
                        break;
                    }
                } else {
                    instruction.push_str(trimmed);
                    break;
                }
            }
            let instruction = instruction.trim();
            if instruction.is_empty() || instruction.starts_with('#') {
                continue;
            }
            let (keyword, rest) = instruction
                .split_once(char::is_whitespace)
                .unwrap_or((instruction, ""));
            let keyword = keyword.to_ascii_uppercase();
            let rest = rest.trim();
            // Heredoc bodies (`RUN <<EOF`) are not instructions: skip them.
            if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
                for (word, strip_tabs) in heredoc_words(rest) {
                    while index < lines.len() {
                        let line = lines[index];
                        index += 1;
                        let line = if strip_tabs {
                            line.trim_start_matches('\t')
                        } else {
                            line
                        };
                        if line == word {
                            break;
                        }
                    }
                }
            }
            dockerfile.instruction(&keyword, rest, start)?;
        }
        if dockerfile.stages.is_empty() {
            return Err(Unresolvable("the Dockerfile has no `FROM`".to_owned()));
        }
        Ok(dockerfile)
    }

    /// The stage names (`FROM <image> AS <name>`), lowercased, in order.
    #[must_use]
    pub fn stage_names(&self) -> Vec<&str> {
        self.stages
            .iter()
            .filter_map(|s| s.name.as_deref())
            .collect()
    }

    /// Whether `target` names a stage (without case, as BuildKit compares them).
    #[must_use]
    pub fn has_stage(&self, target: &str) -> bool {
        let target = target.to_ascii_lowercase();
        self.stages
            .iter()
            .any(|s| s.name.as_deref() == Some(&*target))
    }

    fn instruction(&mut self, keyword: &str, rest: &str, line: usize) -> Result<(), Unresolvable> {
        let words = split_words(rest);
        match keyword {
            "ARG" if self.stages.is_empty() => {
                for word in words {
                    let (name, default) = match word.split_once('=') {
                        Some((name, value)) => (name.to_owned(), Some(unquote(value))),
                        None => (word.clone(), None),
                    };
                    self.global_args.push(ArgDeclaration { name, default });
                }
            }
            "FROM" => {
                let mut stage = Stage::default();
                let mut positional = Vec::new();
                for word in words {
                    if let Some(platform) = word.strip_prefix("--platform=") {
                        stage.platform = Some(unquote(platform));
                    } else if !word.starts_with("--") {
                        positional.push(word);
                    }
                }
                match positional.as_slice() {
                    [base] => stage.base = unquote(base),
                    [base, as_, name] if as_.eq_ignore_ascii_case("as") => {
                        stage.base = unquote(base);
                        stage.name = Some(name.to_ascii_lowercase());
                    }
                    _ => {
                        return Err(Unresolvable(format!(
                            "line {line}: `FROM {rest}` is not `FROM [--platform=<platform>] <image> [AS <name>]`"
                        )))
                    }
                }
                self.stages.push(stage);
            }
            "COPY" | "ADD" => {
                if self.stages.is_empty() {
                    return Ok(());
                }
                let mut checksum = false;
                let mut from = Vec::new();
                let mut arguments = Vec::new();
                for word in &words {
                    if let Some(source) = word.strip_prefix("--from=") {
                        from.push(unquote(source));
                    } else if word.starts_with("--checksum=") {
                        checksum = true;
                    } else if !word.starts_with("--") {
                        arguments.push(word.clone());
                    }
                }
                let sources = json_array(&arguments.join(" "))
                    .unwrap_or_else(|| arguments.iter().map(|a| unquote(a)).collect());
                let count = sources.len().saturating_sub(1);
                let mut unpinned = Vec::new();
                for source in sources.into_iter().take(count) {
                    let url = source.starts_with("http://") || source.starts_with("https://");
                    let lower = source.to_ascii_lowercase();
                    let git = lower.starts_with("git@")
                        || lower.starts_with("git://")
                        || lower.strip_suffix(".git").is_some()
                        || lower.contains(".git#");
                    if keyword == "ADD" && (url || git) {
                        if git || !checksum {
                            unpinned.push(source);
                        }
                    } else if from.is_empty() && !source.starts_with("<<") {
                        self.reads_context(&source, &format!("line {line}: `{keyword} {rest}`"));
                    }
                }
                if let Some(stage) = self.stages.last_mut() {
                    stage.sources.extend(from);
                    stage.unpinned.extend(unpinned);
                }
            }
            "RUN" => {
                let Some(stage) = self.stages.last_mut() else {
                    return Ok(());
                };
                let mut binds = Vec::new();
                for word in &words {
                    let Some(mount) = word.strip_prefix("--mount=") else {
                        continue;
                    };
                    // A mount is a bind by default; a bind without `from=` reads the context
                    // (all of it when no `source=` narrows it).
                    let mut bind = true;
                    let mut from_elsewhere = false;
                    let mut source = String::new();
                    for attribute in unquote(mount).split(',') {
                        let attribute = attribute.trim();
                        if let Some(from) = attribute.strip_prefix("from=") {
                            stage.sources.push(from.to_owned());
                            from_elsewhere = true;
                        } else if let Some(kind) = attribute.strip_prefix("type=") {
                            bind = kind == "bind";
                        } else if let Some(path) = attribute
                            .strip_prefix("source=")
                            .or_else(|| attribute.strip_prefix("src="))
                        {
                            path.clone_into(&mut source);
                        }
                    }
                    if bind && !from_elsewhere {
                        binds.push(source);
                    }
                }
                for source in binds {
                    self.reads_context(
                        &source,
                        &format!("line {line}: `RUN --mount` of the context"),
                    );
                }
            }
            _ => {}
        }
        Ok(())
    }
}

//! What a Dockerfile takes from outside the build context: the images it builds on (`FROM`,
//! `COPY --from=<image>`, `RUN --mount=from=<image>`, a `# syntax=` frontend), for the stages a
//! build of a platform (and `target`) really runs, with the global `ARG`s substituted as
//! BuildKit substitutes them. `skip-unchanged` resolves these to digests.
//!
//! It also tells which paths of the build context the Dockerfile reads (`COPY`/`ADD` sources,
//! `RUN --mount` binds), the paths BuildKit's frontend asks the session for, so that
//! `skip-unchanged` hashes the context as sent.
//!
//! Pure: reads text, knows no server. Where it cannot tell what BuildKit would pull (a
//! `--from` that uses a stage's own `ARG`, a substitution form it does not know, `ADD` of a URL
//! without `--checksum`, whose content can change while the Dockerfile does not), it says so
//! and the caller builds. Syntax: <https://docs.docker.com/reference/dockerfile/>.

use std::collections::{BTreeMap, BTreeSet};

use crate::platform::Platform;

/// Why the images of a Dockerfile cannot be told for certain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unresolvable(pub String);

/// One image a build pulls, for the platform it is pulled for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageUse {
    /// The reference, variables substituted, as written otherwise.
    pub reference: String,
    /// The platform BuildKit resolves it for.
    pub platform: Platform,
}

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

/// BuildKit's automatic platform arguments for a build of `platform` on `build_platform`.
#[must_use]
pub fn platform_args(platform: &Platform, build_platform: &Platform) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("BUILDPLATFORM".to_owned(), build_platform.to_string()),
        ("BUILDOS".to_owned(), build_platform.os.clone()),
        ("BUILDARCH".to_owned(), build_platform.architecture.clone()),
        (
            "BUILDVARIANT".to_owned(),
            build_platform.variant.clone().unwrap_or_default(),
        ),
        ("TARGETPLATFORM".to_owned(), platform.to_string()),
        ("TARGETOS".to_owned(), platform.os.clone()),
        ("TARGETARCH".to_owned(), platform.architecture.clone()),
        (
            "TARGETVARIANT".to_owned(),
            platform.variant.clone().unwrap_or_default(),
        ),
    ])
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

    /// Notes that the build reads `source` of the context (as written in `how`).
    fn reads_context(&mut self, source: &str, how: &str) {
        if source.contains('$') {
            self.context_unknown
                .get_or_insert_with(|| format!("{how} names a path through a variable"));
        } else if crate::context::clean(source).is_empty() {
            self.context_unknown
                .get_or_insert_with(|| format!("{how} reads the whole context"));
        } else {
            self.context_paths
                .insert(format!("/{}", crate::context::clean(source)));
        }
    }

    /// The paths of the build context the build reads, as BuildKit's Dockerfile frontend asks
    /// the session for them (its `followpaths`: each `COPY`/`ADD` source and `RUN --mount`
    /// bind, of every stage, which is never fewer than the stages a target runs). `Err` when
    /// that cannot be told from the Dockerfile alone: a path through a variable (`COPY
    /// $SRC .`), the whole context (`COPY . .`, a bind without `source=`), or a `# syntax=`
    /// frontend, which may ask for anything; then the caller takes the whole context.
    /// Not seen: `ONBUILD` triggers of a base image, which BuildKit runs as part of this build.
    pub fn context_paths(&self) -> Result<Vec<String>, Unresolvable> {
        if let Some(syntax) = &self.syntax {
            return Err(Unresolvable(format!(
                "the `# syntax={syntax}` frontend chooses what it reads"
            )));
        }
        if let Some(why) = &self.context_unknown {
            return Err(Unresolvable(why.clone()));
        }
        Ok(self.context_paths.iter().cloned().collect())
    }

    /// The images a build of `platform` (on an Engine of `build_platform`) pulls, for the
    /// stages it runs up to `target` (the last stage by default), with `build_args` (the
    /// user's, and the platform arguments) given to the global `ARG`s.
    pub fn images(
        &self,
        target: Option<&str>,
        build_args: &BTreeMap<String, String>,
        platform: &Platform,
        build_platform: &Platform,
    ) -> Result<Vec<ImageUse>, Unresolvable> {
        let mut env = platform_args(platform, build_platform);
        let mut given = env.clone();
        given.extend(build_args.iter().map(|(k, v)| (k.clone(), v.clone())));
        for arg in &self.global_args {
            let value = match (given.get(&arg.name), &arg.default) {
                (Some(value), _) => Some(value.clone()),
                (None, Some(default)) => Some(expand(default, &env)?),
                (None, None) => None,
            };
            match value {
                Some(value) => env.insert(arg.name.clone(), value),
                None => env.remove(&arg.name),
            };
        }
        let target_index = match target {
            None => self.stages.len() - 1,
            Some(target) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&*target.to_ascii_lowercase()))
                .ok_or_else(|| Unresolvable(format!("the Dockerfile has no stage `{target}`")))?,
        };
        let mut images = BTreeSet::new();
        if let Some(syntax) = &self.syntax {
            images.insert(ImageUse {
                reference: syntax.clone(),
                platform: build_platform.clone(),
            });
        }
        let mut visited = BTreeSet::new();
        let mut pending = vec![target_index];
        while let Some(index) = pending.pop() {
            if !visited.insert(index) {
                continue;
            }
            let stage = &self.stages[index];
            let stage_platform = match &stage.platform {
                None => platform.clone(),
                Some(raw) => {
                    let expanded = expand(raw, &env)?;
                    expanded.parse::<Platform>().map_err(|e| {
                        Unresolvable(format!("`FROM --platform={raw}` gives `{expanded}`: {e}"))
                    })?
                }
            };
            if let Some(url) = stage.unpinned.first() {
                return Err(Unresolvable(format!(
                    "`ADD {url}` takes content that can change while the Dockerfile does not (pin it with `--checksum=`)"
                )));
            }
            let base = expand(&stage.base, &env)?;
            let earlier = self.stages[..index]
                .iter()
                .position(|s| s.name.as_deref() == Some(&*base.to_ascii_lowercase()));
            match earlier {
                Some(stage_index) => pending.push(stage_index),
                None if base.eq_ignore_ascii_case("scratch") => {}
                None => {
                    images.insert(ImageUse {
                        reference: base,
                        platform: stage_platform.clone(),
                    });
                }
            }
            for source in &stage.sources {
                if source.contains('$') {
                    return Err(Unresolvable(format!(
                        "`--from={source}` depends on a stage's own `ARG`"
                    )));
                }
                let by_name = self
                    .stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(&*source.to_ascii_lowercase()));
                let by_index = source
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.stages.len());
                match by_name.or(by_index) {
                    Some(stage_index) => pending.push(stage_index),
                    None => {
                        images.insert(ImageUse {
                            reference: source.clone(),
                            platform: stage_platform.clone(),
                        });
                    }
                }
            }
        }
        Ok(images.into_iter().collect())
    }
}

/// The words of heredocs an instruction opens (`<<EOF`, `<<-EOF`, `<<"EOF"`), in order, and
/// whether leading tabs are stripped before comparing (`<<-`).
fn heredoc_words(rest: &str) -> Vec<(String, bool)> {
    let mut words = Vec::new();
    let mut remaining = rest;
    while let Some(position) = remaining.find("<<") {
        let mut after = &remaining[position + 2..];
        let strip_tabs = after.starts_with('-');
        if strip_tabs {
            after = &after[1..];
        }
        let quote = after.chars().next().filter(|c| *c == '"' || *c == '\'');
        if let Some(q) = quote {
            after = &after[1..];
            let end = after.find(q).unwrap_or(after.len());
            let word = &after[..end];
            if !word.is_empty() {
                words.push((word.to_owned(), strip_tabs));
            }
            remaining = &after[end..];
            continue;
        }
        let word: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty() && !word.starts_with(|c: char| c.is_ascii_digit()) {
            remaining = &after[word.len()..];
            words.push((word, strip_tabs));
        } else {
            remaining = after;
        }
    }
    words
}

/// Splits an instruction's arguments on whitespace outside quotes, keeping the quotes.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    for c in text.chars() {
        match quote {
            Some(q) if c == q => {
                quote = None;
                word.push(c);
            }
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                word.push(c);
            }
            None if c.is_whitespace() => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            Some(_) | None => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

/// A value without the quotes around it (or around parts of it).
fn unquote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut quote: Option<char> = None;
    for c in value.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            None if c == '"' || c == '\'' => quote = Some(c),
            Some(_) | None => out.push(c),
        }
    }
    out
}

/// The exec form `["a", "b"]` of an instruction's arguments.
fn json_array(text: &str) -> Option<Vec<String>> {
    let text = text.trim();
    if !text.starts_with('[') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// Substitutes variables as BuildKit does in `FROM` and `ARG` values: `$NAME`, `${NAME}`,
/// `${NAME:-word}`, `${NAME-word}`, `${NAME:+word}`, `${NAME+word}`, `\$` for a plain `$`.
/// Another form is refused rather than guessed.
pub fn expand(word: &str, env: &BTreeMap<String, String>) -> Result<String, Unresolvable> {
    let chars: Vec<char> = word.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let is_name_char = |c: char| c.is_ascii_alphanumeric() || c == '_';
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' && i + 1 < chars.len() && chars[i + 1] == '$' {
            out.push('$');
            i += 2;
            continue;
        }
        if c != '$' {
            out.push(c);
            i += 1;
            continue;
        }
        if i + 1 < chars.len() && chars[i + 1] == '{' {
            // Find the matching brace (words may nest `${...}`).
            let mut depth = 0;
            let mut end = None;
            for (j, ch) in chars.iter().enumerate().skip(i + 1) {
                match ch {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = Some(j);
                            break;
                        }
                    }
                    _ => {}
                }
            }
            let end = end.ok_or_else(|| Unresolvable(format!("`{word}` has an unclosed `${{`")))?;
            let inner: String = chars[i + 2..end].iter().collect();
            let name_len = inner.chars().take_while(|c| is_name_char(*c)).count();
            let name = &inner[..name_len];
            let operator = &inner[name_len..];
            if name.is_empty() {
                return Err(Unresolvable(format!(
                    "`{word}`: `${{{inner}}}` names no variable"
                )));
            }
            let value = env.get(name);
            let set_nonempty = value.is_some_and(|v| !v.is_empty());
            let substituted = if operator.is_empty() {
                value.cloned().unwrap_or_default()
            } else if let Some(alternative) = operator.strip_prefix(":-") {
                if set_nonempty {
                    value.cloned().unwrap_or_default()
                } else {
                    expand(alternative, env)?
                }
            } else if let Some(alternative) = operator.strip_prefix(":+") {
                if set_nonempty {
                    expand(alternative, env)?
                } else {
                    String::new()
                }
            } else if let Some(alternative) = operator.strip_prefix('-') {
                match value {
                    Some(v) => v.clone(),
                    None => expand(alternative, env)?,
                }
            } else if let Some(alternative) = operator.strip_prefix('+') {
                if value.is_some() {
                    expand(alternative, env)?
                } else {
                    String::new()
                }
            } else {
                return Err(Unresolvable(format!(
                    "`{word}` uses `${{{inner}}}`, a substitution this action does not evaluate"
                )));
            };
            out.push_str(&substituted);
            i = end + 1;
            continue;
        }
        let name: String = chars[i + 1..]
            .iter()
            .take_while(|c| is_name_char(**c))
            .collect();
        if name.is_empty() {
            out.push('$');
            i += 1;
            continue;
        }
        out.push_str(env.get(&name).map_or("", String::as_str));
        i += 1 + name.chars().count();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn platform(text: &str) -> Platform {
        text.parse().expect("platform")
    }

    fn images(
        text: &str,
        target: Option<&str>,
        args: &[(&str, &str)],
        for_platform: &str,
    ) -> Result<Vec<String>, Unresolvable> {
        let args: BTreeMap<String, String> = args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Dockerfile::parse(text)?
            .images(
                target,
                &args,
                &platform(for_platform),
                &platform("linux/amd64"),
            )
            .map(|uses| {
                uses.into_iter()
                    .map(|u| format!("{} {}", u.reference, u.platform))
                    .collect()
            })
    }

    #[rstest]
    #[case::plain("FROM alpine:3.20\nRUN true\n", &[], "linux/arm64", &["alpine:3.20 linux/arm64"])]
    #[case::target_arch("ARG TARGETARCH\nFROM base:${TARGETARCH}\n", &[], "linux/arm64", &["base:arm64 linux/arm64"])]
    #[case::automatic_without_declaring("FROM base:$TARGETARCH\n", &[], "linux/arm/v7", &["base:arm linux/arm/v7"])]
    #[case::default_and_build_arg("ARG VERSION=1.0\nFROM app:${VERSION}\n", &[("VERSION", "2.0")], "linux/amd64", &["app:2.0 linux/amd64"])]
    #[case::default_kept("ARG VERSION=1.0\nFROM app:${VERSION}\n", &[], "linux/amd64", &["app:1.0 linux/amd64"])]
    #[case::undeclared_build_arg_ignored("FROM app:${VERSION:-9}\n", &[("VERSION", "2.0")], "linux/amd64", &["app:9 linux/amd64"])]
    #[case::default_uses_earlier_arg("ARG A=x\nARG B=${A}-y\nFROM img:$B\n", &[], "linux/amd64", &["img:x-y linux/amd64"])]
    #[case::build_platform_stage("FROM --platform=$BUILDPLATFORM golang:1 AS build\nFROM scratch\nCOPY --from=build /a /a\n", &[], "linux/arm64", &["golang:1 linux/amd64"])]
    #[case::scratch_only("FROM scratch\nCOPY a /a\n", &[], "linux/amd64", &[])]
    #[case::stage_chain("FROM alpine AS base\nFROM base AS app\nRUN x\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::copy_from_image("FROM scratch\nCOPY --from=busybox:1 /bin/sh /sh\n", &[], "linux/amd64", &["busybox:1 linux/amd64"])]
    #[case::copy_from_index("FROM alpine\nFROM scratch\nCOPY --from=0 /etc /etc\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::mount_from("FROM alpine\nRUN --mount=type=bind,from=tools:2,target=/t /t/run\n", &[], "linux/amd64", &["alpine linux/amd64", "tools:2 linux/amd64"])]
    #[case::unused_stage_skipped("FROM private/never:1 AS unused\nFROM alpine\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::syntax_frontend("# syntax=docker/dockerfile:1\nFROM alpine\n", &[], "linux/arm64", &["alpine linux/arm64", "docker/dockerfile:1 linux/amd64"])]
    #[case::continuation_and_comments("FROM \\\n  # a comment\n  alpine:3 \\\n  AS app\n", &[], "linux/amd64", &["alpine:3 linux/amd64"])]
    #[case::case_insensitive("from Alpine AS Base\nFrom base\n", &[], "linux/amd64", &["Alpine linux/amd64"])]
    #[case::heredoc_body_is_not_an_instruction("FROM alpine\nRUN <<EOF\nFROM evil:1\nEOF\nCOPY <<-'X' /f\n\tFROM evil:2\n\tX\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::escape_directive("# escape=`\nFROM `\n  alpine\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::add_url_with_checksum("FROM alpine\nADD --checksum=sha256:abc https://example.com/x.tgz /x\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    fn finds_the_images_a_build_pulls(
        #[case] text: &str,
        #[case] args: &[(&str, &str)],
        #[case] for_platform: &str,
        #[case] expected: &[&str],
    ) {
        let found = images(text, None, args, for_platform).expect("resolvable");
        let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn a_target_runs_only_its_stages() {
        let text = "FROM alpine AS test\nRUN t\nFROM golang:1 AS build\nFROM scratch\nCOPY --from=build /a /a\n";
        assert_eq!(
            images(text, Some("TEST"), &[], "linux/amd64").expect("ok"),
            ["alpine linux/amd64"]
        );
        assert_eq!(
            images(text, None, &[], "linux/amd64").expect("ok"),
            ["golang:1 linux/amd64"]
        );
        assert!(images(text, Some("nope"), &[], "linux/amd64").is_err());
    }

    #[rstest]
    #[case::stage_arg_in_from(
        "FROM alpine\nARG IMG=x\nCOPY --from=$IMG /a /a\n",
        "stage's own `ARG`"
    )]
    #[case::unknown_substitution("ARG V=1.2\nFROM app:${V%.*}\n", "does not evaluate")]
    #[case::add_url("FROM alpine\nADD https://example.com/latest.tgz /x\n", "--checksum=")]
    #[case::add_git("FROM alpine\nADD git@github.com:o/r.git /src\n", "can change")]
    #[case::no_from("ARG A=1\n", "no `FROM`")]
    fn what_cannot_be_told_is_said(#[case] text: &str, #[case] message: &str) {
        let error = images(text, None, &[], "linux/amd64").expect_err("unresolvable");
        assert!(error.0.contains(message), "{error}");
    }

    #[rstest]
    #[case::copy("FROM a\nCOPY app.txt src/ /app/\n", &["/app.txt", "/src"])]
    #[case::json_and_flags("FROM a\nCOPY --chmod=755 [\"b in\", \"./c/../d\", \"/x\"]\n", &["/b in", "/d"])]
    #[case::add_local_not_urls("FROM a\nADD --checksum=sha256:0 https://h/x.tgz y.tgz /\n", &["/y.tgz"])]
    #[case::other_sources("FROM a AS b\nCOPY --from=b /x /x\nCOPY <<EOF /f\nhi\nEOF\nRUN --mount=type=cache,target=/c --mount=from=b,target=/m true\n", &[])]
    #[case::bind("FROM a\nRUN --mount=source=go.sum,target=/s --mount=type=bind,src=lib,target=/l true\n", &["/go.sum", "/lib"])]
    #[case::every_stage("FROM a AS one\nCOPY x /\nFROM b\nCOPY y /\n", &["/x", "/y"])]
    fn tells_the_context_paths_read(#[case] text: &str, #[case] paths: &[&str]) {
        let dockerfile = Dockerfile::parse(text).expect("parses");
        assert_eq!(dockerfile.context_paths().expect("known"), paths);
    }

    #[rstest]
    #[case::all("FROM a\nCOPY . /app\n", "reads the whole context")]
    #[case::all_spelled("FROM a\nADD ./ /app\n", "reads the whole context")]
    #[case::variable("FROM a\nARG SRC=x\nCOPY $SRC /app\n", "through a variable")]
    #[case::bind_all("FROM a\nRUN --mount=target=/src make\n", "reads the whole context")]
    #[case::syntax(
        "# syntax=docker/dockerfile:1\nFROM a\nCOPY x /\n",
        "chooses what it reads"
    )]
    fn falls_back_to_the_whole_context(#[case] text: &str, #[case] why: &str) {
        let dockerfile = Dockerfile::parse(text).expect("parses");
        let error = dockerfile.context_paths().expect_err("unknown");
        assert!(error.0.contains(why), "{error}");
    }

    #[rstest]
    #[case("plain", "plain")]
    #[case("$A-${A}", "a-a")]
    #[case("${UNSET:-d}", "d")]
    #[case("${EMPTY:-d}", "d")]
    #[case("${EMPTY-d}", "")]
    #[case("${A:+alt}", "alt")]
    #[case("${UNSET+alt}", "")]
    #[case("${UNSET:-${A}x}", "ax")]
    #[case("\\$A", "$A")]
    #[case("$UNSET.", ".")]
    fn substitutes_like_buildkit(#[case] word: &str, #[case] expected: &str) {
        let env = BTreeMap::from([
            ("A".to_owned(), "a".to_owned()),
            ("EMPTY".to_owned(), String::new()),
        ]);
        assert_eq!(expand(word, &env).expect("supported"), expected);
    }
}

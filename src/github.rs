//! Everything the user sees: workflow commands (masks, groups, annotations), the runner's
//! files (`GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`) and the JSON on stdout. The only module
//! that prints.
//!
//! On a GitHub runner (`GITHUB_ACTIONS=true`) the log goes to stdout with workflow commands;
//! elsewhere it goes to stderr as plain lines, and stdout carries only the outputs JSON.
//! Workflow commands: <https://docs.github.com/actions/reference/workflow-commands-for-github-actions>
//!
//! Nothing from outside commands the runner: every text a line carries passes through
//! [`workflow_command::inert_lines`] here, and every command's message and property is escaped,
//! so callers print build output, registry errors and file contents as they come.

#![allow(clippy::print_stdout, clippy::print_stderr)]

pub mod markdown;
pub mod workflow_command;

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use workflow_command::inert_lines;

use rand::distr::{Alphanumeric, SampleString};

/// Where an annotation points in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceLocation {
    /// The file, relative to the workspace.
    pub file: String,
    /// 1-based line.
    pub line: usize,
}

/// The log of one run; safe to share between concurrent platform builds.
#[derive(Debug)]
pub struct Console {
    github: bool,
    /// The group open on the runner, if any: concurrent platforms switch groups as their
    /// lines arrive so that each line still sits under its platform's heading.
    open_group: Mutex<Option<String>>,
    /// Where the lines go instead of stdout and stderr (tests).
    capture: Option<Arc<Mutex<String>>>,
}

/// Escapes a workflow command's message (runner's `CommandEscapeData`).
fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (runner's `CommandEscapeProperty`).
fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

impl Console {
    /// A console for a GitHub runner (`github`) or a terminal.
    #[must_use]
    pub fn new(github: bool) -> Console {
        Console {
            github,
            open_group: Mutex::new(None),
            capture: None,
        }
    }

    /// A console whose stdout and stderr lines all go into the returned text instead (tests
    /// read a run's whole log the way the runner does).
    #[must_use]
    pub fn capturing(github: bool) -> (Console, Arc<Mutex<String>>) {
        let captured = Arc::new(Mutex::new(String::new()));
        let console = Console {
            capture: Some(captured.clone()),
            ..Console::new(github)
        };
        (console, captured)
    }

    /// One line on stdout.
    fn out(&self, line: &str) {
        match &self.capture {
            Some(text) => {
                let mut text = text
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                text.push_str(line);
                text.push('\n');
            }
            None => println!("{line}"),
        }
    }

    /// One line on stderr (the runner reads stderr for commands too).
    fn err(&self, line: &str) {
        match &self.capture {
            Some(_) => self.out(line),
            None => eprintln!("{line}"),
        }
    }

    /// Whether workflow commands are in use.
    #[must_use]
    pub fn is_github(&self) -> bool {
        self.github
    }

    fn emit(&self, line: &str) {
        if self.github {
            self.out(line);
        } else {
            self.err(line);
        }
    }

    fn close_group_locked(&self, open: &mut Option<String>) {
        if open.take().is_some() && self.github {
            self.out("::endgroup::");
        }
    }

    /// Hides a secret in every later log line. Must come before anything that could print it.
    pub fn mask(&self, secret: &str) {
        if self.github && !secret.is_empty() {
            self.out(&format!("::add-mask::{}", escape_data(secret)));
        }
    }

    /// A line outside any group (outside text in it is made inert: one log line per line).
    pub fn info(&self, message: &str) {
        let mut open = self
            .open_group
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.close_group_locked(&mut open);
        for line in inert_lines(message) {
            self.emit(&line);
        }
    }

    /// A line under a named group (a platform, or a phase), opening that group if another one
    /// is open. Every line also carries the group's name as a prefix, so interleaved output
    /// still reads per platform in a raw log.
    pub fn group_line(&self, group: &str, line: &str) {
        let mut open = self
            .open_group
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if open.as_deref() != Some(group) {
            self.close_group_locked(&mut open);
            if self.github {
                self.out(&format!("::group::{}", escape_data(group)));
            }
            *open = Some(group.to_owned());
        }
        // Build output: a `\r` of a progress bar ends a line for the runner, so each piece
        // is a line of its own, with its prefix.
        for piece in inert_lines(line) {
            self.emit(&format!("[{group}] {piece}"));
        }
    }

    /// Closes whatever group is open.
    pub fn end_group(&self) {
        let mut open = self
            .open_group
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.close_group_locked(&mut open);
    }

    /// A notice annotation (plain line elsewhere).
    pub fn notice(&self, message: &str) {
        self.end_group();
        if self.github {
            self.out(&format!("::notice::{}", escape_data(message)));
        } else {
            self.plain("", message);
        }
    }

    /// A warning annotation (`warning:` line elsewhere).
    pub fn warning(&self, message: &str) {
        self.end_group();
        if self.github {
            self.out(&format!("::warning::{}", escape_data(message)));
        } else {
            self.plain("warning: ", message);
        }
    }

    /// The one error annotation of a failed run, with a title and optionally a place in a file.
    pub fn error(&self, title: &str, message: &str, location: Option<&SourceLocation>) {
        self.end_group();
        if self.github {
            let mut properties = format!("title={}", escape_property(title));
            if let Some(location) = location {
                let _ = write!(
                    properties,
                    ",file={},line={}",
                    escape_property(&location.file),
                    location.line
                );
            }
            self.out(&format!("::error {properties}::{}", escape_data(message)));
        } else {
            self.plain("error: ", message);
        }
    }

    /// A message on stderr off a runner, made inert all the same (a `run:` step may pipe it).
    fn plain(&self, label: &str, message: &str) {
        for (i, line) in inert_lines(message).iter().enumerate() {
            self.err(&format!("{}{line}", if i == 0 { label } else { "" }));
        }
    }

    /// Prints the outputs JSON on stdout (always stdout: it is the CLI's result). JSON escapes
    /// every line end inside a string, and no JSON line starts with `::`; a `##[` inside a
    /// string is written `##\u005b`, the same JSON value, which the runner does not run.
    pub fn print_json(&self, value: &serde_json::Value) {
        self.end_group();
        self.out(&format!("{value:#}").replace("##[", "##\\u005b"));
    }
}

/// The run's progress goes to its console: the lower rooms' lines become grouped, sanitised
/// log lines and annotations here.
impl crate::progress::Progress for Console {
    fn group_line(&self, group: &str, line: &str) {
        Console::group_line(self, group, line);
    }

    fn end_group(&self) {
        Console::end_group(self);
    }

    fn info(&self, message: &str) {
        Console::info(self, message);
    }

    fn notice(&self, message: &str) {
        Console::notice(self, message);
    }

    fn warning(&self, message: &str) {
        Console::warning(self, message);
    }
}

/// Appends `name=value` outputs to the runner's `GITHUB_OUTPUT` file, every value in the
/// heredoc form with a random delimiter so that no value can end it early or forge another.
pub fn write_outputs(path: &Path, outputs: &[(&str, String)]) -> io::Result<()> {
    let mut text = String::new();
    for (name, value) in outputs {
        let delimiter = loop {
            let candidate = format!(
                "ghadelimiter_{}",
                Alphanumeric.sample_string(&mut rand::rng(), 24)
            );
            if !value.contains(&candidate) {
                break candidate;
            }
        };
        let _ = write!(text, "{name}<<{delimiter}\n{value}\n{delimiter}\n");
    }
    append(path, &text)
}

/// Checks, before the run does anything, that a runner file (`GITHUB_OUTPUT`,
/// `GITHUB_STEP_SUMMARY`) can be appended to; creates it when missing, as the runner does.
pub fn check_writable(path: &Path) -> io::Result<()> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(drop)
}

/// Appends markdown to the runner's `GITHUB_STEP_SUMMARY` file.
pub fn write_summary(path: &Path, markdown: &str) -> io::Result<()> {
    append(path, markdown)
}

fn append(path: &Path, text: &str) -> io::Result<()> {
    let mut file = OpenOptions::new().create(true).append(true).open(path)?;
    file.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::workflow_command::commands;
    use super::*;
    use proptest::prelude::*;

    /// Text built from the pieces of workflow commands, line ends of every kind, white space
    /// the runner trims, and anything else.
    fn hostile() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("::".to_owned()),
            Just("##[".to_owned()),
            Just("]".to_owned()),
            Just("\r".to_owned()),
            Just("\n".to_owned()),
            Just("\r\n".to_owned()),
            Just(" ".to_owned()),
            Just("\u{3000}".to_owned()),
            Just("\u{200B}".to_owned()),
            Just("%".to_owned()),
            Just(",".to_owned()),
            Just("=".to_owned()),
            Just("tok".to_owned()),
            proptest::sample::select(workflow_command::REGISTERED).prop_map(str::to_owned),
            proptest::sample::select(workflow_command::REGISTERED).prop_map(|c| c.to_uppercase()),
            any::<char>().prop_map(String::from),
            "[a-z:#\\[\\] ]{0,6}",
        ];
        proptest::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
    }

    fn names(output: &str) -> Vec<String> {
        commands(output)
            .into_iter()
            .map(|c| c.name.to_ascii_lowercase())
            .collect()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// Whatever outside text goes through the console, the runner runs only the console's
        /// own commands, all of them (no `stop-commands` swallows the failure's annotation).
        #[test]
        fn outside_text_never_commands_the_runner(text in hostile(), other in hostile()) {
            let (console, captured) = Console::capturing(true);
            console.mask(&text);
            console.info(&text);
            console.group_line("linux/amd64", &text);
            console.group_line("linux/arm64", &other);
            console.notice(&text);
            console.warning(&other);
            console.group_line("registry", &format!("retrying (attempt 1 of 6 failed: {text})"));
            console.error(
                &format!("Build failed for {text}"),
                &other,
                Some(&SourceLocation { file: other.clone(), line: 3 }),
            );
            console.print_json(&serde_json::json!({ "engine": text, "source": [other] }));
            let output = captured.lock().expect("lock").clone();
            let mut expected = vec![];
            if !text.is_empty() {
                expected.push("add-mask");
            }
            expected.extend([
                "group", "endgroup", "group", "endgroup", "notice", "warning", "group", "endgroup",
                "error",
            ]);
            prop_assert_eq!(names(&output), expected, "{:?}", output);
            let json = &output[output.rfind("\n{\n").expect("json") + 1..];
            let value: serde_json::Value = serde_json::from_str(json).expect("valid JSON");
            prop_assert_eq!(&value["engine"], &serde_json::json!(text));
        }

        /// Off a runner too (stderr), nothing runs.
        #[test]
        fn plain_lines_never_command_the_runner(text in hostile()) {
            let (console, captured) = Console::capturing(false);
            console.info(&text);
            console.group_line("linux/amd64", &text);
            console.notice(&text);
            console.warning(&text);
            console.error("Build failed", &text, None);
            let output = captured.lock().expect("lock").clone();
            prop_assert!(commands(&output).is_empty(), "{:?}", output);
        }
    }

    #[test]
    fn the_hostile_build_output_of_issue_14_is_inert() {
        let (console, captured) = Console::capturing(true);
        console.group_line("linux/amd64", "#6 progress\r::warning::X");
        console.group_line("linux/amd64", "#7 legacy ##[warning]X");
        console.group_line("linux/amd64", "#8 [2/3] RUN true ##[notice]X");
        console.group_line("linux/amd64", "#9 ##[stop-commands]tok");
        console.info("Docker Engine 28.5 ::warning::X");
        console.error(
            "Build failed for linux/amd64",
            "step `RUN ##[error]x` failed",
            None,
        );
        let output = captured.lock().expect("lock").clone();
        assert_eq!(names(&output), ["group", "endgroup", "error"], "{output}");
        assert!(
            output.contains("[linux/amd64] #6 progress\n[linux/amd64] :\u{200B}:warning::X\n"),
            "{output}"
        );
    }

    #[test]
    fn escapes_like_the_runner() {
        assert_eq!(escape_data("50%\nnext"), "50%25%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }

    #[test]
    fn outputs_use_unique_heredoc_delimiters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out");
        write_outputs(
            &path,
            &[("digest", "sha256:abc".into()), ("tags", "a\nb".into())],
        )
        .expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("digest<<ghadelimiter_"));
        assert_eq!(lines[1], "sha256:abc");
        assert_eq!(lines[2], &lines[0]["digest<<".len()..]);
        assert!(lines[3].starts_with("tags<<ghadelimiter_"));
        assert_ne!(lines[0]["digest<<".len()..], lines[3]["tags<<".len()..]);
    }
}

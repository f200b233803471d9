//! Everything the user sees: workflow commands (masks, groups, annotations), the runner's
//! files (`GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`) and the JSON on stdout. The only module
//! that prints.
//!
//! On a GitHub runner (`GITHUB_ACTIONS=true`) the log goes to stdout with workflow commands;
//! elsewhere it goes to stderr as plain lines, and stdout carries only the outputs JSON.
//! Workflow commands: <https://docs.github.com/actions/reference/workflow-commands-for-github-actions>

#![allow(clippy::print_stdout, clippy::print_stderr)]

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;

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
        }
    }

    /// Whether workflow commands are in use.
    #[must_use]
    pub fn is_github(&self) -> bool {
        self.github
    }

    fn emit(&self, line: &str) {
        if self.github {
            println!("{line}");
        } else {
            eprintln!("{line}");
        }
    }

    fn close_group_locked(&self, open: &mut Option<String>) {
        if open.take().is_some() && self.github {
            println!("::endgroup::");
        }
    }

    /// Hides a secret in every later log line. Must come before anything that could print it.
    pub fn mask(&self, secret: &str) {
        if self.github && !secret.is_empty() {
            println!("::add-mask::{}", escape_data(secret));
        }
    }

    /// A line outside any group.
    pub fn info(&self, message: &str) {
        let mut open = self
            .open_group
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.close_group_locked(&mut open);
        self.emit(message);
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
                println!("::group::{}", escape_data(group));
            }
            *open = Some(group.to_owned());
        }
        self.emit(&format!("[{group}] {line}"));
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
            println!("::notice::{}", escape_data(message));
        } else {
            eprintln!("{message}");
        }
    }

    /// A warning annotation (`warning:` line elsewhere).
    pub fn warning(&self, message: &str) {
        self.end_group();
        if self.github {
            println!("::warning::{}", escape_data(message));
        } else {
            eprintln!("warning: {message}");
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
            println!("::error {properties}::{}", escape_data(message));
        } else {
            eprintln!("error: {message}");
        }
    }

    /// Prints the outputs JSON on stdout (always stdout: it is the CLI's result).
    pub fn print_json(&self, value: &serde_json::Value) {
        self.end_group();
        println!("{value:#}");
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
    use super::*;

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

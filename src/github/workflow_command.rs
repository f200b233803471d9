//! What the Actions runner reads as a workflow command in a step's output, and the one
//! sanitiser that makes outside text (build output, step names, registry and ECR messages,
//! result files, an Engine's version) inert before it reaches the log.
//!
//! The runner (actions/runner, `ActionCommandManager.TryProcessCommand` and
//! `ActionCommand.TryParseV2` / `TryParse`) reads stdout and stderr line by line, a line ending
//! at `\r\n`, `\r` or `\n` (.NET `StreamReader.ReadLine`). On each line it runs `::name ...::data`
//! when the line starts with `::` after leading white space, and otherwise the legacy
//! `##[name ...]data` found anywhere in the line (its first `##[`), when `name` is a registered
//! command. `stop-commands` with a token stops all processing until a command named by the
//! token. [`commands`] reads a whole output the same way (for tests); [`inert_lines`] turns
//! outside text into lines that hold none of it, while staying readable.

/// The commands the runner has registered (case-insensitive), `stop-commands` included.
pub const REGISTERED: &[&str] = &[
    "add-mask",
    "add-matcher",
    "add-path",
    "debug",
    "echo",
    "endgroup",
    "error",
    "group",
    "internal-set-repo-path",
    "notice",
    "remove-matcher",
    "save-state",
    "set-env",
    "set-output",
    "stop-commands",
    "warning",
];

/// What breaks a command's marker: a zero-width space, so that the text still reads the same.
const BREAK: char = '\u{200B}';

/// One command the runner would run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Its name, as written (the runner matches it case-insensitively).
    pub name: String,
    /// The properties as written, unparsed (`title=...,file=...`).
    pub properties: String,
    /// Its data, as written (still escaped).
    pub data: String,
    /// Which form: `::name::` (`false`) or the legacy `##[name]` (`true`).
    pub legacy: bool,
}

/// The lines of an output as the runner splits them: at `\r\n`, `\r` and `\n`.
pub fn runner_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = Some(text);
    std::iter::from_fn(move || {
        let current = rest?;
        let Some(end) = current.find(['\r', '\n']) else {
            rest = None;
            return Some(current);
        };
        let after = if current[end..].starts_with("\r\n") {
            end + 2
        } else {
            end + 1
        };
        rest = (after < current.len()).then(|| &current[after..]);
        Some(&current[..end])
    })
}

fn registered(name: &str, extra: Option<&str>) -> bool {
    REGISTERED.iter().any(|r| r.eq_ignore_ascii_case(name))
        || extra.is_some_and(|token| token.eq_ignore_ascii_case(name))
}

fn split_name(info: &str) -> (&str, &str) {
    info.split_once(' ').unwrap_or((info, ""))
}

/// The command on one line, as `TryParseV2`, then `TryParse`, find it; `extra` is a name
/// registered for the moment (the stop token).
#[must_use]
pub fn parse_line(line: &str, extra: Option<&str>) -> Option<Command> {
    // `TryParseV2`: `::` at the start after .NET's `TrimStart()` (Unicode white space, the same
    // set as Rust's `char::is_whitespace`).
    let trimmed = line.trim_start_matches(char::is_whitespace);
    if let Some(after) = trimmed.strip_prefix("::") {
        if let Some(end) = after.find("::") {
            let (name, properties) = split_name(&after[..end]);
            if registered(name, extra) {
                return Some(Command {
                    name: name.to_owned(),
                    properties: properties.to_owned(),
                    data: after[end + 2..].to_owned(),
                    legacy: false,
                });
            }
        }
    }
    // `TryParse`: the first `##[` of the line, up to the next `]`.
    let start = line.find("##[")? + 3;
    let end = start + line[start..].find(']')?;
    let (name, properties) = split_name(&line[start..end]);
    registered(name, extra).then(|| Command {
        name: name.to_owned(),
        properties: properties.to_owned(),
        data: line[end + 1..].to_owned(),
        legacy: true,
    })
}

/// Every command the runner would run on this whole output, in order, honouring
/// `stop-commands` (while stopped, only the token's command runs, and it is not listed).
#[must_use]
pub fn commands(output: &str) -> Vec<Command> {
    let mut found = Vec::new();
    let mut stop_token: Option<String> = None;
    for line in runner_lines(output) {
        let Some(command) = parse_line(line, stop_token.as_deref()) else {
            continue;
        };
        if let Some(token) = &stop_token {
            if command.name.eq_ignore_ascii_case(token) {
                stop_token = None;
            }
            continue;
        }
        if command.name.eq_ignore_ascii_case("stop-commands") {
            stop_token = Some(command.data.clone());
        }
        found.push(command);
    }
    found
}

/// Outside text as log lines that the runner reads as text only: split where the runner
/// would split it, every `##[` broken, and a `::` that starts a line (after white space)
/// broken. The marks are zero-width spaces, so the text reads as it was.
#[must_use]
pub fn inert_lines(text: &str) -> Vec<String> {
    runner_lines(text).map(inert_line).collect()
}

/// One line (no line ends in it) made inert.
fn inert_line(line: &str) -> String {
    let mut out = line.replace("##[", &format!("##{BREAK}["));
    let lead = out.len() - out.trim_start_matches(is_blank).len();
    if out[lead..].starts_with("::") {
        out.insert(lead + 1, BREAK);
    }
    out
}

/// White space, and the invisible characters a reader might also skip: breaking a `::` after
/// them costs nothing.
fn is_blank(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{180E}' | '\u{200B}'..='\u{200D}' | '\u{2060}' | '\u{FEFF}'
        )
}

/// Outside text in one line, for a place that cannot take several (one line per `\r`/`\n`
/// joined with ` ⏎ `).
#[must_use]
pub fn inert(text: &str) -> String {
    inert_lines(text).join(" \u{23CE} ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(output: &str) -> Vec<String> {
        commands(output).into_iter().map(|c| c.name).collect()
    }

    #[test]
    fn the_reader_reads_both_forms_at_every_line_end() {
        assert_eq!(
            names("a\r::warning::X\n  ::error title=t::y\r\nlegacy ##[notice]Z\n##[bogus]q ##[debug]w"),
            ["warning", "error", "notice"]
        );
        // The runner takes the first `##[` only, and `::` only at a line's start.
        assert_eq!(names("x ::warning::X"), Vec::<String>::new());
        assert_eq!(names("\u{3000}::Warning::X"), ["Warning"]);
    }

    #[test]
    fn the_reader_honours_stop_commands() {
        let out =
            "##[stop-commands]tok\n::error::swallowed\n::endgroup::\n::tok::\n::notice::after";
        assert_eq!(names(out), ["stop-commands", "notice"]);
        assert_eq!(
            names("::stop-commands::t\n##[t]\n::warning::x"),
            ["stop-commands", "warning"]
        );
    }

    #[test]
    fn outside_text_reads_the_same_and_runs_nothing() {
        let hostile =
            "progress\r::warning::X\nlegacy ##[warning]X\r\n ::stop-commands::tok\n###[notice]";
        let lines = inert_lines(hostile);
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[0], "progress");
        assert_eq!(
            lines.join("\n").replace(BREAK, ""),
            hostile.replace("\r\n", "\n").replace('\r', "\n")
        );
        assert!(commands(&lines.join("\n")).is_empty(), "{lines:?}");
        assert!(commands(&inert(hostile)).is_empty());
        assert_eq!(inert("a\nb"), "a \u{23CE} b");
    }
}

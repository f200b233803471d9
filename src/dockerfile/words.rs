//! The words of a Dockerfile instruction: split on whitespace outside quotes, unquoted, the
//! exec form's JSON array, heredoc words, and `$VAR` substitution as BuildKit does it.

use std::collections::BTreeMap;

use super::Unresolvable;

/// The words of heredocs an instruction opens (`<<EOF`, `<<-EOF`, `<<"EOF"`), in order, and
/// whether leading tabs are stripped before comparing (`<<-`).
pub(super) fn heredoc_words(rest: &str) -> Vec<(String, bool)> {
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
pub(super) fn split_words(text: &str) -> Vec<String> {
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
pub(super) fn unquote(value: &str) -> String {
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
pub(super) fn json_array(text: &str) -> Option<Vec<String>> {
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

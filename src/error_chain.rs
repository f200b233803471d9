//! An error and its whole cause chain as one line, for messages and annotations.

/// An error and its causes on one line, as `{:#}` shows an anyhow chain; a cause that repeats
/// the text before it (as SDK and HTTP errors often do) is left out.
#[must_use]
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        cause = inner.source();
    }
    parts.join(": ")
}

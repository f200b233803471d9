//! Outside text in the job summary (GitHub-flavoured markdown): a cell or a line that cannot
//! become a heading, a link, an image, HTML, or break the table it sits in.
//! GFM: <https://github.github.com/gfm/> (code spans, backslash escapes, tables, autolinks).

/// `text` as an inline code span: shown exactly, never parsed as markdown or HTML. Line ends
/// become spaces, `|` is escaped for tables (GFM lets `\|` through code spans in a table), and
/// the fence is longer than any run of backticks inside. Empty text gives `-`.
#[must_use]
pub fn code(text: &str) -> String {
    let text: String = text
        .replace("\r\n", " ")
        .replace(['\r', '\n'], " ")
        .replace('|', "\\|");
    if text.is_empty() {
        return "-".to_owned();
    }
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    let fence = "`".repeat(longest + 1);
    // A space at both ends is removed by the parser: it keeps a backtick or a space at an end
    // from joining the fence.
    let pad = if text.starts_with(['`', ' ']) || text.ends_with(['`', ' ']) {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{text}{pad}{fence}")
}

/// `text` as plain words: every ASCII punctuation character backslash-escaped (so no
/// emphasis, heading, list, link, image, HTML or table cell starts), line ends as spaces, and
/// the starts of autolinks (`://`, `www.`, `@`) broken with a zero-width space.
#[must_use]
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let flat = text.replace("\r\n", " ").replace(['\r', '\n'], " ");
    let mut chars = flat.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_punctuation() {
            out.push('\\');
        }
        out.push(c);
        let autolink = match c {
            ':' => chars.peek() == Some(&'/'),
            '@' => true,
            '.' => out.to_ascii_lowercase().ends_with("www\\."),
            _ => false,
        };
        if autolink {
            out.push('\u{200B}');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_hold_anything_in_one_cell() {
        assert_eq!(
            code("unix:///var/run/docker.sock"),
            "`unix:///var/run/docker.sock`"
        );
        assert_eq!(code("a`b``c"), "```a`b``c```");
        assert_eq!(code("`x"), "`` `x ``");
        assert_eq!(code("a|b\n# h"), "`a\\|b # h`");
        assert_eq!(code(""), "-");
    }

    #[test]
    fn text_cannot_start_markdown() {
        assert_eq!(
            text("# [x](https://e.com)"),
            "\\# \\[x\\]\\(https\\:\u{200B}\\/\\/e\\.com\\)"
        );
        assert_eq!(text("<b>a|b\nc"), "\\<b\\>a\\|b c");
        assert_eq!(text("www.e.com a@b"), "www\\.\u{200B}e\\.com a\\@\u{200B}b");
    }
}

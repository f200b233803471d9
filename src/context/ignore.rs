//! `.dockerignore` rules: which paths of the context are left out, as moby's patternmatcher
//! decides.

use globset::{GlobBuilder, GlobMatcher};

use super::Error;

/// One `.dockerignore` rule.
#[derive(Debug)]
struct Rule {
    matcher: GlobMatcher,
    exclusion: bool,
}

/// The parsed `.dockerignore` of a context.
#[derive(Debug, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// Parses `.dockerignore` text: one pattern a line, `#` comments, `!` re-includes, paths
    /// relative to the context root (a leading `/` is dropped), cleaned like Go's
    /// `filepath.Clean`.
    pub fn parse(text: &str) -> Result<IgnoreRules, Error> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(pattern);
            if cleaned.is_empty() {
                continue;
            }
            let matcher = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::BadPattern {
                    line: index + 1,
                    pattern: pattern.to_owned(),
                    reason: e.kind().to_string(),
                })?
                .compile_matcher();
            rules.push(Rule { matcher, exclusion });
        }
        Ok(IgnoreRules { rules })
    }

    /// The rules of patterns BuildKit's frontend sends with a file-sync request (the lines of
    /// `.dockerignore` it read); a pattern that does not parse is left out, as a pattern that
    /// matches nothing.
    #[must_use]
    pub fn from_patterns(patterns: &[String]) -> IgnoreRules {
        let rules = patterns
            .iter()
            .filter_map(|p| IgnoreRules::parse(p).ok())
            .flat_map(|r| r.rules)
            .collect();
        IgnoreRules { rules }
    }

    /// Whether a path (relative, `/`-separated) is left out: the last rule that matches the
    /// path or any of its parent folders decides (moby's `MatchesOrParentMatches`).
    #[must_use]
    pub fn is_ignored(&self, path: &str) -> bool {
        let mut ignored = false;
        for rule in &self.rules {
            let matches = rule.matcher.is_match(path)
                || path
                    .match_indices('/')
                    .any(|(i, _)| rule.matcher.is_match(&path[..i]));
            if matches {
                ignored = !rule.exclusion;
            }
        }
        ignored
    }

    /// Whether any rule re-includes files: then an ignored folder must still be walked.
    pub(super) fn has_exclusions(&self) -> bool {
        self.rules.iter().any(|r| r.exclusion)
    }
}

/// Lexically cleans a pattern like Go's `filepath.Clean`, relative to the context root: no
/// `.`, no empty parts, `..` folded, no leading `/`. The session's file sync cleans the
/// frontend's include patterns the same way.
pub(crate) fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("secret.txt", "secret.txt", true)]
    #[case("secret.txt", "sub/secret.txt", false)]
    #[case("*.log", "a.log", true)]
    #[case("*.log", "dir/a.log", false)]
    #[case("**/*.log", "dir/deep/a.log", true)]
    #[case("/build", "build/out/x", true)]
    #[case("node_modules", "node_modules/a/b.js", true)]
    #[case("./docs/../tmp", "tmp/x", true)]
    #[case("*\n!keep.log", "keep.log", false)]
    #[case("*.md\n!README.md", "CHANGES.md", true)]
    #[case("# comment\n\n", "anything", false)]
    fn dockerignore_semantics(#[case] patterns: &str, #[case] path: &str, #[case] ignored: bool) {
        let rules = IgnoreRules::parse(patterns).expect("valid patterns");
        assert_eq!(rules.is_ignored(path), ignored, "{patterns:?} on {path}");
    }

    #[test]
    fn refuses_a_bad_pattern_naming_the_line() {
        let error = IgnoreRules::parse("ok\n[unclosed").expect_err("invalid");
        assert!(error.to_string().contains("line 2"), "{error}");
    }
}

/// Property tests (issue 14): the `.dockerignore` matcher over generated patterns and paths.
/// Each property is a rule of moby's patternmatcher that holds whatever the names: a pattern
/// leaves out the path it names and everything below it, `!` puts back what it names, `*` and
/// `?` stay within one path part, `**` spans any number of parts, a pattern means the same
/// however it is spelled (`./`, `//`, a leading `/`, `x/..`), and no line ever panics.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// A path part: letters, digits and the punctuation names carry (no glob characters).
    fn part() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9._-]{0,6}".prop_filter("not . or ..", |p| p != "." && p != "..")
    }

    /// A relative path of one to four parts.
    fn path() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(part(), 1..5)
    }

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text).expect("the generated patterns parse")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_line_panics(text in any::<String>(), probe in any::<String>()) {
            if let Ok(rules) = IgnoreRules::parse(&text) {
                let _ = rules.is_ignored(&probe);
            }
        }

        #[test]
        fn a_pattern_leaves_out_what_it_names_and_all_below(
            named in path(), below in path(), other in part()
        ) {
            let named = named.join("/");
            let rules = rules(&named);
            prop_assert!(rules.is_ignored(&named));
            let below_path = format!("{named}/{}", below.join("/"));
            prop_assert!(rules.is_ignored(&below_path));
            // A sibling whose name only starts like it is not left out.
            let sibling = format!("{named}{other}");
            prop_assert!(!rules.is_ignored(&sibling));
        }

        #[test]
        fn a_negation_puts_back_what_it_names(named in path(), other in part()) {
            let named = named.join("/");
            let rules = rules(&format!("*\n!{named}"));
            // `*` leaves out every top-level name, hence all below; `!` puts the one back.
            prop_assert!(!rules.is_ignored(&named));
            let first = named.split('/').next().unwrap_or_default();
            if other != first {
                prop_assert!(rules.is_ignored(&other));
            }
            // The last rule that matches decides.
            let again = rules_again(&named);
            prop_assert!(again.is_ignored(&named));
        }

        #[test]
        fn star_and_question_mark_stay_within_one_part(
            parent in part(), name in part(), deeper in part()
        ) {
            let star = rules(&format!("{parent}/*"));
            let probe_1 = format!("{parent}/{name}");
            prop_assert!(star.is_ignored(&probe_1));
            let probe_2 = format!("x{parent}/{name}");
            prop_assert!(!star.is_ignored(&probe_2));
            // One `?` per character of the name matches it, and nothing longer or shorter.
            let marks = "?".repeat(name.chars().count());
            let question = rules(&format!("{parent}/{marks}"));
            let probe_3 = format!("{parent}/{name}");
            prop_assert!(question.is_ignored(&probe_3));
            let probe_4 = format!("{parent}/{name}{deeper}");
            prop_assert!(!question.is_ignored(&probe_4));
            // `*` does not reach past a `/` on its own: `*.z` at the top is not `a/b.z`
            // (unless the folder itself is named `*.z`: all below it is left out then).
            let top = rules("*.z");
            let probe_5 = format!("{parent}/{name}.z");
            prop_assert_eq!(top.is_ignored(&probe_5), top.is_ignored(&parent));
        }

        #[test]
        fn double_star_spans_any_number_of_parts(
            middle in proptest::collection::vec(part(), 0..4), name in part()
        ) {
            let rules = rules(&format!("**/{name}"));
            let mut parts = middle.clone();
            parts.push(name.clone());
            prop_assert!(rules.is_ignored(&parts.join("/")));
        }

        #[test]
        fn a_pattern_means_the_same_however_it_is_spelled(
            named in path(), probe in path(), detour in part()
        ) {
            let plain = named.join("/");
            let spelled = [
                format!("/{plain}"),
                format!("./{plain}"),
                named.join("//"),
                format!("{detour}/../{plain}"),
                format!("{plain}/"),
            ];
            let probe = probe.join("/");
            let expected = rules(&plain);
            for spelling in spelled {
                let same = rules(&spelling);
                for candidate in [&plain, &probe] {
                    prop_assert_eq!(
                        same.is_ignored(candidate),
                        expected.is_ignored(candidate),
                        "`{}` and `{}` differ on `{}`", spelling, plain, candidate
                    );
                }
            }
        }
    }

    /// `named` left out, put back, and left out again.
    fn rules_again(named: &str) -> IgnoreRules {
        rules(&format!("{named}\n!{named}\n{named}"))
    }
}

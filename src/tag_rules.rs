//! Tag rules: which tags a run pushes, derived from the git ref of the workflow run
//! (`GITHUB_REF`, `GITHUB_SHA`...), so the same rules give the same tags on any CI that sets
//! those variables. Pure: no I/O.

use std::fmt;
use std::str::FromStr;

use semver::Version;

/// One rule of the `tag-rules` input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TagRule {
    /// `latest`: always `latest`.
    Latest,
    /// `raw=<tag>`: that tag.
    Raw(String),
    /// `commit`: the full commit SHA.
    Commit,
    /// `commit-short`: the first 8 characters of the SHA.
    CommitShort,
    /// `branch`: the branch name, made a valid tag, on branch refs.
    Branch,
    /// `semver`: on a `v1.4.2` tag ref, `1.4.2`, `1.4` and `1`; a pre-release gives only itself.
    Semver,
    /// `latest=auto`: `latest` when this run's version is a release and the highest in the
    /// repository, decided against ECR's tags.
    LatestAuto,
}

impl TagRule {
    /// The rule's name, as `metadata` reports the source of each tag.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            TagRule::Latest => "latest",
            TagRule::Raw(_) => "raw",
            TagRule::Commit => "commit",
            TagRule::CommitShort => "commit-short",
            TagRule::Branch => "branch",
            TagRule::Semver => "semver",
            TagRule::LatestAuto => "latest=auto",
        }
    }
}

impl fmt::Display for TagRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TagRule::Raw(tag) => write!(f, "raw={tag}"),
            other => f.write_str(other.name()),
        }
    }
}

/// Why a rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{rule}` is not a tag rule: use `latest`, `latest=auto`, `raw=<tag>`, `commit`, `commit-short`, `branch` or `semver`")]
pub struct TagRuleParseError {
    /// The refused text.
    pub rule: String,
}

impl FromStr for TagRule {
    type Err = TagRuleParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(match text {
            "latest" => TagRule::Latest,
            "latest=auto" => TagRule::LatestAuto,
            "commit" => TagRule::Commit,
            "commit-short" => TagRule::CommitShort,
            "branch" => TagRule::Branch,
            "semver" => TagRule::Semver,
            _ => match text.strip_prefix("raw=") {
                Some(tag) if !tag.is_empty() => TagRule::Raw(tag.to_owned()),
                _ => {
                    return Err(TagRuleParseError {
                        rule: text.to_owned(),
                    })
                }
            },
        })
    }
}

/// The git ref a run is for, as the runner describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitRef {
    /// `GITHUB_REF`, e.g. `refs/heads/main`, `refs/tags/v1.4.2`, `refs/pull/7/merge`.
    pub full: Option<String>,
    /// `GITHUB_REF_NAME`, e.g. `main`, `v1.4.2`.
    pub name: Option<String>,
    /// `GITHUB_REF_TYPE`: `branch` or `tag`.
    pub kind: Option<String>,
    /// `GITHUB_SHA`.
    pub sha: Option<String>,
}

impl GitRef {
    fn is_tag(&self) -> bool {
        self.kind.as_deref() == Some("tag")
            || self
                .full
                .as_deref()
                .is_some_and(|r| r.starts_with("refs/tags/"))
    }

    fn is_branch(&self) -> bool {
        self.kind.as_deref() == Some("branch")
            && !self
                .full
                .as_deref()
                .is_some_and(|r| r.starts_with("refs/pull/"))
            || self
                .full
                .as_deref()
                .is_some_and(|r| r.starts_with("refs/heads/"))
    }

    /// The short name of the ref: `GITHUB_REF_NAME`, or `GITHUB_REF` without its prefix.
    fn short_name(&self) -> Option<&str> {
        self.name.as_deref().filter(|n| !n.is_empty()).or_else(|| {
            self.full.as_deref().map(|r| {
                r.trim_start_matches("refs/heads/")
                    .trim_start_matches("refs/tags/")
            })
        })
    }

    /// The tag's name when the run is for a tag, e.g. `v1.4.2`.
    #[must_use]
    pub fn tag(&self) -> Option<&str> {
        self.is_tag().then(|| self.short_name()).flatten()
    }

    /// The semantic version of a tag ref (`v1.4.2` or `1.4.2`), if it is one.
    #[must_use]
    pub fn version(&self) -> Option<Version> {
        let name = self.tag()?;
        Version::parse(name.strip_prefix('v').unwrap_or(name)).ok()
    }
}

/// A tag and the rule (or input) that produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourcedTag {
    /// The tag.
    pub tag: String,
    /// `tags` for the `tags` input, else the rule's name.
    pub source: &'static str,
}

/// What the rules give for a ref before ECR is asked.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Evaluation {
    /// Tags decided now, in rule order, without duplicates.
    pub tags: Vec<SourcedTag>,
    /// Rules that gave nothing, with the reason (reported as notices).
    pub skipped: Vec<(TagRule, String)>,
    /// `latest=auto` still to decide against the repository's tags, for this version.
    pub latest_auto: Option<Version>,
}

/// Makes a branch name a valid tag: anything outside `[A-Za-z0-9_.-]` becomes `-`, no leading
/// `.` or `-`, at most 128 characters (`feature/Foo_bar` -> `feature-Foo_bar`).
#[must_use]
pub fn sanitize(name: &str) -> String {
    let replaced: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = replaced.trim_start_matches(['.', '-']);
    trimmed.chars().take(128).collect()
}

/// Evaluates the rules for a ref; `raw_tags` (from the `tags` input) come first.
#[must_use]
pub fn evaluate(raw_tags: &[String], rules: &[TagRule], git: &GitRef) -> Evaluation {
    let mut evaluation = Evaluation::default();
    let add = |evaluation: &mut Evaluation, tag: String, source: &'static str| {
        if !tag.is_empty() && !evaluation.tags.iter().any(|t| t.tag == tag) {
            evaluation.tags.push(SourcedTag { tag, source });
        }
    };
    for tag in raw_tags {
        add(&mut evaluation, tag.clone(), "tags");
    }
    for rule in rules {
        let source = rule.name();
        let skip = |evaluation: &mut Evaluation, reason: &str| {
            evaluation.skipped.push((rule.clone(), reason.to_owned()));
        };
        match rule {
            TagRule::Latest => add(&mut evaluation, "latest".to_owned(), source),
            TagRule::Raw(tag) => add(&mut evaluation, tag.clone(), source),
            TagRule::Commit | TagRule::CommitShort => match git.sha.as_deref() {
                // A commit id is hex (40 digits, 64 in a SHA-256 repository): anything else
                // would make an invalid tag.
                Some(sha)
                    if !sha.is_empty()
                        && (sha.len() > 128 || !sha.bytes().all(|b| b.is_ascii_hexdigit())) =>
                {
                    skip(&mut evaluation, "`GITHUB_SHA` is not a commit id");
                }
                Some(sha) if !sha.is_empty() => {
                    let tag = if *rule == TagRule::Commit {
                        sha.to_owned()
                    } else {
                        sha.chars().take(8).collect()
                    };
                    add(&mut evaluation, tag, source);
                }
                _ => skip(&mut evaluation, "no commit: `GITHUB_SHA` is not set"),
            },
            TagRule::Branch => match git.short_name() {
                Some(name) if git.is_branch() => {
                    let tag = sanitize(name);
                    if tag.is_empty() {
                        skip(&mut evaluation, "the branch name leaves no valid tag");
                    } else {
                        add(&mut evaluation, tag, source);
                    }
                }
                _ => skip(&mut evaluation, "this run is not for a branch"),
            },
            TagRule::Semver => match git.version() {
                Some(version) if semver_tag(&version).len() > 128 => skip(
                    &mut evaluation,
                    "the version is longer than a tag may be (128 characters)",
                ),
                Some(version) if !version.pre.is_empty() => {
                    add(&mut evaluation, semver_tag(&version), source);
                }
                Some(version) => {
                    add(&mut evaluation, semver_tag(&version), source);
                    add(
                        &mut evaluation,
                        format!("{}.{}", version.major, version.minor),
                        source,
                    );
                    // `0` would name every pre-1.0 release at once; metadata-action skips it too.
                    if version.major > 0 {
                        add(&mut evaluation, version.major.to_string(), source);
                    }
                }
                None => skip(&mut evaluation, "this run is not for a tag like `v1.4.2`"),
            },
            TagRule::LatestAuto => match git.version() {
                Some(version) if version.pre.is_empty() => {
                    evaluation.latest_auto = Some(version);
                }
                Some(version) => skip(&mut evaluation, &format!("`{version}` is a pre-release")),
                None => skip(&mut evaluation, "this run is not for a tag like `v1.4.2`"),
            },
        }
    }
    evaluation
}

/// `1.4.2`, `2.0.0-rc.1`; build metadata (`+build`) cannot be in a tag and is dropped.
fn semver_tag(version: &Version) -> String {
    let mut plain = version.clone();
    plain.build = semver::BuildMetadata::EMPTY;
    plain.to_string()
}

/// Whether `latest` may move to `version`: it is at least as high as every released semantic
/// version already tagged in the repository (`v` prefixes allowed; pre-releases do not count,
/// as `latest` never points at one), so that a patch of an old line never moves `latest` back.
#[must_use]
pub fn is_highest<'a>(version: &Version, existing_tags: impl IntoIterator<Item = &'a str>) -> bool {
    existing_tags
        .into_iter()
        .filter_map(|tag| Version::parse(tag.strip_prefix('v').unwrap_or(tag)).ok())
        .filter(|existing| existing.pre.is_empty())
        .all(|existing| existing <= *version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn git(full: &str, name: &str, kind: &str) -> GitRef {
        GitRef {
            full: Some(full.into()),
            name: Some(name.into()),
            kind: Some(kind.into()),
            sha: Some("0123456789abcdef0123456789abcdef01234567".into()),
        }
    }

    fn rules(text: &str) -> Vec<TagRule> {
        text.lines()
            .map(|l| l.parse().expect("valid rule"))
            .collect()
    }

    fn tags(evaluation: &Evaluation) -> Vec<&str> {
        evaluation.tags.iter().map(|t| t.tag.as_str()).collect()
    }

    const ALL: &str = "latest\nraw=edge\ncommit\ncommit-short\nbranch\nsemver\nlatest=auto";

    #[rstest]
    #[case::branch(git("refs/heads/main", "main", "branch"),
        &["latest", "edge", "0123456789abcdef0123456789abcdef01234567", "01234567", "main"], None, 2)]
    #[case::release_tag(git("refs/tags/v1.4.2", "v1.4.2", "tag"),
        &["latest", "edge", "0123456789abcdef0123456789abcdef01234567", "01234567", "1.4.2", "1.4", "1"], Some("1.4.2"), 1)]
    #[case::pre_release(git("refs/tags/v2.0.0-rc.1", "v2.0.0-rc.1", "tag"),
        &["latest", "edge", "0123456789abcdef0123456789abcdef01234567", "01234567", "2.0.0-rc.1"], None, 2)]
    #[case::pull_request(git("refs/pull/7/merge", "7/merge", "branch"),
        &["latest", "edge", "0123456789abcdef0123456789abcdef01234567", "01234567"], None, 3)]
    #[case::detached_sha(GitRef { sha: Some("0123456789abcdef0123456789abcdef01234567".into()), ..GitRef::default() },
        &["latest", "edge", "0123456789abcdef0123456789abcdef01234567", "01234567"], None, 3)]
    #[case::zero_major(git("refs/tags/v0.3.0", "v0.3.0", "tag"),
        &["latest", "edge", "0123456789abcdef0123456789abcdef01234567", "01234567", "0.3.0", "0.3"], Some("0.3.0"), 1)]
    fn every_rule_over_every_kind_of_ref(
        #[case] git: GitRef,
        #[case] expected: &[&str],
        #[case] auto: Option<&str>,
        #[case] skipped: usize,
    ) {
        let evaluation = evaluate(&[], &rules(ALL), &git);
        assert_eq!(tags(&evaluation), expected);
        assert_eq!(
            evaluation.latest_auto.map(|v| v.to_string()).as_deref(),
            auto
        );
        assert_eq!(
            evaluation.skipped.len(),
            skipped,
            "{:?}",
            evaluation.skipped
        );
    }

    #[test]
    fn raw_tags_come_first_and_duplicates_keep_their_first_source() {
        let evaluation = evaluate(
            &["stable".into(), "latest".into()],
            &rules("latest\nraw=stable"),
            &GitRef::default(),
        );
        assert_eq!(
            evaluation.tags,
            vec![
                SourcedTag {
                    tag: "stable".into(),
                    source: "tags"
                },
                SourcedTag {
                    tag: "latest".into(),
                    source: "tags"
                },
            ]
        );
    }

    #[rstest]
    #[case("feature/Foo_bar", "feature-Foo_bar")]
    #[case("release/1.x", "release-1.x")]
    #[case("-weird--name", "weird--name")]
    #[case(
        "dependabot/npm_and_yarn/@types/node-20",
        "dependabot-npm_and_yarn--types-node-20"
    )]
    fn branch_names_become_valid_tags(#[case] name: &str, #[case] tag: &str) {
        assert_eq!(sanitize(name), tag);
    }

    #[test]
    fn long_branch_names_are_cut_to_128() {
        assert_eq!(sanitize(&"a".repeat(300)).len(), 128);
    }

    #[rstest]
    #[case("1.4.3", &["1.5.0", "latest", "1.4.2"], false)]
    #[case("1.6.0", &["1.5.0", "latest", "v1.4.2"], true)]
    #[case("1.5.0", &["1.5.0"], true)]
    #[case("1.5.0", &["2.0.0-rc.1"], true)]
    #[case("1.0.0", &[], true)]
    fn latest_moves_only_forward(
        #[case] version: &str,
        #[case] existing: &[&str],
        #[case] highest: bool,
    ) {
        let version = Version::parse(version).expect("valid");
        assert_eq!(is_highest(&version, existing.iter().copied()), highest);
    }

    #[rstest]
    #[case("raw=")]
    #[case("semver=true")]
    #[case("Latest")]
    fn refuses_unknown_rules(#[case] text: &str) {
        assert!(text.parse::<TagRule>().is_err());
    }
}

/// Property tests (issue 14): whatever the rules and the runner's ref variables, evaluating
/// never panics and every tag produced is a valid OCI tag.
#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    /// The distribution spec's tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    fn is_oci_tag(tag: &str) -> bool {
        let mut bytes = tag.bytes();
        bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && tag.len() <= 128
            && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[a-zA-Z0-9/._+-]{0,40}",
            "v?[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(-[a-zA-Z0-9.-]{1,200})?(\\+[a-zA-Z0-9.]{1,20})?",
            "[0-9a-f]{40}",
        ]
    }

    fn git_ref() -> impl Strategy<Value = GitRef> {
        let full = prop_oneof![
            text().prop_map(|t| format!("refs/heads/{t}")),
            text().prop_map(|t| format!("refs/tags/{t}")),
            text().prop_map(|t| format!("refs/pull/{t}/merge")),
            text(),
        ];
        (
            proptest::option::of(full),
            proptest::option::of(text()),
            proptest::option::of(prop_oneof![
                Just("branch".to_owned()),
                Just("tag".to_owned()),
                text()
            ]),
            proptest::option::of(text()),
        )
            .prop_map(|(full, name, kind, sha)| GitRef {
                full,
                name,
                kind,
                sha,
            })
    }

    fn rule_line() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("latest".to_owned()),
            Just("latest=auto".to_owned()),
            Just("commit".to_owned()),
            Just("commit-short".to_owned()),
            Just("branch".to_owned()),
            Just("semver".to_owned()),
            "[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}".prop_map(|t| format!("raw={t}")),
            text(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn rules_give_valid_tags_or_nothing(
            lines in prop::collection::vec(rule_line(), 0..8),
            raw in prop::collection::vec("[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", 0..3),
            git in git_ref(),
            existing in prop::collection::vec(text(), 0..5),
        ) {
            // Parsing any text never panics; what parses is what the inputs module accepts
            // (`raw=` tags it checks itself, as generated here).
            let rules: Vec<TagRule> = lines
                .iter()
                .filter_map(|l| l.parse::<TagRule>().ok())
                .filter(|r| !matches!(r, TagRule::Raw(tag) if !is_oci_tag(tag)))
                .collect();
            for rule in &rules {
                let again = rule.to_string().parse::<TagRule>();
                prop_assert_eq!(again.as_ref(), Ok(rule));
            }
            let evaluation = evaluate(&raw, &rules, &git);
            for tag in &evaluation.tags {
                prop_assert!(is_oci_tag(&tag.tag), "`{}` from `{}` is not a valid tag", tag.tag, tag.source);
            }
            let mut seen = std::collections::HashSet::new();
            prop_assert!(evaluation.tags.iter().all(|t| seen.insert(&t.tag)), "a tag twice");
            if let Some(version) = &evaluation.latest_auto {
                prop_assert!(version.pre.is_empty());
                let _ = is_highest(version, existing.iter().map(String::as_str));
            }
        }

        #[test]
        fn a_sanitized_name_is_a_valid_tag_or_empty(name in text()) {
            let tag = sanitize(&name);
            prop_assert!(tag.is_empty() || is_oci_tag(&tag), "`{}`", tag);
        }
    }
}

//! An ECR repository's tag mutability: the four modes, their wildcard exclusion filters, and
//! which tags they make immutable. Pure: the `ecr` module sends and reads it, `inputs` parses
//! it, the push decides per tag with [`TagMutability::is_immutable`].
//!
//! The rules are ECR's (API reference, `CreateRepository`/`PutImageTagMutability` and
//! `ImageTagMutabilityExclusionFilter`, since 2025-07): a filter is 1 to 128 characters of
//! `[0-9a-zA-Z._*-]` of type `WILDCARD`, where `*` matches any run of characters and the
//! filter is matched against the whole tag; a repository has 1 to 5 filters, and only in the
//! `*_WITH_EXCLUSION` modes.

use std::fmt;
use std::str::FromStr;

/// The most filters a repository can have.
pub const MAX_EXCLUSION_FILTERS: usize = 5;

/// The longest filter ECR accepts.
pub const MAX_FILTER_LENGTH: usize = 128;

/// One ECR wildcard filter, e.g. `latest` or `dev-*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagFilter(String);

impl TagFilter {
    /// The filter as ECR stores it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the whole `tag` matches, `*` standing for any run of characters (none too).
    #[must_use]
    pub fn matches(&self, tag: &str) -> bool {
        wildcard_match(self.0.as_bytes(), tag.as_bytes())
    }
}

impl fmt::Display for TagFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a filter was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an ECR wildcard filter: use 1 to 128 letters, digits, `.`, `_`, `-` and `*` (any run of characters)")]
pub struct TagFilterParseError(pub String);

impl FromStr for TagFilter {
    type Err = TagFilterParseError;

    fn from_str(filter: &str) -> Result<Self, Self::Err> {
        let ok = (1..=MAX_FILTER_LENGTH).contains(&filter.len())
            && filter
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'*'));
        if ok {
            Ok(TagFilter(filter.to_owned()))
        } else {
            Err(TagFilterParseError(filter.to_owned()))
        }
    }
}

/// `*`-only glob over bytes (filters are ASCII), whole-string: the classic greedy match that
/// backtracks to the last `*`, linear in practice and never exponential.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            last_star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star, matched)) = last_star {
            // Let the last `*` swallow one more character and retry from there.
            p = star + 1;
            t = matched + 1;
            last_star = Some((star, matched + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Tag mutability of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TagMutability {
    /// Every tag may be moved.
    #[default]
    Mutable,
    /// No tag, once pushed, may be moved.
    Immutable,
    /// Tags may be moved, except those matching a filter.
    MutableWithExclusion(Vec<TagFilter>),
    /// No tag may be moved, except those matching a filter.
    ImmutableWithExclusion(Vec<TagFilter>),
}

impl TagMutability {
    /// The mode's name in the ECR API.
    #[must_use]
    pub fn mode(&self) -> &'static str {
        match self {
            TagMutability::Mutable => "MUTABLE",
            TagMutability::Immutable => "IMMUTABLE",
            TagMutability::MutableWithExclusion(_) => "MUTABLE_WITH_EXCLUSION",
            TagMutability::ImmutableWithExclusion(_) => "IMMUTABLE_WITH_EXCLUSION",
        }
    }

    /// The exclusion filters (none in the plain modes).
    #[must_use]
    pub fn exclusion_filters(&self) -> &[TagFilter] {
        match self {
            TagMutability::Mutable | TagMutability::Immutable => &[],
            TagMutability::MutableWithExclusion(filters)
            | TagMutability::ImmutableWithExclusion(filters) => filters,
        }
    }

    /// Whether ECR refuses to move `tag` once it exists (a manifest PUT to it fails with
    /// `TAG_INVALID`, even for the same digest).
    #[must_use]
    pub fn is_immutable(&self, tag: &str) -> bool {
        let excluded = || self.exclusion_filters().iter().any(|f| f.matches(tag));
        match self {
            TagMutability::Mutable => false,
            TagMutability::Immutable => true,
            TagMutability::MutableWithExclusion(_) => excluded(),
            TagMutability::ImmutableWithExclusion(_) => !excluded(),
        }
    }
}

/// The mode, and its filters when it has any: `IMMUTABLE_WITH_EXCLUSION (latest, dev-*)`.
impl fmt::Display for TagMutability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.mode())?;
        let filters = self.exclusion_filters();
        if !filters.is_empty() {
            let list: Vec<&str> = filters.iter().map(TagFilter::as_str).collect();
            write!(f, " ({})", list.join(", "))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn filter(text: &str) -> TagFilter {
        text.parse().expect("valid filter")
    }

    #[rstest]
    #[case("latest", "latest", true)]
    #[case("latest", "latest-amd64", false)]
    #[case("latest", "xlatest", false)]
    #[case("latest", "Latest", false)]
    #[case("dev-*", "dev-", true)]
    #[case("dev-*", "dev-feature-1", true)]
    #[case("dev-*", "dev", false)]
    #[case("dev-*", "prod-dev-1", false)]
    #[case("*-rc", "1.0.0-rc", true)]
    #[case("*-rc", "1.0.0-rc.1", false)]
    #[case("v*.*", "v1.2", true)]
    #[case("v*.*", "v1", false)]
    #[case("*", "anything", true)]
    #[case("**", "x", true)]
    #[case("a*b*c", "abc", true)]
    #[case("a*b*c", "a-b-b-c", true)]
    #[case("a*b*c", "a-c-b", false)]
    #[case("*sha-*", "main-sha-0123abc", true)]
    #[case("1.0.0", "1x0x0", false)]
    fn a_filter_matches_the_whole_tag_with_star_for_any_run(
        #[case] pattern: &str,
        #[case] tag: &str,
        #[case] matches: bool,
    ) {
        assert_eq!(filter(pattern).matches(tag), matches, "{pattern} ~ {tag}");
    }

    #[test]
    fn a_long_run_of_stars_does_not_backtrack_exponentially() {
        let pattern = format!("{}b", "a*".repeat(60));
        let tag = "a".repeat(128);
        assert!(!filter(&pattern).matches(&tag));
    }

    #[rstest]
    #[case("latest")]
    #[case("*")]
    #[case("release-*.*")]
    #[case("A_b.C-9*")]
    fn accepts_ecr_wildcards(#[case] text: &str) {
        assert_eq!(filter(text).as_str(), text);
    }

    #[test]
    fn accepts_128_characters_and_no_more() {
        assert!("a".repeat(128).parse::<TagFilter>().is_ok());
        assert!("a".repeat(129).parse::<TagFilter>().is_err());
    }

    #[rstest]
    #[case("")]
    #[case("dev-?")]
    #[case("v[0-9]*")]
    #[case("^latest$")]
    #[case("team/api")]
    #[case("tag with space")]
    #[case("lätest")]
    fn refuses_what_is_not_an_ecr_wildcard(#[case] text: &str) {
        let error = text.parse::<TagFilter>().expect_err("invalid");
        assert!(
            error.to_string().contains("is not an ECR wildcard filter"),
            "{error}"
        );
    }

    #[test]
    fn the_plain_modes_decide_every_tag_alike() {
        assert!(!TagMutability::Mutable.is_immutable("latest"));
        assert!(TagMutability::Immutable.is_immutable("latest"));
        assert!(TagMutability::Immutable.is_immutable("v1.0.0"));
    }

    #[test]
    fn immutable_with_exclusion_lets_matching_tags_move() {
        let mutability =
            TagMutability::ImmutableWithExclusion(vec![filter("latest"), filter("dev-*")]);
        assert!(!mutability.is_immutable("latest"));
        assert!(!mutability.is_immutable("dev-42"));
        assert!(mutability.is_immutable("v1.0.0"));
        assert!(mutability.is_immutable("latest-amd64"));
    }

    #[test]
    fn mutable_with_exclusion_pins_matching_tags() {
        let mutability = TagMutability::MutableWithExclusion(vec![filter("v*.*.*")]);
        assert!(mutability.is_immutable("v1.2.3"));
        assert!(!mutability.is_immutable("latest"));
        assert!(!mutability.is_immutable("v1.2"));
    }

    #[test]
    fn display_names_the_mode_and_its_filters() {
        assert_eq!(TagMutability::Immutable.to_string(), "IMMUTABLE");
        assert_eq!(
            TagMutability::ImmutableWithExclusion(vec![filter("latest"), filter("dev-*")])
                .to_string(),
            "IMMUTABLE_WITH_EXCLUSION (latest, dev-*)"
        );
        assert_eq!(
            TagMutability::MutableWithExclusion(vec![filter("v*")]).mode(),
            "MUTABLE_WITH_EXCLUSION"
        );
    }
}

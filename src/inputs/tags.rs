//! `tags` and `tag-rules`: the registry tag grammar, full references that name this run's
//! repository, and the rules evaluated later against the git ref.

use crate::platform::Platform;
use crate::tag_rules::{self, TagRule};

use super::git::{git_context, GitContext};
use super::{boolean, given, list, names, Args, InputError};

/// What the run tags: the tags and rules evaluated for its git ref, and whether each platform
/// image gets its own tag.
#[derive(Debug)]
pub(super) struct Tagging {
    pub tag_evaluation: tag_rules::Evaluation,
    pub git: GitContext,
    pub arch_tags: bool,
}

impl Tagging {
    /// `tags` (full references must name `host`), `tag-rules` (already read) evaluated for the
    /// run's git ref, and `arch-tags`. Only a `platform-only` run may end with no tag at all.
    pub(super) fn parse(
        args: &Args,
        tag_rules: &[TagRule],
        host: &TagHost<'_>,
        platforms: &[Platform],
        platform_only: bool,
    ) -> Result<Tagging, InputError> {
        // `latest` is the default only when neither `tags` nor `tag-rules` says anything, so
        // that `latest=auto` really decides.
        let tags_value =
            given(args.tags.as_ref()).or_else(|| tag_rules.is_empty().then_some("latest"));
        let tags = tags(tags_value, host)?;
        let git = git_context(args);
        let evaluation = tag_rules::evaluate(&tags, tag_rules, &git.git_ref);
        // `latest=auto` may still add `latest`; that is the first tag then, at the longest.
        let first_tag = match (evaluation.tags.first(), &evaluation.latest_auto) {
            (Some(first), _) => first.tag.clone(),
            (None, Some(_)) => "latest".to_owned(),
            // Nothing goes under a tag anyway; `latest` is where layers are looked up.
            (None, None) if platform_only => "latest".to_owned(),
            (None, None) => {
                let reasons: Vec<String> = evaluation
                    .skipped
                    .iter()
                    .map(|(rule, why)| format!("`{rule}`: {why}"))
                    .collect();
                return Err(InputError::new(
                    if tag_rules.is_empty() { names::TAGS } else { names::TAG_RULES },
                    format!(
                        "this run would push under no tag at all ({}): add a tag or a rule that applies",
                        if reasons.is_empty() { "no tag given".to_owned() } else { reasons.join("; ") }
                    ),
                ));
            }
        };
        let arch_tags = arch_tags(args, &first_tag, platforms, platform_only)?;
        Ok(Tagging {
            tag_evaluation: evaluation,
            git,
            arch_tags,
        })
    }
}

/// `arch-tags`, off by default (issue 9): only the requested tags; children go by digest.
/// `<first tag>-<arch>` must itself be a tag.
fn arch_tags(
    args: &Args,
    first_tag: &str,
    platforms: &[Platform],
    platform_only: bool,
) -> Result<bool, InputError> {
    let arch_tags = boolean(names::ARCH_TAGS, args.arch_tags.as_ref(), false)?;
    if arch_tags && platform_only {
        return Err(InputError::new(
            names::ARCH_TAGS,
            "a `platform-only` run puts no tag at all: set `arch-tags` on the `merge` run, which tags the platform images",
        ));
    }
    if arch_tags {
        // A 128-character first tag leaves no room.
        for platform in platforms {
            let tag = format!("{first_tag}-{}", platform.tag_suffix());
            if !is_tag(&tag) {
                return Err(InputError::new(
                    names::TAGS,
                    format!("the per-platform tag `{tag}` would be longer than 128 characters: shorten the first tag or set `arch-tags: false`"),
                ));
            }
        }
    }
    Ok(arch_tags)
}

/// The registry tag grammar (distribution spec): `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
pub(super) fn is_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    tag.len() <= 128
        && bytes
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Where full references in `tags` may point: the `registry` input, or this region's ECR
/// (of `registry-id` when given).
pub(super) struct TagHost<'a> {
    pub(super) repository: &'a str,
    pub(super) registry: Option<&'a str>,
    pub(super) region: &'a str,
    pub(super) registry_id: Option<&'a str>,
}

impl TagHost<'_> {
    pub(super) fn accepts(&self, host: &str) -> bool {
        if let Some(registry) = self.registry {
            return host == registry;
        }
        let Some((account, rest)) = host.split_once('.') else {
            return false;
        };
        account.len() == 12
            && account.bytes().all(|b| b.is_ascii_digit())
            && self.registry_id.is_none_or(|id| id == account)
            && rest == format!("dkr.ecr.{}.amazonaws.com", self.region)
    }
}

/// The `tags` input: plain tags, or full references as docker/metadata-action gives them,
/// accepted when they name this repository.
fn tags(value: Option<&str>, host: &TagHost<'_>) -> Result<Vec<String>, InputError> {
    let mut tags: Vec<String> = Vec::new();
    for item in list(value.unwrap_or("")) {
        let tag = match item.rsplit_once(':') {
            Some((reference, tag)) if reference.contains('/') && !tag.contains('/') => {
                let (registry_host, path) = reference.split_once('/').unwrap_or((reference, ""));
                if path != host.repository || !host.accepts(registry_host) {
                    return Err(InputError::new(
                        names::TAGS,
                        format!(
                            "`{item}` names another repository: a full reference must be `<registry>/{}:<tag>` with this run's registry",
                            host.repository
                        ),
                    ));
                }
                tag
            }
            _ => item,
        };
        if !is_tag(tag) {
            return Err(InputError::new(
                names::TAGS,
                format!(
                    "`{tag}` is not a valid tag: use up to 128 letters, digits, `_`, `.` and `-`, \
                     not starting with `.` or `-`"
                ),
            ));
        }
        if tags.iter().any(|t| t == tag) {
            return Err(InputError::new(
                names::TAGS,
                format!("`{tag}` is listed twice"),
            ));
        }
        tags.push(tag.to_owned());
    }
    Ok(tags)
}

pub(super) fn rules(value: Option<&String>) -> Result<Vec<TagRule>, InputError> {
    let mut rules = Vec::new();
    for line in given(value).unwrap_or("").lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        let rule: TagRule = line.parse().map_err(|e: tag_rules::TagRuleParseError| {
            InputError::new(names::TAG_RULES, e.to_string())
        })?;
        if let TagRule::Raw(tag) = &rule {
            if !is_tag(tag) {
                return Err(InputError::new(
                    names::TAG_RULES,
                    format!("`{line}`: `{tag}` is not a valid tag"),
                ));
            }
        }
        rules.push(rule);
    }
    Ok(rules)
}

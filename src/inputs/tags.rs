//! `tags` and `tag-rules`: the registry tag grammar, full references that name this run's
//! repository, and the rules evaluated later against the git ref.

use crate::tag_rules::{self, TagRule};

use super::{given, list, names, InputError};

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
pub(super) fn tags(value: Option<&str>, host: &TagHost<'_>) -> Result<Vec<String>, InputError> {
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

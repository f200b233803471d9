//! What a run will push: the index tags (from `tags` and `tag-rules`), per-platform tags, the
//! labels of every image, and which tags move. Pure: no async, no clients, no environment; the
//! facts from servers (the repository's tags for `latest=auto`, what each tag holds now, the
//! repository's tag mutability) are passed in.

use std::collections::BTreeMap;

use crate::inputs::{names, InputError, Request, TagMutability};
use crate::platform::Platform;
use crate::tag_rules::{self, SourcedTag};

/// One platform's image and the extra tag it gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformPlan {
    /// The platform to build.
    pub platform: Platform,
    /// `<first tag>-<arch>` when `arch-tags` is on. Platform images are pushed by digest
    /// either way: this tag is an extra, put once the image is in.
    pub arch_tag: Option<String>,
}

/// What a run does to one tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagAction {
    /// The tag is missing or holds another digest: it is pushed.
    Push,
    /// The tag already holds this run's digest: left as it is, so that a re-run works on an
    /// immutable repository too (ECR refuses any PUT to an existing immutable tag, even with
    /// the same digest: aws/containers-roadmap#2179).
    Unchanged,
}

impl TagAction {
    /// `pushed` or `unchanged`, as `metadata` says it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            TagAction::Push => "pushed",
            TagAction::Unchanged => "unchanged",
        }
    }
}

/// One tag and what happens to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagUpdate {
    /// The tag.
    pub tag: String,
    /// The input or rule that asked for it.
    pub source: &'static str,
    /// The digest it holds before the run, if any.
    pub held: Option<String>,
    /// Push or leave.
    pub action: TagAction,
}

/// A tag that holds another digest in a repository where it cannot move.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tag `{tag}` already holds `{held}` and cannot move to `{wanted}`: repository `{repository}` is {mutability}; nothing was uploaded. Push under a new tag (e.g. the version or the commit), or exclude `{tag}` from immutability (`IMMUTABLE_WITH_EXCLUSION`)")]
pub struct ImmutableTag {
    /// The tag.
    pub tag: String,
    /// The digest it holds.
    pub held: String,
    /// The digest this run would put there.
    pub wanted: String,
    /// The repository.
    pub repository: String,
    /// Its mutability setting, as ECR names it.
    pub mutability: String,
}

impl ImmutableTag {
    /// The user's to fix: another tag, or the repository's mutability.
    #[must_use]
    pub fn exit_status(&self) -> crate::exit_status::ExitStatus {
        crate::exit_status::ExitStatus::User
    }
}

/// Decides each tag's fate: a tag that already holds `digest` is left alone; any other is
/// pushed, unless it exists and the repository's mutability makes it immutable, which fails the
/// run before anything is uploaded.
pub fn tag_updates(
    tags: &[SourcedTag],
    held: &BTreeMap<String, Option<String>>,
    digest: &str,
    mutability: &TagMutability,
    repository: &str,
) -> Result<Vec<TagUpdate>, ImmutableTag> {
    tags.iter()
        .map(|wanted| {
            let now = held.get(&wanted.tag).cloned().flatten();
            let action = match &now {
                Some(current) if current == digest => TagAction::Unchanged,
                Some(current) if mutability.is_immutable(&wanted.tag) => {
                    return Err(ImmutableTag {
                        tag: wanted.tag.clone(),
                        held: current.clone(),
                        wanted: digest.to_owned(),
                        repository: repository.to_owned(),
                        mutability: mutability.to_string(),
                    })
                }
                _ => TagAction::Push,
            };
            Ok(TagUpdate {
                tag: wanted.tag.clone(),
                source: wanted.source,
                held: now,
                action,
            })
        })
        .collect()
}

/// Everything a run pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// ECR repository name.
    pub repository: String,
    /// Each platform's image, in the requested order.
    pub platforms: Vec<PlatformPlan>,
    /// Tags the index is pushed under, in order, each with the input or rule that gave it.
    /// A `platform-only` run pushes under none of them.
    pub index_tags: Vec<SourcedTag>,
    /// Labels for every image: OCI labels from the GitHub context, then the `labels` input.
    pub labels: BTreeMap<String, String>,
    /// What the user should know about the tags: rules that gave nothing, `latest=auto`'s
    /// decision.
    pub notices: Vec<String>,
}

impl Plan {
    /// Whether the plan needs the repository's existing tags (for `latest=auto`).
    #[must_use]
    pub fn needs_repository_tags(request: &Request) -> bool {
        request.tag_evaluation.latest_auto.is_some()
    }

    /// Derives the plan of a run that tags its index from a validated request and, for
    /// `latest=auto`, the tags already in the repository. Fails when no tag at all is left to
    /// push.
    pub fn new(request: &Request, repository_tags: &[String]) -> Result<Plan, InputError> {
        let evaluation = request.tag_evaluation.clone();
        let mut notices: Vec<String> = evaluation
            .skipped
            .iter()
            .map(|(rule, why)| format!("tag rule `{rule}` gave no tag: {why}"))
            .collect();
        let mut index_tags = evaluation.tags;
        if let Some(version) = &evaluation.latest_auto {
            let existing = repository_tags.iter().map(String::as_str);
            if tag_rules::is_highest(version, existing) {
                if !index_tags.iter().any(|t| t.tag == "latest") {
                    index_tags.push(SourcedTag {
                        tag: "latest".to_owned(),
                        source: "latest=auto",
                    });
                }
                notices.push(format!(
                    "`latest=auto`: `{version}` is the highest release in the repository, so `latest` moves to it"
                ));
            } else {
                notices.push(format!(
                    "`latest=auto`: the repository already has a release above `{version}`, so `latest` stays where it is"
                ));
            }
        }
        let Some(first_tag) = index_tags.first().map(|t| t.tag.clone()) else {
            return Err(InputError {
                input: names::TAG_RULES,
                message: format!(
                    "this run would push under no tag at all ({}): add a tag or a rule that applies",
                    notices.join("; ")
                ),
            });
        };
        let platforms = request
            .platforms
            .iter()
            .map(|platform| PlatformPlan {
                platform: platform.clone(),
                arch_tag: request
                    .arch_tags
                    .then(|| format!("{first_tag}-{}", platform.tag_suffix())),
            })
            .collect();
        Ok(Plan {
            repository: request.repository.clone(),
            platforms,
            index_tags,
            labels: labels(request),
            notices,
        })
    }

    /// A `platform-only` run's plan (issue 10): no tag is pushed, so no rule is worth a notice
    /// and `latest=auto` is left to the merge run; the first tag (`latest` when the tags give
    /// none) is only where the layers already in the repository are looked up.
    #[must_use]
    pub fn platform_only(request: &Request) -> Plan {
        let mut index_tags = request.tag_evaluation.tags.clone();
        if index_tags.is_empty() {
            index_tags.push(SourcedTag {
                tag: "latest".to_owned(),
                source: names::PLATFORM_ONLY,
            });
        }
        Plan {
            repository: request.repository.clone(),
            platforms: request
                .platforms
                .iter()
                .map(|platform| PlatformPlan {
                    platform: platform.clone(),
                    arch_tag: None,
                })
                .collect(),
            index_tags,
            labels: labels(request),
            notices: Vec::new(),
        }
    }

    /// The index tags alone.
    #[must_use]
    pub fn tag_names(&self) -> Vec<String> {
        self.index_tags.iter().map(|t| t.tag.clone()).collect()
    }
}

/// OCI annotations as labels from the GitHub context
/// (<https://github.com/opencontainers/image-spec/blob/main/annotations.md>), overridden by
/// the `labels` input. Without a GitHub repository, only the input's labels.
fn labels(request: &Request) -> BTreeMap<String, String> {
    let git = &request.git;
    let mut labels = BTreeMap::new();
    if let Some(repository) = &git.repository {
        labels.insert(
            "org.opencontainers.image.source".to_owned(),
            format!("{}/{repository}", git.server_url.trim_end_matches('/')),
        );
        labels.insert(
            "org.opencontainers.image.created".to_owned(),
            git.created.clone(),
        );
        if let Some(sha) = &git.git_ref.sha {
            labels.insert("org.opencontainers.image.revision".to_owned(), sha.clone());
        }
        let version = git.git_ref.version().map(|v| v.to_string()).or_else(|| {
            git.git_ref
                .name
                .as_deref()
                .map(tag_rules::sanitize)
                .filter(|n| !n.is_empty())
        });
        if let Some(version) = version {
            labels.insert("org.opencontainers.image.version".to_owned(), version);
        }
    }
    labels.extend(request.labels.clone());
    labels
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inputs::Args;
    use rstest::rstest;

    fn request(platforms: &str, tags: &str, arch_tags: &str) -> Request {
        Request::try_from(Args {
            repository: Some("team/api".into()),
            context: Some(env!("CARGO_MANIFEST_DIR").to_owned() + "/examples/hello"),
            aws_region: Some("us-east-1".into()),
            platforms: Some(platforms.into()),
            tags: Some(tags.into()),
            arch_tags: Some(arch_tags.into()),
            ..Args::default()
        })
        .expect("valid request")
    }

    #[rstest]
    #[case("linux/amd64,linux/arm64", "latest", "true", &[Some("latest-amd64"), Some("latest-arm64")], &["latest"])]
    #[case("linux/arm/v7", "v1.2,stable", "true", &[Some("v1.2-arm-v7")], &["v1.2", "stable"])]
    #[case("linux/amd64,linux/arm64", "edge", "false", &[None, None], &["edge"])]
    fn derives_platform_and_index_tags(
        #[case] platforms: &str,
        #[case] tags: &str,
        #[case] arch_tags: &str,
        #[case] expected_arch_tags: &[Option<&str>],
        #[case] expected_index_tags: &[&str],
    ) {
        let plan = Plan::new(&request(platforms, tags, arch_tags), &[]).expect("valid plan");
        let arch: Vec<Option<&str>> = plan
            .platforms
            .iter()
            .map(|p| p.arch_tag.as_deref())
            .collect();
        assert_eq!(arch, expected_arch_tags);
        assert_eq!(plan.tag_names(), expected_index_tags);
        assert_eq!(plan.repository, "team/api");
    }

    fn release_request(rules: &str, labels: &str) -> Request {
        let mut request = request("linux/amd64", "", "true");
        request.labels = labels
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        request.git = crate::inputs::GitContext {
            git_ref: crate::tag_rules::GitRef {
                full: Some("refs/tags/v1.4.3".into()),
                name: Some("v1.4.3".into()),
                kind: Some("tag".into()),
                sha: Some("abc123".into()),
            },
            repository: Some("octo/app".into()),
            server_url: "https://github.com".into(),
            created: "2026-11-20T10:00:00Z".into(),
            ..crate::inputs::GitContext::default()
        };
        let rules: Vec<crate::tag_rules::TagRule> =
            rules.lines().map(|r| r.parse().expect("rule")).collect();
        request.tag_evaluation = tag_rules::evaluate(&[], &rules, &request.git.git_ref);
        request
    }

    #[test]
    fn latest_auto_decides_against_the_repository() {
        let request = release_request("semver\nlatest=auto", "");
        assert!(Plan::needs_repository_tags(&request));
        let older = Plan::new(&request, &["1.5.0".into()]).expect("plan");
        assert_eq!(older.tag_names(), vec!["1.4.3", "1.4", "1"]);
        assert!(older.notices[0].contains("stays where it is"));
        let newest = Plan::new(&request, &["1.4.2".into(), "latest".into()]).expect("plan");
        assert_eq!(newest.tag_names(), vec!["1.4.3", "1.4", "1", "latest"]);
        assert_eq!(newest.platforms[0].arch_tag.as_deref(), Some("1.4.3-amd64"));
        let only_auto = release_request("latest=auto", "");
        let error = Plan::new(&only_auto, &["2.0.0".into()]).expect_err("no tag");
        assert_eq!(error.input, "tag-rules");
    }

    #[test]
    fn oci_labels_come_from_the_github_context_and_yield_to_the_input() {
        let request = release_request(
            "semver",
            "org.opencontainers.image.source=https://example.com/app\nteam=core",
        );
        let plan = Plan::new(&request, &[]).expect("plan");
        let labels: Vec<(&str, &str)> = plan
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            vec![
                ("org.opencontainers.image.created", "2026-11-20T10:00:00Z"),
                ("org.opencontainers.image.revision", "abc123"),
                ("org.opencontainers.image.source", "https://example.com/app"),
                ("org.opencontainers.image.version", "1.4.3"),
                ("team", "core"),
            ]
        );
    }

    fn sourced(tags: &[&str]) -> Vec<SourcedTag> {
        tags.iter()
            .map(|t| SourcedTag {
                tag: (*t).to_owned(),
                source: "tags",
            })
            .collect()
    }

    fn held(pairs: &[(&str, Option<&str>)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(t, d)| ((*t).to_owned(), d.map(str::to_owned)))
            .collect()
    }

    #[rstest]
    #[case::new_tag_on_immutable(TagMutability::Immutable, None, Ok(TagAction::Push))]
    #[case::same_digest_on_immutable(
        TagMutability::Immutable,
        Some("sha256:new"),
        Ok(TagAction::Unchanged)
    )]
    #[case::same_digest_on_mutable(
        TagMutability::Mutable,
        Some("sha256:new"),
        Ok(TagAction::Unchanged)
    )]
    #[case::other_digest_on_mutable(
        TagMutability::Mutable,
        Some("sha256:old"),
        Ok(TagAction::Push)
    )]
    #[case::other_digest_on_immutable(TagMutability::Immutable, Some("sha256:old"), Err(()))]
    fn a_tag_moves_only_when_it_may(
        #[case] mutability: TagMutability,
        #[case] now: Option<&str>,
        #[case] expected: Result<TagAction, ()>,
    ) {
        let updates = tag_updates(
            &sourced(&["v1"]),
            &held(&[("v1", now)]),
            "sha256:new",
            &mutability,
            "team/api",
        );
        match (updates, expected) {
            (Ok(updates), Ok(action)) => {
                assert_eq!(updates[0].action, action);
                assert_eq!(updates[0].held.as_deref(), now);
            }
            (Err(conflict), Err(())) => {
                assert_eq!(conflict.tag, "v1");
                assert_eq!(conflict.held, "sha256:old");
                assert!(conflict.to_string().contains("is IMMUTABLE"), "{conflict}");
            }
            (other, expected) => panic!("{other:?} but expected {expected:?}"),
        }
    }
    #[test]
    fn a_platform_only_plan_tags_nothing_and_looks_for_layers_under_the_first_tag() {
        let mut request = release_request("semver\nlatest=auto", "");
        request.arch_tags = false;
        let plan = Plan::platform_only(&request);
        assert_eq!(plan.tag_names(), vec!["1.4.3", "1.4", "1"]);
        assert!(plan.notices.is_empty());
        assert!(plan.platforms.iter().all(|p| p.arch_tag.is_none()));
        let mut branch = request.clone();
        branch.tag_evaluation = tag_rules::evaluate(&[], &[], &request.git.git_ref);
        assert_eq!(Plan::platform_only(&branch).tag_names(), vec!["latest"]);
    }
}

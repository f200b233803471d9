//! What a run will push: the index tags (from `tags` and `tag-rules`), per-platform tags and
//! the labels of every image. Pure: no async, no clients, no environment; the one fact from a
//! server, the repository's existing tags for `latest=auto`, is passed in.

use std::collections::BTreeMap;

use crate::inputs::{names, InputError, Request};
use crate::platform::Platform;
use crate::tag_rules::{self, SourcedTag};

/// One platform's image and the tag it is pushed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformPlan {
    /// The platform to build.
    pub platform: Platform,
    /// `<first tag>-<arch>` when `arch-tags` is on; otherwise `None`, and the engine pushes
    /// under a tag named after the built image id (the Engine API can only push a tag).
    pub arch_tag: Option<String>,
}

/// Everything a run pushes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// ECR repository name.
    pub repository: String,
    /// Each platform's image, in the requested order.
    pub platforms: Vec<PlatformPlan>,
    /// Tags the index is pushed under, in order, each with the input or rule that gave it.
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

    /// Derives the plan from a validated request and, for `latest=auto`, the tags already in
    /// the repository. Fails when no tag at all is left to push.
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

/// The tag a platform image is pushed under when `arch-tags` is off: stable for the same image,
/// so a re-run adds nothing new.
#[must_use]
pub fn build_tag(platform: &Platform, image_id: &str) -> String {
    let hex = image_id.trim_start_matches("sha256:");
    format!(
        "build-{}-{}",
        platform.tag_suffix(),
        &hex[..hex.len().min(12)]
    )
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

    #[test]
    fn build_tag_is_named_after_the_image() {
        let platform: Platform = "linux/arm/v7".parse().expect("valid");
        assert_eq!(
            build_tag(&platform, "sha256:0123456789abcdef0123"),
            "build-arm-v7-0123456789ab"
        );
    }
}

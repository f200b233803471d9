//! What a run will push, decided before any server is asked: per-platform tags and the index
//! tags. Pure: no async, no clients, no environment.

use crate::inputs::Request;
use crate::platform::Platform;

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
    /// Tags the index is pushed under, in the requested order.
    pub index_tags: Vec<String>,
}

impl Plan {
    /// Derives the plan from a validated request.
    #[must_use]
    pub fn new(request: &Request) -> Plan {
        let first_tag = &request.tags[0];
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
        Plan {
            repository: request.repository.clone(),
            platforms,
            index_tags: request.tags.clone(),
        }
    }
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
        let plan = Plan::new(&request(platforms, tags, arch_tags));
        let arch: Vec<Option<&str>> = plan
            .platforms
            .iter()
            .map(|p| p.arch_tag.as_deref())
            .collect();
        assert_eq!(arch, expected_arch_tags);
        assert_eq!(plan.index_tags, expected_index_tags);
        assert_eq!(plan.repository, "team/api");
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

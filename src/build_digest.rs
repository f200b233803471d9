//! The build digest of `skip-unchanged`: one sha256 over everything that decides the image a
//! run would build, so that a run whose digest the repository's image already records can
//! reuse that image instead of building. Recorded as an annotation of the pushed index.
//!
//! What it covers: the build context as the session sends it (the paths the Dockerfile reads,
//! or the whole context when they cannot be told; after `.dockerignore`; contents and modes,
//! not times), the Dockerfile's path and text, the build
//! args, the target, the labels asked for, the platforms, the Engine's own platform (the value
//! of `BUILDPLATFORM`), the network mode of `RUN` steps, whether the image carries inline
//! cache, and every image the build pulls, resolved for its platform. Not covered: the labels
//! taken from the GitHub context that change on every commit (`revision`, `created`), and what
//! `RUN` steps download.
//!
//! Pure: the facts are gathered by the caller.

use std::collections::BTreeMap;

use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::platform::Platform;

/// The index annotation that records the build digest.
pub const ANNOTATION: &str = "io.github.ecr-multiarch.build-digest";

/// Bumped when what the digest covers changes, so that no old record matches a new meaning.
const SCHEME: &str = "ecr-multiarch build digest 2";

/// The labels from the GitHub context that change with every commit or run: left out of the
/// digest, unless the `labels` input sets them.
pub const CONTEXT_LABELS: &[&str] = &[
    "org.opencontainers.image.revision",
    "org.opencontainers.image.created",
];

/// Everything that decides the image.
#[derive(Debug, Clone, Serialize)]
pub struct BuildInputs<'a> {
    /// [`crate::engine::sent_digest`] of the part of the context the build reads.
    pub context: &'a str,
    /// The Dockerfile's path inside the context.
    pub dockerfile: &'a str,
    /// The Dockerfile's text (it need not be among what the build reads of the context).
    pub dockerfile_text: &'a str,
    /// The `build-args` input.
    pub build_args: &'a BTreeMap<String, String>,
    /// The `target` input.
    pub target: Option<&'a str>,
    /// The labels that count (see [`labels_that_count`]).
    pub labels: BTreeMap<String, String>,
    /// The platforms, in order (the index lists them in that order).
    pub platforms: Vec<String>,
    /// The Engine's platform, `BUILDPLATFORM`.
    pub build_platform: String,
    /// The `network` input.
    pub network: Option<&'a str>,
    /// Whether the images carry inline cache (`repository-cache`).
    pub inline_cache: bool,
    /// Per platform, each image the build pulls and its resolved id or digest.
    pub base_images: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Serialize)]
struct Record<'a> {
    scheme: &'a str,
    #[serde(flatten)]
    inputs: &'a BuildInputs<'a>,
}

impl BuildInputs<'_> {
    /// `sha256:<hex>` of the inputs in a fixed JSON form (maps sorted, fields in order).
    #[must_use]
    pub fn digest(&self) -> String {
        let record = Record {
            scheme: SCHEME,
            inputs: self,
        };
        let bytes = serde_json::to_vec(&record).unwrap_or_default();
        format!("sha256:{:x}", Sha256::digest(&bytes))
    }
}

/// The labels an image gets, without those of [`CONTEXT_LABELS`] that came from the GitHub
/// context rather than from the `labels` input.
#[must_use]
pub fn labels_that_count(
    labels: &BTreeMap<String, String>,
    requested: &BTreeMap<String, String>,
) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(key, _)| !CONTEXT_LABELS.contains(&key.as_str()) || requested.contains_key(*key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Platforms as the digest names them.
#[must_use]
pub fn platform_names(platforms: &[Platform]) -> Vec<String> {
    platforms.iter().map(ToString::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(build_args: &BTreeMap<String, String>) -> BuildInputs<'_> {
        BuildInputs {
            context: "sha256:c",
            dockerfile: "Dockerfile",
            dockerfile_text: "FROM alpine:3\n",
            build_args,
            target: None,
            labels: BTreeMap::new(),
            platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
            build_platform: "linux/amd64".into(),
            network: None,
            inline_cache: true,
            base_images: BTreeMap::from([(
                "linux/arm64".to_owned(),
                BTreeMap::from([("alpine:3".to_owned(), "sha256:1".to_owned())]),
            )]),
        }
    }

    #[test]
    fn every_input_changes_the_digest() {
        let args = BTreeMap::new();
        let base = inputs(&args).digest();
        assert!(base.starts_with("sha256:") && base.len() == 71);
        assert_eq!(inputs(&args).digest(), base, "stable");
        let other_args = BTreeMap::from([("A".to_owned(), "1".to_owned())]);
        let mut changed: Vec<BuildInputs<'_>> = Vec::new();
        changed.push(inputs(&other_args));
        changed.push(BuildInputs {
            context: "sha256:d",
            ..inputs(&args)
        });
        changed.push(BuildInputs {
            dockerfile: "other.Dockerfile",
            ..inputs(&args)
        });
        changed.push(BuildInputs {
            dockerfile_text: "FROM alpine:3\nRUN true\n",
            ..inputs(&args)
        });
        changed.push(BuildInputs {
            target: Some("app"),
            ..inputs(&args)
        });
        changed.push(BuildInputs {
            labels: BTreeMap::from([("a".to_owned(), "b".to_owned())]),
            ..inputs(&args)
        });
        changed.push(BuildInputs {
            platforms: vec!["linux/arm64".into(), "linux/amd64".into()],
            ..inputs(&args)
        });
        changed.push(BuildInputs {
            build_platform: "linux/arm64".into(),
            ..inputs(&args)
        });
        changed.push(BuildInputs {
            network: Some("host"),
            ..inputs(&args)
        });
        changed.push(BuildInputs {
            inline_cache: false,
            ..inputs(&args)
        });
        changed.push(BuildInputs {
            base_images: BTreeMap::from([(
                "linux/arm64".to_owned(),
                BTreeMap::from([("alpine:3".to_owned(), "sha256:2".to_owned())]),
            )]),
            ..inputs(&args)
        });
        for (i, other) in changed.iter().enumerate() {
            assert_ne!(other.digest(), base, "change {i}");
        }
    }

    #[test]
    fn context_labels_count_only_when_asked_for() {
        let labels = BTreeMap::from([
            (
                "org.opencontainers.image.revision".to_owned(),
                "abc".to_owned(),
            ),
            (
                "org.opencontainers.image.created".to_owned(),
                "2025".to_owned(),
            ),
            (
                "org.opencontainers.image.source".to_owned(),
                "https://github.com/o/r".to_owned(),
            ),
            ("team".to_owned(), "api".to_owned()),
        ]);
        let counted = labels_that_count(&labels, &BTreeMap::new());
        assert_eq!(
            counted.keys().collect::<Vec<_>>(),
            ["org.opencontainers.image.source", "team"]
        );
        let requested = BTreeMap::from([(
            "org.opencontainers.image.revision".to_owned(),
            "abc".to_owned(),
        )]);
        assert!(labels_that_count(&labels, &requested)
            .contains_key("org.opencontainers.image.revision"));
    }
}

//! What a successful run tells later steps: the outputs of the contract, the JSON the CLI
//! prints, and the job summary. Pure: it formats, the `github` module writes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::platform::Platform;

/// The names of every output, exactly as `action.yml` declares them.
pub mod names {
    /// Registry host.
    pub const REGISTRY: &str = "registry";
    /// `<registry>/<repository>`.
    pub const REPOSITORY_URI: &str = "repository-uri";
    /// Index digest.
    pub const DIGEST: &str = "digest";
    /// Digest-pinned image URI.
    pub const IMAGE_URI: &str = "image-uri";
    /// Comma-separated references.
    pub const TAGS: &str = "tags";
    /// Platform to manifest digest, JSON.
    pub const PLATFORM_DIGESTS: &str = "platform-digests";
    /// Everything, JSON.
    pub const METADATA: &str = "metadata";

    /// Every output, in `action.yml` order.
    pub const ALL: &[&str] = &[
        REGISTRY,
        REPOSITORY_URI,
        DIGEST,
        IMAGE_URI,
        TAGS,
        PLATFORM_DIGESTS,
        METADATA,
    ];
}

/// One platform's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformResult {
    /// The platform.
    pub platform: Platform,
    /// Image id in the daemon.
    pub image_id: String,
    /// Uncompressed size in the daemon, bytes.
    pub image_size: i64,
    /// Manifest digest the index points at.
    pub manifest_digest: String,
    /// Compressed size in the registry (config and layers), bytes.
    pub content_size: i64,
    /// The reference it was pushed under.
    pub reference: String,
    /// Build time, ms.
    pub build_ms: u128,
    /// Push time (with read-back), ms.
    pub push_ms: u128,
}

/// Everything a successful run pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Registry host.
    pub registry: String,
    /// `<registry>/<repository>`.
    pub repository_uri: String,
    /// Whether this run created the repository.
    pub repository_created: bool,
    /// Index digest.
    pub digest: String,
    /// Index media type.
    pub media_type: String,
    /// Full references the index was pushed under.
    pub references: Vec<String>,
    /// Each reference with the input or tag rule that produced its tag.
    pub tag_sources: Vec<(String, &'static str)>,
    /// Per platform, in the requested order.
    pub platforms: Vec<PlatformResult>,
    /// The image in the ECR console, when the registry is ECR's (account known).
    pub console_url: Option<String>,
    /// Time per phase, ms: `ensure_repository`, `index`, `total`.
    pub phase_ms: BTreeMap<&'static str, u128>,
}

impl Outcome {
    /// `<repository-uri>@sha256:...`.
    #[must_use]
    pub fn image_uri(&self) -> String {
        format!("{}@{}", self.repository_uri, self.digest)
    }

    fn platform_digests(&self) -> Value {
        Value::Object(
            self.platforms
                .iter()
                .map(|p| (p.platform.to_string(), json!(p.manifest_digest)))
                .collect(),
        )
    }

    /// The `metadata` output: all outputs plus per-platform details and timings.
    #[must_use]
    pub fn metadata(&self) -> Value {
        let platforms: serde_json::Map<String, Value> = self
            .platforms
            .iter()
            .map(|p| {
                (
                    p.platform.to_string(),
                    json!({
                        "digest": p.manifest_digest,
                        "reference": p.reference,
                        "image-id": p.image_id,
                        "image-size": p.image_size,
                        "content-size": p.content_size,
                    }),
                )
            })
            .collect();
        let mut timings: serde_json::Map<String, Value> = self
            .phase_ms
            .iter()
            .map(|(phase, ms)| ((*phase).to_owned(), json!(ms)))
            .collect();
        let per_platform = |ms: fn(&PlatformResult) -> u128| -> Value {
            self.platforms
                .iter()
                .map(|p| (p.platform.to_string(), json!(ms(p))))
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        timings.insert("build".to_owned(), per_platform(|p| p.build_ms));
        timings.insert("push".to_owned(), per_platform(|p| p.push_ms));
        json!({
            names::REGISTRY: self.registry,
            names::REPOSITORY_URI: self.repository_uri,
            names::DIGEST: self.digest,
            names::IMAGE_URI: self.image_uri(),
            names::TAGS: self.references,
            names::PLATFORM_DIGESTS: self.platform_digests(),
            "tag-sources": self
                .tag_sources
                .iter()
                .map(|(reference, source)| (reference.clone(), json!(source)))
                .collect::<serde_json::Map<_, _>>(),
            "media-type": self.media_type,
            "console-url": self.console_url,
            "repository-created": self.repository_created,
            "platforms": platforms,
            "timings-ms": timings,
        })
    }

    /// The outputs, as written to `GITHUB_OUTPUT` (JSON values as compact JSON text).
    #[must_use]
    pub fn outputs(&self) -> Vec<(&'static str, String)> {
        vec![
            (names::REGISTRY, self.registry.clone()),
            (names::REPOSITORY_URI, self.repository_uri.clone()),
            (names::DIGEST, self.digest.clone()),
            (names::IMAGE_URI, self.image_uri()),
            (names::TAGS, self.references.join(",")),
            (names::PLATFORM_DIGESTS, self.platform_digests().to_string()),
            (names::METADATA, self.metadata().to_string()),
        ]
    }

    /// The JSON the CLI prints: the outputs, with JSON values as JSON.
    #[must_use]
    pub fn json(&self) -> Value {
        json!({
            names::REGISTRY: self.registry,
            names::REPOSITORY_URI: self.repository_uri,
            names::DIGEST: self.digest,
            names::IMAGE_URI: self.image_uri(),
            names::TAGS: self.references.join(","),
            names::PLATFORM_DIGESTS: self.platform_digests(),
            names::METADATA: self.metadata(),
        })
    }

    /// The job summary: a table per platform, then the index and its references.
    #[must_use]
    pub fn summary_markdown(&self) -> String {
        let mut md = format!("### ecr-multiarch: `{}`\n\n", self.repository_uri);
        md.push_str("| Platform | Digest | Size | Build | Push |\n|---|---|---:|---:|---:|\n");
        for p in &self.platforms {
            let _ = writeln!(
                md,
                "| `{}` | `{}` | {} | {} | {} |",
                p.platform,
                p.manifest_digest,
                human_size(p.content_size),
                seconds(p.build_ms),
                seconds(p.push_ms)
            );
        }
        let _ = write!(
            md,
            "\n**Index** `{}` ({}), pushed as:\n\n",
            self.digest,
            if self.media_type.contains("docker") {
                "Docker manifest list"
            } else {
                "OCI image index"
            }
        );
        for reference in &self.references {
            let _ = writeln!(md, "- `{reference}`");
        }
        let _ = write!(md, "\nImage URI: `{}`\n\n", self.image_uri());
        md
    }
}

fn seconds(ms: u128) -> String {
    format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
}

/// Sizes as a registry console shows them (decimal units).
fn human_size(bytes: i64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let value = bytes as f64;
    if value >= 1e9 {
        format!("{:.2} GB", value / 1e9)
    } else if value >= 1e6 {
        format!("{:.1} MB", value / 1e6)
    } else if value >= 1e3 {
        format!("{:.1} kB", value / 1e3)
    } else {
        format!("{bytes} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome() -> Outcome {
        Outcome {
            registry: "127.0.0.1:5000".into(),
            repository_uri: "127.0.0.1:5000/team/api".into(),
            repository_created: true,
            digest: "sha256:1111".into(),
            media_type: crate::registry::DOCKER_MANIFEST_LIST.into(),
            references: vec!["127.0.0.1:5000/team/api:latest".into()],
            tag_sources: vec![("127.0.0.1:5000/team/api:latest".into(), "tags")],
            platforms: vec![PlatformResult {
                platform: "linux/arm64".parse().expect("valid"),
                image_id: "sha256:2222".into(),
                image_size: 4_400_000,
                manifest_digest: "sha256:3333".into(),
                content_size: 1_234_567,
                reference: "127.0.0.1:5000/team/api:latest-arm64".into(),
                build_ms: 12_345,
                push_ms: 678,
            }],
            console_url: None,
            phase_ms: [("ensure_repository", 5), ("index", 7), ("total", 13_100)]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn outputs_cover_every_declared_name() {
        let outputs = outcome().outputs();
        let names: Vec<&str> = outputs.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, super::names::ALL);
        let metadata: Value = serde_json::from_str(&outputs[6].1).expect("json");
        assert_eq!(metadata["timings-ms"]["build"]["linux/arm64"], 12_345);
        assert_eq!(metadata["image-uri"], "127.0.0.1:5000/team/api@sha256:1111");
        assert_eq!(outputs[5].1, r#"{"linux/arm64":"sha256:3333"}"#);
    }

    #[test]
    fn summary_has_the_platform_table() {
        insta::assert_snapshot!(outcome().summary_markdown(), @r"
        ### ecr-multiarch: `127.0.0.1:5000/team/api`

        | Platform | Digest | Size | Build | Push |
        |---|---|---:|---:|---:|
        | `linux/arm64` | `sha256:3333` | 1.2 MB | 12.3 s | 0.6 s |

        **Index** `sha256:1111` (Docker manifest list), pushed as:

        - `127.0.0.1:5000/team/api:latest`

        Image URI: `127.0.0.1:5000/team/api@sha256:1111`
        ");
    }
}

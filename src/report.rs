//! What a successful run tells later steps: the outputs of the contract, the JSON the CLI
//! prints, and the job summary. Pure: it formats, the `github` module writes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::byte_size::human_size;
use crate::gate::GateReport;
use crate::github::markdown::code;
use crate::inputs::Runner;
use crate::oci::Digest;
use crate::plan::TagAction;
use crate::platform::Platform;
use crate::timings::Timings;

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
    /// Per platform, the findings of the vulnerability gate per severity, JSON.
    pub const VULNERABILITIES: &str = "vulnerabilities";

    /// Every output, in `action.yml` order.
    pub const ALL: &[&str] = &[
        REGISTRY,
        REPOSITORY_URI,
        DIGEST,
        IMAGE_URI,
        TAGS,
        PLATFORM_DIGESTS,
        METADATA,
        VULNERABILITIES,
    ];
}

/// One platform's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformResult {
    /// The platform.
    pub platform: Platform,
    /// Image id in the daemon (for a skipped build: its config digest, the id on the classic
    /// image store).
    pub image_id: String,
    /// Uncompressed size in the daemon, bytes; `None` when nothing was built.
    pub image_size: Option<i64>,
    /// Manifest digest the index points at.
    pub manifest_digest: Digest,
    /// Compressed size in the registry (config and layers), bytes.
    pub content_size: u64,
    /// Layers uploaded by this run.
    pub layers_uploaded: usize,
    /// Layers the repository already held.
    pub layers_reused: usize,
    /// Bytes of blobs this run uploaded.
    pub bytes_uploaded: u64,
    /// The per-platform tag (`arch-tags`) and what happened to it.
    pub arch_tag: Option<(String, TagAction)>,
    /// Build time, ms.
    pub build_ms: u128,
    /// Push time (export, compression and upload), ms.
    pub push_ms: u128,
    /// The Docker Engine that built it, when known.
    pub engine: Option<String>,
    /// In a merge run: the result file or the reference it came from.
    pub source: Option<String>,
}

/// What a run did (issue 10 splits a build across jobs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunKind {
    /// Built every platform and pushed the index under the tags.
    Build,
    /// Built the platforms and pushed their images by digest, with no index and no tag
    /// (`platform-only`), and wrote this result file for a merge run.
    PlatformOnly {
        /// The result file.
        result_file: PathBuf,
    },
    /// Joined the images of `platform-only` runs into the index under the tags (`merge`).
    Merge,
}

impl RunKind {
    /// `build`, `platform-only` or `merge`, as `metadata` says it.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            RunKind::Build => "build",
            RunKind::PlatformOnly { .. } => "platform-only",
            RunKind::Merge => "merge",
        }
    }
}

/// One index tag after the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagResult {
    /// `<registry>/<repository>:<tag>`.
    pub reference: String,
    /// The input or tag rule that asked for it.
    pub source: &'static str,
    /// Pushed now, or already holding the index.
    pub action: TagAction,
}

/// What `skip-unchanged` found and decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReport {
    /// Nothing was built: the image under the first tag records this run's build digest.
    pub skipped: bool,
    /// Why it was skipped or built, in a sentence.
    pub reason: String,
    /// This run's build digest; `None` when an input could not be resolved.
    pub build_digest: Option<String>,
    /// Per platform, each image the build pulls and what it resolved to.
    pub base_images: BTreeMap<String, BTreeMap<String, String>>,
}

/// Everything a successful run pushed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// What the run did; a platform-only run has no index: `digest` and `media_type` are
    /// empty and `tags` is.
    pub kind: RunKind,
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
    /// Every index tag: they all hold the index after the run.
    pub tags: Vec<TagResult>,
    /// Per platform, in the requested order.
    pub platforms: Vec<PlatformResult>,
    /// The image in the ECR console, when the registry is ECR's (account known).
    pub console_url: Option<String>,
    /// What `skip-unchanged` decided; `None` when it is off.
    pub skip: Option<SkipReport>,
    /// Time per phase, ms: `ensure_repository`, `index`, `total`...
    pub timings: Timings,
    /// What the run found or did about the repository's settings and archived images
    /// (issue 18), one line each for the summary.
    pub repository_notes: Vec<String>,
    /// What the vulnerability gate judged; `None` when it is off.
    pub gate: Option<crate::gate::GateReport>,
}

impl Outcome {
    /// `<repository-uri>@sha256:...`; for a platform-only run, which pushes no index, each
    /// platform image's, comma-separated.
    #[must_use]
    pub fn image_uri(&self) -> String {
        if let RunKind::PlatformOnly { .. } = self.kind {
            let children: Vec<String> = self
                .platforms
                .iter()
                .map(|p| self.platform_image_uri(p))
                .collect();
            return children.join(",");
        }
        format!("{}@{}", self.repository_uri, self.digest)
    }

    fn platform_image_uri(&self, platform: &PlatformResult) -> String {
        format!("{}@{}", self.repository_uri, platform.manifest_digest)
    }

    /// The one notice of a successful run.
    #[must_use]
    pub fn notice(&self) -> String {
        match &self.kind {
            RunKind::PlatformOnly { result_file } => format!(
                "pushed {} by digest, under no tag (platform-only); result for the merge run: {}",
                self.image_uri(),
                result_file.display()
            ),
            RunKind::Build | RunKind::Merge => format!("pushed {}", self.image_uri()),
        }
    }

    /// The full references of every index tag.
    #[must_use]
    pub fn references(&self) -> Vec<String> {
        self.tags.iter().map(|t| t.reference.clone()).collect()
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
                        "image-uri": self.platform_image_uri(p),
                        "engine": p.engine,
                        "source": p.source,
                        "image-id": p.image_id,
                        "image-size": p.image_size,
                        "content-size": p.content_size,
                        "layers-uploaded": p.layers_uploaded,
                        "layers-reused": p.layers_reused,
                        "bytes-uploaded": p.bytes_uploaded,
                        "arch-tag": p.arch_tag.as_ref().map(|(tag, action)| json!({
                            "reference": format!("{}:{tag}", self.repository_uri),
                            "action": action.as_str(),
                        })),
                    }),
                )
            })
            .collect();
        let mut timings: serde_json::Map<String, Value> = self
            .timings
            .iter()
            .map(|(phase, ms)| (phase.as_str().to_owned(), json!(ms)))
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
        let index = |value: &str| (!value.is_empty()).then(|| value.to_owned());
        let build = match &self.skip {
            Some(skip) => json!({
                "skipped": skip.skipped,
                "reason": skip.reason,
                "build-digest": skip.build_digest,
                "base-images": skip.base_images,
            }),
            None => json!({ "skipped": false, "reason": null, "build-digest": null }),
        };
        json!({
            "kind": self.kind.as_str(),
            "result-file": match &self.kind {
                RunKind::PlatformOnly { result_file } => Some(result_file.display().to_string()),
                RunKind::Build | RunKind::Merge => None,
            },
            names::REGISTRY: self.registry,
            names::REPOSITORY_URI: self.repository_uri,
            names::DIGEST: index(&self.digest),
            names::IMAGE_URI: self.image_uri(),
            names::TAGS: self.references(),
            names::PLATFORM_DIGESTS: self.platform_digests(),
            "tag-sources": self
                .tags
                .iter()
                .map(|t| (t.reference.clone(), json!(t.source)))
                .collect::<serde_json::Map<_, _>>(),
            "tag-updates": self
                .tags
                .iter()
                .map(|t| (t.reference.clone(), json!(t.action.as_str())))
                .collect::<serde_json::Map<_, _>>(),
            "media-type": index(&self.media_type),
            "console-url": self.console_url,
            "repository-created": self.repository_created,
            "platforms": platforms,
            "build": build,
            "vulnerability-gate": self.gate.as_ref().map(crate::gate::GateReport::metadata),
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
            (names::TAGS, self.references().join(",")),
            (names::PLATFORM_DIGESTS, self.platform_digests().to_string()),
            (names::METADATA, self.metadata().to_string()),
            (names::VULNERABILITIES, self.vulnerabilities().to_string()),
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
            names::TAGS: self.references().join(","),
            names::PLATFORM_DIGESTS: self.platform_digests(),
            names::METADATA: self.metadata(),
            names::VULNERABILITIES: self.vulnerabilities(),
        })
    }

    /// The `vulnerabilities` output: the gate's counts; `{}` when the gate is off.
    fn vulnerabilities(&self) -> Value {
        self.gate
            .as_ref()
            .map_or_else(|| json!({}), crate::gate::GateReport::vulnerabilities)
    }

    /// The job summary: a table per platform, then the index and its references, then the
    /// vulnerability gate's tables.
    #[must_use]
    pub fn summary_markdown(&self) -> String {
        let mut md = self.run_summary();
        if let Some(gate) = &self.gate {
            md.push_str(&gate.summary_markdown(&self.repository_uri));
        }
        md
    }

    fn run_summary(&self) -> String {
        match &self.kind {
            RunKind::Build => self.index_summary(self.platform_table("")),
            RunKind::PlatformOnly { result_file } => {
                let mut md = self.platform_table(" (platform-only)");
                let _ = write!(
                    md,
                    "\n**No index, no tag** (`platform-only`): the merge run joins these images. \
                     Result file: {}\n\n",
                    code(&result_file.display().to_string())
                );
                for p in &self.platforms {
                    let _ = writeln!(md, "- `{}`", self.platform_image_uri(p));
                }
                md.push('\n');
                md
            }
            RunKind::Merge => {
                let mut md = format!(
                    "### ecr-multiarch: `{}` (merge)\n\n| Platform | Digest | Size | Built on | From |\n|---|---|---:|---|---|\n",
                    self.repository_uri
                );
                for p in &self.platforms {
                    let _ = writeln!(
                        md,
                        "| `{}` | {} | {} | {} | {} |",
                        p.platform,
                        // Read from a result file: outside text, like the rest of the row.
                        code(p.manifest_digest.as_str()),
                        human_size(p.content_size),
                        code(p.engine.as_deref().unwrap_or_default()),
                        code(p.source.as_deref().unwrap_or_default()),
                    );
                }
                self.index_summary(md)
            }
        }
    }

    /// The heading and the table of the platforms this run built and pushed.
    fn platform_table(&self, heading_note: &str) -> String {
        let mut md = format!(
            "### ecr-multiarch: `{}`{heading_note}\n\n",
            self.repository_uri
        );
        if let Some(skip) = &self.skip {
            let _ = write!(
                md,
                "{}: {}\n\n",
                if skip.skipped {
                    "**Build skipped**"
                } else {
                    "**Built**"
                },
                skip.reason
            );
        }
        md.push_str(
            "| Platform | Digest | Size | Layers uploaded / reused | Sent | Build | Push |\n\
             |---|---|---:|---:|---:|---:|---:|\n",
        );
        for p in &self.platforms {
            let _ = writeln!(
                md,
                "| `{}` | `{}` | {} | {} / {} | {} | {} | {} |",
                p.platform,
                p.manifest_digest,
                human_size(p.content_size),
                p.layers_uploaded,
                p.layers_reused,
                human_size(p.bytes_uploaded),
                seconds(p.build_ms),
                seconds(p.push_ms)
            );
        }
        md
    }

    /// The index and its tags, after a platform table.
    fn index_summary(&self, mut md: String) -> String {
        let _ = write!(
            md,
            "\n**Index** `{}` ({}), under:\n\n",
            self.digest,
            if self.media_type.contains("docker") {
                "Docker manifest list"
            } else {
                "OCI image index"
            }
        );
        for tag in &self.tags {
            let _ = writeln!(
                md,
                "- `{}` ({})",
                tag.reference,
                match tag.action {
                    TagAction::Push => "pushed",
                    TagAction::Unchanged => "unchanged: it already held this index",
                }
            );
        }
        let _ = write!(md, "\nImage URI: `{}`\n\n", self.image_uri());
        for note in &self.repository_notes {
            let _ = writeln!(md, "> {note}");
        }
        if !self.repository_notes.is_empty() {
            md.push('\n');
        }
        md
    }
}

fn seconds(ms: u128) -> String {
    format!("{}.{} s", ms / 1000, (ms % 1000) / 100)
}

/// A refused run's job summary and outputs (`vulnerabilities`, and `metadata` with the judged
/// list), written before the error ends the run. Failing to write them only loses them: the
/// refusal is the run's result either way.
pub fn publish_refusal(runner: &Runner, report: &GateReport, repository_uri: &str) {
    if let Some(path) = &runner.summary_file {
        let md = format!(
            "### ecr-multiarch: `{repository_uri}`\n\n{}",
            report.summary_markdown(repository_uri)
        );
        let _ = crate::github::write_summary(path, &md);
    }
    if let Some(path) = &runner.output_file {
        let metadata = json!({
            "repository-uri": repository_uri,
            "platform-digests": report.platforms.iter()
                .map(|p| (p.platform.to_string(), json!(p.digest)))
                .collect::<serde_json::Map<_, _>>(),
            "vulnerability-gate": report.metadata(),
        });
        let _ = crate::github::write_outputs(
            path,
            &[
                (names::VULNERABILITIES, report.vulnerabilities().to_string()),
                (names::METADATA, metadata.to_string()),
            ],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timings::Phase;

    fn outcome() -> Outcome {
        Outcome {
            kind: RunKind::Build,
            registry: "127.0.0.1:5000".into(),
            repository_uri: "127.0.0.1:5000/team/api".into(),
            repository_created: true,
            digest: "sha256:1111".into(),
            media_type: crate::oci::media_type::DOCKER_MANIFEST_LIST.into(),
            tags: vec![
                TagResult {
                    reference: "127.0.0.1:5000/team/api:latest".into(),
                    source: "tags",
                    action: TagAction::Push,
                },
                TagResult {
                    reference: "127.0.0.1:5000/team/api:v1".into(),
                    source: "tags",
                    action: TagAction::Unchanged,
                },
            ],
            platforms: vec![PlatformResult {
                platform: "linux/arm64".parse().expect("valid"),
                image_id: "sha256:2222".into(),
                image_size: Some(4_400_000),
                manifest_digest:
                    "sha256:3333333333333333333333333333333333333333333333333333333333333333"
                        .parse()
                        .expect("digest"),
                content_size: 1_234_567,
                layers_uploaded: 1,
                layers_reused: 2,
                bytes_uploaded: 20_480,
                arch_tag: None,
                build_ms: 12_345,
                push_ms: 678,
                engine: Some("unix:///var/run/docker.sock".into()),
                source: None,
            }],
            console_url: None,
            skip: None,
            timings: [
                (Phase::EnsureRepository, 5),
                (Phase::Index, 7),
                (Phase::Total, 13_100),
            ]
            .into_iter()
            .collect(),
            repository_notes: Vec::new(),
            gate: None,
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
        assert_eq!(
            outputs[5].1,
            r#"{"linux/arm64":"sha256:3333333333333333333333333333333333333333333333333333333333333333"}"#
        );
        assert_eq!(metadata["build"]["skipped"], false);
    }

    #[test]
    fn a_skipped_build_says_so_and_why() {
        let mut skipped = outcome();
        skipped.platforms[0].image_size = None;
        skipped.skip = Some(SkipReport {
            skipped: true,
            reason: "the image under `latest` was built from the same inputs".into(),
            build_digest: Some("sha256:4444".into()),
            base_images: BTreeMap::new(),
        });
        let metadata = skipped.metadata();
        assert_eq!(metadata["build"]["skipped"], true);
        assert_eq!(metadata["build"]["build-digest"], "sha256:4444");
        assert!(metadata["platforms"]["linux/arm64"]["image-size"].is_null());
        assert!(skipped.summary_markdown().contains(
            "**Build skipped**: the image under `latest` was built from the same inputs\n"
        ));
    }

    #[test]
    fn summary_has_the_platform_table() {
        insta::assert_snapshot!(outcome().summary_markdown(), @r"
        ### ecr-multiarch: `127.0.0.1:5000/team/api`

        | Platform | Digest | Size | Layers uploaded / reused | Sent | Build | Push |
        |---|---|---:|---:|---:|---:|---:|
        | `linux/arm64` | `sha256:3333333333333333333333333333333333333333333333333333333333333333` | 1.2 MB | 1 / 2 | 20.5 kB | 12.3 s | 0.6 s |

        **Index** `sha256:1111` (Docker manifest list), under:

        - `127.0.0.1:5000/team/api:latest` (pushed)
        - `127.0.0.1:5000/team/api:v1` (unchanged: it already held this index)

        Image URI: `127.0.0.1:5000/team/api@sha256:1111`
        ");
    }
    #[test]
    fn a_platform_only_run_outputs_its_images_and_no_index() {
        let outcome = Outcome {
            kind: RunKind::PlatformOnly {
                result_file: "ecr-multiarch-results/team_api.linux-arm64.json".into(),
            },
            digest: String::new(),
            media_type: String::new(),
            tags: Vec::new(),
            ..outcome()
        };
        let outputs: BTreeMap<&str, String> = outcome.outputs().into_iter().collect();
        assert_eq!(outputs["digest"], "");
        assert_eq!(outputs["tags"], "");
        assert_eq!(outputs["image-uri"], "127.0.0.1:5000/team/api@sha256:3333333333333333333333333333333333333333333333333333333333333333");
        let metadata: Value = serde_json::from_str(&outputs["metadata"]).expect("json");
        assert_eq!(metadata["kind"], "platform-only");
        assert_eq!(
            metadata["result-file"],
            "ecr-multiarch-results/team_api.linux-arm64.json"
        );
        assert_eq!(metadata["digest"], Value::Null);
        assert_eq!(
            metadata["platforms"]["linux/arm64"]["engine"],
            "unix:///var/run/docker.sock"
        );
        insta::assert_snapshot!(outcome.summary_markdown(), @r"
        ### ecr-multiarch: `127.0.0.1:5000/team/api` (platform-only)

        | Platform | Digest | Size | Layers uploaded / reused | Sent | Build | Push |
        |---|---|---:|---:|---:|---:|---:|
        | `linux/arm64` | `sha256:3333333333333333333333333333333333333333333333333333333333333333` | 1.2 MB | 1 / 2 | 20.5 kB | 12.3 s | 0.6 s |

        **No index, no tag** (`platform-only`): the merge run joins these images. Result file: `ecr-multiarch-results/team_api.linux-arm64.json`

        - `127.0.0.1:5000/team/api@sha256:3333333333333333333333333333333333333333333333333333333333333333`
        ");
    }

    #[test]
    fn result_file_fields_stay_in_their_cells() {
        let mut outcome = Outcome {
            kind: RunKind::Merge,
            ..outcome()
        };
        outcome.platforms[0].engine =
            Some("x`|\n# Heading\n[link](https://e.com) <img src=x>".into());
        outcome.platforms[0].source = Some("r|`.json".into());
        let summary = outcome.summary_markdown();
        let row = summary
            .lines()
            .find(|l| l.starts_with("| `linux/arm64`"))
            .expect("row");
        assert_eq!(
            row,
            "| `linux/arm64` | `sha256:3333333333333333333333333333333333333333333333333333333333333333` | 1.2 MB | ``x`\\| # Heading [link](https://e.com) <img src=x>`` | ``r\\|`.json`` |"
        );
        assert!(!summary
            .lines()
            .any(|l| l.starts_with('#') && l.contains("Heading")));
    }

    #[test]
    fn a_merge_summary_says_where_each_image_came_from() {
        let mut outcome = Outcome {
            kind: RunKind::Merge,
            ..outcome()
        };
        outcome.platforms[0].source = Some("results/team_api.linux-arm64.json".into());
        insta::assert_snapshot!(outcome.summary_markdown(), @r"
        ### ecr-multiarch: `127.0.0.1:5000/team/api` (merge)

        | Platform | Digest | Size | Built on | From |
        |---|---|---:|---|---|
        | `linux/arm64` | `sha256:3333333333333333333333333333333333333333333333333333333333333333` | 1.2 MB | `unix:///var/run/docker.sock` | `results/team_api.linux-arm64.json` |

        **Index** `sha256:1111` (Docker manifest list), under:

        - `127.0.0.1:5000/team/api:latest` (pushed)
        - `127.0.0.1:5000/team/api:v1` (unchanged: it already held this index)

        Image URI: `127.0.0.1:5000/team/api@sha256:1111`
        ");
        assert_eq!(
            outcome.notice(),
            "pushed 127.0.0.1:5000/team/api@sha256:1111"
        );
    }
}

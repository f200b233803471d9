//! The end every run shares: the vulnerability gate's hook (issue 16), the tags put under the
//! decided rules, a platform image the run did not build, and the [`Outcome`] of an index,
//! built once. It prints nothing of its own; the report is [`super::main`]'s.

use std::time::Instant;

use super::push::{self, TagDecisions};
use super::session::Session;
use crate::gate::GateReport;
use crate::inputs::Request;
use crate::oci::ManifestDocument;
use crate::plan::TagUpdate;
use crate::platform::Platform;
use crate::registry::{ExistingImage, Index, Registry};
use crate::report::{Outcome, PlatformResult, RunKind, SkipReport};
use crate::timings::Phase;

/// Issue 16: every child is in the repository by digest; the gate judges them, each with
/// its platform, before any tag moves (timed as `vulnerability_gate`).
pub async fn gate(
    session: &mut Session<'_>,
    repository_uri: &str,
    children: impl Iterator<Item = (Platform, String)>,
) -> anyhow::Result<Option<GateReport>> {
    let request = session.request;
    let Some(policy) = &request.vulnerability_gate else {
        return Ok(None);
    };
    let judged = crate::gate::enforce(
        policy,
        &request.repository,
        &session.ecr,
        crate::gate::Images {
            repository_uri,
            children: children.collect(),
        },
        session.console,
    )
    .await;
    // A refused run still gets its summary and outputs, written before the error ends it.
    if let Some(crate::gate::Error::Refused { report, .. }) =
        judged.as_ref().err().and_then(anyhow::Error::downcast_ref)
    {
        crate::report::publish_refusal(&request.runner, report, repository_uri);
    }
    let report = judged?;
    session
        .timings
        .record(Phase::VulnerabilityGate, report.elapsed_ms);
    Ok(Some(report))
}

/// Puts the decided tags (the index's and each platform's), timed as `index`.
pub async fn put_tags(
    session: &mut Session<'_>,
    registry: &Registry,
    decisions: &TagDecisions,
    index: &Index,
    children: &[&ManifestDocument],
) -> anyhow::Result<()> {
    let phase = Instant::now();
    push::put_tags(registry, decisions, index, children, session.console).await?;
    session.timed(Phase::Index, phase);
    Ok(())
}

/// A platform image the run did not build, as the repository holds it: nothing uploaded,
/// every layer reused.
pub fn reused(
    platform: Platform,
    image: &ExistingImage,
    arch: Option<TagUpdate>,
    source: String,
) -> PlatformResult {
    PlatformResult {
        platform,
        image_id: image.config.digest.to_string(),
        image_size: None,
        manifest_digest: image.manifest.digest.clone(),
        content_size: image.config.size + image.layers.iter().map(|l| l.size).sum::<u64>(),
        layers_uploaded: 0,
        layers_reused: image.layers.len(),
        bytes_uploaded: 0,
        arch_tag: arch.map(|u| (u.tag, u.action)),
        build_ms: 0,
        push_ms: 0,
        engine: None,
        source: Some(source),
    }
}

/// What a run that pushed an index reports, beyond the session.
pub struct Indexed {
    /// Build (built or skipped) or merge.
    pub kind: RunKind,
    /// `<registry>/<repository>`.
    pub repository_uri: String,
    /// Whether this run created the repository.
    pub repository_created: bool,
    /// The index.
    pub index: Index,
    /// The index tags as decided.
    pub tags: Vec<TagUpdate>,
    /// Per platform, in the requested order.
    pub platforms: Vec<PlatformResult>,
    /// What `skip-unchanged` decided.
    pub skip: Option<SkipReport>,
    /// The repository's settings and archive lines (issue 18).
    pub repository_notes: Vec<String>,
    /// What the vulnerability gate judged.
    pub gate: Option<GateReport>,
}

impl Indexed {
    /// The run's outcome: the session's registry and timings (with `total`), the tags as
    /// references, and the image's page in the ECR console.
    pub fn outcome(self, session: Session<'_>) -> Outcome {
        let console_url = ecr_console_url(
            session.request,
            &session.credentials.proxy_host,
            self.index.document.digest.as_str(),
        );
        let registry = session.registry_host.clone();
        let repository_uri = self.repository_uri;
        Outcome {
            kind: self.kind,
            tags: self
                .tags
                .into_iter()
                .map(|u| crate::report::TagResult {
                    reference: format!("{repository_uri}:{}", u.tag),
                    source: u.source,
                    action: u.action,
                })
                .collect(),
            registry,
            repository_uri,
            repository_created: self.repository_created,
            digest: self.index.document.digest.to_string(),
            media_type: self.index.document.media_type,
            platforms: self.platforms,
            console_url,
            skip: self.skip,
            timings: session.timings(),
            repository_notes: self.repository_notes,
            gate: self.gate,
        }
    }
}

/// The image's page in the ECR console; the account is the registry's (`registry-id`, or
/// the one in the token's endpoint).
fn ecr_console_url(request: &Request, proxy_host: &str, digest: &str) -> Option<String> {
    let account = request.registry_id.clone().or_else(|| {
        proxy_host
            .split('.')
            .next()
            .filter(|a| a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
            .map(str::to_owned)
    })?;
    let region = &request.aws_region;
    Some(format!(
        "https://{region}.console.aws.amazon.com/ecr/repositories/private/{account}/{}/_/image/{digest}/details?region={region}",
        request.repository
    ))
}

//! `skip-unchanged`: this run's build digest ([`crate::build_digest`]), and, when the image the
//! repository holds under the first tag records the same digest, the run that builds nothing:
//! that image's index goes under the other tags by digest (nothing uploaded but the tags), by
//! the same tag rules as a built image.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use futures_util::future::join_all;

use super::finish;
use super::push::{self, RepositoryState};
use super::session::Session;
use crate::build_digest::{self, BuildInputs};
use crate::context::BuildContext;
use crate::dockerfile::{Dockerfile, ImageUse};
use crate::ecr::Repository;
use crate::engine::{self, Engines, RegistryLogin};
use crate::github::Console;
use crate::inputs::{names, Request};
use crate::oci::ManifestDocument;
use crate::plan::Plan;
use crate::registry::{ExistingImage, Index, IndexChild, Registry};
use crate::report::{Outcome, RunKind, SkipReport};

/// This run's build digest and what went into it.
#[derive(Debug, Clone)]
pub struct BuildDigest {
    /// The digest; `None` when an input could not be resolved (then nothing is skipped).
    pub digest: Option<String>,
    /// Why the digest could not be made.
    pub unresolved: Option<String>,
    /// Per platform, each image the build pulls and its resolved id or digest.
    pub base_images: BTreeMap<String, BTreeMap<String, String>>,
}

/// Computes the build digest: the context's content, the inputs, and every image the
/// Dockerfile pulls, resolved for its platform through the Engine. An image that cannot be
/// resolved turns skipping off for this run (a notice says which and why); only an Engine
/// that is gone fails the run.
pub async fn build_digest(
    request: &Request,
    plan: &Plan,
    context: &BuildContext,
    engines: &Engines,
    login: &RegistryLogin,
    console: &Console,
) -> anyhow::Result<BuildDigest> {
    let unresolved = |why: String| {
        console.notice(&format!(
            "`{}` is off for this run: {why}; building",
            names::SKIP_UNCHANGED
        ));
        BuildDigest {
            digest: None,
            unresolved: Some(why),
            base_images: BTreeMap::new(),
        }
    };
    let context_digest = {
        let context = context.clone();
        tokio::task::spawn_blocking(move || context.content_digest())
    };
    let text = match std::fs::read_to_string(&request.dockerfile) {
        Ok(text) => text,
        Err(e) => {
            return Ok(unresolved(format!(
                "reading `{}`: {e}",
                request.dockerfile.display()
            )))
        }
    };
    let uses = Dockerfile::parse(&text).and_then(|dockerfile| {
        let mut uses = BTreeSet::new();
        for platform in &request.platforms {
            uses.extend(dockerfile.images(
                request.target.as_deref(),
                &request.build_args,
                platform,
                engines.for_platform(platform).build_platform(),
            )?);
        }
        Ok(uses)
    });
    let uses: Vec<ImageUse> = match uses {
        Ok(uses) => uses.into_iter().collect(),
        Err(why) => {
            return Ok(unresolved(format!(
                "`{}`: {why}",
                request.dockerfile.display()
            )))
        }
    };
    let resolved = join_all(uses.iter().map(|image| async move {
        // A reference pinned by digest needs no lookup: the digest is the image.
        if image.reference.contains("@sha256:") {
            return Ok(image.reference.clone());
        }
        engines
            .for_platform(&image.platform)
            .resolve_image(&image.reference, &image.platform, Some(login))
            .await
            .map(|r| r.digest().to_owned())
    }))
    .await;
    let mut base_images: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (image, result) in uses.iter().zip(resolved) {
        match result {
            Ok(digest) if !digest.is_empty() => {
                base_images
                    .entry(image.platform.to_string())
                    .or_default()
                    .insert(image.reference.clone(), digest);
            }
            Ok(_) => {
                return Ok(unresolved(format!(
                    "the Engine named no digest for `{}` ({})",
                    image.reference, image.platform
                )))
            }
            Err(error @ engine::Error::Lost { .. }) => {
                return Err(anyhow::Error::new(error).context("nothing was built or pushed"))
            }
            Err(error) => {
                return Ok(unresolved(format!(
                    "cannot resolve `{}` for `{}`: {}",
                    image.reference,
                    image.platform,
                    crate::error_chain(&error)
                )))
            }
        }
    }
    let context_digest = match context_digest.await {
        Ok(Ok(digest)) => digest,
        Ok(Err(error)) => {
            return Err(anyhow::Error::new(error).context("reading the build context"))
        }
        Err(error) => return Err(anyhow::Error::new(error).context("reading the build context")),
    };
    let inputs = BuildInputs {
        context: &context_digest,
        dockerfile: &context.dockerfile,
        build_args: &request.build_args,
        target: request.target.as_deref(),
        labels: build_digest::labels_that_count(&plan.labels, &request.labels),
        platforms: build_digest::platform_names(&request.platforms),
        // Each platform's Engine (`engines`), as BuildKit's `$BUILDPLATFORM` differs by Engine.
        build_platform: request
            .platforms
            .iter()
            .map(|p| engines.for_platform(p).build_platform().to_string())
            .collect::<Vec<_>>()
            .join(","),
        network: request.network.map(crate::engine::NetworkMode::as_str),
        inline_cache: request.repository_cache,
        base_images: base_images.clone(),
    };
    let digest = inputs.digest();
    let described: Vec<String> = base_images
        .iter()
        .flat_map(|(platform, images)| {
            images
                .iter()
                .map(move |(reference, digest)| format!("{reference} ({platform}) = {digest}"))
        })
        .collect();
    console.info(&format!(
        "build digest {digest}: context {context_digest}, {}",
        if described.is_empty() {
            "no base image".to_owned()
        } else {
            format!("base images {}", described.join(", "))
        }
    ));
    Ok(BuildDigest {
        digest: Some(digest),
        unresolved: None,
        base_images,
    })
}

/// The annotations the pushed index records: the build digest, when there is one.
pub fn annotations(check: Option<&BuildDigest>) -> BTreeMap<String, String> {
    check
        .and_then(|c| c.digest.clone())
        .map(|digest| BTreeMap::from([(build_digest::ANNOTATION.to_owned(), digest)]))
        .unwrap_or_default()
}

/// Whether to build, and why: the images to reuse (in the plan's order) when the image under
/// the first tag records this run's digest and holds every platform.
pub fn decide<'a>(
    check: &BuildDigest,
    state: &'a RepositoryState,
    plan: &Plan,
) -> (Option<Vec<&'a ExistingImage>>, SkipReport) {
    let first_tag = &plan.index_tags[0].tag;
    let report = |skipped, reason: String| SkipReport {
        skipped,
        reason,
        build_digest: check.digest.clone(),
        base_images: check.base_images.clone(),
    };
    let Some(digest) = &check.digest else {
        let why = check.unresolved.clone().unwrap_or_default();
        return (
            None,
            report(
                false,
                format!("`skip-unchanged` is off for this run: {why}"),
            ),
        );
    };
    let existing = &state.existing;
    let recorded = existing.annotations.get(build_digest::ANNOTATION);
    let reason = match (&existing.digest, recorded) {
        (None, _) => format!("the repository holds no image under `{first_tag}` yet"),
        (Some(_), None) => format!(
            "the image under `{first_tag}` records no build digest (it was not pushed with `skip-unchanged`)"
        ),
        (Some(_), Some(recorded)) if recorded != digest => format!(
            "the image under `{first_tag}` was built from other inputs (build digest {recorded}; this run's is {digest})"
        ),
        (Some(held), Some(_)) => {
            let images: Option<Vec<&ExistingImage>> = plan
                .platforms
                .iter()
                .map(|p| {
                    existing.images.iter().find(|image| {
                        let found = &image.platform;
                        p.platform.is_satisfied_by(
                            &found.os,
                            &found.architecture,
                            found.variant.as_deref(),
                        )
                    })
                })
                .collect();
            match (images, &existing.document) {
                (Some(images), Some(_)) if images.len() == existing.images.len() => {
                    return (
                        Some(images),
                        report(
                            true,
                            format!(
                                "the image under `{first_tag}` ({held}) was built from the same inputs (build digest {digest})"
                            ),
                        ),
                    );
                }
                _ => format!(
                    "the image under `{first_tag}` records this build digest but does not hold exactly these platforms"
                ),
            }
        }
    };
    (None, report(false, reason))
}

/// What a skipped run works with.
pub struct Reuse<'a> {
    /// The repository's registry.
    pub registry: &'a Registry,
    /// The run's plan.
    pub plan: &'a Plan,
    /// What the repository holds.
    pub state: &'a RepositoryState,
    /// The repository as ECR describes it.
    pub repository: &'a Repository,
    /// The repository's settings and archive lines for the summary (issue 18).
    pub repository_notes: Vec<String>,
}

impl Reuse<'_> {
    /// Puts the index the first tag holds under the other tags (by the tag rules, nothing else
    /// uploaded, once the gate judged today's findings of the images it reuses) and reports
    /// each platform image as the repository holds it.
    pub async fn outcome(
        self,
        mut session: Session<'_>,
        images: &[&ExistingImage],
        report: SkipReport,
    ) -> anyhow::Result<Outcome> {
        let plan = self.plan;
        let repository_uri = self.registry.repository_uri();
        let gate = finish::gate(
            &mut session,
            &repository_uri,
            plan.platforms
                .iter()
                .zip(images)
                .map(|(p, image)| (p.platform.clone(), image.manifest.digest.to_string())),
        )
        .await?;
        let document = self
            .state
            .existing
            .document
            .clone()
            .context("the image under the first tag went missing")?;
        let index = Index {
            document,
            children: plan
                .platforms
                .iter()
                .zip(images)
                .map(|(p, image)| IndexChild::new(&p.platform, &image.manifest))
                .collect(),
        };
        let children: Vec<&ManifestDocument> = images.iter().map(|image| &image.manifest).collect();
        let decisions = push::decide_tags(
            plan,
            &self.state.held,
            &index,
            &children,
            &self.repository.mutability,
        )?;
        finish::put_tags(&mut session, self.registry, &decisions, &index, &children).await?;
        let source = format!("already under `{}`", plan.index_tags[0].tag);
        let platforms = plan
            .platforms
            .iter()
            .zip(images)
            .zip(decisions.arch)
            .map(|((p, image), arch)| {
                finish::reused(p.platform.clone(), image, arch, source.clone())
            })
            .collect();
        Ok(finish::Indexed {
            kind: RunKind::Build,
            repository_uri,
            repository_created: self.repository.created,
            index,
            tags: decisions.index,
            platforms,
            skip: Some(report),
            repository_notes: self.repository_notes,
            gate,
        }
        .outcome(session))
    }
}

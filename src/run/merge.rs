//! A merge run (issue 10): joins the platform images that `platform-only` runs pushed by
//! digest into one index under the tags, as a one-job run would have pushed it. No Dockerfile
//! is read and no Docker Engine is reached. Every image is read back from the registry and its
//! config must name its platform; `platforms` must get exactly one image each, in its order
//! (so the same images give the same index digest as a one-job run). The tags follow the
//! one-job run's rules: `latest=auto`, and every tag decided ([`push::decide_tags`]) before
//! anything is put, so that a re-run is a no-op, on an immutable repository too.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::future::try_join_all;

use super::finish;
use super::push;
use super::session::Session;
use crate::github::Console;
use crate::handoff::{self, PlatformImage};
use crate::inputs::{names, InputError, MergeSource, Request};
use crate::oci::{Digest, ManifestDocument};
use crate::platform::Platform;
use crate::registry::{self, ExistingImage, Index, IndexChild, Registry, RetryLog};
use crate::report::{Outcome, PlatformResult, RunKind};
use crate::timings::Phase;

/// One image the `merge` input names.
struct Claim {
    /// Where it came from: the result file, or the reference as given.
    source: String,
    /// The image's digest.
    digest: Digest,
    /// What its result file says about it (`None` for a reference).
    result: Option<ResultClaim>,
}

/// What a result file says about one of its images.
struct ResultClaim {
    /// The registry the file says the image was pushed to.
    registry: String,
    /// The commit it was built from.
    revision: Option<String>,
    /// The platform, parsed.
    platform: Platform,
    /// The rest of the file's entry.
    image: PlatformImage,
}

fn merge_error(message: String) -> anyhow::Error {
    InputError {
        input: names::MERGE,
        message,
    }
    .into()
}

/// Every image the `merge` input names: those of the result files (which must be for this
/// repository) and the references.
fn claims(request: &Request, sources: &[MergeSource]) -> anyhow::Result<Vec<Claim>> {
    let mut claims = Vec::new();
    for source in sources {
        match source {
            MergeSource::Image { reference, digest } => claims.push(Claim {
                source: reference.clone(),
                digest: digest.clone(),
                result: None,
            }),
            MergeSource::Results(path) => {
                let files = handoff::read(path).map_err(|e| merge_error(crate::error_chain(&e)))?;
                for (file, results) in files {
                    let shown = file.display().to_string();
                    if results.repository != request.repository {
                        return Err(merge_error(format!(
                            "`{shown}` is a result for repository `{}`, not `{}`: give `merge` the folder of this repository's results only (one folder per repository, e.g. `{}/<service>`)",
                            results.repository,
                            request.repository,
                            handoff::DEFAULT_FOLDER,
                        )));
                    }
                    for image in results.images {
                        let platform = image.platform.parse().map_err(|e| {
                            merge_error(format!("`{shown}`: {}", crate::error_chain(&e)))
                        })?;
                        claims.push(Claim {
                            source: shown.clone(),
                            digest: image.digest.clone(),
                            result: Some(ResultClaim {
                                registry: results.registry.clone(),
                                revision: results.revision.clone(),
                                platform,
                                image,
                            }),
                        });
                    }
                }
            }
        }
    }
    Ok(claims)
}

/// Puts each image under the entry of `platforms` it is for: one image per platform (the same
/// image named twice counts once), none for a platform the run does not list, none missing.
fn match_platforms<'a>(
    platforms: &[Platform],
    claims: &'a [Claim],
    images: Vec<ExistingImage>,
) -> anyhow::Result<Vec<(&'a Claim, ExistingImage)>> {
    let mut slots: Vec<Option<(&Claim, ExistingImage)>> = platforms.iter().map(|_| None).collect();
    for (claim, image) in claims.iter().zip(images) {
        let found = &image.platform;
        let slot = match &claim.result {
            // The registry confirmed the config names the file's platform.
            Some(result) => platforms
                .iter()
                .position(|p| p.normalized() == result.platform.normalized()),
            None => platforms.iter().position(|p| {
                p.is_satisfied_by(&found.os, &found.architecture, found.variant.as_deref())
            }),
        };
        let platform = claim
            .result
            .as_ref()
            .map_or_else(|| found.to_string(), |r| r.platform.to_string());
        let Some(slot) = slot else {
            let listed: Vec<String> = platforms.iter().map(|p| format!("`{p}`")).collect();
            return Err(merge_error(format!(
                "`{}` gives a `{platform}` image (`{}`), and `platforms` ({}) does not list `{platform}`: add it to `platforms`, or leave that image out of `merge`",
                claim.source,
                image.manifest.digest,
                listed.join(", ")
            )));
        };
        if let Some((earlier, earlier_image)) = &slots[slot] {
            // The same image named twice (a folder and a file in it, two downloads of one
            // artifact) is still one image.
            if earlier_image.manifest.digest == image.manifest.digest {
                continue;
            }
            return Err(merge_error(format!(
                "two images for `{}`: `{}` from `{}` and `{}` from `{}`: merge one image per platform (were the results of an earlier run, or of one job twice, downloaded too?)",
                platforms[slot],
                earlier_image.manifest.digest,
                earlier.source,
                image.manifest.digest,
                claim.source
            )));
        }
        slots[slot] = Some((claim, image));
    }
    let missing: Vec<String> = platforms
        .iter()
        .zip(&slots)
        .filter(|(_, slot)| slot.is_none())
        .map(|(p, _)| format!("`{p}`"))
        .collect();
    if !missing.is_empty() {
        return Err(merge_error(format!(
            "no image for {} of `platforms`: did its `platform-only` job fail, or its result not get downloaded? Merge its result, or remove the platform from `platforms`",
            missing.join(", ")
        )));
    }
    Ok(slots.into_iter().flatten().collect())
}

/// Waits between reads of an image that is not found: on ECR a manifest pushed moments ago
/// can briefly read as missing (docker/github-builder#30), so it is read again before the
/// merge gives up on it.
const NOT_FOUND_WAITS_MS: [u64; 3] = [500, 1000, 2000];

/// Reads one claimed image from the registry: a result file's image must be for the file's
/// platform; a reference's image says its platform itself.
async fn read_image(
    registry: &Registry,
    claim: &Claim,
    log: RetryLog<'_>,
) -> Result<ExistingImage, registry::Error> {
    let mut waits = NOT_FOUND_WAITS_MS.iter();
    loop {
        let read = match &claim.result {
            Some(result) => {
                registry
                    .platform_image(&result.platform, &claim.digest, log)
                    .await
            }
            None => registry.image(&claim.digest, log).await,
        };
        match (read, waits.next()) {
            (Err(error @ registry::Error::NotInRepository { .. }), Some(wait)) => {
                log.line(&format!(
                    "{error}; reading it again in {:.1} s (a manifest pushed moments ago can read as missing for a while)",
                    Duration::from_millis(*wait).as_secs_f64()
                ));
                tokio::time::sleep(Duration::from_millis(*wait)).await;
            }
            (read, _) => return read,
        }
    }
}

/// The merge run of what `sources` name (`unused`: the build inputs it was given); nothing
/// is put before every tag is decided.
pub async fn run(
    request: &Request,
    sources: &[MergeSource],
    unused: &[&'static str],
    console: &Console,
) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    // The results are read first: a wrong folder fails before any call to AWS.
    let claims = claims(request, sources)?;

    let mut session = Session::open(request, console, started).await?;
    if !unused.is_empty() {
        let unused: Vec<String> = unused.iter().map(|name| format!("`{name}`")).collect();
        console.notice(&format!(
            "a merge run builds nothing: {} not used",
            unused.join(", ")
        ));
    }
    let registry_host = &session.registry_host;
    let mut warned: Vec<&str> = Vec::new();
    for claim in &claims {
        let Some(result) = &claim.result else {
            continue;
        };
        if &result.registry != registry_host {
            return Err(merge_error(format!(
                "`{}` is a result for registry `{}`, and this run pushes to `{registry_host}`: merge in the account and region the images were pushed to (`aws-region`, `registry-id`, `registry`)",
                claim.source, result.registry
            )));
        }
        if let (Some(built), Some(now)) = (&result.revision, &request.git.git_ref.sha) {
            if built != now && !warned.contains(&claim.source.as_str()) {
                warned.push(&claim.source);
                console.warning(&format!(
                    "`{}` was built from commit `{built}`, and this run is for `{now}`",
                    claim.source
                ));
            }
        }
    }

    let plan = session.plan().await?;
    let phase = Instant::now();
    let Some(repository) = session
        .ecr
        .existing_repository(&plan.repository)
        .await
        .with_context(|| format!("reading repository `{}`", plan.repository))?
    else {
        return Err(merge_error(format!(
            "repository `{}` does not exist in `{}`: the `platform-only` runs push to it first; check `repository`, `aws-region` and `registry-id`",
            plan.repository, request.aws_region
        )));
    };
    session.timed(Phase::EnsureRepository, phase);
    let repository_uri = session.repository_uri(&plan);
    console.info(&format!(
        "merging {} images into `{repository_uri}`",
        claims.len()
    ));

    let registry = session.registry(&plan)?;
    let log = RetryLog::new(console, "registry");
    let phase = Instant::now();
    let images = try_join_all(claims.iter().map(|claim| {
        let registry = &registry;
        async move {
            let image = read_image(registry, claim, log).await.with_context(|| {
                match claim.result {
                    Some(_) => format!("reading `{}` of `{}`", claim.digest, claim.source),
                    None => format!("reading `{}`", claim.source),
                }
            })?;
            if let Some(result) = &claim.result {
                let manifest = &image.manifest;
                let declared = (&result.image.media_type, result.image.size);
                let stored = (&manifest.media_type, manifest.bytes.len() as u64);
                if manifest.digest == claim.digest && declared != stored {
                    return Err(merge_error(format!(
                        "`{}` says `{}` is a `{}` of {} bytes, and the registry holds a `{}` of {} bytes: the file does not describe that image",
                        claim.source, claim.digest, declared.0, declared.1, stored.0, stored.1
                    )));
                }
            }
            anyhow::Ok(image)
        }
    }))
    .await?;
    session.timed(Phase::ReadImages, phase);
    let matched = match_platforms(&request.platforms, &claims, images)?;

    let index = Index::new(
        request
            .platforms
            .iter()
            .zip(&matched)
            .map(|(platform, (_, image))| IndexChild::new(platform, &image.manifest))
            .collect(),
    );
    let children: Vec<&ManifestDocument> =
        matched.iter().map(|(_, image)| &image.manifest).collect();
    let tags: Vec<&str> = plan
        .index_tags
        .iter()
        .map(|t| t.tag.as_str())
        .chain(plan.platforms.iter().filter_map(|p| p.arch_tag.as_deref()))
        .collect();
    let digests = try_join_all(tags.iter().map(|tag| registry.manifest_digest(tag, log)))
        .await
        .context("reading what the tags hold")?;
    let held: BTreeMap<String, Option<String>> = tags
        .iter()
        .map(|tag| (*tag).to_owned())
        .zip(digests.into_iter().map(|digest| digest.map(String::from)))
        .collect();
    let decisions = push::decide_tags(&plan, &held, &index, &children, &repository.mutability)?;
    // The merge run holds the gate: the `platform-only` runs leave it to this one.
    let gate = finish::gate(
        &mut session,
        &repository_uri,
        request
            .platforms
            .iter()
            .zip(&children)
            .map(|(p, child)| (p.clone(), child.digest.to_string())),
    )
    .await?;
    finish::put_tags(&mut session, &registry, &decisions, &index, &children).await?;

    let platforms = request
        .platforms
        .iter()
        .zip(matched)
        .zip(decisions.arch)
        .map(|((platform, (claim, image)), arch)| {
            let reused = finish::reused(platform.clone(), &image, arch, claim.source.clone());
            match claim.result.as_ref().map(|r| &r.image) {
                // What the `platform-only` run recorded of its build.
                Some(file) => PlatformResult {
                    image_id: file.image_id.clone(),
                    image_size: Some(file.image_size),
                    build_ms: file.build_ms,
                    push_ms: file.push_ms,
                    engine: file.engine.clone(),
                    ..reused
                },
                None => reused,
            }
        })
        .collect();
    Ok(finish::Indexed {
        kind: RunKind::Merge,
        repository_uri,
        repository_created: false,
        index,
        tags: decisions.index,
        platforms,
        skip: None,
        repository_notes: Vec::new(),
        gate,
    }
    .outcome(session))
}

//! One run, wired in the order of the data: inputs, plan, ECR, engine, registry, report.
//! Also decides the exit code: 1 for what the user must fix (inputs, the Dockerfile, a missing
//! repository), 2 for an outside system failing.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;
use futures_util::future::{join_all, try_join_all};
use tokio::sync::Semaphore;

use crate::context::BuildContext;
use crate::ecr::{self, Ecr};
use crate::engine::{self, BuildSettings, BuiltImage, Engine};
use crate::github::{self, Console, SourceLocation};
use crate::image_export::{self, BlobSource, PreparedImage};
use crate::inputs::{names, Args, InputError, Request};
use crate::plan::{self, Plan, TagAction};
use crate::platform::PlatformMismatch;
use crate::registry::{self, Index, IndexChild, Registry, RepositoryImages, RetryLog};
use crate::report::{Outcome, PlatformResult, TagResult};
use crate::tag_rules::SourcedTag;

/// Blob uploads under way at once, across all platforms: enough to fill a runner's link, few
/// enough not to be throttled.
const CONCURRENT_UPLOADS: usize = 4;

/// Exit code for a run that did what was asked.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure the user must fix: an input, the Dockerfile, a missing repository.
pub const EXIT_USER: u8 = 1;
/// Exit code for an outside system failing: the Engine, ECR, the registry.
pub const EXIT_SYSTEM: u8 = 2;

/// Runs the whole action for parsed arguments and returns the exit code; reports the outcome
/// (outputs, summary, JSON) or the one error annotation.
pub async fn main(args: Args) -> u8 {
    let github_actions = args.env_github_actions.as_deref() == Some("true");
    let request = match Request::try_from(args) {
        Ok(request) => request,
        Err(error) => {
            Console::new(github_actions).error(
                &format!("Invalid input {}", error.input),
                &error.to_string(),
                None,
            );
            return EXIT_USER;
        }
    };
    let console = Console::new(request.runner.github_actions);
    match run(&request, &console).await {
        Ok(outcome) => match publish(&request, &console, &outcome) {
            Ok(()) => {
                // The image is pushed: the GitHub API can only warn from here on.
                crate::github_api::report(&request, &outcome, &console).await;
                // Last, so that stdout ends with the one JSON document.
                console.print_json(&outcome.json());
                EXIT_OK
            }
            Err(error) => {
                console.error("Writing outputs failed", &format!("{error:#}"), None);
                EXIT_SYSTEM
            }
        },
        Err(error) => {
            let (code, title, location) = classify(&request, &error);
            console.error(&title, &format!("{error:#}"), location.as_ref());
            code
        }
    }
}

/// Exit code, annotation title and Dockerfile location for a failed run.
fn classify(request: &Request, error: &anyhow::Error) -> (u8, String, Option<SourceLocation>) {
    for cause in error.chain() {
        if let Some(input) = cause.downcast_ref::<InputError>() {
            return (EXIT_USER, format!("Invalid input {}", input.input), None);
        }
        if let Some(engine::Error::BuildFailed {
            platform,
            dockerfile_line,
            ..
        }) = cause.downcast_ref::<engine::Error>()
        {
            let location = dockerfile_line.map(|line| SourceLocation {
                file: request
                    .dockerfile
                    .to_string_lossy()
                    .trim_start_matches("./")
                    .to_owned(),
                line,
            });
            return (EXIT_USER, format!("Build failed for {platform}"), location);
        }
        if let Some(engine::Error::Lost { platform, .. }) = cause.downcast_ref::<engine::Error>() {
            let title = platform.as_ref().map_or_else(
                || "Docker Engine lost".to_owned(),
                |platform| format!("Docker Engine lost while building {platform}"),
            );
            return (EXIT_SYSTEM, title, None);
        }
        if let Some(engine::Error::Unsupported { .. }) = cause.downcast_ref::<engine::Error>() {
            return (EXIT_SYSTEM, "Docker Engine not supported".to_owned(), None);
        }
        if let Some(ecr::Error::RepositoryMissing { .. }) = cause.downcast_ref::<ecr::Error>() {
            return (EXIT_USER, "Repository missing".to_owned(), None);
        }
        if let Some(mismatch) = cause.downcast_ref::<PlatformMismatch>() {
            return (
                EXIT_USER,
                format!("Wrong platform for {}", mismatch.wanted),
                None,
            );
        }
        if let Some(conflict) = cause.downcast_ref::<plan::ImmutableTag>() {
            return (
                EXIT_USER,
                format!("Tag {} is immutable", conflict.tag),
                None,
            );
        }
        if let Some(error) = cause.downcast_ref::<registry::Error>() {
            if error.is_denied() {
                return (EXIT_USER, "Registry denied access".to_owned(), None);
            }
            // Another run moved an immutable tag between our read and our push.
            if error.code() == Some("TAG_INVALID") {
                return (EXIT_USER, "Tag is immutable".to_owned(), None);
            }
        }
    }
    (EXIT_SYSTEM, "ecr-multiarch failed".to_owned(), None)
}

/// Writes the outputs file and the summary (on a runner) and the notice.
fn publish(request: &Request, console: &Console, outcome: &Outcome) -> anyhow::Result<()> {
    if let Some(path) = &request.runner.output_file {
        github::write_outputs(path, &outcome.outputs())
            .with_context(|| format!("writing outputs to `{}`", path.display()))?;
    }
    if let Some(path) = &request.runner.summary_file {
        github::write_summary(path, &outcome.summary_markdown())
            .with_context(|| format!("writing the job summary to `{}`", path.display()))?;
    }
    console.notice(&format!("pushed {}", outcome.image_uri()));
    Ok(())
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

fn elapsed_ms(start: Instant) -> u128 {
    start.elapsed().as_millis()
}

/// The run itself: every side effect happens here, in order, after the request was validated.
pub async fn run(request: &Request, console: &Console) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    // Listing the context is still validation: a bad `.dockerignore` or an escaping symlink
    // fails here, before anything is created.
    let context =
        BuildContext::scan(&request.context, &request.dockerfile).map_err(|e| InputError {
            input: names::CONTEXT,
            message: crate::error_chain(&e),
        })?;

    let ecr = Ecr::connect(request).await;
    let credentials = ecr
        .registry_credentials()
        .await
        .context("getting registry credentials from ECR")?;
    // Before anything else reaches the log.
    console.mask(&credentials.password);
    if let Some(token) = &request.github_token {
        console.mask(token);
    }

    // `latest=auto` asks the repository which releases it has; still nothing is created.
    let repository_tags = if Plan::needs_repository_tags(request) {
        ecr.repository_tags(&request.repository)
            .await
            .context("reading the repository's tags for `latest=auto`")?
    } else {
        Vec::new()
    };
    let plan = Plan::new(request, &repository_tags)?;
    for notice in &plan.notices {
        console.notice(notice);
    }

    // Reach the Engine before creating anything, so that a missing daemon, or one that
    // cannot run these builds, leaves no trace.
    let engine = Engine::connect(request.docker_host.as_deref()).await?;
    console.info(&engine.describe());

    let registry_host = request
        .registry
        .clone()
        .unwrap_or_else(|| credentials.proxy_host.clone());
    let repository_uri = format!("{registry_host}/{}", plan.repository);
    let mut phase_ms = BTreeMap::new();

    let phase = Instant::now();
    let repository = ecr
        .ensure_repository(request)
        .await
        .with_context(|| format!("ensuring repository `{}`", plan.repository))?;
    phase_ms.insert("ensure_repository", elapsed_ms(phase));
    console.info(&format!(
        "repository `{}` {} in {}; pushing to `{repository_uri}`",
        plan.repository,
        if repository.created {
            "created"
        } else {
            "exists"
        },
        request.aws_region
    ));

    // Foreign platforms run their `RUN` steps under QEMU: register it like setup-qemu-action
    // would. A failure here only warns: the runner may already emulate them.
    let foreign = engine.foreign_architectures(&request.platforms);
    if !foreign.is_empty() && request.binfmt_image != "none" {
        let phase = Instant::now();
        if let Err(error) = engine
            .register_emulators(&foreign, &request.binfmt_image, console)
            .await
        {
            // A daemon that died here cannot build either: that is the failure to report.
            if matches!(error, engine::Error::Lost { .. }) {
                return Err(anyhow::Error::new(error).context("nothing was built or pushed"));
            }
            console.warning(&format!(
                "{:#} (builds for {} need QEMU registered on the runner)",
                anyhow::Error::new(error),
                foreign.join(", ")
            ));
        }
        phase_ms.insert("emulation", elapsed_ms(phase));
    }

    let settings = BuildSettings::new(request, &plan.labels);

    // Build every platform concurrently; push nothing unless all of them built, so that a
    // failing platform moves no tag at all.
    let builds = join_all(plan.platforms.iter().map(|p| async {
        let start = Instant::now();
        let built = engine
            .build(
                &p.platform,
                &context,
                &request.dockerfile,
                &settings,
                console,
            )
            .await;
        (built, elapsed_ms(start))
    }))
    .await;
    console.end_group();
    let mut built: Vec<(BuiltImage, u128)> = Vec::new();
    let mut failures = Vec::new();
    for (result, ms) in builds {
        match result {
            Ok(image) => built.push((image, ms)),
            Err(error) => failures.push(error),
        }
    }
    if let Some(first) = failures.into_iter().next() {
        // Every platform's failure is already in its group's log; the first one is reported.
        return Err(anyhow::Error::new(first).context("nothing was pushed"));
    }

    let registry = Registry::new(
        &registry_host,
        &plan.repository,
        &credentials.username,
        &credentials.password,
    )?;
    let registry_log = RetryLog::new(console, "registry");

    // What the repository holds, read before anything is uploaded: the images under the first
    // tag (their layers are referenced, not uploaded again) and what every tag holds now.
    let phase = Instant::now();
    let first_tag = plan.index_tags[0].tag.as_str();
    let existing = registry
        .images_under(first_tag, registry_log)
        .await
        .with_context(|| format!("reading what `{repository_uri}:{first_tag}` holds"))?;
    let mut held: BTreeMap<String, Option<String>> = BTreeMap::new();
    held.insert(first_tag.to_owned(), existing.digest.clone());
    let other_tags: Vec<&str> = plan
        .index_tags
        .iter()
        .map(|t| t.tag.as_str())
        .chain(plan.platforms.iter().filter_map(|p| p.arch_tag.as_deref()))
        .filter(|tag| *tag != first_tag)
        .collect();
    let digests = try_join_all(
        other_tags
            .iter()
            .map(|tag| registry.manifest_digest(tag, registry_log)),
    )
    .await
    .context("reading what the tags hold")?;
    held.extend(other_tags.iter().map(|tag| (*tag).to_owned()).zip(digests));
    phase_ms.insert("read_repository", elapsed_ms(phase));

    // Each platform image as the registry will hold it: the repository's own when it already
    // has this exact image, else read from the Engine's export, layers compressed.
    let temp_root = std::env::temp_dir();
    let prepared = try_join_all(built.iter().map(|(image, _)| {
        let (engine, existing, temp_root) = (&engine, &existing, &temp_root);
        async move {
            let start = Instant::now();
            let group = image.platform.to_string();
            let prepared = prepare_image(engine, image, existing, temp_root, console)
                .await
                .with_context(|| format!("preparing the `{group}` image for the registry"))?;
            anyhow::Ok((prepared, elapsed_ms(start)))
        }
    }))
    .await?;
    console.end_group();

    // Decide every tag before uploading anything: a tag that already holds this run's digest
    // stays; an immutable tag that holds another digest ends the run here.
    let index = Index::new(
        prepared
            .iter()
            .map(|(image, _)| IndexChild::new(&image.platform, &image.manifest))
            .collect(),
    );
    let index_updates = plan::tag_updates(
        &plan.index_tags,
        &held,
        &index.document.digest,
        &repository.mutability,
        &plan.repository,
    )?;
    let mut arch_updates = Vec::new();
    for (platform_plan, (image, _)) in plan.platforms.iter().zip(&prepared) {
        let update = match &platform_plan.arch_tag {
            Some(tag) => plan::tag_updates(
                &[SourcedTag {
                    tag: tag.clone(),
                    source: names::ARCH_TAGS,
                }],
                &held,
                &image.manifest.digest,
                &repository.mutability,
                &plan.repository,
            )?
            .pop(),
            None => None,
        };
        arch_updates.push(update);
    }

    // Every platform image by digest, concurrently; blobs a few at a time across the run.
    let uploads = Semaphore::new(CONCURRENT_UPLOADS);
    let pushed = try_join_all(prepared.iter().map(|(image, prepare_ms)| {
        let (registry, uploads) = (&registry, &uploads);
        async move {
            let start = Instant::now();
            let group = image.platform.to_string();
            let log = RetryLog::new(console, &group);
            let stats = registry
                .push_image(image, uploads, log)
                .await
                .with_context(|| {
                    format!(
                        "pushing the `{group}` image to `{}`: no index tag moved",
                        registry.repository_uri()
                    )
                })?;
            log.line(&if stats.manifest_uploaded {
                format!(
                    "pushed {} by digest: {} layers uploaded, {} already in the repository, {} sent",
                    image.manifest.digest,
                    stats.layers_uploaded,
                    stats.layers_reused,
                    crate::report::human_size(stats.bytes_uploaded),
                )
            } else {
                format!(
                    "{} is already in the repository: nothing pushed",
                    image.manifest.digest
                )
            });
            anyhow::Ok((stats, prepare_ms + elapsed_ms(start)))
        }
    }))
    .await?;
    console.end_group();

    // The tags last, once every image is in: the index under each tag that does not hold it
    // yet, then the per-platform tags.
    let phase = Instant::now();
    for update in &index_updates {
        if update.action == TagAction::Push {
            registry
                .put_manifest(&update.tag, &index.document, registry_log)
                .await
                .with_context(|| format!("pushing the index under `{}`", update.tag))?;
        }
        console.info(&format!(
            "{repository_uri}:{} {}",
            update.tag,
            match update.action {
                TagAction::Push => "pushed",
                TagAction::Unchanged => "unchanged (it already holds this index)",
            }
        ));
    }
    for (update, (image, _)) in arch_updates.iter().zip(&prepared) {
        if let Some(update) = update.as_ref().filter(|u| u.action == TagAction::Push) {
            registry
                .put_manifest(&update.tag, &image.manifest, registry_log)
                .await
                .with_context(|| format!("pushing the per-platform tag `{}`", update.tag))?;
        }
    }
    phase_ms.insert("index", elapsed_ms(phase));
    phase_ms.insert("total", elapsed_ms(started));

    let platforms = built
        .iter()
        .zip(&prepared)
        .zip(&pushed)
        .zip(arch_updates)
        .map(
            |((((image, build_ms), (prepared, _)), (stats, push_ms)), arch)| PlatformResult {
                platform: image.platform.clone(),
                image_id: image.image_id.clone(),
                image_size: image.size,
                manifest_digest: prepared.manifest.digest.clone(),
                content_size: prepared.config.descriptor.size
                    + prepared
                        .layers
                        .iter()
                        .map(|l| l.descriptor.size)
                        .sum::<u64>(),
                layers_uploaded: stats.layers_uploaded,
                layers_reused: stats.layers_reused,
                bytes_uploaded: stats.bytes_uploaded,
                arch_tag: arch.map(|u| (u.tag, u.action)),
                build_ms: *build_ms,
                push_ms: *push_ms,
            },
        )
        .collect();
    let console_url = ecr_console_url(request, &credentials.proxy_host, &index.document.digest);
    Ok(Outcome {
        tags: index_updates
            .into_iter()
            .map(|u| TagResult {
                reference: format!("{repository_uri}:{}", u.tag),
                source: u.source,
                action: u.action,
            })
            .collect(),
        registry: registry_host,
        repository_uri,
        repository_created: repository.created,
        digest: index.document.digest,
        media_type: index.document.media_type,
        platforms,
        console_url,
        phase_ms,
    })
}

/// One built image as the registry will hold it. When the repository already has an image
/// with this config (the image id is the config's digest on the classic store), that image is
/// reused whole and nothing is exported; otherwise the Engine's export is read, reusing the
/// layers the repository holds.
async fn prepare_image(
    engine: &Engine,
    image: &BuiltImage,
    existing: &RepositoryImages,
    temp_root: &std::path::Path,
    console: &Console,
) -> anyhow::Result<PreparedImage> {
    let group = image.platform.to_string();
    if let Some(held) = existing.with_config(&image.image_id) {
        let found = &held.platform;
        if !image
            .platform
            .is_satisfied_by(&found.os, &found.architecture, found.variant.as_deref())
        {
            return Err(PlatformMismatch {
                wanted: image.platform.clone(),
                found: found.to_string(),
                digest: held.manifest.digest.clone(),
            }
            .into());
        }
        console.group_line(
            &group,
            &format!(
                "the repository already holds this image as {}: nothing to export or upload",
                held.manifest.digest
            ),
        );
        return Ok(PreparedImage::in_repository(
            image.platform.clone(),
            held.manifest.clone(),
            held.config.clone(),
            held.layers.clone(),
        ));
    }
    console.group_line(&group, "reading the image from the Engine");
    let prepared = image_export::prepare(
        &image.platform,
        engine.export(image),
        &existing.known,
        &image.diff_ids,
        temp_root,
    )
    .await?;
    let reused = prepared
        .layers
        .iter()
        .filter(|l| l.source == BlobSource::Repository)
        .count();
    console.group_line(
        &group,
        &format!(
            "manifest {}: {} layers, {reused} of them already in the repository",
            prepared.manifest.digest,
            prepared.layers.len()
        ),
    );
    Ok(prepared)
}

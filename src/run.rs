//! One run, wired in the order of the data: inputs, plan, ECR, engine, registry, report.
//! Also decides the exit code: 1 for what the user must fix (inputs, the Dockerfile, a missing
//! repository), 2 for an outside system failing.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;
use bollard::auth::DockerCredentials;
use futures_util::future::join_all;

use crate::context::BuildContext;
use crate::ecr::{self, Ecr};
use crate::engine::{self, BuildSettings, BuiltImage, Engine};
use crate::github::{self, Console, SourceLocation};
use crate::inputs::{names, Args, InputError, Request};
use crate::plan::{self, Plan};
use crate::registry::{self, Registry};
use crate::report::{Outcome, PlatformResult};

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
        if let Some(registry::Error::PlatformMismatch { wanted, .. }) =
            cause.downcast_ref::<registry::Error>()
        {
            return (EXIT_USER, format!("Wrong platform for {wanted}"), None);
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

/// An error and its causes on one line, as `{:#}` shows an anyhow chain.
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        text.push_str(": ");
        text.push_str(&inner.to_string());
        cause = inner.source();
    }
    text
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
            message: with_causes(&e),
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
    );
    let docker_credentials = DockerCredentials {
        username: Some(credentials.username.clone()),
        password: Some(credentials.password.clone()),
        serveraddress: Some(registry_host.clone()),
        ..DockerCredentials::default()
    };
    let pushes = join_all(plan.platforms.iter().zip(&built).map(
        |(platform_plan, (image, build_ms))| {
            let (engine, registry, credentials) = (&engine, &registry, docker_credentials.clone());
            let repository_uri = repository_uri.as_str();
            async move {
                let start = Instant::now();
                let tag = platform_plan
                    .arch_tag
                    .clone()
                    .unwrap_or_else(|| plan::build_tag(&image.platform, &image.image_id));
                let pushed = engine
                    .push(image, repository_uri, &tag, credentials, console)
                    .await?;
                let manifest = registry
                    .resolve_platform_manifest(&image.platform, &pushed.digest)
                    .await?;
                anyhow::Ok(PlatformResult {
                    platform: image.platform.clone(),
                    image_id: image.image_id.clone(),
                    image_size: image.size,
                    manifest_digest: manifest.digest.clone(),
                    content_size: manifest.content_size,
                    reference: pushed.reference,
                    build_ms: *build_ms,
                    push_ms: elapsed_ms(start),
                })
                .map(|result| (result, manifest))
            }
        },
    ))
    .await;
    console.end_group();
    let mut results = Vec::new();
    let mut manifests = Vec::new();
    for push in pushes {
        let (result, manifest) = push.context("no index was pushed, so no index tag moved")?;
        results.push(result);
        manifests.push(manifest);
    }

    let phase = Instant::now();
    let index = registry
        .push_index(&manifests, &plan.tag_names())
        .await
        .context("pushing the multi-arch index")?;
    phase_ms.insert("index", elapsed_ms(phase));
    phase_ms.insert("total", elapsed_ms(started));
    let console_url = ecr_console_url(request, &credentials.proxy_host, &index.digest);
    Ok(Outcome {
        registry: registry_host,
        repository_uri,
        repository_created: repository.created,
        digest: index.digest,
        media_type: index.media_type,
        tag_sources: index
            .references
            .iter()
            .zip(&plan.index_tags)
            .map(|(reference, tag)| (reference.clone(), tag.source))
            .collect(),
        references: index.references,
        platforms: results,
        console_url,
        phase_ms,
    })
}

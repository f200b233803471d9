//! One run, wired in the order of the data: inputs, plan, ECR, engine ([`build`]), registry
//! ([`push`]), report; [`exit_code`] turns a failure into the exit code and its annotation.
//! A `merge` run joins the images of `platform-only` runs instead of building ([`merge`]).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;

use crate::context::BuildContext;
use crate::ecr::Ecr;
use crate::engine::{BuildSettings, Engines, RegistryLogin};
use crate::github::{self, Console};
use crate::image_export::ManifestDocument;
use crate::inputs::{names, Args, InputError, Request};
use crate::plan::Plan;
use crate::registry::{Index, IndexChild, Registry, RetryLog};
use crate::report::{Outcome, PlatformResult, RunKind, TagResult};

mod build;
mod exit_code;
mod merge;
mod platform_only;
mod push;
mod repository_settings;
mod runner_files;
mod skip;

pub use exit_code::{EXIT_OK, EXIT_SYSTEM, EXIT_USER};

/// Runs the whole action for parsed arguments and returns the exit code; reports the outcome
/// (outputs, summary, JSON) or the one error annotation.
pub async fn main(args: Args) -> u8 {
    let github_actions = args.env_github_actions.as_deref() == Some("true");
    let request = match Request::try_from(args) {
        Ok(request) => request,
        Err(error) => return refuse(&error, github_actions),
    };
    let console = Console::new(request.runner.github_actions);
    let request = match runner_files::check(request, &console) {
        Ok(request) => request,
        Err(code) => return code,
    };
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
                console.error(
                    "Writing outputs failed",
                    &format!("{error:#}; {}", runner_files::pushed(&outcome)),
                    None,
                );
                EXIT_SYSTEM
            }
        },
        Err(error) => {
            let (code, title, location) = exit_code::classify(&request, &error);
            console.error(&title, &format!("{error:#}"), location.as_ref());
            code
        }
    }
}

/// Refuses an input before anything happens: one annotation naming it, exit 1.
pub fn refuse(error: &InputError, github_actions: bool) -> u8 {
    Console::new(github_actions).error(
        &format!("Invalid input {}", error.input),
        &error.to_string(),
        None,
    );
    EXIT_USER
}

/// Writes the outputs file and the summary (on a runner) and the notice.
fn publish(request: &Request, console: &Console, outcome: &Outcome) -> anyhow::Result<()> {
    if let Some(path) = &request.runner.output_file {
        github::write_outputs(path, &outcome.outputs())
            .with_context(|| format!("writing outputs to `{}`", path.display()))?;
    }
    if let Some(path) = &request.runner.summary_file {
        // The summary is a courtesy: the image is pushed and the outputs are written.
        if let Err(error) = github::write_summary(path, &outcome.summary_markdown()) {
            console.warning(&format!(
                "writing the job summary to `{}`: {error}",
                path.display()
            ));
        }
    }
    console.notice(&outcome.notice());
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
    if request.is_merge() {
        return merge::run(request, console).await;
    }
    if request.is_platform_only() {
        runner_files::check_results_folder(request)?;
    }
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
    console.mask(credentials.password.expose());
    if let Some(token) = &request.github_token {
        console.mask(token.expose());
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
    let engines = Engines::connect(request).await?;
    for line in engines.describe() {
        console.info(&line);
    }

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
        } else if repository.settings.create_on_push {
            "left to create-on-push"
        } else {
            "exists"
        },
        request.aws_region
    ));
    let mut repository_notes = repository_settings::report(console, &plan.repository, &repository);
    // An archived image under the first tag cannot be pulled: the run treats the tag as empty.
    let archived = if repository.created || repository.settings.create_on_push {
        None
    } else {
        ecr.archived_image(&plan.repository, &plan.index_tags[0].tag)
            .await
    };
    if let Some(image) = &archived {
        repository_notes.push(repository_settings::archived(
            console,
            &plan.index_tags[0].tag,
            image,
        ));
    }

    let registry = Registry::new(
        &registry_host,
        &plan.repository,
        &credentials.username,
        credentials.password.expose(),
    )?;
    let login = RegistryLogin {
        host: registry_host.clone(),
        username: credentials.username.clone(),
        password: credentials.password.clone(),
    };
    // What the repository holds decides the cache each build imports, and whether to build at
    // all (`skip-unchanged`): read it, and make this run's build digest, before building. When
    // every run builds, QEMU is checked (and set up) meanwhile.
    let mut emulation_ms = BTreeMap::new();
    let (state, check, ()) = tokio::try_join!(
        async {
            let phase = Instant::now();
            let mut state =
                push::read_repository(&registry, &plan, RetryLog::new(console, "registry")).await?;
            if archived.is_some() {
                state.existing = crate::registry::RepositoryImages::default();
                state.held.insert(plan.index_tags[0].tag.clone(), None);
            }
            anyhow::Ok((state, elapsed_ms(phase)))
        },
        async {
            if !request.skip_unchanged {
                return anyhow::Ok(None);
            }
            let phase = Instant::now();
            let check =
                skip::build_digest(request, &plan, &context, &engines, &login, console).await?;
            anyhow::Ok(Some((check, elapsed_ms(phase))))
        },
        async {
            if request.skip_unchanged {
                return anyhow::Ok(());
            }
            crate::emulation::register_emulators(request, &engines, console, &mut emulation_ms)
                .await
        },
    )?;
    phase_ms.extend(emulation_ms);
    let (state, read_ms) = state;
    phase_ms.insert("read_repository", read_ms);
    let check = check.map(|(check, ms)| {
        phase_ms.insert("build_digest", ms);
        check
    });
    let skip_report = match &check {
        Some(check) => match skip::decide(check, &state, &plan) {
            (Some(images), report) => {
                console.notice(&format!("build skipped: {}", report.reason));
                // Issue 16: judged on today's findings of the images it reuses.
                let children = plan.platforms.iter().zip(&images);
                let gate = crate::gate::enforce(
                    request,
                    &ecr,
                    crate::gate::Images {
                        repository_uri: &repository_uri,
                        children: children
                            .map(|(p, image)| (p.platform.clone(), image.manifest.digest.clone()))
                            .collect(),
                    },
                    console,
                    &mut phase_ms,
                )
                .await?;
                let reused = skip::Reuse {
                    request,
                    registry: &registry,
                    plan: &plan,
                    state: &state,
                    repository: &repository,
                    proxy_host: &credentials.proxy_host,
                    repository_notes,
                };
                let mut outcome = reused
                    .outcome(&images, report, console, phase_ms, started)
                    .await?;
                outcome.gate = gate;
                return Ok(outcome);
            }
            (None, report) => {
                console.info(&format!("building: {}", report.reason));
                Some(report)
            }
        },
        None => None,
    };

    if request.skip_unchanged {
        crate::emulation::register_emulators(request, &engines, console, &mut phase_ms).await?;
    }
    let settings = BuildSettings::new(request, &plan.labels)
        .with_cache_from(build::cache_sources(
            request,
            &plan,
            &state.existing,
            &repository_uri,
            console,
        ))
        .with_registry_login(login);
    let built = build::build_all(request, &settings, &plan, &engines, &context, console).await?;
    let prepared = build::prepare_all(&engines, &built, &state.existing, console).await;
    // Exported (or failed): the builds' temporary images go (issue 14, §8).
    build::release_all(request, &engines, &built, console).await;
    let prepared = prepared?;

    let index = Index::with_annotations(
        prepared
            .iter()
            .map(|(image, _)| IndexChild::new(&image.platform, &image.manifest))
            .collect(),
        &skip::annotations(check.as_ref()),
    );
    let children: Vec<&ManifestDocument> =
        prepared.iter().map(|(image, _)| &image.manifest).collect();
    // A platform-only run puts no tag at all: the merge run decides them (issue 10).
    let decisions = if request.is_platform_only() {
        push::TagDecisions {
            index: Vec::new(),
            arch: vec![None; children.len()],
        }
    } else {
        push::decide_tags(
            &plan,
            &state.held,
            &index,
            &children,
            &repository.mutability,
        )?
    };
    let pushed = push::push_images(&registry, &prepared, console).await?;
    // Issue 16: every child is in by digest; the gate judges them before any tag moves.
    let gate = crate::gate::enforce(
        request,
        &ecr,
        crate::gate::Images {
            repository_uri: &repository_uri,
            children: children
                .iter()
                .zip(&plan.platforms)
                .map(|(child, p)| (p.platform.clone(), child.digest.clone()))
                .collect(),
        },
        console,
        &mut phase_ms,
    )
    .await?;
    if !request.is_platform_only() {
        let phase = Instant::now();
        push::put_tags(&registry, &decisions, &index, &children, console).await?;
        phase_ms.insert("index", elapsed_ms(phase));
    }
    phase_ms.insert("total", elapsed_ms(started));

    let platforms = built
        .iter()
        .zip(&prepared)
        .zip(&pushed)
        .zip(decisions.arch)
        .map(
            |((((image, build_ms), (prepared, _)), (stats, push_ms)), arch)| PlatformResult {
                platform: image.platform.clone(),
                image_id: image.image_id.clone(),
                image_size: Some(image.size),
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
                engine: Some(engines.for_platform(&image.platform).address().to_owned()),
                source: None,
            },
        )
        .collect();
    if request.is_platform_only() {
        return platform_only::finish(
            request,
            registry_host,
            repository_uri,
            repository.created,
            &index,
            platforms,
            phase_ms,
        );
    }
    let console_url = ecr_console_url(request, &credentials.proxy_host, &index.document.digest);
    Ok(Outcome {
        kind: RunKind::Build,
        tags: decisions
            .index
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
        skip: skip_report,
        phase_ms,
        repository_notes,
        gate,
    })
}

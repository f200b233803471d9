//! One run, wired in the order of the data: inputs, plan, ECR, engine ([`build`]), registry
//! ([`push`]), report; [`exit_code`] turns a failure into the exit code and its annotation.
//! A `merge` run joins the images of `platform-only` runs instead of building ([`merge`]).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context as _;

use crate::context::BuildContext;
use crate::engine::{BuildSettings, Engines};
use crate::github::{self, Console};
use crate::inputs::{names, Args, InputError, Request};
use crate::oci::ManifestDocument;
use crate::registry::{Index, IndexChild, RetryLog};
use crate::report::{Outcome, PlatformResult, RunKind};
use session::{elapsed_ms, Session};

mod build;
mod exit_code;
mod finish;
mod merge;
mod platform_only;
mod push;
mod repository_settings;
mod runner_files;
mod session;
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

    let mut session = Session::open(request, console, started).await?;
    let plan = session.plan().await?;

    // Reach the Engine before creating anything, so that a missing daemon, or one that
    // cannot run these builds, leaves no trace.
    let engines = Engines::connect(&request.engine_addresses()).await?;
    for line in engines.describe() {
        console.info(&line);
    }

    let repository_uri = session.repository_uri(&plan);

    let phase = Instant::now();
    let repository = session
        .ecr
        .ensure_repository(&request.wanted_repository())
        .await
        .with_context(|| format!("ensuring repository `{}`", plan.repository))?;
    session.timed("ensure_repository", phase);
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
        session
            .ecr
            .archived_image(&plan.repository, &plan.index_tags[0].tag)
            .await
    };
    if let Some(image) = &archived {
        repository_notes.push(repository_settings::archived(
            console,
            &plan.index_tags[0].tag,
            image,
        ));
    }

    let registry = session.registry(&plan)?;
    let login = session.login();
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
            crate::emulation::register_emulators(
                &request.binfmt_image,
                &engines,
                console,
                &mut emulation_ms,
            )
            .await
        },
    )?;
    session.phase_ms.extend(emulation_ms);
    let (state, read_ms) = state;
    session.phase_ms.insert("read_repository", read_ms);
    let check = check.map(|(check, ms)| {
        session.phase_ms.insert("build_digest", ms);
        check
    });
    let skip_report = match &check {
        Some(check) => match skip::decide(check, &state, &plan) {
            (Some(images), report) => {
                console.notice(&format!("build skipped: {}", report.reason));
                let reused = skip::Reuse {
                    registry: &registry,
                    plan: &plan,
                    state: &state,
                    repository: &repository,
                    repository_notes,
                };
                return reused.outcome(session, &images, report).await;
            }
            (None, report) => {
                console.info(&format!("building: {}", report.reason));
                Some(report)
            }
        },
        None => None,
    };

    if request.skip_unchanged {
        crate::emulation::register_emulators(
            &request.binfmt_image,
            &engines,
            console,
            &mut session.phase_ms,
        )
        .await?;
    }
    let settings = BuildSettings::new(&request.build_options(), &plan.labels)
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
    let gate = finish::gate(
        &mut session,
        &repository_uri,
        children
            .iter()
            .zip(&plan.platforms)
            .map(|(child, p)| (p.platform.clone(), child.digest.to_string())),
    )
    .await?;
    if !request.is_platform_only() {
        finish::put_tags(&mut session, &registry, &decisions, &index, &children).await?;
    }

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
            session,
            repository_uri,
            repository.created,
            &index,
            platforms,
        );
    }
    Ok(finish::Indexed {
        kind: RunKind::Build,
        repository_uri,
        repository_created: repository.created,
        index,
        tags: decisions.index,
        platforms,
        skip: skip_report,
        repository_notes,
        gate,
    }
    .outcome(session))
}

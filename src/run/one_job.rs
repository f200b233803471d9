//! [`Mode::Build`](crate::inputs::Mode::Build), the one-job run: builds every platform, pushes
//! each image by digest, lets the gate judge them, then puts the index and the per-platform
//! tags. With `skip-unchanged`, an image already built from the same inputs is tagged instead
//! ([`super::skip`]).

use std::time::Instant;

use super::children::{self, Ready};
use super::finish;
use super::push;
use super::session::Session;
use super::skip;
use crate::github::Console;
use crate::inputs::Request;
use crate::report::{Outcome, RunKind};

/// The one-job run; no tag moves before every image is pushed and every tag decided.
pub async fn run(request: &Request, console: &Console) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let context = children::scan_context(request)?;
    let session = Session::open(request, console, started).await?;
    let plan = session.plan().await?;
    let mut ready = Ready::new(session, plan, context).await?;

    let skip_report = match &ready.check {
        Some(check) => match skip::decide(check, &ready.state, &ready.plan) {
            (Some(images), report) => {
                console.notice(&format!("build skipped: {}", report.reason));
                let reused = skip::Reuse {
                    registry: &ready.registry,
                    plan: &ready.plan,
                    state: &ready.state,
                    repository: &ready.repository,
                    repository_notes: ready.repository_notes,
                };
                return reused.outcome(ready.session, &images, report).await;
            }
            (None, report) => {
                console.info(&format!("building: {}", report.reason));
                Some(report)
            }
        },
        None => None,
    };

    let children = ready.build().await?;
    let manifests = children.manifests();
    let decisions = push::decide_tags(
        &ready.plan,
        &ready.state.held,
        &children.index,
        &manifests,
        &ready.repository.mutability,
    )?;
    let pushed = children.push(&ready.registry, console).await?;
    let gate = finish::gate(
        &mut ready.session,
        &ready.repository_uri,
        children.by_digest(&ready.plan),
    )
    .await?;
    finish::put_tags(
        &mut ready.session,
        &ready.registry,
        &decisions,
        &children.index,
        &manifests,
    )
    .await?;
    let platforms = children.results(pushed, decisions.arch, &ready.engines);
    Ok(finish::Indexed {
        kind: RunKind::Build,
        repository_uri: ready.repository_uri,
        repository_created: ready.repository.created,
        index: children.index,
        tags: decisions.index,
        platforms,
        skip: skip_report,
        repository_notes: ready.repository_notes,
        gate,
    }
    .outcome(ready.session))
}

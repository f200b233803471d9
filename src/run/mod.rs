//! One run, wired in the order of the data: inputs, plan, ECR, engine ([`build`]), registry
//! ([`push`]), report; [`exit_code`] turns a failure into the exit code and its annotation.
//! [`run`] matches on the request's [`Mode`]: the one-job run ([`one_job`]) and a
//! `platform-only` run ([`platform_only`]) build and push their platform images
//! ([`children`]); a `merge` run joins the images of `platform-only` runs instead ([`merge`]).

use anyhow::Context as _;

use crate::github::{self, Console};
use crate::inputs::{Args, InputError, Mode, Request};
use crate::report::Outcome;
use crate::timings::elapsed_ms;

mod build;
mod children;
mod exit_code;
mod finish;
mod merge;
mod one_job;
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

/// The run itself: every side effect happens here, in order, after the request was validated;
/// each mode in its own file, on the shared [`session`] and [`finish`].
pub async fn run(request: &Request, console: &Console) -> anyhow::Result<Outcome> {
    match &request.mode {
        Mode::Build => one_job::run(request, console).await,
        Mode::PlatformOnly { results_folder } => {
            platform_only::run(request, results_folder, console).await
        }
        Mode::Merge { sources, unused } => merge::run(request, sources, unused, console).await,
    }
}

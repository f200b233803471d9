//! The runner's files, checked before the run creates, builds or pushes anything (issue 14):
//! a run that cannot hand its outputs over must not move a tag first.
//! - `GITHUB_OUTPUT` not writable: exit 2, nothing done.
//! - `GITHUB_STEP_SUMMARY` not writable: a warning, and the run goes on without a summary.
//! - `results-folder` of a `platform-only` run not writable: exit 1, naming the input.

use std::path::Path;

use crate::github::{self, Console};
use crate::handoff;
use crate::inputs::{names, InputError, Request};
use crate::report::Outcome;

use super::EXIT_SYSTEM;

/// The request to run with (without the summary file when it cannot be written), or the exit
/// code when the outputs cannot be written.
pub(super) fn check(mut request: Request, console: &Console) -> Result<Request, u8> {
    if let Some(path) = &request.runner.output_file {
        if let Err(error) = github::check_writable(path) {
            console.error(
                "Outputs cannot be written",
                &format!(
                    "`GITHUB_OUTPUT` (`{}`) cannot be written: {error}; nothing was built or pushed",
                    path.display()
                ),
                None,
            );
            return Err(EXIT_SYSTEM);
        }
    }
    if let Some(path) = &request.runner.summary_file {
        if let Err(error) = github::check_writable(path) {
            console.warning(&format!(
                "`GITHUB_STEP_SUMMARY` (`{}`) cannot be written: {error}; the run goes on without a job summary",
                path.display()
            ));
            request.runner.summary_file = None;
        }
    }
    Ok(request)
}

/// A `platform-only` run's results folder: created, a real folder (not a link), writable.
pub(super) fn check_results_folder(results_folder: &Path) -> Result<(), InputError> {
    handoff::prepare_folder(results_folder).map_err(|error| InputError {
        input: names::RESULTS_FOLDER,
        message: format!(
            "the result file cannot be written into `{}`: {error}; give a folder the action can write, relative to the workspace",
            results_folder.display()
        ),
    })
}

/// What a run pushed, for a failure after the push: the user must still be able to find it.
pub(super) fn pushed(outcome: &Outcome) -> String {
    let tags = outcome.references();
    if tags.is_empty() {
        format!("pushed before the failure: {}", outcome.image_uri())
    } else {
        format!(
            "pushed before the failure: {} under {}",
            outcome.image_uri(),
            tags.iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

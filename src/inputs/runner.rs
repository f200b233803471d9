//! Where the run reports to (the runner's output and summary files) and where a
//! `platform-only` run writes its result, which must be a folder the action's container
//! shares with the runner.

use std::path::{Path, PathBuf};

use super::{given, names, Args, InputError};

/// Where the run reports to: a GitHub runner, or a terminal.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Runner {
    /// Running inside GitHub Actions (`GITHUB_ACTIONS=true`).
    pub github_actions: bool,
    /// `$GITHUB_OUTPUT`, when set.
    pub output_file: Option<PathBuf>,
    /// `$GITHUB_STEP_SUMMARY`, when set.
    pub summary_file: Option<PathBuf>,
}

impl Runner {
    /// `GITHUB_ACTIONS`, `GITHUB_OUTPUT` and `GITHUB_STEP_SUMMARY`.
    pub(super) fn parse(args: &Args) -> Runner {
        Runner {
            github_actions: given(args.env_github_actions.as_ref()) == Some("true"),
            output_file: given(args.env_github_output.as_ref()).map(PathBuf::from),
            summary_file: given(args.env_github_step_summary.as_ref()).map(PathBuf::from),
        }
    }
}

/// Inside a container action the runner shares only these folders (and its own
/// `/github/workflow` and `/github/file_commands`) with the steps around it
/// (<https://docs.github.com/actions/sharing-automations/creating-actions/creating-a-docker-container-action#accessing-files-created-by-a-container-action>):
/// what the action writes anywhere else, `runner.temp` included, is gone when its container
/// ends, and nothing else of the runner's file system is visible to it.
pub(super) const CONTAINER_MOUNTS: &[&str] = &["/github/workspace", "/github/home"];

/// What to say about a path a container action cannot share with the runner.
pub(super) const CONTAINER_MOUNTS_HINT: &str =
    "inside the action's container only `/github/workspace` (the \
     workspace) and `/github/home` are shared with the runner, not `runner.temp`: give a path \
     relative to the workspace";

/// Whether the run is a container action (the runner sets `GITHUB_WORKSPACE` to the
/// container's mount) and `path` lies outside every folder it shares with the runner.
/// The path is resolved against the workspace and its `..` taken lexically first, so that
/// `../results` and `/github/workspace/../results` are found outside too.
pub(super) fn outside_container_mounts(args: &Args, path: &Path) -> bool {
    if given(args.env_github_workspace.as_ref()) != Some(CONTAINER_MOUNTS[0]) {
        return false;
    }
    let mut resolved = PathBuf::new();
    for part in Path::new(CONTAINER_MOUNTS[0]).join(path).components() {
        match part {
            std::path::Component::ParentDir => {
                resolved.pop();
            }
            std::path::Component::CurDir => {}
            other => resolved.push(other),
        }
    }
    !CONTAINER_MOUNTS
        .iter()
        .any(|mount| resolved.starts_with(mount))
}

pub(super) fn results_folder(args: &Args) -> Result<PathBuf, InputError> {
    let path = PathBuf::from(
        given(args.results_folder.as_ref()).unwrap_or(crate::handoff::DEFAULT_FOLDER),
    );
    if outside_container_mounts(args, &path) {
        return Err(InputError::new(
            names::RESULTS_FOLDER,
            format!(
                "`{}` is not where a later step can find the result: {CONTAINER_MOUNTS_HINT}, e.g. `{}`",
                path.display(),
                crate::handoff::DEFAULT_FOLDER
            ),
        ));
    }
    if path.exists() && !path.is_dir() {
        return Err(InputError::new(
            names::RESULTS_FOLDER,
            format!(
                "`{}` is a file: give a folder for the result files",
                path.display()
            ),
        ));
    }
    Ok(path)
}

//! What a run does (issue 10), decided once from `platform-only` and `merge`, which exclude
//! each other: build everything, build one part and put no tag, or join the parts. Each mode
//! carries what only it uses (the results folder, what to merge).

use std::path::PathBuf;

use super::merge::{merge, unused_by_merge, MergeSource};
use super::runner::results_folder;
use super::tags::TagHost;
use super::{given, names, Args, InputError};

/// What a run does; [`crate::run::run`] matches on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mode {
    /// Build every platform, push the images and their index, put the tags.
    Build,
    /// `platform-only`: push the platform images by digest, put no tag, write a result file
    /// into `results_folder`.
    PlatformOnly {
        /// Where the result file goes (`results-folder`).
        results_folder: PathBuf,
    },
    /// `merge`: join what `sources` name into one index and tag it; build nothing.
    Merge {
        /// What to join; never empty.
        sources: Vec<MergeSource>,
        /// Inputs given to the run that it does not use, as it builds nothing.
        unused: Vec<&'static str>,
    },
}

/// The mode `platform-only` (already read) and `merge` ask for; `skip-unchanged` needs an
/// index to compare with, which a `platform-only` run does not push.
pub(super) fn mode(
    args: &Args,
    platform_only: bool,
    skip_unchanged: bool,
    host: &TagHost<'_>,
) -> Result<Mode, InputError> {
    if skip_unchanged && platform_only {
        return Err(InputError::new(
            names::SKIP_UNCHANGED,
            "a `platform-only` run pushes no index to compare with: skipping needs the index under the first tag, which only a one-job or a `merge` run puts there",
        ));
    }
    if platform_only && given(args.merge.as_ref()).is_some() {
        return Err(InputError::new(
            names::MERGE,
            "`platform-only` builds platform images and `merge` joins them: a run does one of the two",
        ));
    }
    let sources = merge(args, host)?;
    Ok(if platform_only {
        Mode::PlatformOnly {
            results_folder: results_folder(args)?,
        }
    } else if sources.is_empty() {
        Mode::Build
    } else {
        Mode::Merge {
            sources,
            unused: unused_by_merge(args),
        }
    })
}

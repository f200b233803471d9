//! What the build itself takes: build args, labels, target stage, network, context folder and
//! Dockerfile, and the size limit the Engine API's request URL puts on args and labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::references::cache_from;
use super::{boolean, given, names, Args, InputError, Mode, Request};
use crate::engine::{BuildOptions, NetworkMode};

/// The build part of the inputs: how to build, what needs no file.
#[derive(Debug)]
pub(super) struct BuildPart {
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub network: Option<NetworkMode>,
    pub no_cache: bool,
    pub repository_cache: bool,
    pub cache_from: Vec<String>,
    pub skip_unchanged: bool,
}

impl BuildPart {
    /// `build-args`, `target`, `labels` (with the room they take together), `network`,
    /// `no-cache`, `repository-cache`, `cache-from` and `skip-unchanged`, which `no-cache`
    /// excludes.
    pub(super) fn parse(args: &Args) -> Result<BuildPart, InputError> {
        let build_args = key_values(names::BUILD_ARGS, args.build_args.as_ref())?;
        let target = target(args.target.as_ref())?;
        let labels = key_values(names::LABELS, args.labels.as_ref())?;
        request_url_room(&build_args, &labels)?;
        let network = network(args.network.as_ref())?;
        let no_cache = boolean(names::NO_CACHE, args.no_cache.as_ref(), false)?;
        let repository_cache = boolean(
            names::REPOSITORY_CACHE,
            args.repository_cache.as_ref(),
            true,
        )?;
        let cache_from = cache_from(args.cache_from.as_ref())?;
        let skip_unchanged = boolean(names::SKIP_UNCHANGED, args.skip_unchanged.as_ref(), false)?;
        if skip_unchanged && no_cache {
            return Err(InputError::new(
                names::SKIP_UNCHANGED,
                "`skip-unchanged` reuses an image built from the same inputs, and `no-cache` asks to build everything again: set one of them, not both",
            ));
        }
        Ok(BuildPart {
            build_args,
            target,
            labels,
            network,
            no_cache,
            repository_cache,
            cache_from,
            skip_unchanged,
        })
    }
}

/// What to build from: the context folder and the Dockerfile.
#[derive(Debug)]
pub(super) struct BuildFiles {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
}

impl BuildFiles {
    /// The context folder and the Dockerfile, which must exist, and `target`, which must be
    /// one of its stages. A merge run reads no Dockerfile: the build's files need not be there.
    pub(super) fn check(
        args: &Args,
        target: Option<&str>,
        mode: &Mode,
    ) -> Result<BuildFiles, InputError> {
        if let Mode::Merge { .. } = mode {
            let context = PathBuf::from(given(args.context.as_ref()).unwrap_or("."));
            let dockerfile =
                given(args.file.as_ref()).map_or_else(|| context.join("Dockerfile"), PathBuf::from);
            return Ok(BuildFiles {
                context,
                dockerfile,
            });
        }
        let context = context(args.context.as_ref())?;
        let dockerfile = dockerfile(args.file.as_ref(), &context)?;
        if let Some(target) = target {
            target_stage(&dockerfile, target)?;
        }
        Ok(BuildFiles {
            context,
            dockerfile,
        })
    }
}

/// Newline-separated `KEY=VALUE` pairs; the value may contain `=` and may be empty.
fn key_values(
    input: &'static str,
    value: Option<&String>,
) -> Result<BTreeMap<String, String>, InputError> {
    let mut pairs = BTreeMap::new();
    for line in given(value).unwrap_or("").lines().map(str::trim) {
        if line.is_empty() {
            continue;
        }
        let Some((key, val)) = line.split_once('=') else {
            return Err(InputError::new(
                input,
                format!("`{line}` is not `KEY=VALUE`: give one pair per line"),
            ));
        };
        let key = key.trim();
        if key.is_empty() || key.chars().any(char::is_whitespace) {
            return Err(InputError::new(
                input,
                format!("`{line}` has no usable key: give `KEY=VALUE` with a key without spaces"),
            ));
        }
        if pairs.insert(key.to_owned(), val.to_owned()).is_some() {
            return Err(InputError::new(input, format!("`{key}` is given twice")));
        }
    }
    Ok(pairs)
}

fn target(value: Option<&String>) -> Result<Option<String>, InputError> {
    let Some(stage) = given(value) else {
        return Ok(None);
    };
    let ok = stage
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic())
        && stage
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if !ok {
        return Err(InputError::new(
            names::TARGET,
            format!("`{stage}` is not a stage name: use letters, digits, `_`, `.` and `-`, starting with a letter"),
        ));
    }
    Ok(Some(stage.to_owned()))
}

fn network(value: Option<&String>) -> Result<Option<NetworkMode>, InputError> {
    match given(value) {
        None => Ok(None),
        Some("default") => Ok(Some(NetworkMode::Default)),
        Some("host") => Ok(Some(NetworkMode::Host)),
        Some("none") => Ok(Some(NetworkMode::None)),
        Some(other) => Err(InputError::new(
            names::NETWORK,
            format!("`{other}` is not a network mode: use `default`, `host` or `none`"),
        )),
    }
}

fn context(value: Option<&String>) -> Result<PathBuf, InputError> {
    let path = PathBuf::from(given(value).unwrap_or("."));
    if !path.is_dir() {
        return Err(InputError::new(
            names::CONTEXT,
            format!(
                "`{}` is not a folder: give the build context relative to the workspace",
                path.display()
            ),
        ));
    }
    Ok(path)
}

fn dockerfile(value: Option<&String>, context: &Path) -> Result<PathBuf, InputError> {
    let path = given(value).map_or_else(|| context.join("Dockerfile"), PathBuf::from);
    if !path.is_file() {
        return Err(InputError::new(
            names::FILE,
            format!(
                "`{}` is not a file: give the Dockerfile's path relative to the workspace{}",
                path.display(),
                if given(value).is_none() {
                    " (the default is `Dockerfile` in the context)"
                } else {
                    ""
                }
            ),
        ));
    }
    Ok(path)
}

/// How many bytes build args and labels may take, together, in the Engine API's request URL.
/// They travel in its query string (`buildargs` and `labels`, JSON, URL-encoded), and the URL
/// as a whole cannot pass 64 KiB (the HTTP stack refuses it: `uri too long`); the rest of the
/// request (platform, cache sources, the image's own labels) needs a few KiB.
pub const MAX_ARGS_AND_LABELS_BYTES: usize = 48 * 1024;

/// The size of `pairs` as the Engine API request carries them: JSON, URL-encoded.
pub(super) fn url_encoded_json_len(pairs: &BTreeMap<String, String>) -> usize {
    if pairs.is_empty() {
        return 0;
    }
    serde_json::to_string(pairs)
        .unwrap_or_default()
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'*' | b'-' | b'.' | b'_' | b' ') {
                1
            } else {
                3
            }
        })
        .sum()
}

/// Refuses build args and labels that would make the build request's URL too long, naming the
/// input that takes more of it.
fn request_url_room(
    build_args: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> Result<(), InputError> {
    let (args_len, labels_len) = (
        url_encoded_json_len(build_args),
        url_encoded_json_len(labels),
    );
    let total = args_len + labels_len;
    if total <= MAX_ARGS_AND_LABELS_BYTES {
        return Ok(());
    }
    Err(InputError::new(
        if args_len >= labels_len {
            names::BUILD_ARGS
        } else {
            names::LABELS
        },
        format!(
            "build args ({args_len} bytes) and labels ({labels_len} bytes) take {total} bytes in the Docker Engine API's build request (JSON, URL-encoded), more than the limit of {} KiB ({MAX_ARGS_AND_LABELS_BYTES} bytes): the Engine API carries them in the request URL, which cannot pass 64 KiB. Put large values in a file of the build context (or a `RUN --mount=type=secret`) instead",
            MAX_ARGS_AND_LABELS_BYTES / 1024
        ),
    ))
}

/// Refuses a `target` that is not a stage of the Dockerfile. A Dockerfile this parser cannot
/// read is left to BuildKit, which says what is wrong with it.
fn target_stage(dockerfile: &Path, target: &str) -> Result<(), InputError> {
    let Ok(text) = std::fs::read_to_string(dockerfile) else {
        return Ok(());
    };
    let Ok(parsed) = crate::dockerfile::Dockerfile::parse(&text) else {
        return Ok(());
    };
    if parsed.has_stage(target) {
        return Ok(());
    }
    let stages: Vec<String> = parsed
        .stage_names()
        .iter()
        .map(|name| format!("`{name}`"))
        .collect();
    Err(InputError::new(
        names::TARGET,
        format!(
            "`{}` has no stage `{target}`: {}",
            dockerfile.display(),
            if stages.is_empty() {
                "it names no stage (`FROM <image> AS <name>`)".to_owned()
            } else {
                format!("its stages are {}", stages.join(", "))
            }
        ),
    ))
}

impl Request {
    /// What every build of this run takes from the inputs, for [`crate::engine::BuildSettings`].
    #[must_use]
    pub fn build_options(&self) -> BuildOptions {
        BuildOptions {
            build_args: self.build_args.clone(),
            target: self.target.clone(),
            network: self.network,
            no_cache: self.no_cache,
            inline_cache: self.repository_cache,
            session_break_after: self.session_break_after,
        }
    }
}

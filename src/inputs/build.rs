//! What the build itself takes: build args, labels, target stage, network, context folder and
//! Dockerfile, and the size limit the Engine API's request URL puts on args and labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{given, names, InputError, Request};
use crate::engine::{BuildOptions, NetworkMode};

/// Newline-separated `KEY=VALUE` pairs; the value may contain `=` and may be empty.
pub(super) fn key_values(
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

pub(super) fn target(value: Option<&String>) -> Result<Option<String>, InputError> {
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

pub(super) fn network(value: Option<&String>) -> Result<Option<NetworkMode>, InputError> {
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

pub(super) fn context(value: Option<&String>) -> Result<PathBuf, InputError> {
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

pub(super) fn dockerfile(value: Option<&String>, context: &Path) -> Result<PathBuf, InputError> {
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
pub(super) fn request_url_room(
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
pub(super) fn target_stage(dockerfile: &Path, target: &str) -> Result<(), InputError> {
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
        }
    }
}

//! `merge`: what a merge run joins (result folders or images of this repository by digest),
//! and the build inputs it was given but does not use.

use std::path::PathBuf;

use crate::oci::Digest;

use super::runner::{outside_container_mounts, CONTAINER_MOUNTS_HINT};
use super::tags::TagHost;
use super::{given, list, names, Args, InputError};

/// One item of `merge`: what a merge run joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeSource {
    /// A folder of result files (read recursively), or one result file.
    Results(PathBuf),
    /// An image of this run's repository, by digest.
    Image {
        /// The reference as given.
        reference: String,
        /// Its digest.
        digest: Digest,
    },
}

/// The `merge` input: folders or files of results, and references to images of this run's
/// repository (`sha256:...`, `<repository>@sha256:...`, or the `image-uri` form
/// `<registry>/<repository>@sha256:...`).
pub(super) fn merge(args: &Args, host: &TagHost<'_>) -> Result<Vec<MergeSource>, InputError> {
    let mut sources: Vec<MergeSource> = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for item in list(given(args.merge.as_ref()).unwrap_or("")) {
        if seen.contains(&item) {
            return Err(InputError::new(
                names::MERGE,
                format!("`{item}` is listed twice"),
            ));
        }
        seen.push(item);
        let reference = item
            .rsplit_once('@')
            .map(|(name, digest)| (Some(name), digest));
        let reference = reference.or_else(|| item.starts_with("sha256:").then_some((None, item)));
        if let Some((name, digest)) = reference {
            let Ok(digest) = digest.parse::<Digest>() else {
                return Err(InputError::new(
                    names::MERGE,
                    format!("`{item}` is not an image reference: use `<repository>@sha256:<64 hex digits>`"),
                ));
            };
            let ours = name.is_none_or(|name| {
                name == host.repository
                    || name.split_once('/').is_some_and(|(registry, path)| {
                        path == host.repository && host.accepts(registry)
                    })
            });
            if !ours {
                return Err(InputError::new(
                    names::MERGE,
                    format!(
                        "`{item}` names another repository: a merge joins images of `{}` in this run's registry",
                        host.repository
                    ),
                ));
            }
            sources.push(MergeSource::Image {
                reference: item.to_owned(),
                digest,
            });
            continue;
        }
        let path = PathBuf::from(item);
        if !path.exists() {
            let hint = if outside_container_mounts(args, &path) {
                format!("; {CONTAINER_MOUNTS_HINT}")
            } else {
                String::new()
            };
            return Err(InputError::new(
                names::MERGE,
                format!(
                    "`{item}` is neither a folder of results nor an image reference `<repository>@sha256:...`: give the folder the `platform-only` results were downloaded to{hint}"
                ),
            ));
        }
        sources.push(MergeSource::Results(path));
    }
    Ok(sources)
}

/// The build inputs a merge run was given and does not use: it reads no Dockerfile and builds
/// nothing. (`context` and `no-cache: false` are the runner's defaults, so they say nothing.)
pub(super) fn unused_by_merge(args: &Args) -> Vec<&'static str> {
    let given_inputs = [
        (names::FILE, &args.file),
        (names::BUILD_ARGS, &args.build_args),
        (names::TARGET, &args.target),
        (names::LABELS, &args.labels),
        (names::NETWORK, &args.network),
        (names::ENGINES, &args.engines),
    ]
    .into_iter()
    .filter(|(_, value)| given(value.as_ref()).is_some())
    .map(|(name, _)| name);
    let no_cache = given(args.no_cache.as_ref())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        .then_some(names::NO_CACHE);
    given_inputs.chain(no_cache).collect()
}

#[cfg(test)]
mod tests {
    use crate::inputs::tests::args;
    use crate::inputs::{Args, MergeSource, Request};

    #[test]
    fn a_merge_reads_no_dockerfile_and_names_what_it_does_not_use() {
        let digest = format!("sha256:{}", "b".repeat(64));
        let request = Request::try_from(Args {
            context: Some("/nonexistent/context".into()),
            merge: Some(format!(
                "{digest}\n123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api@sha256:{}",
                "c".repeat(64)
            )),
            build_args: Some("A=1".into()),
            no_cache: Some("false".into()),
            engines: Some("linux/arm64=tcp://b:1".into()),
            ..args()
        })
        .expect("valid: a merge needs no build context");
        let crate::inputs::Mode::Merge { sources, unused } = &request.mode else {
            panic!("a merge run: {:?}", request.mode)
        };
        assert_eq!(sources.len(), 2);
        assert_eq!(
            sources[0],
            MergeSource::Image {
                reference: digest.clone(),
                digest: digest.parse().expect("digest"),
            }
        );
        assert_eq!(unused, &vec!["build-args", "engines"]);
        assert!(request.engines.is_empty());
    }
}

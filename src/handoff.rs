//! The hand-off between the jobs of a split build (issue 10): a `platform-only` run writes one
//! small JSON file saying which platform images it pushed by digest, and a `merge` run reads
//! those files to join the images into one index. Owns the file's format, its name and its
//! folder; knows nothing of registries (the merge checks every image against the registry).
//!
//! Why files in a folder: GitHub's own way to move files between the jobs of a workflow is an
//! artifact (actions/upload-artifact and actions/download-artifact), which needs no permission
//! beyond what every job has and collects the files of every job of a matrix into one folder
//! (`merge-multiple: true`), the pattern Docker's documentation uses for multi-platform builds.
//! Job outputs cannot do that for a matrix (every leg writes the same output names, the last
//! one wins), so they only suit separate jobs: for those `merge` also takes image references.
//!
//! The default folder lies in the workspace because a container action shares only
//! `/github/workspace` and `/github/home` with the runner: what it writes elsewhere
//! (`runner.temp` included) is gone when its container ends.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::platform::Platform;

/// Where a `platform-only` run writes its result, relative to the workspace. Not hidden:
/// actions/upload-artifact leaves hidden files out unless told otherwise.
pub const DEFAULT_FOLDER: &str = "ecr-multiarch-results";

/// The version of the format; a reader refuses a newer one.
pub const FORMAT_VERSION: u64 = 1;

/// The key that marks a result file, holding its version.
const MARKER: &str = "ecr-multiarch-result";

/// What one `platform-only` run pushed: the file's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlatformResults {
    /// The format's version ([`FORMAT_VERSION`]).
    #[serde(rename = "ecr-multiarch-result")]
    pub version: u64,
    /// The registry host the images were pushed to.
    pub registry: String,
    /// The ECR repository.
    pub repository: String,
    /// The commit the images were built from (`GITHUB_SHA`), when known.
    pub revision: Option<String>,
    /// Each platform image, by digest.
    pub images: Vec<PlatformImage>,
}

/// One platform image a `platform-only` run pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct PlatformImage {
    /// The platform, `os/arch[/variant]`.
    pub platform: String,
    /// The image manifest's digest.
    pub digest: String,
    /// The image manifest's media type, as the index entry names it.
    pub media_type: String,
    /// The image manifest's size in bytes, as the index entry gives it.
    pub size: u64,
    /// `<registry>/<repository>@<digest>`.
    pub image_uri: String,
    /// The Docker Engine that built it.
    pub engine: Option<String>,
    /// The image id in that Engine.
    #[serde(default)]
    pub image_id: String,
    /// Its uncompressed size in that Engine, bytes.
    #[serde(default)]
    pub image_size: i64,
    /// How long the build took, ms.
    #[serde(default)]
    pub build_ms: u128,
    /// How long the push took, ms.
    #[serde(default)]
    pub push_ms: u128,
}

/// A result file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The folder holds no result file.
    #[error("`{}` holds no result file (`*.json`): did the download step put the `platform-only` results there?", .0.display())]
    NoResults(PathBuf),
    /// A file or folder could not be read.
    #[error("reading `{}`: {source}", path.display())]
    Read {
        /// The path.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// A JSON file that is not a result of this action, or not a valid one.
    #[error("`{}` is not an ecr-multiarch result: {reason}", path.display())]
    NotAResult {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A result written by a newer version of the action.
    #[error("`{}` is a result of format {version}, written by a newer ecr-multiarch than this one (format {FORMAT_VERSION}): use the same version of the action in every job", path.display())]
    NewerFormat {
        /// The file.
        path: PathBuf,
        /// Its format version.
        version: u64,
    },
}

/// The file's name: the repository and the platforms, so that a re-run of the same job
/// replaces its own result and the results of a matrix's legs sit side by side.
#[must_use]
pub fn file_name(repository: &str, platforms: &[Platform]) -> String {
    let platforms: Vec<String> = platforms
        .iter()
        .map(|p| format!("{}-{}", p.os, p.tag_suffix()))
        .collect();
    format!(
        "{}.{}.json",
        repository.replace('/', "_"),
        platforms.join("_")
    )
}

/// Writes `results` into `folder` (created when missing) under [`file_name`], replacing the
/// file whole (written aside, then renamed), and returns its path.
pub fn write(
    folder: &Path,
    results: &PlatformResults,
    platforms: &[Platform],
) -> io::Result<PathBuf> {
    fs::create_dir_all(folder)?;
    let path = folder.join(file_name(&results.repository, platforms));
    let partial = path.with_extension("json.partial");
    let mut text = serde_json::to_string_pretty(results).map_err(io::Error::other)?;
    text.push('\n');
    fs::write(&partial, text)?;
    fs::rename(&partial, &path)?;
    Ok(path)
}

/// Reads the result files of `path`: the file itself, or every `*.json` under the folder, in
/// name order (actions/download-artifact puts each artifact in a folder of its own unless
/// told to merge them, so folders are read to any depth).
pub fn read(path: &Path) -> Result<Vec<(PathBuf, PlatformResults)>, Error> {
    let files = if path.is_dir() {
        let mut files = Vec::new();
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            let entry = entry.map_err(|e| Error::Read {
                path: e.path().unwrap_or(path).to_owned(),
                source: e.into(),
            })?;
            if entry.file_type().is_file() && entry.path().extension().is_some_and(|x| x == "json")
            {
                files.push(entry.into_path());
            }
        }
        if files.is_empty() {
            return Err(Error::NoResults(path.to_owned()));
        }
        files
    } else {
        vec![path.to_owned()]
    };
    files
        .into_iter()
        .map(|file| {
            let results = read_file(&file)?;
            Ok((file, results))
        })
        .collect()
}

fn read_file(path: &Path) -> Result<PlatformResults, Error> {
    let text = fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    let not_a_result = |reason: String| Error::NotAResult {
        path: path.to_owned(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| not_a_result(format!("not JSON ({e})")))?;
    let Some(version) = value.get(MARKER).and_then(serde_json::Value::as_u64) else {
        return Err(not_a_result(format!("it has no `{MARKER}` key")));
    };
    if version > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            path: path.to_owned(),
            version,
        });
    }
    let results: PlatformResults =
        serde_json::from_value(value).map_err(|e| not_a_result(e.to_string()))?;
    if results.images.is_empty() {
        return Err(not_a_result("it names no image".to_owned()));
    }
    for image in &results.images {
        image
            .platform
            .parse::<Platform>()
            .map_err(|e| not_a_result(e.to_string()))?;
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn results() -> PlatformResults {
        PlatformResults {
            version: FORMAT_VERSION,
            registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com".to_owned(),
            repository: "team/api".to_owned(),
            revision: Some("0123abcd".to_owned()),
            images: vec![PlatformImage {
                platform: "linux/arm/v7".to_owned(),
                digest: format!("sha256:{}", "a".repeat(64)),
                media_type: crate::image_export::media_type::DOCKER_MANIFEST.to_owned(),
                size: 1093,
                image_uri: "x".to_owned(),
                engine: Some("unix:///var/run/docker.sock".to_owned()),
                image_id: "sha256:b".to_owned(),
                image_size: 4_000_000,
                build_ms: 1200,
                push_ms: 300,
            }],
        }
    }

    #[test]
    fn the_name_says_repository_and_platforms() {
        let platforms: Vec<Platform> = vec![
            "linux/amd64".parse().expect("platform"),
            "linux/arm/v7".parse().expect("platform"),
        ];
        assert_eq!(
            file_name("team/api", &platforms),
            "team_api.linux-amd64_linux-arm-v7.json"
        );
    }

    #[test]
    fn a_written_result_reads_back_from_its_folder_at_any_depth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let platforms = vec!["linux/arm/v7".parse().expect("platform")];
        let nested = dir.path().join("results-arm");
        let path = write(&nested, &results(), &platforms).expect("written");
        assert_eq!(path, nested.join("team_api.linux-arm-v7.json"));
        // Written again, it is replaced, not added.
        write(&nested, &results(), &platforms).expect("written again");
        let read_back = read(dir.path()).expect("read");
        assert_eq!(read_back, vec![(path.clone(), results())]);
        let text = fs::read_to_string(&path).expect("text");
        assert!(text.contains("\"ecr-multiarch-result\": 1"), "{text}");
        assert!(text.contains("\"media-type\""), "{text}");
    }

    #[test]
    fn other_files_are_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(matches!(read(dir.path()), Err(Error::NoResults(_))));
        let file = dir.path().join("package.json");
        fs::write(&file, r#"{"name": "app"}"#).expect("write");
        let error = read(dir.path()).expect_err("not a result").to_string();
        assert!(
            error.contains("package.json` is not an ecr-multiarch result"),
            "{error}"
        );
        let mut newer = serde_json::to_value(results()).expect("json");
        newer[MARKER] = serde_json::json!(2);
        fs::write(&file, newer.to_string()).expect("write");
        let error = read(&file).expect_err("newer").to_string();
        assert!(
            error.contains("written by a newer ecr-multiarch"),
            "{error}"
        );
    }
}

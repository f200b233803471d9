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

use std::fmt::Write as _;
use std::fs;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest as _;

use crate::oci::{media_type, Digest};
use crate::platform::Platform;

/// Where a `platform-only` run writes its result, relative to the workspace. Not hidden:
/// actions/upload-artifact leaves hidden files out unless told otherwise.
pub const DEFAULT_FOLDER: &str = "ecr-multiarch-results";

/// The version of the format; a reader refuses a newer one.
pub const FORMAT_VERSION: u64 = 1;

/// The key that marks a result file, holding its version.
const MARKER: &str = "ecr-multiarch-result";

/// The largest result file read: one holds a few hundred bytes per platform.
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

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
    pub digest: Digest,
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
    /// A path that is neither a regular file nor a folder (a FIFO, a device): reading it could
    /// wait forever.
    #[error("`{}` is neither a file nor a folder: give the folder or file of the `platform-only` results", .0.display())]
    NotAFile(PathBuf),
    /// A file far larger than a result.
    #[error("`{}` is larger than {MAX_FILE_BYTES} bytes: it is not an ecr-multiarch result", .0.display())]
    TooLarge(PathBuf),
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

/// The most characters of the repository, and of the platforms, that a file name shows.
const NAME_PART_CHARS: usize = 40;

/// The file's name: the repository and the platforms (each cut to 40 characters, for people),
/// and 12 hex digits of a hash of both in full (so that names differ when they do): a re-run
/// of the same job replaces its own result, the results of a matrix's legs sit side by side,
/// and a 256-character repository still gives a name far below the 255 bytes a file system
/// allows.
#[must_use]
pub fn file_name(repository: &str, platforms: &[Platform]) -> String {
    let platforms: Vec<String> = platforms
        .iter()
        .map(|p| format!("{}-{}", p.os, p.tag_suffix()))
        .collect();
    let platforms = platforms.join("_");
    // Of the name as given: `team/api` and `team_api` are two repositories.
    let hash = sha2::Sha256::digest(format!("{repository}\n{platforms}"));
    let repository = repository.replace('/', "_");
    let hash: String = hash.iter().take(6).fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    });
    let short = |text: &str| text.chars().take(NAME_PART_CHARS).collect::<String>();
    format!("{}.{}.{hash}.json", short(&repository), short(&platforms))
}

/// Makes `folder` ready for a result file, before anything is pushed: creates it, refuses a
/// symbolic link (a checked-out repository could point it anywhere the action may write),
/// and checks that a file can be created in it.
pub fn prepare_folder(folder: &Path) -> io::Result<()> {
    refuse_links(folder)?;
    fs::create_dir_all(folder)?;
    refuse_links(folder)?;
    tempfile::Builder::new()
        .prefix(".ecr-multiarch-check")
        .tempfile_in(folder)
        .map(drop)
}

/// Fails when `folder` is a symbolic link, or (for a path relative to the workspace, which
/// the checked-out repository fills) a folder on the way to it is.
fn refuse_links(folder: &Path) -> io::Result<()> {
    let checked: Vec<&Path> = if folder.is_absolute() {
        vec![folder]
    } else {
        folder.ancestors().collect()
    };
    for path in checked {
        if path.as_os_str().is_empty() {
            break;
        }
        if fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(io::Error::other(format!(
                "`{}` is a symbolic link: give a real folder",
                path.display()
            )));
        }
    }
    Ok(())
}

/// Writes `results` into `folder` (created when missing) under [`file_name`], replacing the
/// file whole: written to a new temporary file in the folder (created, never opened through a
/// planted link), then renamed over the name (a rename replaces a link, it does not follow
/// it). Returns its path.
pub fn write(
    folder: &Path,
    results: &PlatformResults,
    platforms: &[Platform],
) -> io::Result<PathBuf> {
    prepare_folder(folder)?;
    let path = folder.join(file_name(&results.repository, platforms));
    let mut text = serde_json::to_string_pretty(results).map_err(io::Error::other)?;
    text.push('\n');
    let mut file = tempfile::Builder::new()
        .prefix(".ecr-multiarch-result")
        .suffix(".partial")
        .tempfile_in(folder)?;
    file.write_all(text.as_bytes())?;
    file.as_file().sync_all()?;
    file.persist(&path).map_err(|e| e.error)?;
    Ok(path)
}

/// Reads the result files of `path`: the file itself, or every `*.json` under the folder, in
/// name order (actions/download-artifact puts each artifact in a folder of its own unless
/// told to merge them, so folders are read to any depth).
pub fn read(path: &Path) -> Result<Vec<(PathBuf, PlatformResults)>, Error> {
    let kind = fs::metadata(path)
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?
        .file_type();
    let files = if kind.is_dir() {
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
    } else if kind.is_file() {
        vec![path.to_owned()]
    } else {
        return Err(Error::NotAFile(path.to_owned()));
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
    let read_error = |source| Error::Read {
        path: path.to_owned(),
        source,
    };
    // Regular files only (a FIFO would block the open), and a bounded read.
    if !fs::metadata(path).map_err(read_error)?.is_file() {
        return Err(Error::NotAFile(path.to_owned()));
    }
    let file = fs::File::open(path).map_err(read_error)?;
    if !file.metadata().map_err(read_error)?.is_file() {
        return Err(Error::NotAFile(path.to_owned()));
    }
    let mut text = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(read_error)?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(Error::TooLarge(path.to_owned()));
    }
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
        let manifests = [media_type::DOCKER_MANIFEST, media_type::OCI_MANIFEST];
        if !manifests.contains(&image.media_type.as_str()) {
            return Err(not_a_result(format!(
                "the media type of `{}` is `{}`, not an image manifest's (`{}`)",
                image.platform,
                image.media_type.chars().take(100).collect::<String>(),
                manifests.join("` or `")
            )));
        }
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
                digest: Digest::try_from(format!("sha256:{}", "a".repeat(64))).expect("digest"),
                media_type: crate::oci::media_type::DOCKER_MANIFEST.to_owned(),
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
            "team_api.linux-amd64_linux-arm-v7.25b49bd6ff94.json"
        );
        // A valid repository name of 246 characters still gives a short name, and names
        // that share their first 40 characters still differ.
        let long = format!("team/{}", "a".repeat(241));
        let name = file_name(&long, &platforms);
        assert!(name.len() <= 100, "{name}");
        assert_ne!(name, file_name(&format!("{long}b"), &platforms));
        assert_ne!(
            file_name("team/api", &platforms),
            file_name("team_api", &platforms)
        );
    }

    #[test]
    fn a_written_result_reads_back_from_its_folder_at_any_depth() {
        let dir = tempfile::tempdir().expect("tempdir");
        let platforms = vec!["linux/arm/v7".parse().expect("platform")];
        let nested = dir.path().join("results-arm");
        let path = write(&nested, &results(), &platforms).expect("written");
        assert_eq!(path, nested.join(file_name("team/api", &platforms)));
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

    #[test]
    fn digests_that_are_not_sha256_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("r.json");
        for digest in [
            "latest",
            "../../../other/manifests/latest",
            &format!("sha256:{}", "A".repeat(64)),
        ] {
            let mut value = serde_json::to_value(results()).expect("json");
            value["images"][0]["digest"] = serde_json::json!(digest);
            fs::write(&file, value.to_string()).expect("write");
            let error = read(&file).expect_err(digest).to_string();
            assert!(
                error.contains("r.json` is not an ecr-multiarch result"),
                "{error}"
            );
            assert!(error.contains("is not a digest"), "{error}");
        }
        let mut value = serde_json::to_value(results()).expect("json");
        value["images"][0]["media-type"] = serde_json::json!(media_type::OCI_INDEX);
        fs::write(&file, value.to_string()).expect("write");
        let error = read(&file).expect_err("index").to_string();
        assert!(error.contains("not an image manifest's"), "{error}");
    }

    #[test]
    fn only_regular_files_of_bounded_size_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("r.json");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        assert!(matches!(read(&fifo), Err(Error::NotAFile(_))));
        // In a folder, a FIFO named like a result is not a file to read.
        assert!(matches!(read(dir.path()), Err(Error::NoResults(_))));
        let big = dir.path().join("big.json");
        fs::write(
            &big,
            " ".repeat(usize::try_from(MAX_FILE_BYTES).expect("small") + 1),
        )
        .expect("write");
        assert!(matches!(read(&big), Err(Error::TooLarge(_))));
    }

    #[test]
    fn a_planted_link_is_replaced_not_written_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let platforms = vec!["linux/arm/v7".parse().expect("platform")];
        let target = dir.path().join("victim");
        fs::write(&target, "precious").expect("write");
        let folder = dir.path().join("results");
        fs::create_dir(&folder).expect("mkdir");
        let name = folder.join(file_name("team/api", &platforms));
        std::os::unix::fs::symlink(&target, &name).expect("link");
        std::os::unix::fs::symlink(&target, name.with_extension("json.partial")).expect("link");
        write(&folder, &results(), &platforms).expect("written");
        assert_eq!(fs::read_to_string(&target).expect("read"), "precious");
        assert!(fs::symlink_metadata(&name).expect("meta").is_file());
        // A results folder that is a link is refused.
        let linked = dir.path().join("linked");
        std::os::unix::fs::symlink(&folder, &linked).expect("link");
        let error = write(&linked, &results(), &platforms).expect_err("a link");
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
    }
}

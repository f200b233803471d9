//! The build context: the files that go to the daemon, listed once up front.
//!
//! Which files go is decided by `.dockerignore` ([`IgnoreRules`], with the semantics of moby's
//! patternmatcher); the tar stream that carries them is written in `tar_body`.
//!
//! The context is listed once, before anything is created or built, so a bad `.dockerignore`
//! or a symlink that escapes the context fails the run before any side effect. The tar is then
//! written while it is sent: only a small buffer of it is ever in memory.

mod ignore;
mod symlink;
mod tar_body;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub(crate) use ignore::clean;
pub use ignore::IgnoreRules;
use symlink::check_symlink;
pub(crate) use tar_body::device_numbers;

/// Where a Dockerfile from outside the context is placed inside the tar.
const OUTSIDE_DOCKERFILE: &str = ".ecr-multiarch.Dockerfile";

/// Why the context cannot be sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A `.dockerignore` line is not a valid pattern.
    #[error("`.dockerignore` line {line}: `{pattern}` is not a valid pattern: {reason}")]
    BadPattern {
        /// 1-based line number.
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// The matcher's complaint.
        reason: String,
    },
    /// A symlink points outside the context, so its target would not be in the build.
    #[error("`{}` is a symlink to `{}`, outside the build context: replace it with the file, or widen `context`", path.display(), target.display())]
    SymlinkOutside {
        /// The link, relative to the context.
        path: PathBuf,
        /// Where it points.
        target: PathBuf,
    },
    /// A name the build would send is not UTF-8. BuildKit's file sync carries names as
    /// protobuf strings: Docker 23 and later refuse the build (buildx 0.29 on Docker 28.5:
    /// `string field contains invalid UTF-8`), and sending it mended would build the image
    /// with another name than the folder's. So it is refused before anything is created.
    #[error("`{}` (in the build context) has a name that is not UTF-8, which Docker Engines refuse in a build context: rename it, or list it in `.dockerignore`", path.display())]
    NameNotUtf8 {
        /// The entry, relative to the context (shown with replacement characters).
        path: PathBuf,
    },
    /// Reading the context failed.
    #[error("reading `{}`", path.display())]
    Read {
        /// The path that could not be read.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
}

/// One entry to send.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// Path on disk.
    source: PathBuf,
    /// Path inside the tar (relative, `/`-separated).
    name: String,
}

/// The files of a build context that go to the daemon, listed (not read) up front.
#[derive(Debug, Clone)]
pub struct BuildContext {
    entries: Vec<Entry>,
    /// The Dockerfile's path inside the tar, as the Engine API's `dockerfile` parameter.
    pub dockerfile: String,
    /// The context folder, resolved (what a BuildKit session serves as `context`).
    pub root: PathBuf,
    /// The Dockerfile, resolved (its folder is the session's `dockerfile`).
    pub dockerfile_path: PathBuf,
}

impl BuildContext {
    /// Lists the context: applies `.dockerignore`, always keeps the Dockerfile and
    /// `.dockerignore` (as the docker CLI does), and refuses symlinks that leave the context.
    pub fn scan(context: &Path, dockerfile: &Path) -> Result<BuildContext, Error> {
        let read_error = |path: &Path, source: io::Error| Error::Read {
            path: path.to_owned(),
            source,
        };
        let root = context.canonicalize().map_err(|e| read_error(context, e))?;
        let ignore_path = root.join(".dockerignore");
        let rules = match fs::read_to_string(&ignore_path) {
            Ok(text) => IgnoreRules::parse(&text)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => IgnoreRules::default(),
            Err(e) => return Err(read_error(&ignore_path, e)),
        };
        let dockerfile_abs = dockerfile
            .canonicalize()
            .map_err(|e| read_error(dockerfile, e))?;
        let dockerfile_name = dockerfile_abs
            .strip_prefix(&root)
            .ok()
            .map(|rel| rel.to_string_lossy().replace('\\', "/"));

        let keep_ignored_dirs = rules.has_exclusions();
        let mut entries = Vec::new();
        let walker = walkdir::WalkDir::new(&root)
            .min_depth(1)
            .follow_links(false)
            .sort_by_file_name()
            .into_iter()
            .filter_entry(|entry| {
                // Prune an ignored folder unless some `!` rule might bring files back.
                keep_ignored_dirs
                    || !entry.file_type().is_dir()
                    || !rules.is_ignored(&relative_name(&root, entry.path()))
            });
        for entry in walker {
            let entry = entry.map_err(|e| {
                let path = e.path().unwrap_or(&root).to_owned();
                read_error(&path, e.into())
            })?;
            let name = relative_name(&root, entry.path());
            let always_sent =
                name == ".dockerignore" || dockerfile_name.as_deref() == Some(name.as_str());
            if rules.is_ignored(&name) && !always_sent {
                continue;
            }
            let relative = entry.path().strip_prefix(&root).unwrap_or(entry.path());
            if relative.to_str().is_none() {
                return Err(Error::NameNotUtf8 {
                    path: PathBuf::from(name),
                });
            }
            if entry.file_type().is_symlink() {
                check_symlink(&root, entry.path(), &name)?;
            }
            entries.push(Entry {
                source: entry.path().to_owned(),
                name,
            });
        }
        let dockerfile = if let Some(name) = dockerfile_name {
            name
        } else {
            entries.push(Entry {
                source: dockerfile_abs.clone(),
                name: OUTSIDE_DOCKERFILE.to_owned(),
            });
            OUTSIDE_DOCKERFILE.to_owned()
        };
        Ok(BuildContext {
            entries,
            dockerfile,
            root,
            dockerfile_path: dockerfile_abs,
        })
    }

    /// The paths that will be sent, relative to the context.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }
}

fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) use super::tar_body::tests::links_and_fifo;

    #[test]
    fn a_name_that_is_not_utf8_is_refused_unless_ignored() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM scratch\n").expect("write the fixture");
        fs::create_dir(root.join("docs")).expect("write the fixture");
        fs::write(
            root.join("docs")
                .join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")),
            "x",
        )
        .expect("write the fixture");
        let error = BuildContext::scan(root, &root.join("Dockerfile")).expect_err("refused");
        assert_eq!(
            error.to_string(),
            "`docs/caf\u{fffd}.txt` (in the build context) has a name that is not UTF-8, which Docker Engines refuse in a build context: rename it, or list it in `.dockerignore`"
        );
        fs::write(root.join(".dockerignore"), "docs/caf*\n").expect("write the fixture");
        let context = BuildContext::scan(root, &root.join("Dockerfile")).expect("ignored");
        assert!(context.names().all(|name| !name.starts_with("docs/caf")));
    }

    #[test]
    fn scan_applies_ignore_and_keeps_the_dockerfile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM scratch\n").expect("write");
        fs::write(root.join(".dockerignore"), "Dockerfile\n*.secret\nlogs\n").expect("write");
        fs::write(root.join("app.txt"), "hi").expect("write");
        fs::write(root.join("key.secret"), "no").expect("write");
        fs::create_dir(root.join("logs")).expect("mkdir");
        fs::write(root.join("logs/a"), "no").expect("write");
        let context = BuildContext::scan(root, &root.join("Dockerfile")).expect("scan");
        let names: Vec<&str> = context.names().collect();
        assert_eq!(names, vec![".dockerignore", "Dockerfile", "app.txt"]);
        assert_eq!(context.dockerfile, "Dockerfile");
    }
}

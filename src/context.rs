//! The build context: which files go to the daemon (`.dockerignore`, with the semantics of
//! moby's patternmatcher) and the tar stream that carries them.
//!
//! The context is listed once, before anything is created or built, so a bad `.dockerignore`
//! or a symlink that escapes the context fails the run before any side effect. The tar is then
//! written while it is sent: only a small buffer of it is ever in memory.

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use globset::{GlobBuilder, GlobMatcher};
use tokio::sync::mpsc;

/// Where a Dockerfile from outside the context is placed inside the tar.
const OUTSIDE_DOCKERFILE: &str = ".ecr-multiarch.Dockerfile";
/// Size of the chunks the tar is sent in.
const CHUNK: usize = 64 * 1024;

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

/// One `.dockerignore` rule.
#[derive(Debug)]
struct Rule {
    matcher: GlobMatcher,
    exclusion: bool,
}

/// The parsed `.dockerignore` of a context.
#[derive(Debug, Default)]
pub struct IgnoreRules {
    rules: Vec<Rule>,
}

impl IgnoreRules {
    /// Parses `.dockerignore` text: one pattern a line, `#` comments, `!` re-includes, paths
    /// relative to the context root (a leading `/` is dropped), cleaned like Go's
    /// `filepath.Clean`.
    pub fn parse(text: &str) -> Result<IgnoreRules, Error> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exclusion, pattern) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let cleaned = clean(pattern);
            if cleaned.is_empty() {
                continue;
            }
            let matcher = GlobBuilder::new(&cleaned)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| Error::BadPattern {
                    line: index + 1,
                    pattern: pattern.to_owned(),
                    reason: e.kind().to_string(),
                })?
                .compile_matcher();
            rules.push(Rule { matcher, exclusion });
        }
        Ok(IgnoreRules { rules })
    }

    /// The rules of patterns BuildKit's frontend sends with a file-sync request (the lines of
    /// `.dockerignore` it read); a pattern that does not parse is left out, as a pattern that
    /// matches nothing.
    #[must_use]
    pub fn from_patterns(patterns: &[String]) -> IgnoreRules {
        let rules = patterns
            .iter()
            .filter_map(|p| IgnoreRules::parse(p).ok())
            .flat_map(|r| r.rules)
            .collect();
        IgnoreRules { rules }
    }

    /// Whether a path (relative, `/`-separated) is left out: the last rule that matches the
    /// path or any of its parent folders decides (moby's `MatchesOrParentMatches`).
    #[must_use]
    pub fn is_ignored(&self, path: &str) -> bool {
        let mut ignored = false;
        for rule in &self.rules {
            let matches = rule.matcher.is_match(path)
                || path
                    .match_indices('/')
                    .any(|(i, _)| rule.matcher.is_match(&path[..i]));
            if matches {
                ignored = !rule.exclusion;
            }
        }
        ignored
    }

    /// Whether any rule re-includes files: then an ignored folder must still be walked.
    fn has_exclusions(&self) -> bool {
        self.rules.iter().any(|r| r.exclusion)
    }
}

/// Lexically cleans a pattern like Go's `filepath.Clean`, relative to the context root: no
/// `.`, no empty parts, `..` folded, no leading `/`. The session's file sync cleans the
/// frontend's include patterns the same way.
pub(crate) fn clean(pattern: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in pattern.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
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

    /// Streams the context as a tar: a blocking task writes entries as it reads them into a
    /// small bounded channel, so memory stays at a few chunks whatever the context's size.
    /// A read error ends the stream with that error, which fails the build.
    #[must_use]
    pub fn tar_stream(&self) -> mpsc::Receiver<io::Result<Bytes>> {
        let (sender, receiver) = mpsc::channel(8);
        let entries = self.entries.clone();
        tokio::task::spawn_blocking(move || {
            let writer = ChannelWriter {
                sender: sender.clone(),
                buffer: Vec::with_capacity(CHUNK),
            };
            if let Err(e) = write_tar(&entries, writer) {
                // The receiver may be gone (build aborted); nothing left to tell then.
                let _ = sender.blocking_send(Err(e));
            }
        });
        receiver
    }
}

fn relative_name(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Refuses a symlink that leads out of the context, judged as the Engine resolves links
/// within the context root (`name` is the link's path relative to `root`): from the link's
/// folder, each link met on the way followed (an absolute target that names a place inside
/// the context counts from the root), and a `..` that would climb above the root is leaving
/// it. So `s -> .` with `t -> s/../outside` is refused, and an absolute link to a file of the
/// context is not. A loop or a dangling target is not an escape.
fn check_symlink(root: &Path, link: &Path, name: &str) -> Result<(), Error> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let target = fs::read_link(link).map_err(|e| Error::Read {
        path: link.to_owned(),
        source: e,
    })?;
    let outside = || Error::SymlinkOutside {
        path: PathBuf::from(name),
        target: target.clone(),
    };
    // The folder we stand in, as names below the root, and what is left to walk.
    let mut here: Vec<OsString> = Path::new(name)
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut pending: VecDeque<OsString> = VecDeque::new();
    let enter = |target: &Path,
                 here: &mut Vec<OsString>,
                 pending: &mut VecDeque<OsString>|
     -> Result<(), Error> {
        let relative = if target.is_absolute() {
            here.clear();
            target.strip_prefix(root).map_err(|_| outside())?
        } else {
            target
        };
        for component in relative.components().rev() {
            match component {
                Component::Normal(part) => pending.push_front(part.to_owned()),
                Component::ParentDir => pending.push_front(OsString::from("..")),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return Err(outside()),
            }
        }
        Ok(())
    };
    enter(&target, &mut here, &mut pending)?;
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            if here.pop().is_none() {
                return Err(outside());
            }
            continue;
        }
        here.push(part);
        let place: PathBuf = here.iter().collect();
        if let Ok(next) = fs::read_link(root.join(&place)) {
            hops += 1;
            if hops > 40 {
                return Ok(());
            }
            here.pop();
            enter(&next, &mut here, &mut pending)?;
        }
    }
    Ok(())
}

/// A device's major and minor numbers from its `st_rdev` (glibc's `major`/`minor`).
pub(crate) fn device_numbers(rdev: u64) -> (u32, u32) {
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    (
        u32::try_from(major).unwrap_or(0),
        u32::try_from(minor).unwrap_or(0),
    )
}

/// Writes the entries as the docker CLI's tar of a context (moby `pkg/archive`): a second name
/// of a hard-linked file as a hard link to the first name written, FIFOs and devices as their
/// own entries (with the device numbers), sockets left out (Go's tar has no entry for them).
fn write_tar(entries: &[Entry], writer: ChannelWriter) -> io::Result<()> {
    use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _};
    let mut builder = tar::Builder::new(writer);
    builder.follow_symlinks(false);
    builder.mode(tar::HeaderMode::Complete);
    // The first name written of each hard-linked file, by device and inode.
    let mut linked: std::collections::HashMap<(u64, u64), &str> = std::collections::HashMap::new();
    for entry in entries {
        let metadata = fs::symlink_metadata(&entry.source)?;
        let file_type = metadata.file_type();
        if file_type.is_socket() {
            continue;
        }
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(&metadata, tar::HeaderMode::Complete);
        // Owned by root inside the image, as the docker CLI sends it.
        header.set_uid(0);
        header.set_gid(0);
        header.set_username("")?;
        header.set_groupname("")?;
        if file_type.is_symlink() {
            let target = fs::read_link(&entry.source)?;
            header.set_size(0);
            builder.append_link(&mut header, &entry.name, target)?;
        } else if metadata.is_file() {
            if metadata.nlink() > 1 {
                let key = (metadata.dev(), metadata.ino());
                if let Some(first) = linked.get(&key) {
                    header.set_entry_type(tar::EntryType::Link);
                    header.set_size(0);
                    builder.append_link(&mut header, &entry.name, first)?;
                    continue;
                }
                linked.insert(key, &entry.name);
            }
            let file = fs::File::open(&entry.source)?;
            builder.append_data(&mut header, &entry.name, file)?;
        } else {
            // A folder, a FIFO or a device: a header alone.
            if file_type.is_block_device() || file_type.is_char_device() {
                let (major, minor) = device_numbers(metadata.rdev());
                header.set_device_major(major)?;
                header.set_device_minor(minor)?;
            }
            header.set_size(0);
            builder.append_data(&mut header, &entry.name, io::empty())?;
        }
    }
    let mut writer = builder.into_inner()?;
    writer.flush()
}

/// A `Write` that hands fixed-size chunks to an async receiver, blocking when it is behind.
struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Bytes>>,
    buffer: Vec<u8>,
}

impl ChannelWriter {
    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buffer,
            Vec::with_capacity(CHUNK),
        ));
        self.sender.blocking_send(Ok(chunk)).map_err(|_| {
            io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the build stopped reading the context",
            )
        })
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buffer.len();
        let taken = room.min(data.len());
        self.buffer.extend_from_slice(&data[..taken]);
        if self.buffer.len() == CHUNK {
            self.send_buffer()?;
        }
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("secret.txt", "secret.txt", true)]
    #[case("secret.txt", "sub/secret.txt", false)]
    #[case("*.log", "a.log", true)]
    #[case("*.log", "dir/a.log", false)]
    #[case("**/*.log", "dir/deep/a.log", true)]
    #[case("/build", "build/out/x", true)]
    #[case("node_modules", "node_modules/a/b.js", true)]
    #[case("./docs/../tmp", "tmp/x", true)]
    #[case("*\n!keep.log", "keep.log", false)]
    #[case("*.md\n!README.md", "CHANGES.md", true)]
    #[case("# comment\n\n", "anything", false)]
    fn dockerignore_semantics(#[case] patterns: &str, #[case] path: &str, #[case] ignored: bool) {
        let rules = IgnoreRules::parse(patterns).expect("valid patterns");
        assert_eq!(rules.is_ignored(path), ignored, "{patterns:?} on {path}");
    }

    #[test]
    fn refuses_a_bad_pattern_naming_the_line() {
        let error = IgnoreRules::parse("ok\n[unclosed").expect_err("invalid");
        assert!(error.to_string().contains("line 2"), "{error}");
    }

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

    #[test]
    fn scan_refuses_a_symlink_out_of_the_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM scratch\n").expect("write");
        fs::create_dir(root.join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("../../etc/passwd", root.join("sub/escape")).expect("link");
        std::os::unix::fs::symlink("../Dockerfile", root.join("sub/inside")).expect("link");
        let error = BuildContext::scan(root, &root.join("Dockerfile")).expect_err("escapes");
        assert!(error.to_string().contains("sub/escape"), "{error}");
    }

    #[test]
    fn links_are_judged_as_resolved_within_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        fs::write(root.join("Dockerfile"), "FROM scratch\n").expect("write");
        std::os::unix::fs::symlink(".", root.join("s")).expect("link");
        std::os::unix::fs::symlink("s/../outside", root.join("t")).expect("link");
        let error = BuildContext::scan(&root, &root.join("Dockerfile")).expect_err("escapes");
        assert!(error.to_string().contains("`t`"), "{error}");
        fs::remove_file(root.join("t")).expect("rm");
        // An absolute link to a file of the context is harmless.
        std::os::unix::fs::symlink(root.join("Dockerfile"), root.join("abs")).expect("link");
        BuildContext::scan(&root, &root.join("Dockerfile")).expect("inside");
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc")).expect("link");
        BuildContext::scan(&root, &root.join("Dockerfile")).expect_err("outside");
    }

    /// A folder with `a`, `b` (a hard link to `a`) and the FIFO `pipe`.
    pub(crate) fn links_and_fifo() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("a"), "same").expect("write");
        fs::hard_link(root.join("a"), root.join("b")).expect("link");
        let status = std::process::Command::new("mkfifo")
            .arg(root.join("pipe"))
            .status()
            .expect("mkfifo");
        assert!(status.success());
        dir
    }

    /// The context's tar, whole.
    async fn tar_of(root: &Path) -> Vec<u8> {
        let context = BuildContext::scan(root, &root.join("Dockerfile")).expect("scan");
        let mut receiver = context.tar_stream();
        let mut bytes = Vec::new();
        while let Some(chunk) = receiver.recv().await {
            bytes.extend_from_slice(&chunk.expect("chunk"));
        }
        bytes
    }

    #[tokio::test]
    async fn the_tar_keeps_hard_links_and_fifos_as_the_docker_cli_sends_them() {
        let dir = links_and_fifo();
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM scratch\n").expect("write");
        let bytes = tar_of(root).await;
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut entries = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            let header = entry.header();
            let link = header
                .link_name()
                .expect("link name")
                .map(|l| l.to_string_lossy().into_owned());
            entries.push((
                entry.path().expect("path").to_string_lossy().into_owned(),
                header.entry_type(),
                link,
                header.size().expect("size"),
            ));
        }
        assert_eq!(
            entries,
            [
                ("Dockerfile".to_owned(), tar::EntryType::Regular, None, 13),
                ("a".to_owned(), tar::EntryType::Regular, None, 4),
                (
                    "b".to_owned(),
                    tar::EntryType::Link,
                    Some("a".to_owned()),
                    0
                ),
                ("pipe".to_owned(), tar::EntryType::Fifo, None, 0),
            ]
        );
    }

    #[tokio::test]
    async fn tar_stream_carries_every_entry() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM scratch\n").expect("write");
        fs::write(root.join("big.bin"), vec![7u8; 3 * CHUNK + 5]).expect("write");
        let bytes = tar_of(root).await;
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names = Vec::new();
        for entry in archive.entries().expect("entries") {
            let entry = entry.expect("entry");
            assert_eq!(entry.header().uid().expect("uid"), 0);
            names.push(entry.path().expect("path").to_string_lossy().into_owned());
        }
        assert_eq!(names, vec!["Dockerfile", "big.bin"]);
    }
}

/// Property tests (issue 14): the `.dockerignore` matcher over generated patterns and paths.
/// Each property is a rule of moby's patternmatcher that holds whatever the names: a pattern
/// leaves out the path it names and everything below it, `!` puts back what it names, `*` and
/// `?` stay within one path part, `**` spans any number of parts, a pattern means the same
/// however it is spelled (`./`, `//`, a leading `/`, `x/..`), and no line ever panics.
#[cfg(test)]
mod ignore_proptests {
    use super::*;
    use proptest::prelude::*;

    /// A path part: letters, digits and the punctuation names carry (no glob characters).
    fn part() -> impl Strategy<Value = String> {
        "[a-z0-9][a-z0-9._-]{0,6}".prop_filter("not . or ..", |p| p != "." && p != "..")
    }

    /// A relative path of one to four parts.
    fn path() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(part(), 1..5)
    }

    fn rules(text: &str) -> IgnoreRules {
        IgnoreRules::parse(text).expect("the generated patterns parse")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn no_line_panics(text in any::<String>(), probe in any::<String>()) {
            if let Ok(rules) = IgnoreRules::parse(&text) {
                let _ = rules.is_ignored(&probe);
            }
        }

        #[test]
        fn a_pattern_leaves_out_what_it_names_and_all_below(
            named in path(), below in path(), other in part()
        ) {
            let named = named.join("/");
            let rules = rules(&named);
            prop_assert!(rules.is_ignored(&named));
            let below_path = format!("{named}/{}", below.join("/"));
            prop_assert!(rules.is_ignored(&below_path));
            // A sibling whose name only starts like it is not left out.
            let sibling = format!("{named}{other}");
            prop_assert!(!rules.is_ignored(&sibling));
        }

        #[test]
        fn a_negation_puts_back_what_it_names(named in path(), other in part()) {
            let named = named.join("/");
            let rules = rules(&format!("*\n!{named}"));
            // `*` leaves out every top-level name, hence all below; `!` puts the one back.
            prop_assert!(!rules.is_ignored(&named));
            let first = named.split('/').next().unwrap_or_default();
            if other != first {
                prop_assert!(rules.is_ignored(&other));
            }
            // The last rule that matches decides.
            let again = rules_again(&named);
            prop_assert!(again.is_ignored(&named));
        }

        #[test]
        fn star_and_question_mark_stay_within_one_part(
            parent in part(), name in part(), deeper in part()
        ) {
            let star = rules(&format!("{parent}/*"));
            let probe_1 = format!("{parent}/{name}");
            prop_assert!(star.is_ignored(&probe_1));
            let probe_2 = format!("x{parent}/{name}");
            prop_assert!(!star.is_ignored(&probe_2));
            // One `?` per character of the name matches it, and nothing longer or shorter.
            let marks = "?".repeat(name.chars().count());
            let question = rules(&format!("{parent}/{marks}"));
            let probe_3 = format!("{parent}/{name}");
            prop_assert!(question.is_ignored(&probe_3));
            let probe_4 = format!("{parent}/{name}{deeper}");
            prop_assert!(!question.is_ignored(&probe_4));
            // `*` does not reach past a `/` on its own: `*.z` at the top is not `a/b.z`
            // (unless the folder itself is named `*.z`: all below it is left out then).
            let top = rules("*.z");
            let probe_5 = format!("{parent}/{name}.z");
            prop_assert_eq!(top.is_ignored(&probe_5), top.is_ignored(&parent));
        }

        #[test]
        fn double_star_spans_any_number_of_parts(
            middle in proptest::collection::vec(part(), 0..4), name in part()
        ) {
            let rules = rules(&format!("**/{name}"));
            let mut parts = middle.clone();
            parts.push(name.clone());
            prop_assert!(rules.is_ignored(&parts.join("/")));
        }

        #[test]
        fn a_pattern_means_the_same_however_it_is_spelled(
            named in path(), probe in path(), detour in part()
        ) {
            let plain = named.join("/");
            let spelled = [
                format!("/{plain}"),
                format!("./{plain}"),
                named.join("//"),
                format!("{detour}/../{plain}"),
                format!("{plain}/"),
            ];
            let probe = probe.join("/");
            let expected = rules(&plain);
            for spelling in spelled {
                let same = rules(&spelling);
                for candidate in [&plain, &probe] {
                    prop_assert_eq!(
                        same.is_ignored(candidate),
                        expected.is_ignored(candidate),
                        "`{}` and `{}` differ on `{}`", spelling, plain, candidate
                    );
                }
            }
        }
    }

    /// `named` left out, put back, and left out again.
    fn rules_again(named: &str) -> IgnoreRules {
        rules(&format!("{named}\n!{named}\n{named}"))
    }
}

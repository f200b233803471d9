//! The client side of BuildKit's file sync (`moby.filesync.v1.FileSync/DiffCopy`): the fsutil
//! packet protocol as the docker CLI and buildx serve it (tonistiigi/fsutil `send.go`,
//! `walker.go`, `stat.go`). BuildKit asks for one of the session's folders by name (`context`,
//! `dockerfile`) with include, exclude and follow patterns; we walk that folder and send one
//! `STAT` packet per entry, then the end of the list (a `STAT` without stat); BuildKit compares
//! the list with its copy from the last build of the same shared key and asks (`REQ`) only for
//! the files that differ, which we send as `DATA` packets ending with an empty one; `FIN` ends
//! the exchange. Nothing outside the folder is read: links are sent as links, never followed.
//!
//! Owns: which entries a request selects and how each is described. Does not decide which
//! folders a build may see (the session does).

use std::collections::HashMap;
use std::io::{self, Read as _};
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bollard_buildkit_proto::fsutil::types::packet::PacketType;
use bollard_buildkit_proto::fsutil::types::{Packet, Stat};
use globset::{GlobBuilder, GlobMatcher};
use tokio::sync::mpsc;

use crate::context::{clean, device_numbers, IgnoreRules};

/// Size of the `DATA` packets a file is sent in (fsutil uses 32 KiB; fewer, larger messages
/// cost less framing and stay far below gRPC's 4 MiB message limit).
const DATA_CHUNK: usize = 128 * 1024;

// Go's `os.FileMode` bits, which fsutil puts in `Stat.mode` (Go `io/fs`).
const MODE_DIR: u32 = 1 << 31;
const MODE_SYMLINK: u32 = 1 << 27;
const MODE_DEVICE: u32 = 1 << 26;
const MODE_NAMED_PIPE: u32 = 1 << 25;
const MODE_SOCKET: u32 = 1 << 24;
const MODE_SETUID: u32 = 1 << 23;
const MODE_SETGID: u32 = 1 << 22;
const MODE_CHAR_DEVICE: u32 = 1 << 21;
const MODE_STICKY: u32 = 1 << 20;
const MODE_TYPE: u32 =
    MODE_DIR | MODE_SYMLINK | MODE_NAMED_PIPE | MODE_SOCKET | MODE_DEVICE | MODE_CHAR_DEVICE;

/// What one BuildKit request asks of a folder: the gRPC metadata of its `DiffCopy` call.
#[derive(Debug, Default, Clone)]
pub struct Selection {
    /// Paths (patterns) to send, with what lies below them; empty: everything.
    pub include: Vec<String>,
    /// `.dockerignore` patterns, `!` re-includes (moby's patternmatcher).
    pub exclude: Vec<String>,
    /// Paths to send after resolving symlinks among them, within the folder.
    pub follow: Vec<String>,
}

/// Counters of what the session sent, shared by every request of a run.
#[derive(Debug, Default)]
pub struct Sent {
    /// File contents sent (`DATA` payloads), bytes.
    pub data_bytes: AtomicU64,
    /// Files whose contents BuildKit asked for.
    pub files: AtomicU64,
    /// Entries described (`STAT` packets).
    pub entries: AtomicU64,
}

/// One include pattern, whole and split per path component (to tell whether a folder may
/// hold a match).
#[derive(Debug)]
struct Include {
    whole: GlobMatcher,
    parts: Vec<Option<GlobMatcher>>,
}

fn glob(pattern: &str) -> Option<GlobMatcher> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .build()
        .ok()
        .map(|g| g.compile_matcher())
}

impl Include {
    fn new(pattern: &str) -> Option<Include> {
        let whole = glob(pattern)?;
        let parts = pattern
            .split('/')
            .map(|part| if part == "**" { None } else { glob(part) })
            .collect();
        Some(Include { whole, parts })
    }

    /// The path itself or one of its parent folders matches (fsutil includes a matched
    /// folder with everything below it).
    fn selects(&self, path: &str) -> bool {
        self.whole.is_match(path)
            || path
                .match_indices('/')
                .any(|(i, _)| self.whole.is_match(&path[..i]))
    }

    /// A folder that a match may lie below: its components match the pattern's first ones
    /// (`**` matches any number of components).
    fn may_hold(&self, dir: &str) -> bool {
        for (index, component) in dir.split('/').enumerate() {
            match self.parts.get(index) {
                Some(None) => return true,
                Some(Some(part)) if part.is_match(component) => {}
                None | Some(Some(_)) => return false,
            }
        }
        true
    }
}

/// The entries a [`Selection`] picks from a folder.
#[derive(Debug)]
struct Filter {
    include: Option<Vec<Include>>,
    exclude: IgnoreRules,
    exclude_has_negations: bool,
}

impl Filter {
    fn new(root: &Path, selection: &Selection) -> Filter {
        let mut patterns: Vec<String> = selection
            .include
            .iter()
            .map(|p| clean(p))
            .filter(|p| !p.is_empty())
            .collect();
        for path in &selection.follow {
            let path = clean(path);
            if path.is_empty() {
                continue;
            }
            patterns.extend(resolve_follow(root, &path));
            patterns.push(path);
        }
        let whole_folder = selection
            .include
            .iter()
            .chain(&selection.follow)
            .any(|p| clean(p).is_empty());
        let include = if patterns.is_empty() || whole_folder {
            None
        } else {
            Some(patterns.iter().filter_map(|p| Include::new(p)).collect())
        };
        let exclude = IgnoreRules::from_patterns(&selection.exclude);
        Filter {
            include,
            exclude_has_negations: selection.exclude.iter().any(|p| p.trim().starts_with('!')),
            exclude,
        }
    }
}

/// The paths a followed path leads to within `root`, link after link (at most 40, as the
/// kernel): an absolute target counts from `root`, `..` stops at `root`
/// (moby's `FollowSymlinkInScope`).
fn resolve_follow(root: &Path, path: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current = path.to_owned();
    for _ in 0..40 {
        let full = root.join(&current);
        let Ok(target) = std::fs::read_link(&full) else {
            break;
        };
        let target = target.to_string_lossy().into_owned();
        let joined = if target.starts_with('/') {
            target
        } else {
            let parent = current.rsplit_once('/').map_or("", |(p, _)| p);
            format!("{parent}/{target}")
        };
        current = clean(&joined);
        if current.is_empty() {
            break;
        }
        found.push(current.clone());
    }
    found
}

/// fsutil's `Stat` of one entry, as the docker CLI and buildx send it: path with `/`, Go's
/// file mode, owner reset to root (their `resetUIDAndGID`), times in nanoseconds, the link
/// target, the device numbers, the extended attributes, and a second name of a hard-linked
/// file as a link to the first name sent.
fn stat_of(
    path: &str,
    full: &Path,
    metadata: &std::fs::Metadata,
    inodes: &mut HashMap<(u64, u64), String>,
) -> io::Result<Stat> {
    let raw = metadata.mode();
    let mut mode = raw & 0o777;
    match raw & 0o170_000 {
        0o060_000 => mode |= MODE_DEVICE,
        0o020_000 => mode |= MODE_DEVICE | MODE_CHAR_DEVICE,
        0o040_000 => mode |= MODE_DIR,
        0o010_000 => mode |= MODE_NAMED_PIPE,
        0o120_000 => mode |= MODE_SYMLINK,
        0o140_000 => mode |= MODE_SOCKET,
        _ => {}
    }
    if raw & 0o4000 != 0 {
        mode |= MODE_SETUID;
    }
    if raw & 0o2000 != 0 {
        mode |= MODE_SETGID;
    }
    if raw & 0o1000 != 0 {
        mode |= MODE_STICKY;
    }
    let mod_time = metadata
        .mtime()
        .saturating_mul(1_000_000_000)
        .saturating_add(metadata.mtime_nsec());
    let mut stat = Stat {
        path: path.to_owned(),
        mode,
        uid: 0,
        gid: 0,
        size: 0,
        mod_time,
        linkname: String::new(),
        devmajor: 0,
        devminor: 0,
        xattrs: HashMap::new(),
    };
    if !metadata.is_dir() {
        stat.size = i64::try_from(metadata.len()).unwrap_or(i64::MAX);
        if mode & MODE_DEVICE != 0 {
            let (major, minor) = device_numbers(metadata.rdev());
            stat.devmajor = i64::from(major);
            stat.devminor = i64::from(minor);
        }
        if metadata.nlink() > 1 {
            let key = (metadata.dev(), metadata.ino());
            if let Some(first) = inodes.get(&key) {
                stat.linkname.clone_from(first);
                stat.size = 0;
            } else {
                inodes.insert(key, path.to_owned());
            }
        }
    }
    if mode & MODE_SYMLINK != 0 {
        stat.size = 0;
        stat.linkname = std::fs::read_link(full)?.to_string_lossy().into_owned();
    }
    // Extended attributes, where the filesystem has them (fsutil ignores "not supported").
    if let Ok(names) = xattr::list(full) {
        for name in names {
            if let (Some(key), Ok(Some(value))) = (name.to_str(), xattr::get(full, &name)) {
                stat.xattrs.insert(key.to_owned(), value);
            }
        }
    }
    Ok(stat)
}

/// Whether BuildKit may ask for an entry's contents (fsutil's `fileCanRequestData`: regular
/// files only; the two sides must agree on it to agree on the ids).
fn can_request_data(mode: u32) -> bool {
    mode & MODE_TYPE == 0
}

/// Walks `root` as fsutil's filtered walk does, in lexical order, calling `emit` for each
/// entry the selection picks: a folder that is not picked itself but holds a picked entry
/// is sent just before that entry. Stops at the first error `emit` returns.
fn walk(
    root: &Path,
    selection: &Selection,
    mut emit: impl FnMut(Stat, PathBuf) -> io::Result<()>,
) -> io::Result<()> {
    let filter = Filter::new(root, selection);
    let mut inodes = HashMap::new();
    // Folders above the current entry that were not sent yet: (depth, stat, path).
    let mut pending: Vec<(usize, Stat, PathBuf)> = Vec::new();
    let mut walker = walkdir::WalkDir::new(root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter();
    while let Some(entry) = walker.next() {
        let entry = entry.map_err(io::Error::from)?;
        let depth = entry.depth();
        pending.retain(|(d, _, _)| *d < depth);
        let name = entry
            .path()
            .strip_prefix(root)
            .unwrap_or(entry.path())
            .to_string_lossy()
            .into_owned();
        let is_dir = entry.file_type().is_dir();
        let included = match &filter.include {
            None => true,
            Some(includes) => includes.iter().any(|i| i.selects(&name)),
        };
        if !included {
            if is_dir
                && filter
                    .include
                    .as_ref()
                    .is_some_and(|i| i.iter().any(|i| i.may_hold(&name)))
            {
                let metadata = entry.path().symlink_metadata()?;
                let stat = stat_of(&name, entry.path(), &metadata, &mut inodes)?;
                pending.push((depth, stat, entry.path().to_owned()));
            } else if is_dir {
                walker.skip_current_dir();
            }
            continue;
        }
        if filter.exclude.is_ignored(&name) {
            if is_dir {
                if filter.exclude_has_negations {
                    let metadata = entry.path().symlink_metadata()?;
                    let stat = stat_of(&name, entry.path(), &metadata, &mut inodes)?;
                    pending.push((depth, stat, entry.path().to_owned()));
                } else {
                    walker.skip_current_dir();
                }
            }
            continue;
        }
        for (_, stat, path) in pending.drain(..) {
            emit(stat, path)?;
        }
        let metadata = entry.path().symlink_metadata()?;
        let stat = stat_of(&name, entry.path(), &metadata, &mut inodes)?;
        emit(stat, entry.path().to_owned())?;
    }
    Ok(())
}

/// A digest of what a `DiffCopy` of `selection` sends from `root` (`skip-unchanged`, issue 17):
/// the same walk, and per entry what its `STAT` packet says that can change the image (path,
/// Go file mode, link target or first name of a hard link, device numbers, extended
/// attributes) and a regular file's contents. Left out: times (a fresh checkout of the same
/// commit gives the same digest; BuildKit's file checksums skip them too) and owners (always
/// root's). Fields are length-prefixed, so no name can forge another entry. Reads every file
/// the selection picks: call it off the async threads.
pub fn sent_digest(root: &Path, selection: &Selection) -> io::Result<String> {
    use sha2::{Digest as _, Sha256};
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    walk(root, selection, |stat, path| {
        let content = if can_request_data(stat.mode) && stat.linkname.is_empty() {
            let mut file_hasher = Sha256::new();
            io::copy(&mut std::fs::File::open(&path)?, &mut file_hasher)?;
            file_hasher.finalize().to_vec()
        } else {
            Vec::new()
        };
        field(stat.path.as_bytes());
        field(&stat.mode.to_le_bytes());
        field(stat.linkname.as_bytes());
        field(&stat.devmajor.to_le_bytes());
        field(&stat.devminor.to_le_bytes());
        let xattrs: std::collections::BTreeMap<_, _> = stat.xattrs.iter().collect();
        field(&(xattrs.len() as u64).to_le_bytes());
        for (name, value) in xattrs {
            field(name.as_bytes());
            field(value);
        }
        field(&content);
        Ok(())
    })?;
    Ok(format!("sha256:{:x}", hasher.finalize()))
}

fn packet(kind: PacketType) -> Packet {
    Packet {
        r#type: kind as i32,
        ..Packet::default()
    }
}

/// Serves one `DiffCopy` request for `root`: the walk's `STAT` packets into `outgoing`,
/// then each file BuildKit asks for from `incoming`, until BuildKit's `FIN`. Blocking: run
/// on a blocking thread. Counts what it sends in `sent`.
pub fn serve_diff_copy(
    root: &Path,
    selection: &Selection,
    incoming: std::sync::mpsc::Receiver<Packet>,
    outgoing: &mpsc::Sender<Result<Packet, tonic::Status>>,
    sent: &Sent,
) -> io::Result<()> {
    let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "BuildKit ended the file sync");
    let push = |p: Packet| outgoing.blocking_send(Ok(p)).map_err(|_| gone());
    // File ids count every entry sent, in order; only regular files can be asked for.
    let files: Arc<Mutex<HashMap<u32, PathBuf>>> = Arc::default();
    let next_id = std::cell::Cell::new(0u32);
    // Requests may arrive while the list is still being sent: answer them on a second thread.
    let files_for_data = Arc::clone(&files);
    std::thread::scope(|scope| -> io::Result<()> {
        let data = scope.spawn(|| -> io::Result<()> {
            let mut buffer = vec![0u8; DATA_CHUNK];
            for request in incoming {
                match PacketType::try_from(request.r#type) {
                    Ok(PacketType::PacketReq) => {
                        let path = files_for_data
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .get(&request.id)
                            .cloned()
                            .ok_or_else(|| {
                                io::Error::new(
                                    io::ErrorKind::InvalidData,
                                    format!("BuildKit asked for unknown file id {}", request.id),
                                )
                            })?;
                        sent.files.fetch_add(1, Ordering::Relaxed);
                        // A file that vanished since its stat is sent empty, as fsutil does.
                        if let Ok(mut file) = std::fs::File::open(&path) {
                            loop {
                                let read = file.read(&mut buffer)?;
                                if read == 0 {
                                    break;
                                }
                                sent.data_bytes.fetch_add(read as u64, Ordering::Relaxed);
                                push(Packet {
                                    r#type: PacketType::PacketData as i32,
                                    id: request.id,
                                    data: buffer[..read].to_vec(),
                                    stat: None,
                                })?;
                            }
                        }
                        push(Packet {
                            r#type: PacketType::PacketData as i32,
                            id: request.id,
                            ..Packet::default()
                        })?;
                    }
                    Ok(PacketType::PacketFin) => {
                        push(packet(PacketType::PacketFin))?;
                        return Ok(());
                    }
                    Ok(PacketType::PacketErr) => {
                        return Err(io::Error::other(format!(
                            "BuildKit reported an error receiving the files: {}",
                            String::from_utf8_lossy(&request.data)
                        )));
                    }
                    _ => {}
                }
            }
            Err(gone())
        });
        let listed = walk(root, selection, |stat, path| {
            let id = next_id.get();
            next_id.set(id + 1);
            if can_request_data(stat.mode) && stat.linkname.is_empty() {
                files
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .insert(id, path);
            }
            sent.entries.fetch_add(1, Ordering::Relaxed);
            push(Packet {
                r#type: PacketType::PacketStat as i32,
                stat: Some(stat),
                ..Packet::default()
            })
        })
        .and_then(|()| push(packet(PacketType::PacketStat)));
        if let Err(error) = listed {
            let _ = push(Packet {
                r#type: PacketType::PacketErr as i32,
                data: error.to_string().into_bytes(),
                ..Packet::default()
            });
            return Err(error);
        }
        data.join()
            .unwrap_or_else(|_| Err(io::Error::other("the file sender panicked")))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn listed(root: &Path, selection: &Selection) -> Vec<String> {
        let mut names = Vec::new();
        walk(root, selection, |stat, _| {
            names.push(stat.path);
            Ok(())
        })
        .expect("walk");
        names
    }

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir_all(root.join("src/deep")).expect("mkdir");
        fs::create_dir_all(root.join("big")).expect("mkdir");
        fs::write(root.join("Dockerfile"), "FROM scratch\n").expect("write");
        fs::write(root.join("src/a.txt"), "a").expect("write");
        fs::write(root.join("src/deep/b.log"), "b").expect("write");
        fs::write(root.join("big/blob"), "x").expect("write");
        std::os::unix::fs::symlink("src/a.txt", root.join("link")).expect("link");
        dir
    }

    #[test]
    fn everything_in_lexical_order_without_patterns() {
        let dir = tree();
        assert_eq!(
            listed(dir.path(), &Selection::default()),
            [
                "Dockerfile",
                "big",
                "big/blob",
                "link",
                "src",
                "src/a.txt",
                "src/deep",
                "src/deep/b.log"
            ]
        );
    }

    #[test]
    fn includes_send_their_parents_and_nothing_else() {
        let dir = tree();
        let selection = Selection {
            include: vec!["src/deep/b.log".into()],
            ..Selection::default()
        };
        assert_eq!(
            listed(dir.path(), &selection),
            ["src", "src/deep", "src/deep/b.log"]
        );
        let selection = Selection {
            include: vec!["src".into()],
            exclude: vec!["**/*.log".into()],
            ..Selection::default()
        };
        assert_eq!(
            listed(dir.path(), &selection),
            ["src", "src/a.txt", "src/deep"]
        );
    }

    #[test]
    fn followed_links_bring_their_targets() {
        let dir = tree();
        let selection = Selection {
            follow: vec!["/link".into()],
            ..Selection::default()
        };
        assert_eq!(listed(dir.path(), &selection), ["link", "src", "src/a.txt"]);
    }

    #[test]
    fn negations_reach_into_excluded_folders() {
        let dir = tree();
        let selection = Selection {
            exclude: vec!["src".into(), "!src/deep/b.log".into()],
            ..Selection::default()
        };
        assert_eq!(
            listed(dir.path(), &selection),
            [
                "Dockerfile",
                "big",
                "big/blob",
                "link",
                "src",
                "src/deep",
                "src/deep/b.log"
            ]
        );
    }

    #[test]
    fn the_sent_digest_follows_what_is_sent_not_times() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tree();
        let root = dir.path();
        fs::write(root.join("src/deep/b.log"), "x").expect("write");
        let selection = Selection {
            follow: vec!["/src".into()],
            exclude: vec!["**/*.log".into()],
            ..Selection::default()
        };
        let digest = || sent_digest(root, &selection).expect("digest");
        let first = digest();
        // A newer time (a fresh checkout), an excluded file and one not selected change nothing.
        let file = fs::File::options()
            .write(true)
            .open(root.join("src/a.txt"))
            .expect("open");
        file.set_modified(std::time::SystemTime::now() + std::time::Duration::from_hours(1))
            .expect("touch");
        fs::write(root.join("src/deep/b.log"), "changed").expect("write");
        fs::write(root.join("big/blob"), "changed").expect("write");
        assert_eq!(digest(), first);
        // One byte, or the executable bit, of a file sent does.
        fs::write(root.join("src/a.txt"), "A").expect("write");
        let changed = digest();
        assert_ne!(changed, first);
        fs::set_permissions(root.join("src/a.txt"), fs::Permissions::from_mode(0o755))
            .expect("chmod");
        assert_ne!(digest(), changed);
    }

    #[test]
    fn hard_links_and_fifos_are_described_as_fsutil_does() {
        let dir = crate::context::tests::links_and_fifo();
        let root = dir.path();
        let mut described = Vec::new();
        walk(root, &Selection::default(), |stat, _| {
            described.push(stat);
            Ok(())
        })
        .expect("walk");
        assert_eq!(described[1].path, "b");
        assert_eq!(described[1].linkname, "a");
        assert_eq!(described[1].size, 0);
        assert_eq!(described[2].mode & MODE_NAMED_PIPE, MODE_NAMED_PIPE);
        assert!(!can_request_data(described[2].mode));
    }
}

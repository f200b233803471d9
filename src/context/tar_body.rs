//! The tar body of a build context: its entries written as the docker CLI's tar, streamed in
//! small chunks while it is sent.

use std::fs;
use std::io::{self, Write};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::{BuildContext, Entry};

/// Size of the chunks the tar is sent in.
const CHUNK: usize = 64 * 1024;

impl BuildContext {
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
    use std::path::Path;

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

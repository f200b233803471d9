//! Reading the export tar in one pass: each entry becomes a small JSON document, a layer the
//! repository already holds (skipped unread when its name says which, else only hashed), a
//! layer compressed into a temporary file, a layer copied as stored, or a link.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::compress::{compress_alongside, Hashing};
use super::layout;
use super::links::{entry_key, link_target};
use super::{KnownLayers, CHUNK};
use crate::oci::{media_type, Descriptor, Digest};

/// Largest document (config, manifest, `manifest.json`) read into memory; anything larger that
/// is not JSON is a layer.
const MAX_DOCUMENT: u64 = 4 * 1024 * 1024;

/// What one tar entry of the export turned out to be.
pub(super) enum Entry {
    /// A small JSON document.
    Document(Bytes),
    /// A layer the repository already holds, with the digest of the entry's bytes: found by
    /// the entry's name (`blobs/sha256/<hex>`, skipped unread) or by hashing it.
    Known { blob: Descriptor, content: Digest },
    /// An uncompressed layer tar, compressed into a file.
    Compressed {
        diff_id: Digest,
        blob: Descriptor,
        path: PathBuf,
    },
    /// A layer already compressed in the export (containerd image store), copied as it is.
    AsStored { blob: Descriptor, path: PathBuf },
    /// A symbolic or hard link to another entry, by its name in the export: Docker 20.10
    /// writes a layer the image lists twice once, and links the second `<id>/layer.tar` to the
    /// first (`../<id2>/layer.tar`).
    Link(String),
}

impl Entry {
    /// The digest of the entry's bytes as the export holds them, for a layer entry.
    pub(super) fn content_digest(&self) -> Option<&Digest> {
        match self {
            Entry::Known { content, .. } => Some(content),
            Entry::Compressed { diff_id, .. } => Some(diff_id),
            Entry::AsStored { blob, .. } => Some(&blob.digest),
            Entry::Document(_) | Entry::Link(_) => None,
        }
    }
}

/// Reads every regular file of the export tar, in one pass. With `all_known`, an uncompressed
/// layer is only hashed to find its blob, never compressed.
pub(super) fn read_entries(
    reader: impl Read,
    dir: &Path,
    known: &KnownLayers,
    all_known: bool,
) -> io::Result<HashMap<String, Entry>> {
    let mut entries = HashMap::new();
    let mut archive = tar::Archive::new(reader);
    for (index, entry) in archive.entries()?.enumerate() {
        let mut entry = entry?;
        let kind = entry.header().entry_type();
        if kind.is_symlink() || kind.is_hard_link() {
            let name = entry_key(&entry.path()?.to_string_lossy());
            let target = entry
                .link_name()?
                .map(|t| t.to_string_lossy().into_owned())
                .unwrap_or_default();
            // A link out of the export names nothing: the layer it stands for is missing.
            let target = link_target(&name, &target, kind.is_symlink()).unwrap_or_default();
            entries.insert(name, Entry::Link(target));
            continue;
        }
        if kind != tar::EntryType::Regular && kind != tar::EntryType::Continuous {
            continue;
        }
        let name = entry_key(&entry.path()?.to_string_lossy());
        let size = entry.size();
        // OCI layouts name blobs by digest: a layer the repository holds is not read at all.
        if let Some((content, blob)) = layout::blob_hex(&name)
            .and_then(Digest::from_hex)
            .and_then(|digest| known.get(digest.as_str()).map(|blob| (digest, blob)))
        {
            io::copy(&mut entry, &mut io::sink())?;
            entries.insert(
                name,
                Entry::Known {
                    blob: blob.clone(),
                    content,
                },
            );
            continue;
        }
        let mut head = Vec::with_capacity(512);
        (&mut entry).take(512).read_to_end(&mut head)?;
        let looks_like_json = head
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b'{' || *b == b'[');
        let read = if size <= MAX_DOCUMENT && looks_like_json {
            let mut bytes = head;
            entry.read_to_end(&mut bytes)?;
            Entry::Document(Bytes::from(bytes))
        } else if !layout::may_be_layer(&name) {
            io::copy(&mut entry, &mut io::sink())?;
            continue;
        } else if all_known && compressed_media_type(&head).is_none() {
            let mut hashing = Hashing::new(io::sink());
            hashing.write_all(&head)?;
            copy(&mut entry, &mut hashing)?;
            let (diff_id, _, _) = hashing.finish();
            let blob = known.get(diff_id.as_str()).ok_or_else(|| {
                io::Error::other(format!(
                    "layer `{name}` is `{diff_id}`, which the Engine did not list for this image"
                ))
            })?;
            Entry::Known {
                blob: blob.clone(),
                content: diff_id,
            }
        } else if let Some(media_type) = compressed_media_type(&head) {
            let path = dir.join(format!("{index}.blob"));
            let mut out = Hashing::new(BufWriter::with_capacity(CHUNK, File::create(&path)?));
            out.write_all(&head)?;
            copy(&mut entry, &mut out)?;
            let (digest, size, file) = out.finish();
            file.into_inner().map_err(io::IntoInnerError::into_error)?;
            Entry::AsStored {
                blob: Descriptor {
                    media_type: media_type.to_owned(),
                    size,
                    digest,
                },
                path,
            }
        } else {
            let path = dir.join(format!("{index}.tar.gz"));
            let file = BufWriter::with_capacity(CHUNK, File::create(&path)?);
            let (compressed, file) = compress_alongside(head, &mut entry, file)?;
            file.into_inner().map_err(io::IntoInnerError::into_error)?;
            Entry::Compressed {
                diff_id: compressed.diff_id,
                blob: Descriptor {
                    media_type: media_type::DOCKER_LAYER_GZIP.to_owned(),
                    size: compressed.size,
                    digest: compressed.digest,
                },
                path,
            }
        };
        entries.insert(name, read);
    }
    Ok(entries)
}

fn copy(from: &mut impl Read, to: &mut impl Write) -> io::Result<()> {
    let mut buffer = vec![0; CHUNK];
    loop {
        let n = from.read(&mut buffer)?;
        if n == 0 {
            return Ok(());
        }
        to.write_all(&buffer[..n])?;
    }
}

/// The layer media type for a stream that starts with a compression magic number.
fn compressed_media_type(head: &[u8]) -> Option<&'static str> {
    if head.starts_with(&[0x1f, 0x8b]) {
        Some(media_type::DOCKER_LAYER_GZIP)
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(media_type::OCI_LAYER_ZSTD)
    } else {
        None
    }
}

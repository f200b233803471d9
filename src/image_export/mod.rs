//! The Engine's image export (`GET /images/{name}/get`, the `docker save` format) turned into
//! what a registry needs: the image config, every layer as a compressed blob, and the image
//! manifest that names them. Knows no server: the export arrives as a byte stream, what the
//! repository already holds arrives as [`KnownLayers`], and the result is handed to `registry`.
//!
//! Three layouts reach us (TESTBED.md): Docker 20.10's legacy one (`manifest.json`,
//! `<id>/layer.tar`, uncompressed), Docker 25+'s classic store (an OCI layout whose layer blobs
//! are uncompressed tars named by their `diff_id`) and the containerd image store (an OCI layout
//! with the layers compressed as stored). Every one carries `manifest.json`, which names the
//! config and the layers in order; that is what we read. Layers are read once, as they stream
//! by: a layer the repository already holds is skipped unread, a compressed one is copied as
//! it is, an uncompressed one is compressed deterministically on the way to a temporary file.
//! Memory stays bounded whatever the layer size.

pub mod compress;
pub mod media_type;
#[cfg(test)]
mod proptests;

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use crate::platform::{Platform, PlatformMismatch};
use compress::{DeterministicGzip, Hashing};

/// Largest document (config, manifest, `manifest.json`) read into memory; anything larger that
/// is not JSON is a layer.
const MAX_DOCUMENT: u64 = 4 * 1024 * 1024;
/// Copy buffer for layers.
const CHUNK: usize = 256 * 1024;

/// Why an export could not be turned into an image for the registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The image is not for the platform that was asked.
    #[error(transparent)]
    PlatformMismatch(#[from] PlatformMismatch),
    /// Reading the export or writing a temporary file failed.
    #[error("{what}")]
    Io {
        /// What we were doing.
        what: String,
        /// The cause.
        source: io::Error,
    },
    /// The export is not what the Engine should send.
    #[error("the image export of `{platform}` is not valid: {reason}")]
    Malformed {
        /// The platform whose export it is.
        platform: Platform,
        /// What is wrong.
        reason: String,
    },
}

impl Error {
    /// Exit 1 for an image of another platform (the Dockerfile pins one), 2 for an export the
    /// Engine sent wrong or could not send.
    #[must_use]
    pub fn exit_status(&self) -> crate::exit_status::ExitStatus {
        match self {
            Error::PlatformMismatch(mismatch) => mismatch.exit_status(),
            Error::Io { .. } | Error::Malformed { .. } => crate::exit_status::ExitStatus::System,
        }
    }
}

/// A content descriptor, as manifests name blobs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// `sha256:` of its bytes.
    pub digest: String,
}

/// Layer blobs the repository already holds, found by the layer's `diff_id` (from the configs
/// of images already pushed) or by the blob's own digest.
#[derive(Debug, Clone, Default)]
pub struct KnownLayers {
    by_key: HashMap<String, Descriptor>,
}

impl KnownLayers {
    /// Records that the repository holds `blob`, the compressed form of layer `diff_id`.
    pub fn insert(&mut self, diff_id: &str, blob: Descriptor) {
        self.by_key
            .entry(blob.digest.clone())
            .or_insert_with(|| blob.clone());
        self.by_key.entry(diff_id.to_owned()).or_insert(blob);
    }

    /// Adds what `other` knows (the first blob recorded for a key stays).
    pub fn merge(&mut self, other: KnownLayers) {
        for (key, blob) in other.by_key {
            self.by_key.entry(key).or_insert(blob);
        }
    }

    /// The blob for a `diff_id` or a blob digest.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&Descriptor> {
        self.by_key.get(key)
    }

    /// How many keys are known (diff ids and digests).
    #[must_use]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    /// Whether nothing is known.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

/// Where a blob's bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobSource {
    /// The repository already holds it: nothing to upload.
    Repository,
    /// A temporary file of this run.
    File(PathBuf),
    /// In memory (configs).
    Memory(Bytes),
}

/// One blob of an image and where its bytes are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// How the manifest names it.
    pub descriptor: Descriptor,
    /// Where to read it from when the registry lacks it.
    pub source: BlobSource,
}

/// An image manifest document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDocument {
    /// The exact bytes pushed.
    pub bytes: Bytes,
    /// `sha256:` of the bytes.
    pub digest: String,
    /// Docker schema 2 or OCI.
    pub media_type: String,
}

impl ManifestDocument {
    /// A document and its digest.
    #[must_use]
    pub fn new(bytes: impl Into<Bytes>, media_type: &str) -> ManifestDocument {
        let bytes = bytes.into();
        ManifestDocument {
            digest: format!("sha256:{:x}", Sha256::digest(&bytes)),
            bytes,
            media_type: media_type.to_owned(),
        }
    }
}

/// One platform's image, ready for the registry: config, layers and manifest.
#[derive(Debug)]
pub struct PreparedImage {
    /// The platform it was built for (checked against its config).
    pub platform: Platform,
    /// The image config blob.
    pub config: Blob,
    /// The layer blobs, in order.
    pub layers: Vec<Blob>,
    /// The manifest naming them.
    pub manifest: ManifestDocument,
    /// Holds the temporary layer files until the image is pushed.
    _spool: Option<tempfile::TempDir>,
}

impl PreparedImage {
    /// An image the repository already holds whole (same config, so same layers): its manifest
    /// as stored; nothing needs uploading.
    #[must_use]
    pub fn in_repository(
        platform: Platform,
        manifest: ManifestDocument,
        config: Descriptor,
        layers: Vec<Descriptor>,
    ) -> PreparedImage {
        let held = |descriptor| Blob {
            descriptor,
            source: BlobSource::Repository,
        };
        PreparedImage {
            platform,
            config: held(config),
            layers: layers.into_iter().map(held).collect(),
            manifest,
            _spool: None,
        }
    }
}

/// BuildKit's inline cache in an image config: its cache records for the image's layers.
pub const INLINE_CACHE_KEY: &str = "moby.buildkit.cache.v0";

/// Whether two image configs describe the same image but for the content of their inline
/// cache records. BuildKit writes those records in an order and with a set of intermediate
/// results that vary from build to build (seen on Docker 20.10: the record of a cached `RUN`
/// lists its layer in one build and not in the next), while the layers, history and settings
/// stay the same. Either carries the cache, so the image the repository holds can stand for the
/// new one, and a rebuild of the same inputs keeps its digest. A config that has records and
/// one that has none are different images (`repository-cache` was turned on or off).
#[must_use]
pub fn same_image_but_cache_records(held: &[u8], built: &[u8]) -> bool {
    let parse = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).ok();
    let (Some(mut held), Some(mut built)) = (parse(held), parse(built)) else {
        return false;
    };
    let (Some(held_map), Some(built_map)) = (held.as_object_mut(), built.as_object_mut()) else {
        return false;
    };
    let held_cache = held_map.remove(INLINE_CACHE_KEY);
    let built_cache = built_map.remove(INLINE_CACHE_KEY);
    held_cache.is_some() == built_cache.is_some() && held_map == built_map
}

/// What one tar entry of the export turned out to be.
enum Entry {
    /// A small JSON document.
    Document(Bytes),
    /// A layer the repository already holds, with the digest of the entry's bytes: found by
    /// the entry's name (`blobs/sha256/<hex>`, skipped unread) or by hashing it.
    Known { blob: Descriptor, content: String },
    /// An uncompressed layer tar, compressed into a file.
    Compressed {
        diff_id: String,
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

/// How many links a name may go through to its entry (a loop ends here).
const MAX_LINKS: usize = 16;

impl Entry {
    /// The digest of the entry's bytes as the export holds them, for a layer entry.
    fn content_digest(&self) -> Option<&str> {
        match self {
            Entry::Known { content, .. } => Some(content),
            Entry::Compressed { diff_id, .. } => Some(diff_id),
            Entry::AsStored { blob, .. } => Some(&blob.digest),
            Entry::Document(_) | Entry::Link(_) => None,
        }
    }
}

/// The name a link entry points to, as a name in the export: a hard link names it from the
/// archive's root, a symbolic link from the link's own folder. `None` when it leaves the export.
fn link_target(name: &str, target: &str, symbolic: bool) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    if symbolic && !target.starts_with('/') {
        parts.extend(name.split('/').filter(|p| !p.is_empty() && *p != "."));
        parts.pop();
    }
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// The entry a name stands for, through links.
fn resolve<'a>(entries: &'a HashMap<String, Entry>, name: &str) -> Option<&'a Entry> {
    let mut entry = entries.get(name)?;
    for _ in 0..MAX_LINKS {
        match entry {
            Entry::Link(target) => entry = entries.get(target)?,
            other => return Some(other),
        }
    }
    None
}

/// An entry's name as a key: without a leading `./`, as `manifest.json` names entries.
fn entry_key(name: &str) -> String {
    name.trim_start_matches("./").to_owned()
}

/// `manifest.json` of a `docker save` archive.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SaveManifest {
    config: String,
    layers: Vec<String>,
}

/// The parts of an image config we check.
#[derive(Deserialize)]
struct ImageConfig {
    #[serde(default)]
    os: String,
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    variant: Option<String>,
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// Reads the Engine's export of the image built for `platform` and prepares it for the
/// registry, reusing the blobs in `known`. `diff_ids` are the image's layers as the Engine
/// describes them: when the repository holds every one, no layer is compressed, even in Docker
/// 20.10's layout, whose entry names say nothing. Layers are spooled under `temp_root`.
pub async fn prepare<S, E>(
    platform: &Platform,
    export: S,
    known: &KnownLayers,
    diff_ids: &[String],
    temp_root: &Path,
) -> Result<PreparedImage, Error>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    let io_error = |what: String| move |source| Error::Io { what, source };
    let spool = tempfile::Builder::new()
        .prefix("ecr-multiarch-")
        .tempdir_in(temp_root)
        .map_err(io_error(format!(
            "creating a temporary folder in `{}` for the `{platform}` layers",
            temp_root.display()
        )))?;
    let reader = tokio_util::io::StreamReader::new(export.map_err(io::Error::other));
    let bridge = tokio_util::io::SyncIoBridge::new(reader);
    let dir = spool.path().to_owned();
    let lookup = known.clone();
    let all_known = !diff_ids.is_empty() && diff_ids.iter().all(|d| known.get(d).is_some());
    let entries =
        tokio::task::spawn_blocking(move || read_entries(bridge, &dir, &lookup, all_known))
            .await
            .map_err(|e| Error::Io {
                what: format!("reading the image export of `{platform}`"),
                source: io::Error::other(e),
            })?
            .map_err(io_error(format!(
                "reading the image export of `{platform}`"
            )))?;
    assemble(platform, &entries, known, spool)
}

/// Reads every regular file of the export tar, in one pass. With `all_known`, an uncompressed
/// layer is only hashed to find its blob, never compressed.
fn read_entries(
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
        if let Some((content, blob)) = name
            .strip_prefix("blobs/sha256/")
            .map(|hex| format!("sha256:{hex}"))
            .and_then(|digest| known.get(&digest).map(|blob| (digest, blob)))
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
        // Layers are `blobs/sha256/<hex>` (OCI layout) or `<v1 id>/layer.tar` (legacy); the
        // rest (`VERSION`, `repositories`, `oci-layout`) matters only when it is JSON.
        let may_be_layer = name.starts_with("blobs/") || name.ends_with("/layer.tar");
        let read = if size <= MAX_DOCUMENT && looks_like_json {
            let mut bytes = head;
            entry.read_to_end(&mut bytes)?;
            Entry::Document(Bytes::from(bytes))
        } else if !may_be_layer {
            io::copy(&mut entry, &mut io::sink())?;
            continue;
        } else if all_known && compressed_media_type(&head).is_none() {
            let mut hashing = Hashing::new(io::sink());
            hashing.write_all(&head)?;
            copy(&mut entry, &mut hashing)?;
            let (diff_id, _, _) = hashing.finish();
            let blob = known.get(&diff_id).ok_or_else(|| {
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

/// Compresses `head` and the rest of `reader` into `out` on a second thread while this one
/// reads: reading the Engine's export and compressing overlap, so a layer costs about the
/// longer of the two, not their sum. Chunks in flight are bounded (a few MiB).
fn compress_alongside<W: Write + Send>(
    head: Vec<u8>,
    reader: &mut impl Read,
    out: W,
) -> io::Result<(compress::Compressed, W)> {
    let (chunks, received) = std::sync::mpsc::sync_channel::<Vec<u8>>(8);
    std::thread::scope(|scope| {
        let compressor = scope.spawn(move || {
            let mut gzip = DeterministicGzip::new(out);
            for chunk in received {
                gzip.write_all(&chunk)?;
            }
            gzip.finish()
        });
        // The diff_id is hashed here, so that the compressor thread only compresses.
        let mut diff_id = Sha256::new();
        let mut uncompressed_size = 0_u64;
        let read = (|| -> io::Result<()> {
            let stopped = || io::Error::other("the layer compressor stopped");
            diff_id.update(&head);
            uncompressed_size += head.len() as u64;
            chunks.send(head).map_err(|_| stopped())?;
            loop {
                let mut chunk = vec![0; CHUNK];
                let n = reader.read(&mut chunk)?;
                if n == 0 {
                    return Ok(());
                }
                chunk.truncate(n);
                diff_id.update(&chunk);
                uncompressed_size += n as u64;
                chunks.send(chunk).map_err(|_| stopped())?;
            }
        })();
        drop(chunks);
        let compressed = compressor
            .join()
            .map_err(|_| io::Error::other("the layer compressor panicked"))?;
        // The compressor's own failure (a full disk) explains a stopped send best.
        let (digest, size, out) = compressed?;
        read?;
        Ok((
            compress::Compressed {
                diff_id: format!("sha256:{:x}", diff_id.finalize()),
                digest,
                size,
                uncompressed_size,
            },
            out,
        ))
    })
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

/// Puts the read entries together: config, layers in order, the manifest.
fn assemble(
    platform: &Platform,
    entries: &HashMap<String, Entry>,
    known: &KnownLayers,
    spool: tempfile::TempDir,
) -> Result<PreparedImage, Error> {
    let malformed = |reason: String| Error::Malformed {
        platform: platform.clone(),
        reason,
    };
    let document = |entries: &HashMap<String, Entry>, name: &str| match resolve(entries, name) {
        Some(Entry::Document(bytes)) => Ok(bytes.clone()),
        _ => Err(malformed(format!(
            "`{name}` is missing or not a JSON document"
        ))),
    };
    let save: Vec<SaveManifest> = serde_json::from_slice(&document(entries, "manifest.json")?)
        .map_err(|e| malformed(format!("`manifest.json`: {e}")))?;
    let [save] = <[SaveManifest; 1]>::try_from(save).map_err(|all| {
        malformed(format!(
            "`manifest.json` names {} images, not one",
            all.len()
        ))
    })?;
    let config_bytes = document(entries, &save.config)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| malformed(format!("the image config: {e}")))?;
    let config_digest = format!("sha256:{:x}", Sha256::digest(&config_bytes));
    // A config is named by its digest: `blobs/sha256/<hex>`, or `<hex>.json` (Docker 20.10).
    let named = save.config.strip_prefix("blobs/sha256/").or_else(|| {
        save.config
            .strip_suffix(".json")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if let Some(hex) = named {
        if config_digest.strip_prefix("sha256:") != Some(hex) {
            return Err(malformed(format!(
                "the config `{}` holds `{config_digest}`",
                save.config
            )));
        }
    }
    if !platform.is_satisfied_by(&config.os, &config.architecture, config.variant.as_deref()) {
        return Err(PlatformMismatch {
            wanted: platform.clone(),
            found: [Some(config.os), Some(config.architecture), config.variant]
                .into_iter()
                .flatten()
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join("/"),
            digest: config_digest,
        }
        .into());
    }
    if config.rootfs.diff_ids.len() != save.layers.len() {
        return Err(malformed(format!(
            "the config lists {} layers, `manifest.json` {}",
            config.rootfs.diff_ids.len(),
            save.layers.len()
        )));
    }
    let mut layers = Vec::with_capacity(save.layers.len());
    for (name, diff_id) in save.layers.iter().zip(&config.rootfs.diff_ids) {
        let held = |descriptor: Descriptor| Blob {
            descriptor,
            source: BlobSource::Repository,
        };
        // A layer the image lists twice is one entry, read once and used at every place.
        let entry = resolve(entries, name);
        // OCI layouts name a blob by the digest of its bytes: hold the entry to that.
        if let (Some(hex), Some(content)) = (
            name.strip_prefix("blobs/sha256/"),
            entry.and_then(Entry::content_digest),
        ) {
            if content.strip_prefix("sha256:") != Some(hex) {
                return Err(malformed(format!("layer `{name}` holds `{content}`")));
            }
        }
        let blob = match entry {
            Some(Entry::Known { blob, content }) => {
                // Hashed, not found by its blob name: it must be this place's layer.
                if !name.starts_with("blobs/") && content != diff_id {
                    return Err(malformed(format!(
                        "layer `{name}` is `{content}`, the config says `{diff_id}`"
                    )));
                }
                held(blob.clone())
            }
            Some(Entry::Compressed {
                diff_id: read,
                blob,
                path,
            }) => {
                if read != diff_id {
                    return Err(malformed(format!(
                        "layer `{name}` is `{read}`, the config says `{diff_id}`"
                    )));
                }
                // Docker 20.10's layout names layers by a v1 id: only now is the diff_id known.
                match known.get(diff_id) {
                    Some(descriptor) => held(descriptor.clone()),
                    None => Blob {
                        descriptor: blob.clone(),
                        source: BlobSource::File(path.clone()),
                    },
                }
            }
            Some(Entry::AsStored { blob, path }) => match known.get(diff_id) {
                Some(descriptor) => held(descriptor.clone()),
                None => Blob {
                    descriptor: blob.clone(),
                    source: BlobSource::File(path.clone()),
                },
            },
            Some(Entry::Document(_) | Entry::Link(_)) | None => {
                return Err(malformed(format!("layer `{name}` is missing")));
            }
        };
        layers.push(blob);
    }
    let manifest = image_manifest(&config_bytes, &config_digest, &layers);
    Ok(PreparedImage {
        platform: platform.clone(),
        config: Blob {
            descriptor: Descriptor {
                media_type: if manifest.media_type == media_type::DOCKER_MANIFEST {
                    media_type::DOCKER_CONFIG
                } else {
                    media_type::OCI_CONFIG
                }
                .to_owned(),
                size: config_bytes.len() as u64,
                digest: config_digest,
            },
            source: BlobSource::Memory(config_bytes),
        },
        layers,
        manifest,
        _spool: Some(spool),
    })
}

/// The image manifest over a config and its layers: Docker schema 2 when every layer is gzip
/// (what `docker push` writes, read by every client), OCI when one is zstd (schema 2 has no
/// zstd type). Field order is fixed, so the same blobs give the same manifest digest.
fn image_manifest(config: &[u8], config_digest: &str, layers: &[Blob]) -> ManifestDocument {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct Manifest<'a> {
        schema_version: u32,
        media_type: &'a str,
        config: Descriptor,
        layers: Vec<Descriptor>,
    }
    let gzip_only = layers.iter().all(|l| {
        l.descriptor.media_type == media_type::DOCKER_LAYER_GZIP
            || l.descriptor.media_type == media_type::OCI_LAYER_GZIP
    });
    let (manifest_type, config_type, gzip_type) = if gzip_only {
        (
            media_type::DOCKER_MANIFEST,
            media_type::DOCKER_CONFIG,
            media_type::DOCKER_LAYER_GZIP,
        )
    } else {
        (
            media_type::OCI_MANIFEST,
            media_type::OCI_CONFIG,
            media_type::OCI_LAYER_GZIP,
        )
    };
    let manifest = Manifest {
        schema_version: 2,
        media_type: manifest_type,
        config: Descriptor {
            media_type: config_type.to_owned(),
            size: config.len() as u64,
            digest: config_digest.to_owned(),
        },
        layers: layers
            .iter()
            .map(|l| {
                let mut descriptor = l.descriptor.clone();
                // The same gzip bytes under the type of the manifest's family.
                if descriptor.media_type == media_type::DOCKER_LAYER_GZIP
                    || descriptor.media_type == media_type::OCI_LAYER_GZIP
                {
                    gzip_type.clone_into(&mut descriptor.media_type);
                }
                descriptor
            })
            .collect(),
    };
    let bytes = serde_json::to_vec(&manifest).unwrap_or_default();
    ManifestDocument::new(bytes, manifest_type)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    #[test]
    fn configs_that_differ_only_in_cache_records_are_the_same_image() {
        let config = |cache: Option<&str>, created: &str| {
            let mut value = serde_json::json!({
                "architecture": "amd64",
                "os": "linux",
                "created": created,
                "rootfs": {"type": "layers", "diff_ids": ["sha256:1"]},
            });
            if let Some(cache) = cache {
                value[INLINE_CACHE_KEY] = serde_json::json!(cache);
            }
            serde_json::to_vec(&value).expect("json")
        };
        let t = "2025-01-01T00:00:00Z";
        assert!(same_image_but_cache_records(
            &config(Some("W3sib25lIjoxfV0="), t),
            &config(Some("W3sidHdvIjoyfV0="), t)
        ));
        assert!(!same_image_but_cache_records(
            &config(Some("W3sib25lIjoxfV0="), t),
            &config(Some("W3sib25lIjoxfV0="), "2025-01-02T00:00:00Z")
        ));
        assert!(!same_image_but_cache_records(
            &config(None, t),
            &config(Some("W3sib25lIjoxfV0="), t)
        ));
        assert!(same_image_but_cache_records(
            &config(None, t),
            &config(None, t)
        ));
    }

    /// An uncompressed layer tar holding one file.
    fn layer(content: &str) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        builder
            .append_data(&mut header, "file.txt", content.as_bytes())
            .expect("append");
        builder.into_inner().expect("tar")
    }

    fn digest(bytes: &[u8]) -> String {
        format!("sha256:{:x}", Sha256::digest(bytes))
    }

    fn config(architecture: &str, diff_ids: &[String]) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "architecture": architecture,
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }))
        .expect("json")
    }

    /// An export tar from (name, bytes) entries.
    fn export(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, bytes) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder
                .append_data(&mut header, name, &bytes[..])
                .expect("append");
        }
        builder.into_inner().expect("tar")
    }

    fn save_manifest(config: &str, layers: &[String]) -> Vec<u8> {
        serde_json::to_vec(
            &serde_json::json!([{"Config": config, "RepoTags": [], "Layers": layers}]),
        )
        .expect("json")
    }

    async fn prepare_export(
        platform: &str,
        tar: Vec<u8>,
        known: &KnownLayers,
        diff_ids: &[String],
    ) -> (Result<PreparedImage, Error>, tempfile::TempDir) {
        let temp = tempfile::tempdir().expect("tempdir");
        // Small chunks, as the Engine's stream delivers them.
        let chunks: Vec<Result<Bytes, Infallible>> = tar
            .chunks(1000)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        let stream = futures_util::stream::iter(chunks);
        let platform: Platform = platform.parse().expect("platform");
        let prepared = prepare(&platform, stream, known, diff_ids, temp.path()).await;
        (prepared, temp)
    }

    /// Docker 20.10's layout: layers named by v1 ids, uncompressed.
    fn legacy_export(layers: &[Vec<u8>], architecture: &str) -> (Vec<u8>, Vec<String>) {
        let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
        let config = config(architecture, &diff_ids);
        let config_name = format!("{}.json", &digest(&config)[7..]);
        let mut entries = vec![(config_name.clone(), config)];
        let mut names = Vec::new();
        for (i, bytes) in layers.iter().enumerate() {
            // What else the legacy layout holds per layer: neither is a layer.
            entries.push((format!("{i:064}/VERSION"), b"1.0".to_vec()));
            entries.push((format!("{i:064}/json"), br#"{"id":"v1"}"#.to_vec()));
            let name = format!("{i:064}/layer.tar");
            entries.push((name.clone(), bytes.clone()));
            names.push(name);
        }
        entries.push(("repositories".to_owned(), b"{}".to_vec()));
        entries.push((
            "manifest.json".to_owned(),
            save_manifest(&config_name, &names),
        ));
        (export(&entries), diff_ids)
    }

    #[tokio::test]
    async fn a_legacy_export_is_compressed_into_a_schema_2_image() {
        let layers = vec![layer("base"), layer("app")];
        let (tar, diff_ids) = legacy_export(&layers, "arm64");
        let (prepared, _temp) =
            prepare_export("linux/arm64", tar, &KnownLayers::default(), &diff_ids).await;
        let prepared = prepared.expect("prepared");
        assert_eq!(prepared.manifest.media_type, media_type::DOCKER_MANIFEST);
        assert_eq!(prepared.layers.len(), 2);
        for (blob, original) in prepared.layers.iter().zip(&layers) {
            let BlobSource::File(path) = &blob.source else {
                panic!("a new layer is uploaded from a file: {blob:?}");
            };
            let bytes = std::fs::read(path).expect("spooled");
            assert_eq!(digest(&bytes), blob.descriptor.digest);
            let mut decoded = Vec::new();
            flate2::read::GzDecoder::new(&bytes[..])
                .read_to_end(&mut decoded)
                .expect("gzip");
            assert_eq!(&decoded, original);
        }
        let manifest: serde_json::Value =
            serde_json::from_slice(&prepared.manifest.bytes).expect("json");
        assert_eq!(
            manifest["config"]["digest"],
            prepared.config.descriptor.digest
        );
        assert_eq!(
            manifest["layers"][1]["mediaType"],
            media_type::DOCKER_LAYER_GZIP
        );
    }

    #[tokio::test]
    async fn the_same_export_gives_the_same_manifest() {
        let (tar, diff_ids) = legacy_export(&[layer("base")], "amd64");
        let (first, _a) = prepare_export(
            "linux/amd64",
            tar.clone(),
            &KnownLayers::default(),
            &diff_ids,
        )
        .await;
        let (second, _b) =
            prepare_export("linux/amd64", tar, &KnownLayers::default(), &diff_ids).await;
        assert_eq!(
            first.expect("first").manifest.digest,
            second.expect("second").manifest.digest
        );
    }

    #[tokio::test]
    async fn layers_the_repository_holds_are_referenced_not_compressed() {
        let layers = vec![layer("base"), layer("app")];
        let (tar, diff_ids) = legacy_export(&layers, "amd64");
        let held = Descriptor {
            media_type: media_type::DOCKER_LAYER_GZIP.to_owned(),
            size: 42,
            digest: format!("sha256:{}", "b".repeat(64)),
        };
        let mut known = KnownLayers::default();
        known.insert(&diff_ids[0], held.clone());
        // One layer known: the other is compressed.
        let (prepared, _temp) = prepare_export("linux/amd64", tar.clone(), &known, &diff_ids).await;
        let prepared = prepared.expect("prepared");
        assert_eq!(prepared.layers[0].descriptor, held);
        assert_eq!(prepared.layers[0].source, BlobSource::Repository);
        assert!(matches!(prepared.layers[1].source, BlobSource::File(_)));
        // Both known: nothing is compressed, even in this layout.
        known.insert(
            &diff_ids[1],
            Descriptor {
                digest: format!("sha256:{}", "c".repeat(64)),
                ..held
            },
        );
        let (prepared, temp) = prepare_export("linux/amd64", tar, &known, &diff_ids).await;
        let prepared = prepared.expect("prepared");
        assert!(prepared
            .layers
            .iter()
            .all(|l| l.source == BlobSource::Repository));
        let spooled: Vec<_> = std::fs::read_dir(temp.path())
            .expect("temp")
            .flat_map(|d| std::fs::read_dir(d.expect("entry").path()).expect("spool"))
            .collect();
        assert!(spooled.is_empty(), "{spooled:?}");
    }

    #[tokio::test]
    async fn compressed_layers_of_the_containerd_store_go_as_they_are() {
        let raw = layer("stored compressed");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).expect("gzip");
        let compressed = gz.finish().expect("gzip");
        let config = config("amd64", &[digest(&raw)]);
        let config_name = format!("blobs/sha256/{}", &digest(&config)[7..]);
        let layer_name = format!("blobs/sha256/{}", &digest(&compressed)[7..]);
        let tar = export(&[
            (layer_name.clone(), compressed.clone()),
            (config_name.clone(), config),
            (
                "manifest.json".to_owned(),
                save_manifest(&config_name, &[layer_name]),
            ),
        ]);
        let (prepared, _temp) =
            prepare_export("linux/amd64", tar, &KnownLayers::default(), &[]).await;
        let prepared = prepared.expect("prepared");
        assert_eq!(prepared.layers[0].descriptor.digest, digest(&compressed));
        assert_eq!(prepared.layers[0].descriptor.size, compressed.len() as u64);
    }

    #[tokio::test]
    async fn an_image_for_another_platform_is_refused() {
        let (tar, diff_ids) = legacy_export(&[layer("base")], "amd64");
        let (prepared, _temp) =
            prepare_export("linux/arm64", tar, &KnownLayers::default(), &diff_ids).await;
        match prepared {
            Err(Error::PlatformMismatch(mismatch)) => assert_eq!(mismatch.found, "linux/amd64"),
            other => panic!("expected a platform mismatch, got {other:?}"),
        }
    }

    /// An export tar from entries that are files (`Ok`) or symbolic links (`Err(target)`,
    /// a target without a leading `/`): the property tests' builder.
    fn export_with_links(entries: &[(String, Result<Vec<u8>, String>)]) -> Vec<u8> {
        super::proptests::tar_of(entries)
    }

    /// Docker 20.10 writes a layer the image lists twice once, and the second `layer.tar` as a
    /// symbolic link to the first (issue 14, §1).
    #[tokio::test]
    async fn a_repeated_layer_written_as_a_link_is_used_at_each_place() {
        let empty = layer("");
        let app = layer("app");
        let diff_ids = vec![digest(&app), digest(&empty), digest(&empty)];
        let config = config("amd64", &diff_ids);
        let config_name = format!("{}.json", &digest(&config)[7..]);
        let names: Vec<String> = (0..3).map(|i| format!("{i:064}/layer.tar")).collect();
        let tar = export_with_links(&[
            (config_name.clone(), Ok(config)),
            (names[0].clone(), Ok(app)),
            (names[1].clone(), Ok(empty)),
            (names[2].clone(), Err(format!("../{:064}/layer.tar", 1))),
            (
                "manifest.json".to_owned(),
                Ok(save_manifest(&config_name, &names)),
            ),
        ]);
        let (prepared, _temp) =
            prepare_export("linux/amd64", tar, &KnownLayers::default(), &diff_ids).await;
        let prepared = prepared.expect("prepared");
        assert_eq!(prepared.layers.len(), 3);
        assert_eq!(prepared.layers[1], prepared.layers[2]);
        assert_ne!(prepared.layers[0], prepared.layers[1]);
        let manifest: serde_json::Value =
            serde_json::from_slice(&prepared.manifest.bytes).expect("json");
        assert_eq!(manifest["layers"].as_array().expect("layers").len(), 3);
    }

    /// An OCI layout holds a blob once however often the image lists it.
    #[tokio::test]
    async fn a_blob_listed_twice_in_an_oci_layout_is_used_twice() {
        let empty = layer("");
        let diff_ids = vec![digest(&empty), digest(&empty)];
        let config = config("amd64", &diff_ids);
        let config_name = format!("blobs/sha256/{}", &digest(&config)[7..]);
        let layer_name = format!("blobs/sha256/{}", &digest(&empty)[7..]);
        let tar = export(&[
            (layer_name.clone(), empty),
            (config_name.clone(), config),
            (
                "manifest.json".to_owned(),
                save_manifest(&config_name, &[layer_name.clone(), layer_name]),
            ),
        ]);
        for known in [KnownLayers::default(), {
            let mut known = KnownLayers::default();
            known.insert(
                &diff_ids[0],
                Descriptor {
                    media_type: media_type::DOCKER_LAYER_GZIP.to_owned(),
                    size: 1,
                    digest: format!("sha256:{}", "e".repeat(64)),
                },
            );
            known
        }] {
            let (prepared, _temp) =
                prepare_export("linux/amd64", tar.clone(), &known, &diff_ids).await;
            let prepared = prepared.expect("prepared");
            assert_eq!(prepared.layers.len(), 2);
            assert_eq!(prepared.layers[0], prepared.layers[1]);
        }
    }

    #[rstest::rstest]
    #[case::a_loop(&[("a/layer.tar", "../b/layer.tar"), ("b/layer.tar", "../a/layer.tar")])]
    #[case::out_of_the_export(&[("a/layer.tar", "../../etc/passwd")])]
    #[case::to_nothing(&[("a/layer.tar", "../c/layer.tar")])]
    #[case::to_a_document(&[("a/layer.tar", "../manifest.json")])]
    #[tokio::test]
    async fn a_link_that_names_no_layer_is_a_missing_layer(#[case] links: &[(&str, &str)]) {
        let diff_ids = vec![digest(&layer("x"))];
        let config = config("amd64", &diff_ids);
        let config_name = format!("{}.json", &digest(&config)[7..]);
        let mut entries: Vec<(String, Result<Vec<u8>, String>)> = links
            .iter()
            .map(|(name, target)| ((*name).to_owned(), Err((*target).to_owned())))
            .collect();
        entries.push((config_name.clone(), Ok(config)));
        entries.push((
            "manifest.json".to_owned(),
            Ok(save_manifest(&config_name, &["a/layer.tar".to_owned()])),
        ));
        let (prepared, _temp) = prepare_export(
            "linux/amd64",
            export_with_links(&entries),
            &KnownLayers::default(),
            &diff_ids,
        )
        .await;
        match prepared {
            Err(Error::Malformed { reason, .. }) => {
                assert!(reason.contains("`a/layer.tar` is missing"), "{reason}");
            }
            other => panic!("expected a missing layer, got {other:?}"),
        }
    }

    /// A blob name says what its bytes are: a link to another blob is not that blob.
    #[tokio::test]
    async fn a_blob_name_that_is_not_its_content_is_refused() {
        let (one, two) = (layer("one"), layer("two"));
        let diff_ids = vec![digest(&one)];
        let config = config("amd64", &diff_ids);
        let config_name = format!("blobs/sha256/{}", &digest(&config)[7..]);
        let one_name = format!("blobs/sha256/{}", &digest(&one)[7..]);
        let two_name = format!("blobs/sha256/{}", &digest(&two)[7..]);
        let tar = export_with_links(&[
            (two_name.clone(), Ok(two)),
            (
                one_name.clone(),
                Err(format!("./{}", &digest(&layer("two"))[7..])),
            ),
            (config_name.clone(), Ok(config)),
            (
                "manifest.json".to_owned(),
                Ok(save_manifest(&config_name, &[one_name])),
            ),
        ]);
        let (prepared, _temp) =
            prepare_export("linux/amd64", tar, &KnownLayers::default(), &diff_ids).await;
        match prepared {
            Err(Error::Malformed { reason, .. }) => assert!(reason.contains("holds"), "{reason}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
    }

    #[rstest::rstest]
    #[case("a/layer.tar", "../b/layer.tar", true, Some("b/layer.tar"))]
    #[case("a/layer.tar", "b/layer.tar", false, Some("b/layer.tar"))]
    #[case("blobs/sha256/x", "./y", true, Some("blobs/sha256/y"))]
    #[case("blobs/sha256/x", "/blobs/sha256/y", true, Some("blobs/sha256/y"))]
    #[case("a/layer.tar", "../../x", true, None)]
    fn links_are_resolved_from_where_they_are(
        #[case] name: &str,
        #[case] target: &str,
        #[case] symbolic: bool,
        #[case] expected: Option<&str>,
    ) {
        assert_eq!(link_target(name, target, symbolic).as_deref(), expected);
    }
}

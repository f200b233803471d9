//! The Engine's image export (`GET /images/{name}/get`, the `docker save` format) turned into
//! what a registry needs: the image config, every layer as a compressed blob, and the image
//! manifest that names them. Knows no server: the export arrives as a byte stream, what the
//! repository already holds arrives as [`KnownLayers`], and the result is handed to `registry`.
//!
//! Three layouts reach us (TESTBED.md): Docker 20.10's legacy one (`manifest.json`,
//! `<id>/layer.tar`, uncompressed), Docker 25+'s classic store (an OCI layout whose layer blobs
//! are uncompressed tars named by their `diff_id`) and the containerd image store (an OCI layout
//! with the layers compressed as stored). Every one carries `manifest.json`, which names the
//! config and the layers in order; that is what we read ([`layout`]). Layers are read once, as
//! they stream by ([`entries`]): a layer the repository already holds is skipped unread, a
//! compressed one is copied as it is, an uncompressed one is compressed deterministically on
//! the way to a temporary file. Memory stays bounded whatever the layer size.
//!
//! The documents themselves (descriptors, manifests, configs, media types) are [`crate::oci`]'s.

mod assemble;
mod cache_records;
pub mod compress;
mod entries;
mod error;
mod known_layers;
mod layout;
mod links;
mod manifest;
mod prepared;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::io;
use std::path::Path;

use bytes::Bytes;
use futures_util::{Stream, TryStreamExt};

pub use cache_records::{same_image_but_cache_records, INLINE_CACHE_KEY};
pub use error::Error;
pub use known_layers::KnownLayers;
pub use prepared::{Blob, BlobSource, PreparedImage};

use crate::platform::Platform;

/// Copy buffer for layers.
const CHUNK: usize = 256 * 1024;

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
    let entries = tokio::task::spawn_blocking(move || {
        entries::read_entries(bridge, &dir, &lookup, all_known)
    })
    .await
    .map_err(|e| Error::Io {
        what: format!("reading the image export of `{platform}`"),
        source: io::Error::other(e),
    })?
    .map_err(io_error(format!(
        "reading the image export of `{platform}`"
    )))?;
    assemble::assemble(platform, &entries, known, spool)
}

//! What the export reader hands to the registry: one platform's image as blobs (config,
//! layers) with where each one's bytes are, and the manifest that names them.

use std::path::PathBuf;

use bytes::Bytes;

use crate::oci::{Descriptor, ManifestDocument};
use crate::platform::Platform;

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
    pub(super) _spool: Option<tempfile::TempDir>,
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

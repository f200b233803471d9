//! The content descriptor, as an image manifest names its config and layers
//! (<https://github.com/opencontainers/image-spec/blob/main/descriptor.md>).

use serde::{Deserialize, Serialize};

use super::Digest;

/// A blob as a manifest names it. Fields serialise in this order (`mediaType`, `size`,
/// `digest`), which the manifests we build depend on: the same blobs give the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    /// What the blob is.
    pub media_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// The digest of its bytes.
    pub digest: Digest,
}

//! A manifest or index as stored: its exact bytes, their digest and its media type. A document
//! we did not build is kept as read and never serialised again, so its digest stays the one
//! the registry holds.

use bytes::Bytes;

use super::Digest;

/// A manifest or index document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestDocument {
    /// The exact bytes pushed or read.
    pub bytes: Bytes,
    /// The digest of the bytes.
    pub digest: Digest,
    /// Docker schema 2 or OCI, manifest or index.
    pub media_type: String,
}

impl ManifestDocument {
    /// A document and its digest.
    #[must_use]
    pub fn new(bytes: impl Into<Bytes>, media_type: &str) -> ManifestDocument {
        let bytes = bytes.into();
        ManifestDocument {
            digest: Digest::of(&bytes),
            bytes,
            media_type: media_type.to_owned(),
        }
    }
}

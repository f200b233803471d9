//! The layer blobs a repository already holds, so that a layer is referenced instead of
//! compressed and uploaded again.

use std::collections::HashMap;

use crate::oci::{Descriptor, Digest};

/// Layer blobs the repository already holds, found by the layer's `diff_id` (from the configs
/// of images already pushed) or by the blob's own digest.
#[derive(Debug, Clone, Default)]
pub struct KnownLayers {
    by_key: HashMap<Digest, Descriptor>,
}

impl KnownLayers {
    /// Records that the repository holds `blob`, the compressed form of layer `diff_id`.
    pub fn insert(&mut self, diff_id: Digest, blob: Descriptor) {
        self.by_key
            .entry(blob.digest.clone())
            .or_insert_with(|| blob.clone());
        self.by_key.entry(diff_id).or_insert(blob);
    }

    /// Adds what `other` knows (the first blob recorded for a key stays).
    pub fn merge(&mut self, other: KnownLayers) {
        for (key, blob) in other.by_key {
            self.by_key.entry(key).or_insert(blob);
        }
    }

    /// The blob for a `diff_id` or a blob digest (by its text: the Engine's `diff_id`s are
    /// strings).
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

//! The image manifest: a config and layers
//! (<https://github.com/opencontainers/image-spec/blob/main/manifest.md>, Docker's image
//! manifest v2 schema 2, which has the same shape).

use serde::{Deserialize, Serialize};

use super::Descriptor;

/// An image manifest. Fields serialise in this order, which the manifests we build depend on;
/// what we read needs only `config` and `layers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    /// Always 2.
    #[serde(default)]
    pub schema_version: u32,
    /// Docker schema 2 or OCI; an OCI manifest may leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The image config blob.
    pub config: Descriptor,
    /// The layer blobs, in order.
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

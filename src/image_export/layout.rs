//! How the three export layouts name what they hold. Every one carries `manifest.json` (the
//! `docker save` index), which names the config and the layers in order. OCI layouts (Docker
//! 25+'s classic store, the containerd store) name blobs `blobs/sha256/<hex>` by their digest;
//! Docker 20.10 names the config `<hex>.json` and each layer `<v1 id>/layer.tar`, which says
//! nothing of its content.

use serde::Deserialize;

/// Where an OCI layout keeps its blobs.
const BLOBS: &str = "blobs/sha256/";

/// `manifest.json` of a `docker save` archive: one entry per image.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct SaveManifest {
    /// The config's entry name.
    pub config: String,
    /// The layers' entry names, in order.
    pub layers: Vec<String>,
}

/// The hex digest an OCI layout's blob name gives (`blobs/sha256/<hex>`).
pub(super) fn blob_hex(name: &str) -> Option<&str> {
    name.strip_prefix(BLOBS)
}

/// Whether an entry is in an OCI layout's blob folder.
pub(super) fn is_blob(name: &str) -> bool {
    name.starts_with("blobs/")
}

/// Whether an entry may be a layer: a blob, or a legacy `<v1 id>/layer.tar`. The rest
/// (`VERSION`, `repositories`, `oci-layout`) matters only when it is JSON.
pub(super) fn may_be_layer(name: &str) -> bool {
    is_blob(name) || name.ends_with("/layer.tar")
}

/// The hex digest a config's name gives: `blobs/sha256/<hex>`, or `<hex>.json` (Docker 20.10).
pub(super) fn config_hex(name: &str) -> Option<&str> {
    blob_hex(name).or_else(|| {
        name.strip_suffix(".json")
            .filter(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
    })
}

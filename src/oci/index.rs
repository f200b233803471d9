//! The image index (a Docker manifest list has the same shape) and which of its entries hold an
//! image: <https://github.com/opencontainers/image-spec/blob/main/image-index.md>. One model
//! for the indexes we build and those we read.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Digest;
use crate::platform::Platform;

/// An image index. Fields serialise in this order, which the indexes we build depend on: the
/// same children give the same bytes, so a re-run computes the digest the tags already hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    /// Always 2.
    #[serde(default)]
    pub schema_version: u32,
    /// An OCI index or a Docker manifest list; an OCI index may leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// The children, in order.
    pub manifests: Vec<IndexEntry>,
    /// Written only when there are any (the Docker manifest list has none in its spec).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// One child of an index. Fields serialise in this order (`mediaType`, `digest`, `size`,
/// `platform`); what we read needs only `digest` and `platform`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IndexEntry {
    /// The child manifest's media type.
    #[serde(default)]
    pub media_type: String,
    /// The child manifest's digest.
    pub digest: Digest,
    /// The child manifest's size in bytes.
    #[serde(default)]
    pub size: u64,
    /// The platform the child is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<IndexPlatform>,
}

/// The platform of an index entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexPlatform {
    /// The GOARCH.
    pub architecture: String,
    /// `linux`.
    pub os: String,
    /// `v7`, `v8`...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl From<&Platform> for IndexPlatform {
    fn from(platform: &Platform) -> IndexPlatform {
        IndexPlatform {
            architecture: platform.architecture.clone(),
            os: platform.os.clone(),
            variant: platform.variant.clone(),
        }
    }
}

impl IndexEntry {
    /// Whether the entry is an attestation manifest (`unknown/unknown`, what BuildKit adds for
    /// provenance and SBOMs), which holds no image.
    #[must_use]
    pub fn is_attestation(&self) -> bool {
        self.platform.as_ref().is_some_and(|p| p.os == "unknown")
    }

    /// Whether the entry is for `platform`, after containerd's normalisation.
    #[must_use]
    pub fn is_for(&self, platform: &Platform) -> bool {
        self.platform
            .as_ref()
            .is_some_and(|p| platform.is_satisfied_by(&p.os, &p.architecture, p.variant.as_deref()))
    }
}

impl ImageIndex {
    /// The entries that hold an image: attestations left out.
    pub fn images(&self) -> impl Iterator<Item = &IndexEntry> {
        self.manifests
            .iter()
            .filter(|entry| !entry.is_attestation())
    }

    /// The first entry for `platform`.
    #[must_use]
    pub fn image_for(&self, platform: &Platform) -> Option<&IndexEntry> {
        self.manifests.iter().find(|entry| entry.is_for(platform))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(platform: Option<(&str, &str, Option<&str>)>) -> IndexEntry {
        IndexEntry {
            media_type: super::super::media_type::OCI_MANIFEST.to_owned(),
            digest: Digest::of(format!("{platform:?}").as_bytes()),
            size: 1,
            platform: platform.map(|(os, architecture, variant)| IndexPlatform {
                architecture: architecture.to_owned(),
                os: os.to_owned(),
                variant: variant.map(str::to_owned),
            }),
        }
    }

    fn index(entries: Vec<IndexEntry>) -> ImageIndex {
        ImageIndex {
            schema_version: 2,
            media_type: None,
            manifests: entries,
            annotations: BTreeMap::new(),
        }
    }

    #[test]
    fn attestations_hold_no_image() {
        let amd64 = entry(Some(("linux", "amd64", None)));
        let unplatformed = entry(None);
        let index = index(vec![
            amd64.clone(),
            entry(Some(("unknown", "unknown", None))),
            unplatformed.clone(),
        ]);
        assert_eq!(index.images().collect::<Vec<_>>(), [&amd64, &unplatformed]);
    }

    #[test]
    fn the_entry_for_a_platform_is_found_after_normalisation() {
        let arm = entry(Some(("linux", "arm", Some("v7"))));
        let index = index(vec![entry(Some(("linux", "amd64", None))), arm.clone()]);
        let platform: Platform = "linux/arm".parse().expect("platform");
        assert_eq!(index.image_for(&platform), Some(&arm));
        let platform: Platform = "linux/arm64".parse().expect("platform");
        assert_eq!(index.image_for(&platform), None);
    }

    #[test]
    fn an_index_reads_what_it_needs_and_ignores_the_rest() {
        let digest = Digest::of(b"child");
        let json = format!(
            r#"{{"manifests":[{{"digest":"{digest}","platform":{{"os":"linux","architecture":"amd64","os.features":["x"]}},"artifactType":"a"}}],"annotations":{{"a":"b"}}}}"#
        );
        let index: ImageIndex = serde_json::from_str(&json).expect("index");
        assert_eq!(index.manifests[0].digest, digest);
        assert_eq!(index.annotations["a"], "b");
        assert!(
            serde_json::from_str::<ImageIndex>(r#"{"manifests":[{"digest":"latest"}]}"#).is_err()
        );
    }
}

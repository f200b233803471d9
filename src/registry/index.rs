//! The multi-arch index over the platform images: a Docker manifest list when every child is a
//! Docker manifest (what `docker manifest` and buildx's docker exporter write), an OCI index
//! otherwise, and always when it carries annotations (the Docker manifest list has none in its
//! spec). The same children in the same order give the same bytes, so a re-run computes the
//! digest the tags already hold.
//! Spec: <https://github.com/opencontainers/image-spec/blob/main/image-index.md>.

use std::collections::BTreeMap;

use crate::oci::{media_type, Digest, ImageIndex, IndexEntry, ManifestDocument};
use crate::platform::Platform;

/// One entry of the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexChild {
    /// The platform, as the index names it.
    pub platform: Platform,
    /// The child manifest's digest.
    pub digest: Digest,
    /// The child manifest's media type.
    pub media_type: String,
    /// The child manifest's size in bytes.
    pub size: u64,
}

impl IndexChild {
    /// The entry for a manifest document.
    #[must_use]
    pub fn new(platform: &Platform, manifest: &ManifestDocument) -> IndexChild {
        IndexChild {
            platform: platform.clone(),
            digest: manifest.digest.clone(),
            media_type: manifest.media_type.clone(),
            size: manifest.bytes.len() as u64,
        }
    }
}

/// The index document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Index {
    /// Its bytes, digest and media type.
    pub document: ManifestDocument,
    /// Its children, in order.
    pub children: Vec<IndexChild>,
}

impl Index {
    /// The index over `children`, in their order.
    #[must_use]
    pub fn new(children: Vec<IndexChild>) -> Index {
        Index::with_annotations(children, &BTreeMap::new())
    }

    /// The index over `children` with `annotations` (an OCI index when there are any).
    #[must_use]
    pub fn with_annotations(
        children: Vec<IndexChild>,
        annotations: &BTreeMap<String, String>,
    ) -> Index {
        let media_type = if annotations.is_empty()
            && children
                .iter()
                .all(|c| c.media_type == media_type::DOCKER_MANIFEST)
        {
            media_type::DOCKER_MANIFEST_LIST
        } else {
            media_type::OCI_INDEX
        };
        let json = ImageIndex {
            schema_version: 2,
            media_type: Some(media_type.to_owned()),
            manifests: children
                .iter()
                .map(|c| IndexEntry {
                    media_type: c.media_type.clone(),
                    digest: c.digest.clone(),
                    size: c.size,
                    platform: Some((&c.platform).into()),
                })
                .collect(),
            annotations: annotations.clone(),
        };
        let bytes = serde_json::to_vec(&json).unwrap_or_default();
        Index {
            document: ManifestDocument::new(bytes, media_type),
            children,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(platform: &str, media: &str) -> IndexChild {
        IndexChild {
            platform: platform.parse().expect("platform"),
            digest: Digest::of(b"child"),
            media_type: media.to_owned(),
            size: 942,
        }
    }

    #[test]
    fn docker_children_make_a_manifest_list_and_the_bytes_are_stable() {
        let index = Index::new(vec![
            child("linux/amd64", media_type::DOCKER_MANIFEST),
            child("linux/arm/v7", media_type::DOCKER_MANIFEST),
        ]);
        assert_eq!(index.document.media_type, media_type::DOCKER_MANIFEST_LIST);
        let again = Index::new(index.children.clone());
        assert_eq!(again.document.digest, index.document.digest);
        let json: serde_json::Value = serde_json::from_slice(&index.document.bytes).expect("json");
        assert_eq!(json["manifests"][1]["platform"]["variant"], "v7");
        assert!(json["manifests"][0]["platform"].get("variant").is_none());
    }

    /// The bytes are pinned: a change here changes the digest of every index a re-run
    /// computes, and `skip-unchanged` and immutable tags then see another image.
    #[test]
    fn the_index_bytes_are_the_ones_pushed_before() {
        let mut arm = child("linux/arm/v7", media_type::DOCKER_MANIFEST);
        arm.digest = format!("sha256:{}", "a".repeat(64))
            .parse()
            .expect("digest");
        let index = Index::new(vec![arm]);
        assert_eq!(
            std::str::from_utf8(&index.document.bytes).expect("utf-8"),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[{"mediaType":"application/vnd.docker.distribution.manifest.v2+json","digest":"sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","size":942,"platform":{"architecture":"arm","os":"linux","variant":"v7"}}]}"#
        );
    }

    #[test]
    fn annotations_make_an_oci_index_that_carries_them() {
        let children = vec![
            child("linux/amd64", media_type::DOCKER_MANIFEST),
            child("linux/arm64", media_type::DOCKER_MANIFEST),
        ];
        let annotations = BTreeMap::from([("a.b".to_owned(), "c".to_owned())]);
        let index = Index::with_annotations(children.clone(), &annotations);
        assert_eq!(index.document.media_type, media_type::OCI_INDEX);
        let json: serde_json::Value = serde_json::from_slice(&index.document.bytes).expect("json");
        assert_eq!(json["annotations"]["a.b"], "c");
        assert_eq!(
            json["manifests"][0]["mediaType"],
            media_type::DOCKER_MANIFEST
        );
        let plain = Index::new(children);
        let json: serde_json::Value = serde_json::from_slice(&plain.document.bytes).expect("json");
        assert!(json.get("annotations").is_none());
    }

    #[test]
    fn one_oci_child_makes_an_oci_index() {
        let index = Index::new(vec![
            child("linux/amd64", media_type::DOCKER_MANIFEST),
            child("linux/arm64", media_type::OCI_MANIFEST),
        ]);
        assert_eq!(index.document.media_type, media_type::OCI_INDEX);
    }
}

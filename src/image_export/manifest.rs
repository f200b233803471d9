//! The image manifest we build over a config and its layers.

use super::Blob;
use crate::oci::{media_type, Descriptor, Digest, ImageManifest, ManifestDocument};

/// The image manifest over a config and its layers: Docker schema 2 when every layer is gzip
/// (what `docker push` writes, read by every client), OCI when one is zstd (schema 2 has no
/// zstd type). Field order is fixed, so the same blobs give the same manifest digest.
pub(super) fn image_manifest(
    config: &[u8],
    config_digest: &Digest,
    layers: &[Blob],
) -> ManifestDocument {
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
    let manifest = ImageManifest {
        schema_version: 2,
        media_type: Some(manifest_type.to_owned()),
        config: Descriptor {
            media_type: config_type.to_owned(),
            size: config.len() as u64,
            digest: config_digest.clone(),
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
    use crate::image_export::BlobSource;

    /// The bytes are pinned: a change here changes the digest of every image a re-run
    /// builds, and the repository's image would no longer stand for it.
    #[test]
    fn the_manifest_bytes_are_the_ones_pushed_before() {
        let layer = Blob {
            descriptor: Descriptor {
                media_type: media_type::OCI_LAYER_GZIP.to_owned(),
                size: 7,
                digest: format!("sha256:{}", "1".repeat(64))
                    .parse()
                    .expect("digest"),
            },
            source: BlobSource::Repository,
        };
        let config_digest: Digest = format!("sha256:{}", "c".repeat(64))
            .parse()
            .expect("digest");
        let manifest = image_manifest(b"{}", &config_digest, &[layer]);
        assert_eq!(manifest.media_type, media_type::DOCKER_MANIFEST);
        assert_eq!(
            std::str::from_utf8(&manifest.bytes).expect("utf-8"),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":7,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}]}"#
        );
    }
}

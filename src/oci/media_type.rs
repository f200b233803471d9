//! Media types of the documents and blobs we read and write
//! (<https://github.com/opencontainers/image-spec/blob/main/media-types.md>, Docker's image
//! manifest v2 schema 2).

/// Docker's manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest (schema 2).
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker's image config.
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
/// Docker's gzip layer.
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image config.
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// OCI gzip layer.
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI zstd layer.
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// Every manifest type we ask a registry for.
pub const MANIFESTS: &[&str] = &[
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
];

/// Whether a manifest media type is an index (OCI index or Docker manifest list).
#[must_use]
pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_MANIFEST_LIST
}

/// The `mediaType` a manifest document declares; an OCI document may leave it out, then
/// `manifests` makes it an index.
#[must_use]
pub fn of_manifest(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        media_type: Option<String>,
        manifests: Option<serde::de::IgnoredAny>,
    }
    match serde_json::from_slice::<Typed>(bytes) {
        Ok(Typed {
            media_type: Some(t),
            ..
        }) => t,
        Ok(Typed {
            manifests: Some(_), ..
        }) => OCI_INDEX.to_owned(),
        _ => OCI_MANIFEST.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_declared_media_types() {
        assert_eq!(
            of_manifest(br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#),
            DOCKER_MANIFEST
        );
        assert_eq!(
            of_manifest(br#"{"schemaVersion":2,"manifests":[]}"#),
            OCI_INDEX
        );
        assert_eq!(
            of_manifest(br#"{"schemaVersion":2,"layers":[]}"#),
            OCI_MANIFEST
        );
    }
}

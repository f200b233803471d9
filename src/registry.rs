//! The OCI distribution API: reads back each pushed platform image, checks its platform, and
//! pushes the multi-arch index. The only user of oci-client.
//!
//! A child pushed by a containerd-store daemon (Docker 29) is itself an index with the image
//! and `unknown/unknown` attestation entries: we take its manifest for the requested platform.
//! Specs: <https://github.com/opencontainers/image-spec/blob/main/image-index.md>,
//! <https://github.com/opencontainers/distribution-spec/blob/main/spec.md>.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::platform::Platform;

/// Docker's manifest list.
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// Docker's image manifest.
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// OCI image index.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

const MANIFEST_TYPES: &[&str] = &[
    DOCKER_MANIFEST,
    OCI_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
];

/// A registry failure; callers branch on a platform mismatch.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pushed image is not for the platform that was asked.
    #[error("the image pushed for `{wanted}` at `{digest}` says it is `{found}`: the Dockerfile pins another platform (check `FROM --platform=`)")]
    PlatformMismatch {
        /// The requested platform.
        wanted: Platform,
        /// What the image config says.
        found: String,
        /// The child manifest's digest.
        digest: String,
    },
    /// A registry call failed.
    #[error("{action} on `{registry}` failed")]
    Api {
        /// What we were doing.
        action: String,
        /// The registry host.
        registry: String,
        /// The cause.
        source: oci_client::errors::OciDistributionError,
    },
    /// The registry returned a document we cannot read.
    #[error("{what} is not a valid manifest: {reason}")]
    Malformed {
        /// Which document.
        what: String,
        /// Why.
        reason: String,
    },
}

/// A platform's image manifest, resolved and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformManifest {
    /// The requested platform.
    pub platform: Platform,
    /// The manifest digest the index points at.
    pub digest: String,
    /// Its media type.
    pub media_type: String,
    /// Its size in bytes.
    pub size: i64,
    /// Config and layers, compressed, as stored in the registry (bytes).
    pub content_size: i64,
}

/// The pushed index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedIndex {
    /// `sha256:` of the index document.
    pub digest: String,
    /// Docker manifest list or OCI index.
    pub media_type: String,
    /// Every `<registry>/<repository>:<tag>` it was pushed under.
    pub references: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexDocument<'a> {
    schema_version: u32,
    media_type: &'a str,
    manifests: Vec<IndexEntry<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry<'a> {
    media_type: &'a str,
    digest: &'a str,
    size: i64,
    platform: IndexPlatform<'a>,
}

#[derive(Serialize)]
struct IndexPlatform<'a> {
    architecture: &'a str,
    os: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    variant: Option<&'a str>,
}

/// Whether a registry host is on loopback, where plain HTTP is used.
#[must_use]
pub fn is_loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with(']') => {
            name
        }
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name == "localhost"
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A registry client for one repository.
pub struct Registry {
    client: Client,
    auth: RegistryAuth,
    host: String,
    repository: String,
}

impl Registry {
    /// A client for `host/repository` with basic credentials; plain HTTP only on loopback.
    #[must_use]
    pub fn new(host: &str, repository: &str, username: &str, password: &str) -> Registry {
        let protocol = if is_loopback(host) {
            ClientProtocol::HttpsExcept(vec![host.to_owned()])
        } else {
            ClientProtocol::Https
        };
        Registry {
            client: Client::new(ClientConfig {
                protocol,
                ..ClientConfig::default()
            }),
            auth: RegistryAuth::Basic(username.to_owned(), password.to_owned()),
            host: host.to_owned(),
            repository: repository.to_owned(),
        }
    }

    fn api_error(
        &self,
        action: String,
    ) -> impl FnOnce(oci_client::errors::OciDistributionError) -> Error + '_ {
        move |source| Error::Api {
            action,
            registry: self.host.clone(),
            source,
        }
    }

    fn by_digest(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.host.clone(),
            self.repository.clone(),
            digest.to_owned(),
        )
    }

    /// Reads back what was pushed for a platform at `digest`; flattens a child index to its
    /// manifest for the platform, and checks the image config names that platform.
    pub async fn resolve_platform_manifest(
        &self,
        platform: &Platform,
        digest: &str,
    ) -> Result<PlatformManifest, Error> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(&self.by_digest(digest), &self.auth, MANIFEST_TYPES)
            .await
            .map_err(self.api_error(format!("reading the `{platform}` manifest `{digest}`")))?;
        let media_type = media_type_of(&bytes);
        let (bytes, digest, media_type) = if media_type == OCI_INDEX
            || media_type == DOCKER_MANIFEST_LIST
        {
            let index: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
                    what: format!("the `{platform}` index `{digest}`"),
                    reason: e.to_string(),
                })?;
            let entry = index
                .manifests()
                .iter()
                .find(|m| {
                    m.platform().as_ref().is_some_and(|p| {
                        platform.is_satisfied_by(
                            &p.os().to_string(),
                            &p.architecture().to_string(),
                            p.variant().as_deref(),
                        )
                    })
                })
                .ok_or_else(|| Error::PlatformMismatch {
                    wanted: platform.clone(),
                    found: "an index without that platform".to_owned(),
                    digest: digest.clone(),
                })?;
            let child = entry.digest().to_string();
            let (bytes, child) = self
                .client
                .pull_manifest_raw(&self.by_digest(&child), &self.auth, MANIFEST_TYPES)
                .await
                .map_err(self.api_error(format!("reading the `{platform}` manifest `{child}`")))?;
            let media_type = media_type_of(&bytes);
            (bytes, child, media_type)
        } else {
            (bytes, digest, media_type)
        };
        let manifest: ImageManifest =
            serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
                what: format!("the `{platform}` manifest `{digest}`"),
                reason: e.to_string(),
            })?;
        let config = manifest.config();
        let descriptor = OciDescriptor {
            media_type: config.media_type().to_string(),
            digest: config.digest().to_string(),
            size: i64::try_from(config.size()).unwrap_or(i64::MAX),
            ..OciDescriptor::default()
        };
        let mut config_bytes = Vec::new();
        self.client
            .pull_blob(&self.by_digest(&digest), &descriptor, &mut config_bytes)
            .await
            .map_err(self.api_error(format!("reading the `{platform}` image config")))?;
        let image_config: ImageConfiguration =
            serde_json::from_slice(&config_bytes).map_err(|e| Error::Malformed {
                what: format!("the `{platform}` image config"),
                reason: e.to_string(),
            })?;
        let (os, arch, variant) = (
            image_config.os().to_string(),
            image_config.architecture().to_string(),
            image_config.variant().clone(),
        );
        if !platform.is_satisfied_by(&os, &arch, variant.as_deref()) {
            return Err(Error::PlatformMismatch {
                wanted: platform.clone(),
                found: [Some(os), Some(arch), variant]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join("/"),
                digest,
            });
        }
        let content_size = i64::try_from(
            config.size()
                + manifest
                    .layers()
                    .iter()
                    .map(oci_spec::image::Descriptor::size)
                    .sum::<u64>(),
        )
        .unwrap_or(i64::MAX);
        Ok(PlatformManifest {
            platform: platform.clone(),
            digest,
            media_type,
            size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
            content_size,
        })
    }

    /// Pushes one index over the given manifests under every tag. A Docker manifest list when
    /// every child is a Docker manifest, an OCI index otherwise. The same children give the
    /// same bytes, hence the same digest on a re-run.
    pub async fn push_index(
        &self,
        manifests: &[PlatformManifest],
        tags: &[String],
    ) -> Result<PushedIndex, Error> {
        let media_type = if manifests.iter().all(|m| m.media_type == DOCKER_MANIFEST) {
            DOCKER_MANIFEST_LIST
        } else {
            OCI_INDEX
        };
        let document = IndexDocument {
            schema_version: 2,
            media_type,
            manifests: manifests
                .iter()
                .map(|m| IndexEntry {
                    media_type: &m.media_type,
                    digest: &m.digest,
                    size: m.size,
                    platform: IndexPlatform {
                        architecture: &m.platform.architecture,
                        os: &m.platform.os,
                        variant: m.platform.variant.as_deref(),
                    },
                })
                .collect(),
        };
        let body = serde_json::to_vec(&document).map_err(|e| Error::Malformed {
            what: "the index we built".to_owned(),
            reason: e.to_string(),
        })?;
        let digest = format!("sha256:{:x}", Sha256::digest(&body));
        let mut references = Vec::new();
        for tag in tags {
            let reference =
                Reference::with_tag(self.host.clone(), self.repository.clone(), tag.clone());
            self.client
                .auth(&reference, &self.auth, RegistryOperation::Push)
                .await
                .map_err(self.api_error(format!("authenticating to push `{tag}`")))?;
            self.client
                .push_manifest_raw(
                    &reference,
                    body.clone(),
                    http::HeaderValue::from_static(media_type),
                )
                .await
                .map_err(self.api_error(format!("pushing the index under `{tag}`")))?;
            references.push(format!("{}/{}:{tag}", self.host, self.repository));
        }
        Ok(PushedIndex {
            digest,
            media_type: media_type.to_owned(),
            references,
        })
    }
}

/// The `mediaType` a manifest document declares (Docker's always do; an OCI manifest
/// without one is an OCI manifest).
fn media_type_of(bytes: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Typed {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
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
    use rstest::rstest;

    #[rstest]
    #[case("127.0.0.1:5000", true)]
    #[case("localhost", true)]
    #[case("localhost:5000", true)]
    #[case("[::1]:5000", true)]
    #[case("127.1.2.3", true)]
    #[case("123456789012.dkr.ecr.us-east-1.amazonaws.com", false)]
    #[case("10.0.0.1:5000", false)]
    fn plain_http_only_on_loopback(#[case] host: &str, #[case] loopback: bool) {
        assert_eq!(is_loopback(host), loopback);
    }

    #[test]
    fn reads_declared_media_types() {
        assert_eq!(
            media_type_of(
                br#"{"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#
            ),
            DOCKER_MANIFEST
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"manifests":[]}"#),
            OCI_INDEX
        );
        assert_eq!(
            media_type_of(br#"{"schemaVersion":2,"layers":[]}"#),
            OCI_MANIFEST
        );
    }
}

//! How an Engine resolves an image a Dockerfile names: a local image of the platform first,
//! else the registry's digest through the Engine. It never talks to a registry itself.

use super::{is_transport, Engine, Error, RegistryLogin};
use crate::platform::Platform;

/// How the Engine resolves an image a Dockerfile names, for one platform: the way its BuildKit
/// will, a local image of that platform first, else the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedImage {
    /// The Engine holds the image for the platform: its id.
    Local(String),
    /// The registry's digest for the reference (an index's when it is multi-platform).
    Registry(String),
}

impl ResolvedImage {
    /// The id or digest.
    #[must_use]
    pub fn digest(&self) -> &str {
        match self {
            ResolvedImage::Local(id) | ResolvedImage::Registry(id) => id,
        }
    }
}

/// The registry host of an image reference, as the docker CLI splits it: a first path part
/// with a `.` or `:`, or `localhost`; else Docker Hub.
fn registry_host_of(reference: &str) -> &str {
    match reference.split_once('/') {
        Some((first, _)) if first.contains(['.', ':']) || first == "localhost" => first,
        _ => "docker.io",
    }
}

impl Engine {
    /// Resolves an image a Dockerfile names for `platform` the way BuildKit on this Engine
    /// will: the local image when the Engine holds that reference for the platform (BuildKit
    /// on the docker driver prefers it), else the registry's digest through the Engine
    /// (`GET /distribution/{name}/json`), with `login` when the image is in its registry.
    pub async fn resolve_image(
        &self,
        reference: &str,
        platform: &Platform,
        login: Option<&RegistryLogin>,
    ) -> Result<ResolvedImage, Error> {
        match self.docker.inspect_image(reference).await {
            Ok(image) => {
                let matches = platform.is_satisfied_by(
                    image.os.as_deref().unwrap_or_default(),
                    image.architecture.as_deref().unwrap_or_default(),
                    image.variant.as_deref(),
                );
                if let (true, Some(id)) = (matches, image.id) {
                    return Ok(ResolvedImage::Local(id));
                }
            }
            Err(error) if is_transport(&error) => {
                return Err(self.call_failed(
                    None,
                    format!("looking up `{reference}` for `{platform}`"),
                    error,
                ))
            }
            // Not here (404), or not a reference this Engine takes: ask the registry.
            Err(_) => {}
        }
        let credentials = login
            .filter(|login| registry_host_of(reference) == login.host)
            .map(RegistryLogin::credentials);
        let distribution = self
            .docker
            .inspect_registry_image(reference, credentials)
            .await
            .map_err(|source| {
                self.call_failed(
                    None,
                    format!("resolving `{reference}` for `{platform}` in its registry"),
                    source,
                )
            })?;
        Ok(ResolvedImage::Registry(
            distribution.descriptor.digest.unwrap_or_default(),
        ))
    }
}

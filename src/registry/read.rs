//! Reading what the repository already holds: the digest under a tag, and the images under the
//! first tag with their configs, from which we learn which blob holds which layer (`diff_id`),
//! so that a rebuilt layer is referenced instead of compressed and uploaded again.

use std::collections::BTreeMap;

use super::request::Fetched;
use super::retry::RetryLog;
use super::{Error, Registry};
use crate::image_export::KnownLayers;
use crate::oci::{
    media_type, Descriptor, Digest, ImageConfig, ImageIndex, ImageManifest, ManifestDocument,
};
use crate::platform::{Platform, PlatformMismatch};

/// An image manifest as stored, with what its config says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingImage {
    /// The manifest.
    pub manifest: ManifestDocument,
    /// Its config blob.
    pub config: Descriptor,
    /// The config's bytes (a few kB).
    pub config_bytes: bytes::Bytes,
    /// Its layer blobs.
    pub layers: Vec<Descriptor>,
    /// The platform its config names.
    pub platform: Platform,
}

/// The images under one tag.
#[derive(Debug, Clone, Default)]
pub struct RepositoryImages {
    /// The digest the tag holds; `None` when it does not exist.
    pub digest: Option<Digest>,
    /// The document the tag holds, as stored (an index, or one image manifest).
    pub document: Option<ManifestDocument>,
    /// The annotations of that index (none for an image manifest).
    pub annotations: BTreeMap<String, String>,
    /// Its image manifests: the children of an index (attestations left out), or the one image.
    pub images: Vec<ExistingImage>,
    /// Every layer blob of those images, by `diff_id` and by digest.
    pub known: KnownLayers,
}

impl RepositoryImages {
    /// The image whose config is `config_digest` (the Engine's image id on the classic store):
    /// the same config means the same layers, so the image is already there whole.
    #[must_use]
    pub fn with_config(&self, config_digest: &str) -> Option<&ExistingImage> {
        self.images
            .iter()
            .find(|i| i.config.digest == config_digest)
    }
}

fn malformed(what: String) -> impl FnOnce(serde_json::Error) -> Error {
    move |e| Error::Malformed {
        what,
        reason: e.to_string(),
    }
}

impl Registry {
    /// The digest a tag (or digest) holds, from a HEAD; `None` when it does not exist.
    pub async fn manifest_digest(
        &self,
        reference: &str,
        log: RetryLog<'_>,
    ) -> Result<Option<Digest>, Error> {
        let operation = format!("reading `{reference}`");
        let url = self.url(&format!("manifests/{reference}"));
        let Some(response) = self
            .send(&operation, log, true, || {
                self.http
                    .head(&url)
                    .header(reqwest::header::ACCEPT, media_type::MANIFESTS.join(", "))
            })
            .await?
        else {
            return Ok(None);
        };
        let header = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        match header {
            Some(digest) => Ok(Some(digest)),
            // A registry that leaves the header out (or gives no sha256 digest in it): hash the
            // document itself.
            None => Ok(self
                .manifest(reference, log)
                .await?
                .map(|document| document.digest)),
        }
    }

    /// The manifest or index a tag or digest holds, as stored; `None` when it does not exist.
    pub async fn manifest(
        &self,
        reference: &str,
        log: RetryLog<'_>,
    ) -> Result<Option<ManifestDocument>, Error> {
        let operation = format!("reading the manifest `{reference}`");
        let url = self.url(&format!("manifests/{reference}"));
        let fetched = self
            .fetch(&operation, log, || {
                self.http
                    .get(&url)
                    .header(reqwest::header::ACCEPT, media_type::MANIFESTS.join(", "))
            })
            .await?;
        Ok(fetched.map(|Fetched { headers, body }| {
            let declared = headers
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .filter(|t| media_type::MANIFESTS.contains(t))
                .map(str::to_owned);
            let media_type = declared.unwrap_or_else(|| media_type::of_manifest(&body));
            ManifestDocument::new(body, &media_type)
        }))
    }

    /// A small blob (an image config) read whole.
    pub async fn small_blob(&self, digest: &Digest, log: RetryLog<'_>) -> Result<Vec<u8>, Error> {
        let operation = format!("reading the blob `{digest}`");
        let url = self.url(&format!("blobs/{digest}"));
        let fetched = self.fetch(&operation, log, || self.http.get(&url)).await?;
        let body = fetched
            .ok_or_else(|| Error::Malformed {
                what: format!("the blob `{digest}`"),
                reason: "the repository does not have it".to_owned(),
            })?
            .body;
        let actual = Digest::of(&body);
        if actual != *digest {
            return Err(Error::Malformed {
                what: format!("the blob `{digest}`"),
                reason: format!("its content hashes to `{actual}`"),
            });
        }
        Ok(body)
    }

    /// An image manifest and what its config says.
    async fn existing_image(
        &self,
        manifest: ManifestDocument,
        log: RetryLog<'_>,
        known: &mut KnownLayers,
    ) -> Result<ExistingImage, Error> {
        let parsed: ImageManifest = serde_json::from_slice(&manifest.bytes)
            .map_err(malformed(format!("the manifest `{}`", manifest.digest)))?;
        let config_bytes = self.small_blob(&parsed.config.digest, log).await?;
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(malformed(
            format!("the image config `{}`", parsed.config.digest),
        ))?;
        if let Some(rootfs) = &config.rootfs {
            if rootfs.diff_ids.len() == parsed.layers.len() {
                for (diff_id, layer) in rootfs.diff_ids.iter().zip(&parsed.layers) {
                    known.insert(diff_id.clone(), layer.clone());
                }
            }
        }
        Ok(ExistingImage {
            platform: config.platform(),
            config: parsed.config,
            config_bytes: config_bytes.into(),
            layers: parsed.layers,
            manifest,
        })
    }

    /// The images the repository holds under `tag`, and the layers they are made of. Nothing
    /// (not an error) when the tag does not exist.
    pub async fn images_under(
        &self,
        tag: &str,
        log: RetryLog<'_>,
    ) -> Result<RepositoryImages, Error> {
        let Some(top) = self.manifest(tag, log).await? else {
            return Ok(RepositoryImages::default());
        };
        let mut known = KnownLayers::default();
        let mut images = Vec::new();
        let mut annotations = BTreeMap::new();
        let digest = top.digest.clone();
        // What is learnt here only saves uploads: a document we cannot read as an image (an
        // artifact, another tool's format) is passed over, not a failure. The registry failing
        // to answer is one.
        let readable = |image: Result<(ExistingImage, KnownLayers), Error>| match image {
            Ok(read) => Ok(Some(read)),
            Err(Error::Malformed { .. }) => Ok(None),
            Err(other) => Err(other),
        };
        if media_type::is_index(&top.media_type) {
            let index = serde_json::from_slice::<ImageIndex>(&top.bytes).ok();
            annotations = index
                .as_ref()
                .map(|i| i.annotations.clone())
                .unwrap_or_default();
            // The children at once: each is two requests (manifest, config) in a row.
            let children =
                futures_util::future::try_join_all(index.iter().flat_map(ImageIndex::images).map(
                    |entry| async move {
                        let Some(child) = self.manifest(entry.digest.as_str(), log).await? else {
                            return Ok(None);
                        };
                        if media_type::is_index(&child.media_type) {
                            return Ok(None);
                        }
                        let mut child_known = KnownLayers::default();
                        let image = self.existing_image(child, log, &mut child_known).await;
                        readable(image.map(|image| (image, child_known)))
                    },
                ))
                .await?;
            for (image, child_known) in children.into_iter().flatten() {
                images.push(image);
                known.merge(child_known);
            }
        } else {
            let mut top_known = KnownLayers::default();
            let image = self.existing_image(top.clone(), log, &mut top_known).await;
            if let Some((image, top_known)) = readable(image.map(|image| (image, top_known)))? {
                images.push(image);
                known.merge(top_known);
            }
        }
        Ok(RepositoryImages {
            digest: Some(digest),
            document: Some(top),
            annotations,
            images,
            known,
        })
    }

    /// Reads the image at `digest`, whatever its platform (its config says which). A child
    /// that is itself an index is flattened to its one image; an index of several images is
    /// refused, as it does not say which one is meant.
    pub async fn image(&self, digest: &Digest, log: RetryLog<'_>) -> Result<ExistingImage, Error> {
        let what = |digest: &Digest| format!("the image `{digest}`");
        let document = self
            .flattened(digest, log, what, |index| {
                let images: Vec<_> = index.images().collect();
                match images.as_slice() {
                    [entry] => Ok(entry.digest.clone()),
                    _ => Err(Error::SeveralImages {
                        digest: digest.to_string(),
                        count: images.len(),
                    }),
                }
            })
            .await?;
        self.existing_image(document, log, &mut KnownLayers::default())
            .await
    }

    /// Reads the image at `digest` for `platform`: a child that is itself an index (what a
    /// containerd-store daemon pushes: the image plus `unknown/unknown` attestations) is
    /// flattened to its entry for the platform, and the image config must name the platform.
    pub async fn platform_image(
        &self,
        platform: &Platform,
        digest: &Digest,
        log: RetryLog<'_>,
    ) -> Result<ExistingImage, Error> {
        let what = |digest: &Digest| format!("the `{platform}` image `{digest}`");
        let document = self
            .flattened(digest, log, what, |index| {
                let entry = index.image_for(platform).ok_or_else(|| PlatformMismatch {
                    wanted: platform.clone(),
                    found: "an index without that platform".to_owned(),
                    digest: digest.to_string(),
                })?;
                Ok(entry.digest.clone())
            })
            .await?;
        let image = self
            .existing_image(document, log, &mut KnownLayers::default())
            .await?;
        if !platform.is_satisfied_by(
            &image.platform.os,
            &image.platform.architecture,
            image.platform.variant.as_deref(),
        ) {
            return Err(PlatformMismatch {
                wanted: platform.clone(),
                found: image.platform.to_string(),
                digest: image.manifest.digest.to_string(),
            }
            .into());
        }
        Ok(image)
    }

    /// The manifest at `digest`; when it is an index, the child `choose` picks from it. `what`
    /// names a digest in the error when the repository lacks it.
    async fn flattened(
        &self,
        digest: &Digest,
        log: RetryLog<'_>,
        what: impl Fn(&Digest) -> String,
        choose: impl FnOnce(&ImageIndex) -> Result<Digest, Error>,
    ) -> Result<ManifestDocument, Error> {
        let missing = |digest: &Digest| Error::NotInRepository {
            what: what(digest),
            repository: self.repository_uri(),
        };
        let document = self
            .manifest(digest.as_str(), log)
            .await?
            .ok_or_else(|| missing(digest))?;
        if !media_type::is_index(&document.media_type) {
            return Ok(document);
        }
        let index: ImageIndex = serde_json::from_slice(&document.bytes)
            .map_err(malformed(format!("the index `{digest}`")))?;
        let child = choose(&index)?;
        self.manifest(child.as_str(), log)
            .await?
            .ok_or_else(|| missing(&child))
    }
}

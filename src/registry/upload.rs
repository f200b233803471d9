//! Uploading one platform image by digest: each blob the repository lacks (HEAD first), in one
//! streamed PUT of known size, several at a time; then the manifest, PUT by digest. Nothing is
//! tagged here: tags are the index's business.

use std::collections::HashSet;

use futures_util::future::try_join_all;
use tokio::sync::Semaphore;

use super::retry::RetryLog;
use super::{Error, Registry};
use crate::image_export::{Blob, BlobSource, PreparedImage};
use crate::oci::{Digest, ManifestDocument};

/// What pushing one image did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushStats {
    /// Layers uploaded.
    pub layers_uploaded: usize,
    /// Layers the repository already held (known from its images, or found by a HEAD).
    pub layers_reused: usize,
    /// Bytes of blobs (layers and config) uploaded.
    pub bytes_uploaded: u64,
    /// Whether the config was uploaded.
    pub config_uploaded: bool,
    /// Whether the manifest was uploaded (it was not there yet).
    pub manifest_uploaded: bool,
}

/// What happened to one blob.
enum BlobOutcome {
    Held,
    Uploaded(u64),
}

impl Registry {
    /// Whether the repository holds a blob.
    pub async fn blob_exists(&self, digest: &Digest, log: RetryLog<'_>) -> Result<bool, Error> {
        let url = self.url(&format!("blobs/{digest}"));
        Ok(self
            .send(&format!("checking for blob `{digest}`"), log, true, || {
                self.http.head(&url)
            })
            .await?
            .is_some())
    }

    /// Uploads a blob: POST opens an upload, one PUT with its whole, streamed body closes it.
    /// A failed attempt starts again with a new upload.
    async fn upload_blob(&self, blob: &Blob, log: RetryLog<'_>) -> Result<(), Error> {
        let digest = &blob.descriptor.digest;
        let size = blob.descriptor.size;
        let operation = format!("uploading blob `{digest}` ({size} bytes)");
        let start_url = self.url("blobs/uploads/");
        self.retrying(&operation, log, || async {
            let opened = self
                .send_once(&operation, self.http.post(&start_url), false)
                .await?;
            let location = opened
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| Error::Malformed {
                    what: format!("the answer to {operation}"),
                    reason: "it has no `Location` for the upload".to_owned(),
                })?;
            let mut url = reqwest::Url::parse(&self.base)
                .and_then(|base| base.join(location))
                .map_err(|e| Error::Malformed {
                    what: format!("the upload location `{location}`"),
                    reason: e.to_string(),
                })?;
            url.query_pairs_mut().append_pair("digest", digest.as_str());
            let body = match &blob.source {
                BlobSource::File(path) => {
                    let file = tokio::fs::File::open(path)
                        .await
                        .map_err(|source| Error::Io {
                            what: format!("opening `{}` to upload `{digest}`", path.display()),
                            source,
                        })?;
                    reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::with_capacity(
                        file,
                        256 * 1024,
                    ))
                }
                BlobSource::Memory(bytes) => reqwest::Body::from(bytes.clone()),
                BlobSource::Repository => return Ok(()),
            };
            let request = self
                .http
                .put(url)
                .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                .header(reqwest::header::CONTENT_LENGTH, size)
                .body(body);
            self.send_once(&operation, request, false).await?;
            Ok(())
        })
        .await
    }

    /// A blob, unless the repository already holds it.
    async fn ensure_blob(
        &self,
        blob: &Blob,
        uploads: &Semaphore,
        log: RetryLog<'_>,
    ) -> Result<BlobOutcome, Error> {
        if blob.source == BlobSource::Repository {
            return Ok(BlobOutcome::Held);
        }
        let _permit = uploads.acquire().await.map_err(|_| Error::Malformed {
            what: "the upload queue".to_owned(),
            reason: "it was closed".to_owned(),
        })?;
        if self.blob_exists(&blob.descriptor.digest, log).await? {
            return Ok(BlobOutcome::Held);
        }
        self.upload_blob(blob, log).await?;
        log.line(&format!(
            "uploaded {} ({})",
            blob.descriptor.digest,
            crate::byte_size::human_size(blob.descriptor.size)
        ));
        Ok(BlobOutcome::Uploaded(blob.descriptor.size))
    }

    /// Puts a manifest (or index) under a tag or its digest.
    pub async fn put_manifest(
        &self,
        reference: &str,
        document: &ManifestDocument,
        log: RetryLog<'_>,
    ) -> Result<(), Error> {
        let url = self.url(&format!("manifests/{reference}"));
        let operation = if reference == document.digest {
            format!("pushing the manifest `{reference}`")
        } else {
            format!("pushing `{}` under `{reference}`", document.digest)
        };
        self.send(&operation, log, false, || {
            self.http
                .put(&url)
                .header(reqwest::header::CONTENT_TYPE, &document.media_type)
                .body(document.bytes.clone())
        })
        .await?;
        Ok(())
    }

    /// Pushes one platform image by digest: the blobs it lacks, several at once (at most
    /// `uploads` across the whole run), then the manifest unless it is already there.
    pub async fn push_image(
        &self,
        image: &PreparedImage,
        uploads: &Semaphore,
        log: RetryLog<'_>,
    ) -> Result<PushStats, Error> {
        let mut seen = HashSet::new();
        let layers: Vec<&Blob> = image
            .layers
            .iter()
            .filter(|l| seen.insert(l.descriptor.digest.clone()))
            .collect();
        let (layer_outcomes, config) = futures_util::try_join!(
            try_join_all(layers.iter().map(|l| self.ensure_blob(l, uploads, log))),
            self.ensure_blob(&image.config, uploads, log),
        )?;
        let mut stats = PushStats::default();
        for outcome in layer_outcomes {
            match outcome {
                BlobOutcome::Held => stats.layers_reused += 1,
                BlobOutcome::Uploaded(size) => {
                    stats.layers_uploaded += 1;
                    stats.bytes_uploaded += size;
                }
            }
        }
        if let BlobOutcome::Uploaded(size) = config {
            stats.config_uploaded = true;
            stats.bytes_uploaded += size;
        }
        let digest = &image.manifest.digest;
        if self.manifest_digest(digest.as_str(), log).await?.is_none() {
            self.put_manifest(digest.as_str(), &image.manifest, log)
                .await?;
            stats.manifest_uploaded = true;
        }
        Ok(stats)
    }
}

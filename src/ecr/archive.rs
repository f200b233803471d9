//! ECR's archive storage class (2025-11): an archived image is listed (when asked) but cannot be
//! pulled until restored, and a re-push restores it. The run asks about the image under the
//! first tag, whose layers, cache and build digest it would otherwise use.

use aws_sdk_ecr::types::{ImageIdentifier, ImageStatus};

use super::Ecr;

/// An image under a tag that is not active: archived, or being restored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchivedImage {
    /// Its digest.
    pub digest: String,
    /// `ARCHIVED` or `ACTIVATING`.
    pub status: String,
}

impl Ecr {
    /// The image under `tag` when ECR reports it archived or being restored
    /// (`DescribeImages`); `None` when it is active, missing, or cannot be described (without
    /// `ecr:DescribeImages` the registry's own answer decides, as before).
    pub async fn archived_image(&self, repository: &str, tag: &str) -> Option<ArchivedImage> {
        let answer = self
            .client
            .describe_images()
            .set_registry_id(self.registry_id.clone())
            .repository_name(repository)
            .image_ids(ImageIdentifier::builder().image_tag(tag).build())
            .send()
            .await
            .ok()?;
        let image = answer.image_details().first()?;
        match image.image_status() {
            Some(status @ (ImageStatus::Archived | ImageStatus::Activating)) => {
                Some(ArchivedImage {
                    digest: image.image_digest().unwrap_or_default().to_owned(),
                    status: status.as_str().to_owned(),
                })
            }
            _ => None,
        }
    }
}

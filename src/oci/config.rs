//! The parts of an image config we read: its platform and its layers' `diff_id`s
//! (<https://github.com/opencontainers/image-spec/blob/main/config.md>). Never serialised: a
//! config is pushed as the Engine wrote it.

use serde::Deserialize;

use super::Digest;
use crate::platform::Platform;

/// What we read of an image config.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ImageConfig {
    /// `linux`.
    #[serde(default)]
    pub os: String,
    /// The GOARCH.
    #[serde(default)]
    pub architecture: String,
    /// `v7`, `v8`...
    #[serde(default)]
    pub variant: Option<String>,
    /// The layers; a config without it has none we can learn from.
    #[serde(default)]
    pub rootfs: Option<RootFs>,
}

/// The config's layers, as uncompressed tars.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RootFs {
    /// The digest of each layer's uncompressed tar, in order.
    #[serde(default)]
    pub diff_ids: Vec<Digest>,
}

impl ImageConfig {
    /// The platform the config names (an empty variant is none).
    #[must_use]
    pub fn platform(&self) -> Platform {
        Platform {
            os: self.os.clone(),
            architecture: self.architecture.clone(),
            variant: self.variant.clone().filter(|v| !v.is_empty()),
        }
    }

    /// Whether the image is for `platform`, after containerd's normalisation.
    #[must_use]
    pub fn is_for(&self, platform: &Platform) -> bool {
        platform.is_satisfied_by(&self.os, &self.architecture, self.variant.as_deref())
    }
}

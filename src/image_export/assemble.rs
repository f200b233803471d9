//! Putting the read entries together: the config `manifest.json` names, checked against its
//! name and the platform asked for, and each layer at its place, checked against the config's
//! `diff_id`s.

use std::collections::HashMap;

use super::entries::Entry;
use super::layout::{self, SaveManifest};
use super::links::resolve;
use super::manifest::image_manifest;
use super::{Blob, BlobSource, Error, KnownLayers, PreparedImage};
use crate::oci::{media_type, Descriptor, Digest, ImageConfig};
use crate::platform::{Platform, PlatformMismatch};

/// Puts the read entries together: config, layers in order, the manifest.
pub(super) fn assemble(
    platform: &Platform,
    entries: &HashMap<String, Entry>,
    known: &KnownLayers,
    spool: tempfile::TempDir,
) -> Result<PreparedImage, Error> {
    let malformed = |reason: String| Error::Malformed {
        platform: platform.clone(),
        reason,
    };
    let document = |entries: &HashMap<String, Entry>, name: &str| match resolve(entries, name) {
        Some(Entry::Document(bytes)) => Ok(bytes.clone()),
        _ => Err(malformed(format!(
            "`{name}` is missing or not a JSON document"
        ))),
    };
    let save: Vec<SaveManifest> = serde_json::from_slice(&document(entries, "manifest.json")?)
        .map_err(|e| malformed(format!("`manifest.json`: {e}")))?;
    let [save] = <[SaveManifest; 1]>::try_from(save).map_err(|all| {
        malformed(format!(
            "`manifest.json` names {} images, not one",
            all.len()
        ))
    })?;
    let config_bytes = document(entries, &save.config)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| malformed(format!("the image config: {e}")))?;
    let Some(diff_ids) = config.rootfs.as_ref().map(|rootfs| &rootfs.diff_ids) else {
        return Err(malformed(
            "the image config: missing field `rootfs`".to_owned(),
        ));
    };
    let config_digest = Digest::of(&config_bytes);
    // A config is named by its digest.
    if let Some(hex) = layout::config_hex(&save.config) {
        if config_digest.hex() != hex {
            return Err(malformed(format!(
                "the config `{}` holds `{config_digest}`",
                save.config
            )));
        }
    }
    if !config.is_for(platform) {
        return Err(PlatformMismatch {
            wanted: platform.clone(),
            found: [
                Some(config.os.as_str()),
                Some(config.architecture.as_str()),
                config.variant.as_deref(),
            ]
            .into_iter()
            .flatten()
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("/"),
            digest: config_digest.to_string(),
        }
        .into());
    }
    if diff_ids.len() != save.layers.len() {
        return Err(malformed(format!(
            "the config lists {} layers, `manifest.json` {}",
            diff_ids.len(),
            save.layers.len()
        )));
    }
    let mut layers = Vec::with_capacity(save.layers.len());
    for (name, diff_id) in save.layers.iter().zip(diff_ids) {
        let held = |descriptor: Descriptor| Blob {
            descriptor,
            source: BlobSource::Repository,
        };
        // A layer the image lists twice is one entry, read once and used at every place.
        let entry = resolve(entries, name);
        // OCI layouts name a blob by the digest of its bytes: hold the entry to that.
        if let (Some(hex), Some(content)) = (
            layout::blob_hex(name),
            entry.and_then(Entry::content_digest),
        ) {
            if content.hex() != hex {
                return Err(malformed(format!("layer `{name}` holds `{content}`")));
            }
        }
        let blob = match entry {
            Some(Entry::Known { blob, content }) => {
                // Hashed, not found by its blob name: it must be this place's layer.
                if !layout::is_blob(name) && content != diff_id {
                    return Err(malformed(format!(
                        "layer `{name}` is `{content}`, the config says `{diff_id}`"
                    )));
                }
                held(blob.clone())
            }
            Some(Entry::Compressed {
                diff_id: read,
                blob,
                path,
            }) => {
                if read != diff_id {
                    return Err(malformed(format!(
                        "layer `{name}` is `{read}`, the config says `{diff_id}`"
                    )));
                }
                // Docker 20.10's layout names layers by a v1 id: only now is the diff_id known.
                match known.get(diff_id.as_str()) {
                    Some(descriptor) => held(descriptor.clone()),
                    None => Blob {
                        descriptor: blob.clone(),
                        source: BlobSource::File(path.clone()),
                    },
                }
            }
            Some(Entry::AsStored { blob, path }) => match known.get(diff_id.as_str()) {
                Some(descriptor) => held(descriptor.clone()),
                None => Blob {
                    descriptor: blob.clone(),
                    source: BlobSource::File(path.clone()),
                },
            },
            Some(Entry::Document(_) | Entry::Link(_)) | None => {
                return Err(malformed(format!("layer `{name}` is missing")));
            }
        };
        layers.push(blob);
    }
    let manifest = image_manifest(&config_bytes, &config_digest, &layers);
    Ok(PreparedImage {
        platform: platform.clone(),
        config: Blob {
            descriptor: Descriptor {
                media_type: if manifest.media_type == media_type::DOCKER_MANIFEST {
                    media_type::DOCKER_CONFIG
                } else {
                    media_type::OCI_CONFIG
                }
                .to_owned(),
                size: config_bytes.len() as u64,
                digest: config_digest,
            },
            source: BlobSource::Memory(config_bytes),
        },
        layers,
        manifest,
        _spool: Some(spool),
    })
}

//! The OCI documents, shared by the export reader ([`crate::image_export`]) and the registry
//! client ([`crate::registry`]): digests, media types, descriptors, image manifests, what we
//! read of an image config, and indexes with the choice of their children. Values only: no
//! I/O, and nothing from the rooms that use them.
//!
//! Hand-written rather than `oci-spec`'s types: the manifests and indexes we build must keep
//! their bytes (field order, fields left out) so that the same image gives the same digest on
//! every run, and what we read is a few fields of documents others wrote.
//! Spec: <https://github.com/opencontainers/image-spec>.

mod config;
mod descriptor;
mod digest;
mod document;
mod index;
mod manifest;
pub mod media_type;

pub use config::{ImageConfig, RootFs};
pub use descriptor::Descriptor;
pub use digest::{Digest, NotADigest};
pub use document::ManifestDocument;
pub use index::{ImageIndex, IndexEntry, IndexPlatform};
pub use manifest::ImageManifest;

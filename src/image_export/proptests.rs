//! Property tests of the export reader (issue 14): exports in the three layouts it reads
//! (`docker save` of Docker 20.10, `docker save` with an OCI layout of the classic store, the
//! containerd store's OCI layout with compressed blobs), with layers listed more than once,
//! links in place of entries, entries missing, repeated with other bytes, and extra. Whatever
//! the export, [`prepare`] never panics and never yields a wrong image: either the image the
//! config describes (its config, each layer at its place) or an error.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Write};

use bytes::Bytes;
use proptest::prelude::*;
use sha2::{Digest as _, Sha256};

use super::{prepare, BlobSource, Error, KnownLayers};
use crate::oci::{media_type, Descriptor};
use crate::platform::Platform;

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// An uncompressed layer tar holding one file.
pub(super) fn layer(content: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(&mut header, "file", content)
        .expect("append");
    builder.into_inner().expect("tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).expect("gzip");
    gz.finish().expect("gzip")
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    /// Docker 20.10: `<id>/layer.tar`, a repeated layer as a link to its first place.
    Legacy,
    /// Docker 25+ classic store: `blobs/sha256/<diff_id>`, uncompressed.
    ClassicOci,
    /// containerd store: `blobs/sha256/<blob digest>`, gzip.
    ContainerdOci,
}

/// What is done to the honest export.
#[derive(Debug, Clone)]
enum Change {
    /// The entry at this position is left out.
    Drop(usize),
    /// The entry at this position is written again with the bytes of another.
    Repeat(usize, usize),
    /// The entry at this position becomes a symbolic link to another's name.
    LinkTo(usize, usize),
    /// An extra entry.
    Extra(String, Vec<u8>),
}

/// One generated case: the image, the layout, what the repository holds, the changes.
#[derive(Debug, Clone)]
struct Case {
    /// Each layer's content, by index into a small pool, so that layers repeat.
    layers: Vec<usize>,
    layout: Layout,
    /// Which pool contents the repository already holds.
    known: Vec<bool>,
    changes: Vec<Change>,
}

const POOL: [&[u8]; 4] = [b"", b"a", b"bb", b"ccc"];

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        (0..12_usize).prop_map(Change::Drop),
        (0..12_usize, 0..12_usize).prop_map(|(a, b)| Change::Repeat(a, b)),
        (0..12_usize, 0..12_usize).prop_map(|(a, b)| Change::LinkTo(a, b)),
        (
            prop_oneof![
                Just("blobs/sha256/00".to_owned()),
                Just("extra/layer.tar".to_owned()),
                Just("index.json".to_owned()),
                Just("oci-layout".to_owned()),
                "[a-z]{1,6}(/[a-z]{1,6})?",
            ],
            prop::collection::vec(any::<u8>(), 0..64)
        )
            .prop_map(|(name, bytes)| Change::Extra(name, bytes)),
    ]
}

fn cases() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(0..POOL.len(), 1..5),
        prop_oneof![
            Just(Layout::Legacy),
            Just(Layout::ClassicOci),
            Just(Layout::ContainerdOci)
        ],
        prop::collection::vec(any::<bool>(), POOL.len()),
        prop::collection::vec(change(), 0..3),
    )
        .prop_map(|(layers, layout, known, changes)| Case {
            layers,
            layout,
            known,
            changes,
        })
}

/// The entries of the honest export: (name, bytes or link target).
type Entries = Vec<(String, Result<Vec<u8>, String>)>;

/// The honest export of `case`, its config, and the diff ids.
fn honest(case: &Case) -> (Entries, Vec<u8>, Vec<String>) {
    let tars: Vec<Vec<u8>> = case.layers.iter().map(|i| layer(POOL[*i])).collect();
    let diff_ids: Vec<String> = tars.iter().map(|t| digest(t)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json");
    let mut entries: Entries = Vec::new();
    let mut names = Vec::new();
    let config_name = match case.layout {
        Layout::Legacy => format!("{}.json", &digest(&config)[7..]),
        Layout::ClassicOci | Layout::ContainerdOci => {
            format!("blobs/sha256/{}", &digest(&config)[7..])
        }
    };
    entries.push((config_name.clone(), Ok(config.clone())));
    let mut first_place: HashMap<usize, String> = HashMap::new();
    for (place, (pool, tar)) in case.layers.iter().zip(&tars).enumerate() {
        match case.layout {
            Layout::Legacy => {
                let name = format!("{place:064}/layer.tar");
                if let Some(first) = first_place.get(pool) {
                    entries.push((name.clone(), Err(format!("../{first}"))));
                } else {
                    first_place.insert(*pool, name.clone());
                    entries.push((name.clone(), Ok(tar.clone())));
                }
                entries.push((format!("{place:064}/VERSION"), Ok(b"1.0".to_vec())));
                names.push(name);
            }
            Layout::ClassicOci | Layout::ContainerdOci => {
                let bytes = match case.layout {
                    Layout::ContainerdOci => gzip(tar),
                    _ => tar.clone(),
                };
                let name = format!("blobs/sha256/{}", &digest(&bytes)[7..]);
                if first_place.insert(*pool, name.clone()).is_none() {
                    entries.push((name.clone(), Ok(bytes)));
                }
                names.push(name);
            }
        }
    }
    entries.push((
        "manifest.json".to_owned(),
        Ok(serde_json::to_vec(
            &serde_json::json!([{"Config": config_name, "RepoTags": [], "Layers": names}]),
        )
        .expect("json")),
    ));
    (entries, config, diff_ids)
}

fn apply(mut entries: Entries, changes: &[Change]) -> Entries {
    for change in changes {
        let n = entries.len();
        match change {
            Change::Drop(i) if n > 0 => {
                let _dropped = entries.remove(i % n);
            }
            Change::Repeat(i, j) if n > 0 => {
                let name = entries[i % n].0.clone();
                let bytes = entries[j % n].1.clone();
                entries.push((name, bytes));
            }
            Change::LinkTo(i, j) if n > 0 => {
                // A hard link, named from the archive's root (`/` marks it here).
                let target = format!("/{}", entries[j % n].0);
                entries[i % n].1 = Err(target);
            }
            Change::Extra(name, bytes) => entries.push((name.clone(), Ok(bytes.clone()))),
            _ => {}
        }
    }
    entries
}

/// An export tar: files (`Ok`), symbolic links (`Err(target)`) and hard links (`Err("/name")`,
/// named from the archive's root).
pub(super) fn tar_of(entries: &[(String, Result<Vec<u8>, String>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, entry) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        match entry {
            Ok(bytes) => {
                header.set_size(bytes.len() as u64);
                header.set_cksum();
                builder
                    .append_data(&mut header, name, &bytes[..])
                    .expect("append");
            }
            Err(target) => {
                let (kind, target) = match target.strip_prefix('/') {
                    Some(root_relative) => (tar::EntryType::Link, root_relative),
                    None => (tar::EntryType::Symlink, target.as_str()),
                };
                header.set_entry_type(kind);
                header.set_size(0);
                builder
                    .append_link(&mut header, name, target)
                    .expect("append link");
            }
        }
    }
    builder.into_inner().expect("tar")
}

/// What the repository holds: the gzip of each known pool layer, by its diff id.
fn known_layers(case: &Case) -> (KnownLayers, HashMap<String, Descriptor>) {
    let mut known = KnownLayers::default();
    let mut by_diff_id = HashMap::new();
    for (pool, held) in case.known.iter().enumerate() {
        if !held {
            continue;
        }
        let tar = layer(POOL[pool]);
        let blob = gzip(&tar);
        let descriptor = Descriptor {
            media_type: media_type::DOCKER_LAYER_GZIP.to_owned(),
            size: blob.len() as u64,
            digest: digest(&blob).parse().expect("digest"),
        };
        known.insert(digest(&tar).parse().expect("digest"), descriptor.clone());
        by_diff_id.insert(digest(&tar), descriptor);
    }
    (known, by_diff_id)
}

fn uncompressed(bytes: &[u8]) -> Vec<u8> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .expect("gzip");
        out
    } else {
        bytes.to_vec()
    }
}

fn check(case: &Case) -> Result<(), TestCaseError> {
    let (entries, config, diff_ids) = honest(case);
    let changed = !case.changes.is_empty();
    let tar = tar_of(&apply(entries, &case.changes));
    let (known, by_diff_id) = known_layers(case);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let temp = tempfile::tempdir().expect("tempdir");
    let platform: Platform = "linux/amd64".parse().expect("platform");
    let chunks: Vec<Result<Bytes, Infallible>> = tar
        .chunks(700)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let prepared = runtime.block_on(prepare(
        &platform,
        futures_util::stream::iter(chunks),
        &known,
        &diff_ids,
        temp.path(),
    ));
    let image = match prepared {
        Ok(image) => image,
        Err(error @ (Error::Malformed { .. } | Error::Io { .. })) => {
            // An honest export is always read; a changed one may be refused, clearly.
            prop_assert!(changed, "the honest export was refused: {error}");
            prop_assert!(!error.to_string().is_empty());
            return Ok(());
        }
        Err(error) => return Err(TestCaseError::fail(format!("unexpected error: {error}"))),
    };
    // The right image: this config, each layer of the config at its place.
    prop_assert_eq!(&image.config.descriptor.digest, &digest(&config));
    prop_assert_eq!(image.layers.len(), diff_ids.len());
    for (blob, diff_id) in image.layers.iter().zip(&diff_ids) {
        match &blob.source {
            BlobSource::Repository => {
                prop_assert_eq!(Some(&blob.descriptor), by_diff_id.get(diff_id));
            }
            BlobSource::File(path) => {
                let bytes = std::fs::read(path).expect("spooled layer");
                prop_assert_eq!(&digest(&bytes), &blob.descriptor.digest);
                prop_assert_eq!(bytes.len() as u64, blob.descriptor.size);
                prop_assert_eq!(&digest(&uncompressed(&bytes)), diff_id);
            }
            BlobSource::Memory(_) => {
                return Err(TestCaseError::fail("a layer held in memory"));
            }
        }
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&image.manifest.bytes).expect("manifest JSON");
    let listed: Vec<&str> = manifest["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest"))
        .collect();
    let expected: Vec<&str> = image
        .layers
        .iter()
        .map(|l| l.descriptor.digest.as_str())
        .collect();
    prop_assert_eq!(listed, expected);
    Ok(())
}

proptest! {
    // A few hundred small exports: about a second.
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_export_reader_yields_the_right_image_or_an_error(case in cases()) {
        check(&case)?;
    }
}

/// The honest exports of the layouts, a repeated layer included, are read (not just refused).
#[test]
fn honest_exports_with_repeated_layers_are_read() {
    for layout in [Layout::Legacy, Layout::ClassicOci, Layout::ContainerdOci] {
        for known in [vec![false; POOL.len()], vec![true; POOL.len()]] {
            let case = Case {
                layers: vec![1, 0, 0, 2, 0],
                layout,
                known,
                changes: Vec::new(),
            };
            check(&case).unwrap_or_else(|e| panic!("{layout:?}: {e}"));
        }
    }
}

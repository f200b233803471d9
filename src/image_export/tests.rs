//! Unit tests of the export reader: each layout, layers the repository holds, links.

use std::convert::Infallible;
use std::io::{Read, Write};

use bytes::Bytes;
use sha2::{Digest as _, Sha256};

use super::{prepare, BlobSource, Error, KnownLayers, PreparedImage};
use crate::oci::{media_type, Descriptor};
use crate::platform::Platform;

/// An uncompressed layer tar holding one file: the property tests' builder.
fn layer(content: &str) -> Vec<u8> {
    super::proptests::layer(content.as_bytes())
}

fn digest(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn config(architecture: &str, diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": architecture,
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .expect("json")
}

/// An export tar from (name, bytes) entries.
fn export(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, bytes) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        builder
            .append_data(&mut header, name, &bytes[..])
            .expect("append");
    }
    builder.into_inner().expect("tar")
}

fn save_manifest(config: &str, layers: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!([{"Config": config, "RepoTags": [], "Layers": layers}]))
        .expect("json")
}

async fn prepare_export(
    platform: &str,
    tar: Vec<u8>,
    known: &KnownLayers,
    diff_ids: &[String],
) -> (Result<PreparedImage, Error>, tempfile::TempDir) {
    let temp = tempfile::tempdir().expect("tempdir");
    // Small chunks, as the Engine's stream delivers them.
    let chunks: Vec<Result<Bytes, Infallible>> = tar
        .chunks(1000)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream = futures_util::stream::iter(chunks);
    let platform: Platform = platform.parse().expect("platform");
    let prepared = prepare(&platform, stream, known, diff_ids, temp.path()).await;
    (prepared, temp)
}

/// Docker 20.10's layout: layers named by v1 ids, uncompressed.
fn legacy_export(layers: &[Vec<u8>], architecture: &str) -> (Vec<u8>, Vec<String>) {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let config = config(architecture, &diff_ids);
    let config_name = format!("{}.json", &digest(&config)[7..]);
    let mut entries = vec![(config_name.clone(), config)];
    let mut names = Vec::new();
    for (i, bytes) in layers.iter().enumerate() {
        // What else the legacy layout holds per layer: neither is a layer.
        entries.push((format!("{i:064}/VERSION"), b"1.0".to_vec()));
        entries.push((format!("{i:064}/json"), br#"{"id":"v1"}"#.to_vec()));
        let name = format!("{i:064}/layer.tar");
        entries.push((name.clone(), bytes.clone()));
        names.push(name);
    }
    entries.push(("repositories".to_owned(), b"{}".to_vec()));
    entries.push((
        "manifest.json".to_owned(),
        save_manifest(&config_name, &names),
    ));
    (export(&entries), diff_ids)
}

#[tokio::test]
async fn a_legacy_export_is_compressed_into_a_schema_2_image() {
    let layers = vec![layer("base"), layer("app")];
    let (tar, diff_ids) = legacy_export(&layers, "arm64");
    let (prepared, _temp) =
        prepare_export("linux/arm64", tar, &KnownLayers::default(), &diff_ids).await;
    let prepared = prepared.expect("prepared");
    assert_eq!(prepared.manifest.media_type, media_type::DOCKER_MANIFEST);
    assert_eq!(prepared.layers.len(), 2);
    for (blob, original) in prepared.layers.iter().zip(&layers) {
        let BlobSource::File(path) = &blob.source else {
            panic!("a new layer is uploaded from a file: {blob:?}");
        };
        let bytes = std::fs::read(path).expect("spooled");
        assert_eq!(digest(&bytes), blob.descriptor.digest);
        let mut decoded = Vec::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_end(&mut decoded)
            .expect("gzip");
        assert_eq!(&decoded, original);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&prepared.manifest.bytes).expect("json");
    assert_eq!(
        manifest["config"]["digest"],
        prepared.config.descriptor.digest.as_str()
    );
    assert_eq!(
        manifest["layers"][1]["mediaType"],
        media_type::DOCKER_LAYER_GZIP
    );
}

#[tokio::test]
async fn the_same_export_gives_the_same_manifest() {
    let (tar, diff_ids) = legacy_export(&[layer("base")], "amd64");
    let (first, _a) = prepare_export(
        "linux/amd64",
        tar.clone(),
        &KnownLayers::default(),
        &diff_ids,
    )
    .await;
    let (second, _b) = prepare_export("linux/amd64", tar, &KnownLayers::default(), &diff_ids).await;
    assert_eq!(
        first.expect("first").manifest.digest,
        second.expect("second").manifest.digest
    );
}

#[tokio::test]
async fn layers_the_repository_holds_are_referenced_not_compressed() {
    let layers = vec![layer("base"), layer("app")];
    let (tar, diff_ids) = legacy_export(&layers, "amd64");
    let held = Descriptor {
        media_type: media_type::DOCKER_LAYER_GZIP.to_owned(),
        size: 42,
        digest: format!("sha256:{}", "b".repeat(64))
            .parse()
            .expect("digest"),
    };
    let mut known = KnownLayers::default();
    known.insert(diff_ids[0].parse().expect("digest"), held.clone());
    // One layer known: the other is compressed.
    let (prepared, _temp) = prepare_export("linux/amd64", tar.clone(), &known, &diff_ids).await;
    let prepared = prepared.expect("prepared");
    assert_eq!(prepared.layers[0].descriptor, held);
    assert_eq!(prepared.layers[0].source, BlobSource::Repository);
    assert!(matches!(prepared.layers[1].source, BlobSource::File(_)));
    // Both known: nothing is compressed, even in this layout.
    known.insert(
        diff_ids[1].parse().expect("digest"),
        Descriptor {
            digest: format!("sha256:{}", "c".repeat(64))
                .parse()
                .expect("digest"),
            ..held
        },
    );
    let (prepared, temp) = prepare_export("linux/amd64", tar, &known, &diff_ids).await;
    let prepared = prepared.expect("prepared");
    assert!(prepared
        .layers
        .iter()
        .all(|l| l.source == BlobSource::Repository));
    let spooled: Vec<_> = std::fs::read_dir(temp.path())
        .expect("temp")
        .flat_map(|d| std::fs::read_dir(d.expect("entry").path()).expect("spool"))
        .collect();
    assert!(spooled.is_empty(), "{spooled:?}");
}

#[tokio::test]
async fn compressed_layers_of_the_containerd_store_go_as_they_are() {
    let raw = layer("stored compressed");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&raw).expect("gzip");
    let compressed = gz.finish().expect("gzip");
    let config = config("amd64", &[digest(&raw)]);
    let config_name = format!("blobs/sha256/{}", &digest(&config)[7..]);
    let layer_name = format!("blobs/sha256/{}", &digest(&compressed)[7..]);
    let tar = export(&[
        (layer_name.clone(), compressed.clone()),
        (config_name.clone(), config),
        (
            "manifest.json".to_owned(),
            save_manifest(&config_name, &[layer_name]),
        ),
    ]);
    let (prepared, _temp) = prepare_export("linux/amd64", tar, &KnownLayers::default(), &[]).await;
    let prepared = prepared.expect("prepared");
    assert_eq!(prepared.layers[0].descriptor.digest, digest(&compressed));
    assert_eq!(prepared.layers[0].descriptor.size, compressed.len() as u64);
}

#[tokio::test]
async fn an_image_for_another_platform_is_refused() {
    let (tar, diff_ids) = legacy_export(&[layer("base")], "amd64");
    let (prepared, _temp) =
        prepare_export("linux/arm64", tar, &KnownLayers::default(), &diff_ids).await;
    match prepared {
        Err(Error::PlatformMismatch(mismatch)) => assert_eq!(mismatch.found, "linux/amd64"),
        other => panic!("expected a platform mismatch, got {other:?}"),
    }
}

/// An export tar from entries that are files (`Ok`) or symbolic links (`Err(target)`,
/// a target without a leading `/`): the property tests' builder.
fn export_with_links(entries: &[(String, Result<Vec<u8>, String>)]) -> Vec<u8> {
    super::proptests::tar_of(entries)
}

/// Docker 20.10 writes a layer the image lists twice once, and the second `layer.tar` as a
/// symbolic link to the first (issue 14, §1).
#[tokio::test]
async fn a_repeated_layer_written_as_a_link_is_used_at_each_place() {
    let empty = layer("");
    let app = layer("app");
    let diff_ids = vec![digest(&app), digest(&empty), digest(&empty)];
    let config = config("amd64", &diff_ids);
    let config_name = format!("{}.json", &digest(&config)[7..]);
    let names: Vec<String> = (0..3).map(|i| format!("{i:064}/layer.tar")).collect();
    let tar = export_with_links(&[
        (config_name.clone(), Ok(config)),
        (names[0].clone(), Ok(app)),
        (names[1].clone(), Ok(empty)),
        (names[2].clone(), Err(format!("../{:064}/layer.tar", 1))),
        (
            "manifest.json".to_owned(),
            Ok(save_manifest(&config_name, &names)),
        ),
    ]);
    let (prepared, _temp) =
        prepare_export("linux/amd64", tar, &KnownLayers::default(), &diff_ids).await;
    let prepared = prepared.expect("prepared");
    assert_eq!(prepared.layers.len(), 3);
    assert_eq!(prepared.layers[1], prepared.layers[2]);
    assert_ne!(prepared.layers[0], prepared.layers[1]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&prepared.manifest.bytes).expect("json");
    assert_eq!(manifest["layers"].as_array().expect("layers").len(), 3);
}

/// An OCI layout holds a blob once however often the image lists it.
#[tokio::test]
async fn a_blob_listed_twice_in_an_oci_layout_is_used_twice() {
    let empty = layer("");
    let diff_ids = vec![digest(&empty), digest(&empty)];
    let config = config("amd64", &diff_ids);
    let config_name = format!("blobs/sha256/{}", &digest(&config)[7..]);
    let layer_name = format!("blobs/sha256/{}", &digest(&empty)[7..]);
    let tar = export(&[
        (layer_name.clone(), empty),
        (config_name.clone(), config),
        (
            "manifest.json".to_owned(),
            save_manifest(&config_name, &[layer_name.clone(), layer_name]),
        ),
    ]);
    for known in [KnownLayers::default(), {
        let mut known = KnownLayers::default();
        known.insert(
            diff_ids[0].parse().expect("digest"),
            Descriptor {
                media_type: media_type::DOCKER_LAYER_GZIP.to_owned(),
                size: 1,
                digest: format!("sha256:{}", "e".repeat(64))
                    .parse()
                    .expect("digest"),
            },
        );
        known
    }] {
        let (prepared, _temp) = prepare_export("linux/amd64", tar.clone(), &known, &diff_ids).await;
        let prepared = prepared.expect("prepared");
        assert_eq!(prepared.layers.len(), 2);
        assert_eq!(prepared.layers[0], prepared.layers[1]);
    }
}

#[rstest::rstest]
#[case::a_loop(&[("a/layer.tar", "../b/layer.tar"), ("b/layer.tar", "../a/layer.tar")])]
#[case::out_of_the_export(&[("a/layer.tar", "../../etc/passwd")])]
#[case::to_nothing(&[("a/layer.tar", "../c/layer.tar")])]
#[case::to_a_document(&[("a/layer.tar", "../manifest.json")])]
#[tokio::test]
async fn a_link_that_names_no_layer_is_a_missing_layer(#[case] links: &[(&str, &str)]) {
    let diff_ids = vec![digest(&layer("x"))];
    let config = config("amd64", &diff_ids);
    let config_name = format!("{}.json", &digest(&config)[7..]);
    let mut entries: Vec<(String, Result<Vec<u8>, String>)> = links
        .iter()
        .map(|(name, target)| ((*name).to_owned(), Err((*target).to_owned())))
        .collect();
    entries.push((config_name.clone(), Ok(config)));
    entries.push((
        "manifest.json".to_owned(),
        Ok(save_manifest(&config_name, &["a/layer.tar".to_owned()])),
    ));
    let (prepared, _temp) = prepare_export(
        "linux/amd64",
        export_with_links(&entries),
        &KnownLayers::default(),
        &diff_ids,
    )
    .await;
    match prepared {
        Err(Error::Malformed { reason, .. }) => {
            assert!(reason.contains("`a/layer.tar` is missing"), "{reason}");
        }
        other => panic!("expected a missing layer, got {other:?}"),
    }
}

/// A blob name says what its bytes are: a link to another blob is not that blob.
#[tokio::test]
async fn a_blob_name_that_is_not_its_content_is_refused() {
    let (one, two) = (layer("one"), layer("two"));
    let diff_ids = vec![digest(&one)];
    let config = config("amd64", &diff_ids);
    let config_name = format!("blobs/sha256/{}", &digest(&config)[7..]);
    let one_name = format!("blobs/sha256/{}", &digest(&one)[7..]);
    let two_name = format!("blobs/sha256/{}", &digest(&two)[7..]);
    let tar = export_with_links(&[
        (two_name.clone(), Ok(two)),
        (
            one_name.clone(),
            Err(format!("./{}", &digest(&layer("two"))[7..])),
        ),
        (config_name.clone(), Ok(config)),
        (
            "manifest.json".to_owned(),
            Ok(save_manifest(&config_name, &[one_name])),
        ),
    ]);
    let (prepared, _temp) =
        prepare_export("linux/amd64", tar, &KnownLayers::default(), &diff_ids).await;
    match prepared {
        Err(Error::Malformed { reason, .. }) => assert!(reason.contains("holds"), "{reason}"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

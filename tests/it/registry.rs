//! Reading back pushed children from the real registry: a child that is itself an index, as
//! Docker 29's containerd image store pushes it (the image plus an `unknown/unknown`
//! attestation entry), is flattened to the manifest for the requested platform.

use ecr_multiarch::github::Console;
use ecr_multiarch::oci::media_type::{DOCKER_MANIFEST, OCI_INDEX};
use ecr_multiarch::oci::Digest;
use ecr_multiarch::platform::Platform;
use ecr_multiarch::registry::{self, Index, IndexChild, Registry, RetryLog};

use super::{command, fixture, testbed, unique_repository, Run};

/// `curl` against the testbed registry with its credentials; returns the body.
fn curl(args: &[&str]) -> Vec<u8> {
    let tb = testbed();
    let creds = format!("{}:{}", tb.user, tb.password);
    let mut all = vec!["-sf", "-u", &creds];
    all.extend_from_slice(args);
    let out = command("curl", &all);
    assert!(out.status.success(), "curl {args:?} failed");
    out.stdout
}

#[tokio::test]
async fn a_child_index_is_flattened_to_the_requested_platform() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let tb = testbed();
    let repository = unique_repository("child-index");
    let context = fixture(&[(
        "Dockerfile",
        "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nRUN uname -m > /arch\n",
    )]);
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/arm64")
        .run();
    result.assert_success();
    let digests: serde_json::Value =
        serde_json::from_str(&result.outputs["platform-digests"]).unwrap();
    let manifest_digest = digests["linux/arm64"].as_str().unwrap().to_owned();
    let manifest_url = format!(
        "http://{}/v2/{repository}/manifests/{manifest_digest}",
        tb.registry
    );
    let manifest = curl(&["-H", &format!("Accept: {DOCKER_MANIFEST}"), &manifest_url]);

    // What a containerd-store daemon pushes for one platform: the attestation entry first,
    // so that taking the first entry would be wrong.
    let entry = |architecture: &str, os: &str| {
        serde_json::json!({
            "mediaType": DOCKER_MANIFEST,
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": architecture, "os": os},
        })
    };
    let mut attestation = entry("unknown", "unknown");
    attestation["annotations"] = serde_json::json!({
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": manifest_digest,
    });
    let child_index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [attestation, entry("arm64", "linux")],
    }))
    .unwrap();
    let child_digest = Digest::of(&child_index);
    let body = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body.path(), &child_index).unwrap();
    curl(&[
        "-X",
        "PUT",
        "-H",
        &format!("Content-Type: {OCI_INDEX}"),
        "--data-binary",
        &format!("@{}", body.path().display()),
        &format!(
            "http://{}/v2/{repository}/manifests/containerd-child",
            tb.registry
        ),
    ]);

    let registry = Registry::new(&tb.registry, &repository, &tb.user, &tb.password).unwrap();
    let console = Console::new(false);
    let log = RetryLog::new(&console, "test");
    let arm64: Platform = "linux/arm64".parse().unwrap();
    let resolved = registry
        .platform_image(&arm64, &child_digest, log)
        .await
        .expect("the child index resolves");
    assert_eq!(resolved.manifest.digest, manifest_digest);
    assert_eq!(resolved.manifest.media_type, DOCKER_MANIFEST);
    assert_eq!(resolved.manifest.bytes.len(), manifest.len());
    assert_eq!(resolved.platform, arm64);

    // The index built over it names the manifest, not the child index.
    let index = Index::new(vec![IndexChild::new(&arm64, &resolved.manifest)]);
    registry
        .put_manifest("flattened", &index.document, log)
        .await
        .expect("index pushed");
    let read_back = super::skopeo_raw(&repository, "flattened").unwrap();
    assert_eq!(read_back["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(
        read_back["manifests"][0]["digest"],
        manifest_digest.as_str()
    );
    assert_eq!(
        super::skopeo_digest(&repository, "flattened"),
        Some(index.document.digest.to_string())
    );

    // Asking the child index for a platform it does not hold is a platform mismatch.
    let amd64: Platform = "linux/amd64".parse().unwrap();
    let error = registry
        .platform_image(&amd64, &child_digest, log)
        .await
        .expect_err("no amd64 in it");
    assert!(
        matches!(error, registry::Error::PlatformMismatch { .. }),
        "{error}"
    );
}

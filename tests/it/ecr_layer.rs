//! The testbed's ECR layer (`scripts/ecr-layer.py`, issue 8): each ECR rule and each fault
//! provoked once against the running layer, what it counted, and what today's push (the Docker
//! Engine's `docker push`) does under it. Faults are switched on for the test's own repository,
//! so the tests beside it are not hit.

use std::time::{Duration, Instant};

use aws_sdk_ecr::types::{
    ImageIdentifier, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    ImageTagMutabilityExclusionFilterType,
};
use sha2::{Digest as _, Sha256};

use super::{
    command, create_moto_repository, ecr_client, fixture, http_client, layer_counters,
    layer_faults, layer_status, moto_repository, registry_tags, skopeo_digest, skopeo_raw, testbed,
    unique_repository, Run,
};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKERFILE: &str =
    "ARG TARGETARCH\nFROM testbase/busybox:${TARGETARCH}\nARG RUN_ID\nRUN echo \"$RUN_ID\" > /run-id\n";

fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// Raw distribution-API requests to the testbed registry, as a client of the layer.
struct Api {
    client: reqwest::Client,
}

/// One small image: its manifest bytes and digest.
struct Image {
    manifest: Vec<u8>,
    digest: String,
}

impl Api {
    fn new() -> Api {
        Api {
            client: http_client(),
        }
    }

    fn url(path: &str) -> String {
        format!("http://{}/v2/{path}", testbed().registry)
    }

    /// A request with the testbed's credentials.
    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::RequestBuilder {
        let tb = testbed();
        self.client
            .request(method, url)
            .basic_auth(&tb.user, Some(&tb.password))
    }

    /// Starts an upload; returns its `Location` (absolute, pointing back at the layer).
    async fn start_upload(&self, repository: &str) -> String {
        let answer = self
            .request(
                reqwest::Method::POST,
                &Api::url(&format!("{repository}/blobs/uploads/")),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 202, "starting an upload in `{repository}`");
        answer.headers()["location"].to_str().unwrap().to_owned()
    }

    /// Uploads a blob in one PUT after the POST (what issue 9's push does); returns its digest.
    async fn push_blob(&self, repository: &str, bytes: &[u8]) -> String {
        let digest = digest_of(bytes);
        let location = self.start_upload(repository).await;
        let answer = self
            .request(reqwest::Method::PUT, &with_digest(&location, &digest))
            .header("content-type", "application/octet-stream")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 201, "uploading {digest} to `{repository}`");
        digest
    }

    /// Uploads a config and a layer and returns the manifest over them (not pushed yet).
    async fn small_image(&self, repository: &str, seed: &str) -> Image {
        let layer = self
            .push_blob(repository, format!("layer of {seed}").as_bytes())
            .await;
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": {"Labels": {"seed": seed}},
            "rootfs": {"type": "layers", "diff_ids": [layer]},
        }))
        .unwrap();
        let config_digest = self.push_blob(repository, &config).await;
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": {
                "mediaType": "application/vnd.docker.container.image.v1+json",
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                "digest": layer,
                "size": format!("layer of {seed}").len(),
            }],
        }))
        .unwrap();
        Image {
            digest: digest_of(&manifest),
            manifest,
        }
    }

    /// PUTs a manifest under a tag or digest; returns the status and the error code, if any.
    async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> (u16, Option<String>) {
        let answer = self
            .request(
                reqwest::Method::PUT,
                &Api::url(&format!("{repository}/manifests/{reference}")),
            )
            .header("content-type", media_type)
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        status_and_code(answer).await
    }

    async fn get(&self, path: &str) -> (u16, Option<String>) {
        let answer = self
            .request(reqwest::Method::GET, &Api::url(path))
            .send()
            .await
            .unwrap();
        status_and_code(answer).await
    }
}

fn with_digest(location: &str, digest: &str) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

/// The status and the first distribution-spec error code of an answer.
async fn status_and_code(answer: reqwest::Response) -> (u16, Option<String>) {
    let status = answer.status().as_u16();
    let body = answer.bytes().await.unwrap_or_default();
    let code = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_owned));
    (status, code)
}

/// Tag -> digest, as moto's `ListImages` reports the repository.
async fn moto_tags(repository: &str) -> std::collections::BTreeMap<String, String> {
    let answer = ecr_client()
        .await
        .list_images()
        .repository_name(repository)
        .send()
        .await
        .unwrap();
    answer
        .image_ids()
        .iter()
        .filter_map(|id| Some((id.image_tag()?.to_owned(), id.image_digest()?.to_owned())))
        .collect()
}

#[tokio::test]
async fn a_repository_moto_does_not_have_is_name_unknown() {
    let repository = unique_repository("missing");
    let api = Api::new();
    assert_eq!(
        api.get(&format!("{repository}/tags/list")).await,
        (404, Some("NAME_UNKNOWN".to_owned()))
    );
    let answer = api
        .request(
            reqwest::Method::POST,
            &Api::url(&format!("{repository}/blobs/uploads/")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        status_and_code(answer).await,
        (404, Some("NAME_UNKNOWN".to_owned()))
    );

    // What `docker push` (today's push) makes of it.
    let reference = format!("{}/{repository}:latest", testbed().registry);
    assert!(
        command("docker", &["tag", "testbase/busybox:amd64", &reference])
            .status
            .success()
    );
    let push = command("docker", &["push", &reference]);
    command("docker", &["image", "rm", &reference]);
    assert!(!push.status.success());
    // Docker 20.10 prints the code, 28.5 the message.
    let stderr = String::from_utf8_lossy(&push.stderr);
    assert!(
        stderr.contains("name unknown") || stderr.contains("does not exist in the registry"),
        "{stderr}"
    );

    let counters = layer_counters(&repository).await;
    assert!(counters.rule("name_unknown") >= 3, "{counters:?}");
    assert_eq!(counters.requests("manifest_put"), 0, "{counters:?}");
    assert!(moto_repository(&repository).await.is_none());
}

#[tokio::test]
async fn credentials_are_checked_before_any_rule() {
    let repository = unique_repository("unauthorized");
    let url = Api::url(&format!("{repository}/tags/list"));
    let client = http_client();
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // docker-registry's own challenge, unchanged.
    assert_eq!(
        anonymous.headers()["www-authenticate"],
        "Basic realm=\"testbed\""
    );
    assert_eq!(
        status_and_code(anonymous).await,
        (401, Some("UNAUTHORIZED".to_owned()))
    );
    let wrong = client
        .get(&url)
        .basic_auth("AWS", Some("wrong"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.rule("unauthorized"), 2, "{counters:?}");
    assert_eq!(counters.rule("name_unknown"), 0, "{counters:?}");
}

#[tokio::test]
async fn an_existing_tag_of_an_immutable_repository_is_tag_invalid() {
    let repository = unique_repository("immutable");
    ecr_client()
        .await
        .create_repository()
        .repository_name(&repository)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .unwrap();
    let api = Api::new();
    let first = api.small_image(&repository, "first").await;
    let second = api.small_image(&repository, "second").await;
    assert_eq!(
        api.put_manifest(&repository, "v1", DOCKER_MANIFEST, &first.manifest)
            .await,
        (201, None)
    );
    // Same digest or not: ECR refuses (aws/containers-roadmap#2179).
    for image in [&first, &second] {
        assert_eq!(
            api.put_manifest(&repository, "v1", DOCKER_MANIFEST, &image.manifest)
                .await,
            (400, Some("TAG_INVALID".to_owned()))
        );
    }
    assert_eq!(
        api.put_manifest(&repository, "v2", DOCKER_MANIFEST, &second.manifest)
            .await,
        (201, None)
    );
    assert_eq!(skopeo_digest(&repository, "v1"), Some(first.digest.clone()));
    let tags = moto_tags(&repository).await;
    assert_eq!(tags["v1"], first.digest);
    assert_eq!(tags["v2"], second.digest);
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.rule("tag_invalid"), 2, "{counters:?}");
    assert_eq!(counters.responses("manifest_put", "201"), 2, "{counters:?}");
}

/// Today's push tags every platform image in the Engine and `docker push`es it: a re-run on an
/// IMMUTABLE repository meets its own per-platform tag and fails (issue 9 makes this exit 0).
fn exclusion(filter: &str) -> ImageTagMutabilityExclusionFilter {
    ImageTagMutabilityExclusionFilter::builder()
        .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
        .filter(filter)
        .build()
        .unwrap()
}

/// Exclusion filters are ECR wildcards matched against the whole tag (`*` any run of
/// characters). moto stores them but matches them as regexes from the start of the tag
/// (`latest` matches `latest-amd64`, `v*` matches every tag); the layer decides as ECR does.
#[tokio::test]
async fn exclusion_filters_decide_which_tags_are_immutable() {
    let ecr = ecr_client().await;
    let api = Api::new();
    // IMMUTABLE_WITH_EXCLUSION: everything immutable but `latest` and `dev-*`.
    let immutable = unique_repository("immutable-except");
    ecr.create_repository()
        .repository_name(&immutable)
        .image_tag_mutability(ImageTagMutability::ImmutableWithExclusion)
        .image_tag_mutability_exclusion_filters(exclusion("latest"))
        .image_tag_mutability_exclusion_filters(exclusion("dev-*"))
        .send()
        .await
        .unwrap();
    let described = moto_repository(&immutable).await.unwrap();
    assert_eq!(described.image_tag_mutability_exclusion_filters().len(), 2);
    let first = api.small_image(&immutable, "first").await;
    let second = api.small_image(&immutable, "second").await;
    for tag in ["latest", "dev-7", "v1", "latest-amd64"] {
        assert_eq!(
            api.put_manifest(&immutable, tag, DOCKER_MANIFEST, &first.manifest)
                .await,
            (201, None),
            "{tag}"
        );
    }
    for (tag, expected) in [
        ("latest", (201, None)),
        ("dev-7", (201, None)),
        ("v1", (400, Some("TAG_INVALID".to_owned()))),
        ("latest-amd64", (400, Some("TAG_INVALID".to_owned()))),
    ] {
        assert_eq!(
            api.put_manifest(&immutable, tag, DOCKER_MANIFEST, &second.manifest)
                .await,
            expected,
            "overwriting `{tag}` in an IMMUTABLE_WITH_EXCLUSION repository"
        );
    }
    let tags = moto_tags(&immutable).await;
    assert_eq!(tags["latest"], second.digest);
    assert_eq!(tags["dev-7"], second.digest);
    assert_eq!(tags["v1"], first.digest);
    assert_eq!(tags["latest-amd64"], first.digest);
    // A manifest by digest goes into the registry, but moto cannot hold an untagged image in a
    // repository with exclusion filters (it matches the filters against the missing tag).
    let untagged = api.small_image(&immutable, "untagged").await;
    assert_eq!(
        api.put_manifest(
            &immutable,
            &untagged.digest,
            DOCKER_MANIFEST,
            &untagged.manifest
        )
        .await,
        (201, None)
    );
    let counters = layer_counters(&immutable).await;
    assert_eq!(counters.moto("unrecordable"), 1, "{counters:?}");
    assert_eq!(counters.moto("errors"), 0, "{counters:?}");

    // MUTABLE_WITH_EXCLUSION: only `v*` immutable.
    let mutable = unique_repository("mutable-except");
    ecr.create_repository()
        .repository_name(&mutable)
        .image_tag_mutability(ImageTagMutability::MutableWithExclusion)
        .image_tag_mutability_exclusion_filters(exclusion("v*"))
        .send()
        .await
        .unwrap();
    let first = api.small_image(&mutable, "first").await;
    let second = api.small_image(&mutable, "second").await;
    for tag in ["latest", "v1"] {
        assert_eq!(
            api.put_manifest(&mutable, tag, DOCKER_MANIFEST, &first.manifest)
                .await,
            (201, None),
            "{tag}"
        );
    }
    assert_eq!(
        api.put_manifest(&mutable, "latest", DOCKER_MANIFEST, &second.manifest)
            .await,
        (201, None)
    );
    assert_eq!(
        api.put_manifest(&mutable, "v1", DOCKER_MANIFEST, &second.manifest)
            .await,
        (400, Some("TAG_INVALID".to_owned()))
    );
    let tags = moto_tags(&mutable).await;
    assert_eq!(tags["latest"], second.digest);
    assert_eq!(tags["v1"], first.digest);
    let counters = layer_counters(&mutable).await;
    assert_eq!(counters.rule("tag_invalid"), 1, "{counters:?}");
    assert_eq!(counters.moto("errors"), 0, "{counters:?}");
}

#[tokio::test]
async fn an_index_needs_its_children_in_the_repository() {
    let api = Api::new();
    let elsewhere = unique_repository("index-child-elsewhere");
    let repository = unique_repository("index");
    create_moto_repository(&elsewhere).await;
    create_moto_repository(&repository).await;
    let child = api.small_image(&elsewhere, "child").await;
    assert_eq!(
        api.put_manifest(&elsewhere, &child.digest, DOCKER_MANIFEST, &child.manifest)
            .await,
        (201, None)
    );
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{
            "mediaType": DOCKER_MANIFEST,
            "digest": child.digest,
            "size": child.manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
        }],
    }))
    .unwrap();
    // The child is in another repository only.
    assert_eq!(
        api.put_manifest(&repository, "latest", OCI_INDEX, &index)
            .await,
        (400, Some("MANIFEST_BLOB_UNKNOWN".to_owned()))
    );
    assert_eq!(skopeo_digest(&repository, "latest"), None);
    // Once the child is pushed here, the index goes in.
    let here = api.small_image(&repository, "child").await;
    assert_eq!(here.digest, child.digest);
    assert_eq!(
        api.put_manifest(&repository, &here.digest, DOCKER_MANIFEST, &here.manifest)
            .await,
        (201, None)
    );
    assert_eq!(
        api.put_manifest(&repository, "latest", OCI_INDEX, &index)
            .await,
        (201, None)
    );
    assert_eq!(
        skopeo_digest(&repository, "latest"),
        Some(digest_of(&index))
    );
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.rule("manifest_blob_unknown"), 1, "{counters:?}");
}

/// What a run pushed is what the ECR API lists, with the registry's digests: `ListImages`,
/// `DescribeImages` and `BatchGetImage` (the action's own `latest=auto` reads `ListImages`).
#[tokio::test]
async fn every_pushed_manifest_is_recorded_in_the_ecr_api() {
    let repository = unique_repository("recorded");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let result = Run::new(&repository, context.path())
        .input("tags", "latest,v1")
        .run();
    result.assert_success();
    let digest = result.outputs["digest"].clone();
    let tags = moto_tags(&repository).await;
    let mut registry = registry_tags(&repository);
    registry.sort();
    assert_eq!(tags.keys().cloned().collect::<Vec<_>>(), registry);
    for (tag, recorded) in &tags {
        assert_eq!(
            skopeo_digest(&repository, tag).as_ref(),
            Some(recorded),
            "{tag}"
        );
    }
    assert_eq!(tags["latest"], digest);
    assert_eq!(tags["v1"], digest);
    let ecr = ecr_client().await;
    let got = ecr
        .batch_get_image()
        .repository_name(&repository)
        .image_ids(ImageIdentifier::builder().image_tag("v1").build())
        .send()
        .await
        .unwrap();
    let manifest = got.images()[0].image_manifest().unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(manifest).unwrap(),
        skopeo_raw(&repository, "v1").unwrap()
    );
    let described = ecr
        .describe_images()
        .repository_name(&repository)
        .image_ids(ImageIdentifier::builder().image_digest(&digest).build())
        .send()
        .await
        .unwrap();
    let mut described_tags = described.image_details()[0].image_tags().to_vec();
    described_tags.sort();
    assert_eq!(described_tags, ["latest", "v1"]);

    // A manifest pushed by digest is an untagged image; deleting it deletes it in moto too.
    let api = Api::new();
    let untagged = api.small_image(&repository, "untagged").await;
    assert_eq!(
        api.put_manifest(
            &repository,
            &untagged.digest,
            DOCKER_MANIFEST,
            &untagged.manifest
        )
        .await,
        (201, None)
    );
    let by_digest = || {
        ecr.describe_images()
            .repository_name(&repository)
            .image_ids(
                ImageIdentifier::builder()
                    .image_digest(&untagged.digest)
                    .build(),
            )
            .send()
    };
    let found = by_digest().await.unwrap();
    assert!(found.image_details()[0].image_tags().is_empty());
    let deleted = api
        .request(
            reqwest::Method::DELETE,
            &Api::url(&format!("{repository}/manifests/{}", untagged.digest)),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 202);
    let error = by_digest().await.expect_err("deleted in moto too");
    assert!(
        error
            .as_service_error()
            .is_some_and(|e| e.is_image_not_found_exception()),
        "{error:?}"
    );
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.moto("errors"), 0, "{counters:?}");
    assert_eq!(counters.moto("batch_delete_image"), 1, "{counters:?}");
    assert!(
        counters.moto("put_image") >= 4,
        "every tag and the untagged manifest: {counters:?}"
    );
}

#[tokio::test]
async fn throttled_manifest_puts_get_429_in_their_repository_only() {
    let api = Api::new();
    let repository = unique_repository("throttled");
    let neighbour = unique_repository("not-throttled");
    create_moto_repository(&repository).await;
    create_moto_repository(&neighbour).await;
    let image = api.small_image(&repository, "throttled").await;
    let other = api.small_image(&neighbour, "neighbour").await;
    layer_faults(
        &repository,
        serde_json::json!({"throttle_manifest_puts": 2}),
    )
    .await;
    assert_eq!(
        api.put_manifest(&neighbour, "latest", DOCKER_MANIFEST, &other.manifest)
            .await,
        (201, None)
    );
    for _ in 0..2 {
        assert_eq!(
            api.put_manifest(&repository, "latest", DOCKER_MANIFEST, &image.manifest)
                .await,
            (429, Some("TOOMANYREQUESTS".to_owned()))
        );
    }
    assert_eq!(
        api.put_manifest(&repository, "latest", DOCKER_MANIFEST, &image.manifest)
            .await,
        (201, None)
    );
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.fault("throttled"), 2, "{counters:?}");
    assert_eq!(counters.responses("manifest_put", "429"), 2);
    assert_eq!(layer_counters(&neighbour).await.fault("throttled"), 0);
}

#[tokio::test]
async fn every_kth_request_is_unavailable() {
    let api = Api::new();
    let repository = unique_repository("unavailable");
    create_moto_repository(&repository).await;
    layer_faults(&repository, serde_json::json!({"unavailable_every": 3})).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(api.get(&format!("{repository}/tags/list")).await);
    }
    let unavailable = (503, Some("UNAVAILABLE".to_owned()));
    // docker-registry answers an empty repository's tag list with NAME_UNKNOWN itself.
    let passed = (404, Some("NAME_UNKNOWN".to_owned()));
    assert_eq!(
        statuses,
        [
            passed.clone(),
            passed.clone(),
            unavailable.clone(),
            passed.clone(),
            passed,
            unavailable
        ]
    );
    layer_faults(&repository, serde_json::json!({"unavailable_every": 0})).await;
    assert_eq!(api.get(&format!("{repository}/tags/list")).await.0, 404);
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.fault("unavailable"), 2, "{counters:?}");
    assert_eq!(counters.requests("tag_list"), 7, "{counters:?}");
}

#[tokio::test]
async fn a_dropped_upload_gets_no_answer() {
    let api = Api::new();
    let repository = unique_repository("dropped");
    create_moto_repository(&repository).await;
    layer_faults(&repository, serde_json::json!({"drop_blob_uploads": 1})).await;
    let blob: Vec<u8> = (0..251u8).cycle().take(256 * 1024).collect();
    let digest = digest_of(&blob);
    let location = api.start_upload(&repository).await;
    let dropped = api
        .request(reqwest::Method::PUT, &with_digest(&location, &digest))
        .body(blob.clone())
        .send()
        .await;
    let error = dropped.expect_err("the connection is closed without an answer");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.fault("dropped"), 1, "{counters:?}");
    // Half the body was read (and forwarded) before the drop.
    assert_eq!(counters.blob_bytes_received, 128 * 1024, "{counters:?}");
    // The fault is spent: the next upload passes.
    assert_eq!(api.push_blob(&repository, &blob).await, digest);
}

#[tokio::test]
async fn a_delay_holds_every_response() {
    let api = Api::new();
    let repository = unique_repository("delayed");
    create_moto_repository(&repository).await;
    layer_faults(&repository, serde_json::json!({"delay_ms": 400})).await;
    for _ in 0..2 {
        let started = Instant::now();
        assert_eq!(api.get(&format!("{repository}/tags/list")).await.0, 404);
        assert!(started.elapsed() >= Duration::from_millis(400));
    }
    layer_faults(&repository, serde_json::json!({"delay_ms": 0})).await;
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.fault("delayed"), 2, "{counters:?}");
}

/// The proxy details clients depend on: upload `Location`s that point back at the layer, a
/// chunked PATCH (as the Engine sends it) with its `Range`, `HEAD` with `Content-Length`, a
/// ranged `GET`, and a cross-repository mount.
#[tokio::test]
async fn blob_uploads_pass_through_as_clients_send_them() {
    let api = Api::new();
    let repository = unique_repository("passthrough");
    let mounted = unique_repository("mounted");
    create_moto_repository(&repository).await;
    create_moto_repository(&mounted).await;
    let blob: Vec<u8> = (0..=255u8).rev().cycle().take(300_000).collect();
    let digest = digest_of(&blob);
    let location = api.start_upload(&repository).await;
    assert!(
        location.starts_with(&format!(
            "http://{}/v2/{repository}/blobs/uploads/",
            testbed().registry
        )),
        "{location}"
    );
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        blob.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let patched = api
        .request(reqwest::Method::PATCH, &location)
        .header("content-type", "application/octet-stream")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 202);
    assert_eq!(patched.headers()["range"], "0-299999");
    let location = patched.headers()["location"].to_str().unwrap().to_owned();
    let put = api
        .request(reqwest::Method::PUT, &with_digest(&location, &digest))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 201);

    let blob_url = Api::url(&format!("{repository}/blobs/{digest}"));
    let head = api
        .request(reqwest::Method::HEAD, &blob_url)
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-length"], "300000");
    assert_eq!(head.headers()["docker-content-digest"], digest.as_str());
    let ranged = api
        .request(reqwest::Method::GET, &blob_url)
        .header("range", "bytes=1000-1999")
        .send()
        .await
        .unwrap();
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.headers()["content-range"], "bytes 1000-1999/300000");
    assert_eq!(ranged.bytes().await.unwrap(), blob[1000..2000]);

    let mount = api
        .request(
            reqwest::Method::POST,
            &Api::url(&format!(
                "{mounted}/blobs/uploads/?mount={digest}&from={repository}"
            )),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(mount.status(), 201);
    assert_eq!(
        mount.headers()["location"],
        format!("http://{}/v2/{mounted}/blobs/{digest}", testbed().registry).as_str()
    );
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.blob_bytes_received, 300_000, "{counters:?}");
    assert_eq!(counters.blob_bytes_sent, 1000, "{counters:?}");
    assert_eq!(counters.requests("upload_patch"), 1, "{counters:?}");
    assert_eq!(counters.requests("blob_head"), 1, "{counters:?}");
    assert_eq!(layer_counters(&mounted).await.responses("mount", "201"), 1);
}

/// A 1 GiB layer streams through the layer: its memory stays bounded (it never holds a body).
#[tokio::test]
async fn a_1_gib_blob_streams_through_with_bounded_memory() {
    const BLOCK: usize = 1 << 20;
    const BLOCKS: usize = 1024;
    let api = Api::new();
    let repository = unique_repository("one-gib");
    create_moto_repository(&repository).await;
    // The same bytes on every run (so the registry keeps one copy); the digest computed here.
    let block: bytes::Bytes = (0..BLOCK / 32)
        .flat_map(|i| Sha256::digest(i.to_le_bytes()))
        .collect::<Vec<u8>>()
        .into();
    let digest = {
        let mut hasher = Sha256::new();
        for _ in 0..BLOCKS {
            hasher.update(&block);
        }
        format!("sha256:{:x}", hasher.finalize())
    };
    let location = api.start_upload(&repository).await;
    let body = futures_util::stream::iter(
        (0..BLOCKS).map(move |_| Ok::<_, std::io::Error>(block.clone())),
    );
    let started = Instant::now();
    let answer = api
        .request(reqwest::Method::PUT, &with_digest(&location, &digest))
        .header("content-length", (BLOCK * BLOCKS).to_string())
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(answer.status(), 201);
    let head = api
        .request(
            reqwest::Method::HEAD,
            &Api::url(&format!("{repository}/blobs/{digest}")),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        head.headers()["content-length"],
        (BLOCK * BLOCKS).to_string().as_str()
    );
    let counters = layer_counters(&repository).await;
    assert_eq!(counters.blob_bytes_received, (BLOCK * BLOCKS) as u64);
    let status = layer_status().await;
    let peak = status["peak_rss_bytes"].as_u64().unwrap();
    eprintln!(
        "1 GiB upload through the ECR layer: {:.1} s, layer peak RSS {} MiB",
        elapsed.as_secs_f64(),
        peak >> 20
    );
    assert!(
        peak < 128 << 20,
        "the layer's peak RSS is {} MiB",
        peak >> 20
    );
}

/// A matrix of jobs pushing one new repository at once: every run creates or finds the
/// repository, and every tag ends up holding its own two-platform index.
#[tokio::test]
async fn eight_runs_at_once_share_one_new_repository() {
    let repository = unique_repository("eight-at-once");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let runs: Vec<_> = (1..=8)
        .map(|n| {
            let repository = repository.clone();
            let context = context.path().to_owned();
            std::thread::spawn(move || {
                Run::new(&repository, &context)
                    .input("tags", &format!("run-{n}"))
                    .run()
            })
        })
        .collect();
    let results: Vec<_> = runs.into_iter().map(|r| r.join().unwrap()).collect();
    for result in &results {
        result.assert_success();
    }
    let listed = ecr_client()
        .await
        .describe_repositories()
        .send()
        .await
        .unwrap();
    assert_eq!(
        listed
            .repositories()
            .iter()
            .filter(|r| r.repository_name() == Some(repository.as_str()))
            .count(),
        1
    );
    let recorded = moto_tags(&repository).await;
    for (n, result) in (1..=8).zip(&results) {
        let tag = format!("run-{n}");
        let index = skopeo_raw(&repository, &tag).expect("the tag exists");
        let mut platforms: Vec<String> = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let child = m["digest"].as_str().unwrap();
                // Each child reads back as an image manifest.
                let manifest = skopeo_raw(&repository, child).expect("the child exists");
                assert!(manifest["config"]["digest"].is_string(), "{manifest}");
                format!("{}/{}", m["platform"]["os"], m["platform"]["architecture"])
                    .replace('"', "")
            })
            .collect();
        platforms.sort();
        assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{tag}");
        assert_eq!(
            skopeo_digest(&repository, &tag),
            Some(result.outputs["digest"].clone())
        );
        assert_eq!(recorded[&tag], result.outputs["digest"], "{tag} in moto");
    }
}

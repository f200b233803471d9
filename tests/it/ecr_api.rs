//! The testbed's ECR API layer (`scripts/ecr-api-layer.py`, issue 18), in front of moto: the
//! helpers tests use to script ECR API answers and count calls, and the tests that show it
//! forwards exactly, answers in order, and holds what moto lacks.
//!
//! A test scripts an action with [`Override`]: for an `X-Amz-Target` operation name and
//! optionally a repository, an image digest or tag, and an access key id (the run's
//! `AWS_ACCESS_KEY_ID`, for registry-level actions such as `GetRegistryScanningConfiguration`
//! while other tests run beside it), a sequence of answers served in order, the last repeating:
//!
//! ```ignore
//! Override::new("DescribeImageScanFindings")
//!     .repository(&repository)
//!     .digest(&digest)
//!     .answer(json!({"imageScanStatus": {"status": "IN_PROGRESS"}}))
//!     .answer(json!({"imageScanStatus": {"status": "COMPLETE"}, "imageScanFindings": {...}}))
//!     .install()
//!     .await;
//! let calls = api_calls(&repository).await;
//! assert_eq!(calls.count("DescribeImageScanFindings"), 2);
//! ```
//!
//! The AWS SDK retries `ThrottlingException` (and 5xx) itself, up to 3 attempts in all: a
//! scripted throttle shows up as extra calls, and as a failure only when every attempt got it.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::{create_moto_repository, ecr_client, http_client, required, unique_repository};

/// The ECR API layer's control API, e.g. `http://127.0.0.1:5003/_ecr-api`.
pub fn api_control() -> String {
    required("TESTBED_ECR_API_CONTROL")
}

/// A scripted answer for one ECR API action (see the module's notes).
#[must_use]
pub struct Override {
    spec: serde_json::Map<String, Value>,
    answers: Vec<Value>,
}

impl Override {
    /// An override of `action`, the operation name (`StartImageScan`), for every caller until
    /// narrowed.
    pub fn new(action: &str) -> Override {
        let mut spec = serde_json::Map::new();
        spec.insert("action".to_owned(), json!(action));
        Override {
            spec,
            answers: Vec::new(),
        }
    }

    /// Only calls naming this repository (`repositoryName`, or the one name of
    /// `repositoryNames`).
    pub fn repository(mut self, name: &str) -> Override {
        self.spec.insert("repository".to_owned(), json!(name));
        self
    }

    /// Only calls naming this image digest (`imageId`, `imageIds`, `imageDigest`).
    pub fn digest(mut self, digest: &str) -> Override {
        self.spec.insert("digest".to_owned(), json!(digest));
        self
    }

    /// Only calls naming this image tag.
    pub fn tag(mut self, tag: &str) -> Override {
        self.spec.insert("tag".to_owned(), json!(tag));
        self
    }

    /// Only calls signed with this access key id (set `AWS_ACCESS_KEY_ID` to a unique value on
    /// the run; moto serves any key as account 123456789012).
    pub fn access_key(mut self, key: &str) -> Override {
        self.spec.insert("access_key".to_owned(), json!(key));
        self
    }

    /// Then: HTTP 200 with this JSON body.
    pub fn answer(self, body: Value) -> Override {
        self.answer_status(200, body)
    }

    /// Then: this status and JSON body.
    #[allow(clippy::needless_pass_by_value)] // by value, as `answer` takes it
    pub fn answer_status(mut self, status: u16, body: Value) -> Override {
        let mut answer = serde_json::Map::new();
        answer.insert("status".to_owned(), json!(status));
        answer.insert("body".to_owned(), body);
        self.answers.push(Value::Object(answer));
        self
    }

    /// Then: an ECR error (HTTP 400), e.g. `LimitExceededException`.
    pub fn error(self, kind: &str, message: &str) -> Override {
        self.error_status(400, kind, message)
    }

    /// Then: an ECR error with this status.
    pub fn error_status(mut self, status: u16, kind: &str, message: &str) -> Override {
        self.answers
            .push(json!({"status": status, "error": kind, "message": message}));
        self
    }

    /// Then: moto's own answer (or the layer's, for what moto lacks).
    pub fn forward(mut self) -> Override {
        self.answers.push(json!({"forward": true}));
        self
    }

    /// Registers it; answers its id (for [`remove_override`]).
    pub async fn install(mut self) -> u64 {
        assert!(!self.answers.is_empty(), "an override needs an answer");
        self.spec
            .insert("answers".to_owned(), Value::Array(self.answers));
        let spec = Value::Object(self.spec);
        let answer = http_client()
            .post(format!("{}/overrides", api_control()))
            .json(&spec)
            .send()
            .await
            .expect("the ECR API layer's control API answers");
        let status = answer.status();
        let body: Value = answer.json().await.unwrap_or_default();
        assert!(status.is_success(), "installing override {spec}: {body}");
        body["id"].as_u64().unwrap()
    }
}

/// Removes one override (those of a unique repository may simply stay).
pub async fn remove_override(id: u64) {
    let answer = http_client()
        .delete(format!("{}/overrides?id={id}", api_control()))
        .send()
        .await
        .expect("the ECR API layer's control API answers");
    assert!(answer.status().is_success());
}

/// ECR API calls counted by action.
#[derive(Debug, Default, serde::Deserialize)]
pub struct ApiCalls {
    pub calls: BTreeMap<String, u64>,
}

impl ApiCalls {
    pub fn count(&self, action: &str) -> u64 {
        self.calls.get(action).copied().unwrap_or(0)
    }
}

/// The calls clients (the action, the test; not the ECR layer) made naming this repository.
pub async fn api_calls(repository: &str) -> ApiCalls {
    api_calls_where(&[("repository", repository)]).await
}

/// The calls matching a query: `repository`, `access_key`, `digest`, and `origin` (`client`
/// unless given, `ecr-layer`, or `any`).
pub async fn api_calls_where(query: &[(&str, &str)]) -> ApiCalls {
    // Repository names, digests and access keys need no escaping in a query.
    let query: Vec<String> = query.iter().map(|(k, v)| format!("{k}={v}")).collect();
    http_client()
        .get(format!("{}/calls?{}", api_control(), query.join("&")))
        .send()
        .await
        .expect("the ECR API layer's control API answers")
        .json()
        .await
        .expect("calls JSON")
}

/// Sets an image's archive status (`ACTIVE`, `ARCHIVED`, `ACTIVATING`) in the layer, as
/// `UpdateImageStorageClass` and ECR's own lifecycle archiving would.
pub async fn set_image_status(repository: &str, digest: &str, status: &str) {
    let answer = http_client()
        .post(format!("{}/image-status", api_control()))
        .json(&json!({"repository": repository, "digest": digest, "status": status}))
        .send()
        .await
        .expect("the ECR API layer's control API answers");
    assert!(
        answer.status().is_success(),
        "{}",
        answer.text().await.unwrap()
    );
}

/// One raw ECR API request (JSON 1.1, signed with a dummy signature, which moto does not
/// check) to `endpoint`: status, headers, body.
async fn raw_call(
    endpoint: &str,
    action: &str,
    payload: &Value,
) -> (u16, BTreeMap<String, String>, String) {
    let answer = http_client()
        .post(format!("{}/", endpoint.trim_end_matches('/')))
        .header("content-type", "application/x-amz-json-1.1")
        .header(
            "x-amz-target",
            format!("AmazonEC2ContainerRegistry_V20150921.{action}"),
        )
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ecr/aws4_request, \
             SignedHeaders=host, Signature=00",
        )
        .body(payload.to_string())
        .send()
        .await
        .unwrap();
    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                value.to_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    (status, headers, answer.text().await.unwrap())
}

#[tokio::test]
async fn an_override_answers_in_order_the_last_repeating_and_calls_are_counted() {
    let repository = unique_repository("api-override");
    let ecr = ecr_client().await;
    ecr.create_repository()
        .repository_name(&repository)
        .send()
        .await
        .expect("CreateRepository through the layer");
    Override::new("StartImageScan")
        .repository(&repository)
        .error("UnsupportedImageTypeException", "The image is of a type that cannot be scanned.")
        .answer(json!({
            "registryId": "123456789012",
            "repositoryName": repository,
            "imageId": {"imageDigest": "sha256:0000000000000000000000000000000000000000000000000000000000000001"},
            "imageScanStatus": {"status": "IN_PROGRESS"}
        }))
        .install()
        .await;
    let scan = || {
        ecr.start_image_scan()
            .repository_name(&repository)
            .image_id(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag("latest")
                    .build(),
            )
            .send()
    };
    let first = scan().await.expect_err("the first answer is an error");
    assert!(
        first
            .as_service_error()
            .is_some_and(|e| e.is_unsupported_image_type_exception()),
        "{first:?}"
    );
    for _ in 0..2 {
        let answer = scan().await.expect("the second answer, then repeated");
        assert_eq!(
            answer.image_scan_status().and_then(|s| s.status()),
            Some(&aws_sdk_ecr::types::ScanStatus::InProgress)
        );
    }
    let calls = api_calls(&repository).await;
    assert_eq!(calls.count("StartImageScan"), 3, "{calls:?}");
    assert_eq!(calls.count("CreateRepository"), 1, "{calls:?}");
}

#[tokio::test]
async fn a_throttle_is_retried_by_the_sdk_and_an_override_narrows_to_a_digest_and_a_key() {
    let repository = unique_repository("api-throttle");
    let key = format!("AKIA{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    create_moto_repository(&repository).await;
    let ecr = ecr_client().await;
    let digest = "sha256:00000000000000000000000000000000000000000000000000000000000000aa";
    Override::new("DescribeImageScanFindings")
        .repository(&repository)
        .digest(digest)
        .error("ThrottlingException", "Rate exceeded")
        .answer(json!({
            "repositoryName": repository,
            "imageId": {"imageDigest": digest},
            "imageScanStatus": {"status": "COMPLETE"},
            "imageScanFindings": {"findings": [], "findingSeverityCounts": {}}
        }))
        .install()
        .await;
    let findings = |digest: &str| {
        ecr.describe_image_scan_findings()
            .repository_name(&repository)
            .image_id(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(digest)
                    .build(),
            )
            .send()
    };
    let answer = findings(digest)
        .await
        .expect("the SDK retries the throttle");
    assert_eq!(
        answer.image_scan_status().and_then(|s| s.status()),
        Some(&aws_sdk_ecr::types::ScanStatus::Complete)
    );
    // Another digest is not matched: moto answers (that image does not exist).
    let other = findings("sha256:00000000000000000000000000000000000000000000000000000000000000bb")
        .await
        .expect_err("moto has no such image");
    assert!(other.as_service_error().is_some(), "{other:?}");
    let calls = api_calls_where(&[("repository", &repository), ("digest", digest)]).await;
    assert_eq!(calls.count("DescribeImageScanFindings"), 2, "{calls:?}");

    // `LimitExceededException` is a throttle to the SDK as well: retried, 3 attempts in all.
    Override::new("StartImageScan")
        .repository(&repository)
        .error(
            "LimitExceededException",
            "The scan quota per image has been exceeded. Wait and retry the scan later.",
        )
        .install()
        .await;
    let limited = ecr
        .start_image_scan()
        .repository_name(&repository)
        .image_id(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_digest(digest)
                .build(),
        )
        .send()
        .await
        .expect_err("every attempt is refused");
    assert!(
        limited
            .as_service_error()
            .is_some_and(|e| e.is_limit_exceeded_exception()),
        "{limited:?}"
    );
    assert_eq!(api_calls(&repository).await.count("StartImageScan"), 3);

    // A registry-level action scripted for one access key: other callers get moto's answer.
    let id = Override::new("GetRegistryScanningConfiguration")
        .access_key(&key)
        .answer(json!({
            "registryId": "123456789012",
            "scanningConfiguration": {"scanType": "ENHANCED", "rules": []}
        }))
        .install()
        .await;
    let keyed = aws_sdk_ecr::Client::from_conf(
        ecr.config()
            .to_builder()
            .credentials_provider(aws_sdk_ecr::config::Credentials::new(
                &key, "test", None, None, "test",
            ))
            .build(),
    );
    let scripted = keyed
        .get_registry_scanning_configuration()
        .send()
        .await
        .unwrap();
    assert_eq!(
        scripted
            .scanning_configuration()
            .and_then(|c| c.scan_type()),
        Some(&aws_sdk_ecr::types::ScanType::Enhanced)
    );
    let calls = api_calls_where(&[("access_key", &key)]).await;
    assert_eq!(
        calls.count("GetRegistryScanningConfiguration"),
        1,
        "{calls:?}"
    );
    remove_override(id).await;
}

#[tokio::test]
async fn what_the_layer_does_not_answer_reaches_moto_and_comes_back_exactly() {
    let repository = unique_repository("api-pass");
    create_moto_repository(&repository).await;
    // An override that does not match (no tag in the call) and one that forwards.
    Override::new("GetLifecyclePolicy")
        .repository(&repository)
        .tag("not-in-the-call")
        .error("ServerException", "must not be served")
        .install()
        .await;
    Override::new("DescribeRepositories")
        .repository(&repository)
        .forward()
        .install()
        .await;
    let endpoint = std::env::var("AWS_ENDPOINT_URL_ECR").unwrap();
    let moto = super::testbed().moto_url.clone();
    assert_ne!(endpoint, moto, "the tests talk to the ECR API layer");
    for (action, payload) in [
        (
            "DescribeRepositories",
            json!({"repositoryNames": [repository]}),
        ),
        (
            "DescribeRepositories",
            json!({"repositoryNames": [format!("{repository}-missing")]}),
        ),
        ("GetLifecyclePolicy", json!({"repositoryName": repository})),
        (
            "CreateRepository",
            json!({"repositoryName": "Not A Valid Name"}),
        ),
    ] {
        let (status, mut headers, body) = raw_call(&endpoint, action, &payload).await;
        let (moto_status, mut moto_headers, moto_body) = raw_call(&moto, action, &payload).await;
        assert_eq!(status, moto_status, "{action} {payload}");
        assert_eq!(body, moto_body, "{action} {payload}");
        // What differs from one answer to the next, and the connection's own headers.
        for each in [&mut headers, &mut moto_headers] {
            for name in ["date", "x-amzn-requestid", "connection", "keep-alive"] {
                each.remove(name);
            }
        }
        assert_eq!(headers, moto_headers, "{action} {payload}");
    }
    let calls = api_calls(&repository).await;
    assert_eq!(calls.count("DescribeRepositories"), 1, "{calls:?}");
    assert_eq!(calls.count("GetLifecyclePolicy"), 1, "{calls:?}");
}

#[tokio::test]
async fn creation_templates_are_answered_by_the_layer() {
    use aws_sdk_ecr::types::{ImageTagMutability, RctAppliedFor};
    let prefix = unique_repository("api-template");
    let ecr = ecr_client().await;
    let created = ecr
        .create_repository_creation_template()
        .prefix(&prefix)
        .applied_for(RctAppliedFor::CreateOnPush)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .send()
        .await
        .expect("CreateRepositoryCreationTemplate");
    assert_eq!(
        created
            .repository_creation_template()
            .and_then(|t| t.prefix()),
        Some(prefix.as_str())
    );
    let again = ecr
        .create_repository_creation_template()
        .prefix(&prefix)
        .applied_for(RctAppliedFor::CreateOnPush)
        .send()
        .await
        .expect_err("a second template with the prefix");
    assert!(
        again
            .as_service_error()
            .is_some_and(|e| e.is_template_already_exists_exception()),
        "{again:?}"
    );
    let described = ecr
        .describe_repository_creation_templates()
        .prefixes(&prefix)
        .send()
        .await
        .unwrap();
    let templates = described.repository_creation_templates();
    assert_eq!(templates.len(), 1);
    assert_eq!(
        templates[0].image_tag_mutability(),
        Some(&ImageTagMutability::Immutable)
    );
    assert_eq!(templates[0].applied_for(), [RctAppliedFor::CreateOnPush]);
    ecr.delete_repository_creation_template()
        .prefix(&prefix)
        .send()
        .await
        .unwrap();
    let gone = ecr
        .delete_repository_creation_template()
        .prefix(&prefix)
        .send()
        .await
        .expect_err("deleted already");
    assert!(
        gone.as_service_error()
            .is_some_and(|e| e.is_template_not_found_exception()),
        "{gone:?}"
    );
}

#[tokio::test]
async fn the_layer_holds_archive_status_and_ecr_lists_archived_images_only_when_asked() {
    use aws_sdk_ecr::types::{
        ImageIdentifier, ImageStatus, ImageStatusFilter, ListImagesFilter, TargetStorageClass,
    };
    let repository = unique_repository("api-archive");
    create_moto_repository(&repository).await;
    let ecr = ecr_client().await;
    let mut digests = Vec::new();
    for tag in ["old", "new"] {
        // A small manifest, as moto records it (its digest is moto's own).
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "size": 2, "digest": format!("sha256:{:064x}", digests.len() + 1)},
            "layers": []
        });
        // moto's own digest is wrong (TESTBED.md): give the real one, as the ECR layer does.
        let text = manifest.to_string();
        let digest = {
            use sha2::Digest as _;
            format!("sha256:{:x}", sha2::Sha256::digest(text.as_bytes()))
        };
        ecr.put_image()
            .repository_name(&repository)
            .image_manifest(text)
            .image_digest(&digest)
            .image_tag(tag)
            .send()
            .await
            .unwrap();
        digests.push(digest);
    }
    let archived = ecr
        .update_image_storage_class()
        .repository_name(&repository)
        .image_id(ImageIdentifier::builder().image_tag("old").build())
        .target_storage_class(TargetStorageClass::Archive)
        .send()
        .await
        .expect("UpdateImageStorageClass");
    assert_eq!(archived.image_status(), Some(&ImageStatus::Archived));
    let tags = |filter: Option<ImageStatusFilter>| {
        let ecr = ecr.clone();
        let repository = repository.clone();
        async move {
            let answer = ecr
                .list_images()
                .repository_name(&repository)
                .set_filter(filter.map(|f| ListImagesFilter::builder().image_status(f).build()))
                .send()
                .await
                .unwrap();
            let mut tags: Vec<String> = answer
                .image_ids()
                .iter()
                .filter_map(|id| id.image_tag().map(str::to_owned))
                .collect();
            tags.sort();
            tags
        }
    };
    assert_eq!(
        tags(None).await,
        ["new"],
        "ECR lists active images by default"
    );
    assert_eq!(tags(Some(ImageStatusFilter::Archived)).await, ["old"]);
    assert_eq!(tags(Some(ImageStatusFilter::Any)).await, ["new", "old"]);
    let described = ecr
        .describe_images()
        .repository_name(&repository)
        .image_ids(ImageIdentifier::builder().image_tag("old").build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.image_details()[0].image_status(),
        Some(&ImageStatus::Archived)
    );
    assert!(described.image_details()[0].last_archived_at().is_some());
    // A restore takes hours in ECR: the image is ACTIVATING until the test says otherwise.
    let restored = ecr
        .update_image_storage_class()
        .repository_name(&repository)
        .image_id(ImageIdentifier::builder().image_digest(&digests[0]).build())
        .target_storage_class(TargetStorageClass::Standard)
        .send()
        .await
        .unwrap();
    assert_eq!(restored.image_status(), Some(&ImageStatus::Activating));
    set_image_status(&repository, &digests[0], "ACTIVE").await;
    assert_eq!(tags(None).await, ["new", "old"]);
}

//! Repository settings (issue 18): what a created repository holds in moto (encryption,
//! lifecycle and repository policies), the drift warning and `update-repository` on an existing
//! one, bad inputs refused before anything exists, `create-repository: template` left to the
//! ECR API layer's create-on-push, the dual-stack and FIPS registry hosts, and an archived
//! image under the first tag; and tag mutability with its exclusion filters, applied when
//! creating and reported, never changed, on an existing repository.

use std::path::Path;

use base64::Engine as _;
use rstest::rstest;
use serde_json::{json, Value};

use ecr_multiarch::ecr::Ecr;
use ecr_multiarch::inputs::{Args, Request};

use super::ecr_api::{api_calls, Override};
use super::{
    create_moto_repository, ecr_client, fixture, layer_counters, moto_repository, registry_tags,
    testbed, unique_repository, Run, RunResult,
};

const DOCKERFILE: &str = "FROM testbase/busybox:amd64\nCOPY app.txt /app.txt\n";

fn lifecycle_policy() -> Value {
    json!({"rules": [{
        "rulePriority": 1,
        "description": "keep 10",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
        "action": {"type": "expire"}
    }]})
}

fn repository_policy() -> Value {
    json!({"Version": "2012-10-17", "Statement": [{
        "Sid": "pull",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::123456789012:root"},
        "Action": ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    }]})
}

const KMS_KEY: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

/// A one-platform build context with the two policy files beside the Dockerfile.
fn context(text: &str) -> tempfile::TempDir {
    fixture(&[
        ("Dockerfile", DOCKERFILE),
        ("app.txt", text),
        ("lifecycle.json", &lifecycle_policy().to_string()),
        ("policy.json", &repository_policy().to_string()),
    ])
}

fn run(repository: &str, context: &tempfile::TempDir) -> Run {
    let mut run = Run::new(repository, context.path());
    run.input("platforms", "linux/amd64");
    run
}

fn path(context: &tempfile::TempDir, name: &str) -> String {
    context.path().join(name).to_str().unwrap().to_owned()
}

fn warnings(result: &RunResult) -> Vec<String> {
    result
        .stdout
        .lines()
        .filter(|l| l.starts_with("::warning"))
        .map(str::to_owned)
        .collect()
}

async fn lifecycle_of(repository: &str) -> Option<Value> {
    let answer = ecr_client()
        .await
        .get_lifecycle_policy()
        .repository_name(repository)
        .send()
        .await
        .ok()?;
    serde_json::from_str(answer.lifecycle_policy_text()?).ok()
}

async fn policy_of(repository: &str) -> Option<Value> {
    let answer = ecr_client()
        .await
        .get_repository_policy()
        .repository_name(repository)
        .send()
        .await
        .ok()?;
    serde_json::from_str(answer.policy_text()?).ok()
}

#[tokio::test]
async fn a_created_repository_holds_the_kms_key_and_both_policies() {
    let repository = unique_repository("settings-create");
    let context = context("create");
    let result = run(&repository, &context)
        .input("encryption", "KMS")
        .input("kms-key", KMS_KEY)
        .input("lifecycle-policy", &path(&context, "lifecycle.json"))
        .input("repository-policy", &path(&context, "policy.json"))
        .run();
    result.assert_success();
    assert!(warnings(&result).is_empty(), "{}", result.stdout);
    let created = moto_repository(&repository).await.expect("created");
    let encryption = created.encryption_configuration().unwrap();
    assert_eq!(encryption.encryption_type().as_str(), "KMS");
    assert_eq!(encryption.kms_key(), Some(KMS_KEY));
    assert_eq!(lifecycle_of(&repository).await, Some(lifecycle_policy()));
    assert_eq!(policy_of(&repository).await, Some(repository_policy()));
    assert!(
        result.summary.contains("created with encryption KMS"),
        "{}",
        result.summary
    );
}

#[tokio::test]
async fn an_existing_repository_that_differs_gets_one_warning_then_update_repository_changes_it() {
    let repository = unique_repository("settings-drift");
    create_moto_repository(&repository).await;
    let context = context("drift");
    let settings = |run: &mut Run| {
        run.input("image-tag-mutability", "IMMUTABLE")
            .input("scan-on-push", "true")
            .input("encryption", "KMS")
            .input("lifecycle-policy", &path(&context, "lifecycle.json"))
            .input("repository-policy", &path(&context, "policy.json"));
    };
    let mut first = run(&repository, &context);
    settings(&mut first);
    let result = first.input("tags", "one").run();
    result.assert_success();
    let warnings = warnings(&result);
    assert_eq!(warnings.len(), 1, "{}", result.stdout);
    for line in [
        "image-tag-mutability: workflow IMMUTABLE, repository MUTABLE",
        "scan-on-push: workflow true, repository false",
        "encryption: workflow KMS, repository AES256",
        "lifecycle-policy: workflow",
        "repository-policy: workflow",
    ] {
        assert!(warnings[0].contains(line), "{line} in {}", warnings[0]);
    }
    // Nothing changed.
    let unchanged = moto_repository(&repository).await.unwrap();
    assert_eq!(
        unchanged.image_tag_mutability().unwrap().as_str(),
        "MUTABLE"
    );
    assert_eq!(lifecycle_of(&repository).await, None);

    let mut second = run(&repository, &context);
    settings(&mut second);
    let result = second
        .input("update-repository", "true")
        .input("tags", "two")
        .run();
    result.assert_success();
    for change in [
        "changed image-tag-mutability",
        "changed scan-on-push",
        "changed lifecycle-policy",
        "changed repository-policy",
    ] {
        assert!(
            result.stdout.contains(change),
            "{change}: {}",
            result.stdout
        );
    }
    // Encryption cannot change: still the one warning, for it alone.
    let warnings = self::warnings(&result);
    assert_eq!(warnings.len(), 1, "{}", result.stdout);
    assert!(warnings[0].contains("encryption: workflow KMS, repository AES256"));
    assert!(!warnings[0].contains("image-tag-mutability"));
    let changed = moto_repository(&repository).await.unwrap();
    assert_eq!(
        changed.image_tag_mutability().unwrap().as_str(),
        "IMMUTABLE"
    );
    assert!(changed
        .image_scanning_configuration()
        .unwrap()
        .scan_on_push());
    assert_eq!(
        changed
            .encryption_configuration()
            .unwrap()
            .encryption_type()
            .as_str(),
        "AES256"
    );
    assert_eq!(lifecycle_of(&repository).await, Some(lifecycle_policy()));
    assert_eq!(policy_of(&repository).await, Some(repository_policy()));
}

#[tokio::test]
async fn bad_settings_end_the_run_before_anything_is_created() {
    let context = fixture(&[
        ("Dockerfile", DOCKERFILE),
        ("app.txt", "x"),
        ("broken.json", "{\"rules\": ["),
        ("norules.json", "{\"rules\": []}"),
        ("array.json", "[]"),
    ]);
    // Inputs, the input the error names, and what it says.
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
    let cases: &[Case] = &[
        (
            &[("lifecycle-policy", "broken.json")],
            "lifecycle-policy",
            "is not JSON",
        ),
        (
            &[("lifecycle-policy", "norules.json")],
            "lifecycle-policy",
            "no `rules`",
        ),
        (
            &[("repository-policy", "array.json")],
            "repository-policy",
            "not a JSON object",
        ),
        (
            &[("repository-policy", "missing.json")],
            "repository-policy",
            "cannot read",
        ),
        (&[("kms-key", KMS_KEY)], "kms-key", "`AES256`"),
        (
            &[("encryption", "AES256"), ("kms-key", KMS_KEY)],
            "kms-key",
            "`AES256`",
        ),
        (
            &[("encryption", "KMS"), ("kms-key", "my-key")],
            "kms-key",
            "not a KMS key",
        ),
        (&[("encryption", "DES")], "encryption", "`DES`"),
        (
            &[("endpoint", "ipv6")],
            "endpoint",
            "`ipv6` is not an endpoint",
        ),
        (
            &[("endpoint", "fips"), ("aws-region", "eu-west-1")],
            "endpoint",
            "`us-gov-west-1`",
        ),
        (
            &[("update-repository", "yes")],
            "update-repository",
            "not a boolean",
        ),
        (
            &[("create-repository", "maybe")],
            "create-repository",
            "`template`",
        ),
    ];
    for (inputs, input, message) in cases {
        let repository = unique_repository("settings-bad");
        let mut run = run(&repository, &context);
        for (name, value) in *inputs {
            let value = if Path::new(value).extension().is_some_and(|e| e == "json") {
                path(&context, value)
            } else {
                (*value).to_owned()
            };
            run.input(name, &value);
        }
        let result = run.run();
        assert_eq!(
            result.code, 1,
            "{inputs:?}: {}\n{}",
            result.stdout, result.stderr
        );
        let error = result.error_line();
        assert!(
            error.contains(&format!("Invalid input {input}")) && error.contains(message),
            "{inputs:?}: {error}"
        );
        // No ECR call at all (before the test's own look).
        assert_eq!(api_calls(&repository).await.calls.len(), 0, "{inputs:?}");
        assert!(moto_repository(&repository).await.is_none(), "{inputs:?}");
    }
}

#[tokio::test]
async fn create_repository_template_leaves_creation_to_the_first_push() {
    use aws_sdk_ecr::types::{ImageTagMutability, RctAppliedFor};
    let prefix = unique_repository("settings-tpl");
    let repository = format!("{prefix}/app");
    ecr_client()
        .await
        .create_repository_creation_template()
        .prefix(&prefix)
        .applied_for(RctAppliedFor::CreateOnPush)
        .image_tag_mutability(ImageTagMutability::Immutable)
        .lifecycle_policy(lifecycle_policy().to_string())
        .send()
        .await
        .unwrap();
    let context = context("template");
    let result = run(&repository, &context)
        .input("create-repository", "template")
        .run();
    result.assert_success();
    assert!(
        result
            .stdout
            .contains(&format!("creation template `{prefix}`")),
        "{}",
        result.stdout
    );
    assert_eq!(api_calls(&repository).await.count("CreateRepository"), 0);
    let created = moto_repository(&repository)
        .await
        .expect("created at the first push");
    assert_eq!(
        created.image_tag_mutability().unwrap().as_str(),
        "IMMUTABLE"
    );
    assert_eq!(lifecycle_of(&repository).await, Some(lifecycle_policy()));
    assert!(super::skopeo_digest(&repository, "latest").is_some());

    // Without a matching template, `template` cannot create: exit 1, nothing pushed.
    let orphan = unique_repository("settings-notpl");
    let result = run(&orphan, &context)
        .input("create-repository", "template")
        .run();
    assert_eq!(result.code, 1, "{}", result.stdout);
    assert!(
        result
            .error_line()
            .contains("No repository creation template"),
        "{}",
        result.stdout
    );
    assert!(moto_repository(&orphan).await.is_none());
}

/// An ECR token whose proxy endpoint names ECR's default host on the testbed registry's port,
/// for runs signed with `key` only: the run then computes its registry host from it.
async fn token_on_the_testbed_port(key: &str) -> String {
    let port = testbed().registry.rsplit_once(':').unwrap().1.to_owned();
    let tb = testbed();
    Override::new("GetAuthorizationToken")
        .access_key(key)
        .answer(json!({"authorizationData": [{
            "authorizationToken": base64::engine::general_purpose::STANDARD
                .encode(format!("{}:{}", tb.user, tb.password)),
            "expiresAt": 4_102_444_800_u64,
            "proxyEndpoint": format!("https://123456789012.dkr.ecr.us-east-1.amazonaws.com:{port}"),
        }]}))
        .install()
        .await;
    port
}

#[rstest]
#[case::dual_stack(Some("dual-stack"), None, "123456789012.dkr-ecr.us-east-1.on.aws")]
#[case::fips(
    Some("fips"),
    None,
    "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com"
)]
#[case::fips_from_the_sdk_setting(
    None,
    Some("AWS_USE_FIPS_ENDPOINT"),
    "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com"
)]
#[tokio::test]
async fn the_endpoint_names_the_registry_host_and_the_push_goes_there(
    #[case] endpoint: Option<&str>,
    #[case] variable: Option<&str>,
    #[case] host: &str,
) {
    let repository = unique_repository("settings-endpoint");
    let key = format!("AKIA{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
    let port = token_on_the_testbed_port(&key).await;
    let context = context("endpoint");
    let mut run = run(&repository, &context);
    // No `registry`: the host comes from ECR's token and the endpoint.
    run.input("registry", "")
        .env("AWS_ACCESS_KEY_ID", &key)
        .input("repository-cache", "false");
    if let Some(endpoint) = endpoint {
        run.input("endpoint", endpoint);
    }
    if let Some(variable) = variable {
        run.env(variable, "true");
    }
    let result = run.run();
    result.assert_success();
    let registry = format!("{host}:{port}");
    assert_eq!(result.outputs["registry"], registry);
    assert!(
        result.outputs["image-uri"].starts_with(&format!("{registry}/{repository}@sha256:")),
        "{:?}",
        result.outputs
    );
    assert!(result.summary.contains(&registry), "{}", result.summary);
    let counters = layer_counters(&repository).await;
    let hosts: Value = serde_json::to_value(&counters.hosts).unwrap();
    assert!(
        counters.hosts.get(&registry).copied().unwrap_or(0) > 0 && counters.hosts.len() == 1,
        "every registry call names `{registry}`: {hosts}"
    );
}

#[tokio::test]
async fn an_archived_image_under_the_first_tag_is_built_again_and_the_tag_active_again() {
    use aws_sdk_ecr::types::{ImageIdentifier, ImageStatus, TargetStorageClass};
    let repository = unique_repository("settings-archived");
    let context = context("archived");
    let skip_run = || {
        run(&repository, &context)
            .input("skip-unchanged", "true")
            .run()
    };
    let first = skip_run();
    first.assert_success();
    let ecr = ecr_client().await;
    ecr.update_image_storage_class()
        .repository_name(&repository)
        .image_id(ImageIdentifier::builder().image_tag("latest").build())
        .target_storage_class(TargetStorageClass::Archive)
        .send()
        .await
        .expect("archiving the image under `latest`");
    // ECR refuses to hand out an archived image.
    assert!(super::skopeo_digest(&repository, "latest").is_none());

    let second = skip_run();
    second.assert_success();
    let metadata: Value = serde_json::from_str(&second.outputs["metadata"]).unwrap();
    assert_eq!(metadata["build"]["skipped"], false, "{metadata}");
    assert!(
        !second.stdout.contains("build cache from"),
        "no cache import from the archived image: {}",
        second.stdout
    );
    assert!(second.stdout.contains("ECR's archive"), "{}", second.stdout);
    assert!(
        second.summary.contains("ECR's archive"),
        "{}",
        second.summary
    );
    let described = ecr
        .describe_images()
        .repository_name(&repository)
        .image_ids(ImageIdentifier::builder().image_tag("latest").build())
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.image_details()[0].image_status(),
        Some(&ImageStatus::Active),
        "`latest` holds an active image again"
    );
    assert!(super::skopeo_digest(&repository, "latest").is_some());
}

/// A request for `repository` with the given tag mutability inputs, as the action reads them.
fn mutability_request(repository: &str, context: &Path, mode: &str, filters: &str) -> Request {
    Request::try_from(Args {
        repository: Some(repository.to_owned()),
        context: Some(context.to_str().unwrap().to_owned()),
        aws_region: std::env::var("AWS_REGION").ok(),
        image_tag_mutability: Some(mode.to_owned()),
        image_tag_mutability_exclusion_filters: Some(filters.to_owned()),
        ..Args::default()
    })
    .expect("valid inputs")
}

/// The mode and filters moto holds for a repository.
async fn moto_mutability(repository: &str) -> (String, Vec<String>) {
    let described = moto_repository(repository)
        .await
        .expect("the repository exists");
    (
        described
            .image_tag_mutability()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default(),
        described
            .image_tag_mutability_exclusion_filters()
            .iter()
            .map(|f| {
                assert_eq!(f.filter_type().as_str(), "WILDCARD");
                f.filter().to_owned()
            })
            .collect(),
    )
}

#[rstest]
#[case::mutable("MUTABLE", "", &[])]
#[case::immutable("IMMUTABLE", "", &[])]
#[case::immutable_with_exclusion("IMMUTABLE_WITH_EXCLUSION", "latest\ndev-*", &["latest", "dev-*"])]
#[case::mutable_with_exclusion("MUTABLE_WITH_EXCLUSION", "v*.*.*,stable", &["v*.*.*", "stable"])]
#[tokio::test]
async fn each_tag_mutability_mode_is_applied_when_creating(
    #[case] mode: &str,
    #[case] filters: &str,
    #[case] expected_filters: &[&str],
) {
    let repository = unique_repository("mutability");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let request = mutability_request(&repository, context.path(), mode, filters);
    let ecr = Ecr::connect(&request.ecr_connection()).await;
    let ensured = ecr
        .ensure_repository(&request.wanted_repository())
        .await
        .expect("created");
    assert!(ensured.created);
    assert_eq!(ensured.mutability, request.image_tag_mutability);
    // What ECR (moto) now holds, read with a client of its own.
    let (held_mode, held_filters) = moto_mutability(&repository).await;
    assert_eq!(held_mode, mode);
    assert_eq!(held_filters, expected_filters);
}

#[tokio::test]
async fn an_existing_repository_keeps_its_mutability_and_reports_it() {
    let repository = unique_repository("mutability-existing");
    ecr_client()
        .await
        .create_repository()
        .repository_name(&repository)
        .image_tag_mutability(aws_sdk_ecr::types::ImageTagMutability::ImmutableWithExclusion)
        .image_tag_mutability_exclusion_filters(
            aws_sdk_ecr::types::ImageTagMutabilityExclusionFilter::builder()
                .filter_type(aws_sdk_ecr::types::ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter("latest")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    // The inputs ask for something else: they apply only when creating.
    let request = mutability_request(&repository, context.path(), "MUTABLE", "");
    let ensured = Ecr::connect(&request.ecr_connection())
        .await
        .ensure_repository(&request.wanted_repository())
        .await
        .expect("exists");
    assert!(!ensured.created);
    assert_eq!(
        ensured.mutability.to_string(),
        "IMMUTABLE_WITH_EXCLUSION (latest)"
    );
    assert!(!ensured.mutability.is_immutable("latest"));
    assert!(ensured.mutability.is_immutable("v1.0.0"));
    assert_eq!(
        moto_mutability(&repository).await,
        (
            "IMMUTABLE_WITH_EXCLUSION".to_owned(),
            vec!["latest".to_owned()]
        )
    );
}

#[tokio::test]
async fn the_action_creates_the_repository_with_the_exclusion_filters() {
    let repository = unique_repository("mutability-run");
    let context = fixture(&[("Dockerfile", DOCKERFILE), ("app.txt", "v1")]);
    let result = Run::new(&repository, context.path())
        .input("platforms", "linux/amd64")
        .input("tags", "v1.0.0,latest")
        .input("image-tag-mutability", "IMMUTABLE_WITH_EXCLUSION")
        .input("image-tag-mutability-exclusion-filters", "latest, dev-*")
        .run();
    result.assert_success();
    assert_eq!(result.json()["metadata"]["repository-created"], true);
    assert_eq!(
        moto_mutability(&repository).await,
        (
            "IMMUTABLE_WITH_EXCLUSION".to_owned(),
            vec!["latest".to_owned(), "dev-*".to_owned()]
        )
    );
    // Only the requested tags, as arch tags are off by default (plus today's build tag).
    let mut tags = registry_tags(&repository);
    tags.retain(|t| !t.starts_with("build-"));
    tags.sort();
    assert_eq!(tags, vec!["latest", "v1.0.0"]);
}

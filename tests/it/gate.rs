//! The vulnerability gate (issue 16): children pushed by digest, ECR's scan of each awaited and
//! judged, and only then the index under the tags. moto answers the scan calls; a test sets the
//! exact findings of an image through moto's API (`/moto-api/static/ecr/scan-finding-results`,
//! matched on the repository and the image's digest), so the digests are learnt first from a
//! `platform-only` run of the same build (the same inputs give the same digests: the testbed's
//! base images have fixed times, and `SOURCE_DATE_EPOCH` fixes the labels').

use std::collections::BTreeMap;
use std::path::Path;

use rstest::{rstest, Context};
use serde_json::{json, Value};

use super::ecr_api::{api_calls, api_calls_where, Override};
use super::{
    assert_refused_input, fixture, registry_tags, skopeo_digest, skopeo_raw, testbed,
    unique_repository, Run, RunResult,
};
use crate::assert_user_sees;

const DOCKERFILE: &str = "\
ARG TARGETARCH
FROM testbase/busybox:${TARGETARCH}
ARG MARK
LABEL mark=${MARK}
";

const EPOCH: &str = "1767225600";

/// A run of the test build in `repository` with fixed labels; `mark` makes a test's images its own.
fn run(repository: &str, context: &Path, mark: &str) -> Run {
    let mut run = Run::new(repository, context);
    run.input("build-args", &format!("MARK={mark}"))
        .env("SOURCE_DATE_EPOCH", EPOCH);
    run
}

/// Pushes the test build's platform images by digest, under no tag, with no gate (a
/// `platform-only` run), and answers platform -> digest.
fn push_children(repository: &str, context: &Path, mark: &str) -> BTreeMap<String, String> {
    push_platforms(repository, context, mark, "linux/amd64,linux/arm64")
}

/// [`push_children`] for some platforms.
fn push_platforms(
    repository: &str,
    context: &Path,
    mark: &str,
    platforms: &str,
) -> BTreeMap<String, String> {
    let folder = tempfile::tempdir().unwrap();
    let result = run(repository, context, mark)
        .input("platforms", platforms)
        .input("platform-only", "true")
        .input("results-folder", folder.path().to_str().unwrap())
        .run();
    result.assert_success();
    result.platform_digests()
}

fn region() -> String {
    std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".to_owned())
}

/// Sets what `DescribeImageScanFindings` answers for `repository@digest`: moto hands each
/// image the next result set for it, once, and keeps answering that one. (moto also matches a
/// result's missing tag with an untagged image's missing tag: the empty tag keeps it to the
/// digest.)
async fn set_scan(repository: &str, digest: &str, status: &str, findings: Value) {
    let mut result = json!({
        "registryId": "123456789012",
        "repositoryName": repository,
        "imageId": {"imageDigest": digest, "imageTag": ""},
        "imageScanStatus": {"status": status, "description": format!("the scan says {status}")},
    });
    if !findings.is_null() {
        result["imageScanFindings"] = findings;
    }
    let answer = super::http_client()
        .post(format!(
            "{}/moto-api/static/ecr/scan-finding-results",
            testbed().moto_url
        ))
        .json(&json!({"region": region(), "results": [result]}))
        .send()
        .await
        .expect("moto answers");
    assert!(answer.status().is_success(), "{}", answer.status());
}

/// [`set_scan`] for each child: `(platform, status, findings)`.
async fn set_scans(
    repository: &str,
    children: &BTreeMap<String, String>,
    scans: Vec<(&str, &str, Value)>,
) {
    for (platform, status, findings) in scans {
        set_scan(repository, &children[platform], status, findings).await;
    }
}

/// [`push_children`], then sets what their scans say: `(status, findings)` for `linux/amd64`,
/// then for `linux/arm64`.
async fn scanned_children(
    repository: &str,
    context: &Path,
    mark: &str,
    [amd64, arm64]: [(&str, Value); 2],
) -> BTreeMap<String, String> {
    let children = push_children(repository, context, mark);
    set_scans(
        repository,
        &children,
        vec![
            ("linux/amd64", amd64.0, amd64.1),
            ("linux/arm64", arm64.0, arm64.1),
        ],
    )
    .await;
    children
}

/// Basic findings: `(id, severity, package, version)`.
fn basic(findings: &[(&str, &str, &str, &str)]) -> Value {
    let mut counts: BTreeMap<&str, u32> = BTreeMap::new();
    for (_, severity, _, _) in findings {
        *counts.entry(severity).or_default() += 1;
    }
    json!({
        "imageScanCompletedAt": chrono::Utc::now().timestamp(),
        "vulnerabilitySourceUpdatedAt": chrono::Utc::now().timestamp(),
        "findingSeverityCounts": counts,
        "findings": findings.iter().map(|(id, severity, package, version)| json!({
            "name": id,
            "uri": format!("https://cve.example/{id}"),
            "severity": severity,
            "attributes": [
                {"key": "package_name", "value": package},
                {"key": "package_version", "value": version},
            ],
        })).collect::<Vec<_>>(),
    })
}

/// Enhanced findings: `(id, severity, fixAvailable, fixed version)`.
fn enhanced(findings: &[(&str, &str, &str, &str)]) -> Value {
    json!({
        "imageScanCompletedAt": chrono::Utc::now().timestamp(),
        "vulnerabilitySourceUpdatedAt": chrono::Utc::now().timestamp(),
        "findingSeverityCounts": {},
        "enhancedFindings": findings.iter().map(|(id, severity, fix, fixed)| json!({
            "awsAccountId": "123456789012",
            "findingArn": format!("arn:aws:inspector2:us-east-1:123456789012:finding/{id}"),
            "severity": severity,
            "status": "ACTIVE",
            "title": format!("{id} - libexample"),
            "type": "PACKAGE_VULNERABILITY",
            "fixAvailable": fix,
            "packageVulnerabilityDetails": {
                "vulnerabilityId": id,
                "source": "NVD",
                "vulnerablePackages": [{"name": "libexample", "version": "1.0", "fixedInVersion": fixed}],
            },
        })).collect::<Vec<_>>(),
    })
}

fn clean() -> Value {
    basic(&[])
}

fn vulnerabilities(result: &RunResult) -> Value {
    serde_json::from_str(&result.outputs["vulnerabilities"]).unwrap()
}

fn gate_metadata(result: &RunResult) -> Value {
    result.metadata()["vulnerability-gate"].clone()
}

fn ignore_file(dir: &Path, entries: &str) -> String {
    let path = dir.join("vulnerability-ignore.yml");
    std::fs::write(&path, entries).unwrap();
    path.to_str().unwrap().to_owned()
}

fn assert_no_tag(repository: &str, children: &BTreeMap<String, String>) {
    assert_eq!(
        registry_tags(repository),
        Vec::<String>::new(),
        "no tag moved"
    );
    for digest in children.values() {
        assert!(
            skopeo_raw(repository, digest).is_some(),
            "the child {digest} stays in the repository"
        );
    }
}

#[tokio::test]
async fn a_high_finding_on_arm64_refuses_and_moves_no_tag() {
    let repository = unique_repository("gate-high");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = scanned_children(
        &repository,
        context.path(),
        "high",
        [
            (
                "COMPLETE",
                basic(&[("CVE-2026-0101", "MEDIUM", "zlib", "1.2")]),
            ),
            (
                "COMPLETE",
                basic(&[("CVE-2026-0102", "HIGH", "openssl", "3.0.1")]),
            ),
        ],
    )
    .await;

    let refused = run(&repository, context.path(), "high")
        .input("vulnerability-gate", "HIGH")
        .expect_exit(1)
        .run();
    // Only arm64 refuses, for its HIGH finding.
    assert_user_sees!("high_finding_refused_error", refused.error_line());
    assert_eq!(
        serde_json::from_value::<BTreeMap<String, String>>(
            refused.metadata()["platform-digests"].clone()
        )
        .unwrap(),
        children,
        "judged the children pushed"
    );
    assert_no_tag(&repository, &children);
    // The summary's table per platform ("refused", "No tag moved"), and the outputs.
    assert_user_sees!("high_finding_refused_summary", &refused.summary);
    let counts = vulnerabilities(&refused);
    assert_eq!(counts["linux/arm64"]["HIGH"], 1);
    assert_eq!(counts["linux/amd64"]["MEDIUM"], 1);
    assert_eq!(gate_metadata(&refused)["passed"], false);

    // The same findings pass a `critical` gate: the index goes under the tag.
    let passed = run(&repository, context.path(), "high")
        .input("vulnerability-gate", "critical")
        .run();
    passed.assert_success();
    assert_eq!(
        skopeo_digest(&repository, "latest"),
        Some(passed.outputs["digest"].clone())
    );
    assert_user_sees!("high_finding_passed_summary", &passed.summary);
    assert_eq!(vulnerabilities(&passed)["linux/arm64"]["HIGH"], 1);
    let calls = &gate_metadata(&passed)["ecr-api-calls"];
    assert_eq!(calls["GetRegistryScanningConfiguration"], 1, "{calls}");
    // The scans of the refused run are read again, not started again.
    assert_eq!(calls["DescribeImageScanFindings"], 2, "{calls}");
    assert!(calls.get("StartImageScan").is_none(), "{calls}");
}

#[tokio::test]
async fn an_ignore_entry_lets_a_finding_through_until_it_expires() {
    let repository = unique_repository("gate-ignore");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = scanned_children(
        &repository,
        context.path(),
        "ignore",
        [
            ("COMPLETE", clean()),
            (
                "COMPLETE",
                basic(&[("CVE-2026-0201", "HIGH", "openssl", "3.0.1")]),
            ),
        ],
    )
    .await;
    let files = tempfile::tempdir().unwrap();

    let expired = ignore_file(
        files.path(),
        "- id: CVE-2026-0201\n  reason: only in the test tooling\n  expires: 2020-01-31\n",
    );
    let refused = run(&repository, context.path(), "ignore")
        .input("vulnerability-gate", "high")
        .input("vulnerability-ignore", &expired)
        .expect_exit(1)
        .run();
    assert!(
        refused.stdout.contains(
            "::warning::`vulnerability-ignore` entry `CVE-2026-0201` expired on 2020-01-31"
        ),
        "{}",
        refused.stdout
    );
    assert!(refused.error_line().contains("CVE-2026-0201"));
    assert_no_tag(&repository, &children);

    let future = ignore_file(
        files.path(),
        "- id: cve-2026-0201\n  reason: only in the test tooling\n  expires: 2999-12-31\n",
    );
    let passed = run(&repository, context.path(), "ignore")
        .input("vulnerability-gate", "high")
        .input("vulnerability-ignore", &future)
        .run();
    passed.assert_success();
    assert_eq!(
        skopeo_digest(&repository, "latest"),
        Some(passed.outputs["digest"].clone())
    );
    // `ignored until 2999-12-31: only in the test tooling`
    assert_user_sees!("ignored_finding_summary", &passed.summary);
    assert_eq!(vulnerabilities(&passed)["linux/arm64"]["HIGH"], 0);
    assert_eq!(vulnerabilities(&passed)["linux/arm64"]["ignored"], 1);
    let finding = &gate_metadata(&passed)["platforms"]["linux/arm64"]["findings"][0];
    assert_eq!(finding["decision"], "ignored");
    assert_eq!(finding["reason"], "only in the test tooling");
}

#[tokio::test]
async fn a_clean_scan_started_by_the_gate_passes() {
    let repository = unique_repository("gate-clean");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = push_children(&repository, context.path(), "clean");
    for digest in children.values() {
        set_scan(&repository, digest, "COMPLETE", clean()).await;
    }
    let passed = run(&repository, context.path(), "clean")
        .input("vulnerability-gate", "low")
        .input("tags", "latest,v1")
        .run();
    passed.assert_success();
    for tag in ["latest", "v1"] {
        assert_eq!(
            skopeo_digest(&repository, tag),
            Some(passed.outputs["digest"].clone())
        );
    }
    assert_eq!(vulnerabilities(&passed)["linux/amd64"]["LOW"], 0);
    let gate = gate_metadata(&passed);
    assert_eq!(gate["passed"], true);
    // moto's registry scans basic with no scan-on-push rule: the gate started each scan.
    assert_eq!(gate["ecr-api-calls"]["StartImageScan"], 2, "{gate}");
    assert_eq!(gate["platforms"]["linux/arm64"]["scan-status"], "COMPLETE");
    assert_user_sees!("clean_scan_summary", &passed.summary);
    let metadata = passed.metadata();
    assert!(metadata["timings-ms"]["vulnerability_gate"].is_u64());
}

#[tokio::test]
async fn a_scan_that_never_completes_is_exit_2_after_the_timeout() {
    let repository = unique_repository("gate-timeout");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = push_platforms(&repository, context.path(), "timeout", "linux/amd64");
    let mut r = run(&repository, context.path(), "timeout");
    r.input("platforms", "linux/amd64");
    set_scan(
        &repository,
        &children["linux/amd64"],
        "IN_PROGRESS",
        Value::Null,
    )
    .await;

    let started = std::time::Instant::now();
    let result = r
        .input("vulnerability-gate", "high")
        .input("scan-timeout", "4s")
        .run();
    let took = started.elapsed();
    assert_eq!(result.code, 2, "{}\n{}", result.stdout, result.stderr);
    result.error("Vulnerability scan timed out");
    assert_user_sees!("scan_timed_out_error", result.error_line());
    assert!(took.as_secs() < 60, "gave up in time: {took:?}");
    assert_no_tag(&repository, &children);
}

#[rstest]
#[case::failed("FAILED")]
#[case::unsupported("UNSUPPORTED_IMAGE")]
#[tokio::test]
async fn a_scan_ecr_could_not_do_refuses_with_its_status(#[case] status: &str) {
    let repository = unique_repository("gate-failed");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = push_platforms(&repository, context.path(), "failed", "linux/amd64");
    set_scan(&repository, &children["linux/amd64"], status, Value::Null).await;
    let result = run(&repository, context.path(), "failed")
        .input("platforms", "linux/amd64")
        .input("vulnerability-gate", "critical")
        .expect_exit(1)
        .run();
    let error = result.error("Vulnerability scan failed for linux/amd64");
    assert!(
        error.contains(&format!("{status}: the scan says {status}")),
        "{error}"
    );
    assert_user_sees!(
        format!("scan_{}_error", status.to_lowercase()),
        result.error_line()
    );
    assert_no_tag(&repository, &children);
}

#[tokio::test]
async fn ignore_unfixed_lets_an_unfixable_critical_through_and_not_a_fixable_one() {
    let repository = unique_repository("gate-unfixed");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = scanned_children(
        &repository,
        context.path(),
        "unfixed",
        [
            (
                "COMPLETE",
                enhanced(&[("CVE-2026-0301", "CRITICAL", "NO", "")]),
            ),
            (
                "ACTIVE",
                enhanced(&[("CVE-2026-0302", "CRITICAL", "YES", "1.1")]),
            ),
        ],
    )
    .await;
    let refused = run(&repository, context.path(), "unfixed")
        .input("vulnerability-gate", "high")
        .input("vulnerability-ignore-unfixed", "true")
        .expect_exit(1)
        .run();
    // The fixable one refuses; the unfixable one passes, `no fix available`.
    assert_user_sees!("unfixed_refused_error", refused.error_line());
    assert_user_sees!("unfixed_refused_summary", &refused.summary);
    assert_eq!(vulnerabilities(&refused)["linux/amd64"]["ignored"], 1);
    assert_eq!(vulnerabilities(&refused)["linux/amd64"]["CRITICAL"], 0);
    assert_no_tag(&repository, &children);
}

#[tokio::test]
async fn a_merge_run_gates_the_children_of_two_platform_only_runs() {
    let repository = unique_repository("gate-merge");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let results = tempfile::tempdir().unwrap();
    let mut children = BTreeMap::new();
    for (platform, folder) in [("linux/amd64", "amd64"), ("linux/arm64", "arm64")] {
        let result = run(&repository, context.path(), "merge")
            .input("platforms", platform)
            .input("platform-only", "true")
            .input(
                "results-folder",
                results.path().join(folder).to_str().unwrap(),
            )
            // A platform-only run leaves the gate to the merge.
            .input("vulnerability-gate", "high")
            .run();
        result.assert_success();
        assert!(
            result.stdout.contains("the `merge` run judges the images"),
            "{}",
            result.stdout
        );
        children.extend(result.platform_digests());
    }
    set_scans(
        &repository,
        &children,
        vec![
            ("linux/amd64", "COMPLETE", clean()),
            (
                "linux/arm64",
                "COMPLETE",
                basic(&[("CVE-2026-0401", "CRITICAL", "busybox", "1.35")]),
            ),
        ],
    )
    .await;
    let merge = |ignore: Option<&str>| {
        let mut run = Run::new(&repository, Path::new("/nonexistent/context"));
        run.input("merge", results.path().to_str().unwrap())
            .input("vulnerability-gate", "high")
            .engine("unix:///nonexistent/docker.sock");
        if let Some(file) = ignore {
            run.input("vulnerability-ignore", file);
        }
        run.run()
    };
    let refused = merge(None);
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert_user_sees!("merge_refused_error", refused.error_line());
    assert_no_tag(&repository, &children);

    let files = tempfile::tempdir().unwrap();
    let ignore = ignore_file(
        files.path(),
        "ignore:\n  - id: CVE-2026-0401\n    reason: applet not installed\n    expires: 2999-01-01\n",
    );
    let passed = merge(Some(&ignore));
    passed.assert_success();
    assert_eq!(
        skopeo_digest(&repository, "latest"),
        Some(passed.outputs["digest"].clone())
    );
    assert_eq!(passed.platform_digests(), children);
}

#[tokio::test]
async fn a_skipped_build_is_judged_on_todays_findings() {
    let repository = unique_repository("gate-skip");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    // Built and tagged with no gate.
    let first = run(&repository, context.path(), "skip")
        .input("skip-unchanged", "true")
        .run();
    first.assert_success();
    let children = first.platform_digests();
    let index = first.outputs["digest"].clone();
    // A new CVE is published for what the image holds.
    set_scans(
        &repository,
        &children,
        vec![
            ("linux/amd64", "COMPLETE", clean()),
            (
                "linux/arm64",
                "COMPLETE",
                basic(&[("CVE-2026-0501", "HIGH", "musl", "1.2.3")]),
            ),
        ],
    )
    .await;

    let refused = run(&repository, context.path(), "skip")
        .input("skip-unchanged", "true")
        .input("tags", "latest,v2")
        .input("vulnerability-gate", "high")
        .run();
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert!(
        refused.stdout.contains("build skipped"),
        "{}",
        refused.stdout
    );
    assert!(refused.error_line().contains("CVE-2026-0501"));
    assert_eq!(
        registry_tags(&repository),
        vec!["latest".to_owned()],
        "v2 not put"
    );

    let files = tempfile::tempdir().unwrap();
    let ignore = ignore_file(
        files.path(),
        "- id: CVE-2026-0501\n  reason: musl's resolver is not used\n  expires: 2999-01-01\n",
    );
    let passed = run(&repository, context.path(), "skip")
        .input("skip-unchanged", "true")
        .input("tags", "latest,v2")
        .input("vulnerability-gate", "high")
        .input("vulnerability-ignore", &ignore)
        .run();
    passed.assert_success();
    let metadata = passed.metadata();
    assert_eq!(metadata["build"]["skipped"], true, "no build either time");
    assert_eq!(passed.outputs["digest"], index);
    assert_eq!(skopeo_digest(&repository, "v2"), Some(index));
}

/// Each case: the input the error must name, the inputs given, and what the message says.
#[rstest]
#[case::unknown_severity("vulnerability-gate", &[("vulnerability-gate", "severe")], "`severe` is not a severity: use `none`, `critical`, `high`, `medium` or `low`")]
#[case::informational("vulnerability-gate", &[("vulnerability-gate", "informational")], "is not a severity")]
#[case::missing_ignore_file("vulnerability-ignore", &[("vulnerability-gate", "high"), ("vulnerability-ignore", "/nonexistent/ignore.yml")], "cannot read `/nonexistent/ignore.yml`")]
#[case::malformed_ignore_file("vulnerability-ignore", &[("vulnerability-gate", "high"), ("vulnerability-ignore", "@malformed")], "not a list of `id`, `reason`, `expires` entries")]
#[case::entry_without_expires("vulnerability-ignore", &[("vulnerability-gate", "high"), ("vulnerability-ignore", "@no-expires")], "entry 1 (`CVE-2026-1`) has no `expires`")]
#[case::entry_without_reason("vulnerability-ignore", &[("vulnerability-gate", "high"), ("vulnerability-ignore", "@no-reason")], "entry 1 (`CVE-2026-1`) has no `reason`")]
#[case::ignore_unfixed_not_boolean("vulnerability-ignore-unfixed", &[("vulnerability-gate", "high"), ("vulnerability-ignore-unfixed", "yes")], "`yes` is not a boolean")]
#[case::zero_timeout("scan-timeout", &[("vulnerability-gate", "high"), ("scan-timeout", "0s")], "`0s` is no time at all")]
#[case::timeout_without_unit("scan-timeout", &[("vulnerability-gate", "high"), ("scan-timeout", "600")], "`600` is not a duration")]
#[case::timeout_not_a_duration("scan-timeout", &[("vulnerability-gate", "high"), ("scan-timeout", "ten minutes")], "is not a duration")]
#[tokio::test]
async fn bad_gate_input_fails_before_any_side_effect(
    #[context] case: Context,
    #[case] input: &str,
    #[case] given: &[(&str, &str)],
    #[case] message: &str,
) {
    let repository = unique_repository("gate-bad-input");
    let context = fixture(&[
        ("Dockerfile", DOCKERFILE),
        ("malformed", "- id: [CVE-1\n"),
        ("no-expires", "- id: CVE-2026-1\n  reason: r\n"),
        ("no-reason", "- id: CVE-2026-1\n  expires: 2027-01-01\n"),
    ]);
    let mut run = Run::new(&repository, context.path());
    for (name, value) in given {
        let value = match value.strip_prefix('@') {
            Some(file) => context.path().join(file).to_str().unwrap().to_owned(),
            None => (*value).to_owned(),
        };
        run.input(name, &value);
    }
    let error = assert_refused_input(&run.run(), &repository, input, message).await;
    assert_user_sees!(case.description.unwrap(), error);
}

// What moto cannot answer, scripted through the testbed's ECR API layer (`Override`): a scan
// that takes a while, enhanced scanning, throttling, and the once-a-day limit.

/// A `DescribeImageScanFindings` answer.
fn answer(repository: &str, digest: &str, status: &str, findings: Value) -> Value {
    let mut body = json!({
        "registryId": "123456789012",
        "repositoryName": repository,
        "imageId": {"imageDigest": digest},
        "imageScanStatus": {"status": status, "description": format!("the scan says {status}")},
    });
    if !findings.is_null() {
        body["imageScanFindings"] = findings;
    }
    body
}

#[tokio::test]
async fn in_progress_twice_then_complete_is_waited_for_and_judged() {
    let repository = unique_repository("gate-wait");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = push_platforms(&repository, context.path(), "wait", "linux/amd64");
    let digest = &children["linux/amd64"];
    Override::new("DescribeImageScanFindings")
        .repository(&repository)
        .digest(digest)
        .answer(answer(&repository, digest, "IN_PROGRESS", Value::Null))
        .answer(answer(&repository, digest, "IN_PROGRESS", Value::Null))
        .answer(answer(
            &repository,
            digest,
            "COMPLETE",
            basic(&[("CVE-2026-0601", "HIGH", "curl", "8.0")]),
        ))
        .install()
        .await;
    let refused = run(&repository, context.path(), "wait")
        .input("platforms", "linux/amd64")
        .input("vulnerability-gate", "high")
        .run();
    assert_eq!(refused.code, 1, "{}", refused.stdout);
    assert_eq!(
        refused
            .stdout
            .matches("IN_PROGRESS; asking again in")
            .count(),
        2,
        "{}",
        refused.stdout
    );
    assert!(refused
        .error_line()
        .contains("CVE-2026-0601 (HIGH) in curl 8.0"));
    let calls = api_calls(&repository).await;
    assert_eq!(calls.count("DescribeImageScanFindings"), 3);
    assert_eq!(calls.count("StartImageScan"), 0, "a scan under way is used");
    assert_no_tag(&repository, &children);
}

#[tokio::test]
async fn enhanced_scanning_waits_for_inspector_and_an_active_scan_counts() {
    let repository = unique_repository("gate-enhanced");
    let key = format!("gate{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = push_platforms(&repository, context.path(), "enhanced", "linux/amd64");
    let digest = &children["linux/amd64"];
    Override::new("GetRegistryScanningConfiguration")
        .access_key(&key)
        .answer(json!({
            "registryId": "123456789012",
            "scanningConfiguration": {
                "scanType": "ENHANCED",
                "rules": [{"scanFrequency": "CONTINUOUS_SCAN", "repositoryFilters": [{"filter": "*", "filterType": "WILDCARD"}]}],
            },
        }))
        .install()
        .await;
    Override::new("DescribeImageScanFindings")
        .repository(&repository)
        .digest(digest)
        .error(
            "ScanNotFoundException",
            "Image scan does not exist for the image",
        )
        // Inspector says COMPLETE before its findings exist.
        .answer(answer(&repository, digest, "COMPLETE", Value::Null))
        .answer(answer(
            &repository,
            digest,
            "ACTIVE",
            enhanced(&[("CVE-2026-0701", "CRITICAL", "NO", "")]),
        ))
        .install()
        .await;
    let passed = run(&repository, context.path(), "enhanced")
        .input("platforms", "linux/amd64")
        .input("vulnerability-gate", "critical")
        .input("vulnerability-ignore-unfixed", "true")
        .env("AWS_ACCESS_KEY_ID", &key)
        .run();
    passed.assert_success();
    assert!(
        passed
            .stdout
            .contains("COMPLETE without findings yet; asking again"),
        "{}",
        passed.stdout
    );
    assert!(
        !passed.stdout.contains("ignored for basic scan findings"),
        "enhanced findings tell fixes: {}",
        passed.stdout
    );
    let gate = gate_metadata(&passed);
    assert_eq!(gate["scanning"], "ENHANCED");
    assert_eq!(gate["platforms"]["linux/amd64"]["scan-status"], "ACTIVE");
    assert_eq!(
        gate["platforms"]["linux/amd64"]["findings"][0]["decision"],
        "unfixed"
    );
    let calls = api_calls_where(&[("access_key", &key)]).await;
    assert_eq!(
        calls.count("StartImageScan"),
        0,
        "enhanced scans are ECR's own"
    );
    assert_eq!(calls.count("GetRegistryScanningConfiguration"), 1);
    assert_eq!(
        skopeo_digest(&repository, "latest"),
        Some(passed.outputs["digest"].clone())
    );
}

#[tokio::test]
async fn throttled_reads_are_waited_out() {
    let repository = unique_repository("gate-throttle");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = push_platforms(&repository, context.path(), "throttle", "linux/amd64");
    let digest = &children["linux/amd64"];
    let mut throttled = Override::new("DescribeImageScanFindings")
        .repository(&repository)
        .digest(digest);
    // More than the SDK's own 3 attempts: the gate sees the throttle and waits longer.
    for _ in 0..4 {
        throttled = throttled.error("ThrottlingException", "Rate exceeded");
    }
    throttled
        .answer(answer(&repository, digest, "COMPLETE", clean()))
        .install()
        .await;
    let passed = run(&repository, context.path(), "throttle")
        .input("platforms", "linux/amd64")
        .input("vulnerability-gate", "high")
        .run();
    passed.assert_success();
    assert!(passed.stdout.contains("throttled ("), "{}", passed.stdout);
    assert_eq!(
        api_calls(&repository)
            .await
            .count("DescribeImageScanFindings"),
        5
    );
}

#[tokio::test]
async fn a_scan_limit_means_a_scan_exists_and_it_is_read() {
    let repository = unique_repository("gate-limit");
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    let children = push_platforms(&repository, context.path(), "limit", "linux/amd64");
    let digest = &children["linux/amd64"];
    Override::new("DescribeImageScanFindings")
        .repository(&repository)
        .digest(digest)
        .error(
            "ScanNotFoundException",
            "Image scan does not exist for the image",
        )
        .answer(answer(
            &repository,
            digest,
            "COMPLETE",
            basic(&[("CVE-2026-0801", "LOW", "zlib", "1.2")]),
        ))
        .install()
        .await;
    Override::new("StartImageScan")
        .repository(&repository)
        .error(
            "LimitExceededException",
            "The scan quota per image has been exceeded. Wait and try again.",
        )
        .install()
        .await;
    let passed = run(&repository, context.path(), "limit")
        .input("platforms", "linux/amd64")
        .input("vulnerability-gate", "medium")
        .run();
    passed.assert_success();
    assert!(
        passed.stdout.contains("ECR scanned it already today"),
        "{}",
        passed.stdout
    );
    assert_eq!(vulnerabilities(&passed)["linux/amd64"]["LOW"], 1);
    let calls = api_calls(&repository).await;
    assert!(calls.count("StartImageScan") >= 1);
    assert_eq!(calls.count("DescribeImageScanFindings"), 2);
}

#[tokio::test]
async fn enhanced_scanning_with_no_rule_for_the_repository_says_so_at_once() {
    let repository = unique_repository("gate-norule");
    let key = format!("gate{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let context = fixture(&[("Dockerfile", DOCKERFILE)]);
    Override::new("GetRegistryScanningConfiguration")
        .access_key(&key)
        .answer(json!({
            "registryId": "123456789012",
            "scanningConfiguration": {
                "scanType": "ENHANCED",
                "rules": [{"scanFrequency": "SCAN_ON_PUSH", "repositoryFilters": [{"filter": "prod/*", "filterType": "WILDCARD"}]}],
            },
        }))
        .install()
        .await;
    let result = run(&repository, context.path(), "norule")
        .input("platforms", "linux/amd64")
        .input("vulnerability-gate", "critical")
        .env("AWS_ACCESS_KEY_ID", &key)
        .expect_exit(1)
        .run();
    let error = result.error("Repository not scanned");
    assert_user_sees!("no_rule_error", result.error_line());
    assert!(
        error.contains(&format!(
            "none of its rules covers repository `{repository}`"
        )),
        "{error}"
    );
    assert_eq!(registry_tags(&repository), Vec::<String>::new());
    let calls = api_calls_where(&[("access_key", &key)]).await;
    assert_eq!(calls.count("DescribeImageScanFindings"), 0);
}

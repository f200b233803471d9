//! ECR's image scanning, for the vulnerability gate ([`crate::gate`]): the registry's scanning
//! configuration, a scan's status and findings, and starting a basic scan. Answers become
//! [`crate::ecr::finding`]'s types here; nothing is decided here but what an answer means. Uses the client of
//! [`Ecr`] (a file of its own: the calls are the gate's, not the repository's).
//!
//! API: <https://docs.aws.amazon.com/AmazonECR/latest/APIReference/API_DescribeImageScanFindings.html>

use std::collections::BTreeMap;
use std::sync::Mutex;

use aws_sdk_ecr::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ecr::types::{ImageIdentifier, ScanFrequency, ScanType};
use chrono::{DateTime, Utc};

use super::finding::{Finding, Severity};
use super::Ecr;

/// An ECR scan call that failed for a reason waiting will not fix.
#[derive(Debug, thiserror::Error)]
#[error("{action} failed: {message}")]
pub struct Error {
    /// What we were doing, e.g. "reading the scan findings of `sha256:...`".
    pub action: String,
    /// The SDK's message with its cause chain.
    pub message: String,
}

/// How the registry scans (`GetRegistryScanningConfiguration`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanningConfiguration {
    /// `ENHANCED` (Amazon Inspector) rather than `BASIC`.
    pub enhanced: bool,
    /// The rules: scan frequency and the repository filters it applies to.
    pub rules: Vec<(String, Vec<String>)>,
}

impl ScanningConfiguration {
    /// The frequency the registry applies to `repository`: the first rule with a filter that
    /// matches it (ECR wildcards, `*` any run of characters), or `None`.
    #[must_use]
    pub fn frequency_for(&self, repository: &str) -> Option<&str> {
        self.rules
            .iter()
            .find(|(_, filters)| filters.iter().any(|f| wildcard_match(f, repository)))
            .map(|(frequency, _)| frequency.as_str())
    }

    /// Whether ECR scans a push to `repository` by itself (scan on push or continuous).
    #[must_use]
    pub fn scans_pushes_to(&self, repository: &str) -> bool {
        self.frequency_for(repository).is_some_and(|f| {
            f == ScanFrequency::ScanOnPush.as_str() || f == ScanFrequency::ContinuousScan.as_str()
        })
    }
}

/// ECR's filter wildcards: `*` matches any run of characters, the filter the whole name.
fn wildcard_match(filter: &str, name: &str) -> bool {
    let parts: Vec<&str> = filter.split('*').collect();
    if parts.len() == 1 {
        return filter == name;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !name.starts_with(first) || name.len() < first.len() + last.len() || !name.ends_with(last) {
        return false;
    }
    let mut rest = &name[first.len()..name.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    true
}

/// One answer of `DescribeImageScanFindings` (all pages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    /// `COMPLETE`, `IN_PROGRESS`, `ACTIVE`, `FAILED`...
    pub status: String,
    /// ECR's description of the status.
    pub description: Option<String>,
    /// When the scan completed (`imageScanCompletedAt`).
    pub completed_at: Option<DateTime<Utc>>,
    /// Whether the answer holds findings at all (an enhanced scan can say `COMPLETE` before
    /// they exist): a completion time, severity counts or findings.
    pub has_findings: bool,
    /// Enhanced findings (they say whether a fix is available).
    pub enhanced: bool,
    /// The findings, in ECR's order.
    pub findings: Vec<Finding>,
}

/// What asking for a scan's findings gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Describe {
    /// A scan exists.
    Scan(Scan),
    /// No scan of this image (`ScanNotFoundException`).
    NoScan,
    /// ECR does not know the image (yet: `ImageNotFoundException`).
    NoImage,
    /// Throttled (after the SDK's own retries): ask again later.
    Throttled(String),
}

/// What starting a scan gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// Started.
    Started,
    /// `LimitExceededException`: the image was scanned in the last 24 hours; read that scan.
    Exists,
    /// ECR will not scan this image (`UnsupportedImageTypeException`, or a registry where
    /// `StartImageScan` does not apply): its message.
    Refused(String),
    /// ECR does not know the image (yet).
    NoImage,
    /// Throttled: try again later.
    Throttled(String),
}

/// The scan calls on one registry, counted per API action.
#[derive(Debug)]
pub struct Scanner<'a> {
    ecr: &'a Ecr,
    calls: Mutex<BTreeMap<&'static str, u64>>,
}

fn message<E, R>(error: &SdkError<E, R>) -> String
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    crate::error_chain(error)
}

fn is_throttling<E, R>(error: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
    R: std::fmt::Debug,
{
    let code = match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    };
    matches!(
        code,
        Some(
            "ThrottlingException"
                | "TooManyRequestsException"
                | "Throttling"
                | "RequestLimitExceeded"
        )
    ) || matches!(
        error,
        SdkError::ResponseError(_) | SdkError::TimeoutError(_)
    )
}

fn time(value: Option<&aws_sdk_ecr::primitives::DateTime>) -> Option<DateTime<Utc>> {
    value.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
}

impl<'a> Scanner<'a> {
    /// The scan calls, on the client of `ecr`.
    #[must_use]
    pub fn new(ecr: &'a Ecr) -> Scanner<'a> {
        Scanner {
            ecr,
            calls: Mutex::new(BTreeMap::new()),
        }
    }

    fn count(&self, action: &'static str) {
        *self
            .calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(action)
            .or_default() += 1;
    }

    /// The calls made so far, per API action.
    #[must_use]
    pub fn calls(&self) -> BTreeMap<&'static str, u64> {
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The registry's scanning configuration.
    pub async fn configuration(&self) -> Result<ScanningConfiguration, Error> {
        let client = &self.ecr.client;
        self.count("GetRegistryScanningConfiguration");
        let answer = client
            .get_registry_scanning_configuration()
            .send()
            .await
            .map_err(|e| Error {
                action: "reading the registry's scanning configuration (`ecr:GetRegistryScanningConfiguration`)".to_owned(),
                message: message(&e),
            })?;
        let Some(configuration) = answer.scanning_configuration() else {
            return Ok(ScanningConfiguration {
                enhanced: false,
                rules: Vec::new(),
            });
        };
        Ok(ScanningConfiguration {
            enhanced: configuration.scan_type() == Some(&ScanType::Enhanced),
            rules: configuration
                .rules()
                .iter()
                .map(|rule| {
                    (
                        rule.scan_frequency().as_str().to_owned(),
                        rule.repository_filters()
                            .iter()
                            .map(|f| f.filter().to_owned())
                            .collect(),
                    )
                })
                .collect(),
        })
    }

    /// The scan of `digest` in `repository` and all its findings.
    pub async fn describe(&self, repository: &str, digest: &str) -> Result<Describe, Error> {
        let (client, registry_id) = (&self.ecr.client, self.ecr.registry_id.as_deref());
        let action = || {
            format!("reading the scan findings of `{repository}@{digest}` (`ecr:DescribeImageScanFindings`)")
        };
        let mut scan: Option<Scan> = None;
        let mut next_token: Option<String> = None;
        loop {
            self.count("DescribeImageScanFindings");
            let answer = client
                .describe_image_scan_findings()
                .set_registry_id(registry_id.map(str::to_owned))
                .repository_name(repository)
                .image_id(ImageIdentifier::builder().image_digest(digest).build())
                .max_results(1000)
                .set_next_token(next_token.take())
                .send()
                .await;
            let page = match answer {
                Ok(page) => page,
                Err(e) => {
                    if let Some(service) = e.as_service_error() {
                        if service.is_scan_not_found_exception() {
                            return Ok(Describe::NoScan);
                        }
                        if service.is_image_not_found_exception() {
                            return Ok(Describe::NoImage);
                        }
                    }
                    if is_throttling(&e) {
                        return Ok(Describe::Throttled(message(&e)));
                    }
                    return Err(Error {
                        action: action(),
                        message: message(&e),
                    });
                }
            };
            let status = page.image_scan_status();
            let found = page.image_scan_findings();
            let scan = scan.get_or_insert_with(|| Scan {
                status: status
                    .and_then(|s| s.status())
                    .map_or_else(|| "UNKNOWN".to_owned(), |s| s.as_str().to_owned()),
                description: status.and_then(|s| s.description()).map(str::to_owned),
                completed_at: time(found.and_then(|f| f.image_scan_completed_at())),
                has_findings: found.is_some_and(|f| {
                    f.image_scan_completed_at().is_some()
                        || f.finding_severity_counts().is_some_and(|c| !c.is_empty())
                        || !f.findings().is_empty()
                        || !f.enhanced_findings().is_empty()
                }),
                enhanced: false,
                findings: Vec::new(),
            });
            if let Some(found) = found {
                for basic in found.findings() {
                    let attribute = |key: &str| {
                        basic
                            .attributes()
                            .iter()
                            .find(|a| a.key() == key)
                            .and_then(|a| a.value())
                            .map(str::to_owned)
                    };
                    scan.findings.push(Finding {
                        id: basic.name().unwrap_or("unnamed finding").to_owned(),
                        arn: None,
                        severity: Severity::from_ecr(
                            basic.severity().map_or("UNDEFINED", |s| s.as_str()),
                        ),
                        package: attribute("package_name"),
                        installed: attribute("package_version"),
                        fixed: None,
                        fix_available: None,
                    });
                }
                for enhanced in found.enhanced_findings() {
                    scan.enhanced = true;
                    // Findings Inspector suppressed or closed do not count.
                    if enhanced
                        .status()
                        .is_some_and(|s| !s.eq_ignore_ascii_case("ACTIVE"))
                    {
                        continue;
                    }
                    let details = enhanced.package_vulnerability_details();
                    let package = details.and_then(|d| d.vulnerable_packages().first());
                    let fixed = package
                        .and_then(|p| p.fixed_in_version())
                        .filter(|v| !v.is_empty() && *v != "NotAvailable")
                        .map(str::to_owned);
                    scan.findings.push(Finding {
                        id: details
                            .and_then(|d| d.vulnerability_id())
                            .or(enhanced.title())
                            .or(enhanced.finding_arn())
                            .unwrap_or("unnamed finding")
                            .to_owned(),
                        arn: enhanced.finding_arn().map(str::to_owned),
                        severity: Severity::from_ecr(enhanced.severity().unwrap_or("UNDEFINED")),
                        package: package.and_then(|p| p.name()).map(str::to_owned),
                        installed: package.and_then(|p| p.version()).map(str::to_owned),
                        fix_available: Some(match enhanced.fix_available() {
                            Some(fix) => !fix.eq_ignore_ascii_case("NO"),
                            None => fixed.is_some(),
                        }),
                        fixed,
                    });
                }
            }
            match page.next_token() {
                Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
                _ => break,
            }
        }
        Ok(scan.map_or(Describe::NoScan, Describe::Scan))
    }

    /// Starts a basic scan of `digest` (allowed once per image per 24 hours).
    pub async fn start(&self, repository: &str, digest: &str) -> Result<Start, Error> {
        let (client, registry_id) = (&self.ecr.client, self.ecr.registry_id.as_deref());
        self.count("StartImageScan");
        match client
            .start_image_scan()
            .set_registry_id(registry_id.map(str::to_owned))
            .repository_name(repository)
            .image_id(ImageIdentifier::builder().image_digest(digest).build())
            .send()
            .await
        {
            Ok(_) => Ok(Start::Started),
            Err(e) => {
                if let Some(service) = e.as_service_error() {
                    if service.is_limit_exceeded_exception() {
                        return Ok(Start::Exists);
                    }
                    if service.is_image_not_found_exception() {
                        return Ok(Start::NoImage);
                    }
                    if service.is_unsupported_image_type_exception()
                        || service.is_validation_exception()
                        || service.is_image_archived_exception()
                    {
                        return Ok(Start::Refused(
                            service.message().unwrap_or("no reason given").to_owned(),
                        ));
                    }
                }
                if is_throttling(&e) {
                    return Ok(Start::Throttled(message(&e)));
                }
                Err(Error {
                    action: format!(
                        "starting a scan of `{repository}@{digest}` (`ecr:StartImageScan`)"
                    ),
                    message: message(&e),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_match_like_ecr() {
        assert!(wildcard_match("team/*", "team/api"));
        assert!(wildcard_match("*", "anything"));
        assert!(wildcard_match("team/api", "team/api"));
        assert!(!wildcard_match("team/api", "team/api2"));
        assert!(wildcard_match("*api*", "team/api-v2"));
        assert!(!wildcard_match("prod-*", "team/prod-api"));
        let configuration = ScanningConfiguration {
            enhanced: false,
            rules: vec![("SCAN_ON_PUSH".into(), vec!["team/*".into()])],
        };
        assert!(configuration.scans_pushes_to("team/api"));
        assert!(!configuration.scans_pushes_to("other/api"));
    }
}

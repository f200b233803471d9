//! The vulnerability gate (`vulnerability-gate`): after every platform image is in the
//! repository by digest and before any tag moves, wait for ECR's scan of each platform
//! manifest (not the index), judge the findings ([`judge`]) against the threshold, the ignore
//! file ([`ignore`]) and `vulnerability-ignore-unfixed`, and refuse the run (exit 1, no tag
//! moved, nothing deleted) when any finding at or over the threshold is left.
//!
//! Which scan: the registry's configuration decides. With basic scanning and no scan-on-push
//! or continuous rule for the repository, the gate starts a scan (`StartImageScan`, once per
//! image per 24 hours; `LimitExceededException` means a scan exists: it is read). With a rule,
//! or with enhanced scanning (Amazon Inspector), it waits for ECR's own. Waiting polls with
//! backoff; `IN_PROGRESS`, `PENDING`, and `COMPLETE` or `ACTIVE` without findings yet keep
//! waiting; `FAILED` and the other end states refuse with ECR's description; a scan that does
//! not finish within `scan-timeout` ends the run with exit 2 (ECR did not answer in time).
//!
//! Tells what it does through a [`Progress`] sink and returns what it judged; the run writes
//! the summary and outputs. The ECR calls are in [`crate::ecr::scan`].

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::future::join_all;

use crate::ecr::scan::{Describe, Scan, Scanner, ScanningConfiguration, Start};
use crate::ecr::Ecr;
use crate::input_names as names;
use crate::platform::Platform;
use crate::progress::Progress;

pub mod ignore;
pub mod judge;
mod report;

pub use report::{GateReport, PlatformVerdict};

use crate::ecr::finding::Severity;
use ignore::IgnoreEntry;
use judge::{Decision, Rules};

/// The gate's settings, validated by the inputs module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The lowest severity that refuses the image.
    pub threshold: Severity,
    /// `vulnerability-ignore`'s file, as given.
    pub ignore_file: Option<PathBuf>,
    /// Its entries.
    pub ignore: Vec<IgnoreEntry>,
    /// `vulnerability-ignore-unfixed`.
    pub ignore_unfixed: bool,
    /// `scan-timeout`.
    pub timeout: Duration,
}

/// The default `scan-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_mins(10);

/// Parses `scan-timeout`: a duration with units, `10m`, `90s`, `1h`, `1m30s`; more than zero.
pub fn parse_timeout(text: &str) -> Result<Duration, String> {
    let wrong = || {
        format!(
            "`{text}` is not a duration: write it with units, e.g. `10m`, `90s`, `1m30s` or `1h`"
        )
    };
    let mut total = 0u64;
    let mut number = String::new();
    let mut units = 0;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let value: u64 = number.parse().map_err(|_| wrong())?;
        number.clear();
        let scale = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(wrong()),
        };
        total = value
            .checked_mul(scale)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(wrong)?;
        units += 1;
    }
    if !number.is_empty() || units == 0 {
        return Err(wrong());
    }
    if total == 0 {
        return Err(format!(
            "`{text}` is no time at all: give the scans time to finish, e.g. `10m`"
        ));
    }
    Ok(Duration::from_secs(total))
}

/// Why the gate stopped the run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Findings at or over the threshold: exit 1.
    #[error("{message}")]
    Refused {
        /// Everything judged.
        report: Box<GateReport>,
        /// The annotation's text.
        message: String,
    },
    /// ECR could not scan a platform image: exit 1 (the image cannot pass unjudged).
    #[error("ECR could not scan the `{platform}` image `{digest}`: {status}: {description}. No tag moved; the platform images stay in the repository by digest")]
    ScanFailed {
        /// The platform.
        platform: Platform,
        /// Its manifest digest.
        digest: String,
        /// ECR's status, e.g. `UNSUPPORTED_IMAGE`.
        status: String,
        /// ECR's description.
        description: String,
    },
    /// The registry scans with Amazon Inspector, and no rule covers the repository: no scan
    /// will ever come (`StartImageScan` is for basic scanning). Exit 1: the user configures it.
    #[error("the registry scans with Amazon Inspector (enhanced scanning), and none of its rules covers repository `{repository}`: no scan will come. Add a scan-on-push or continuous scanning rule for it (`PutRegistryScanningConfiguration`), or set `{input}: none`", input = names::VULNERABILITY_GATE)]
    NotScanned {
        /// The repository.
        repository: String,
    },
    /// A scan did not finish in time: exit 2.
    #[error("ECR's scans did not finish within `{input}` ({waited}): {pending}. No tag moved; the platform images stay in the repository by digest: run again later, or raise `{input}`", input = names::SCAN_TIMEOUT)]
    Timeout {
        /// The timeout, as a person reads it.
        waited: String,
        /// Each platform still waited for, and what ECR last said.
        pending: String,
    },
}

impl Error {
    /// 1 for a refusal (the user decides: fix, or list it in the ignore file), 2 when ECR did
    /// not finish the scans in time.
    #[must_use]
    pub fn exit_status(&self) -> crate::exit_status::ExitStatus {
        match self {
            Error::Refused { .. } | Error::ScanFailed { .. } | Error::NotScanned { .. } => {
                crate::exit_status::ExitStatus::User
            }
            Error::Timeout { .. } => crate::exit_status::ExitStatus::System,
        }
    }

    /// The annotation's title.
    #[must_use]
    pub fn title(&self) -> String {
        match self {
            Error::Refused { .. } => "Vulnerabilities found".to_owned(),
            Error::ScanFailed { platform, .. } => {
                format!("Vulnerability scan failed for {platform}")
            }
            Error::NotScanned { .. } => "Repository not scanned".to_owned(),
            Error::Timeout { .. } => "Vulnerability scan timed out".to_owned(),
        }
    }
}

/// The first wait between two reads of a scan; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// The longest wait between two reads of a scan.
const MAX_WAIT: Duration = Duration::from_secs(15);
/// How long a push that ECR scans by itself may go without a scan before the gate starts one.
const PUSH_SCAN_GRACE: Duration = Duration::from_secs(30);
/// A basic scan older than this is started again (findings change as CVEs are published).
const FRESH_FOR: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Where the judged images are.
pub struct Images<'a> {
    /// `<registry>/<repository>`.
    pub repository_uri: &'a str,
    /// Each platform and its manifest digest, in the run's order. An image pushed earlier
    /// (a skipped build, a merge, a rebuild the repository already held) may carry an old
    /// scan: a basic scan from before the last 24 hours is started again.
    pub children: Vec<(Platform, String)>,
}

/// Judges the images of `repository` under `policy`: the report when every platform passed;
/// a refusal is [`Error::Refused`], carrying the report for the run's summary and outputs.
/// Its time is the report's `elapsed_ms`.
pub async fn enforce(
    policy: &Policy,
    repository: &str,
    ecr: &Ecr,
    images: Images<'_>,
    progress: &dyn Progress,
) -> anyhow::Result<GateReport> {
    let started = Instant::now();
    let today = Utc::now().date_naive();
    for entry in policy.ignore.iter().filter(|e| e.expired(today)) {
        progress.warning(&format!(
            "`{}` entry `{}` expired on {}: it no longer lets the finding through (reason was: {})",
            names::VULNERABILITY_IGNORE,
            entry.id,
            entry.expires,
            entry.reason
        ));
    }
    let scanner = Scanner::new(ecr);
    let configuration = scanner.configuration().await?;
    if configuration.enhanced && !configuration.scans_pushes_to(repository) {
        return Err(Error::NotScanned {
            repository: repository.to_owned(),
        }
        .into());
    }
    progress.info(&format!(
        "vulnerability gate: waiting for ECR's {} scan of {} platform image(s) (refusing at `{}` or worse, for at most {})",
        if configuration.enhanced { "enhanced" } else { "basic" },
        images.children.len(),
        policy.threshold,
        human_duration(policy.timeout),
    ));
    let deadline = started + policy.timeout;
    let waits = join_all(images.children.iter().map(|(platform, digest)| {
        let waiter = Waiter {
            scanner: &scanner,
            configuration: &configuration,
            repository,
            platform,
            digest,
            deadline,
            progress,
        };
        waiter.wait()
    }))
    .await;
    progress.end_group();
    let mut scans = Vec::new();
    let mut pending = Vec::new();
    for ((platform, digest), outcome) in images.children.iter().zip(waits) {
        match outcome {
            Ok(Waited::Done(scan)) => scans.push((platform.clone(), digest.clone(), scan)),
            Ok(Waited::TimedOut(last)) => pending.push(format!("`{platform}`: {last}")),
            Err(error) => return Err(error),
        }
    }
    if !pending.is_empty() {
        return Err(Error::Timeout {
            waited: human_duration(policy.timeout),
            pending: pending.join("; "),
        }
        .into());
    }
    let rules = Rules {
        threshold: policy.threshold,
        ignore: &policy.ignore,
        ignore_unfixed: policy.ignore_unfixed,
        today,
    };
    if policy.ignore_unfixed && scans.iter().any(|(_, _, scan)| !scan.enhanced) {
        progress.notice(&format!(
            "`{}` is ignored for basic scan findings: basic scanning does not say whether a fix is available (enhanced scanning does)",
            names::VULNERABILITY_IGNORE_UNFIXED
        ));
    }
    let platforms: Vec<PlatformVerdict> = scans
        .into_iter()
        .map(|(platform, digest, scan)| PlatformVerdict {
            judged: judge::judge(&scan.findings, &rules),
            platform,
            digest,
            status: scan.status,
            enhanced: scan.enhanced,
            completed_at: scan.completed_at,
        })
        .collect();
    let elapsed = started.elapsed().as_millis();
    let report = GateReport {
        threshold: policy.threshold,
        enhanced_scanning: configuration.enhanced,
        ignore_file: policy.ignore_file.as_ref().map(|p| p.display().to_string()),
        ignore_unfixed: policy.ignore_unfixed,
        platforms,
        api_calls: scanner.calls(),
        elapsed_ms: elapsed,
    };
    if report.refused() {
        let message = report.refusal_message(images.repository_uri);
        return Err(Error::Refused {
            report: Box::new(report),
            message,
        }
        .into());
    }
    progress.info(&format!("vulnerability gate passed: {}", report.one_line()));
    Ok(report)
}

fn human_duration(duration: Duration) -> String {
    let secs = duration.as_secs();
    match (secs / 60, secs % 60) {
        (0, s) => format!("{s} s"),
        (m, 0) => format!("{m} min"),
        (m, s) => format!("{m} min {s} s"),
    }
}

/// How waiting for one platform's scan ended, short of an error.
enum Waited {
    Done(Scan),
    /// The deadline passed; what ECR last said.
    TimedOut(String),
}

/// Waits for the scan of one platform image.
struct Waiter<'a> {
    scanner: &'a Scanner<'a>,
    configuration: &'a ScanningConfiguration,
    repository: &'a str,
    platform: &'a Platform,
    digest: &'a str,
    deadline: Instant,
    progress: &'a dyn Progress,
}

impl Waiter<'_> {
    fn line(&self, text: &str) {
        self.progress.group_line(
            "vulnerability gate",
            &format!("{} {}: {text}", self.platform, self.digest),
        );
    }

    fn failed(&self, status: &str, description: Option<&str>) -> anyhow::Error {
        Error::ScanFailed {
            platform: self.platform.clone(),
            digest: self.digest.to_owned(),
            status: status.to_owned(),
            description: description.unwrap_or("no description").to_owned(),
        }
        .into()
    }

    async fn wait(self) -> anyhow::Result<Waited> {
        let first_asked = Instant::now();
        let mut wait = FIRST_WAIT;
        // Whether this run asked ECR for a scan (or learnt one exists), and since when a new
        // one runs: an older result is not this run's answer then.
        let mut asked = false;
        let mut restarted_at = None;
        let scans_by_itself =
            self.configuration.enhanced || self.configuration.scans_pushes_to(self.repository);
        loop {
            let last: String = match self.scanner.describe(self.repository, self.digest).await? {
                Describe::Scan(scan) => match scan.status.as_str() {
                    "COMPLETE" | "ACTIVE" if scan.has_findings => {
                        let stale = !self.configuration.enhanced
                            && scan
                                .completed_at
                                .is_some_and(|at| Utc::now() - at > FRESH_FOR);
                        let older_than_asked = restarted_at
                            .zip(scan.completed_at)
                            .is_some_and(|(asked_at, at)| at < asked_at);
                        if older_than_asked {
                            format!("{} (the scan from before this run's)", scan.status)
                        } else if stale && !asked {
                            asked = true;
                            let start = self.scanner.start(self.repository, self.digest).await?;
                            if start == Start::Started {
                                restarted_at = Some(Utc::now() - chrono::TimeDelta::seconds(5));
                                self.line("its scan is more than a day old: started a new one");
                                continue;
                            }
                            self.line(&judged_line(&scan));
                            return Ok(Waited::Done(scan));
                        } else {
                            self.line(&judged_line(&scan));
                            return Ok(Waited::Done(scan));
                        }
                    }
                    "COMPLETE" | "ACTIVE" => format!("{} without findings yet", scan.status),
                    "IN_PROGRESS" | "PENDING" => scan.status.clone(),
                    other => return Err(self.failed(other, scan.description.as_deref())),
                },
                Describe::NoScan => {
                    let grace_over = first_asked.elapsed() >= PUSH_SCAN_GRACE;
                    if !asked && !self.configuration.enhanced && (!scans_by_itself || grace_over) {
                        match self.scanner.start(self.repository, self.digest).await? {
                            Start::Started => {
                                asked = true;
                                self.line("no scan yet: started one (StartImageScan)");
                                continue;
                            }
                            Start::Exists => {
                                asked = true;
                                self.line("ECR scanned it already today (StartImageScan: limit exceeded): reading that scan");
                                continue;
                            }
                            Start::Refused(message) => {
                                return Err(self.failed("UNSUPPORTED_IMAGE", Some(&message)))
                            }
                            Start::NoImage => "ECR does not list the image yet".to_owned(),
                            Start::Throttled(message) => {
                                wait = (wait * 2).min(MAX_WAIT);
                                format!("throttled starting a scan ({message})")
                            }
                        }
                    } else {
                        "no scan yet (ECR scans pushes to this repository by itself)".to_owned()
                    }
                }
                Describe::NoImage => "ECR does not list the image yet".to_owned(),
                Describe::Throttled(message) => {
                    wait = (wait * 2).min(MAX_WAIT);
                    format!("throttled ({message})")
                }
            };
            let now = Instant::now();
            if now >= self.deadline {
                self.line(&format!("{last}; giving up (`{}`)", names::SCAN_TIMEOUT));
                return Ok(Waited::TimedOut(last));
            }
            let sleep = wait.min(self.deadline - now);
            self.line(&format!(
                "{last}; asking again in {:.0} s",
                sleep.as_secs_f64().ceil()
            ));
            tokio::time::sleep(sleep).await;
            wait = (wait * 2).min(MAX_WAIT);
        }
    }
}

fn judged_line(scan: &Scan) -> String {
    format!(
        "{} scan {}: {} finding(s)",
        if scan.enhanced { "enhanced" } else { "basic" },
        scan.status,
        scan.findings.len()
    )
}

/// `Decision` as the user reads it, for the summary and the log.
fn decision_text(decision: &Decision) -> String {
    match decision {
        Decision::Refuses => "refuses".to_owned(),
        Decision::BelowThreshold => "under the threshold".to_owned(),
        Decision::Ignored { reason, expires } => format!("ignored until {expires}: {reason}"),
        Decision::Unfixed => "no fix available (`vulnerability-ignore-unfixed`)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("10m", 600)]
    #[case("90s", 90)]
    #[case("1m30s", 90)]
    #[case("1h", 3600)]
    #[case(" 2s ", 2)]
    fn timeouts(#[case] text: &str, #[case] secs: u64) {
        assert_eq!(parse_timeout(text), Ok(Duration::from_secs(secs)));
    }

    #[rstest]
    #[case("0s", "no time at all")]
    #[case("0m0s", "no time at all")]
    #[case("600", "not a duration")]
    #[case("ten minutes", "not a duration")]
    #[case("5d", "not a duration")]
    #[case("m", "not a duration")]
    #[case("", "not a duration")]
    fn bad_timeouts(#[case] text: &str, #[case] message: &str) {
        assert!(parse_timeout(text).expect_err("invalid").contains(message));
    }

    #[test]
    fn inputs_make_the_policy() {
        use crate::inputs::{Args, Request};
        let args = || Args {
            repository: Some("team/api".into()),
            context: Some(env!("CARGO_MANIFEST_DIR").to_owned() + "/examples/hello"),
            aws_region: Some("us-east-1".into()),
            ..Args::default()
        };
        let off = Request::try_from(args()).expect("valid");
        assert_eq!(off.vulnerability_gate, None);
        let none = Request::try_from(Args {
            vulnerability_gate: Some("None".into()),
            scan_timeout: Some("5s".into()),
            ..args()
        })
        .expect("valid");
        assert_eq!(none.vulnerability_gate, None);
        let on = Request::try_from(Args {
            vulnerability_gate: Some("High".into()),
            vulnerability_ignore_unfixed: Some("true".into()),
            ..args()
        })
        .expect("valid")
        .vulnerability_gate
        .expect("on");
        assert_eq!(on.threshold, Severity::High);
        assert_eq!(on.timeout, DEFAULT_TIMEOUT);
        assert!(on.ignore_unfixed && on.ignore.is_empty());
    }

    #[test]
    fn exit_codes() {
        let timeout = Error::Timeout {
            waited: "10 min".into(),
            pending: "`linux/arm64`: IN_PROGRESS".into(),
        };
        assert_eq!(timeout.exit_status().code(), 2);
        assert!(timeout.to_string().contains("`scan-timeout` (10 min)"));
    }
}

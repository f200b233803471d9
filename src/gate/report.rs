//! What the gate tells: the `vulnerabilities` output, its part of `metadata`, the summary
//! tables, and the refusal's annotation text. Pure: the run writes them
//! ([`crate::report::publish_refusal`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::decision_text;
use super::judge::{Decision, Judged};
use crate::ecr::finding::Severity;
use crate::input_names as names;
use crate::platform::Platform;

/// How many refusing findings the annotation names.
const WORST_SHOWN: usize = 5;
/// How many findings per platform the summary lists.
const LISTED: usize = 30;

/// One platform image as the gate judged it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformVerdict {
    /// The platform.
    pub platform: Platform,
    /// Its manifest digest.
    pub digest: String,
    /// The scan's status (`COMPLETE`, `ACTIVE`).
    pub status: String,
    /// Enhanced findings.
    pub enhanced: bool,
    /// When the scan completed.
    pub completed_at: Option<DateTime<Utc>>,
    /// Every finding, worst first, with its decision.
    pub judged: Vec<Judged>,
}

impl PlatformVerdict {
    /// Findings that count (not let through), per severity, every severity present.
    fn counts(&self) -> BTreeMap<Severity, usize> {
        let mut counts: BTreeMap<Severity, usize> = Severity::ALL.iter().map(|s| (*s, 0)).collect();
        for judged in &self.judged {
            if !judged.decision.is_let_through() {
                *counts.entry(judged.finding.severity).or_default() += 1;
            }
        }
        counts
    }

    fn let_through(&self) -> usize {
        self.judged
            .iter()
            .filter(|j| j.decision.is_let_through())
            .count()
    }

    fn refusing(&self) -> impl Iterator<Item = &Judged> {
        self.judged
            .iter()
            .filter(|j| j.decision == Decision::Refuses)
    }
}

/// Everything the gate judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateReport {
    /// `vulnerability-gate`.
    pub threshold: Severity,
    /// The registry scans with Amazon Inspector.
    pub enhanced_scanning: bool,
    /// `vulnerability-ignore`, as given.
    pub ignore_file: Option<String>,
    /// `vulnerability-ignore-unfixed`.
    pub ignore_unfixed: bool,
    /// Per platform, in the run's order.
    pub platforms: Vec<PlatformVerdict>,
    /// ECR API calls the gate made, per action.
    pub api_calls: BTreeMap<&'static str, u64>,
    /// How long the gate took.
    pub elapsed_ms: u128,
}

fn finding_text(judged: &Judged) -> String {
    let f = &judged.finding;
    let mut text = format!("{} ({})", f.id, f.severity);
    if let Some(package) = &f.package {
        let _ = write!(text, " in {package}");
        if let Some(installed) = &f.installed {
            let _ = write!(text, " {installed}");
        }
    }
    match (&f.fixed, f.fix_available) {
        (Some(fixed), _) => {
            let _ = write!(text, ", fixed in {fixed}");
        }
        (None, Some(false)) => text.push_str(", no fix yet"),
        _ => {}
    }
    text
}

impl GateReport {
    /// Whether any finding refuses the image.
    #[must_use]
    pub fn refused(&self) -> bool {
        self.platforms.iter().any(|p| p.refusing().next().is_some())
    }

    /// The `vulnerabilities` output: per platform, the findings that count per severity, and
    /// how many were let through (`ignored`).
    #[must_use]
    pub fn vulnerabilities(&self) -> Value {
        Value::Object(
            self.platforms
                .iter()
                .map(|p| {
                    let mut counts: serde_json::Map<String, Value> = p
                        .counts()
                        .into_iter()
                        .map(|(s, n)| (s.as_str().to_owned(), json!(n)))
                        .collect();
                    counts.insert("ignored".to_owned(), json!(p.let_through()));
                    (p.platform.to_string(), Value::Object(counts))
                })
                .collect(),
        )
    }

    /// The gate's part of `metadata`: the verdict and every finding judged.
    #[must_use]
    pub fn metadata(&self) -> Value {
        json!({
            "threshold": self.threshold.as_str(),
            "passed": !self.refused(),
            "scanning": if self.enhanced_scanning { "ENHANCED" } else { "BASIC" },
            "ignore-file": self.ignore_file,
            "ignore-unfixed": self.ignore_unfixed,
            "ecr-api-calls": self.api_calls,
            "platforms": self.platforms.iter().map(|p| (p.platform.to_string(), json!({
                "digest": p.digest,
                "scan-status": p.status,
                "scan-kind": if p.enhanced { "enhanced" } else { "basic" },
                "scan-completed-at": p.completed_at.map(|t| t.to_rfc3339()),
                "findings": p.judged.iter().map(|j| json!({
                    "id": j.finding.id,
                    "arn": j.finding.arn,
                    "severity": j.finding.severity.as_str(),
                    "package": j.finding.package,
                    "installed-version": j.finding.installed,
                    "fixed-version": j.finding.fixed,
                    "fix-available": j.finding.fix_available,
                    "decision": j.decision.as_str(),
                    "reason": match &j.decision {
                        Decision::Ignored { reason, .. } => Some(reason.clone()),
                        Decision::Unfixed => Some("no fix available (vulnerability-ignore-unfixed)".to_owned()),
                        _ => None,
                    },
                    "ignore-expires": match &j.decision {
                        Decision::Ignored { expires, .. } => Some(expires.to_string()),
                        _ => None,
                    },
                })).collect::<Vec<_>>(),
            }))).collect::<serde_json::Map<_, _>>(),
        })
    }

    /// One line for the log: counts per platform.
    #[must_use]
    pub fn one_line(&self) -> String {
        let parts: Vec<String> = self
            .platforms
            .iter()
            .map(|p| {
                let over: usize = p
                    .judged
                    .iter()
                    .filter(|j| j.finding.severity.reaches(self.threshold))
                    .count();
                format!(
                    "{}: {} finding(s), {over} at `{}` or worse, {} let through",
                    p.platform,
                    p.judged.len(),
                    self.threshold,
                    p.let_through()
                )
            })
            .collect();
        parts.join("; ")
    }

    /// The refusal's annotation: the platforms, the counts over the threshold, the worst few.
    #[must_use]
    pub fn refusal_message(&self, repository_uri: &str) -> String {
        let mut platforms = Vec::new();
        let mut worst: Vec<(&Platform, &Judged)> = Vec::new();
        for p in &self.platforms {
            let mut counts: BTreeMap<Severity, usize> = BTreeMap::new();
            for judged in p.refusing() {
                *counts.entry(judged.finding.severity).or_default() += 1;
                worst.push((&p.platform, judged));
            }
            if counts.is_empty() {
                continue;
            }
            let counted: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            platforms.push(format!("`{}` ({})", p.platform, counted.join(", ")));
        }
        worst.sort_by_key(|(_, j)| j.finding.severity);
        let shown: Vec<String> = worst
            .iter()
            .take(WORST_SHOWN)
            .map(|(platform, judged)| format!("{platform}: {}", finding_text(judged)))
            .collect();
        let more = worst.len().saturating_sub(WORST_SHOWN);
        format!(
            "vulnerabilities at `{}` or worse in {}: {}{}. No tag moved; the platform images stay in `{repository_uri}` by digest, untagged, to inspect. Fix them, or list them in `{}` with a reason and an expiry date",
            self.threshold,
            platforms.join(" and "),
            shown.join("; "),
            if more > 0 { format!(" and {more} more (see the job summary)") } else { String::new() },
            names::VULNERABILITY_IGNORE,
        )
    }

    /// The summary section: counts per platform, then each platform's findings at or over the
    /// threshold (refusing, ignored with their reason, or unfixed).
    #[must_use]
    pub fn summary_markdown(&self, repository_uri: &str) -> String {
        let refused = self.refused();
        let mut md = format!(
            "#### Vulnerability gate: {} (`{}` or worse refuses; {} scanning)\n\n",
            if refused { "**refused**" } else { "passed" },
            self.threshold,
            if self.enhanced_scanning {
                "enhanced"
            } else {
                "basic"
            },
        );
        md.push_str("| Platform | Digest | Scan | Critical | High | Medium | Low | Informational | Undefined | Let through |\n|---|---|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for p in &self.platforms {
            let counts = p.counts();
            let _ = writeln!(
                md,
                "| `{}` | `{}` | {} {} | {} | {} | {} | {} | {} | {} | {} |",
                p.platform,
                p.digest,
                if p.enhanced { "enhanced" } else { "basic" },
                p.status,
                counts[&Severity::Critical],
                counts[&Severity::High],
                counts[&Severity::Medium],
                counts[&Severity::Low],
                counts[&Severity::Informational],
                counts[&Severity::Undefined],
                p.let_through(),
            );
        }
        for p in &self.platforms {
            let listed: Vec<&Judged> = p
                .judged
                .iter()
                .filter(|j| j.decision != Decision::BelowThreshold)
                .collect();
            if listed.is_empty() {
                continue;
            }
            let _ = write!(
                md,
                "\n##### `{}`\n\n| Finding | Severity | Package | Installed | Fixed in | Decision |\n|---|---|---|---|---|---|\n",
                p.platform
            );
            for judged in listed.iter().take(LISTED) {
                let f = &judged.finding;
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {} | {} |",
                    f.id,
                    f.severity,
                    f.package.as_deref().unwrap_or("-"),
                    f.installed.as_deref().unwrap_or("-"),
                    f.fixed.as_deref().unwrap_or("-"),
                    decision_text(&judged.decision).replace('|', "\\|"),
                );
            }
            if listed.len() > LISTED {
                let _ = writeln!(
                    md,
                    "\n{} more in the `metadata` output.",
                    listed.len() - LISTED
                );
            }
        }
        if refused {
            let _ = write!(
                md,
                "\n**No tag moved.** The platform images stay in the repository by digest, untagged, to inspect:\n\n"
            );
            for p in &self.platforms {
                let _ = writeln!(md, "- `{repository_uri}@{}`", p.digest);
            }
        }
        md.push('\n');
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecr::finding::Finding;

    fn report() -> GateReport {
        let finding = |id: &str, severity, decision| Judged {
            finding: Finding {
                id: id.into(),
                arn: None,
                severity,
                package: Some("openssl".into()),
                installed: Some("3.0.1".into()),
                fixed: Some("3.0.2".into()),
                fix_available: Some(true),
            },
            decision,
        };
        GateReport {
            threshold: Severity::High,
            enhanced_scanning: false,
            ignore_file: Some(".vulnerability-ignore.yml".into()),
            ignore_unfixed: false,
            platforms: vec![
                PlatformVerdict {
                    platform: "linux/amd64".parse().expect("valid"),
                    digest: "sha256:aaaa".into(),
                    status: "COMPLETE".into(),
                    enhanced: false,
                    completed_at: None,
                    judged: vec![finding("CVE-L", Severity::Low, Decision::BelowThreshold)],
                },
                PlatformVerdict {
                    platform: "linux/arm64".parse().expect("valid"),
                    digest: "sha256:bbbb".into(),
                    status: "COMPLETE".into(),
                    enhanced: true,
                    completed_at: None,
                    judged: vec![
                        finding("CVE-H", Severity::High, Decision::Refuses),
                        finding(
                            "CVE-I",
                            Severity::Critical,
                            Decision::Ignored {
                                reason: "not reachable".into(),
                                expires: "2027-01-01".parse().expect("date"),
                            },
                        ),
                    ],
                },
            ],
            api_calls: BTreeMap::from([("DescribeImageScanFindings", 2)]),
            elapsed_ms: 300,
        }
    }

    #[test]
    fn the_refusal_names_platform_counts_and_findings() {
        let report = report();
        assert!(report.refused());
        let message = report.refusal_message("r/team/api");
        assert!(message.starts_with("vulnerabilities at `HIGH` or worse in `linux/arm64` (1 HIGH): linux/arm64: CVE-H (HIGH) in openssl 3.0.1, fixed in 3.0.2. No tag moved"), "{message}");
        assert!(!message.contains("linux/amd64"));
    }

    #[test]
    fn outputs_count_per_platform_and_severity() {
        let report = report();
        let vulnerabilities = report.vulnerabilities();
        assert_eq!(vulnerabilities["linux/arm64"]["HIGH"], 1);
        assert_eq!(vulnerabilities["linux/arm64"]["CRITICAL"], 0);
        assert_eq!(vulnerabilities["linux/arm64"]["ignored"], 1);
        assert_eq!(vulnerabilities["linux/amd64"]["LOW"], 1);
        let metadata = report.metadata();
        assert_eq!(metadata["passed"], false);
        let findings = &metadata["platforms"]["linux/arm64"]["findings"];
        assert_eq!(findings[1]["decision"], "ignored");
        assert_eq!(findings[1]["reason"], "not reachable");
    }

    #[test]
    fn summary_tables() {
        insta::assert_snapshot!(report().summary_markdown("r/team/api"), @r"
        #### Vulnerability gate: **refused** (`HIGH` or worse refuses; basic scanning)

        | Platform | Digest | Scan | Critical | High | Medium | Low | Informational | Undefined | Let through |
        |---|---|---|---:|---:|---:|---:|---:|---:|---:|
        | `linux/amd64` | `sha256:aaaa` | basic COMPLETE | 0 | 0 | 0 | 1 | 0 | 0 | 0 |
        | `linux/arm64` | `sha256:bbbb` | enhanced COMPLETE | 0 | 1 | 0 | 0 | 0 | 0 | 1 |

        ##### `linux/arm64`

        | Finding | Severity | Package | Installed | Fixed in | Decision |
        |---|---|---|---|---|---|
        | CVE-H | HIGH | openssl | 3.0.1 | 3.0.2 | refuses |
        | CVE-I | CRITICAL | openssl | 3.0.1 | 3.0.2 | ignored until 2027-01-01: not reachable |

        **No tag moved.** The platform images stay in the repository by digest, untagged, to inspect:

        - `r/team/api@sha256:aaaa`
        - `r/team/api@sha256:bbbb`
        ");
    }
}

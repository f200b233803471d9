//! Judging one platform's findings: pure, no I/O. A finding refuses the image when its
//! severity is at or over the threshold, unless an ignore entry that has not expired names it,
//! or `vulnerability-ignore-unfixed` is on and the scan says no fix is available.

use chrono::NaiveDate;

use super::ignore::IgnoreEntry;
use crate::ecr::finding::{Finding, Severity};

/// What the gate decided about one finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// At or over the threshold: refuses the image.
    Refuses,
    /// Under the threshold.
    BelowThreshold,
    /// At or over the threshold and let through by an ignore entry.
    Ignored {
        /// The entry's reason.
        reason: String,
        /// Until when the entry holds.
        expires: NaiveDate,
    },
    /// At or over the threshold with no fix available (`vulnerability-ignore-unfixed`).
    Unfixed,
}

impl Decision {
    /// `refuses`, `below-threshold`, `ignored` or `unfixed`, as `metadata` says it.
    #[must_use]
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Refuses => "refuses",
            Decision::BelowThreshold => "below-threshold",
            Decision::Ignored { .. } => "ignored",
            Decision::Unfixed => "unfixed",
        }
    }

    /// Whether the finding was let through although it reaches the threshold.
    #[must_use]
    pub fn is_let_through(&self) -> bool {
        matches!(self, Decision::Ignored { .. } | Decision::Unfixed)
    }
}

/// A finding and the decision about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Judged {
    /// The finding.
    pub finding: Finding,
    /// The decision.
    pub decision: Decision,
}

/// How findings are judged: the inputs, and the day (ignore entries expire).
#[derive(Debug, Clone, Copy)]
pub struct Rules<'a> {
    /// The lowest severity that refuses.
    pub threshold: Severity,
    /// `vulnerability-ignore`'s entries.
    pub ignore: &'a [IgnoreEntry],
    /// `vulnerability-ignore-unfixed`.
    pub ignore_unfixed: bool,
    /// Today (UTC): an entry holds through its `expires` day.
    pub today: NaiveDate,
}

/// Judges every finding, worst first (then by id), so that the first refusing ones are the
/// ones to show.
#[must_use]
pub fn judge(findings: &[Finding], rules: &Rules<'_>) -> Vec<Judged> {
    let mut judged: Vec<Judged> = findings
        .iter()
        .map(|finding| Judged {
            decision: decide(finding, rules),
            finding: finding.clone(),
        })
        .collect();
    judged.sort_by(|a, b| {
        (a.finding.severity, &a.finding.id, &a.finding.package).cmp(&(
            b.finding.severity,
            &b.finding.id,
            &b.finding.package,
        ))
    });
    judged
}

fn decide(finding: &Finding, rules: &Rules<'_>) -> Decision {
    if !finding.severity.reaches(rules.threshold) {
        return Decision::BelowThreshold;
    }
    if let Some(entry) = rules
        .ignore
        .iter()
        .find(|entry| !entry.expired(rules.today) && entry.matches(finding))
    {
        return Decision::Ignored {
            reason: entry.reason.clone(),
            expires: entry.expires,
        };
    }
    if rules.ignore_unfixed && finding.fix_available == Some(false) {
        return Decision::Unfixed;
    }
    Decision::Refuses
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn finding(id: &str, severity: Severity, fix: Option<bool>) -> Finding {
        Finding {
            id: id.into(),
            arn: Some(format!(
                "arn:aws:inspector2:us-east-1:123456789012:finding/{id}"
            )),
            severity,
            package: Some("openssl".into()),
            installed: Some("3.0.1".into()),
            fixed: fix.filter(|f| *f).map(|_| "3.0.2".into()),
            fix_available: fix,
        }
    }

    fn day(text: &str) -> NaiveDate {
        text.parse().expect("date")
    }

    fn entry(id: &str, expires: &str) -> IgnoreEntry {
        IgnoreEntry {
            id: id.into(),
            reason: "not reachable".into(),
            expires: day(expires),
        }
    }

    #[rstest]
    #[case::critical_over_high(Severity::Critical, Severity::High, true)]
    #[case::high_at_high(Severity::High, Severity::High, true)]
    #[case::medium_under_high(Severity::Medium, Severity::High, false)]
    #[case::high_under_critical(Severity::High, Severity::Critical, false)]
    #[case::low_at_low(Severity::Low, Severity::Low, true)]
    #[case::informational_never(Severity::Informational, Severity::Low, false)]
    #[case::undefined_never(Severity::Undefined, Severity::Low, false)]
    fn thresholds(#[case] found: Severity, #[case] threshold: Severity, #[case] refuses: bool) {
        let rules = Rules {
            threshold,
            ignore: &[],
            ignore_unfixed: false,
            today: day("2026-12-01"),
        };
        let judged = judge(&[finding("CVE-1", found, None)], &rules);
        assert_eq!(judged[0].decision == Decision::Refuses, refuses);
    }

    #[test]
    fn severities_parse_case_insensitively_and_ecr_names_map() {
        assert_eq!("HiGh".parse::<Severity>(), Ok(Severity::High));
        assert!("informational".parse::<Severity>().is_err());
        assert!("severe"
            .parse::<Severity>()
            .expect_err("invalid")
            .contains("`severe`"));
        assert_eq!(Severity::from_ecr("UNTRIAGED"), Severity::Undefined);
        assert_eq!(Severity::from_ecr("critical"), Severity::Critical);
    }

    #[test]
    fn an_entry_holds_through_its_expiry_day_then_stops() {
        let ignore = [entry("cve-2026-0001", "2026-12-01")];
        let found = [finding("CVE-2026-0001", Severity::High, None)];
        let on_the_day = Rules {
            threshold: Severity::High,
            ignore: &ignore,
            ignore_unfixed: false,
            today: day("2026-12-01"),
        };
        assert_eq!(
            judge(&found, &on_the_day)[0].decision,
            Decision::Ignored {
                reason: "not reachable".into(),
                expires: day("2026-12-01")
            }
        );
        let day_after = Rules {
            today: day("2026-12-02"),
            ..on_the_day
        };
        assert_eq!(judge(&found, &day_after)[0].decision, Decision::Refuses);
    }

    #[test]
    fn an_entry_may_name_the_finding_arn() {
        let found = [finding("CVE-2026-0002", Severity::Critical, Some(true))];
        let arn = found[0].arn.clone().expect("arn");
        let ignore = [entry(&arn, "2027-01-01")];
        let rules = Rules {
            threshold: Severity::Low,
            ignore: &ignore,
            ignore_unfixed: false,
            today: day("2026-12-01"),
        };
        assert!(judge(&found, &rules)[0].decision.is_let_through());
    }

    #[test]
    fn ignore_unfixed_lets_through_only_what_has_no_fix() {
        let found = [
            finding("CVE-A", Severity::Critical, Some(false)),
            finding("CVE-B", Severity::Critical, Some(true)),
            finding("CVE-C", Severity::Critical, None),
        ];
        let rules = Rules {
            threshold: Severity::High,
            ignore: &[],
            ignore_unfixed: true,
            today: day("2026-12-01"),
        };
        let decisions: Vec<(String, Decision)> = judge(&found, &rules)
            .into_iter()
            .map(|j| (j.finding.id, j.decision))
            .collect();
        assert_eq!(
            decisions,
            vec![
                ("CVE-A".into(), Decision::Unfixed),
                ("CVE-B".into(), Decision::Refuses),
                // Basic scanning cannot tell: the setting does not apply.
                ("CVE-C".into(), Decision::Refuses),
            ]
        );
    }

    #[test]
    fn worst_first() {
        let found = [
            finding("CVE-L", Severity::Low, None),
            finding("CVE-C", Severity::Critical, None),
            finding("CVE-M", Severity::Medium, None),
        ];
        let rules = Rules {
            threshold: Severity::Low,
            ignore: &[],
            ignore_unfixed: false,
            today: day("2026-12-01"),
        };
        let ids: Vec<String> = judge(&found, &rules)
            .into_iter()
            .map(|j| j.finding.id)
            .collect();
        assert_eq!(ids, ["CVE-C", "CVE-M", "CVE-L"]);
    }
}

//! What a scan found, as ECR reports it: each finding and its severity (basic and enhanced
//! scanning alike). The vulnerability gate ([`crate::gate`]) judges these; `scan` reads them.

use std::fmt;
use std::str::FromStr;

/// A finding's severity, as ECR names them (basic scanning: `UNDEFINED`; enhanced scanning:
/// `UNTRIAGED`), worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// `CRITICAL`.
    Critical,
    /// `HIGH`.
    High,
    /// `MEDIUM`.
    Medium,
    /// `LOW`.
    Low,
    /// `INFORMATIONAL`: never refuses.
    Informational,
    /// `UNDEFINED` (basic) or `UNTRIAGED` (enhanced): never refuses.
    Undefined,
}

impl Severity {
    /// Every severity, worst first.
    pub const ALL: [Severity; 6] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Informational,
        Severity::Undefined,
    ];

    /// ECR's name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "CRITICAL",
            Severity::High => "HIGH",
            Severity::Medium => "MEDIUM",
            Severity::Low => "LOW",
            Severity::Informational => "INFORMATIONAL",
            Severity::Undefined => "UNDEFINED",
        }
    }

    /// Whether a finding of this severity refuses the image under `threshold`.
    #[must_use]
    pub fn reaches(self, threshold: Severity) -> bool {
        self <= threshold && self <= Severity::Low
    }

    /// A severity as ECR writes it; anything unknown (`UNTRIAGED` included) is `UNDEFINED`,
    /// which never refuses.
    #[must_use]
    pub fn from_ecr(text: &str) -> Severity {
        match text.to_ascii_uppercase().as_str() {
            "CRITICAL" => Severity::Critical,
            "HIGH" => Severity::High,
            "MEDIUM" => Severity::Medium,
            "LOW" => Severity::Low,
            "INFORMATIONAL" => Severity::Informational,
            _ => Severity::Undefined,
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The thresholds `vulnerability-gate` takes, case-insensitive.
impl FromStr for Severity {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.to_ascii_lowercase().as_str() {
            "critical" => Ok(Severity::Critical),
            "high" => Ok(Severity::High),
            "medium" => Ok(Severity::Medium),
            "low" => Ok(Severity::Low),
            _ => Err(format!(
                "`{text}` is not a severity: use `none`, `critical`, `high`, `medium` or `low` (`INFORMATIONAL` and `UNDEFINED` findings never refuse an image)"
            )),
        }
    }
}

/// One finding of a scan, basic or enhanced, in the terms the gate judges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The CVE or finding id (`name` of a basic finding, the vulnerability id of an enhanced one).
    pub id: String,
    /// The enhanced finding's ARN (an ignore entry may name it).
    pub arn: Option<String>,
    /// Its severity.
    pub severity: Severity,
    /// The affected package.
    pub package: Option<String>,
    /// The installed version.
    pub installed: Option<String>,
    /// The version that fixes it (enhanced scanning only).
    pub fixed: Option<String>,
    /// Whether a fix exists (`YES` or `PARTIAL`); `None` when the scan cannot tell (basic).
    pub fix_available: Option<bool>,
}

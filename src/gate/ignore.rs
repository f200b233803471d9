//! `vulnerability-ignore`: the YAML file of findings to let through, each with the reason and
//! the day it stops holding. Parsing is pure ([`parse`]); the inputs module reads the file.
//!
//! ```yaml
//! - id: CVE-2026-1234          # a CVE, or an enhanced finding's ARN
//!   reason: the affected function is never called
//!   expires: 2027-03-31        # holds through this day (UTC)
//! ```
//!
//! The same list may sit under an `ignore:` key.

use chrono::NaiveDate;
use serde::Deserialize;

use crate::ecr::finding::Finding;

/// One entry of the ignore file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoreEntry {
    /// The CVE or finding id (or ARN), compared case-insensitively.
    pub id: String,
    /// Why it is let through (shown in the summary and `metadata`).
    pub reason: String,
    /// The last day the entry holds.
    pub expires: NaiveDate,
}

impl IgnoreEntry {
    /// Whether the entry no longer holds on `today`.
    #[must_use]
    pub fn expired(&self, today: NaiveDate) -> bool {
        today > self.expires
    }

    /// Whether the entry names this finding (its id or its ARN).
    #[must_use]
    pub fn matches(&self, finding: &Finding) -> bool {
        finding.id.eq_ignore_ascii_case(&self.id)
            || finding
                .arn
                .as_deref()
                .is_some_and(|arn| arn.eq_ignore_ascii_case(&self.id))
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum File {
    List(Vec<RawEntry>),
    Keyed { ignore: Vec<RawEntry> },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: Option<serde_norway::Value>,
    reason: Option<String>,
    expires: Option<serde_norway::Value>,
}

fn scalar(value: &serde_norway::Value) -> Option<String> {
    match value {
        serde_norway::Value::String(text) => Some(text.trim().to_owned()),
        serde_norway::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Parses the file's text; the error says which entry is wrong and how (the caller names the
/// input and the file).
pub fn parse(text: &str) -> Result<Vec<IgnoreEntry>, String> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let file: File = serde_norway::from_str(text).map_err(|e| {
        format!(
            "not a list of `id`, `reason`, `expires` entries (at the top or under `ignore:`): {e}"
        )
    })?;
    let raw = match file {
        File::List(entries) | File::Keyed { ignore: entries } => entries,
    };
    raw.into_iter()
        .enumerate()
        .map(|(index, entry)| {
            let number = index + 1;
            let id = entry
                .id
                .as_ref()
                .and_then(scalar)
                .filter(|id| !id.is_empty())
                .ok_or_else(|| format!("entry {number} has no `id` (a CVE or finding id)"))?;
            let reason = entry
                .reason
                .map(|r| r.trim().to_owned())
                .filter(|r| !r.is_empty())
                .ok_or_else(|| {
                    format!("entry {number} (`{id}`) has no `reason`: say why it may pass")
                })?;
            let expires = entry.expires.as_ref().and_then(scalar).ok_or_else(|| {
                format!("entry {number} (`{id}`) has no `expires`: give the last day it holds, e.g. `expires: 2027-03-31`")
            })?;
            let expires = NaiveDate::parse_from_str(&expires, "%Y-%m-%d").map_err(|_| {
                format!("entry {number} (`{id}`): `expires: {expires}` is not a date: write it `YYYY-MM-DD`")
            })?;
            Ok(IgnoreEntry {
                id,
                reason,
                expires,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[test]
    fn a_list_or_a_keyed_list() {
        let list = "- id: CVE-2026-1234\n  reason: never called\n  expires: 2027-03-31\n";
        let entries = parse(list).expect("valid");
        assert_eq!(
            entries,
            vec![IgnoreEntry {
                id: "CVE-2026-1234".into(),
                reason: "never called".into(),
                expires: NaiveDate::from_ymd_opt(2027, 3, 31).expect("date"),
            }]
        );
        let keyed =
            "ignore:\n  - id: CVE-2026-1234\n    reason: never called\n    expires: 2027-03-31\n";
        assert_eq!(parse(keyed).expect("valid"), entries);
        assert_eq!(parse("  \n").expect("empty"), Vec::new());
    }

    #[rstest]
    #[case::no_reason(
        "- id: CVE-1\n  expires: 2027-01-01\n",
        "entry 1 (`CVE-1`) has no `reason`"
    )]
    #[case::empty_reason(
        "- id: CVE-1\n  reason: ''\n  expires: 2027-01-01\n",
        "has no `reason`"
    )]
    #[case::no_expires("- id: CVE-1\n  reason: r\n", "entry 1 (`CVE-1`) has no `expires`")]
    #[case::bad_date("- id: CVE-1\n  reason: r\n  expires: 31/03/2027\n", "is not a date")]
    #[case::no_id("- reason: r\n  expires: 2027-01-01\n", "entry 1 has no `id`")]
    #[case::typo("- id: CVE-1\n  reason: r\n  expire: 2027-01-01\n", "not a list")]
    #[case::not_yaml_list("id: CVE-1\n", "not a list")]
    #[case::malformed("- id: [unclosed\n", "not a list")]
    fn bad_files(#[case] text: &str, #[case] message: &str) {
        let error = parse(text).expect_err("invalid");
        assert!(error.contains(message), "{error}");
    }

    #[test]
    fn second_entry_is_named() {
        let text = "- id: CVE-1\n  reason: r\n  expires: 2027-01-01\n- id: CVE-2\n  reason: r\n";
        assert!(parse(text)
            .expect_err("invalid")
            .starts_with("entry 2 (`CVE-2`)"));
    }
}

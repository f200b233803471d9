//! Which registry failures are worth another attempt, and how long to wait: 429 (honouring
//! `Retry-After`), 5xx, a connection that broke or timed out, and a manifest whose children a
//! distributed registry does not list yet (ECR answers `MANIFEST_BLOB_UNKNOWN` for a moment
//! after they were pushed). Everything else fails at once.
//!
//! The bound a user can count on: at most [`MAX_ATTEMPTS`] attempts per request, waiting
//! 0.5 s, 1 s, 2 s, 4 s, then 5 s between them, each stretched at random by up to as much again
//! (jitter, so that a matrix of jobs does not retry in step), or what `Retry-After` asks, up to
//! [`MAX_RETRY_AFTER`]. A request that keeps failing gives up after 12.5 to 25 s of waiting; one
//! the registry keeps throttling with `Retry-After`, within [`MAX_ATTEMPTS`] - 1 times
//! [`MAX_RETRY_AFTER`].

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use super::Error;
use crate::progress::Progress;

/// Attempts per request, the first one included.
pub const MAX_ATTEMPTS: u32 = 6;
/// The first wait; each next one doubles.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// The longest computed wait, before jitter.
pub const MAX_DELAY: Duration = Duration::from_secs(5);
/// The longest `Retry-After` honoured; a registry asking for more gets this.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(20);

/// The backoff between attempts: exponential with jitter, [`MAX_ATTEMPTS`] in all.
pub(super) fn backoff() -> impl BackoffBuilder {
    ExponentialBuilder::default()
        .with_min_delay(FIRST_DELAY)
        .with_max_delay(MAX_DELAY)
        .with_factor(2.0)
        .with_jitter()
        .with_max_times((MAX_ATTEMPTS - 1) as usize)
}

impl Error {
    /// Whether another attempt may succeed.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Status { status, code, .. } => {
                *status == 429
                    || *status >= 500
                    || matches!(
                        code.as_deref(),
                        Some("TOOMANYREQUESTS" | "MANIFEST_BLOB_UNKNOWN")
                    )
            }
            // A refused connection, a timeout, a connection that broke mid-body.
            Error::Transport { source, .. } => !source.is_builder(),
            Error::PlatformMismatch(_)
            | Error::Io { .. }
            | Error::Malformed { .. }
            | Error::NotInRepository { .. }
            | Error::SeveralImages { .. } => false,
        }
    }

    /// The wait the registry asked for, within [`MAX_RETRY_AFTER`].
    #[must_use]
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Status {
                retry_after: Some(wait),
                ..
            } => Some((*wait).min(MAX_RETRY_AFTER)),
            _ => None,
        }
    }

    /// The short reason for a retry line: `HTTP 429 TOOMANYREQUESTS`, `connection reset`...
    fn retry_reason(&self) -> String {
        match self {
            Error::Status { status, code, .. } => match code {
                Some(code) => format!("HTTP {status} {code}"),
                None => format!("HTTP {status}"),
            },
            Error::Transport { source, .. } => crate::error_chain(source),
            other => other.to_string(),
        }
    }

    /// Sets how many attempts were made.
    pub(super) fn with_attempts(mut self, made: u32) -> Error {
        if let Error::Status { attempts, .. } | Error::Transport { attempts, .. } = &mut self {
            *attempts = made;
        }
        self
    }
}

/// `Retry-After`: seconds, or an HTTP date (RFC 9110 section 10.2.3).
pub(super) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// Where retries are logged: one line each, in the group of the platform (or phase) they
/// belong to.
#[derive(Clone, Copy)]
pub struct RetryLog<'a> {
    progress: &'a dyn Progress,
    group: &'a str,
}

impl<'a> RetryLog<'a> {
    /// Retries of work for `group` (a platform, or `index`).
    #[must_use]
    pub fn new(progress: &'a dyn Progress, group: &'a str) -> RetryLog<'a> {
        RetryLog { progress, group }
    }

    /// The group's name.
    #[must_use]
    pub fn group(&self) -> &str {
        self.group
    }

    /// A line in the group.
    pub fn line(&self, text: &str) {
        self.progress.group_line(self.group, text);
    }

    pub(super) fn retry(&self, operation: &str, attempt: u32, error: &Error, wait: Duration) {
        self.line(&format!(
            "retrying {operation} in {:.1} s (attempt {} of {MAX_ATTEMPTS} failed: {})",
            wait.as_secs_f64(),
            attempt,
            error.retry_reason()
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::github::Console;

    fn status(status: u16, code: Option<&str>) -> Error {
        Error::Status {
            operation: "op".into(),
            registry: "r".into(),
            status,
            code: code.map(str::to_owned),
            message: String::new(),
            retry_after: None,
            attempts: 1,
        }
    }

    #[test]
    fn transient_failures_are_the_ones_worth_waiting_for() {
        assert!(status(429, Some("TOOMANYREQUESTS")).is_transient());
        assert!(status(503, None).is_transient());
        assert!(status(500, None).is_transient());
        assert!(status(400, Some("MANIFEST_BLOB_UNKNOWN")).is_transient());
        assert!(!status(400, Some("TAG_INVALID")).is_transient());
        assert!(!status(404, Some("NAME_UNKNOWN")).is_transient());
        assert!(!status(401, Some("UNAUTHORIZED")).is_transient());
        assert!(!status(403, Some("DENIED")).is_transient());
    }

    /// A registry's error body reaches the log only as text (issue 14).
    #[test]
    fn a_hostile_error_body_in_a_retry_line_runs_no_command() {
        let (console, captured) = Console::capturing(true);
        let log = RetryLog::new(&console, "linux/amd64");
        let mut hostile = status(503, Some("UNAVAILABLE\r::warning::X ##[notice]X"));
        if let Error::Status { message, .. } = &mut hostile {
            *message = "##[stop-commands]tok".into();
        }
        log.retry("pushing a blob", 1, &hostile, Duration::from_millis(500));
        log.line(&hostile.to_string());
        console.error("Push failed", &hostile.to_string(), None);
        let output = captured.lock().expect("lock").clone();
        let names: Vec<String> = crate::github::workflow_command::commands(&output)
            .into_iter()
            .map(|c| c.name)
            .collect();
        assert_eq!(names, ["group", "endgroup", "error"], "{output}");
    }

    #[test]
    fn retry_after_is_read_and_capped() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
        let mut throttled = status(429, None);
        if let Error::Status { retry_after, .. } = &mut throttled {
            *retry_after = Some(Duration::from_hours(1));
        }
        assert_eq!(throttled.retry_after(), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn the_backoff_is_bounded() {
        let waits: Vec<Duration> = backoff().build().collect();
        assert_eq!(waits.len(), (MAX_ATTEMPTS - 1) as usize);
        let total: Duration = waits.iter().sum();
        // 0.5 + 1 + 2 + 4 + 5 s, each stretched by at most as much again.
        assert!(total >= Duration::from_millis(12_500), "{total:?}");
        assert!(total <= Duration::from_secs(25), "{total:?}");
    }
}

//! What the runner tells about the workflow run: the git ref, the repository, the API
//! addresses and when the source was made. Never refused: other CI systems set what they can.

use crate::tag_rules::GitRef;

use super::{given, Args};

/// What the runner tells about the workflow run (all optional: other CI systems set what
/// they can).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitContext {
    /// The git ref and commit.
    pub git_ref: GitRef,
    /// `GITHUB_EVENT_NAME`.
    pub event_name: Option<String>,
    /// `GITHUB_REPOSITORY`, `owner/name`.
    pub repository: Option<String>,
    /// `GITHUB_SERVER_URL`.
    pub server_url: String,
    /// `GITHUB_API_URL`.
    pub api_url: String,
    /// When the source was made (RFC 3339): `SOURCE_DATE_EPOCH`, else the pushed commit's (or
    /// the release's) time from the event payload, else now. A fixed time keeps rebuilds of one
    /// commit identical, so a re-run pushes the same digest.
    pub created: String,
}

/// The time the source was made, as an RFC 3339 UTC timestamp (see [`GitContext::created`]).
pub(super) fn created(args: &Args) -> String {
    let from_epoch = given(args.env_source_date_epoch.as_ref())
        .and_then(|s| s.parse::<i64>().ok())
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, 0));
    // The runner's event payload: a push names its head commit's time, a release its own.
    let from_event = || {
        let path = given(args.env_github_event_path.as_ref())?;
        let payload: serde_json::Value = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
        let timestamp = payload["head_commit"]["timestamp"]
            .as_str()
            .or_else(|| payload["release"]["created_at"].as_str())?;
        chrono::DateTime::parse_from_rfc3339(timestamp)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    from_epoch
        .or_else(from_event)
        .unwrap_or_else(chrono::Utc::now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn git_context(args: &Args) -> GitContext {
    let owned = |v: Option<&String>| given(v).map(str::to_owned);
    GitContext {
        git_ref: GitRef {
            full: owned(args.env_github_ref.as_ref()),
            name: owned(args.env_github_ref_name.as_ref()),
            kind: owned(args.env_github_ref_type.as_ref()),
            sha: owned(args.env_github_sha.as_ref()),
        },
        event_name: owned(args.env_github_event_name.as_ref()),
        repository: owned(args.env_github_repository.as_ref()),
        server_url: owned(args.env_github_server_url.as_ref())
            .unwrap_or_else(|| "https://github.com".to_owned()),
        api_url: owned(args.env_github_api_url.as_ref())
            .unwrap_or_else(|| "https://api.github.com".to_owned()),
        created: created(args),
    }
}

//! The GitHub API, through octocrab at `GITHUB_API_URL`: a commit status naming the pushed
//! index, and a section in the release notes of a tag's release. The image is already pushed
//! when this runs, so every failure here is a warning, never a failed run.

use octocrab::Octocrab;
use serde_json::{json, Value};

use crate::github::Console;
use crate::inputs::Request;
use crate::report::{Outcome, RunKind};

/// GitHub limits a commit status description to 140 characters.
const STATUS_DESCRIPTION_MAX: usize = 140;

/// The stable markers around our section of the release notes, one pair per repository so
/// that a matrix over services keeps one section each.
#[must_use]
pub fn release_markers(repository: &str) -> (String, String) {
    (
        format!("<!-- ecr-multiarch:{repository}:start -->"),
        format!("<!-- ecr-multiarch:{repository}:end -->"),
    )
}

/// The release notes section for an outcome.
#[must_use]
pub fn release_section(repository: &str, outcome: &Outcome) -> String {
    let (start, end) = release_markers(repository);
    let platforms: Vec<String> = outcome
        .platforms
        .iter()
        .map(|p| format!("`{}`", p.platform))
        .collect();
    let references: Vec<String> = outcome
        .references()
        .iter()
        .map(|r| format!("`{r}`"))
        .collect();
    format!(
        "{start}\n### Container image `{repository}`\n\n- Image URI: `{}`\n- Digest: `{}`\n- Platforms: {}\n- Tags: {}\n{end}",
        outcome.image_uri(),
        outcome.digest,
        platforms.join(", "),
        references.join(", "),
    )
}

/// The release body with our section replaced, or appended when it is not there yet.
#[must_use]
pub fn with_section(body: &str, repository: &str, section: &str) -> String {
    let (start, end) = release_markers(repository);
    if let (Some(from), Some(to)) = (body.find(&start), body.find(&end)) {
        if from < to {
            return format!("{}{section}{}", &body[..from], &body[to + end.len()..]);
        }
    }
    let separator = match body.trim_end() {
        "" => "",
        _ => "\n\n",
    };
    format!("{}{separator}{section}\n", body.trim_end())
}

/// Sets the commit status and updates the release notes when a token is given; warns on
/// failure. Skips with a notice when there is no token or no repository to talk to, and a
/// platform-only run, which pushed no index.
pub async fn report(request: &Request, outcome: &Outcome, console: &Console) {
    let git = &request.git;
    let (Some(token), Some(github_repository)) = (&request.github_token, &git.repository) else {
        if console.is_github() {
            console.notice("no `github-token`: skipping the commit status and release notes");
        }
        return;
    };
    // No index yet: the merge run tells GitHub about the image (issue 10).
    if let RunKind::PlatformOnly { .. } = outcome.kind {
        console.info("platform-only: the merge run sets the commit status and release notes");
        return;
    }
    let client = match Octocrab::builder()
        .base_uri(git.api_url.as_str())
        .and_then(|builder| builder.personal_token(token.expose().to_owned()).build())
    {
        Ok(client) => client,
        Err(error) => {
            console.warning(&format!(
                "cannot use the GitHub API at `{}`: {error}",
                git.api_url
            ));
            return;
        }
    };
    if let Some(sha) = &git.git_ref.sha {
        if let Err(error) = set_status(&client, github_repository, sha, request, outcome).await {
            console.warning(&format!(
                "setting the commit status on `{sha}` failed (the image is pushed): {}",
                describe(&error)
            ));
        }
    }
    if let Some(tag) = git.git_ref.tag() {
        match update_release(&client, github_repository, tag, request, outcome).await {
            Ok(true) => console.info(&format!("release notes of `{tag}` list the image")),
            Ok(false) => {}
            Err(error) => console.warning(&format!(
                "updating the release notes of `{tag}` failed (the image is pushed): {}",
                describe(&error)
            )),
        }
    }
}

fn describe(error: &octocrab::Error) -> String {
    match error {
        octocrab::Error::GitHub { source, .. } => {
            format!("HTTP {}: {}", source.status_code, source.message)
        }
        other => other.to_string(),
    }
}

async fn set_status(
    client: &Octocrab,
    github_repository: &str,
    sha: &str,
    request: &Request,
    outcome: &Outcome,
) -> Result<(), octocrab::Error> {
    let mut description = format!("pushed index {}", outcome.digest);
    description.truncate(STATUS_DESCRIPTION_MAX);
    let mut body = json!({
        "state": "success",
        "context": format!("ecr-multiarch/{}", request.repository),
        "description": description,
    });
    if let Some(url) = &outcome.console_url {
        body["target_url"] = json!(url);
    }
    let _: Value = client
        .post(
            format!("/repos/{github_repository}/statuses/{sha}"),
            Some(&body),
        )
        .await?;
    Ok(())
}

/// Puts our section into the release of `tag`; `Ok(false)` when the tag has no release.
async fn update_release(
    client: &Octocrab,
    github_repository: &str,
    tag: &str,
    request: &Request,
    outcome: &Outcome,
) -> Result<bool, octocrab::Error> {
    let release: Value = match client
        .get(
            format!("/repos/{github_repository}/releases/tags/{tag}"),
            None::<&()>,
        )
        .await
    {
        Ok(release) => release,
        Err(octocrab::Error::GitHub { source, .. }) if source.status_code.as_u16() == 404 => {
            return Ok(false)
        }
        Err(error) => return Err(error),
    };
    let Some(id) = release["id"].as_u64() else {
        return Ok(false);
    };
    let body = release["body"].as_str().unwrap_or_default();
    let section = release_section(&request.repository, outcome);
    let updated = with_section(body, &request.repository, &section);
    if updated == body {
        return Ok(true);
    }
    let _: Value = client
        .patch(
            format!("/repos/{github_repository}/releases/{id}"),
            Some(&json!({ "body": updated })),
        )
        .await?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_is_replaced_not_duplicated() {
        let (start, end) = release_markers("team/api");
        let body = format!("Notes\n\n{start}\nold\n{end}\n\nFooter");
        let updated = with_section(&body, "team/api", &format!("{start}\nnew\n{end}"));
        assert_eq!(updated, format!("Notes\n\n{start}\nnew\n{end}\n\nFooter"));
        assert_eq!(with_section("", "team/api", "S"), "S\n");
        assert_eq!(with_section("Notes\n", "team/api", "S"), "Notes\n\nS\n");
    }

    #[test]
    fn another_repository_keeps_its_own_section() {
        let (start, end) = release_markers("team/worker");
        let body = format!("{start}\nworker\n{end}");
        let updated = with_section(&body, "team/api", "API");
        assert!(updated.contains("worker") && updated.ends_with("API\n"));
    }
}

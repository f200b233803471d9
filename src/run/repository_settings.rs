//! What the run tells about the repository's settings (issue 18): a created repository's
//! settings, each change `update-repository` made, one warning listing every difference left,
//! the creation template, and an archived image met under the first tag. The same lines go to
//! the job summary.

use crate::ecr::{ArchivedImage, Repository};
use crate::github::Console;

/// Prints what ensuring the repository found or did; answers the lines for the summary.
pub fn report(console: &Console, name: &str, repository: &Repository) -> Vec<String> {
    let settings = &repository.settings;
    let mut summary = Vec::new();
    for notice in &settings.notices {
        console.notice(notice);
    }
    match (&settings.template, settings.create_on_push) {
        (Some(prefix), true) => {
            let line = format!(
                "repository `{name}` is created by ECR at the first push, from the repository creation template `{prefix}` (`create-repository: template`)"
            );
            console.notice(&line);
            summary.push(line);
        }
        (None, true) => {
            let line = format!(
                "repository `{name}` is left to ECR's create-on-push (`create-repository: template`)"
            );
            console.info(&line);
            summary.push(line);
        }
        (Some(prefix), false) if repository.created => {
            console.notice(&format!(
                "the repository creation template `{prefix}` matches `{name}`, but this run created the repository itself with the workflow's settings; `create-repository: template` leaves creation to ECR and the template"
            ));
        }
        _ => {}
    }
    if repository.created && !settings.created_with.is_empty() {
        let line = format!(
            "repository `{name}` created with {}",
            settings.created_with.join(", ")
        );
        console.info(&line);
        summary.push(line);
    }
    for change in settings.differences.iter().filter(|d| d.updated) {
        let line = format!(
            "`update-repository` changed {} of `{name}`: {} (was {})",
            change.input, change.workflow, change.repository
        );
        console.info(&line);
        summary.push(line);
    }
    let left: Vec<String> = settings
        .differences
        .iter()
        .filter(|d| !d.updated)
        .map(|d| format!("- {}", d.line()))
        .collect();
    if !left.is_empty() {
        let hint = if settings
            .differences
            .iter()
            .any(|d| !d.updated && d.input != crate::inputs::names::ENCRYPTION)
        {
            " (`update-repository: true` applies what can change)"
        } else {
            ""
        };
        let text = format!(
            "repository `{name}` differs from the workflow{hint}:\n{}",
            left.join("\n")
        );
        console.warning(&text);
        summary.push(text.replace('\n', "<br>"));
    }
    summary
}

/// Prints that an archived image was met under the first tag; answers the summary line.
pub fn archived(console: &Console, tag: &str, image: &ArchivedImage) -> String {
    let line = format!(
        "the image under `{tag}` (`{}`) is {} in ECR's archive: it cannot be pulled, so this run treats the tag as empty (no skip, no cache from it, no layer reuse); pushing the same image again restores it",
        image.digest, image.status
    );
    console.notice(&line);
    line
}

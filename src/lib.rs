//! ecr-multiarch: build a container image for several CPU architectures and publish it to
//! Amazon ECR as one multi-arch image.
//!
//! Data flows one way: [`inputs`] -> [`plan`] -> [`ecr`] -> [`engine`] (with [`context`]) ->
//! [`image_export`] -> [`registry`] -> [`report`], wired by [`run`]; [`github`] owns
//! everything printed. [`handoff`] carries a `platform-only` run's images to a `merge` run.
//! [`gate`] judges ECR's scan of each platform image before any tag moves. [`oci`] holds the
//! documents (digests, manifests, configs, indexes) shared by the export reader and registry.
//! Pure helpers: [`dockerfile`] (the images a build pulls), [`build_digest`]
//! (`skip-unchanged`), [`emulation`] (the QEMU check and its programs), [`timings`] (the
//! run's phases). Every error kind states its own [`exit_status`].

pub mod build_digest;
pub mod context;
pub mod dockerfile;
pub mod ecr;
pub mod emulation;
pub mod engine;
pub mod exit_status;
pub mod gate;
pub mod github;
pub mod github_api;
pub mod handoff;
pub mod image_export;
pub mod inputs;
pub mod oci;
pub mod plan;
pub mod platform;
pub mod registry;
pub mod report;
pub mod run;
pub mod secret;
pub mod tag_mutability;
pub mod tag_rules;
pub mod timings;

/// An error and its causes on one line, as `{:#}` shows an anyhow chain; a cause that repeats
/// the text before it (as SDK and HTTP errors often do) is left out.
#[must_use]
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut cause = error.source();
    while let Some(inner) = cause {
        let text = inner.to_string();
        if !parts.last().is_some_and(|last| last.contains(&text)) {
            parts.push(text);
        }
        cause = inner.source();
    }
    parts.join(": ")
}

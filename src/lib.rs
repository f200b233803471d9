//! ecr-multiarch: build a container image for several CPU architectures and publish it to
//! Amazon ECR as one multi-arch image.
//!
//! Data flows one way: [`inputs`] -> [`plan`] -> [`ecr`] -> [`engine`] (with [`context`]) ->
//! [`registry`] -> [`report`], wired by [`run`]; [`github`] owns everything printed.

pub mod context;
pub mod ecr;
pub mod engine;
pub mod github;
pub mod github_api;
pub mod inputs;
pub mod plan;
pub mod platform;
pub mod registry;
pub mod report;
pub mod run;
pub mod tag_mutability;
pub mod tag_rules;

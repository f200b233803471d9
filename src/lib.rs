//! ecr-multiarch: build a container image for several CPU architectures and publish it to
//! Amazon ECR as one multi-arch image.
//!
//! Data flows one way: [`inputs`] -> [`plan`] -> [`ecr`] -> [`engine`] (with [`context`]) ->
//! [`image_export`] -> [`registry`] -> [`gate`] -> [`report`], wired by [`run`]; [`github`]
//! owns everything printed, and the rooms below it tell their progress through a
//! [`progress::Progress`] sink. [`handoff`] carries a `platform-only` run's images to a
//! `merge` run. [`oci`] holds the documents (digests, manifests, configs, indexes) shared by
//! the export reader and the registry. Every error kind states its own [`exit_status`].
//!
//! The layers, lowest first; a module names only its own layer (without a circle) and the
//! ones before it, and the `layering` test holds the code to this table:
//!
//! | layer | modules |
//! |---|---|
//! | values | [`exit_status`], [`error_chain`](mod@error_chain), [`secret`], [`byte_size`], [`input_names`], [`progress`], [`platform`], [`oci`], [`tag_mutability`], [`tag_rules`], [`timings`], [`dockerfile`], [`context`], [`build_digest`] |
//! | outside systems | [`github`], [`ecr`], [`engine`], [`emulation`], [`image_export`], [`registry`], [`handoff`] |
//! | judges | [`gate`] |
//! | request | [`inputs`], [`plan`] |
//! | report | [`report`], [`github_api`] |
//! | run | [`run`] |
//! | root | `lib`, `main` |
//!
//! The outside systems take small typed settings of their own ([`engine::BuildOptions`],
//! [`engine::Addresses`], [`ecr::Connection`], [`ecr::WantedRepository`], [`gate::Policy`]),
//! which [`inputs::Request`] builds; never the `Request` itself.

pub mod build_digest;
pub mod byte_size;
pub mod context;
pub mod dockerfile;
pub mod ecr;
pub mod emulation;
pub mod engine;
pub mod error_chain;
pub mod exit_status;
pub mod gate;
pub mod github;
pub mod github_api;
pub mod handoff;
pub mod image_export;
pub mod input_names;
pub mod inputs;
pub mod oci;
pub mod plan;
pub mod platform;
pub mod progress;
pub mod registry;
pub mod report;
pub mod run;
pub mod secret;
pub mod tag_mutability;
pub mod tag_rules;
pub mod timings;

pub use error_chain::error_chain;

#[cfg(test)]
mod layering;

//! The start every run shares: ECR reached, its registry credentials masked (with the GitHub
//! token) before anything else reaches the log, the registry host and client, the plan, and
//! the run's clock and phase timings. What a mode does with them lives in its own file; the
//! shared end is [`super::finish`].

use std::time::Instant;

use anyhow::Context as _;

use crate::ecr::{Ecr, RegistryCredentials};
use crate::engine::RegistryLogin;
use crate::github::Console;
use crate::inputs::Request;
use crate::plan::Plan;
use crate::registry::Registry;
use crate::timings::{Phase, Timings};

/// One run's shared pieces, from its credentials to its timings.
pub struct Session<'a> {
    /// The run's request.
    pub request: &'a Request,
    /// Where the run's lines go.
    pub console: &'a Console,
    /// The ECR client.
    pub ecr: Ecr,
    /// The registry token and the host of its endpoint.
    pub credentials: RegistryCredentials,
    /// The registry the run pushes to: `registry`, or the token's endpoint.
    pub registry_host: String,
    /// When the run started (`total`).
    pub started: Instant,
    /// Time per phase.
    pub timings: Timings,
}

impl<'a> Session<'a> {
    /// Reaches ECR and masks its registry token and the GitHub token, before anything else
    /// reaches the log.
    pub async fn open(
        request: &'a Request,
        console: &'a Console,
        started: Instant,
    ) -> anyhow::Result<Session<'a>> {
        let ecr = Ecr::connect(&request.ecr_connection()).await;
        let credentials = ecr
            .registry_credentials()
            .await
            .context("getting registry credentials from ECR")?;
        console.mask(credentials.password.expose());
        if let Some(token) = &request.github_token {
            console.mask(token.expose());
        }
        let registry_host = request
            .registry
            .clone()
            .unwrap_or_else(|| credentials.proxy_host.clone());
        Ok(Session {
            request,
            console,
            ecr,
            credentials,
            registry_host,
            started,
            timings: Timings::default(),
        })
    }

    /// The plan of a run that tags an index, and its notices; `latest=auto` asks the
    /// repository which releases it has (still nothing is created).
    pub async fn plan(&self) -> anyhow::Result<Plan> {
        let repository_tags = if Plan::needs_repository_tags(self.request) {
            self.ecr
                .repository_tags(&self.request.repository)
                .await
                .context("reading the repository's tags for `latest=auto`")?
        } else {
            Vec::new()
        };
        let plan = Plan::new(self.request, &repository_tags)?;
        for notice in &plan.notices {
            self.console.notice(notice);
        }
        Ok(plan)
    }

    /// `<registry>/<repository>`.
    pub fn repository_uri(&self, plan: &Plan) -> String {
        format!("{}/{}", self.registry_host, plan.repository)
    }

    /// The registry client for the plan's repository.
    pub fn registry(&self, plan: &Plan) -> anyhow::Result<Registry> {
        Ok(Registry::new(
            &self.registry_host,
            &plan.repository,
            &self.credentials.username,
            self.credentials.password.expose(),
        )?)
    }

    /// The same credentials for the Engine's pulls from the repository.
    pub fn login(&self) -> RegistryLogin {
        RegistryLogin {
            host: self.registry_host.clone(),
            username: self.credentials.username.clone(),
            password: self.credentials.password.clone(),
        }
    }

    /// Records the time of `phase`, started at `since`.
    pub fn timed(&mut self, phase: Phase, since: Instant) {
        self.timings.record_since(phase, since);
    }

    /// Every phase's time, with `total` (the run is over).
    pub fn timings(mut self) -> Timings {
        self.timed(Phase::Total, self.started);
        self.timings
    }
}

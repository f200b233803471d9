//! What the build and `platform-only` modes share: the build context listed, the Engines
//! reached, the repository ensured and read ([`Ready`]), then every platform built on its
//! Engine ([`super::build`]), its image pushed by digest ([`super::push`]) and reported
//! ([`Children`]). Which tags move, if any, is each mode's own.

use std::time::Instant;

use anyhow::Context as _;

use super::build;
use super::push::{self, RepositoryState};
use super::repository_settings;
use super::session::Session;
use super::skip::{self, BuildDigest};
use crate::context::BuildContext;
use crate::ecr::Repository;
use crate::engine::{BuildSettings, BuiltImage, Engines};
use crate::image_export::PreparedImage;
use crate::inputs::{names, InputError, Request};
use crate::oci::ManifestDocument;
use crate::plan::{Plan, TagUpdate};
use crate::platform::Platform;
use crate::registry::{Index, IndexChild, PushStats, Registry, RetryLog};
use crate::report::PlatformResult;
use crate::timings::{elapsed_ms, Phase};

/// Lists the build context. This is still validation: a bad `.dockerignore` or an escaping
/// symlink fails here, before anything is created.
pub fn scan_context(request: &Request) -> Result<BuildContext, InputError> {
    BuildContext::scan(&request.context, &request.dockerfile).map_err(|e| InputError {
        input: names::CONTEXT,
        message: crate::error_chain(&e),
    })
}

/// A run that builds, up to its builds: the repository exists, and what it holds is read.
pub struct Ready<'a> {
    /// The run's shared pieces.
    pub session: Session<'a>,
    /// The run's plan.
    pub plan: Plan,
    /// The build context, listed.
    pub context: BuildContext,
    /// The Engine of each platform.
    pub engines: Engines,
    /// `<registry>/<repository>`.
    pub repository_uri: String,
    /// The repository as ECR describes it.
    pub repository: Repository,
    /// The repository's settings and archive lines for the summary (issue 18).
    pub repository_notes: Vec<String>,
    /// The repository's registry.
    pub registry: Registry,
    /// What the repository holds under the tags.
    pub state: RepositoryState,
    /// This run's build digest, when `skip-unchanged` asks for it.
    pub check: Option<BuildDigest>,
}

impl<'a> Ready<'a> {
    /// Reaches the Engines, ensures the repository, and reads what it holds; with
    /// `skip-unchanged`, makes this run's build digest meanwhile, else checks (and sets up)
    /// QEMU meanwhile.
    pub async fn new(
        mut session: Session<'a>,
        plan: Plan,
        context: BuildContext,
    ) -> anyhow::Result<Ready<'a>> {
        let (request, console) = (session.request, session.console);
        // Reach the Engine before creating anything, so that a missing daemon, or one that
        // cannot run these builds, leaves no trace.
        let engines = Engines::connect(&request.engine_addresses()).await?;
        for line in engines.describe() {
            console.info(&line);
        }

        let repository_uri = session.repository_uri(&plan);

        let phase = Instant::now();
        let repository = session
            .ecr
            .ensure_repository(&request.wanted_repository())
            .await
            .with_context(|| format!("ensuring repository `{}`", plan.repository))?;
        session.timed(Phase::EnsureRepository, phase);
        console.info(&format!(
            "repository `{}` {} in {}; pushing to `{repository_uri}`",
            plan.repository,
            if repository.created {
                "created"
            } else if repository.settings.create_on_push {
                "left to create-on-push"
            } else {
                "exists"
            },
            request.aws_region
        ));
        let mut repository_notes =
            repository_settings::report(console, &plan.repository, &repository);
        // An archived image under the first tag cannot be pulled: the run treats the tag as
        // empty.
        let archived = if repository.created || repository.settings.create_on_push {
            None
        } else {
            session
                .ecr
                .archived_image(&plan.repository, &plan.index_tags[0].tag)
                .await
        };
        if let Some(image) = &archived {
            repository_notes.push(repository_settings::archived(
                console,
                &plan.index_tags[0].tag,
                image,
            ));
        }

        let registry = session.registry(&plan)?;
        let login = session.login();
        // What the repository holds decides the cache each build imports, and whether to
        // build at all (`skip-unchanged`): read it, and make this run's build digest, before
        // building. When every run builds, QEMU is checked (and set up) meanwhile.
        let (state, check, emulation_ms) = tokio::try_join!(
            async {
                let phase = Instant::now();
                let mut state =
                    push::read_repository(&registry, &plan, RetryLog::new(console, "registry"))
                        .await?;
                if archived.is_some() {
                    state.existing = crate::registry::RepositoryImages::default();
                    state.held.insert(plan.index_tags[0].tag.clone(), None);
                }
                anyhow::Ok((state, elapsed_ms(phase)))
            },
            async {
                if !request.skip_unchanged {
                    return anyhow::Ok(None);
                }
                let phase = Instant::now();
                let check =
                    skip::build_digest(request, &plan, &context, &engines, &login, console).await?;
                anyhow::Ok(Some((check, elapsed_ms(phase))))
            },
            async {
                if request.skip_unchanged {
                    return anyhow::Ok(None);
                }
                crate::emulation::register_emulators(&request.binfmt_image, &engines, console).await
            },
        )?;
        let (state, read_ms) = state;
        session.timings.record(Phase::ReadRepository, read_ms);
        let check = check.map(|(check, ms)| {
            session.timings.record(Phase::BuildDigest, ms);
            check
        });
        let mut ready = Ready {
            session,
            plan,
            context,
            engines,
            repository_uri,
            repository,
            repository_notes,
            registry,
            state,
            check,
        };
        ready.record_emulation(emulation_ms);
        Ok(ready)
    }

    /// Builds every platform (checking QEMU first when the build digest went in its place),
    /// prepares each image as the registry will hold it, and releases the builds' temporary
    /// images.
    pub async fn build(&mut self) -> anyhow::Result<Children> {
        let (request, console) = (self.session.request, self.session.console);
        if request.skip_unchanged {
            let emulation_ms =
                crate::emulation::register_emulators(&request.binfmt_image, &self.engines, console)
                    .await?;
            self.record_emulation(emulation_ms);
        }
        let settings = BuildSettings::new(&request.build_options(), &self.plan.labels)
            .with_cache_from(build::cache_sources(
                request,
                &self.plan,
                &self.state.existing,
                &self.repository_uri,
                console,
            ))
            .with_registry_login(self.session.login());
        let built = build::build_all(
            request,
            &settings,
            &self.plan,
            &self.engines,
            &self.context,
            console,
        )
        .await?;
        let prepared =
            build::prepare_all(&self.engines, &built, &self.state.existing, console).await;
        // Exported (or failed): the builds' temporary images go (issue 14, §8).
        build::release_all(request, &self.engines, &built, console).await;
        let prepared = prepared?;
        let index = Index::with_annotations(
            prepared
                .iter()
                .map(|(image, _)| IndexChild::new(&image.platform, &image.manifest))
                .collect(),
            &skip::annotations(self.check.as_ref()),
        );
        Ok(Children {
            built,
            prepared,
            index,
        })
    }

    fn record_emulation(&mut self, emulation_ms: Option<u128>) {
        if let Some(ms) = emulation_ms {
            self.session.timings.record(Phase::Emulation, ms);
        }
    }
}

/// The platform images a run built, as the registry will hold them, with their build and
/// prepare times.
pub struct Children {
    built: Vec<(BuiltImage, u128)>,
    prepared: Vec<(PreparedImage, u128)>,
    /// Their index (recording the build digest, when there is one), not pushed yet.
    pub index: Index,
}

impl Children {
    /// Each image's manifest, in the plan's order.
    pub fn manifests(&self) -> Vec<&ManifestDocument> {
        self.prepared
            .iter()
            .map(|(image, _)| &image.manifest)
            .collect()
    }

    /// Each image's platform, as planned, and digest: what the gate judges.
    pub fn by_digest<'p>(
        &'p self,
        plan: &'p Plan,
    ) -> impl Iterator<Item = (Platform, String)> + 'p {
        self.prepared
            .iter()
            .zip(&plan.platforms)
            .map(|((image, _), p)| (p.platform.clone(), image.manifest.digest.to_string()))
    }

    /// Pushes every image by digest; each with its push time.
    pub async fn push(
        &self,
        registry: &Registry,
        console: &crate::github::Console,
    ) -> anyhow::Result<Vec<(PushStats, u128)>> {
        push::push_images(registry, &self.prepared, console).await
    }

    /// Each platform's result, from its build, its image, its push and its `arch-tags` tag.
    pub fn results(
        &self,
        pushed: Vec<(PushStats, u128)>,
        arch: impl IntoIterator<Item = Option<TagUpdate>>,
        engines: &Engines,
    ) -> Vec<PlatformResult> {
        self.built
            .iter()
            .zip(&self.prepared)
            .zip(pushed)
            .zip(arch)
            .map(
                |((((image, build_ms), (prepared, _)), (stats, push_ms)), arch)| PlatformResult {
                    platform: image.platform.clone(),
                    image_id: image.image_id.clone(),
                    image_size: Some(image.size),
                    manifest_digest: prepared.manifest.digest.clone(),
                    content_size: prepared.config.descriptor.size
                        + prepared
                            .layers
                            .iter()
                            .map(|l| l.descriptor.size)
                            .sum::<u64>(),
                    layers_uploaded: stats.layers_uploaded,
                    layers_reused: stats.layers_reused,
                    bytes_uploaded: stats.bytes_uploaded,
                    arch_tag: arch.map(|u| (u.tag, u.action)),
                    build_ms: *build_ms,
                    push_ms,
                    engine: Some(engines.for_platform(&image.platform).address().to_owned()),
                    source: None,
                },
            )
            .collect()
    }
}

//! The Docker Engines of a run and which platforms each builds (the `engines` input, else
//! `DOCKER_HOST`). Routing only: connecting and building are [`Engine`]'s.

use super::{DockerTls, Engine, Error, NamedBy, DEFAULT_DOCKER_HOST};
use crate::platform::Platform;

/// One line of `engines`: a platform and the Docker Engine that builds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformEngine {
    /// The platform, spelt as in `platforms`.
    pub platform: Platform,
    /// `unix:///<socket>` or `tcp://<host>:<port>`, the port filled in as the docker CLI does.
    pub address: String,
}

/// Where a run's Engines are, as the inputs give them.
#[derive(Debug, Clone, Copy)]
pub struct Addresses<'a> {
    /// The run's platforms, in order.
    pub platforms: &'a [Platform],
    /// `DOCKER_HOST`; `None`: the default socket.
    pub docker_host: Option<&'a str>,
    /// `engines`: the Engine of some platforms; the others build at `docker_host`.
    pub engines: &'a [PlatformEngine],
    /// TLS for `tcp://` Engines, when `DOCKER_TLS_VERIFY` is set.
    pub tls: Option<&'a DockerTls>,
}

/// The Docker Engines of a run, each with the platforms it builds: those the `engines` input
/// maps (issue 10: each platform where it is native), and the Engine at `DOCKER_HOST` for the
/// rest. An Engine named for several platforms is reached once.
#[derive(Debug, Clone)]
pub struct Engines {
    engines: Vec<Engine>,
    /// Each platform of the run and the index of its Engine in `engines`.
    assigned: Vec<(Platform, usize)>,
}

/// Which address builds which platforms, in the run's platform order, and what named it.
fn assign(addresses: &Addresses<'_>) -> Vec<(String, Vec<Platform>, NamedBy)> {
    let default = addresses
        .docker_host
        .unwrap_or(DEFAULT_DOCKER_HOST)
        .to_owned();
    let mut groups: Vec<(String, Vec<Platform>, NamedBy)> = Vec::new();
    for platform in addresses.platforms {
        let (address, named_by) = addresses
            .engines
            .iter()
            .find(|e| &e.platform == platform)
            .map_or((default.as_str(), NamedBy::DockerHost), |e| {
                (e.address.as_str(), NamedBy::EnginesInput)
            });
        match groups.iter_mut().find(|(a, _, _)| a == address) {
            Some((_, platforms, _)) => platforms.push(platform.clone()),
            None => groups.push((address.to_owned(), vec![platform.clone()], named_by)),
        }
    }
    groups
}

impl Engines {
    /// Connects to every Engine the run's platforms need, all at once; the first that
    /// cannot be used ends the run, before anything is created. The Engine at `DOCKER_HOST` is
    /// not contacted when `engines` maps every platform elsewhere.
    pub async fn connect(addresses: &Addresses<'_>) -> Result<Engines, Error> {
        let groups = assign(addresses);
        let engines = futures_util::future::try_join_all(groups.iter().map(
            |(address, platforms, named_by)| {
                Engine::connect(address, addresses.tls, platforms, *named_by)
            },
        ))
        .await?;
        let assigned = groups
            .iter()
            .enumerate()
            .flat_map(|(index, (_, platforms, _))| {
                platforms.iter().map(move |p| (p.clone(), index))
            })
            .collect();
        Ok(Engines { engines, assigned })
    }

    /// The Engine that builds `platform`, one of the run's platforms (another, which the
    /// inputs rule out, would get the first Engine).
    #[must_use]
    pub fn for_platform(&self, platform: &Platform) -> &Engine {
        let index = self
            .assigned
            .iter()
            .find(|(p, _)| p == platform)
            .map_or(0, |(_, index)| *index);
        &self.engines[index]
    }

    /// Each Engine with the platforms it builds, in the run's order.
    pub fn each(&self) -> impl Iterator<Item = (&Engine, Vec<Platform>)> {
        self.engines.iter().enumerate().map(|(index, engine)| {
            let platforms = self
                .assigned
                .iter()
                .filter(|(_, i)| *i == index)
                .map(|(p, _)| p.clone())
                .collect();
            (engine, platforms)
        })
    }

    /// One line per Engine for the log: which daemon builds which platforms.
    #[must_use]
    pub fn describe(&self) -> Vec<String> {
        self.each()
            .map(|(engine, platforms)| {
                let names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
                format!("{}: builds {}", engine.describe(), names.join(", "))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_engine_builds_its_platforms_and_the_rest_go_to_docker_host() {
        let mut request = crate::inputs::Request::try_from(crate::inputs::Args {
            repository: Some("team/api".into()),
            context: Some(env!("CARGO_MANIFEST_DIR").to_owned() + "/examples/hello"),
            aws_region: Some("us-east-1".into()),
            platforms: Some("linux/amd64,linux/arm64,linux/arm/v7,linux/386".into()),
            engines: Some(
                "linux/arm64=tcp://graviton:2376\nlinux/arm/v7=tcp://graviton:2376".into(),
            ),
            ..crate::inputs::Args::default()
        })
        .expect("valid");
        let names = |platforms: &[Platform]| -> Vec<String> {
            platforms.iter().map(ToString::to_string).collect()
        };
        let groups: Vec<(String, Vec<String>, NamedBy)> = assign(&request.engine_addresses())
            .into_iter()
            .map(|(address, platforms, named_by)| (address, names(&platforms), named_by))
            .collect();
        assert_eq!(
            groups,
            vec![
                (
                    DEFAULT_DOCKER_HOST.to_owned(),
                    vec!["linux/amd64".to_owned(), "linux/386".to_owned()],
                    NamedBy::DockerHost
                ),
                (
                    "tcp://graviton:2376".to_owned(),
                    vec!["linux/arm64".to_owned(), "linux/arm/v7".to_owned()],
                    NamedBy::EnginesInput
                ),
            ]
        );
        // Every platform mapped: `DOCKER_HOST` is not contacted at all.
        request
            .platforms
            .retain(|p| p.architecture.starts_with("arm"));
        assert_eq!(assign(&request.engine_addresses()).len(), 1);
    }
}

//! `engines`: the Docker Engine of some platforms, addressed as the docker CLI's `-H` takes
//! it, and TLS for `tcp://` Engines as the docker CLI reads it.

use std::path::{Path, PathBuf};

use crate::engine::{Addresses, DockerTls, PlatformEngine};
use crate::platform::Platform;

use super::{given, list, names, Args, InputError, Mode, DEFAULT_BINFMT_IMAGE};

/// Which Docker Engines build, and how they are reached.
#[derive(Debug)]
pub(super) struct EngineAccess {
    pub engines: Vec<PlatformEngine>,
    pub docker_tls: Option<DockerTls>,
    pub docker_host: Option<String>,
    pub binfmt_image: String,
    pub keep_images: bool,
    pub session_break_after: Option<u64>,
}

impl EngineAccess {
    /// `engines` for these `platforms`, and the docker CLI's variables: `DOCKER_HOST`, TLS
    /// (its key must stay out of the build `context`), with `ECR_MULTIARCH_BINFMT_IMAGE` and
    /// `ECR_MULTIARCH_KEEP_IMAGES` (and the test knob `ECR_MULTIARCH_SESSION_BREAK_AFTER`).
    /// A merge run reaches no Engine: `engines` is checked, then
    /// left out.
    pub(super) fn parse(
        args: &Args,
        platforms: &[Platform],
        context: &Path,
        mode: &Mode,
    ) -> Result<EngineAccess, InputError> {
        let engines = engines(args, platforms)?;
        let (engines, docker_tls) = if let Mode::Merge { .. } = mode {
            (Vec::new(), None)
        } else {
            let tls = docker_tls(args, &engines, context)?;
            (engines, tls)
        };
        Ok(EngineAccess {
            engines,
            docker_tls,
            docker_host: given(args.env_docker_host.as_ref()).map(str::to_owned),
            binfmt_image: given(args.env_binfmt_image.as_ref())
                .unwrap_or(DEFAULT_BINFMT_IMAGE)
                .to_owned(),
            keep_images: matches!(
                given(args.env_keep_images.as_ref()),
                Some("1" | "true" | "TRUE" | "True")
            ),
            session_break_after: given(args.env_session_break_after.as_ref())
                .and_then(|bytes| bytes.parse().ok()),
        })
    }
}

/// A `tcp://` Engine's address: a host name or IP address and a port, the docker CLI's
/// default port filled in (2376 with TLS, 2375 without).
pub(super) fn tcp_address(rest: &str, tls: bool) -> Option<String> {
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let (name, port) = if let Some(bracketed) = rest.strip_prefix('[') {
        // An IPv6 address: `[::1]` or `[::1]:2376`.
        let (inside, after) = bracketed.split_once(']')?;
        inside.parse::<std::net::Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            after => Some(after.strip_prefix(':')?),
        };
        (format!("[{inside}]"), port)
    } else {
        let (name, port) = match rest.split_once(':') {
            Some((name, port)) => (name, Some(port)),
            None => (rest, None),
        };
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
        if !name_ok {
            return None;
        }
        (name.to_owned(), port)
    };
    let port = match port {
        Some(port) => port.parse::<u16>().ok().filter(|p| *p > 0)?,
        None if tls => 2376,
        None => 2375,
    };
    Some(format!("tcp://{name}:{port}"))
}

/// One Engine address of `engines`, as the docker CLI's `-H` takes it.
pub(super) fn engine_address(text: &str, tls: bool) -> Result<String, String> {
    let accepted = "use `unix:///<socket path>` or `tcp://<host>[:<port>]`";
    if let Some(path) = text.strip_prefix("unix://") {
        if path.starts_with('/') && path.len() > 1 {
            return Ok(text.to_owned());
        }
        return Err(format!(
            "`{text}` does not name a socket by its absolute path: {accepted}"
        ));
    }
    if let Some(rest) = text.strip_prefix("tcp://") {
        return tcp_address(rest, tls)
            .ok_or_else(|| format!("`{text}` is not a host and port: {accepted}"));
    }
    if text.starts_with("ssh://") {
        return Err(format!(
            "`{text}`: Engines over SSH are not supported: expose the Engine on TCP with TLS \
             (`dockerd --tlsverify -H tcp://0.0.0.0:2376`), then {accepted}"
        ));
    }
    Err(format!(
        "`{text}` is not a Docker Engine address: {accepted}"
    ))
}

/// The `engines` input: `<platform>=<address>` lines for platforms of this run, each once.
fn engines(args: &Args, platforms: &[Platform]) -> Result<Vec<PlatformEngine>, InputError> {
    let tls = given(args.env_docker_tls_verify.as_ref()).is_some();
    let mut engines: Vec<PlatformEngine> = Vec::new();
    for item in list(given(args.engines.as_ref()).unwrap_or("")) {
        let Some((platform, address)) = item.split_once('=') else {
            return Err(InputError::new(
                names::ENGINES,
                format!(
                    "`{item}` is not `<platform>=<address>`, e.g. `linux/arm64=tcp://builder:2376`"
                ),
            ));
        };
        let platform: Platform =
            platform
                .trim()
                .parse()
                .map_err(|e: crate::platform::PlatformParseError| {
                    InputError::new(names::ENGINES, e.to_string())
                })?;
        let Some(listed) = platforms
            .iter()
            .find(|p| p.normalized() == platform.normalized())
        else {
            let listed: Vec<String> = platforms.iter().map(|p| format!("`{p}`")).collect();
            return Err(InputError::new(
                names::ENGINES,
                format!(
                    "`{platform}` is not in `platforms` ({}): give an Engine only to a platform this run builds",
                    listed.join(", ")
                ),
            ));
        };
        if engines.iter().any(|e| &e.platform == listed) {
            return Err(InputError::new(
                names::ENGINES,
                format!("`{listed}` is given an Engine twice"),
            ));
        }
        let address = engine_address(address.trim(), tls)
            .map_err(|message| InputError::new(names::ENGINES, message))?;
        engines.push(PlatformEngine {
            platform: listed.clone(),
            address,
        });
    }
    Ok(engines)
}

/// TLS for `tcp://` Engines as the docker CLI reads it. When `engines` names a `tcp://` Engine
/// the files are checked here: `ca.pem` must be there, `cert.pem` and `key.pem` together or
/// not at all, and the key must not lie in the build context, where it would be sent to
/// every Engine and could be copied into the image.
fn docker_tls(
    args: &Args,
    engines: &[PlatformEngine],
    context: &Path,
) -> Result<Option<DockerTls>, InputError> {
    let tcp = engines.iter().any(|e| e.address.starts_with("tcp://"));
    if given(args.env_docker_tls_verify.as_ref()).is_none() {
        if tcp && given(args.env_docker_tls.as_ref()).is_some() {
            return Err(InputError::new(
                names::ENGINES,
                "`DOCKER_TLS` without `DOCKER_TLS_VERIFY` asks for TLS without checking the \
                 Engine's certificate, which is not supported: set `DOCKER_TLS_VERIFY=1` and put \
                 the Engine's CA in `DOCKER_CERT_PATH` as `ca.pem`",
            ));
        }
        return Ok(None);
    }
    let cert_path = given(args.env_docker_cert_path.as_ref())
        .or_else(|| given(args.env_docker_config.as_ref()))
        .map_or_else(
            || PathBuf::from(given(args.env_home.as_ref()).unwrap_or(".")).join(".docker"),
            PathBuf::from,
        );
    if !tcp {
        return Ok(Some(DockerTls { cert_path }));
    }
    let shown = cert_path.display();
    if !cert_path.join("ca.pem").is_file() {
        return Err(InputError::new(
            names::ENGINES,
            format!("`DOCKER_TLS_VERIFY` is set but `{shown}` has no `ca.pem`: put the CA that signed the Engines' certificates there (the folder is `DOCKER_CERT_PATH`, else `~/.docker`)"),
        ));
    }
    let key = cert_path.join("key.pem");
    if key.is_file() != cert_path.join("cert.pem").is_file() {
        return Err(InputError::new(
            names::ENGINES,
            format!("`{shown}` must hold both `cert.pem` and `key.pem` (the client's certificate and key), or neither"),
        ));
    }
    if key.is_file() {
        if let (Ok(root), Ok(key)) = (context.canonicalize(), key.canonicalize()) {
            if let Ok(relative) = key.strip_prefix(&root) {
                let name = relative.to_string_lossy().replace('\\', "/");
                let rules = std::fs::read_to_string(root.join(".dockerignore"))
                    .ok()
                    .and_then(|text| crate::context::IgnoreRules::parse(&text).ok())
                    .unwrap_or_default();
                if !rules.is_ignored(&name) {
                    return Err(InputError::new(
                        names::CONTEXT,
                        format!("the TLS key `{name}` (`DOCKER_CERT_PATH` `{shown}`) is inside the build context `{}`: it would be sent to every Engine and could end up in the image: list its folder in `.dockerignore`, or keep the certificates outside the context", context.display()),
                    ));
                }
            }
        }
    }
    Ok(Some(DockerTls { cert_path }))
}

impl super::Request {
    /// Where this run's Engines are, for [`crate::engine::Engines::connect`].
    #[must_use]
    pub fn engine_addresses(&self) -> Addresses<'_> {
        Addresses {
            platforms: &self.platforms,
            docker_host: self.docker_host.as_deref(),
            engines: &self.engines,
            tls: self.docker_tls.as_ref(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::engine::PlatformEngine;
    use crate::inputs::tests::args;
    use crate::inputs::{names, Args, Request};
    use rstest::rstest;

    #[rstest]
    #[case(
        "linux/arm64=tcp://graviton-builder",
        None,
        "tcp://graviton-builder:2375"
    )]
    #[case(
        "linux/arm64=tcp://graviton-builder:2376/",
        None,
        "tcp://graviton-builder:2376"
    )]
    #[case("linux/arm64 = tcp://10.0.0.7", Some("1"), "tcp://10.0.0.7:2376")]
    #[case("linux/arm64/v8=tcp://[fd00::7]:2376", None, "tcp://[fd00::7]:2376")]
    #[case("linux/arm64=unix:///run/arm.sock", None, "unix:///run/arm.sock")]
    fn engines_take_the_docker_cli_address_forms(
        #[case] value: &str,
        #[case] tls_verify: Option<&str>,
        #[case] address: &str,
    ) {
        let certs = tempfile::tempdir().expect("tempdir");
        std::fs::write(certs.path().join("ca.pem"), "").expect("ca");
        let request = Request::try_from(Args {
            engines: Some(value.into()),
            env_docker_tls_verify: tls_verify.map(str::to_owned),
            env_docker_cert_path: Some(certs.path().display().to_string()),
            ..args()
        })
        .expect("valid");
        assert_eq!(
            request.engines,
            vec![PlatformEngine {
                // The spelling of `platforms`, whatever `engines` says.
                platform: "linux/arm64".parse().expect("platform"),
                address: address.to_owned(),
            }]
        );
        assert_eq!(request.docker_tls.is_some(), tls_verify.is_some());
    }

    #[test]
    fn tls_needs_the_ca_and_keeps_the_key_out_of_the_context() {
        let context = tempfile::tempdir().expect("tempdir");
        std::fs::write(context.path().join("Dockerfile"), "FROM scratch\n").expect("Dockerfile");
        let certs = context.path().join(".docker-tls");
        std::fs::create_dir(&certs).expect("certs");
        let tls_run = || {
            Request::try_from(Args {
                context: Some(context.path().display().to_string()),
                engines: Some("linux/arm64=tcp://graviton:2376".into()),
                env_docker_tls_verify: Some("1".into()),
                env_docker_cert_path: Some(certs.display().to_string()),
                ..args()
            })
        };
        let error = tls_run().expect_err("no ca.pem");
        assert!(error.message.contains("has no `ca.pem`"), "{error}");
        for file in ["ca.pem", "cert.pem", "key.pem"] {
            std::fs::write(certs.join(file), "").expect("pem");
        }
        let error = tls_run().expect_err("key in the context");
        assert_eq!(error.input, names::CONTEXT);
        assert!(
            error.message.contains("the TLS key `.docker-tls/key.pem`"),
            "{error}"
        );
        std::fs::write(context.path().join(".dockerignore"), ".docker-tls\n").expect("ignore");
        let request = tls_run().expect("ignored: valid");
        assert_eq!(request.docker_tls.expect("tls").cert_path, certs);
    }
}

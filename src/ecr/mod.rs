//! Amazon ECR's control plane: the repository and the registry credentials. The only user of
//! aws-sdk-ecr. The endpoint, credentials and region come from the standard AWS chain
//! (`AWS_ENDPOINT_URL_ECR`, `AWS_ACCESS_KEY_ID`, web identity, instance metadata...); the
//! `endpoint` input turns on the SDK's FIPS or dual-stack endpoints and picks the registry host
//! to match. [`settings`]: encryption, policies, drift and creation templates (issue 18).

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ecr::error::SdkError;
use aws_sdk_ecr::types::{
    ImageScanningConfiguration, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    ImageTagMutabilityExclusionFilterType, Tag,
};
use base64::Engine as _;

use crate::secret::Secret;
use crate::tag_mutability::TagFilter;
use crate::tag_mutability::TagMutability;

mod archive;
pub mod finding;
mod repository_settings;
mod settings;
pub use archive::ArchivedImage;
pub use repository_settings::{
    Connection, Encryption, Endpoint, PolicyFile, RepositorySettings, WantedRepository,
};
pub use settings::{Difference, SettingsReport, Template, TemplateLookup};

/// A failure talking to ECR; callers branch on a missing repository.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The repository does not exist and `create-repository` is `false`.
    #[error("repository `{repository}` does not exist in `{region}` and `create-repository` is `false`: create it first or set `create-repository: true`")]
    RepositoryMissing {
        /// The repository name.
        repository: String,
        /// The region asked.
        region: String,
    },
    /// An ECR API call failed.
    #[error("{action} failed: {message}")]
    Api {
        /// What we were doing, e.g. "describing repository `team/api`".
        action: String,
        /// The SDK's message with its cause chain.
        message: String,
    },
    /// ECR answered something we cannot use.
    #[error("{0}")]
    UnexpectedAnswer(String),
    /// `create-repository: template`, and no creation template would create the repository.
    #[error("repository `{repository}` does not exist in `{region}` and no repository creation template for create-on-push matches it, so `create-repository: template` cannot create it: add a template whose prefix covers it (`aws ecr create-repository-creation-template --prefix ... --applied-for CREATE_ON_PUSH`) or set `create-repository: true`")]
    NoCreationTemplate {
        /// The repository name.
        repository: String,
        /// The region asked.
        region: String,
    },
    /// ECR refused a setting an input names (`InvalidParameterException`).
    #[error("ECR refused `{input}` for repository `{repository}`: {message}")]
    SettingRefused {
        /// The input, e.g. `repository-policy`.
        input: &'static str,
        /// The repository name.
        repository: String,
        /// ECR's message.
        message: String,
    },
}

impl Error {
    /// Exit 1 for a missing repository the run may not create, 2 for ECR failing.
    #[must_use]
    pub fn exit_status(&self) -> crate::exit_status::ExitStatus {
        match self {
            Error::RepositoryMissing { .. }
            | Error::NoCreationTemplate { .. }
            | Error::SettingRefused { .. } => crate::exit_status::ExitStatus::User,
            Error::Api { .. } | Error::UnexpectedAnswer(_) => {
                crate::exit_status::ExitStatus::System
            }
        }
    }
}

fn api_error<E, R>(action: impl Into<String>, error: &SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // The SDK's own Display is terse ("dispatch failure"); the causes say what happened.
    let mut message = crate::error_chain(error);
    if matches!(error, SdkError::DispatchFailure(_)) || message.contains("credentials") {
        message.push_str(
            " (check the AWS credentials and region: e.g. run aws-actions/configure-aws-credentials first)",
        );
    }
    Error::Api {
        action: action.into(),
        message,
    }
}

/// Credentials for the registry, from `GetAuthorizationToken`. The password is a secret: it
/// must be masked before anything else is printed and never be logged.
#[derive(Debug, Clone)]
pub struct RegistryCredentials {
    /// Always `AWS` for ECR.
    pub username: String,
    /// The 12-hour registry token.
    pub password: Secret,
    /// The registry host from the token's proxy endpoint, e.g.
    /// `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub proxy_host: String,
}

/// What ensuring the repository found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Whether this run created it.
    pub created: bool,
    /// Its tag mutability as ECR reports it (for a repository that existed, whatever it was
    /// created with, not the `image-tag-mutability` input, unless `update-repository` changed
    /// it; for one left to create-on-push, the template's).
    pub mutability: TagMutability,
    /// Settings set, compared or changed, and the creation template (issue 18).
    pub settings: SettingsReport,
}

/// The request's mutability in the SDK's terms: the mode, and the filters when it has any
/// (ECR refuses an empty filter list, and any filters with a plain mode).
fn to_ecr(
    mutability: &TagMutability,
) -> Result<
    (
        ImageTagMutability,
        Option<Vec<ImageTagMutabilityExclusionFilter>>,
    ),
    Error,
> {
    let mode = ImageTagMutability::from(mutability.mode());
    let filters = mutability
        .exclusion_filters()
        .iter()
        .map(|filter| {
            ImageTagMutabilityExclusionFilter::builder()
                .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                .filter(filter.as_str())
                .build()
                .map_err(|e| Error::UnexpectedAnswer(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((mode, (!filters.is_empty()).then_some(filters)))
}

/// A repository's mutability as ECR describes it; a repository without the field (older
/// answers) is `MUTABLE`, ECR's default.
fn from_ecr(repository: &aws_sdk_ecr::types::Repository) -> Result<TagMutability, Error> {
    let name = repository.repository_name().unwrap_or_default();
    let filters = repository
        .image_tag_mutability_exclusion_filters()
        .iter()
        .map(|f| f.filter().parse::<TagFilter>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            Error::UnexpectedAnswer(format!("ECR describes repository `{name}` with {e}"))
        })?;
    match repository
        .image_tag_mutability()
        .map(ImageTagMutability::as_str)
    {
        None | Some("MUTABLE") => Ok(TagMutability::Mutable),
        Some("IMMUTABLE") => Ok(TagMutability::Immutable),
        Some("MUTABLE_WITH_EXCLUSION") => Ok(TagMutability::MutableWithExclusion(filters)),
        Some("IMMUTABLE_WITH_EXCLUSION") => Ok(TagMutability::ImmutableWithExclusion(filters)),
        Some(other) => Err(Error::UnexpectedAnswer(format!(
            "ECR describes repository `{name}` with the unknown tag mutability `{other}`"
        ))),
    }
}

/// A connected ECR client for one region and registry.
#[derive(Debug, Clone)]
pub struct Ecr {
    client: aws_sdk_ecr::Client,
    region: String,
    registry_id: Option<String>,
    endpoint: Endpoint,
}

impl Ecr {
    /// Loads the AWS configuration for the connection's region and endpoints.
    pub async fn connect(connection: &Connection) -> Ecr {
        // rustls with ring, as everywhere in this binary (see Cargo.toml).
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(connection.region.clone()))
            .http_client(http_client);
        // The SDK picks the API's FIPS or dual-stack endpoint (`AWS_USE_*_ENDPOINT` already
        // decided `endpoint` when the input was empty).
        if !connection.explicit_endpoint_url {
            match connection.endpoint {
                Endpoint::Default => {}
                Endpoint::DualStack => loader = loader.use_dual_stack(true),
                Endpoint::Fips => loader = loader.use_fips(true),
            }
        }
        let config = loader.load().await;
        // An explicit endpoint URL (`AWS_ENDPOINT_URL_ECR`, e.g. a VPC endpoint) is used as
        // given: the SDK refuses FIPS or dual-stack beside one. The registry host still
        // follows `endpoint`.
        let client = if connection.explicit_endpoint_url {
            aws_sdk_ecr::Client::from_conf(
                aws_sdk_ecr::config::Builder::from(&config)
                    .use_fips(false)
                    .use_dual_stack(false)
                    .build(),
            )
        } else {
            aws_sdk_ecr::Client::new(&config)
        };
        Ecr {
            client,
            region: connection.region.clone(),
            registry_id: connection.registry_id.clone(),
            endpoint: connection.endpoint,
        }
    }

    /// Gets a registry token and decodes it into a username and password; the registry host
    /// is the one of `registry-id` when given.
    pub async fn registry_credentials(&self) -> Result<RegistryCredentials, Error> {
        let answer = self
            .client
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| api_error("getting an ECR authorization token", &e))?;
        let data = answer.authorization_data().first().ok_or_else(|| {
            Error::UnexpectedAnswer("ECR returned no authorization data".to_owned())
        })?;
        let token = data.authorization_token().unwrap_or_default();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                Error::UnexpectedAnswer("ECR's authorization token is not base64 text".to_owned())
            })?;
        let (username, password) = decoded.split_once(':').ok_or_else(|| {
            Error::UnexpectedAnswer("ECR's authorization token is not `user:password`".to_owned())
        })?;
        let endpoint = data.proxy_endpoint().unwrap_or_default();
        let caller_host = endpoint
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        // The token opens every registry the principal may use; another account's registry
        // differs from ours only in the leading account id.
        let proxy_host = match (&self.registry_id, caller_host.split_once('.')) {
            (Some(id), Some((_, rest))) => format!("{id}.{rest}"),
            _ => caller_host.to_owned(),
        };
        let proxy_host = registry_host_for(&proxy_host, &self.region, self.endpoint);
        Ok(RegistryCredentials {
            username: username.to_owned(),
            password: Secret::new(password),
            proxy_host,
        })
    }

    /// Every tag of an active image in the repository (`ListImages`, all pages; archived
    /// images are left out, as ECR does by default); none when it does not exist yet.
    pub async fn repository_tags(&self, repository: &str) -> Result<Vec<String>, Error> {
        let mut pages = self
            .client
            .list_images()
            .set_registry_id(self.registry_id.clone())
            .repository_name(repository)
            .filter(
                aws_sdk_ecr::types::ListImagesFilter::builder()
                    .tag_status(aws_sdk_ecr::types::TagStatus::Tagged)
                    .build(),
            )
            .into_paginator()
            .send();
        let mut tags = Vec::new();
        while let Some(page) = pages.next().await {
            match page {
                Ok(page) => tags.extend(
                    page.image_ids()
                        .iter()
                        .filter_map(|id| id.image_tag().map(str::to_owned)),
                ),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_repository_not_found_exception()) =>
                {
                    return Ok(Vec::new());
                }
                Err(e) => {
                    return Err(api_error(
                        format!("listing the tags of repository `{repository}`"),
                        &e,
                    ))
                }
            }
        }
        Ok(tags)
    }

    /// The repository as ECR describes it, or `None` when it does not exist.
    async fn describe_repository(
        &self,
        name: &str,
    ) -> Result<Option<aws_sdk_ecr::types::Repository>, Error> {
        match self
            .client
            .describe_repositories()
            .set_registry_id(self.registry_id.clone())
            .repository_names(name)
            .send()
            .await
        {
            Ok(answer) => answer
                .repositories()
                .first()
                .cloned()
                .map(Some)
                .ok_or_else(|| {
                    Error::UnexpectedAnswer(format!(
                        "ECR described no repository for `{name}` and reported no error"
                    ))
                }),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error(format!("describing repository `{name}`"), &e)),
        }
    }

    /// The repository as ECR describes it, without creating it (a merge run joins images that
    /// are already in it); `None` when it does not exist.
    pub async fn existing_repository(&self, name: &str) -> Result<Option<Repository>, Error> {
        self.describe_repository(name)
            .await?
            .map(|existing| {
                Ok(Repository {
                    created: false,
                    mutability: from_ecr(&existing)?,
                    settings: SettingsReport::default(),
                })
            })
            .transpose()
    }

    /// Makes sure the repository exists: describes it, and creates it (with the requested
    /// mutability and its exclusion filters, scan-on-push, encryption, a `created-by` tag, then
    /// the lifecycle and repository policies) when missing and allowed. A create that races
    /// another job's create counts as success. An existing repository is compared with what the
    /// inputs name (and changed, with `update-repository`). With `create-repository: template`
    /// a missing repository is left to ECR's create-on-push when a creation template matches.
    /// Either way the answer carries the repository's actual mutability.
    pub async fn ensure_repository(
        &self,
        wanted: &WantedRepository<'_>,
    ) -> Result<Repository, Error> {
        let name = wanted.repository;
        if let Some(existing) = self.describe_repository(name).await? {
            return self.existing_with_settings(&existing, wanted).await;
        }
        if !wanted.create_repository {
            return Err(Error::RepositoryMissing {
                repository: name.to_owned(),
                region: self.region.clone(),
            });
        }
        let mut report = SettingsReport::default();
        match self.creation_template(name).await {
            TemplateLookup::Found(template) => {
                report.template = Some(template.prefix.clone());
                if wanted.settings.create_from_template {
                    report.create_on_push = true;
                    return Ok(Repository {
                        created: false,
                        mutability: template.mutability,
                        settings: report,
                    });
                }
            }
            TemplateLookup::NoneMatches if wanted.settings.create_from_template => {
                return Err(Error::NoCreationTemplate {
                    repository: name.to_owned(),
                    region: self.region.clone(),
                });
            }
            TemplateLookup::NoneMatches => {}
            TemplateLookup::Unknown(why) => {
                report
                    .notices
                    .push(format!("repository creation templates not read: {why}"));
                if wanted.settings.create_from_template {
                    // ECR decides at the first push; the push fails clearly if nothing matches.
                    report.create_on_push = true;
                    return Ok(Repository {
                        created: false,
                        mutability: wanted.image_tag_mutability.clone(),
                        settings: report,
                    });
                }
            }
        }
        let tag = Tag::builder()
            .key("created-by")
            .value("ecr-multiarch")
            .build()
            .map_err(|e| Error::UnexpectedAnswer(e.to_string()))?;
        let (mode, filters) = to_ecr(wanted.image_tag_mutability)?;
        let encryption = wanted
            .settings
            .encryption
            .as_ref()
            .map(settings::encryption_configuration)
            .transpose()?;
        match self
            .client
            .create_repository()
            .set_registry_id(self.registry_id.clone())
            .repository_name(name)
            .image_tag_mutability(mode)
            .set_image_tag_mutability_exclusion_filters(filters)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(wanted.scan_on_push)
                    .build(),
            )
            .set_encryption_configuration(encryption)
            .tags(tag)
            .send()
            .await
        {
            Ok(answer) => {
                if let Some(encryption) = &wanted.settings.encryption {
                    report.created_with.push(match encryption.kms_key() {
                        Some(key) => format!("encryption {} (`{key}`)", encryption.kind()),
                        None => format!("encryption {}", encryption.kind()),
                    });
                }
                report.created_with.extend(self.set_policies(wanted).await?);
                Ok(Repository {
                    created: true,
                    mutability: match answer.repository() {
                        Some(created) => from_ecr(created)?,
                        None => wanted.image_tag_mutability.clone(),
                    },
                    settings: report,
                })
            }
            // Another job of the same matrix created it between our describe and create, with
            // settings of its own: read them.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_already_exists_exception()) =>
            {
                let existing = self.describe_repository(name).await?.ok_or_else(|| {
                    Error::UnexpectedAnswer(format!(
                        "ECR says repository `{name}` already exists, then that it does not"
                    ))
                })?;
                self.existing_with_settings(&existing, wanted).await
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_kms_exception()) => {
                Err(Error::SettingRefused {
                    input: crate::input_names::KMS_KEY,
                    repository: name.to_owned(),
                    message: e
                        .as_service_error()
                        .and_then(|s| aws_sdk_ecr::error::ProvideErrorMetadata::message(s))
                        .unwrap_or("KMS refused the key")
                        .to_owned(),
                })
            }
            Err(e) => Err(api_error(format!("creating repository `{name}`"), &e)),
        }
    }

    /// An existing repository, compared with (and, with `update-repository`, changed to) what
    /// the inputs name.
    async fn existing_with_settings(
        &self,
        existing: &aws_sdk_ecr::types::Repository,
        wanted: &WantedRepository<'_>,
    ) -> Result<Repository, Error> {
        let differences = self.compare_settings(existing, wanted).await?;
        let mutability_updated = differences
            .iter()
            .any(|d| d.updated && d.input == crate::input_names::IMAGE_TAG_MUTABILITY);
        Ok(Repository {
            created: false,
            mutability: if mutability_updated {
                wanted.image_tag_mutability.clone()
            } else {
                from_ecr(existing)?
            },
            settings: SettingsReport {
                differences,
                ..SettingsReport::default()
            },
        })
    }
}

/// The registry host for an endpoint: ECR's default host `<account>.dkr.ecr.<region>.<suffix>`
/// (as the token's proxy endpoint names it, port kept) becomes
/// `<account>.dkr-ecr.<region>.on.aws` (dual-stack) or
/// `<account>.dkr.ecr-fips.<region>.amazonaws.com` (FIPS); a host of another form is kept.
#[must_use]
pub fn registry_host_for(host: &str, region: &str, endpoint: Endpoint) -> String {
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => {
            (name, format!(":{port}"))
        }
        _ => (host, String::new()),
    };
    let Some((account, rest)) = name.split_once('.') else {
        return host.to_owned();
    };
    let known = [
        format!("dkr.ecr.{region}.amazonaws.com"),
        format!("dkr.ecr-fips.{region}.amazonaws.com"),
        format!("dkr-ecr.{region}.on.aws"),
    ];
    if !known.iter().any(|k| k == rest) {
        return host.to_owned();
    }
    let rest = match endpoint {
        Endpoint::Default => format!("dkr.ecr.{region}.amazonaws.com"),
        Endpoint::DualStack => format!("dkr-ecr.{region}.on.aws"),
        Endpoint::Fips => format!("dkr.ecr-fips.{region}.amazonaws.com"),
    };
    format!("{account}.{rest}{port}")
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        Endpoint::Default,
        "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    )]
    #[case(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        Endpoint::DualStack,
        "123456789012.dkr-ecr.us-east-1.on.aws"
    )]
    #[case(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com",
        Endpoint::Fips,
        "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com"
    )]
    #[case(
        "123456789012.dkr.ecr.us-east-1.amazonaws.com:5000",
        Endpoint::DualStack,
        "123456789012.dkr-ecr.us-east-1.on.aws:5000"
    )]
    #[case(
        "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
        Endpoint::Fips,
        "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com"
    )]
    #[case("registry.example.com", Endpoint::Fips, "registry.example.com")]
    fn registry_hosts(#[case] host: &str, #[case] endpoint: Endpoint, #[case] expected: &str) {
        assert_eq!(registry_host_for(host, "us-east-1", endpoint), expected);
    }
}

/// Image scanning, for the vulnerability gate (issue 16).
pub mod scan;

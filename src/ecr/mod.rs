//! Amazon ECR's control plane: the repository and the registry credentials. The only user of
//! aws-sdk-ecr. The endpoint, credentials and region come from the standard AWS chain
//! (`AWS_ENDPOINT_URL_ECR`, `AWS_ACCESS_KEY_ID`, web identity, instance metadata...).

use aws_config::{BehaviorVersion, Region};
use aws_sdk_ecr::error::SdkError;
use aws_sdk_ecr::types::{
    ImageScanningConfiguration, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    ImageTagMutabilityExclusionFilterType, Tag,
};
use base64::Engine as _;

use crate::inputs::{Request, TagMutability};
use crate::tag_mutability::TagFilter;

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
}

fn api_error<E, R>(action: impl Into<String>, error: &SdkError<E, R>) -> Error
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // The SDK's own Display is terse ("dispatch failure"); the causes say what happened.
    let mut parts: Vec<String> = Vec::new();
    let mut cause: Option<&dyn std::error::Error> = Some(error);
    while let Some(inner) = cause {
        let text = inner.to_string();
        if parts.last() != Some(&text) {
            parts.push(text);
        }
        cause = inner.source();
    }
    let mut message = parts.join(": ");
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
#[derive(Clone)]
pub struct RegistryCredentials {
    /// Always `AWS` for ECR.
    pub username: String,
    /// The 12-hour registry token.
    pub password: String,
    /// The registry host from the token's proxy endpoint, e.g.
    /// `123456789012.dkr.ecr.us-east-1.amazonaws.com`.
    pub proxy_host: String,
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("proxy_host", &self.proxy_host)
            .finish()
    }
}

/// What ensuring the repository found or did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// Whether this run created it.
    pub created: bool,
    /// Its tag mutability as ECR reports it (for a repository that existed, whatever it was
    /// created with, not the `image-tag-mutability` input).
    pub mutability: TagMutability,
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
}

impl Ecr {
    /// Loads the AWS configuration for the request's region.
    pub async fn connect(request: &Request) -> Ecr {
        // rustls with ring, as everywhere in this binary (see Cargo.toml).
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(aws_smithy_http_client::tls::Provider::Rustls(
                aws_smithy_http_client::tls::rustls_provider::CryptoMode::Ring,
            ))
            .build_https();
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(request.aws_region.clone()))
            .http_client(http_client)
            .load()
            .await;
        Ecr {
            client: aws_sdk_ecr::Client::new(&config),
            region: request.aws_region.clone(),
            registry_id: request.registry_id.clone(),
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
        Ok(RegistryCredentials {
            username: username.to_owned(),
            password: password.to_owned(),
            proxy_host,
        })
    }

    /// Every tag in the repository (`ListImages`, all pages); none when it does not exist yet.
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
                })
            })
            .transpose()
    }

    /// Makes sure the repository exists: describes it, and creates it (with the requested
    /// mutability and its exclusion filters, scan-on-push and a `created-by` tag) when missing
    /// and allowed. A create that races another job's create counts as success. Either way
    /// the answer carries the repository's actual mutability.
    pub async fn ensure_repository(&self, request: &Request) -> Result<Repository, Error> {
        let name = &request.repository;
        if let Some(existing) = self.describe_repository(name).await? {
            return Ok(Repository {
                created: false,
                mutability: from_ecr(&existing)?,
            });
        }
        if !request.create_repository {
            return Err(Error::RepositoryMissing {
                repository: name.clone(),
                region: self.region.clone(),
            });
        }
        let tag = Tag::builder()
            .key("created-by")
            .value("ecr-multiarch")
            .build()
            .map_err(|e| Error::UnexpectedAnswer(e.to_string()))?;
        let (mode, filters) = to_ecr(&request.image_tag_mutability)?;
        match self
            .client
            .create_repository()
            .set_registry_id(self.registry_id.clone())
            .repository_name(name)
            .image_tag_mutability(mode)
            .set_image_tag_mutability_exclusion_filters(filters)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(request.scan_on_push)
                    .build(),
            )
            .tags(tag)
            .send()
            .await
        {
            Ok(answer) => Ok(Repository {
                created: true,
                mutability: match answer.repository() {
                    Some(created) => from_ecr(created)?,
                    None => request.image_tag_mutability.clone(),
                },
            }),
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
                Ok(Repository {
                    created: false,
                    mutability: from_ecr(&existing)?,
                })
            }
            Err(e) => Err(api_error(format!("creating repository `{name}`"), &e)),
        }
    }
}

/// Image scanning, for the vulnerability gate (issue 16).
pub mod scan;

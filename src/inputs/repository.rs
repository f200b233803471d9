//! Where the image goes: the ECR repository name, the region, the account, a registry host
//! override, and the tag mutability of a created repository. Encryption, policies and the
//! endpoint live in `repository_settings`.

use super::TagMutability;
use crate::tag_mutability::{TagFilter, MAX_EXCLUSION_FILTERS};

use super::repository_settings::create_repository;
use super::tags::TagHost;
use super::{boolean, given, list, names, Args, InputError};

/// Where the image goes: the repository, and the registry that holds it.
#[derive(Debug)]
pub(super) struct Destination {
    pub repository: String,
    pub aws_region: String,
    pub registry_id: Option<String>,
    pub registry: Option<String>,
}

impl Destination {
    /// `aws-region` (else `AWS_REGION`, then `AWS_DEFAULT_REGION`), `registry-id` and
    /// `registry`, for the `repository` already read.
    pub(super) fn parse(args: &Args, repository: String) -> Result<Destination, InputError> {
        Ok(Destination {
            repository,
            aws_region: aws_region(args)?,
            registry_id: registry_id(args.registry_id.as_ref())?,
            registry: registry(args.registry.as_ref())?,
        })
    }

    /// What a full reference in `tags` or `merge` must name.
    pub(super) fn tag_host(&self) -> TagHost<'_> {
        TagHost {
            repository: &self.repository,
            registry: self.registry.as_deref(),
            region: &self.aws_region,
            registry_id: self.registry_id.as_deref(),
        }
    }
}

/// How a repository this run creates is set up: the inputs beside `repository_settings`.
#[derive(Debug)]
pub(super) struct NewRepository {
    pub create_repository: bool,
    pub image_tag_mutability: TagMutability,
    pub scan_on_push: bool,
}

impl NewRepository {
    /// `create-repository` (`true`, `false` or `template`, issue 18), `image-tag-mutability`
    /// with its exclusion filters, and `scan-on-push`.
    pub(super) fn parse(args: &Args) -> Result<NewRepository, InputError> {
        let (create_repository, _) = create_repository(args.create_repository.as_ref())?;
        Ok(NewRepository {
            create_repository,
            image_tag_mutability: tag_mutability(
                args.image_tag_mutability.as_ref(),
                args.image_tag_mutability_exclusion_filters.as_ref(),
            )?,
            scan_on_push: boolean(names::SCAN_ON_PUSH, args.scan_on_push.as_ref(), true)?,
        })
    }
}

/// ECR's repository name rule: lowercase path components separated by `/`, each made of
/// alphanumerics joined by single `.`, `_` or `-`; 2 to 256 characters.
pub(super) fn repository(value: Option<&String>) -> Result<String, InputError> {
    let name = given(value).ok_or_else(|| {
        InputError::new(
            names::REPOSITORY,
            "a repository name is required, e.g. `team/api`",
        )
    })?;
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.split(['.', '_', '-']).all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            })
    };
    if let Some((host, rest)) = name
        .split_once('/')
        .filter(|(h, _)| h.contains(".dkr.ecr."))
    {
        return Err(InputError::new(
            names::REPOSITORY,
            format!("`{name}` is a repository URI: give the name only (`{rest}`); set `registry-id` for another account's `{host}`"),
        ));
    }
    if !(2..=256).contains(&name.len()) || !name.split('/').all(component_ok) {
        return Err(InputError::new(
            names::REPOSITORY,
            format!(
                "`{name}` is not an ECR repository name: use 2 to 256 lowercase letters, digits and \
                 single `.`, `_` or `-` between them, with `/` between path parts (e.g. `team/api`); \
                 give the name only, not the registry host"
            ),
        ));
    }
    Ok(name.to_owned())
}

/// An AWS region name such as `us-east-1`, `eu-central-2` or `us-gov-west-1`.
pub(super) fn is_region(region: &str) -> bool {
    let parts: Vec<&str> = region.split('-').collect();
    parts.len() >= 3
        && parts[..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1].bytes().all(|b| b.is_ascii_digit())
        && !parts[parts.len() - 1].is_empty()
}

fn aws_region(args: &Args) -> Result<String, InputError> {
    let region = given(args.aws_region.as_ref())
        .or_else(|| given(args.env_aws_region.as_ref()))
        .or_else(|| given(args.env_aws_default_region.as_ref()))
        .ok_or_else(|| {
            InputError::new(
                names::AWS_REGION,
                "no region given: set the `aws-region` input, or `AWS_REGION` (e.g. with aws-actions/configure-aws-credentials)",
            )
        })?;
    if !is_region(region) {
        return Err(InputError::new(
            names::AWS_REGION,
            format!("`{region}` is not an AWS region name, like `us-east-1`"),
        ));
    }
    Ok(region.to_owned())
}

fn registry_id(value: Option<&String>) -> Result<Option<String>, InputError> {
    let Some(id) = given(value) else {
        return Ok(None);
    };
    if id.len() != 12 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(InputError::new(
            names::REGISTRY_ID,
            format!("`{id}` is not an AWS account id: use its 12 digits"),
        ));
    }
    Ok(Some(id.to_owned()))
}

/// `host[:port]`, no scheme and no path.
pub(super) fn registry(value: Option<&String>) -> Result<Option<String>, InputError> {
    let Some(host) = given(value) else {
        return Ok(None);
    };
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) if !name.ends_with(']') || host.starts_with('[') => (name, Some(port)),
        _ => (host, None),
    };
    let name_ok = !name.is_empty()
        && (name.starts_with('[') && name.ends_with(']')
            || name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')));
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p > 0));
    if host.contains("://") || host.contains('/') || !name_ok || !port_ok {
        return Err(InputError::new(
            names::REGISTRY,
            format!("`{host}` is not a registry address: use `host` or `host:port`, without a scheme or path"),
        ));
    }
    Ok(Some(host.to_owned()))
}

/// `image-tag-mutability` with its exclusion filters, by ECR's rules (see
/// [`crate::tag_mutability`]): the `*_WITH_EXCLUSION` modes need 1 to 5 filters, the plain
/// modes take none.
fn tag_mutability(
    mode: Option<&String>,
    filters: Option<&String>,
) -> Result<TagMutability, InputError> {
    const FILTERS: &str = names::IMAGE_TAG_MUTABILITY_EXCLUSION_FILTERS;
    const MODES: &[&str] = &[
        "MUTABLE",
        "IMMUTABLE",
        "IMMUTABLE_WITH_EXCLUSION",
        "MUTABLE_WITH_EXCLUSION",
    ];
    // The mode first: filters are judged against it.
    let mode = given(mode).unwrap_or("MUTABLE");
    if !MODES.contains(&mode) {
        return Err(InputError::new(
            names::IMAGE_TAG_MUTABILITY,
            format!("`{mode}` is not a tag mutability: use `MUTABLE`, `IMMUTABLE`, `IMMUTABLE_WITH_EXCLUSION` or `MUTABLE_WITH_EXCLUSION`"),
        ));
    }
    let mut parsed: Vec<TagFilter> = Vec::new();
    for item in list(given(filters).unwrap_or("")) {
        let filter: TagFilter =
            item.parse()
                .map_err(|e: crate::tag_mutability::TagFilterParseError| {
                    InputError::new(FILTERS, e.to_string())
                })?;
        if parsed.contains(&filter) {
            return Err(InputError::new(
                FILTERS,
                format!("`{filter}` is listed twice"),
            ));
        }
        parsed.push(filter);
    }
    if parsed.len() > MAX_EXCLUSION_FILTERS {
        return Err(InputError::new(
            FILTERS,
            format!(
                "{} filters given: ECR takes at most {MAX_EXCLUSION_FILTERS}; a `*` matches any run of characters, so one filter can cover several tags",
                parsed.len()
            ),
        ));
    }
    match (mode, parsed.is_empty()) {
        ("MUTABLE", true) => Ok(TagMutability::Mutable),
        ("IMMUTABLE", true) => Ok(TagMutability::Immutable),
        ("MUTABLE_WITH_EXCLUSION", false) => Ok(TagMutability::MutableWithExclusion(parsed)),
        ("IMMUTABLE_WITH_EXCLUSION", false) => Ok(TagMutability::ImmutableWithExclusion(parsed)),
        ("MUTABLE" | "IMMUTABLE", false) => Err(InputError::new(
            FILTERS,
            format!("exclusion filters apply only to the modes `MUTABLE_WITH_EXCLUSION` and `IMMUTABLE_WITH_EXCLUSION`, and `image-tag-mutability` is `{mode}`: set one of those modes or leave the filters empty"),
        )),
        _ => Err(InputError::new(
            FILTERS,
            format!("`image-tag-mutability` is `{mode}`, which needs at least one filter: give the tags it excepts, e.g. `latest` or `dev-*`"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use crate::inputs::tests::args;
    use crate::inputs::{names, Args, InputError, Request, TagMutability};
    use rstest::rstest;

    #[test]
    fn region_falls_back_to_the_environment_names() {
        let request = Request::try_from(Args {
            aws_region: Some(String::new()),
            env_aws_region: None,
            env_aws_default_region: Some("eu-west-2".into()),
            ..args()
        })
        .expect("valid");
        assert_eq!(request.aws_region, "eu-west-2");
    }

    fn mutability(mode: &str, filters: &str) -> Result<TagMutability, InputError> {
        Request::try_from(Args {
            image_tag_mutability: Some(mode.into()),
            image_tag_mutability_exclusion_filters: Some(filters.into()),
            ..args()
        })
        .map(|request| request.image_tag_mutability)
    }

    #[test]
    fn the_four_mutability_modes_are_accepted() {
        assert_eq!(mutability("", ""), Ok(TagMutability::Mutable));
        assert_eq!(mutability("MUTABLE", ""), Ok(TagMutability::Mutable));
        assert_eq!(mutability("IMMUTABLE", " "), Ok(TagMutability::Immutable));
        let excepted = mutability("IMMUTABLE_WITH_EXCLUSION", "latest,\ndev-*\n").expect("valid");
        assert_eq!(excepted.mode(), "IMMUTABLE_WITH_EXCLUSION");
        let filters: Vec<&str> = excepted
            .exclusion_filters()
            .iter()
            .map(|f| f.as_str())
            .collect();
        assert_eq!(filters, vec!["latest", "dev-*"]);
        assert!(!excepted.is_immutable("latest") && !excepted.is_immutable("dev-7"));
        assert!(excepted.is_immutable("v1.0.0"));
        let pinned = mutability("MUTABLE_WITH_EXCLUSION", "v*.*.*, stable").expect("valid");
        assert_eq!(pinned.mode(), "MUTABLE_WITH_EXCLUSION");
        assert_eq!(pinned.exclusion_filters().len(), 2);
        assert!(pinned.is_immutable("v1.2.3") && pinned.is_immutable("stable"));
        assert!(!pinned.is_immutable("latest"));
        let five = mutability("MUTABLE_WITH_EXCLUSION", "a,b,c,d,e").expect("five is the most");
        assert_eq!(five.exclusion_filters().len(), 5);
    }

    #[rstest]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "",
        "`image-tag-mutability` is `IMMUTABLE_WITH_EXCLUSION`, which needs at least one filter"
    )]
    #[case(
        "MUTABLE_WITH_EXCLUSION",
        " , ",
        "`image-tag-mutability` is `MUTABLE_WITH_EXCLUSION`, which needs at least one filter"
    )]
    #[case("MUTABLE", "latest", "and `image-tag-mutability` is `MUTABLE`")]
    #[case("", "latest", "and `image-tag-mutability` is `MUTABLE`")]
    #[case("IMMUTABLE", "latest", "and `image-tag-mutability` is `IMMUTABLE`")]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "release/*",
        "`release/*` is not an ECR wildcard filter"
    )]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "v?.0",
        "`v?.0` is not an ECR wildcard filter"
    )]
    #[case("IMMUTABLE_WITH_EXCLUSION", &"x".repeat(129), "is not an ECR wildcard filter: use 1 to 128")]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "latest,latest",
        "`latest` is listed twice"
    )]
    #[case(
        "IMMUTABLE_WITH_EXCLUSION",
        "a,b,c,d,e,f",
        "6 filters given: ECR takes at most 5"
    )]
    fn exclusion_filters_follow_ecr_rules(
        #[case] mode: &str,
        #[case] filters: &str,
        #[case] message: &str,
    ) {
        let error = mutability(mode, filters).expect_err("invalid");
        assert_eq!(error.input, names::IMAGE_TAG_MUTABILITY_EXCLUSION_FILTERS);
        assert!(error.message.contains(message), "{error}");
    }

    #[rstest]
    #[case("127.0.0.1:5000")]
    #[case("localhost")]
    #[case("123456789012.dkr.ecr.us-east-1.amazonaws.com")]
    #[case("[::1]:5000")]
    fn accepts_registry_addresses(#[case] host: &str) {
        let request = Request::try_from(Args {
            registry: Some(host.into()),
            ..args()
        })
        .expect("valid");
        assert_eq!(request.registry.as_deref(), Some(host));
    }
}

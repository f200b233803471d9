//! The inputs that say how the repository is set up (issue 18): `encryption`, `kms-key`,
//! `lifecycle-policy`, `repository-policy`, `update-repository`, `endpoint`, and
//! `create-repository: template`. Validated here with the rest of the inputs, before anything
//! is created; the policy files are read here (their text travels in the request).

use std::path::{Path, PathBuf};

use super::{boolean, given, names, Args, InputError, Request};
use crate::ecr::{
    Connection, Encryption, Endpoint, PolicyFile, RepositorySettings, WantedRepository,
};

/// Regions with ECR FIPS endpoints (`ecr-fips.<region>.amazonaws.com`,
/// `<account>.dkr.ecr-fips.<region>.amazonaws.com`), as AWS lists them
/// (<https://docs.aws.amazon.com/general/latest/gr/ecr.html>).
pub const FIPS_REGIONS: &[&str] = &[
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "us-gov-east-1",
    "us-gov-west-1",
];

/// Lifecycle rule actions ECR takes: `expire`, and `transition` (to the archive storage class).
const LIFECYCLE_ACTIONS: &[&str] = &["expire", "transition"];

/// The raw values of the inputs this module reads.
struct Raw<'a> {
    pub create_repository: Option<&'a String>,
    pub encryption: Option<&'a String>,
    pub kms_key: Option<&'a String>,
    pub lifecycle_policy: Option<&'a String>,
    pub repository_policy: Option<&'a String>,
    pub update_repository: Option<&'a String>,
    pub endpoint: Option<&'a String>,
    pub env_use_fips: Option<&'a String>,
    pub env_use_dual_stack: Option<&'a String>,
    pub explicit_endpoint_url: bool,
    pub image_tag_mutability: Option<&'a String>,
    pub image_tag_mutability_exclusion_filters: Option<&'a String>,
    pub scan_on_push: Option<&'a String>,
    pub region: &'a str,
}

/// `create-repository`: `true`, `false` or `template` (`true` for `template`: the repository
/// may come into being; [`RepositorySettings::create_from_template`] says how).
pub(super) fn create_repository(value: Option<&String>) -> Result<(bool, bool), InputError> {
    if given(value) == Some("template") {
        return Ok((true, true));
    }
    boolean(names::CREATE_REPOSITORY, value, true)
        .map(|create| (create, false))
        .map_err(|_| {
            InputError::new(
                names::CREATE_REPOSITORY,
                format!(
                    "`{}` is not a boolean: use `true` or `false`, or `template` to leave creation to ECR's create-on-push",
                    given(value).unwrap_or_default()
                ),
            )
        })
}

/// A KMS key as ECR's `kmsKey` takes it: a key ARN, an alias (`alias/<name>`), or an alias ARN.
fn is_kms_key(key: &str) -> bool {
    let name_ok = |name: &str| {
        !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-'))
    };
    if let Some(alias) = key.strip_prefix("alias/") {
        return name_ok(alias) && !alias.starts_with("aws/");
    }
    let parts: Vec<&str> = key.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts[..] else {
        return false;
    };
    arn == "arn"
        && partition.starts_with("aws")
        && service == "kms"
        && !region.is_empty()
        && account.len() == 12
        && account.bytes().all(|b| b.is_ascii_digit())
        && (resource.strip_prefix("key/").is_some_and(|id| {
            id.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') && !id.is_empty()
        }) || resource.strip_prefix("alias/").is_some_and(name_ok))
}

fn encryption(
    kind: Option<&String>,
    key: Option<&String>,
) -> Result<Option<Encryption>, InputError> {
    let key = given(key);
    if let Some(key) = key {
        if !is_kms_key(key) {
            return Err(InputError::new(
                names::KMS_KEY,
                format!("`{key}` is not a KMS key: give its ARN (`arn:aws:kms:<region>:<account>:key/<id>`) or an alias (`alias/<name>`)"),
            ));
        }
    }
    let encryption = match given(kind) {
        None if key.is_some() => {
            return Err(InputError::new(
                names::KMS_KEY,
                "a KMS key needs `encryption: KMS` or `KMS_DSSE` (the default, `AES256`, takes no key)",
            ))
        }
        None => return Ok(None),
        Some("AES256") if key.is_some() => {
            return Err(InputError::new(
                names::KMS_KEY,
                "`encryption` is `AES256`, which takes no key: set `encryption: KMS` (or `KMS_DSSE`), or leave `kms-key` empty",
            ))
        }
        Some("AES256") => Encryption::Aes256,
        Some("KMS") => Encryption::Kms(key.map(str::to_owned)),
        Some("KMS_DSSE") => Encryption::KmsDsse(key.map(str::to_owned)),
        Some(other) => {
            return Err(InputError::new(
                names::ENCRYPTION,
                format!("`{other}` is not an encryption type: use `AES256`, `KMS` or `KMS_DSSE`"),
            ))
        }
    };
    Ok(Some(encryption))
}

/// Reads a JSON document from the workspace; `what` says what it should be.
fn json_file(
    input: &'static str,
    value: Option<&String>,
) -> Result<Option<(PolicyFile, serde_json::Value)>, InputError> {
    let Some(path) = given(value) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(Path::new(path)).map_err(|e| {
        InputError::new(
            input,
            format!(
                "cannot read `{path}` ({e}): give a JSON file's path relative to the workspace"
            ),
        )
    })?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| InputError::new(input, format!("`{path}` is not JSON: {e}")))?;
    if !json.is_object() {
        return Err(InputError::new(
            input,
            format!("`{path}` is not a JSON object"),
        ));
    }
    Ok(Some((
        PolicyFile {
            path: PathBuf::from(path),
            text,
        },
        json,
    )))
}

/// ECR's lifecycle policy shape: `rules`, each with a unique positive `rulePriority`, a
/// `selection` (`tagStatus`, `countType`, a positive `countNumber`) and an `action` (`type`).
fn lifecycle_shape(policy: &serde_json::Value) -> Result<(), String> {
    let rules = policy
        .get("rules")
        .and_then(|r| r.as_array())
        .filter(|r| !r.is_empty())
        .ok_or("it has no `rules`: ECR needs a non-empty `rules` list")?;
    let mut priorities = Vec::new();
    for (n, rule) in rules.iter().enumerate() {
        let at = format!("rule {}", n + 1);
        let priority = rule
            .get("rulePriority")
            .and_then(serde_json::Value::as_u64)
            .filter(|p| *p >= 1)
            .ok_or_else(|| format!("{at} has no `rulePriority` (a whole number from 1)"))?;
        if priorities.contains(&priority) {
            return Err(format!("{at}: `rulePriority` {priority} is used twice"));
        }
        priorities.push(priority);
        let selection = rule
            .get("selection")
            .filter(|s| s.is_object())
            .ok_or_else(|| format!("{at} has no `selection` object"))?;
        for key in ["tagStatus", "countType"] {
            if !selection.get(key).is_some_and(serde_json::Value::is_string) {
                return Err(format!("{at}: `selection` has no `{key}`"));
            }
        }
        if selection
            .get("countNumber")
            .and_then(serde_json::Value::as_u64)
            .is_none_or(|c| c < 1)
        {
            return Err(format!(
                "{at}: `selection` has no `countNumber` (a whole number from 1)"
            ));
        }
        let action = rule
            .get("action")
            .and_then(|a| a.get("type"))
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| format!("{at} has no `action` with a `type`"))?;
        if !LIFECYCLE_ACTIONS.contains(&action) {
            return Err(format!(
                "{at}: action `{action}` is not one ECR takes (`expire` or `transition`)"
            ));
        }
    }
    Ok(())
}

fn endpoint(raw: &Raw<'_>) -> Result<Endpoint, InputError> {
    let flag = |v: Option<&String>| given(v).is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let endpoint = match given(raw.endpoint) {
        Some("default") => Endpoint::Default,
        Some("dual-stack") => Endpoint::DualStack,
        Some("fips") => Endpoint::Fips,
        Some(other) => {
            return Err(InputError::new(
                names::ENDPOINT,
                format!("`{other}` is not an endpoint: use `default`, `dual-stack` or `fips`"),
            ))
        }
        // The AWS SDK's own settings, as the CLI reads them.
        None => match (flag(raw.env_use_fips), flag(raw.env_use_dual_stack)) {
            (true, true) => {
                return Err(InputError::new(
                    names::ENDPOINT,
                    "`AWS_USE_FIPS_ENDPOINT` and `AWS_USE_DUALSTACK_ENDPOINT` are both `true`: choose one with `endpoint: fips` or `endpoint: dual-stack`",
                ))
            }
            (true, false) => Endpoint::Fips,
            (false, true) => Endpoint::DualStack,
            (false, false) => Endpoint::Default,
        },
    };
    if endpoint == Endpoint::Fips && !FIPS_REGIONS.contains(&raw.region) {
        return Err(InputError::new(
            names::ENDPOINT,
            format!(
                "ECR has no FIPS endpoint in `{}`: FIPS endpoints exist in {}",
                raw.region,
                FIPS_REGIONS
                    .iter()
                    .map(|r| format!("`{r}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(endpoint)
}

/// Validates the repository-settings inputs (cheap checks first, files last).
/// The repository settings of `args` (issue 18), for the region already read.
pub(super) fn parse(args: &Args, region: &str) -> Result<RepositorySettings, InputError> {
    repository_settings(&Raw {
        create_repository: args.create_repository.as_ref(),
        encryption: args.encryption.as_ref(),
        kms_key: args.kms_key.as_ref(),
        lifecycle_policy: args.lifecycle_policy.as_ref(),
        repository_policy: args.repository_policy.as_ref(),
        update_repository: args.update_repository.as_ref(),
        endpoint: args.endpoint.as_ref(),
        env_use_fips: args.env_use_fips_endpoint.as_ref(),
        env_use_dual_stack: args.env_use_dualstack_endpoint.as_ref(),
        explicit_endpoint_url: given(args.env_endpoint_url_ecr.as_ref()).is_some()
            || given(args.env_endpoint_url.as_ref()).is_some(),
        image_tag_mutability: args.image_tag_mutability.as_ref(),
        image_tag_mutability_exclusion_filters: args
            .image_tag_mutability_exclusion_filters
            .as_ref(),
        scan_on_push: args.scan_on_push.as_ref(),
        region,
    })
}

fn repository_settings(raw: &Raw<'_>) -> Result<RepositorySettings, InputError> {
    let (_, create_from_template) = create_repository(raw.create_repository)?;
    let encryption = encryption(raw.encryption, raw.kms_key)?;
    let update_repository = boolean(names::UPDATE_REPOSITORY, raw.update_repository, false)?;
    let endpoint = endpoint(raw)?;
    let lifecycle_policy = match json_file(names::LIFECYCLE_POLICY, raw.lifecycle_policy)? {
        Some((file, json)) => {
            lifecycle_shape(&json).map_err(|problem| {
                InputError::new(
                    names::LIFECYCLE_POLICY,
                    format!(
                        "`{}` is not an ECR lifecycle policy: {problem}",
                        file.path.display()
                    ),
                )
            })?;
            Some(file)
        }
        None => None,
    };
    let repository_policy =
        json_file(names::REPOSITORY_POLICY, raw.repository_policy)?.map(|(file, _)| file);
    Ok(RepositorySettings {
        create_from_template,
        encryption,
        lifecycle_policy,
        repository_policy,
        update_repository,
        endpoint,
        mutability_given: given(raw.image_tag_mutability).is_some()
            || given(raw.image_tag_mutability_exclusion_filters).is_some(),
        scan_on_push_given: given(raw.scan_on_push).is_some(),
        explicit_endpoint_url: raw.explicit_endpoint_url,
    })
}

impl Request {
    /// Where ECR is, for [`crate::ecr::Ecr::connect`].
    #[must_use]
    pub fn ecr_connection(&self) -> Connection {
        Connection {
            region: self.aws_region.clone(),
            registry_id: self.registry_id.clone(),
            endpoint: self.repository_settings.endpoint,
            explicit_endpoint_url: self.repository_settings.explicit_endpoint_url,
        }
    }

    /// The repository as the inputs want it, for [`crate::ecr::Ecr::ensure_repository`].
    #[must_use]
    pub fn wanted_repository(&self) -> WantedRepository<'_> {
        WantedRepository {
            repository: &self.repository,
            create_repository: self.create_repository,
            image_tag_mutability: &self.image_tag_mutability,
            scan_on_push: self.scan_on_push,
            settings: &self.repository_settings,
        }
    }
}

#[cfg(test)]
mod tests {
    use rstest::rstest;
    use serde_json::json;

    use super::*;

    #[rstest]
    #[case(
        "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        true
    )]
    #[case("arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/team", true)]
    #[case("alias/team-ecr", true)]
    #[case("alias/aws/ecr", false)]
    #[case("1234abcd-12ab-34cd-56ef-1234567890ab", false)]
    #[case("arn:aws:s3:::bucket", false)]
    #[case("arn:aws:kms:us-east-1:12345:key/abc", false)]
    fn kms_keys(#[case] key: &str, #[case] ok: bool) {
        assert_eq!(is_kms_key(key), ok);
    }

    #[rstest]
    #[case(json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 5}, "action": {"type": "expire"}}]}), None)]
    #[case(json!({"rules": []}), Some("no `rules`"))]
    #[case(json!({"Rules": 1}), Some("no `rules`"))]
    #[case(json!({"rules": [{"selection": {}, "action": {"type": "expire"}}]}), Some("`rulePriority`"))]
    #[case(json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 0}, "action": {"type": "expire"}}]}), Some("`countNumber`"))]
    #[case(json!({"rules": [{"rulePriority": 1, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "delete"}}]}), Some("`delete`"))]
    #[case(json!({"rules": [
        {"rulePriority": 2, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}},
        {"rulePriority": 2, "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}, "action": {"type": "expire"}}
    ]}), Some("used twice"))]
    fn lifecycle_policies(#[case] policy: serde_json::Value, #[case] problem: Option<&str>) {
        match (lifecycle_shape(&policy), problem) {
            (Ok(()), None) => {}
            (Err(found), Some(expected)) => assert!(found.contains(expected), "{found}"),
            (found, expected) => panic!("{found:?}, expected {expected:?}"),
        }
    }
}

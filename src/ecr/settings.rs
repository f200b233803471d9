//! The repository's settings beyond its name (issue 18): encryption and the lifecycle and
//! repository policies of a created repository; for an existing one, what differs from the
//! workflow (drift) and, with `update-repository`, the change of what can change; and ECR's
//! repository creation templates (`create-repository: template`).
//!
//! Only what an input names is compared: an input left empty says nothing about the
//! repository. Policies are compared as JSON documents (ECR may reformat the text it stores).

use aws_sdk_ecr::error::ProvideErrorMetadata as _;
use aws_sdk_ecr::types::{
    EncryptionConfiguration, EncryptionType, ImageScanningConfiguration, RctAppliedFor,
};

use super::{api_error, from_ecr, to_ecr, Ecr, Error};
use super::{Encryption, WantedRepository};
use crate::input_names as names;
use crate::tag_mutability::TagMutability;

/// One setting where the repository differs from what the workflow names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The input, e.g. `image-tag-mutability`.
    pub input: &'static str,
    /// What the workflow names.
    pub workflow: String,
    /// What ECR reported before this run.
    pub repository: String,
    /// Whether `update-repository` changed the repository to the workflow's value.
    pub updated: bool,
}

impl Difference {
    /// `image-tag-mutability: workflow IMMUTABLE, repository MUTABLE`.
    #[must_use]
    pub fn line(&self) -> String {
        format!(
            "{}: workflow {}, repository {}",
            self.input, self.workflow, self.repository
        )
    }
}

/// What ensuring the repository's settings found or did, for the log and the summary.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SettingsReport {
    /// Where an existing repository differs from the workflow (updated or not).
    pub differences: Vec<Difference>,
    /// The matching `CREATE_ON_PUSH` creation template's prefix, when one was found.
    pub template: Option<String>,
    /// The repository is left to ECR's create-on-push (`create-repository: template`).
    pub create_on_push: bool,
    /// What the run could not find out, e.g. templates it may not describe.
    pub notices: Vec<String>,
    /// What was set on a created repository (`encryption KMS`, `lifecycle policy`...).
    pub created_with: Vec<String>,
}

/// A repository creation template that applies to a repository at its first push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// Its prefix (`ROOT` for every repository).
    pub prefix: String,
    /// The tag mutability it creates repositories with.
    pub mutability: TagMutability,
}

/// What `DescribeRepositoryCreationTemplates` told about a repository name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateLookup {
    /// A `CREATE_ON_PUSH` template matches (the longest prefix).
    Found(Template),
    /// None matches.
    NoneMatches,
    /// The templates could not be read (e.g. no `ecr:DescribeRepositoryCreationTemplates`).
    Unknown(String),
}

/// Whether a template's prefix covers a repository: `ROOT` covers all, another prefix the
/// repositories under it (`team` covers `team/api`).
fn prefix_matches(prefix: &str, repository: &str) -> bool {
    if prefix == "ROOT" {
        return true;
    }
    let prefix = prefix.trim_end_matches('/');
    repository == prefix
        || repository
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// The SDK's encryption configuration for the request's `encryption` and `kms-key`.
pub(super) fn encryption_configuration(
    encryption: &Encryption,
) -> Result<EncryptionConfiguration, Error> {
    EncryptionConfiguration::builder()
        .encryption_type(EncryptionType::from(encryption.kind()))
        .set_kms_key(encryption.kms_key().map(str::to_owned))
        .build()
        .map_err(|e| Error::UnexpectedAnswer(e.to_string()))
}

/// Two JSON documents are the same policy.
fn same_json(a: &str, b: &str) -> bool {
    match (
        serde_json::from_str::<serde_json::Value>(a),
        serde_json::from_str::<serde_json::Value>(b),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => a.trim() == b.trim(),
    }
}

/// How a policy is named in a difference line.
fn policy_text(present: Option<&str>) -> String {
    match present {
        Some(_) => "another policy".to_owned(),
        None => "none".to_owned(),
    }
}

impl Ecr {
    /// Reads the `CREATE_ON_PUSH` creation template that would create `repository` (every
    /// page; the longest matching prefix wins).
    pub async fn creation_template(&self, repository: &str) -> TemplateLookup {
        if let Some(id) = &self.registry_id {
            // The API describes the caller's own registry's templates only.
            return TemplateLookup::Unknown(format!(
                "the templates of registry `{id}` (`registry-id`) are not readable from here"
            ));
        }
        let mut pages = self
            .client
            .describe_repository_creation_templates()
            .into_paginator()
            .send();
        let mut best: Option<Template> = None;
        while let Some(page) = pages.next().await {
            let page = match page {
                Ok(page) => page,
                Err(e) => {
                    let why = if e.code() == Some("AccessDeniedException") {
                        "the role may not call `ecr:DescribeRepositoryCreationTemplates`".to_owned()
                    } else {
                        api_error("describing repository creation templates", &e).to_string()
                    };
                    return TemplateLookup::Unknown(why);
                }
            };
            for template in page.repository_creation_templates() {
                let prefix = template.prefix().unwrap_or_default();
                let for_push = template
                    .applied_for()
                    .contains(&RctAppliedFor::CreateOnPush);
                if !for_push || !prefix_matches(prefix, repository) {
                    continue;
                }
                let length = if prefix == "ROOT" { 0 } else { prefix.len() };
                let longer = best.as_ref().is_none_or(|b| {
                    length
                        > if b.prefix == "ROOT" {
                            0
                        } else {
                            b.prefix.len()
                        }
                });
                if longer {
                    let described = aws_sdk_ecr::types::Repository::builder()
                        .repository_name(repository)
                        .set_image_tag_mutability(template.image_tag_mutability().cloned())
                        .set_image_tag_mutability_exclusion_filters(Some(
                            template.image_tag_mutability_exclusion_filters().to_vec(),
                        ))
                        .build();
                    best = Some(Template {
                        prefix: prefix.to_owned(),
                        mutability: from_ecr(&described).unwrap_or(TagMutability::Mutable),
                    });
                }
            }
        }
        best.map_or(TemplateLookup::NoneMatches, TemplateLookup::Found)
    }

    /// Sets the lifecycle and repository policies the request names on a repository this run
    /// created; answers what was set.
    pub(super) async fn set_policies(
        &self,
        wanted: &WantedRepository<'_>,
    ) -> Result<Vec<String>, Error> {
        let settings = &wanted.settings;
        let mut set = Vec::new();
        if let Some(policy) = &settings.lifecycle_policy {
            self.put_lifecycle_policy(wanted.repository, &policy.text)
                .await?;
            set.push(format!("lifecycle policy `{}`", policy.path.display()));
        }
        if let Some(policy) = &settings.repository_policy {
            self.set_repository_policy(wanted.repository, &policy.text)
                .await?;
            set.push(format!("repository policy `{}`", policy.path.display()));
        }
        Ok(set)
    }

    async fn put_lifecycle_policy(&self, name: &str, text: &str) -> Result<(), Error> {
        self.client
            .put_lifecycle_policy()
            .set_registry_id(self.registry_id.clone())
            .repository_name(name)
            .lifecycle_policy_text(text)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                refused_or_failed(
                    names::LIFECYCLE_POLICY,
                    "setting the lifecycle policy",
                    name,
                    &e,
                )
            })
    }

    async fn set_repository_policy(&self, name: &str, text: &str) -> Result<(), Error> {
        self.client
            .set_repository_policy()
            .set_registry_id(self.registry_id.clone())
            .repository_name(name)
            .policy_text(text)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                refused_or_failed(
                    names::REPOSITORY_POLICY,
                    "setting the repository policy",
                    name,
                    &e,
                )
            })
    }

    async fn lifecycle_policy(&self, name: &str) -> Result<Option<String>, Error> {
        match self
            .client
            .get_lifecycle_policy()
            .set_registry_id(self.registry_id.clone())
            .repository_name(name)
            .send()
            .await
        {
            Ok(answer) => Ok(answer.lifecycle_policy_text().map(str::to_owned)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_lifecycle_policy_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error(
                format!("reading the lifecycle policy of repository `{name}`"),
                &e,
            )),
        }
    }

    async fn repository_policy(&self, name: &str) -> Result<Option<String>, Error> {
        match self
            .client
            .get_repository_policy()
            .set_registry_id(self.registry_id.clone())
            .repository_name(name)
            .send()
            .await
        {
            Ok(answer) => Ok(answer.policy_text().map(str::to_owned)),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_policy_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(api_error(
                format!("reading the repository policy of repository `{name}`"),
                &e,
            )),
        }
    }

    /// Compares an existing repository with every setting the request names and, with
    /// `update-repository`, changes what can change (all but encryption). Answers the
    /// differences, each marked when it was changed.
    pub(super) async fn compare_settings(
        &self,
        existing: &aws_sdk_ecr::types::Repository,
        wanted: &WantedRepository<'_>,
    ) -> Result<Vec<Difference>, Error> {
        let name = wanted.repository;
        let settings = &wanted.settings;
        let update = settings.update_repository;
        let mut differences = Vec::new();

        if settings.mutability_given {
            let current = from_ecr(existing)?;
            if current != *wanted.image_tag_mutability {
                if update {
                    let (mode, filters) = to_ecr(wanted.image_tag_mutability)?;
                    self.client
                        .put_image_tag_mutability()
                        .set_registry_id(self.registry_id.clone())
                        .repository_name(name)
                        .image_tag_mutability(mode)
                        .set_image_tag_mutability_exclusion_filters(filters)
                        .send()
                        .await
                        .map_err(|e| {
                            api_error(format!("changing the tag mutability of `{name}`"), &e)
                        })?;
                }
                differences.push(Difference {
                    input: names::IMAGE_TAG_MUTABILITY,
                    workflow: wanted.image_tag_mutability.to_string(),
                    repository: current.to_string(),
                    updated: update,
                });
            }
        }

        if settings.scan_on_push_given {
            let current = existing
                .image_scanning_configuration()
                .is_some_and(|c| c.scan_on_push());
            if current != wanted.scan_on_push {
                if update {
                    self.client
                        .put_image_scanning_configuration()
                        .set_registry_id(self.registry_id.clone())
                        .repository_name(name)
                        .image_scanning_configuration(
                            ImageScanningConfiguration::builder()
                                .scan_on_push(wanted.scan_on_push)
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| api_error(format!("changing scan-on-push of `{name}`"), &e))?;
                }
                differences.push(Difference {
                    input: names::SCAN_ON_PUSH,
                    workflow: wanted.scan_on_push.to_string(),
                    repository: current.to_string(),
                    updated: update,
                });
            }
        }

        if let Some(wanted) = &settings.encryption {
            let current = existing.encryption_configuration();
            let kind = current.map_or("AES256", |c| c.encryption_type().as_str());
            let key = current.and_then(|c| c.kms_key());
            // A key given as an alias cannot be compared with the key ARN ECR reports.
            let key_differs = wanted
                .kms_key()
                .filter(|k| k.starts_with("arn:") && !k.contains(":alias/"))
                .is_some_and(|k| Some(k) != key);
            if kind != wanted.kind() || key_differs {
                let show = |kind: &str, key: Option<&str>| match key {
                    Some(key) => format!("{kind} (`{key}`)"),
                    None => kind.to_owned(),
                };
                differences.push(Difference {
                    input: names::ENCRYPTION,
                    workflow: show(wanted.kind(), wanted.kms_key()),
                    repository: format!(
                        "{} (encryption cannot change after creation)",
                        show(kind, key)
                    ),
                    updated: false,
                });
            }
        }

        if let Some(wanted) = &settings.lifecycle_policy {
            let current = self.lifecycle_policy(name).await?;
            if !current
                .as_deref()
                .is_some_and(|c| same_json(c, &wanted.text))
            {
                if update {
                    self.put_lifecycle_policy(name, &wanted.text).await?;
                }
                differences.push(Difference {
                    input: names::LIFECYCLE_POLICY,
                    workflow: format!("`{}`", wanted.path.display()),
                    repository: policy_text(current.as_deref()),
                    updated: update,
                });
            }
        }

        if let Some(wanted) = &settings.repository_policy {
            let current = self.repository_policy(name).await?;
            if !current
                .as_deref()
                .is_some_and(|c| same_json(c, &wanted.text))
            {
                if update {
                    self.set_repository_policy(name, &wanted.text).await?;
                }
                differences.push(Difference {
                    input: names::REPOSITORY_POLICY,
                    workflow: format!("`{}`", wanted.path.display()),
                    repository: policy_text(current.as_deref()),
                    updated: update,
                });
            }
        }
        Ok(differences)
    }
}

/// A policy ECR refuses (`InvalidParameterException`, e.g. a principal that does not exist) is
/// the user's to fix; anything else is ECR failing.
fn refused_or_failed<E, R>(
    input: &'static str,
    action: &str,
    name: &str,
    error: &aws_sdk_ecr::error::SdkError<E, R>,
) -> Error
where
    E: std::error::Error + aws_sdk_ecr::error::ProvideErrorMetadata + 'static,
    R: std::fmt::Debug,
{
    if error.code() == Some("InvalidParameterException") {
        return Error::SettingRefused {
            input,
            repository: name.to_owned(),
            message: error.message().unwrap_or("invalid parameter").to_owned(),
        };
    }
    api_error(format!("{action} of repository `{name}`"), error)
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    #[rstest]
    #[case("ROOT", "team/api", true)]
    #[case("team", "team/api", true)]
    #[case("team/", "team/api", true)]
    #[case("team", "team", true)]
    #[case("team", "teams/api", false)]
    #[case("team/api", "team", false)]
    fn template_prefixes(#[case] prefix: &str, #[case] repository: &str, #[case] matches: bool) {
        assert_eq!(prefix_matches(prefix, repository), matches);
    }

    #[test]
    fn policies_compare_as_json() {
        assert!(same_json("{\"a\": [1, 2]}", "{ \"a\":[1,2] }"));
        assert!(!same_json("{\"a\": [1, 2]}", "{\"a\": [2, 1]}"));
    }
}

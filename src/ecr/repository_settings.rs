//! What the repository should be, as the inputs say it: where ECR is ([`Connection`]), and the
//! repository with its settings ([`WantedRepository`], [`RepositorySettings`]). Built by the
//! inputs module; only read here.

use std::path::PathBuf;

use crate::tag_mutability::TagMutability;

/// Where ECR is: the region, the registry's account, and which of its endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    /// Region of the registry.
    pub region: String,
    /// Account id of the registry; the caller's when `None`.
    pub registry_id: Option<String>,
    /// `endpoint` (else `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT`).
    pub endpoint: Endpoint,
    /// `AWS_ENDPOINT_URL_ECR` (or `AWS_ENDPOINT_URL`) names the API's address.
    pub explicit_endpoint_url: bool,
}

/// The repository a run pushes to, as the workflow wants it.
#[derive(Debug, Clone, Copy)]
pub struct WantedRepository<'a> {
    /// ECR repository name.
    pub repository: &'a str,
    /// Create the repository when missing.
    pub create_repository: bool,
    /// Tag mutability (with its exclusion filters) for a created repository.
    pub image_tag_mutability: &'a TagMutability,
    /// Scan on push for a created repository.
    pub scan_on_push: bool,
    /// Encryption, policies, `update-repository`, `endpoint` (issue 18).
    pub settings: &'a RepositorySettings,
}

/// How a created repository's images are encrypted at rest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// ECR's default: S3-managed AES-256.
    Aes256,
    /// AWS KMS; the key is ECR's AWS-managed one when `None`.
    Kms(Option<String>),
    /// AWS KMS, two layers (DSSE-KMS).
    KmsDsse(Option<String>),
}

impl Encryption {
    /// ECR's `encryptionType`.
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            Encryption::Aes256 => "AES256",
            Encryption::Kms(_) => "KMS",
            Encryption::KmsDsse(_) => "KMS_DSSE",
        }
    }

    /// The `kms-key` given, if any.
    #[must_use]
    pub fn kms_key(&self) -> Option<&str> {
        match self {
            Encryption::Aes256 => None,
            Encryption::Kms(key) | Encryption::KmsDsse(key) => key.as_deref(),
        }
    }
}

/// Which of ECR's endpoints the API calls and the registry use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Endpoint {
    /// `api.ecr.<region>.amazonaws.com`, `<account>.dkr.ecr.<region>.amazonaws.com`.
    #[default]
    Default,
    /// IPv4 and IPv6: `ecr.<region>.api.aws`, `<account>.dkr-ecr.<region>.on.aws`.
    DualStack,
    /// FIPS 140 endpoints: `ecr-fips.<region>.amazonaws.com`,
    /// `<account>.dkr.ecr-fips.<region>.amazonaws.com`.
    Fips,
}

impl Endpoint {
    /// The input's spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Default => "default",
            Endpoint::DualStack => "dual-stack",
            Endpoint::Fips => "fips",
        }
    }
}

/// A JSON policy document read from the workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyFile {
    /// The path as given.
    pub path: PathBuf,
    /// The file's text, sent to ECR as it is.
    pub text: String,
}

impl PolicyFile {
    /// The document, parsed (it was checked to parse).
    #[must_use]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text).unwrap_or_default()
    }
}

/// What the repository-settings inputs ask for. An input not given is `None` (or `false`):
/// it is applied with ECR's default when creating, and never compared with an existing
/// repository.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepositorySettings {
    /// `create-repository: template`: leave creation to ECR's create-on-push and its repository
    /// creation template instead of calling `CreateRepository`.
    pub create_from_template: bool,
    /// `encryption` and `kms-key`.
    pub encryption: Option<Encryption>,
    /// `lifecycle-policy`.
    pub lifecycle_policy: Option<PolicyFile>,
    /// `repository-policy`.
    pub repository_policy: Option<PolicyFile>,
    /// `update-repository`: apply what can change to an existing repository.
    pub update_repository: bool,
    /// `endpoint` (else `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT`).
    pub endpoint: Endpoint,
    /// Whether `image-tag-mutability` (or its filters) was given, so compared.
    pub mutability_given: bool,
    /// Whether `scan-on-push` was given, so compared.
    pub scan_on_push_given: bool,
    /// `AWS_ENDPOINT_URL_ECR` (or `AWS_ENDPOINT_URL`) names the API's address: the SDK uses it
    /// as given (it refuses FIPS or dual-stack beside one); `endpoint` then picks the registry
    /// host only.
    pub explicit_endpoint_url: bool,
}

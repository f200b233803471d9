//! A target platform (`os/arch[/variant]`), as the OCI image spec and BuildKit name it.
//!
//! Owns parsing and the names derived from a platform; knows nothing of any server.

use std::fmt;
use std::str::FromStr;

/// One platform to build, e.g. `linux/arm64` or `linux/arm/v7`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Platform {
    /// Operating system, e.g. `linux`.
    pub os: String,
    /// CPU architecture in Go/OCI naming, e.g. `amd64`, `arm64`.
    pub architecture: String,
    /// Architecture variant, e.g. `v7` for `linux/arm/v7`.
    pub variant: Option<String>,
}

impl Platform {
    /// The suffix for per-platform tags: `amd64`, `arm64`, `arm-v7`.
    #[must_use]
    pub fn tag_suffix(&self) -> String {
        match &self.variant {
            Some(variant) => format!("{}-{variant}", self.architecture),
            None => self.architecture.clone(),
        }
    }

    /// The same platform with the variants that mean "the default" dropped, so that
    /// `linux/arm64/v8` and `linux/arm64` count as one (containerd's normalisation).
    #[must_use]
    pub fn normalized(&self) -> Platform {
        let variant = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("arm64", Some("v8")) | ("amd64", Some("v1")) => None,
            _ => self.variant.clone(),
        };
        Platform {
            variant,
            ..self.clone()
        }
    }

    /// Whether an image whose config says `os`/`architecture`/`variant` satisfies this platform.
    /// A missing variant on either side matches the default variant.
    #[must_use]
    pub fn is_satisfied_by(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        let found = Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.filter(|v| !v.is_empty()).map(str::to_owned),
        }
        .normalized();
        let wanted = self.normalized();
        wanted.os == found.os
            && wanted.architecture == found.architecture
            && (wanted.variant.is_none() || wanted.variant == found.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(variant) = &self.variant {
            write!(f, "/{variant}")?;
        }
        Ok(())
    }
}

/// An image that is not for the platform it was built or listed for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the image for `{wanted}` (`{digest}`) says it is `{found}`: the Dockerfile pins another platform (check `FROM --platform=`)")]
pub struct PlatformMismatch {
    /// The requested platform.
    pub wanted: Platform,
    /// What the image config says, `os/arch[/variant]`.
    pub found: String,
    /// The digest of the config or manifest that says so.
    pub digest: String,
}

/// Why a platform string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a platform: expected `os/arch` or `os/arch/variant`, like `linux/arm64` or `linux/arm/v7`")]
pub struct PlatformParseError {
    /// The refused text.
    pub value: String,
}

impl FromStr for Platform {
    type Err = PlatformParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let refuse = || PlatformParseError {
            value: value.to_owned(),
        };
        let is_name = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let parts: Vec<&str> = value.split('/').collect();
        match parts.as_slice() {
            [os, arch] if is_name(os) && is_name(arch) => Ok(Platform {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: None,
            }),
            [os, arch, variant] if is_name(os) && is_name(arch) && is_name(variant) => {
                Ok(Platform {
                    os: (*os).to_owned(),
                    architecture: (*arch).to_owned(),
                    variant: Some((*variant).to_owned()),
                })
            }
            _ => Err(refuse()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("linux/amd64", "amd64")]
    #[case("linux/arm64", "arm64")]
    #[case("linux/arm/v7", "arm-v7")]
    fn parses_and_names_the_tag_suffix(#[case] text: &str, #[case] suffix: &str) {
        let platform: Platform = text.parse().expect("valid platform");
        assert_eq!(platform.to_string(), text);
        assert_eq!(platform.tag_suffix(), suffix);
    }

    #[rstest]
    #[case("linux")]
    #[case("linux/")]
    #[case("Linux/amd64")]
    #[case("linux/amd64/v1/x")]
    #[case("linux amd64")]
    fn refuses_malformed(#[case] text: &str) {
        assert!(text.parse::<Platform>().is_err());
    }

    #[test]
    fn arm64_v8_is_arm64() {
        let wanted: Platform = "linux/arm64".parse().expect("valid");
        assert!(wanted.is_satisfied_by("linux", "arm64", Some("v8")));
        let v8: Platform = "linux/arm64/v8".parse().expect("valid");
        assert!(v8.is_satisfied_by("linux", "arm64", None));
        assert!(!wanted.is_satisfied_by("linux", "amd64", None));
        let v7: Platform = "linux/arm/v7".parse().expect("valid");
        assert!(!v7.is_satisfied_by("linux", "arm", Some("v6")));
    }
}

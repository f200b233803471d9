//! A target platform (`os/arch[/variant]`), as the OCI image spec and BuildKit name it.
//!
//! Owns parsing, validation and the names derived from a platform; knows nothing of any
//! server. A platform is accepted only when a build for it can exist: the OS is `linux` (the
//! Docker Engine builds Linux images), the architecture is one the Go toolchain builds Linux
//! programs for (the OCI image spec takes its `architecture` values from Go's `GOARCH`), and a
//! variant is one that containerd's platform matcher, which BuildKit uses, understands for that
//! architecture.

use std::fmt;
use std::str::FromStr;

/// The one OS the Docker Engine builds images for.
pub const OS: &str = "linux";

/// The architectures the Go toolchain builds Linux programs for: the `linux/*` entries of
/// `go tool dist list` (Go 1.25). Go also reserves names it has no Linux port for (`wasm` is
/// `js`/`wasip1` only; `sparc64`, `ppc`, `riscv`, `s390`, `armbe`... are placeholders in
/// `go/build/syslist.go`): no base image or emulator exists for them, so they are refused.
pub const ARCHITECTURES: &[&str] = &[
    "386", "amd64", "arm", "arm64", "loong64", "mips", "mipsle", "mips64", "mips64le", "ppc64",
    "ppc64le", "riscv64", "s390x",
];

/// The variants an architecture has, and how to describe them to a user.
struct Variants {
    accepted: &'static [&'static str],
    described: &'static str,
}

/// Variants, from the OCI image spec (image-index.md: `arm` v6/v7/v8, `arm64` v8), Go's
/// `GOAMD64`/`GOARM`/`GOARM64` levels and containerd's `platforms` package, which BuildKit
/// matches with (`normalizeArch` in database.go, `platformVector` in compare.go): `amd64`
/// v1..v4, `arm` v5..v8, `arm64` v8.0..v8.9 and v9.0..v9.5. Other architectures have none
/// that containerd knows (Go's `GORISCV64` and `GOPPC64` levels are not platform variants), so
/// a variant there would match no base image.
fn variants(architecture: &str) -> Option<Variants> {
    match architecture {
        "amd64" => Some(Variants {
            accepted: &["v1", "v2", "v3", "v4"],
            described: "`v1` (the default), `v2`, `v3` or `v4`",
        }),
        "arm" => Some(Variants {
            accepted: &["v5", "v6", "v7", "v8"],
            described: "`v5`, `v6`, `v7` (the default) or `v8`",
        }),
        "arm64" => Some(Variants {
            accepted: &[
                "v8", "v8.0", "v8.1", "v8.2", "v8.3", "v8.4", "v8.5", "v8.6", "v8.7", "v8.8",
                "v8.9", "v9", "v9.0", "v9.1", "v9.2", "v9.3", "v9.4", "v9.5",
            ],
            described: "`v8` (the default), `v8.1` to `v8.9`, `v9` or `v9.1` to `v9.5`",
        }),
        _ => None,
    }
}

/// Names other tools use for an architecture, and the Go name with the variant they mean.
const ALIASES: &[(&str, &str)] = &[
    ("x86_64", "amd64"),
    ("x86-64", "amd64"),
    ("x64", "amd64"),
    ("aarch64", "arm64"),
    ("armv8", "arm64"),
    ("i386", "386"),
    ("i686", "386"),
    ("x86", "386"),
    ("armhf", "arm/v7"),
    ("armv7", "arm/v7"),
    ("armv7l", "arm/v7"),
    ("armel", "arm/v6"),
    ("armv6", "arm/v6"),
    ("ppc64el", "ppc64le"),
    ("loongarch64", "loong64"),
    ("riscv", "riscv64"),
    ("s390", "s390x"),
];

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

    /// The canonical form containerd compares platforms in (`platforms.Normalize`), so that
    /// two spellings of one platform count as one: `linux/amd64/v1` is `linux/amd64`,
    /// `linux/arm64/v8` and `linux/arm64/v8.0` are `linux/arm64`, `linux/arm64/v9.0` is
    /// `linux/arm64/v9`, and `linux/arm` is `linux/arm/v7`.
    #[must_use]
    pub fn normalized(&self) -> Platform {
        let variant = match (self.architecture.as_str(), self.variant.as_deref()) {
            ("amd64", Some("v1")) | ("arm64", Some("v8" | "v8.0")) => None,
            ("arm64", Some("v9.0")) => Some("v9".to_owned()),
            ("arm", None) => Some("v7".to_owned()),
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

impl PlatformMismatch {
    /// Always the user's to fix: the Dockerfile, or the image named, is of another platform.
    #[must_use]
    pub fn exit_status(&self) -> crate::exit_status::ExitStatus {
        crate::exit_status::ExitStatus::User
    }
}

/// Why a platform string was refused; each message names the value and what is accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlatformParseError {
    /// Not `os/arch` or `os/arch/variant`.
    #[error("`{value}` is not a platform: expected `os/arch` or `os/arch/variant`, like `linux/arm64` or `linux/arm/v7`")]
    Malformed {
        /// The refused text.
        value: String,
    },
    /// An OS other than `linux`.
    #[error("`{value}` is not a Linux platform: the Docker Engine builds Linux images only, so the OS must be `linux`, not `{os}`")]
    Os {
        /// The refused text.
        value: String,
        /// The OS it names.
        os: String,
    },
    /// An architecture Go does not build Linux programs for.
    #[error("`{value}` names an unknown architecture `{architecture}`{}: use one of {}", did_you_mean(suggestion.as_deref()), backticked(ARCHITECTURES))]
    Architecture {
        /// The refused text.
        value: String,
        /// The architecture it names.
        architecture: String,
        /// The nearest known architecture (or variant-qualified form), when there is one.
        suggestion: Option<String>,
    },
    /// A variant the architecture does not have.
    #[error("`{value}` names an unknown variant `{variant}` of `{architecture}`{}: {}", did_you_mean(suggestion.as_deref()), accepted_variants(architecture))]
    Variant {
        /// The refused text.
        value: String,
        /// The architecture.
        architecture: String,
        /// The variant it names.
        variant: String,
        /// The accepted spelling, when only the spelling is off (`7` for `v7`).
        suggestion: Option<String>,
    },
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map_or_else(String::new, |s| format!(" (did you mean `{s}`?)"))
}

fn backticked(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn accepted_variants(architecture: &str) -> String {
    match variants(architecture) {
        Some(v) => format!("`{architecture}` has the variants {}", v.described),
        None => format!("`{architecture}` has no variants: give `linux/{architecture}`"),
    }
}

/// The number of single-character edits (insertions, deletions, substitutions and swaps of
/// neighbours) that turn `a` into `b`: optimal string alignment distance.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in rows[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// What the user probably meant by an unknown architecture: another tool's name for it, or a
/// known architecture at most one edit per three characters away (`amd46`, `risc64`), so that
/// `wasm` does not suggest `arm`.
fn suggest_architecture(architecture: &str) -> Option<String> {
    if let Some((_, go)) = ALIASES.iter().find(|(alias, _)| *alias == architecture) {
        return Some((*go).to_owned());
    }
    ARCHITECTURES
        .iter()
        .map(|known| (edit_distance(architecture, known), *known))
        .filter(|(distance, _)| *distance <= (architecture.chars().count() / 3).max(1))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, known)| known.to_owned())
}

impl FromStr for Platform {
    type Err = PlatformParseError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let is_name = |s: &str| {
            !s.is_empty()
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        };
        let is_variant = |s: &str| is_name(s.replace('.', "_").as_str());
        let parts: Vec<&str> = value.split('/').collect();
        let (os, architecture, variant) = match parts.as_slice() {
            [os, arch] if is_name(os) && is_name(arch) => (*os, *arch, None),
            [os, arch, variant] if is_name(os) && is_name(arch) && is_variant(variant) => {
                (*os, *arch, Some(*variant))
            }
            _ => {
                return Err(PlatformParseError::Malformed {
                    value: value.to_owned(),
                })
            }
        };
        if os != OS {
            return Err(PlatformParseError::Os {
                value: value.to_owned(),
                os: os.to_owned(),
            });
        }
        if !ARCHITECTURES.contains(&architecture) {
            return Err(PlatformParseError::Architecture {
                value: value.to_owned(),
                architecture: architecture.to_owned(),
                suggestion: suggest_architecture(architecture),
            });
        }
        if let Some(variant) = variant {
            let accepted = variants(architecture).map_or(&[][..], |v| v.accepted);
            if !accepted.contains(&variant) {
                let spelled = format!("v{variant}");
                return Err(PlatformParseError::Variant {
                    value: value.to_owned(),
                    architecture: architecture.to_owned(),
                    variant: variant.to_owned(),
                    suggestion: accepted.contains(&spelled.as_str()).then_some(spelled),
                });
            }
        }
        Ok(Platform {
            os: os.to_owned(),
            architecture: architecture.to_owned(),
            variant: variant.map(str::to_owned),
        })
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
    #[case("linux/arm64/v8.2", "arm64-v8.2")]
    fn parses_and_names_the_tag_suffix(#[case] text: &str, #[case] suffix: &str) {
        let platform: Platform = text.parse().expect("valid platform");
        assert_eq!(platform.to_string(), text);
        assert_eq!(platform.tag_suffix(), suffix);
    }

    #[rstest]
    #[case("linux/386", "linux/386")]
    #[case("linux/amd64", "linux/amd64")]
    #[case("linux/amd64/v1", "linux/amd64")]
    #[case("linux/amd64/v2", "linux/amd64/v2")]
    #[case("linux/amd64/v3", "linux/amd64/v3")]
    #[case("linux/amd64/v4", "linux/amd64/v4")]
    #[case("linux/arm", "linux/arm/v7")]
    #[case("linux/arm/v5", "linux/arm/v5")]
    #[case("linux/arm/v6", "linux/arm/v6")]
    #[case("linux/arm/v7", "linux/arm/v7")]
    #[case("linux/arm/v8", "linux/arm/v8")]
    #[case("linux/arm64", "linux/arm64")]
    #[case("linux/arm64/v8", "linux/arm64")]
    #[case("linux/arm64/v8.0", "linux/arm64")]
    #[case("linux/arm64/v8.2", "linux/arm64/v8.2")]
    #[case("linux/arm64/v8.9", "linux/arm64/v8.9")]
    #[case("linux/arm64/v9", "linux/arm64/v9")]
    #[case("linux/arm64/v9.0", "linux/arm64/v9")]
    #[case("linux/arm64/v9.5", "linux/arm64/v9.5")]
    #[case("linux/loong64", "linux/loong64")]
    #[case("linux/mips", "linux/mips")]
    #[case("linux/mipsle", "linux/mipsle")]
    #[case("linux/mips64", "linux/mips64")]
    #[case("linux/mips64le", "linux/mips64le")]
    #[case("linux/ppc64", "linux/ppc64")]
    #[case("linux/ppc64le", "linux/ppc64le")]
    #[case("linux/riscv64", "linux/riscv64")]
    #[case("linux/s390x", "linux/s390x")]
    fn accepts_every_known_platform_and_normalises_it(
        #[case] text: &str,
        #[case] normalized: &str,
    ) {
        let platform: Platform = text.parse().expect("valid platform");
        assert_eq!(platform.to_string(), text, "kept as given");
        assert_eq!(platform.normalized().to_string(), normalized);
    }

    #[test]
    fn every_known_architecture_parses() {
        for architecture in ARCHITECTURES {
            let text = format!("linux/{architecture}");
            assert!(text.parse::<Platform>().is_ok(), "{text}");
        }
    }

    #[rstest]
    #[case("linux")]
    #[case("linux/")]
    #[case("/arm64")]
    #[case("Linux/amd64")]
    #[case("linux/AMD64")]
    #[case("linux/amd64/v1/x")]
    #[case("linux amd64")]
    fn refuses_malformed(#[case] text: &str) {
        let error = text.parse::<Platform>().expect_err("malformed");
        assert!(
            matches!(error, PlatformParseError::Malformed { .. }),
            "{error}"
        );
        assert!(error.to_string().contains("is not a platform"), "{error}");
    }

    #[rstest]
    #[case("windows/amd64", "windows")]
    #[case("darwin/arm64", "darwin")]
    #[case("freebsd/amd64", "freebsd")]
    #[case("wasip1/wasm", "wasip1")]
    fn refuses_an_os_other_than_linux(#[case] text: &str, #[case] os: &str) {
        let error = text.parse::<Platform>().expect_err("not linux");
        assert_eq!(
            error.to_string(),
            format!("`{text}` is not a Linux platform: the Docker Engine builds Linux images only, so the OS must be `linux`, not `{os}`")
        );
    }

    #[rstest]
    #[case("linux/amd46", Some("amd64"))]
    #[case("linux/amd64x", Some("amd64"))]
    #[case("linux/x86_64", Some("amd64"))]
    #[case("linux/aarch64", Some("arm64"))]
    #[case("linux/armhf", Some("arm/v7"))]
    #[case("linux/i386", Some("386"))]
    #[case("linux/ppc64el", Some("ppc64le"))]
    #[case("linux/risc64", Some("riscv64"))]
    #[case("linux/sparc99x", None)]
    #[case("linux/sparc64", None)]
    #[case("linux/wasm", None)]
    #[case("linux/amd64p32", None)]
    fn refuses_an_architecture_go_does_not_build_for_linux(
        #[case] text: &str,
        #[case] suggestion: Option<&str>,
    ) {
        let error = text.parse::<Platform>().expect_err("unknown architecture");
        let PlatformParseError::Architecture {
            suggestion: found, ..
        } = &error
        else {
            panic!("not an architecture error: {error}");
        };
        assert_eq!(found.as_deref(), suggestion);
        let message = error.to_string();
        assert!(message.starts_with(&format!("`{text}` names an unknown architecture")));
        assert!(
            message.ends_with(": use one of `386`, `amd64`, `arm`, `arm64`, `loong64`, `mips`, `mipsle`, `mips64`, `mips64le`, `ppc64`, `ppc64le`, `riscv64`, `s390x`"),
            "{message}"
        );
        if let Some(suggestion) = suggestion {
            assert!(
                message.contains(&format!("(did you mean `{suggestion}`?)")),
                "{message}"
            );
        }
    }

    #[rstest]
    #[case(
        "linux/amd64/v9",
        "`amd64` has the variants `v1` (the default), `v2`, `v3` or `v4`"
    )]
    #[case("linux/amd64/v0", "`amd64` has the variants")]
    #[case("linux/arm64/v7", "`arm64` has the variants `v8` (the default)")]
    #[case("linux/arm64/v8.10", "`arm64` has the variants")]
    #[case("linux/arm64/v9.6", "`arm64` has the variants")]
    #[case("linux/arm64/v10", "`arm64` has the variants")]
    #[case(
        "linux/arm/v9",
        "`arm` has the variants `v5`, `v6`, `v7` (the default) or `v8`"
    )]
    #[case("linux/arm/v4", "`arm` has the variants")]
    #[case("linux/386/v2", "`386` has no variants: give `linux/386`")]
    #[case(
        "linux/riscv64/rva22u64",
        "`riscv64` has no variants: give `linux/riscv64`"
    )]
    #[case("linux/ppc64le/power9", "`ppc64le` has no variants")]
    fn refuses_a_variant_the_architecture_does_not_have(
        #[case] text: &str,
        #[case] accepted: &str,
    ) {
        let error = text.parse::<Platform>().expect_err("unknown variant");
        assert!(
            matches!(error, PlatformParseError::Variant { .. }),
            "{error}"
        );
        assert!(error.to_string().contains(accepted), "{error}");
    }

    #[test]
    fn a_variant_without_its_v_is_refused_with_the_spelling() {
        let error = "linux/arm/7".parse::<Platform>().expect_err("spelling");
        assert_eq!(
            error.to_string(),
            "`linux/arm/7` names an unknown variant `7` of `arm` (did you mean `v7`?): `arm` has the variants `v5`, `v6`, `v7` (the default) or `v8`"
        );
    }

    #[rstest]
    #[case("amd46", "amd64", 1)]
    #[case("amd64", "amd64", 0)]
    #[case("arm", "arm64", 2)]
    #[case("", "386", 3)]
    #[case("kitten", "sitting", 3)]
    fn edit_distance_counts_swaps_as_one(#[case] a: &str, #[case] b: &str, #[case] d: usize) {
        assert_eq!(edit_distance(a, b), d);
        assert_eq!(edit_distance(b, a), d);
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
        assert!(v7.is_satisfied_by("linux", "arm", None));
        let arm: Platform = "linux/arm".parse().expect("valid");
        assert!(arm.is_satisfied_by("linux", "arm", Some("v7")));
    }
}

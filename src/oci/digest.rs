//! The content digest: `sha256:` and 64 lowercase hex digits, the one form this tool reads and
//! writes (<https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests>;
//! registries and Engines use sha256 only). The one place a digest is checked: a digest goes
//! into registry URLs, and a tag (`latest`) or a path (`../../other/manifests/latest`) there
//! would read another image, or another repository.

use std::borrow::Borrow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// `sha256:` and 64 lowercase hex digits; (de)serialised as that string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// Why a text is not a [`Digest`]; its message names the text (cut to 100 characters).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a digest (`sha256:` and 64 lowercase hex digits)")]
pub struct NotADigest {
    /// The text, cut to 100 characters.
    pub text: String,
}

impl Digest {
    /// The digest of `bytes`.
    #[must_use]
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(bytes))
    }

    /// The digest of what `hasher` has seen.
    #[must_use]
    pub fn from_hasher(hasher: Sha256) -> Digest {
        Digest(format!("sha256:{:x}", hasher.finalize()))
    }

    /// The digest whose hex part is `hex` (as an OCI layout names a blob), when it is one.
    #[must_use]
    pub fn from_hex(hex: &str) -> Option<Digest> {
        format!("sha256:{hex}").parse().ok()
    }

    /// The digest's text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits.
    #[must_use]
    pub fn hex(&self) -> &str {
        &self.0["sha256:".len()..]
    }
}

impl TryFrom<String> for Digest {
    type Error = NotADigest;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let valid = text.strip_prefix("sha256:").is_some_and(|hex| {
            hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(Digest(text))
        } else {
            Err(NotADigest {
                text: text.chars().take(100).collect(),
            })
        }
    }
}

impl FromStr for Digest {
    type Err = NotADigest;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Digest::try_from(text.to_owned())
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> String {
        digest.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Digest {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// Maps keyed by digest are looked up by its text.
impl Borrow<str> for Digest {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Digest {
    fn eq(&self, other: &String) -> bool {
        &self.0 == other
    }
}

impl PartialEq<Digest> for String {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.0
    }
}

impl PartialEq<Digest> for &str {
    fn eq(&self, other: &Digest) -> bool {
        *self == other.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_is_sha256_and_64_lowercase_hex_digits() {
        let good = format!("sha256:{}", "0a".repeat(32));
        assert_eq!(good.parse::<Digest>().expect("digest").as_str(), good);
        for bad in [
            String::new(),
            "latest".to_owned(),
            format!("sha256:{}", "A".repeat(64)),
            format!("sha256:{}", "a".repeat(63)),
            format!("sha512:{}", "a".repeat(64)),
            format!("sha256:{}/../x", "a".repeat(58)),
        ] {
            let error = bad.parse::<Digest>().expect_err(&bad);
            assert!(error.to_string().contains("is not a digest"), "{error}");
        }
    }

    #[test]
    fn the_digest_of_bytes_is_their_sha256() {
        let digest = Digest::of(b"");
        assert_eq!(
            digest.as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(Digest::from_hex(digest.hex()), Some(digest));
        assert_eq!(Digest::from_hex("../x"), None);
    }

    #[test]
    fn serde_reads_and_writes_the_string() {
        let digest = Digest::of(b"x");
        let json = serde_json::to_string(&digest).expect("json");
        assert_eq!(json, format!("\"{digest}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).expect("read"), digest);
        assert!(serde_json::from_str::<Digest>("\"sha256:1\"").is_err());
    }
}

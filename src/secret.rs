//! A secret (a registry token, the GitHub token) that cannot be printed by accident: its
//! `Debug` says `<redacted>`, it has no `Display` (so `to_string()` cannot hand on the text
//! `<redacted>` in its place), and the value is read only through [`Secret::expose`], so every
//! place that hands it on is one a reader can find.

use std::fmt;

/// A value that must never reach a log, an output, the summary or a file.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    #[must_use]
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value itself, for the one call that needs it (an HTTP header, a mask, a login).
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn a_secret_prints_as_redacted_in_any_structure() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Option<Secret>,
        }
        let holder = Holder {
            token: Some(Secret::new("ghp_verysecret")),
        };
        let printed = format!("{holder:?} {holder:#?}");
        assert!(!printed.contains("verysecret"), "{printed}");
        assert_eq!(Secret::new("ghp_verysecret").expose(), "ghp_verysecret");
    }
}

//! `cache-from`: image references as the distribution spec writes them, or
//! build-push-action's `type=registry,ref=...` form.

use std::collections::BTreeMap;

use super::repository::registry;
use super::tags::is_tag;
use super::{given, list, names, InputError};
use crate::oci::Digest;

/// An image reference as the distribution spec and the docker CLI write it:
/// `[host[:port]/]path[:tag][@sha256:<hex>]`, path components lowercase letters and digits
/// joined by `.`, `_`, `__` or runs of `-`.
pub(super) fn is_image_reference(reference: &str) -> bool {
    let (name_and_tag, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    if digest.is_some_and(|digest| digest.parse::<Digest>().is_err()) {
        return false;
    }
    // A `:` after the last `/` starts the tag; one before it belongs to the host's port.
    let (name, tag) = match name_and_tag.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name, Some(tag)),
        _ => (name_and_tag, None),
    };
    if tag.is_some_and(|tag| !is_tag(tag)) {
        return false;
    }
    let mut components: Vec<&str> = name.split('/').collect();
    let first = components[0];
    if components.len() > 1
        && (first.contains(['.', ':'])
            || first == "localhost"
            || first.bytes().any(|b| b.is_ascii_uppercase()))
    {
        if registry(Some(&first.to_owned())).is_err() {
            return false;
        }
        components.remove(0);
    }
    let component_ok = |c: &str| {
        let bytes = c.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
            })
            && !c.contains("..")
            && !c.contains("___")
            && !c.contains("._")
            && !c.contains("_.")
    };
    !components.is_empty() && components.iter().all(|c| component_ok(c))
}

/// `cache-from`: image references, or build-push-action's `type=registry,ref=<reference>`
/// (the only cache source the Engine API's build takes: BuildKit imports registry images).
pub(super) fn cache_from(value: Option<&String>) -> Result<Vec<String>, InputError> {
    let mut references: Vec<String> = Vec::new();
    // Commas separate items, except inside the `type=...,ref=...` form: split on newlines,
    // then on commas only where the line is not that form.
    for line in given(value).unwrap_or("").lines().map(str::trim) {
        let items: Vec<&str> = if line.starts_with("type=") {
            vec![line]
        } else {
            list(line).collect()
        };
        for item in items.into_iter().filter(|i| !i.is_empty()) {
            let reference = if item.starts_with("type=") {
                let attributes: BTreeMap<&str, &str> = item
                    .split(',')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .collect();
                match (attributes.get("type"), attributes.get("ref")) {
                    (Some(&"registry"), Some(reference)) => *reference,
                    (Some(&"registry"), None) => {
                        return Err(InputError::new(
                            names::CACHE_FROM,
                            format!("`{item}` names no image: give `type=registry,ref=<reference>` or the reference alone"),
                        ))
                    }
                    (kind, _) => {
                        return Err(InputError::new(
                            names::CACHE_FROM,
                            format!(
                                "`{item}`: cache type `{}` is not available: the Docker Engine's build imports cache from registry images only, so give image references (e.g. `<registry>/<repository>:builder-cache`)",
                                kind.unwrap_or(&"")
                            ),
                        ))
                    }
                }
            } else {
                item
            };
            if !is_image_reference(reference) {
                return Err(InputError::new(
                    names::CACHE_FROM,
                    format!("`{reference}` is not an image reference: use `[registry/]repository[:tag][@sha256:...]`, e.g. `123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:builder-cache`"),
                ));
            }
            if references.iter().any(|r| r == reference) {
                return Err(InputError::new(
                    names::CACHE_FROM,
                    format!("`{reference}` is listed twice"),
                ));
            }
            references.push(reference.to_owned());
        }
    }
    Ok(references)
}

#[cfg(test)]
mod tests {
    use crate::inputs::tests::args;
    use crate::inputs::{Args, Request};

    #[test]
    fn cache_from_takes_references_and_the_registry_form() {
        let request = Request::try_from(Args {
            cache_from: Some(
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:builder-cache, team/base\n\
                 type=registry,ref=127.0.0.1:5000/it/cache:x\n\
                 localhost:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"
                    .into(),
            ),
            ..args()
        })
        .expect("valid");
        assert_eq!(
            request.cache_from,
            vec![
                "123456789012.dkr.ecr.us-east-1.amazonaws.com/team/api:builder-cache",
                "team/base",
                "127.0.0.1:5000/it/cache:x",
                "localhost:5000/a/b@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
            ]
        );
    }
}

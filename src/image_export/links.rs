//! Links in the export: Docker 20.10 writes a layer the image lists twice once, and the second
//! `<id>/layer.tar` as a symbolic link to the first; an archive may hard-link entries too. A
//! name stands for the entry it reaches through links, within the export.

use std::collections::HashMap;

use super::entries::Entry;

/// How many links a name may go through to its entry (a loop ends here).
const MAX_LINKS: usize = 16;

/// The name a link entry points to, as a name in the export: a hard link names it from the
/// archive's root, a symbolic link from the link's own folder. `None` when it leaves the export.
pub(super) fn link_target(name: &str, target: &str, symbolic: bool) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    if symbolic && !target.starts_with('/') {
        parts.extend(name.split('/').filter(|p| !p.is_empty() && *p != "."));
        parts.pop();
    }
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(parts.join("/"))
}

/// The entry a name stands for, through links.
pub(super) fn resolve<'a>(entries: &'a HashMap<String, Entry>, name: &str) -> Option<&'a Entry> {
    let mut entry = entries.get(name)?;
    for _ in 0..MAX_LINKS {
        match entry {
            Entry::Link(target) => entry = entries.get(target)?,
            other => return Some(other),
        }
    }
    None
}

/// An entry's name as a key: without a leading `./`, as `manifest.json` names entries.
pub(super) fn entry_key(name: &str) -> String {
    name.trim_start_matches("./").to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[rstest::rstest]
    #[case("a/layer.tar", "../b/layer.tar", true, Some("b/layer.tar"))]
    #[case("a/layer.tar", "b/layer.tar", false, Some("b/layer.tar"))]
    #[case("blobs/sha256/x", "./y", true, Some("blobs/sha256/y"))]
    #[case("blobs/sha256/x", "/blobs/sha256/y", true, Some("blobs/sha256/y"))]
    #[case("a/layer.tar", "../../x", true, None)]
    fn links_are_resolved_from_where_they_are(
        #[case] name: &str,
        #[case] target: &str,
        #[case] symbolic: bool,
        #[case] expected: Option<&str>,
    ) {
        assert_eq!(link_target(name, target, symbolic).as_deref(), expected);
    }
}

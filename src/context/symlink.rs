//! The symlink check: a link whose target leaves the build context is refused, judged as the
//! Engine resolves links within the context root.

use std::fs;
use std::path::{Component, Path, PathBuf};

use super::Error;

/// Refuses a symlink that leads out of the context, judged as the Engine resolves links
/// within the context root (`name` is the link's path relative to `root`): from the link's
/// folder, each link met on the way followed (an absolute target that names a place inside
/// the context counts from the root), and a `..` that would climb above the root is leaving
/// it. So `s -> .` with `t -> s/../outside` is refused, and an absolute link to a file of the
/// context is not. A loop or a dangling target is not an escape.
pub(super) fn check_symlink(root: &Path, link: &Path, name: &str) -> Result<(), Error> {
    use std::collections::VecDeque;
    use std::ffi::OsString;
    let target = fs::read_link(link).map_err(|e| Error::Read {
        path: link.to_owned(),
        source: e,
    })?;
    let outside = || Error::SymlinkOutside {
        path: PathBuf::from(name),
        target: target.clone(),
    };
    // The folder we stand in, as names below the root, and what is left to walk.
    let mut here: Vec<OsString> = Path::new(name)
        .parent()
        .into_iter()
        .flat_map(Path::components)
        .map(|c| c.as_os_str().to_owned())
        .collect();
    let mut pending: VecDeque<OsString> = VecDeque::new();
    let enter = |target: &Path,
                 here: &mut Vec<OsString>,
                 pending: &mut VecDeque<OsString>|
     -> Result<(), Error> {
        let relative = if target.is_absolute() {
            here.clear();
            target.strip_prefix(root).map_err(|_| outside())?
        } else {
            target
        };
        for component in relative.components().rev() {
            match component {
                Component::Normal(part) => pending.push_front(part.to_owned()),
                Component::ParentDir => pending.push_front(OsString::from("..")),
                Component::CurDir => {}
                Component::RootDir | Component::Prefix(_) => return Err(outside()),
            }
        }
        Ok(())
    };
    enter(&target, &mut here, &mut pending)?;
    let mut hops = 0;
    while let Some(part) = pending.pop_front() {
        if part == ".." {
            if here.pop().is_none() {
                return Err(outside());
            }
            continue;
        }
        here.push(part);
        let place: PathBuf = here.iter().collect();
        if let Ok(next) = fs::read_link(root.join(&place)) {
            hops += 1;
            if hops > 40 {
                return Ok(());
            }
            here.pop();
            enter(&next, &mut here, &mut pending)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::BuildContext;
    use std::fs;

    #[test]
    fn scan_refuses_a_symlink_out_of_the_context() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::write(root.join("Dockerfile"), "FROM scratch\n").expect("write");
        fs::create_dir(root.join("sub")).expect("mkdir");
        std::os::unix::fs::symlink("../../etc/passwd", root.join("sub/escape")).expect("link");
        std::os::unix::fs::symlink("../Dockerfile", root.join("sub/inside")).expect("link");
        let error = BuildContext::scan(root, &root.join("Dockerfile")).expect_err("escapes");
        assert!(error.to_string().contains("sub/escape"), "{error}");
    }

    #[test]
    fn links_are_judged_as_resolved_within_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().canonicalize().expect("canonical");
        fs::write(root.join("Dockerfile"), "FROM scratch\n").expect("write");
        std::os::unix::fs::symlink(".", root.join("s")).expect("link");
        std::os::unix::fs::symlink("s/../outside", root.join("t")).expect("link");
        let error = BuildContext::scan(&root, &root.join("Dockerfile")).expect_err("escapes");
        assert!(error.to_string().contains("`t`"), "{error}");
        fs::remove_file(root.join("t")).expect("rm");
        // An absolute link to a file of the context is harmless.
        std::os::unix::fs::symlink(root.join("Dockerfile"), root.join("abs")).expect("link");
        BuildContext::scan(&root, &root.join("Dockerfile")).expect("inside");
        std::os::unix::fs::symlink("/etc/passwd", root.join("etc")).expect("link");
        BuildContext::scan(&root, &root.join("Dockerfile")).expect_err("outside");
    }
}

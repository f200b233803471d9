//! What a Docker Engine can build for this action: where it keeps its images
//! ([`ImageStore`]) and the versions and stores it refuses (`unsupported`). Pure: it reads
//! what `docker version` and `docker info` answered, and never calls the Engine.

/// Where a daemon keeps its images (`docker info`): it decides what its BuildKit can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageStore {
    /// The graph drivers (overlay2...): Docker's default up to 28.
    Classic,
    /// containerd's snapshotters: Docker 29's default on fresh installs.
    Containerd,
}

impl ImageStore {
    /// The store a daemon reports. With the containerd image store, `docker info` names the
    /// snapshotter as `Driver` (`overlayfs`) and its `DriverStatus` is exactly
    /// `[["driver-type", "io.containerd.snapshotter.v1"]]` (moby `daemon/containerd/service.go`,
    /// `LayerStoreStatus`: `plugins.SnapshotPlugin`; seen on 26.1 and 28.5); the graph drivers
    /// (overlay2 on 20.10 and on 28.5's classic store) list their own settings there instead.
    #[must_use]
    pub fn from_driver_status(driver_status: &[Vec<String>]) -> ImageStore {
        let containerd = driver_status.iter().any(|pair| {
            matches!(pair.as_slice(), [key, value]
                if key == "driver-type" && value == "io.containerd.snapshotter.v1")
        });
        if containerd {
            ImageStore::Containerd
        } else {
            ImageStore::Classic
        }
    }
}

impl std::fmt::Display for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ImageStore::Classic => "classic image store",
            ImageStore::Containerd => "containerd image store",
        })
    }
}

/// `Some((problem, fix))` when a daemon of this version and store cannot build what this action
/// sends it. Before moby 27.5.0 / 28.0.0, BuildKit on the containerd image store fails every
/// build whose context is streamed as a tar body, at `[internal] load remote build context`
/// (`Get "http://build-context-<id>": no such host`; moby/moby#47717), and that is the only way
/// a remote daemon can get the context. A version that does not parse is given the benefit of
/// the doubt.
pub(super) fn unsupported(
    version: &str,
    store: ImageStore,
) -> Option<(&'static str, &'static str)> {
    let (major, minor) = major_minor(version)?;
    (store == ImageStore::Containerd && (major, minor) < (27, 5)).then_some((
        "fails every build from a streamed context at `[internal] load remote build context` \
         (moby/moby#47717, fixed in Docker 27.5.0 and 28.0.0)",
        "upgrade Docker to 27.5 or later, or turn the containerd image store off \
         (`\"features\": {\"containerd-snapshotter\": false}` in daemon.json, then restart \
         dockerd)",
    ))
}

/// `26.1.5+dfsg1` -> `(26, 1)`: Debian and Docker Desktop add suffixes to the version.
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let mut numbers = version.split('.').map(|part| {
        let digits: String = part.chars().take_while(char::is_ascii_digit).collect();
        digits.parse::<u64>().ok()
    });
    Some((numbers.next()??, numbers.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Error;
    use rstest::rstest;

    fn status(pairs: &[[&str; 2]]) -> Vec<Vec<String>> {
        pairs
            .iter()
            .map(|pair| pair.iter().map(|s| (*s).to_owned()).collect())
            .collect()
    }

    #[test]
    fn the_image_store_is_read_from_the_driver_status() {
        // As `docker info` reports them: 28.5 and 26.1 with the containerd store, 20.10 and
        // 28.5 with overlay2.
        assert_eq!(
            ImageStore::from_driver_status(&status(&[[
                "driver-type",
                "io.containerd.snapshotter.v1"
            ]])),
            ImageStore::Containerd
        );
        assert_eq!(
            ImageStore::from_driver_status(&status(&[
                ["Backing Filesystem", "extfs"],
                ["Supports d_type", "true"],
                ["Native Overlay Diff", "true"],
                ["userxattr", "false"],
            ])),
            ImageStore::Classic
        );
        assert_eq!(ImageStore::from_driver_status(&[]), ImageStore::Classic);
    }

    #[rstest]
    #[case::debian_trixie("26.1.5+dfsg1", ImageStore::Containerd, false)]
    #[case::last_broken_27("27.4.1", ImageStore::Containerd, false)]
    #[case::old_24("24.0.7", ImageStore::Containerd, false)]
    #[case::first_fixed_27("27.5.0", ImageStore::Containerd, true)]
    #[case::fixed_28("28.0.0", ImageStore::Containerd, true)]
    #[case::debian_sid("28.5.2+dfsg4", ImageStore::Containerd, true)]
    #[case::docker_29("29.0.1", ImageStore::Containerd, true)]
    #[case::release_candidate("28.0.0-rc.1", ImageStore::Containerd, true)]
    #[case::classic_26("26.1.5+dfsg1", ImageStore::Classic, true)]
    #[case::classic_20("20.10.24+dfsg1", ImageStore::Classic, true)]
    #[case::unparsable("dev", ImageStore::Containerd, true)]
    fn a_containerd_store_older_than_27_5_is_refused(
        #[case] version: &str,
        #[case] store: ImageStore,
        #[case] usable: bool,
    ) {
        assert_eq!(unsupported(version, store).is_none(), usable);
    }

    #[test]
    fn the_refusal_names_version_store_and_fix() {
        let (problem, fix) =
            unsupported("26.1.5+dfsg1", ImageStore::Containerd).expect("26.1 is refused");
        let error = Error::Unsupported {
            address: "unix:///var/run/docker.sock".to_owned(),
            version: "26.1.5+dfsg1".to_owned(),
            store: ImageStore::Containerd,
            problem,
            fix,
        }
        .to_string();
        for part in [
            "`unix:///var/run/docker.sock`",
            "Docker `26.1.5+dfsg1`",
            "containerd image store",
            "moby/moby#47717",
            "upgrade Docker to 27.5 or later",
            "containerd-snapshotter\": false",
        ] {
            assert!(error.contains(part), "{part} in {error}");
        }
    }
}

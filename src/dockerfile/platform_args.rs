//! BuildKit's automatic platform arguments (`BUILDPLATFORM`, `TARGETARCH`, ...).

use std::collections::BTreeMap;

use crate::platform::Platform;

/// BuildKit's automatic platform arguments for a build of `platform` on `build_platform`.
#[must_use]
pub fn platform_args(platform: &Platform, build_platform: &Platform) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("BUILDPLATFORM".to_owned(), build_platform.to_string()),
        ("BUILDOS".to_owned(), build_platform.os.clone()),
        ("BUILDARCH".to_owned(), build_platform.architecture.clone()),
        (
            "BUILDVARIANT".to_owned(),
            build_platform.variant.clone().unwrap_or_default(),
        ),
        ("TARGETPLATFORM".to_owned(), platform.to_string()),
        ("TARGETOS".to_owned(), platform.os.clone()),
        ("TARGETARCH".to_owned(), platform.architecture.clone()),
        (
            "TARGETVARIANT".to_owned(),
            platform.variant.clone().unwrap_or_default(),
        ),
    ])
}

//! `platforms`: the order and spelling given, each platform once after normalising.

use crate::platform::Platform;

use super::{given, list, names, InputError};

pub(super) fn platforms(value: Option<&String>) -> Result<Vec<Platform>, InputError> {
    let mut platforms: Vec<Platform> = Vec::new();
    for text in list(given(value).unwrap_or("linux/amd64,linux/arm64")) {
        let platform: Platform =
            text.parse()
                .map_err(|e: crate::platform::PlatformParseError| {
                    InputError::new(names::PLATFORMS, e.to_string())
                })?;
        if let Some(earlier) = platforms
            .iter()
            .find(|p| p.normalized() == platform.normalized())
        {
            return Err(InputError::new(
                names::PLATFORMS,
                format!("`{platform}` is listed twice (as `{earlier}` before)"),
            ));
        }
        platforms.push(platform);
    }
    if platforms.is_empty() {
        return Err(InputError::new(names::PLATFORMS, "no platform given"));
    }
    Ok(platforms)
}

#[cfg(test)]
mod tests {
    use crate::inputs::tests::args;
    use crate::inputs::{names, Args, Request};
    use rstest::rstest;

    #[rstest]
    #[case("linux/arm64,linux/amd64", &["linux/arm64", "linux/amd64"])]
    #[case("linux/arm/v7\nlinux/arm/v6", &["linux/arm/v7", "linux/arm/v6"])]
    #[case("linux/amd64/v3, linux/arm64/v8.2, linux/riscv64", &["linux/amd64/v3", "linux/arm64/v8.2", "linux/riscv64"])]
    fn platforms_keep_their_order_and_spelling(#[case] value: &str, #[case] expected: &[&str]) {
        let request = Request::try_from(Args {
            platforms: Some(value.into()),
            ..args()
        })
        .expect("valid");
        let found: Vec<String> = request.platforms.iter().map(ToString::to_string).collect();
        assert_eq!(found, expected);
    }

    #[rstest]
    #[case(
        "linux/arm64,linux/arm64/v8",
        "`linux/arm64/v8` is listed twice (as `linux/arm64` before)"
    )]
    #[case(
        "linux/amd64/v1,linux/amd64",
        "`linux/amd64` is listed twice (as `linux/amd64/v1` before)"
    )]
    #[case(
        "linux/arm,linux/arm/v7",
        "`linux/arm/v7` is listed twice (as `linux/arm` before)"
    )]
    #[case(
        "linux/arm64/v9.0,linux/arm64/v9",
        "`linux/arm64/v9` is listed twice (as `linux/arm64/v9.0` before)"
    )]
    fn the_same_platform_twice_after_normalising_is_refused(
        #[case] value: &str,
        #[case] message: &str,
    ) {
        let error = Request::try_from(Args {
            platforms: Some(value.into()),
            ..args()
        })
        .expect_err("duplicate");
        assert_eq!(error.input, names::PLATFORMS);
        assert_eq!(error.message, message);
    }
}

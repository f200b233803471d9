//! The images a build of a Dockerfile pulls from outside: the bases and `--from` images of the
//! stages it runs, and a `# syntax=` frontend, each for the platform BuildKit resolves it for.

use std::collections::{BTreeMap, BTreeSet};

use super::{expand, platform_args, Dockerfile, Unresolvable};
use crate::platform::Platform;

/// One image a build pulls, for the platform it is pulled for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ImageUse {
    /// The reference, variables substituted, as written otherwise.
    pub reference: String,
    /// The platform BuildKit resolves it for.
    pub platform: Platform,
}

impl Dockerfile {
    /// The images a build of `platform` (on an Engine of `build_platform`) pulls, for the
    /// stages it runs up to `target` (the last stage by default), with `build_args` (the
    /// user's, and the platform arguments) given to the global `ARG`s.
    pub fn images(
        &self,
        target: Option<&str>,
        build_args: &BTreeMap<String, String>,
        platform: &Platform,
        build_platform: &Platform,
    ) -> Result<Vec<ImageUse>, Unresolvable> {
        let mut env = platform_args(platform, build_platform);
        let mut given = env.clone();
        given.extend(build_args.iter().map(|(k, v)| (k.clone(), v.clone())));
        for arg in &self.global_args {
            let value = match (given.get(&arg.name), &arg.default) {
                (Some(value), _) => Some(value.clone()),
                (None, Some(default)) => Some(expand(default, &env)?),
                (None, None) => None,
            };
            match value {
                Some(value) => env.insert(arg.name.clone(), value),
                None => env.remove(&arg.name),
            };
        }
        let target_index = match target {
            None => self.stages.len() - 1,
            Some(target) => self
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(&*target.to_ascii_lowercase()))
                .ok_or_else(|| Unresolvable(format!("the Dockerfile has no stage `{target}`")))?,
        };
        let mut images = BTreeSet::new();
        if let Some(syntax) = &self.syntax {
            images.insert(ImageUse {
                reference: syntax.clone(),
                platform: build_platform.clone(),
            });
        }
        let mut visited = BTreeSet::new();
        let mut pending = vec![target_index];
        while let Some(index) = pending.pop() {
            if !visited.insert(index) {
                continue;
            }
            let stage = &self.stages[index];
            let stage_platform = match &stage.platform {
                None => platform.clone(),
                Some(raw) => {
                    let expanded = expand(raw, &env)?;
                    expanded.parse::<Platform>().map_err(|e| {
                        Unresolvable(format!("`FROM --platform={raw}` gives `{expanded}`: {e}"))
                    })?
                }
            };
            if let Some(url) = stage.unpinned.first() {
                return Err(Unresolvable(format!(
                    "`ADD {url}` takes content that can change while the Dockerfile does not (pin it with `--checksum=`)"
                )));
            }
            let base = expand(&stage.base, &env)?;
            let earlier = self.stages[..index]
                .iter()
                .position(|s| s.name.as_deref() == Some(&*base.to_ascii_lowercase()));
            match earlier {
                Some(stage_index) => pending.push(stage_index),
                None if base.eq_ignore_ascii_case("scratch") => {}
                None => {
                    images.insert(ImageUse {
                        reference: base,
                        platform: stage_platform.clone(),
                    });
                }
            }
            for source in &stage.sources {
                if source.contains('$') {
                    return Err(Unresolvable(format!(
                        "`--from={source}` depends on a stage's own `ARG`"
                    )));
                }
                let by_name = self
                    .stages
                    .iter()
                    .position(|s| s.name.as_deref() == Some(&*source.to_ascii_lowercase()));
                let by_index = source
                    .parse::<usize>()
                    .ok()
                    .filter(|i| *i < self.stages.len());
                match by_name.or(by_index) {
                    Some(stage_index) => pending.push(stage_index),
                    None => {
                        images.insert(ImageUse {
                            reference: source.clone(),
                            platform: stage_platform.clone(),
                        });
                    }
                }
            }
        }
        Ok(images.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    fn platform(text: &str) -> Platform {
        text.parse().expect("platform")
    }

    fn images(
        text: &str,
        target: Option<&str>,
        args: &[(&str, &str)],
        for_platform: &str,
    ) -> Result<Vec<String>, Unresolvable> {
        let args: BTreeMap<String, String> = args
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Dockerfile::parse(text)?
            .images(
                target,
                &args,
                &platform(for_platform),
                &platform("linux/amd64"),
            )
            .map(|uses| {
                uses.into_iter()
                    .map(|u| format!("{} {}", u.reference, u.platform))
                    .collect()
            })
    }

    #[rstest]
    #[case::plain("FROM alpine:3.20\nRUN true\n", &[], "linux/arm64", &["alpine:3.20 linux/arm64"])]
    #[case::target_arch("ARG TARGETARCH\nFROM base:${TARGETARCH}\n", &[], "linux/arm64", &["base:arm64 linux/arm64"])]
    #[case::automatic_without_declaring("FROM base:$TARGETARCH\n", &[], "linux/arm/v7", &["base:arm linux/arm/v7"])]
    #[case::default_and_build_arg("ARG VERSION=1.0\nFROM app:${VERSION}\n", &[("VERSION", "2.0")], "linux/amd64", &["app:2.0 linux/amd64"])]
    #[case::default_kept("ARG VERSION=1.0\nFROM app:${VERSION}\n", &[], "linux/amd64", &["app:1.0 linux/amd64"])]
    #[case::undeclared_build_arg_ignored("FROM app:${VERSION:-9}\n", &[("VERSION", "2.0")], "linux/amd64", &["app:9 linux/amd64"])]
    #[case::default_uses_earlier_arg("ARG A=x\nARG B=${A}-y\nFROM img:$B\n", &[], "linux/amd64", &["img:x-y linux/amd64"])]
    #[case::build_platform_stage("FROM --platform=$BUILDPLATFORM golang:1 AS build\nFROM scratch\nCOPY --from=build /a /a\n", &[], "linux/arm64", &["golang:1 linux/amd64"])]
    #[case::scratch_only("FROM scratch\nCOPY a /a\n", &[], "linux/amd64", &[])]
    #[case::stage_chain("FROM alpine AS base\nFROM base AS app\nRUN x\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::copy_from_image("FROM scratch\nCOPY --from=busybox:1 /bin/sh /sh\n", &[], "linux/amd64", &["busybox:1 linux/amd64"])]
    #[case::copy_from_index("FROM alpine\nFROM scratch\nCOPY --from=0 /etc /etc\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::mount_from("FROM alpine\nRUN --mount=type=bind,from=tools:2,target=/t /t/run\n", &[], "linux/amd64", &["alpine linux/amd64", "tools:2 linux/amd64"])]
    #[case::unused_stage_skipped("FROM private/never:1 AS unused\nFROM alpine\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::syntax_frontend("# syntax=docker/dockerfile:1\nFROM alpine\n", &[], "linux/arm64", &["alpine linux/arm64", "docker/dockerfile:1 linux/amd64"])]
    #[case::continuation_and_comments("FROM \\\n  # a comment\n  alpine:3 \\\n  AS app\n", &[], "linux/amd64", &["alpine:3 linux/amd64"])]
    #[case::case_insensitive("from Alpine AS Base\nFrom base\n", &[], "linux/amd64", &["Alpine linux/amd64"])]
    #[case::heredoc_body_is_not_an_instruction("FROM alpine\nRUN <<EOF\nFROM evil:1\nEOF\nCOPY <<-'X' /f\n\tFROM evil:2\n\tX\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::escape_directive("# escape=`\nFROM `\n  alpine\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    #[case::add_url_with_checksum("FROM alpine\nADD --checksum=sha256:abc https://example.com/x.tgz /x\n", &[], "linux/amd64", &["alpine linux/amd64"])]
    fn finds_the_images_a_build_pulls(
        #[case] text: &str,
        #[case] args: &[(&str, &str)],
        #[case] for_platform: &str,
        #[case] expected: &[&str],
    ) {
        let found = images(text, None, args, for_platform).expect("resolvable");
        let mut expected: Vec<String> = expected.iter().map(|s| (*s).to_owned()).collect();
        expected.sort();
        assert_eq!(found, expected);
    }

    #[test]
    fn a_target_runs_only_its_stages() {
        let text = "FROM alpine AS test\nRUN t\nFROM golang:1 AS build\nFROM scratch\nCOPY --from=build /a /a\n";
        assert_eq!(
            images(text, Some("TEST"), &[], "linux/amd64").expect("ok"),
            ["alpine linux/amd64"]
        );
        assert_eq!(
            images(text, None, &[], "linux/amd64").expect("ok"),
            ["golang:1 linux/amd64"]
        );
        assert!(images(text, Some("nope"), &[], "linux/amd64").is_err());
    }

    #[rstest]
    #[case::stage_arg_in_from(
        "FROM alpine\nARG IMG=x\nCOPY --from=$IMG /a /a\n",
        "stage's own `ARG`"
    )]
    #[case::unknown_substitution("ARG V=1.2\nFROM app:${V%.*}\n", "does not evaluate")]
    #[case::add_url("FROM alpine\nADD https://example.com/latest.tgz /x\n", "--checksum=")]
    #[case::add_git("FROM alpine\nADD git@github.com:o/r.git /src\n", "can change")]
    #[case::no_from("ARG A=1\n", "no `FROM`")]
    fn what_cannot_be_told_is_said(#[case] text: &str, #[case] message: &str) {
        let error = images(text, None, &[], "linux/amd64").expect_err("unresolvable");
        assert!(error.0.contains(message), "{error}");
    }
}

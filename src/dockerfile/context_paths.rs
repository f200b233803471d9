//! The paths of the build context a Dockerfile reads (`COPY`/`ADD` sources, `RUN --mount`
//! binds), as BuildKit's Dockerfile frontend asks the session for them.

use super::{Dockerfile, Unresolvable};

impl Dockerfile {
    /// Notes that the build reads `source` of the context (as written in `how`).
    pub(super) fn reads_context(&mut self, source: &str, how: &str) {
        if source.contains('$') {
            self.context_unknown
                .get_or_insert_with(|| format!("{how} names a path through a variable"));
        } else if crate::context::clean(source).is_empty() {
            self.context_unknown
                .get_or_insert_with(|| format!("{how} reads the whole context"));
        } else {
            self.context_paths
                .insert(format!("/{}", crate::context::clean(source)));
        }
    }

    /// The paths of the build context the build reads, as BuildKit's Dockerfile frontend asks
    /// the session for them (its `followpaths`: each `COPY`/`ADD` source and `RUN --mount`
    /// bind, of every stage, which is never fewer than the stages a target runs). `Err` when
    /// that cannot be told from the Dockerfile alone: a path through a variable (`COPY
    /// $SRC .`), the whole context (`COPY . .`, a bind without `source=`), or a `# syntax=`
    /// frontend, which may ask for anything; then the caller takes the whole context.
    /// Not seen: `ONBUILD` triggers of a base image, which BuildKit runs as part of this build.
    pub fn context_paths(&self) -> Result<Vec<String>, Unresolvable> {
        if let Some(syntax) = &self.syntax {
            return Err(Unresolvable(format!(
                "the `# syntax={syntax}` frontend chooses what it reads"
            )));
        }
        if let Some(why) = &self.context_unknown {
            return Err(Unresolvable(why.clone()));
        }
        Ok(self.context_paths.iter().cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case::copy("FROM a\nCOPY app.txt src/ /app/\n", &["/app.txt", "/src"])]
    #[case::json_and_flags("FROM a\nCOPY --chmod=755 [\"b in\", \"./c/../d\", \"/x\"]\n", &["/b in", "/d"])]
    #[case::add_local_not_urls("FROM a\nADD --checksum=sha256:0 https://h/x.tgz y.tgz /\n", &["/y.tgz"])]
    #[case::other_sources("FROM a AS b\nCOPY --from=b /x /x\nCOPY <<EOF /f\nhi\nEOF\nRUN --mount=type=cache,target=/c --mount=from=b,target=/m true\n", &[])]
    #[case::bind("FROM a\nRUN --mount=source=go.sum,target=/s --mount=type=bind,src=lib,target=/l true\n", &["/go.sum", "/lib"])]
    #[case::every_stage("FROM a AS one\nCOPY x /\nFROM b\nCOPY y /\n", &["/x", "/y"])]
    fn tells_the_context_paths_read(#[case] text: &str, #[case] paths: &[&str]) {
        let dockerfile = Dockerfile::parse(text).expect("parses");
        assert_eq!(dockerfile.context_paths().expect("known"), paths);
    }

    #[rstest]
    #[case::all("FROM a\nCOPY . /app\n", "reads the whole context")]
    #[case::all_spelled("FROM a\nADD ./ /app\n", "reads the whole context")]
    #[case::variable("FROM a\nARG SRC=x\nCOPY $SRC /app\n", "through a variable")]
    #[case::bind_all("FROM a\nRUN --mount=target=/src make\n", "reads the whole context")]
    #[case::syntax(
        "# syntax=docker/dockerfile:1\nFROM a\nCOPY x /\n",
        "chooses what it reads"
    )]
    fn falls_back_to_the_whole_context(#[case] text: &str, #[case] why: &str) {
        let dockerfile = Dockerfile::parse(text).expect("parses");
        let error = dockerfile.context_paths().expect_err("unknown");
        assert!(error.0.contains(why), "{error}");
    }
}

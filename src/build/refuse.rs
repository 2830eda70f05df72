//! What the builder cannot run is refused before anything is built (SPEC
//! v0.2 "Builders"): exit 2, naming the line, the engine and what to
//! change. This covers the features issue 14 brought in
//! (`dockerfile::Feature`); the builder is the engine's classic builder.
//!
//! - Dockerfile 1.7 string operations (`${v#p}`, `${v/p/r}`, …): the
//!   engines whose builders read them speak API 1.45 or later (Docker 26,
//!   BuildKit v0.13's shell lexer); older ones reject the file.
//! - `ADD <git url>` and `ADD --checksum`: BuildKit only; the classic
//!   builder downloads a git URL as a plain file and rejects the flag.

use std::path::Path;

use crate::dockerfile::{Dockerfile, Feature, FeatureUse};
use crate::error::{Error, input};

/// The first engine API version whose builders run the string operations.
const STRING_OPERATIONS_API: (usize, usize) = (1, 45);

/// Refuses the first feature the engine (API `api`, classic builder) cannot
/// run; `api` unknown: only what no classic builder runs is refused.
pub(crate) fn refuse_unsupported(
    df: &Dockerfile,
    path: &Path,
    api: Option<(usize, usize)>,
) -> Result<(), Error> {
    match df
        .feature_uses()
        .into_iter()
        .find(|u| !supported(u.feature, api))
    {
        Some(u) => Err(input(path, message(&u, api))),
        None => Ok(()),
    }
}

fn supported(feature: Feature, api: Option<(usize, usize)>) -> bool {
    match feature {
        Feature::StringOperations => api.is_none_or(|v| v >= STRING_OPERATIONS_API),
        Feature::AddGit | Feature::AddChecksum => false,
    }
}

fn message(u: &FeatureUse, api: Option<(usize, usize)>) -> String {
    let engine = match api {
        Some((major, minor)) => {
            format!("this engine (API {major}.{minor}) and its classic builder")
        }
        None => "the classic builder".to_string(),
    };
    let line = u.line;
    let text = &u.text;
    match u.feature {
        Feature::StringOperations => format!(
            "Dockerfile line {line}: `{text}` is a Dockerfile 1.7 string operation (BuildKit v0.13, \
             Docker 26), which {engine} cannot run. Upgrade the engine to Docker 26 or later, or \
             compute the value another way (pass it with --build-arg, or derive it in a RUN step)"
        ),
        Feature::AddGit => format!(
            "Dockerfile line {line}: `ADD {text}` clones a git repository, which only BuildKit \
             does; {engine} would download it as a file. Clone it in a stage instead \
             (`FROM alpine/git AS src` + `RUN git clone --depth 1 --branch REF URL /src`, then \
             `COPY --from=src /src …`)"
        ),
        Feature::AddChecksum => format!(
            "Dockerfile line {line}: `ADD {text}` is BuildKit's, and {engine} rejects the flag. \
             Drop `--checksum` (stackbake fingerprints the downloaded content either way), or \
             download and check the file in a RUN step"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;
    use crate::error::exit_code;

    #[test]
    fn string_operations_are_refused_on_docker_20_10_only() {
        let df = parse("FROM alpine AS a\nARG TARGETARCH\nARG DART_ARCH=${TARGETARCH/amd64/x64}\n")
            .expect("parses");
        let e = refuse_unsupported(&df, Path::new("Dockerfile"), Some((1, 41)))
            .expect_err("Docker 20.10 cannot");
        assert_eq!(e.exit_code(), exit_code::BAD_INPUT);
        let m = e.to_string();
        assert!(
            m.contains("line 3") && m.contains("${TARGETARCH/amd64/x64}"),
            "{m}"
        );
        assert!(m.contains("API 1.41") && m.contains("Docker 26"), "{m}");
        assert!(refuse_unsupported(&df, Path::new("Dockerfile"), Some((1, 45))).is_ok());
    }

    #[test]
    fn add_git_and_checksum_are_refused_on_the_classic_builder() {
        let df = parse("FROM alpine AS a\nADD https://github.com/moby/buildkit.git#v0.13.0 /bk\n")
            .expect("parses");
        let m = refuse_unsupported(&df, Path::new("Dockerfile"), Some((1, 45)))
            .expect_err("classic builder")
            .to_string();
        assert!(m.contains("line 2") && m.contains("git clone"), "{m}");
        let df = parse("FROM alpine AS a\nADD --checksum=sha256:abc https://example.com/f /f\n")
            .expect("parses");
        assert!(refuse_unsupported(&df, Path::new("Dockerfile"), None).is_err());
        let plain = parse("FROM alpine AS a\nADD https://example.com/f /f\n").expect("parses");
        assert!(refuse_unsupported(&plain, Path::new("Dockerfile"), Some((1, 41))).is_ok());
    }
}

//! Dockerfile rules beyond the syntax (`stages/…`): everything `plan` and
//! `build` would stop on in the stage graph and the `COPY`/`ADD` sources
//! (an `ARG` with no value in `FROM`, a `--from` to a later stage, a bad
//! substitution), `--from` values that hold variables (BuildKit reads
//! them as image names), and features older engines do not run (the
//! Dockerfile 1.7 string operations need Docker 26; `ADD <git url>` and
//! `ADD --checksum` need BuildKit on Docker 25): a warning here, since
//! which engine builds is not known; `engine/unsupported` is the error
//! when one answers. `build` passes its `--build-arg`s, so an `ARG` given there is
//! not reported; `stackbake check` knows none.

use std::collections::BTreeMap;

use super::finding::{Finding, Severity};
use crate::dockerfile::{Dockerfile, Feature};

/// Runs the rules over a parsed Dockerfile.
pub(crate) fn rules(
    file: &str,
    df: &Dockerfile,
    build_args: &BTreeMap<String, String>,
    out: &mut Vec<Finding>,
) {
    graph_errors(file, df, build_args, out);
    variable_from(file, df, out);
    for u in df.feature_uses() {
        let (message, help) = match u.feature {
            Feature::StringOperations => (
                format!(
                    "`{}` is a Dockerfile 1.7 string operation: engines before Docker 26 (BuildKit v0.13) reject it, and `build` refuses it there",
                    u.text
                ),
                "build on Docker 26 or later, or pass the value with --build-arg",
            ),
            Feature::AddGit => (
                format!(
                    "`ADD {}` needs BuildKit v0.12 (Docker 25 or later); the classic builder would download it as a file, so `build` refuses it there",
                    u.text
                ),
                "build with BuildKit on Docker 25 or later, or clone the repository in a stage (`RUN git clone --depth 1 --branch REF URL /src`) and COPY --from it",
            ),
            Feature::AddChecksum => (
                format!(
                    "`ADD {}` needs BuildKit v0.12 (Docker 25 or later); the classic builder rejects the flag, so `build` refuses it there",
                    u.text
                ),
                "build with BuildKit on Docker 25 or later, or drop --checksum: stackbake fingerprints the downloaded content itself",
            ),
        };
        out.push(Finding::new(
            file,
            (u.line, 1),
            Severity::Warning,
            "stages/needs-newer-engine",
            message,
            help,
        ));
    }
}

/// The stage graph and every stage's sources, as `plan` computes them.
fn graph_errors(
    file: &str,
    df: &Dockerfile,
    build_args: &BTreeMap<String, String>,
    out: &mut Vec<Finding>,
) {
    let mut errors = Vec::new();
    if let Err(e) = df.graph(build_args) {
        errors.push(e);
    }
    for i in 0..df.stages.len() {
        if let Err(e) = df.context_sources(i, build_args)
            && !errors.contains(&e)
        {
            errors.push(e);
        }
    }
    for e in errors {
        out.push(Finding::new(
            file,
            (e.line.max(1), 1),
            Severity::Error,
            "stages/invalid-dockerfile",
            e.message.clone(),
            "`plan` and `build` stop on this line: give the ARG a value (a default, or --build-arg) or fix the reference",
        ));
    }
}

/// `COPY --from=x-${V}`: stackbake expands it, BuildKit does not (it reads
/// an image named `x-${V}` and fails).
fn variable_from(file: &str, df: &Dockerfile, out: &mut Vec<Finding>) {
    for stage in &df.stages {
        for ins in &stage.instructions {
            for (value, what) in crate::dockerfile::from_values(ins) {
                if !value.contains('$') {
                    continue;
                }
                out.push(Finding::new(
                    file,
                    (ins.line, 1),
                    Severity::Warning,
                    "stages/variable-in-from",
                    format!(
                        "`{what}={value}` holds a variable: BuildKit does not expand variables there and reads it as an image name, so this stage dependency breaks under BuildKit"
                    ),
                    "name the stage literally, or pick it in a `FROM x-${V} AS x` stage and use --from=x",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    fn findings(src: &str, args: &[(&str, &str)]) -> Vec<(&'static str, usize, Severity)> {
        let df = parse(src).expect("parses");
        let args: BTreeMap<String, String> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut out = Vec::new();
        rules("Dockerfile", &df, &args, &mut out);
        out.iter().map(|f| (f.rule, f.line, f.severity)).collect()
    }

    /// Issue 14, item 3: `check` passed what `plan` rejects.
    #[test]
    fn an_arg_without_value_in_from_is_an_error_unless_build_passes_it() {
        let src = "ARG V\nFROM ${V} AS app\n";
        assert_eq!(
            findings(src, &[]),
            [("stages/invalid-dockerfile", 2, Severity::Error)]
        );
        assert!(findings(src, &[("V", "alpine:3.20")]).is_empty());
    }

    #[test]
    fn item_2_files_are_valid_and_warn_only_about_old_engines() {
        let hugo = "FROM alpine AS build\nARG TARGETARCH\nARG DART_ARCH=${TARGETARCH/amd64/x64}\nARG P=linux/amd64\nARG X=${P#linux/}\nRUN echo $DART_ARCH\n";
        assert_eq!(
            findings(hugo, &[]),
            [
                ("stages/needs-newer-engine", 3, Severity::Warning),
                ("stages/needs-newer-engine", 5, Severity::Warning)
            ]
        );
    }

    #[test]
    fn a_variable_in_copy_from_warns() {
        let src = "FROM alpine AS x-a\nFROM alpine AS app\nARG V=a\nCOPY --from=x-${V} /x /x\n";
        assert_eq!(
            findings(src, &[]),
            [("stages/variable-in-from", 4, Severity::Warning)]
        );
    }

    #[test]
    fn later_stage_references_and_bad_sources_are_errors() {
        let src = "FROM alpine AS a\nCOPY --from=b /x /x\nFROM alpine AS b\nCOPY ${X:?set X} /y\n";
        let f = findings(src, &[]);
        assert!(
            f.contains(&("stages/invalid-dockerfile", 2, Severity::Error)),
            "{f:?}"
        );
        assert!(
            f.contains(&("stages/invalid-dockerfile", 4, Severity::Error)),
            "{f:?}"
        );
    }

    #[test]
    fn add_git_warns_that_it_needs_docker_25() {
        let src = "FROM alpine AS app\nADD https://github.com/moby/buildkit.git#v0.13.0 /bk\n";
        assert_eq!(
            findings(src, &[]),
            [("stages/needs-newer-engine", 2, Severity::Warning)]
        );
    }
}

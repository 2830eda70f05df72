//! Dockerfile features that not every builder runs, as found in the parsed
//! file: the Dockerfile 1.7 string operations (`${v#p}` and friends),
//! `ADD <git url>` and `ADD --checksum`. Pure (no engine): whoever knows
//! the builder decides what to refuse (`build::refuse`).

use super::context::is_git_url;
use super::lexer::split_words;
use super::{Args, Dockerfile, Instruction};

/// A feature some builders lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Feature {
    /// `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v/p/r}`, `${v//p/r}`:
    /// Dockerfile 1.7 (BuildKit v0.13, Docker 26).
    StringOperations,
    /// `ADD <git url>`: BuildKit only.
    AddGit,
    /// `ADD --checksum=`: BuildKit only.
    AddChecksum,
}

/// One use of a feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FeatureUse {
    /// What is used.
    pub(crate) feature: Feature,
    /// 1-based line of the instruction.
    pub(crate) line: usize,
    /// The text that uses it (`${TARGETARCH/amd64/x64}`, the git URL, the flag).
    pub(crate) text: String,
}

/// Instructions whose arguments the Dockerfile frontend expands (a `RUN`'s
/// command is the shell's business; only its flags are expanded).
const EXPANDED: &[&str] = &[
    "ADD",
    "ARG",
    "COPY",
    "ENV",
    "EXPOSE",
    "FROM",
    "LABEL",
    "ONBUILD",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

impl Dockerfile {
    /// Every use of a [`Feature`], in file order.
    pub(crate) fn feature_uses(&self) -> Vec<FeatureUse> {
        let mut out = Vec::new();
        let all = self.global_arg_instructions.iter().chain(
            self.stages
                .iter()
                .flat_map(|s| std::iter::once(&s.from_instruction).chain(s.instructions.iter())),
        );
        for ins in all {
            let expanded = if EXPANDED.contains(&ins.keyword.as_str()) {
                ins.logical.as_str()
            } else {
                ins.flags
                    .last()
                    .and_then(|f| ins.logical.get(..f.raw.end))
                    .unwrap_or_default()
            };
            for text in string_operations(expanded) {
                out.push(FeatureUse {
                    feature: Feature::StringOperations,
                    line: ins.line,
                    text,
                });
            }
            if ins.keyword == "ADD" {
                out.extend(add_features(ins, self.escape));
            }
        }
        out
    }
}

fn add_features(ins: &Instruction, escape: char) -> Vec<FeatureUse> {
    let mut out = Vec::new();
    if let Some(sum) = ins.flag("checksum") {
        out.push(FeatureUse {
            feature: Feature::AddChecksum,
            line: ins.line,
            text: format!("--checksum={sum}"),
        });
    }
    let words: Vec<String> = match &ins.args {
        Args::Exec(v) => v.clone(),
        Args::Shell(s) => split_words(s, escape)
            .into_iter()
            .map(str::to_string)
            .collect(),
    };
    if let Some((_, sources)) = words.split_last() {
        for s in sources.iter().filter(|s| is_git_url(s)) {
            out.push(FeatureUse {
                feature: Feature::AddGit,
                line: ins.line,
                text: s.clone(),
            });
        }
    }
    out
}

/// The `${NAME<op>…}` expressions of `text` whose operator is one of the
/// string operations.
fn string_operations(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("${") {
        let rest = &text[i + 2..];
        let name_len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if name_len == 0 || !matches!(rest[name_len..].chars().next(), Some('#' | '%' | '/')) {
            continue;
        }
        let end = rest.find('}').map_or(text.len(), |e| i + 2 + e + 1);
        out.push(text[i..end].to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    #[test]
    fn string_operations_are_found_where_docker_expands() {
        let df = parse("ARG P=linux/amd64\nARG X=${P#linux/}\nFROM alpine AS a\nARG TARGETARCH\nARG DART_ARCH=${TARGETARCH/amd64/x64}\nRUN echo ${HOME%/*}\nRUN --mount=type=bind,source=${P%%/*},target=/x true\n")
            .expect("parses");
        let uses = df.feature_uses();
        let found: Vec<(usize, &str)> = uses.iter().map(|u| (u.line, u.text.as_str())).collect();
        assert_eq!(
            found,
            [
                (2, "${P#linux/}"),
                (5, "${TARGETARCH/amd64/x64}"),
                (7, "${P%%/*}")
            ],
            "a RUN command is the shell's, not the frontend's"
        );
        assert!(uses.iter().all(|u| u.feature == Feature::StringOperations));
    }

    #[test]
    fn add_git_and_checksum_are_found() {
        let df = parse("FROM alpine AS a\nADD https://github.com/moby/buildkit.git#v0.13.0 /bk\nADD --checksum=sha256:abc https://example.com/f.tgz /f\nADD https://example.com/f.tgz /g\n")
            .expect("parses");
        let found: Vec<(Feature, usize)> = df
            .feature_uses()
            .iter()
            .map(|u| (u.feature, u.line))
            .collect();
        assert_eq!(found, [(Feature::AddGit, 2), (Feature::AddChecksum, 3)]);
    }
}

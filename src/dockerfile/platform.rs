//! BuildKit's predefined platform ARGs (`TARGETPLATFORM`, `TARGETOS`,
//! `TARGETARCH`, `TARGETVARIANT` and the `BUILD…` four). BuildKit defines
//! them when it expands `FROM` lines, without any `ARG`, and a stage that
//! declares `ARG TARGETARCH` gets the value. stackbake builds for one
//! platform, linux/amd64 (CodeBuild's x86 hosts, and what the classic
//! builder produces there), so both the target and the build platform are
//! linux/amd64; a `--build-arg` of the same name overrides one value, as a
//! declared `ARG`'s default would be.
//!
//! The classic builder does not define them at all (`FROM bin-$TARGETOS`
//! fails there with "invalid reference format"), so the Dockerfile it is
//! sent declares the ones the file uses ([`Dockerfile::platform_prelude`]) with the same values
//! the stage graph and the fingerprints used.

use std::collections::BTreeMap;

use super::Dockerfile;
use super::pattern::Pattern;

/// The predefined platform ARGs, in the order the prelude declares them.
pub(crate) const NAMES: [&str; 8] = [
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
];

/// The platform stackbake builds for (and on).
const OS: &str = "linux";
const ARCH: &str = "amd64";

/// The predefined values, each overridden by a `--build-arg` of its name.
pub(crate) fn predefined(build_args: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    NAMES
        .iter()
        .map(|&name| {
            let default = match name {
                "TARGETPLATFORM" | "BUILDPLATFORM" => format!("{OS}/{ARCH}"),
                "TARGETOS" | "BUILDOS" => OS.to_string(),
                "TARGETARCH" | "BUILDARCH" => ARCH.to_string(),
                _ => String::new(),
            };
            let value = build_args.get(name).cloned().unwrap_or(default);
            (name.to_string(), value)
        })
        .collect()
}

/// Whether `text` refers to the variable `name` (`$NAME` or `${NAME…`).
pub(crate) fn mentions(text: &str, name: &str) -> bool {
    text.match_indices(name).any(|(i, _)| {
        let before = &text[..i];
        let after = text[i + name.len()..].chars().next();
        let ends = !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        ends && (before.ends_with('$') || before.ends_with("${"))
    })
}

impl Dockerfile {
    /// `ARG NAME=value` lines for the predefined platform ARGs this file
    /// uses but does not declare before its first `FROM`: what a builder
    /// without them (the classic builder) needs to read the file as
    /// BuildKit does. Declaring them with BuildKit's own values changes
    /// nothing for BuildKit.
    pub(crate) fn platform_prelude(&self, build_args: &BTreeMap<String, String>) -> Vec<String> {
        let values = predefined(build_args);
        NAMES
            .iter()
            .filter(|name| mentions(self.source(), name))
            .filter(|name| !self.global_args.iter().any(|a| a.name == **name))
            .map(|name| {
                let value = values.get(*name).map(String::as_str).unwrap_or_default();
                format!("ARG {name}={value}")
            })
            .collect()
    }
}

impl Dockerfile {
    /// Stages that are one platform's variant of a `FROM <prefix>$TARGETOS`
    /// pattern (`binary-linux`, `binary-darwin` for `FROM binary-$TARGETOS`):
    /// the stage picked for the build platform is a dependency, the others
    /// are never built, and none of them is a deployable target of its own.
    pub(crate) fn platform_variants(&self) -> Vec<usize> {
        let patterns: Vec<Pattern> = self
            .stages
            .iter()
            .filter(|s| NAMES.iter().any(|n| mentions(&s.from, n)))
            .map(|s| Pattern::new(&variables_as_wildcards(&s.from), self.escape))
            .collect();
        self.stages
            .iter()
            .filter(|s| {
                s.name
                    .as_deref()
                    .is_some_and(|n| patterns.iter().any(|p| p.matches_whole(n)))
            })
            .map(|s| s.index)
            .collect()
    }
}

/// `bin-${TARGETOS}-$TARGETARCH` → `bin-*-*`.
fn variables_as_wildcards(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        if chars.peek() == Some(&'{') {
            for c in chars.by_ref() {
                if c == '}' {
                    break;
                }
            }
        } else {
            while chars
                .peek()
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
            {
                chars.next();
            }
        }
        out.push('*');
    }
    out.to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::{BaseRef, parse};

    /// Issue 14, real-world item 1 (buildkit, buildx, compose, docker CLI).
    const BIN_PATTERN: &str = "FROM alpine:3.20 AS bin-linux\nRUN echo one > /x\nFROM bin-$TARGETOS AS bin\nFROM alpine:3.20 AS app\nCOPY --from=bin /x /x\n";

    #[test]
    fn platform_args_expand_in_from_without_an_arg() {
        let df = parse(BIN_PATTERN).expect("parses");
        let g = df.graph(&BTreeMap::new()).expect("graph");
        assert_eq!(g.bases[1], BaseRef::Stage(0), "bin is built on bin-linux");
        assert_eq!(
            g.needed(2),
            vec![0, 1, 2],
            "app needs bin-linux through bin"
        );
        let arm = BTreeMap::from([("TARGETOS".to_string(), "windows".to_string())]);
        assert_eq!(
            df.graph(&arm).expect("graph").bases[1],
            BaseRef::Image("bin-windows".into())
        );
    }

    #[test]
    fn a_stage_arg_gets_the_platform_value() {
        let df = parse("FROM alpine AS a\nARG TARGETARCH\nARG DART_ARCH=${TARGETARCH/amd64/x64}\nCOPY ${DART_ARCH}/ /x/\n")
            .expect("parses");
        let vars = df.vars_for_stage(0, &BTreeMap::new()).expect("vars");
        assert_eq!(vars.get("TARGETARCH").map(String::as_str), Some("amd64"));
        assert_eq!(vars.get("DART_ARCH").map(String::as_str), Some("x64"));
    }

    #[test]
    fn the_prelude_declares_only_used_undeclared_names() {
        let df = parse(BIN_PATTERN).expect("parses");
        assert_eq!(
            df.platform_prelude(&BTreeMap::new()),
            ["ARG TARGETOS=linux"]
        );
        let declared =
            parse("ARG TARGETOS\nFROM a-${TARGETOS} AS x\nRUN echo $BUILDARCH $TARGETOSX\n")
                .expect("parses");
        assert_eq!(
            declared.platform_prelude(&BTreeMap::new()),
            ["ARG BUILDARCH=amd64"]
        );
        assert!(
            parse("FROM a\n")
                .expect("parses")
                .platform_prelude(&BTreeMap::new())
                .is_empty()
        );
    }

    #[test]
    fn platform_variant_stages_are_found_by_their_pattern() {
        let src = "FROM alpine AS binary-linux\nFROM alpine AS binary-darwin\nFROM alpine AS binary-windows-amd64\nFROM binary-${TARGETOS} AS binary\nFROM alpine AS app\nCOPY --from=binary /x /x\n";
        let df = parse(src).expect("parses");
        assert_eq!(df.platform_variants(), vec![0, 1, 2]);
        assert!(parse(BIN_PATTERN).expect("parses").platform_variants() == vec![0]);
        assert!(
            parse("FROM a AS x\nFROM x AS y\n")
                .expect("parses")
                .platform_variants()
                .is_empty()
        );
    }

    #[test]
    fn mentions_needs_a_dollar_and_a_word_end() {
        assert!(mentions("FROM bin-$TARGETOS AS b", "TARGETOS"));
        assert!(mentions("${TARGETOS:-linux}", "TARGETOS"));
        assert!(!mentions("TARGETOS", "TARGETOS"));
        assert!(!mentions("$TARGETOSX", "TARGETOS"));
    }
}

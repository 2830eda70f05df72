//! Property tests of the `.dockerignore` matcher (the runner and its
//! bounds: `crate::testing::fuzz`).

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use super::DockerIgnore;
use crate::testing::fuzz::{deep, fuzz, no_panic, replay_corpus, replay_known_bugs};

fn ignore_piece() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "*", "**", "?", "a", "b", "app", "node_modules", ".git", "x.md", "*.md", "/", "//",
            ".", "..", "!", "#", "\\", "\\*", "[", "]", "[a-z]", "[!a]", "[^a]", "[]", "[\\]]",
            "[a-", "^", "$", "{", "}", " ", "\t", "\r", "\u{feff}", "é", "(", ")", "+", "|",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~]{0,4}",
        1 => any::<char>().prop_map(String::from),
    ]
}

fn ignore_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::collection::vec(
            (prop::collection::vec(ignore_piece(), 0..6), prop::sample::select(vec!["\n", "\r\n", "\n\n"])),
            0..12,
        )
        .prop_map(|lines| lines.into_iter().map(|(p, e)| format!("{}{e}", p.concat())).collect()),
        1 => any::<String>(),
    ]
}

fn ignore_path() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (
            prop::sample::select(vec!["", "/", "./"]),
            prop::collection::vec(
                prop::sample::select(vec![
                    "a", "b", "app", "x.md", ".git", "node_modules", "..", ".", "", "*", "[", "\\",
                    "é", "a b", "Dockerfile", ".dockerignore",
                ]),
                0..6,
            ),
        )
            .prop_map(|(lead, comps)| format!("{lead}{}", comps.join("/"))),
        1 => any::<String>(),
    ]
}

fn check_dockerignore(text: &str, paths: &[String]) -> Result<(), TestCaseError> {
    let parsed = no_panic("DockerIgnore::parse", || DockerIgnore::parse(text))?;
    let Ok(ig) = parsed else { return Ok(()) };
    deep();
    for p in paths {
        let excluded = no_panic("excluded", || ig.excluded(p))?;
        let in_context = no_panic("in_context", || ig.in_context(p))?;
        no_panic("descend", || ig.descend(p))?;
        prop_assert!(
            !(in_context && excluded),
            "{:?} is both excluded and in the context under {:?}",
            p,
            text
        );
        if ig.is_empty() {
            prop_assert!(
                !excluded && in_context,
                "an empty .dockerignore excluded {:?}",
                p
            );
        }
    }
    prop_assert!(
        !ig.excluded("") && !ig.excluded("."),
        "the context root itself is never excluded"
    );
    let names: Vec<&str> = paths.iter().map(String::as_str).collect();
    if let Ok(with) = no_panic("with_exceptions", || ig.with_exceptions(&names))? {
        // Plain relative names (what stackbake passes: `.dockerignore`,
        // `Dockerfile`) are re-included; others are cleaned or trimmed first.
        for p in names.iter().filter(|p| is_plain_name(p)) {
            {
                prop_assert!(
                    !with.excluded(p),
                    "with_exceptions left {:?} excluded under {:?}",
                    p,
                    text
                );
            }
        }
    }
    Ok(())
}

/// `a/b.c`: `[A-Za-z0-9_.-]` components, none of them empty, `.` or `..`.
fn is_plain_name(p: &str) -> bool {
    !p.is_empty()
        && p.split('/').all(|c| {
            !c.is_empty()
                && c != "."
                && c != ".."
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || "_.-".contains(ch))
        })
}

/// A literal name (no pattern characters) excludes itself and what is under it.
fn check_literal_pattern(name: &str) -> Result<(), TestCaseError> {
    let ig = DockerIgnore::parse(name).map_err(|e| TestCaseError::fail(format!("{name}: {e}")))?;
    deep();
    prop_assert!(ig.excluded(name), "{:?} does not exclude itself", name);
    prop_assert!(
        ig.excluded(&format!("{name}/child")),
        "{:?} does not exclude its children",
        name
    );
    let child = format!("{name}/child");
    prop_assert!(
        !ig.in_context(&child),
        "{:?} left {:?} in the context",
        name,
        child
    );
    let back = DockerIgnore::parse(&format!("{name}\n!{name}"))
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(!back.excluded(name), "!{:?} does not re-include it", name);
    Ok(())
}

#[test]
fn dockerignore_matcher_holds_on_generated_patterns_and_paths() {
    fuzz(
        "dockerignore",
        (ignore_text(), prop::collection::vec(ignore_path(), 1..8)),
        |(text, paths)| check_dockerignore(text, paths),
    );
    fuzz(
        "dockerignore-literal",
        "[a-zA-Z0-9_][a-zA-Z0-9_.-]{0,10}",
        |n| check_literal_pattern(n),
    );
}

/// Paths probed for every `.dockerignore` corpus file, plus each of its lines.
const PROBE_PATHS: &[&str] = &[
    "",
    ".",
    "/",
    "a",
    "a/b",
    "app",
    "app/x.md",
    "app/api/index.json",
    "../x",
    "./a/../b",
    ".git/HEAD",
    "Dockerfile",
    ".dockerignore",
    "*",
    "[",
    "é/ü",
];

/// A corpus file: its patterns, probed with [`PROBE_PATHS`] and each of its
/// lines (without a leading `!`).
fn check_corpus_file(text: &str) -> Result<(), TestCaseError> {
    let mut paths: Vec<String> = PROBE_PATHS.iter().map(|p| (*p).to_owned()).collect();
    paths.extend(text.lines().map(|l| l.trim_start_matches('!').to_owned()));
    check_dockerignore(text, &paths)
}

/// Every file in `tests/fuzz-corpus/dockerignore/` passes the same checks.
#[test]
fn corpus_replays_without_panics() {
    replay_corpus("dockerignore", check_corpus_file);
}

/// The corpus' `known-bug-*` files (see `crate::testing::fuzz`).
#[test]
#[ignore = "known failing inputs in tests/fuzz-corpus/dockerignore/known-bug-*: see the report of issue 6"]
fn known_bugs_still_fail() {
    replay_known_bugs("dockerignore", check_corpus_file);
}

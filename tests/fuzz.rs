//! Property tests ("fuzzing" with proptest) of the three parsers that read
//! user files: the Dockerfile parser with its stage graph and pruned
//! re-parse, the `.dockerignore` matcher, and the task definition parser
//! with its image-pinning rewriter. Inputs come from generators biased
//! toward each syntax (keywords, `\`, heredocs, `--from=`, `$`, `{`, quotes,
//! brackets, `**`, `!`, JSON escapes) mixed with arbitrary strings. Every
//! input must give `Ok` or `Err`, never a panic, and the invariants below
//! must hold.
//!
//! Bounded for CI: 2000 cases per target (`PROPTEST_CASES` overrides) and
//! at most `FUZZ_SECONDS` (default 60) per target. Inputs that ever broke
//! something are kept in `tests/fuzz-corpus/{dockerfile,dockerignore,taskdef}/`
//! and replayed by [`corpus_replays_without_panics`].

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Value, json};

use stackbake::context::dockerignore::DockerIgnore;
use stackbake::dockerfile;
use stackbake::taskdef::TaskDef;
use stackbake::taskdef::rewrite::pin_images;

// ------------------------------------------------------------------ runner

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn time_cap() -> Duration {
    Duration::from_secs(
        std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    )
}

thread_local! {
    /// Inputs that got past parsing into the invariant checks (each test
    /// runs its cases on its own thread).
    static DEEP: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one input that parsed and reached the invariants.
fn deep() {
    DEEP.with(|d| d.set(d.get() + 1));
}

/// Runs `check` on `cases()` inputs from `strategy` (fewer if the time cap
/// is hit), shrinks any failure to a minimal input and panics with it.
fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..Config::default()
    };
    let executed = AtomicU64::new(0);
    let deep_before = DEEP.with(std::cell::Cell::get);
    let started = Instant::now();
    let deadline = started + time_cap();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        if Instant::now() > deadline {
            return Ok(());
        }
        executed.fetch_add(1, Ordering::Relaxed);
        check(&input)
    });
    let (runs, parsed) = (
        executed.load(Ordering::Relaxed),
        DEEP.with(std::cell::Cell::get) - deep_before,
    );
    eprintln!(
        "fuzz {name}: {runs} executions in {:.1?}, {parsed} parsed and checked",
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("fuzz {name} found a failing input (save it under tests/fuzz-corpus/): {e}");
    }
    // Generators that rarely produce valid input would test only the error paths.
    assert!(
        parsed * 5 >= runs,
        "fuzz {name}: only {parsed} of {runs} inputs parsed; the generator is too far off the syntax"
    );
}

/// `f()` must not panic; returns its value or fails the case with the panic message.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        TestCaseError::fail(format!("{what} panicked: {msg}"))
    })
}

/// Joins generated pieces.
fn joined(parts: Vec<String>) -> String {
    parts.concat()
}

// -------------------------------------------------------------- Dockerfile

fn dockerfile_token() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "FROM", "from", "RUN", "run", "COPY", "ADD", "ARG", "ENV", "LABEL", "CMD",
            "ENTRYPOINT", "WORKDIR", "EXPOSE", "USER", "ONBUILD", "HEALTHCHECK", "SHELL",
            "VOLUME", "STOPSIGNAL", "MAINTAINER", "AS", "as", "scratch", "base", "api", "s0",
            "s1", "2", "0", "busybox:1.36", "${BASE}", "$BASE", "${X:-d}", "${X:+y}", "${X",
            "$", "{", "}", "[", "]", "[\"sh\", \"-c\"]", "[\"a\",", "\"", "'", "\"q w\"",
            "'s'", "=", "BASE=x", "X=\"a b\"", "--from=0", "--from=1", "--from=base",
            "--from=s1", "--from=busybox", "--from=\"base\"", "--from=", "--mount=type=bind,from=base,source=/x",
            "--mount=type=cache,target=/c", "--mount=from=1", "--mount=\"from=s0\",target=/t",
            "--platform=$BUILDPLATFORM", "--platform=linux/amd64", "--chmod=755", "--link",
            "--chown=1:1", "--", "<<EOF", "<<-EOF", "<<'EOF'", "<<\"EOF\"", "<<EOT", "EOF",
            "EOT", "\tEOF", "\\", "`", "#", "# escape=`", "# escape=\\", "# syntax=docker/dockerfile:1",
            "# check=skip=all", "#comment", "app/", "app/**", "*.txt", "/srv/", ".", "..",
            "https://example.com/x.tgz", "git@github.com:a/b.git", "é", "\u{feff}", "\u{0}",
            "😀", "\r", "&&", ";", "|", "echo", "hi",
        ])
        .prop_map(str::to_owned),
        1 => "[ -~]{0,6}",
        1 => any::<String>().prop_map(|s| s.chars().take(6).collect()),
    ]
}

fn dockerfile_line() -> impl Strategy<Value = String> {
    let sep = prop::sample::select(vec![" ", " ", " ", "", "\t", "  "]);
    let end = prop::sample::select(vec![
        "\n", "\n", "\n", "\r\n", "\\\n", " \\\n", "`\n", "\\\r\n", "",
    ]);
    (prop::collection::vec((dockerfile_token(), sep), 0..8), end).prop_map(|(words, end)| {
        let mut line: String = words.into_iter().map(|(w, s)| format!("{w}{s}")).collect();
        line.push_str(end);
        line
    })
}

/// Stage headers make graphs with several stages and `--from` edges likely.
fn stage_header() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!["FROM", "from", "FROM --platform=$P"]),
        prop::sample::select(vec![
            "scratch", "busybox", "${BASE}", "base", "s0", "s1", "0",
        ]),
        prop::sample::select(vec![
            "", " AS base", " AS s0", " AS s1", " as S1", " AS api", " AS s2", " AS s3", " AS",
        ]),
    )
        .prop_map(|(f, b, a)| format!("{f} {b}{a}\n"))
}

/// One mostly well-formed instruction (or comment / blank line) inside a
/// stage, written with escape character `esc`; `stages` earlier stage names.
fn instruction(esc: char) -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec![
        "echo",
        "hi",
        "\"a b\"",
        "'c d'",
        "$X",
        "${X}",
        "${X:-dflt}",
        "${BASE}",
        "&&",
        "|",
        ";",
        "/srv/x",
        "[",
        "]",
        "{",
        "}",
        "--flag",
        "=",
        "é",
        "\\$X",
    ]);
    let words = prop::collection::vec(word, 0..6).prop_map(|w| w.join(" "));
    let run_flag = prop::sample::select(vec![
        "",
        "--mount=type=bind,from=s0,source=/x,target=/y ",
        "--mount=type=bind,from=0,target=/y ",
        "--mount=type=cache,target=/c ",
        "--mount=type=bind,source=app,target=/app ",
        "--mount=\"type=bind,from=s1\",target=/t ",
        "--network=none ",
    ]);
    let copy_flag = prop::sample::select(vec![
        "",
        "",
        "--from=s0 ",
        "--from=0 ",
        "--from=1 ",
        "--from=2 ",
        "--from=busybox ",
        "--from=\"s1\" ",
        "--chown=1:1 ",
        "--link ",
        "--from=${X} ",
        "--chmod=755 ",
    ]);
    let src = prop::sample::select(vec![
        "app/",
        "app/api/",
        "app/**/*.md",
        "*.txt",
        ".",
        "${X}/a",
        "\"a b\"",
        "https://example.com/x.tgz",
        "[abc]",
        "a\\ b",
    ]);
    let heredoc = (
        prop::sample::select(vec!["<<EOF", "<<-EOF", "<<'EOF'", "<<\"EOF\"", "<<EOT"]),
        prop::sample::select(vec![
            "echo $X",
            "\tindented",
            "",
            "line one\nline two",
            "EO",
        ]),
    );
    let cont = format!(" {esc}\n");
    let cont2 = cont.clone();
    prop_oneof![
        3 => (run_flag, words.clone()).prop_map(|(f, w)| format!("RUN {f}{w}\n")),
        1 => (words.clone(), words.clone()).prop_map(move |(a, b)| format!("RUN {a}{cont}  # inside{}\n  && {b}\n", "")),
        1 => words.clone().prop_map(|w| format!("CMD [\"sh\", \"-c\", \"{}\"]\n", w.replace('"', ""))),
        3 => (copy_flag, src.clone(), prop::sample::select(vec!["/srv/", "/x", "."])).prop_map(|(f, s, d)| format!("COPY {f}{s} {d}\n")),
        1 => (prop::sample::select(vec!["ADD", "COPY"]), src).prop_map(|(k, s)| format!("{k} {s} /dst/\n")),
        2 => heredoc.clone().prop_map(|(h, body)| {
            let name = if h.contains("EOT") { "EOT" } else { "EOF" };
            let end = if h.contains('-') { format!("\t{name}") } else { name.to_owned() };
            format!("RUN {h}\n{body}\n{end}\n")
        }),
        1 => heredoc.prop_map(|(h, body)| {
            let name = if h.contains("EOT") { "EOT" } else { "EOF" };
            format!("COPY {h} /x\n{body}\n{name}\n")
        }),
        2 => prop::sample::select(vec![
            "ARG X", "ARG X=s0", "ARG X=\"a b\"", "ARG X Y", "arg API=1", "ENV X=v Y=\"a b\"",
            "ENV X v", "LABEL a=b \"c d\"=e", "WORKDIR /srv", "EXPOSE 80/tcp", "USER 1000",
            "HEALTHCHECK NONE", "SHELL [\"/bin/sh\", \"-c\"]", "ONBUILD RUN echo x",
            "STOPSIGNAL SIGTERM", "VOLUME [\"/data\"]", "ENTRYPOINT [\"a\"]",
        ])
        .prop_map(|l| format!("{l}\n")),
        1 => prop::sample::select(vec!["# comment\n", "\n", "   \n", "#\n"]).prop_map(str::to_owned),
        1 => words.prop_map(move |w| format!("RUN {w}{cont2}\n")),
    ]
}

/// A Dockerfile shaped like real ones: directives, global `ARG`s, stages
/// with headers and instructions; sometimes with one line of token soup.
fn structured_dockerfile() -> impl Strategy<Value = String> {
    (
        prop::sample::select(vec!['\\', '\\', '`']),
        prop::sample::select(vec![
            "",
            "# syntax=docker/dockerfile:1\n",
            "# check=skip=all\n",
        ]),
        prop::sample::select(vec![
            "",
            "ARG BASE=busybox\n",
            "ARG BASE\nARG X=s0\n",
            "ARG X=${BASE:-s0}\n",
        ]),
    )
        .prop_flat_map(|(esc, directive, globals)| {
            let escape = if esc == '`' { "# escape=`\n" } else { "" };
            let stage = (
                stage_header(),
                prop::collection::vec(instruction(esc), 0..6),
            )
                .prop_map(|(h, body)| format!("{h}{}", body.concat()));
            (
                Just(format!("{escape}{directive}{globals}")),
                prop::collection::vec(stage, 1..5),
                prop::option::weighted(0.15, (any::<prop::sample::Index>(), dockerfile_line())),
            )
        })
        .prop_map(|(head, stages, noise)| {
            let mut text = format!("{head}{}", stages.concat());
            if let Some((at, line)) = noise {
                let starts: Vec<usize> = std::iter::once(0)
                    .chain(text.match_indices('\n').map(|(i, _)| i + 1))
                    .collect();
                text.insert_str(starts[at.index(starts.len())], &line);
            }
            text
        })
}

fn dockerfile_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => structured_dockerfile(),
        2 => prop::collection::vec(
            prop_oneof![3 => dockerfile_line(), 1 => stage_header()],
            0..24,
        )
        .prop_map(joined),
        1 => any::<String>(),
        1 => "\\PC{0,200}",
    ]
}

/// Names of the stages, in order.
fn stage_names(df: &dockerfile::Dockerfile) -> Vec<Option<String>> {
    df.stages.iter().map(|s| s.name.clone()).collect()
}

/// Parse, then graph, needed, pruned and its re-parse; context sources
/// and stage variables, with and without build args.
fn check_dockerfile(text: &str) -> Result<(), TestCaseError> {
    let parsed = no_panic("dockerfile::parse", || dockerfile::parse(text))?;
    let Ok(df) = parsed else { return Ok(()) };
    deep();
    prop_assert_eq!(df.source(), text);
    for (i, s) in df.stages.iter().enumerate() {
        prop_assert_eq!(s.index, i);
        if let Some(name) = &s.name {
            let found = df.stage_index(name);
            prop_assert!(
                found.is_some_and(|j| df.stages[j].name.as_deref() == Some(name.as_str())),
                "stage_index({:?}) = {:?}",
                name,
                found
            );
        }
    }
    let n = df.stages.len();
    let arg_sets = [
        BTreeMap::new(),
        BTreeMap::from([
            ("BASE".to_owned(), "busybox".to_owned()),
            ("X".to_owned(), "s0".to_owned()),
        ]),
    ];
    for args in &arg_sets {
        for i in 0..n + 1 {
            no_panic("stage_args", || df.stage_args(i))?;
            let _ = no_panic("vars_for_stage", || df.vars_for_stage(i, args))?;
            let _ = no_panic("context_sources", || df.context_sources(i, args))?;
        }
        let graph = no_panic("graph", || df.graph(args))?;
        let Ok(graph) = graph else { continue };
        prop_assert_eq!(graph.bases.len(), n);
        prop_assert_eq!(graph.deps.len(), n);
        for (i, deps) in graph.deps.iter().enumerate() {
            prop_assert!(
                deps.iter().all(|&d| d < i),
                "stage {} depends on a later stage: {:?}",
                i,
                deps
            );
        }
        for i in 0..n {
            let needed = graph.needed(i);
            prop_assert!(needed.contains(&i));
            prop_assert!(needed.windows(2).all(|w| w[0] < w[1]));
            let pruned = no_panic("pruned", || df.pruned(&needed))?;
            let again = no_panic("parse(pruned)", || dockerfile::parse(&pruned))?;
            let again = match again {
                Ok(d) => d,
                Err(e) => {
                    return Err(TestCaseError::fail(format!(
                        "the pruned Dockerfile for stage {i} does not parse ({e}):\n{pruned}"
                    )));
                }
            };
            let kept: Vec<Option<String>> =
                needed.iter().map(|&k| df.stages[k].name.clone()).collect();
            prop_assert_eq!(
                stage_names(&again),
                kept,
                "pruned for stage {}:\n{}",
                i,
                pruned
            );
            for (new, &old) in needed.iter().enumerate() {
                let a: Vec<&str> = again.stages[new]
                    .instructions
                    .iter()
                    .map(|x| x.keyword.as_str())
                    .collect();
                let b: Vec<&str> = df.stages[old]
                    .instructions
                    .iter()
                    .map(|x| x.keyword.as_str())
                    .collect();
                prop_assert_eq!(
                    a,
                    b,
                    "instructions of stage {} differ after pruning:\n{}",
                    old,
                    pruned
                );
            }
            let regraph = no_panic("graph(pruned)", || again.graph(args))?;
            prop_assert!(
                regraph.is_ok(),
                "the pruned Dockerfile for stage {} has no graph ({:?}):\n{}",
                i,
                regraph.err(),
                pruned
            );
        }
    }
    Ok(())
}

#[test]
fn dockerfile_parser_graph_and_pruning_hold_on_generated_input() {
    fuzz("dockerfile", dockerfile_text(), |t| check_dockerfile(t));
}

// ------------------------------------------------------------ .dockerignore

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

// ----------------------------------------------------------------- taskdef

/// A JSON string literal of `s`, each character randomly written plainly
/// or as a `\u` escape (the scanner must decode keys and values).
fn json_string(s: &str, escape_mask: u64) -> String {
    let mut out = String::from("\"");
    for (i, c) in s.chars().enumerate() {
        let escape_this = (escape_mask >> (i % 64)) & 1 == 1;
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if escape_this => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `v` as JSON with generated whitespace and escapes.
fn write_json(v: &Value, ws: &[&str], mask: u64, k: &mut usize, out: &mut String) {
    let space = |out: &mut String, k: &mut usize| {
        *k += 1;
        out.push_str(ws[*k % ws.len()]);
    };
    match v {
        Value::Object(map) => {
            out.push('{');
            for (i, (key, val)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(out, k);
                out.push_str(&json_string(key, mask.rotate_left(i as u32)));
                space(out, k);
                out.push(':');
                space(out, k);
                write_json(val, ws, mask.rotate_left(7 + i as u32), k, out);
            }
            space(out, k);
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, val) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                space(out, k);
                write_json(val, ws, mask.rotate_left(13 + i as u32), k, out);
            }
            space(out, k);
            out.push(']');
        }
        Value::String(s) => out.push_str(&json_string(s, mask)),
        other => out.push_str(&other.to_string()),
    }
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|f| json!(f)),
        "[a-z\"\\\\é/ ]{0,8}".prop_map(Value::String),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-zA-Z]{1,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn image_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest",
            "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
            "busybox",
            "nginx:1.25@sha256:0000000000000000000000000000000000000000000000000000000000000000",
            "localhost:5000/a/b",
            "Image With Spaces",
            "é/\"q\"",
            "",
        ])
        .prop_map(str::to_owned),
        "[a-z0-9./:@-]{1,30}",
    ]
}

/// A task definition value: containers with names, images and extra fields.
fn taskdef_value() -> impl Strategy<Value = Value> {
    let container = (
        "[a-z][a-z0-9é\"\\\\-]{0,8}",
        image_string(),
        prop::collection::vec(("[a-zA-Z]{1,8}", json_value()), 0..3),
        any::<bool>(),
    )
        .prop_map(|(name, image, extra, image_first)| {
            let mut m = serde_json::Map::new();
            if image_first {
                m.insert("image".into(), Value::String(image.clone()));
            }
            m.insert("name".into(), Value::String(name));
            for (k, v) in extra {
                if k != "name" && k != "image" {
                    m.insert(k, v);
                }
            }
            if !image_first {
                m.insert("image".into(), Value::String(image));
            }
            Value::Object(m)
        });
    (
        prop::collection::vec(container, 0..5),
        prop::collection::vec(("[a-zA-Z]{1,10}", json_value()), 0..4),
        any::<bool>(),
    )
        .prop_map(|(containers, extra, defs_last)| {
            let mut m = serde_json::Map::new();
            if !defs_last {
                m.insert(
                    "containerDefinitions".into(),
                    Value::Array(containers.clone()),
                );
            }
            for (k, v) in extra {
                if k != "containerDefinitions" {
                    m.insert(k, v);
                }
            }
            if defs_last {
                m.insert("containerDefinitions".into(), Value::Array(containers));
            }
            Value::Object(m)
        })
}

/// Task definition text: generated values written with random whitespace
/// and escapes, sometimes damaged (a byte range cut out or a string
/// inserted), sometimes arbitrary text.
fn written_taskdef() -> impl Strategy<Value = String> {
    (
        taskdef_value(),
        prop::collection::vec(
            prop::sample::select(vec!["", " ", "\n", "\n  ", "\t", "\r\n"]),
            1..5,
        ),
        any::<u64>(),
        any::<bool>(),
    )
        .prop_map(|(v, ws, mask, bom)| {
            let mut out = if bom {
                "\u{feff}".to_owned()
            } else {
                String::new()
            };
            let mut k = 0;
            write_json(&v, &ws, mask, &mut k, &mut out);
            out
        })
}

fn taskdef_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => written_taskdef(),
        2 => (written_taskdef(), any::<prop::sample::Index>(), any::<prop::sample::Index>(), prop::sample::select(vec![
            "", "\"", "\\", "{", "}", "[", "]", ",", ":", "\"image\":\"x\",", "\"name\":\"n\",",
            "\"containerDefinitions\":[],", "\\u00", "\u{0}", "é",
        ]))
            .prop_map(|(text, a, b, insert)| {
                let chars: Vec<char> = text.chars().collect();
                if chars.is_empty() {
                    return insert.to_owned();
                }
                let (i, j) = (a.index(chars.len()), b.index(chars.len()));
                let (i, j) = (i.min(j), i.max(j).min(i + 3));
                let mut s: String = chars[..i].iter().collect();
                s.push_str(insert);
                s.extend(&chars[j..]);
                s
            }),
        1 => any::<String>(),
    ]
}

const PIN: &str = "127.0.0.1:5000/bash-dog-api@sha256:1111111111111111111111111111111111111111111111111111111111111111";
const PIN2: &str =
    "127.0.0.1:5000/other@sha256:2222222222222222222222222222222222222222222222222222222222222222";

/// Parse; pin a subset of the containers; the output re-parses to the
/// original value with exactly those images replaced; names unchanged.
fn check_taskdef(text: &str, pick: u64) -> Result<(), TestCaseError> {
    let parsed = no_panic("TaskDef::parse", || TaskDef::parse(text))?;
    let Ok(td) = parsed else { return Ok(()) };
    deep();
    prop_assert_eq!(td.raw(), text);
    let containers = td.containers();
    let mut pins = BTreeMap::new();
    for (i, c) in containers.iter().enumerate() {
        if (pick >> (i % 64)) & 1 == 1 {
            pins.insert(c.name.clone(), PIN.to_owned());
        }
    }
    let out = no_panic("pin_images", || pin_images(&td, &pins))?;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "pin_images refused a parsed task definition: {e}"
            )));
        }
    };
    let again = match TaskDef::parse(&out) {
        Ok(t) => t,
        Err(e) => {
            return Err(TestCaseError::fail(format!(
                "the output does not parse: {e}\n{out}"
            )));
        }
    };
    let mut expected = td.value().clone();
    if let Some(defs) = expected
        .get_mut("containerDefinitions")
        .and_then(Value::as_array_mut)
    {
        for def in defs {
            let pinned = def
                .get("name")
                .and_then(Value::as_str)
                .is_some_and(|n| pins.contains_key(n));
            if pinned && let Some(slot) = def.get_mut("image") {
                *slot = Value::String(PIN.to_owned());
            }
        }
    }
    prop_assert_eq!(
        again.value(),
        &expected,
        "pinning changed more than the images:\n{}",
        out
    );
    prop_assert_eq!(again.container_names(), td.container_names());
    if pins.is_empty() {
        prop_assert_eq!(&out, text, "no pin, but the text changed");
    }
    // Only the image tokens change, byte for byte: pinning the output again
    // with another image must change exactly the first pin's tokens.
    if !pins.is_empty() {
        let pins2: BTreeMap<String, String> =
            pins.keys().map(|k| (k.clone(), PIN2.to_owned())).collect();
        let out2 = pin_images(&again, &pins2)
            .map_err(|e| TestCaseError::fail(format!("second pin_images failed: {e}\n{out}")))?;
        let (t1, t2) = (json!(PIN).to_string(), json!(PIN2).to_string());
        prop_assert_eq!(
            out2,
            out.replace(&t1, &t2),
            "bytes outside the image values changed"
        );
    }
    // Unknown containers and invalid images are errors, not panics.
    let unknown = BTreeMap::from([("no-such-container-\u{1}".to_owned(), PIN.to_owned())]);
    prop_assert!(no_panic("pin_images(unknown)", || pin_images(&td, &unknown))?.is_err());
    if let Some(c) = containers.first() {
        for bad in ["", "UPPER/Case", "a b", "x@sha256:short", "\u{0}"] {
            let pins = BTreeMap::from([(c.name.clone(), bad.to_owned())]);
            let _ = no_panic("pin_images(bad image)", || pin_images(&td, &pins))?;
        }
    }
    Ok(())
}

#[test]
fn taskdef_parser_and_pin_images_hold_on_generated_input() {
    fuzz("taskdef", (taskdef_text(), any::<u64>()), |(t, pick)| {
        check_taskdef(t, *pick)
    });
}

// ------------------------------------------------------------------ corpus

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
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

fn run_corpus_file(kind: &str, path: &Path) -> Result<(), TestCaseError> {
    let bytes =
        fs::read(path).map_err(|e| TestCaseError::fail(format!("{}: {e}", path.display())))?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    match kind {
        "dockerfile" => check_dockerfile(&text),
        "dockerignore" => {
            let mut paths: Vec<String> = PROBE_PATHS.iter().map(|p| (*p).to_owned()).collect();
            paths.extend(text.lines().map(|l| l.trim_start_matches('!').to_owned()));
            check_dockerignore(&text, &paths)
        }
        "taskdef" => {
            check_taskdef(&text, u64::MAX)?;
            check_taskdef(&text, 0b101)
        }
        _ => Ok(()),
    }
}

/// Every file in `tests/fuzz-corpus/<kind>/` (seeds and anything a fuzz
/// run ever found) passes the same checks as the generated inputs. Files
/// named `known-bug-*` are inputs that still fail: they are checked by
/// [`known_bugs_still_fail`] instead, so this test stays green.
#[test]
fn corpus_replays_without_panics() {
    let mut failures = Vec::new();
    let mut count = 0;
    for kind in ["dockerfile", "dockerignore", "taskdef"] {
        for path in corpus(kind) {
            if is_known_bug(&path) {
                continue;
            }
            count += 1;
            if let Err(e) = run_corpus_file(kind, &path) {
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    assert!(count >= 3, "the corpus is missing: only {count} files");
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}

fn is_known_bug(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("known-bug-"))
}

/// Inputs that broke stackbake and are not fixed yet (`known-bug-*` in the
/// corpus). This test FAILS while any of them still fails, naming each:
/// it is ignored so the suite stays green; run it with
/// `cargo test --test fuzz -- --ignored known_bugs` after a fix, then
/// rename the file (drop the `known-bug-` prefix) so the corpus keeps it.
#[test]
#[ignore = "known failing inputs in tests/fuzz-corpus/*/known-bug-*: see the report of issue 6"]
fn known_bugs_still_fail() {
    let mut failures = Vec::new();
    for kind in ["dockerfile", "dockerignore", "taskdef"] {
        for path in corpus(kind).into_iter().filter(|p| is_known_bug(p)) {
            if let Err(e) = run_corpus_file(kind, &path) {
                failures.push(format!("{}: {e}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "known bugs still failing:\n{}",
        failures.join("\n")
    );
}

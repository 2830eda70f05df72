//! Property tests of the Dockerfile parser, its stage graph and the pruned
//! re-parse (the runner and its bounds: `crate::testing::fuzz`).

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

use crate::dockerfile;
use crate::testing::fuzz::{deep, fuzz, no_panic, replay_corpus, replay_known_bugs};

/// Joins generated pieces.
fn joined(parts: Vec<String>) -> String {
    parts.concat()
}

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

/// A few shell words, joined by spaces.
fn words() -> impl Strategy<Value = String> + Clone {
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
    prop::collection::vec(word, 0..6).prop_map(|w| w.join(" "))
}

/// A `RUN` flag, or none.
fn run_flag() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        "",
        "--mount=type=bind,from=s0,source=/x,target=/y ",
        "--mount=type=bind,from=0,target=/y ",
        "--mount=type=cache,target=/c ",
        "--mount=type=bind,source=app,target=/app ",
        "--mount=\"type=bind,from=s1\",target=/t ",
        "--network=none ",
    ])
}

/// A `COPY` flag, or none.
fn copy_flag() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
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
    ])
}

/// A `COPY` / `ADD` source.
fn copy_source() -> impl Strategy<Value = &'static str> + Clone {
    prop::sample::select(vec![
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
    ])
}

/// A heredoc opener and its body.
fn heredoc() -> impl Strategy<Value = (&'static str, &'static str)> + Clone {
    (
        prop::sample::select(vec!["<<EOF", "<<-EOF", "<<'EOF'", "<<\"EOF\"", "<<EOT"]),
        prop::sample::select(vec![
            "echo $X",
            "\tindented",
            "",
            "line one\nline two",
            "EO",
        ]),
    )
}

/// An instruction of one fixed line (`ARG`, `ENV`, `LABEL`, …).
fn fixed_line() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "ARG X",
        "ARG X=s0",
        "ARG X=\"a b\"",
        "ARG X Y",
        "arg API=1",
        "ENV X=v Y=\"a b\"",
        "ENV X v",
        "LABEL a=b \"c d\"=e",
        "WORKDIR /srv",
        "EXPOSE 80/tcp",
        "USER 1000",
        "HEALTHCHECK NONE",
        "SHELL [\"/bin/sh\", \"-c\"]",
        "ONBUILD RUN echo x",
        "STOPSIGNAL SIGTERM",
        "VOLUME [\"/data\"]",
        "ENTRYPOINT [\"a\"]",
    ])
    .prop_map(|l| format!("{l}\n"))
}

/// One mostly well-formed instruction (or comment / blank line) inside a
/// stage, written with escape character `esc`; `stages` earlier stage names.
fn instruction(esc: char) -> impl Strategy<Value = String> {
    let words = words();
    let src = copy_source();
    let heredoc = heredoc();
    let cont = format!(" {esc}\n");
    let cont2 = cont.clone();
    prop_oneof![
        3 => (run_flag(), words.clone()).prop_map(|(f, w)| format!("RUN {f}{w}\n")),
        1 => (words.clone(), words.clone()).prop_map(move |(a, b)| format!("RUN {a}{cont}  # inside{}\n  && {b}\n", "")),
        1 => words.clone().prop_map(|w| format!("CMD [\"sh\", \"-c\", \"{}\"]\n", w.replace('"', ""))),
        3 => (copy_flag(), src.clone(), prop::sample::select(vec!["/srv/", "/x", "."])).prop_map(|(f, s, d)| format!("COPY {f}{s} {d}\n")),
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
        2 => fixed_line(),
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

/// Each named stage is found again by `stage_index`.
fn check_stage_indices(df: &dockerfile::Dockerfile) -> Result<(), TestCaseError> {
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
    Ok(())
}

/// With one set of build args: the per-stage queries do not panic, and the
/// graph (when there is one) is well-formed and prunes to Dockerfiles that
/// parse again.
fn check_with_args(
    df: &dockerfile::Dockerfile,
    args: &BTreeMap<String, String>,
) -> Result<(), TestCaseError> {
    let n = df.stages.len();
    for i in 0..n + 1 {
        no_panic("stage_args", || df.stage_args(i))?;
        let _ = no_panic("vars_for_stage", || df.vars_for_stage(i, args))?;
        let _ = no_panic("context_sources", || df.context_sources(i, args))?;
    }
    let graph = no_panic("graph", || df.graph(args))?;
    let Ok(graph) = graph else { return Ok(()) };
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
        check_pruned_stage(df, &graph, i, args)?;
    }
    Ok(())
}

/// Stage `i`'s needed set, and the Dockerfile pruned to it: it parses, keeps
/// the stages' names and instructions, and has a graph.
fn check_pruned_stage(
    df: &dockerfile::Dockerfile,
    graph: &dockerfile::StageGraph,
    i: usize,
    args: &BTreeMap<String, String>,
) -> Result<(), TestCaseError> {
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
    let kept: Vec<Option<String>> = needed.iter().map(|&k| df.stages[k].name.clone()).collect();
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
    Ok(())
}

/// Parse, then graph, needed, pruned and its re-parse; context sources
/// and stage variables, with and without build args.
fn check_dockerfile(text: &str) -> Result<(), TestCaseError> {
    let parsed = no_panic("dockerfile::parse", || dockerfile::parse(text))?;
    let Ok(df) = parsed else { return Ok(()) };
    deep();
    prop_assert_eq!(df.source(), text);
    check_stage_indices(&df)?;
    let arg_sets = [
        BTreeMap::new(),
        BTreeMap::from([
            ("BASE".to_owned(), "busybox".to_owned()),
            ("X".to_owned(), "s0".to_owned()),
        ]),
    ];
    for args in &arg_sets {
        check_with_args(&df, args)?;
    }
    Ok(())
}

#[test]
fn dockerfile_parser_graph_and_pruning_hold_on_generated_input() {
    fuzz("dockerfile", dockerfile_text(), |t| check_dockerfile(t));
}

/// Every file in `tests/fuzz-corpus/dockerfile/` passes the same checks.
#[test]
fn corpus_replays_without_panics() {
    replay_corpus("dockerfile", check_dockerfile);
}

/// The corpus' `known-bug-*` Dockerfiles (see `crate::testing::fuzz`).
#[test]
#[ignore = "known failing inputs in tests/fuzz-corpus/dockerfile/known-bug-*: see the report of issue 6"]
fn known_bugs_still_fail() {
    replay_known_bugs("dockerfile", check_dockerfile);
}

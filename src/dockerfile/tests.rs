//! Behaviour tests for the Dockerfile module: every construct of the issue
//! here; the stage graph, pruning and context sources in `graph`, malformed
//! and hostile input in `malformed`.

use std::collections::BTreeMap;

use super::*;

mod graph;
mod malformed;

fn ok(src: &str) -> Dockerfile {
    match parse(src) {
        Ok(df) => df,
        Err(e) => panic!("parse failed: {e}\n---\n{src}"),
    }
}

fn no_args() -> BTreeMap<String, String> {
    BTreeMap::new()
}

fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn shell(ins: &Instruction) -> &str {
    match &ins.args {
        Args::Shell(s) => s,
        Args::Exec(v) => panic!("expected shell form, got {v:?}"),
    }
}

fn local(paths: &[&str]) -> Vec<String> {
    paths.iter().map(|s| s.to_string()).collect()
}

fn local_paths(srcs: &[ContextSource]) -> Vec<String> {
    srcs.iter()
        .filter_map(|s| match s {
            ContextSource::Local { path, .. } => Some(path.clone()),
            ContextSource::Remote { .. } => None,
        })
        .collect()
}

#[test]
fn continuations_skip_comments_and_empty_lines() {
    let src = "FROM a\nRUN echo one \\\n  # a comment inside\n\n    && echo two \\\n\t# another\n    && echo three\nCMD x\n";
    let df = ok(src);
    let run = &df.stages[0].instructions[0];
    assert_eq!(run.keyword, "RUN");
    assert_eq!(shell(run), "echo one     && echo two     && echo three");
    assert_eq!((run.line, run.end_line), (2, 7));
    assert!(
        run.raw
            .starts_with("RUN echo one \\\n  # a comment inside\n")
    );
    assert!(run.raw.ends_with("&& echo three"));
    assert_eq!(df.stages[0].instructions[1].line, 8);
    assert_eq!(df.stages[0].end_line, 8);
}

#[test]
fn continuation_at_end_of_file_is_accepted() {
    let df = ok("FROM a\nRUN echo \\\n");
    assert_eq!(shell(&df.stages[0].instructions[0]), "echo");
}

#[test]
fn escape_directive_backtick_with_windows_paths() {
    let src = "# escape=`\nFROM mcr.microsoft.com/windows/nanoserver AS win\nCOPY C:\\src\\app C:\\app\\\nRUN dir C:\\app `\n    && echo done\n";
    let df = ok(src);
    assert_eq!(df.escape, '`');
    let s = &df.stages[0];
    assert_eq!(s.name.as_deref(), Some("win"));
    // A trailing backslash is not a continuation under escape=`.
    assert_eq!(shell(&s.instructions[0]), "C:\\src\\app C:\\app\\");
    assert_eq!(shell(&s.instructions[1]), "dir C:\\app     && echo done");
    let srcs = df.context_sources(0, &no_args()).unwrap();
    assert_eq!(local_paths(&srcs), local(&["C:\\src\\app"]));
}

#[test]
fn directives_only_count_at_the_very_top() {
    let cases: &[(&str, char)] = &[
        ("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n", '`'),
        ("#ESCAPE = `\nFROM a\n", '`'),
        ("\n# escape=`\nFROM a\n", '\\'),
        ("# a comment\n# escape=`\nFROM a\n", '\\'),
        ("# unknown=1\n# escape=`\nFROM a\n", '\\'),
        ("FROM a\n# escape=`\n", '\\'),
    ];
    for (src, want) in cases {
        assert_eq!(ok(src).escape, *want, "{src:?}");
    }
    let df = ok("# syntax=docker/dockerfile:1.7\nFROM a\n");
    assert_eq!(df.directives.len(), 1);
    assert_eq!(df.directives[0].name, "syntax");
    assert_eq!(df.directives[0].value, "docker/dockerfile:1.7");
}

#[test]
fn global_args_in_from_with_defaults_and_overrides() {
    let src = "ARG REG=docker.io\nARG IMG=${REG}/library/busybox\nARG TAG\nARG ALT\nFROM ${IMG}:${TAG:-1.36} AS a\nFROM $REG/x${ALT:+-alt} AS b\nFROM ${NOPE:-scratch} AS c\n";
    let df = ok(src);
    assert_eq!(
        df.global_args
            .iter()
            .map(|a| (a.name.as_str(), a.default.as_deref(), a.line))
            .collect::<Vec<_>>(),
        [
            ("REG", Some("docker.io"), 1),
            ("IMG", Some("${REG}/library/busybox"), 2),
            ("TAG", None, 3),
            ("ALT", None, 4)
        ]
    );
    assert_eq!(df.stages[0].from, "${IMG}:${TAG:-1.36}");
    type Case<'a> = (&'a [(&'a str, &'a str)], [BaseRef; 3]);
    let cases: &[Case] = &[
        (
            &[],
            [
                BaseRef::Image("docker.io/library/busybox:1.36".into()),
                BaseRef::Image("docker.io/x".into()),
                BaseRef::Scratch,
            ],
        ),
        (
            &[("REG", "127.0.0.1:5000"), ("TAG", "2"), ("ALT", "1")],
            [
                BaseRef::Image("127.0.0.1:5000/library/busybox:2".into()),
                BaseRef::Image("127.0.0.1:5000/x-alt".into()),
                BaseRef::Scratch,
            ],
        ),
        (
            // An override of the derived ARG wins over its default; NOPE is
            // not a declared ARG, so its build arg is ignored.
            &[("IMG", "mine"), ("NOPE", "other")],
            [
                BaseRef::Image("mine:1.36".into()),
                BaseRef::Image("docker.io/x".into()),
                BaseRef::Scratch,
            ],
        ),
    ];
    for (overrides, want) in cases {
        let g = df.graph(&args(overrides)).unwrap();
        assert_eq!(g.bases, want.to_vec(), "build args {overrides:?}");
    }
}

#[test]
fn build_args_not_declared_globally_do_not_reach_from() {
    let df = ok("FROM ${X:-busybox}\n");
    let g = df.graph(&args(&[("X", "alpine")])).unwrap();
    assert_eq!(g.bases, [BaseRef::Image("busybox".into())]);
}

#[test]
fn from_expanding_to_nothing_is_an_error() {
    let df = ok("ARG BASE\nFROM $BASE\n");
    let e = df.graph(&no_args()).unwrap_err();
    assert_eq!(e.line, 2);
    assert!(e.message.contains("empty image name"), "{e}");
    assert!(df.graph(&args(&[("BASE", "alpine")])).is_ok());
}

#[test]
fn platform_flag_and_lowercase_keywords() {
    let src = "from --platform=$BUILDPLATFORM golang:1.22 as Build\nrun go build\nFrOm --platform=linux/arm64 alpine As final\ncopy --from=BUILD /out /bin/app\n";
    let df = ok(src);
    assert_eq!(df.stages[0].name.as_deref(), Some("build"));
    assert_eq!(df.stages[0].platform.as_deref(), Some("$BUILDPLATFORM"));
    assert_eq!(df.stages[0].from, "golang:1.22");
    assert_eq!(df.stages[1].platform.as_deref(), Some("linux/arm64"));
    assert_eq!(df.stages[0].instructions[0].keyword, "RUN");
    assert_eq!(df.stages[1].instructions[0].keyword, "COPY");
    assert_eq!(df.stage_index("BUILD"), Some(0));
    assert_eq!(df.stage_index("Final"), Some(1));
    assert_eq!(df.stage_index("nope"), None);
    let g = df.graph(&no_args()).unwrap();
    assert_eq!(g.deps, vec![vec![], vec![0]]);
}

#[test]
fn heredocs_of_each_kind() {
    let src = "FROM a\n\
RUN <<EOF\n\
echo $HOME\n\
FROM evil AS fake\n\
EOF\n\
RUN <<-EOT\n\
\t\techo tabbed\n\
\tEOT\n\
COPY <<\"CONF\" /etc/app.conf\n\
value=$X\n\
CONF\n\
RUN cat <<'A' > /a && cat <<B > /b\n\
alpha\n\
A\n\
beta\n\
B\n\
CMD [\"done\"]\n";
    let df = ok(src);
    assert_eq!(df.stages.len(), 1, "FROM inside a heredoc is body text");
    let ins = &df.stages[0].instructions;
    assert_eq!(ins.len(), 5);
    let h = |i: usize| -> Vec<(String, String, bool, bool)> {
        ins[i]
            .heredocs
            .iter()
            .map(|h| (h.name.clone(), h.body.clone(), h.expand, h.chomp))
            .collect()
    };
    assert_eq!(
        h(0),
        [(
            "EOF".into(),
            "echo $HOME\nFROM evil AS fake\n".into(),
            true,
            false
        )]
    );
    assert_eq!((ins[0].line, ins[0].end_line), (2, 5));
    assert!(ins[0].raw.ends_with("FROM evil AS fake\nEOF"));
    assert_eq!(h(1), [("EOT".into(), "echo tabbed\n".into(), true, true)]);
    assert_eq!(h(2), [("CONF".into(), "value=$X\n".into(), false, false)]);
    assert_eq!(shell(&ins[2]), "<<\"CONF\" /etc/app.conf");
    assert_eq!(
        h(3),
        [
            ("A".into(), "alpha\n".into(), false, false),
            ("B".into(), "beta\n".into(), true, false)
        ]
    );
    assert_eq!((ins[3].line, ins[3].end_line), (12, 16));
    assert_eq!(ins[4].line, 17);
    // Heredoc sources are not build-context sources.
    assert!(df.context_sources(0, &no_args()).unwrap().is_empty());
}

#[test]
fn heredoc_markers_inside_quotes_are_not_heredocs() {
    let df = ok("FROM a\nRUN echo \"<<EOF\"\nCMD x\n");
    assert!(df.stages[0].instructions[0].heredocs.is_empty());
    assert_eq!(df.stages[0].instructions.len(), 2);
}

#[test]
fn exec_and_shell_forms() {
    let src = "FROM a\nRUN [\"echo\", \"hi there\"]\nRUN echo hi\nCMD [\"a\", 3\nENTRYPOINT [not json\nCOPY [\"src dir/\", \"/dst/\"]\nVOLUME [\"/data\"]\nENV X='[\"not\", \"exec\"]'\n";
    let df = ok(src);
    let ins = &df.stages[0].instructions;
    let cases: &[(usize, Args)] = &[
        (0, Args::Exec(vec!["echo".into(), "hi there".into()])),
        (1, Args::Shell("echo hi".into())),
        (2, Args::Shell("[\"a\", 3".into())),
        (3, Args::Shell("[not json".into())),
        (4, Args::Exec(vec!["src dir/".into(), "/dst/".into()])),
        (5, Args::Exec(vec!["/data".into()])),
        (6, Args::Shell("X='[\"not\", \"exec\"]'".into())),
    ];
    for (i, want) in cases {
        assert_eq!(&ins[*i].args, want, "instruction {i}");
    }
    let srcs = df.context_sources(0, &no_args()).unwrap();
    assert_eq!(local_paths(&srcs), local(&["src dir/"]));
}

#[test]
fn exec_form_over_continuation_is_joined() {
    let df = ok("FROM a\nCMD [\"a\", \\\n  \"b\"]\n");
    assert_eq!(
        df.stages[0].instructions[0].args,
        Args::Exec(vec!["a".into(), "b".into()])
    );
}

#[test]
fn copy_from_by_name_index_and_image() {
    let src = "FROM alpine AS build\nFROM build AS test\nFROM scratch\nCOPY --from=BUILD /a /a\nCOPY --from=1 /b /b\nCOPY --from=nginx:1.25 /etc/nginx /etc/nginx\nCOPY --from=ghcr.io/x/y@sha256:abc /c /c\n";
    let df = ok(src);
    let g = df.graph(&no_args()).unwrap();
    assert_eq!(
        g.bases,
        [
            BaseRef::Image("alpine".into()),
            BaseRef::Stage(0),
            BaseRef::Scratch
        ]
    );
    assert_eq!(g.deps, vec![vec![], vec![0], vec![0, 1]]);
    assert_eq!(
        g.images[2],
        [
            "ghcr.io/x/y@sha256:abc".to_string(),
            "nginx:1.25".to_string()
        ]
    );
    assert_eq!(g.images_of(&g.needed(2)).len(), 2);
    let copy = &df.stages[2].instructions[1];
    assert_eq!(copy.flag("from"), Some("1"));
    assert_eq!(copy.flags[0].name, "from");
}

#[test]
fn copy_from_expands_global_args() {
    let df = ok("ARG SRC=build\nFROM a AS build\nFROM b\nCOPY --from=${SRC} /x /x\n");
    assert_eq!(df.graph(&no_args()).unwrap().deps[1], [0]);
    let g = df.graph(&args(&[("SRC", "img:1")])).unwrap();
    assert!(g.deps[1].is_empty());
    assert_eq!(g.images[1], ["img:1".to_string()]);
}

#[test]
fn run_mount_from_stage_index_and_image() {
    let src = "FROM a AS deps\nFROM b AS cache\nFROM c\nRUN --mount=type=bind,from=deps,source=/x,target=/y \\\n    --mount=type=cache,target=/root/.cache,from=1 \\\n    --mount=from=busybox,target=/bb \\\n    --mount=type=tmpfs,target=/tmp \\\n    --mount=type=bind,source=app,target=/app \\\n    make\n";
    let df = ok(src);
    let run = &df.stages[2].instructions[0];
    assert_eq!(run.flags.len(), 5);
    assert_eq!(shell(run), "make");
    let g = df.graph(&no_args()).unwrap();
    assert_eq!(g.deps[2], [0, 1]);
    assert_eq!(g.images[2], ["busybox".to_string()]);
    let srcs = df.context_sources(2, &no_args()).unwrap();
    assert_eq!(
        srcs,
        [ContextSource::Local {
            path: "app".into(),
            line: 4
        }]
    );
}

#[test]
fn onbuild_and_other_instructions_pass_through() {
    let src = "FROM a\nONBUILD COPY --from=nowhere . /app\nHEALTHCHECK --interval=5s CMD curl -f http://x/\nLABEL a=b\nEXPOSE 80\nUSER 1000\nWORKDIR /w\nSTOPSIGNAL SIGTERM\nSHELL [\"/bin/sh\", \"-c\"]\nMAINTAINER me\n";
    let df = ok(src);
    let kws: Vec<&str> = df.stages[0]
        .instructions
        .iter()
        .map(|i| i.keyword.as_str())
        .collect();
    assert_eq!(
        kws,
        [
            "ONBUILD",
            "HEALTHCHECK",
            "LABEL",
            "EXPOSE",
            "USER",
            "WORKDIR",
            "STOPSIGNAL",
            "SHELL",
            "MAINTAINER"
        ]
    );
    let g = df.graph(&no_args()).unwrap();
    assert!(g.deps[0].is_empty() && g.images[0].is_empty());
    assert!(df.context_sources(0, &no_args()).unwrap().is_empty());
}

#[test]
fn rich_dockerfile_parses() {
    let df = ok(include_str!("testdata/rich.Dockerfile"));
    let g = df.graph(&no_args()).unwrap();
    let names: Vec<_> = df.stages.iter().map(|s| s.name.clone()).collect();
    assert_eq!(
        names,
        [
            Some("deps".to_string()),
            Some("build".to_string()),
            Some("runtime".to_string())
        ]
    );
    assert_eq!(g.needed(2), [0, 1, 2]);
}

#[test]
fn the_example_stack_dockerfile_parses() {
    // Embedded copy of /work/main/Dockerfile (the project's runnable example).
    let src = include_str!("testdata/example.Dockerfile");
    let df = ok(src);
    let names: Vec<_> = df
        .stages
        .iter()
        .map(|s| s.name.clone().unwrap_or_default())
        .collect();
    assert_eq!(names, ["base", "assets", "api", "sidecar", "nginx"]);
    let g = df
        .graph(&args(&[("BASE", "stackbake-test/busybox:latest")]))
        .unwrap();
    assert_eq!(
        g.bases[0],
        BaseRef::Image("stackbake-test/busybox:latest".into())
    );
    assert_eq!(g.needed(4), [0, 1, 4]);
    assert_eq!(g.needed(2), [0, 2]);
    assert_eq!(df.stage_arg_names(2), ["API_GREETING"]);
    assert_eq!(
        local_paths(&df.context_sources(4, &no_args()).unwrap()),
        local(&["app/nginx/"])
    );
    let pruned = df.pruned(&g.needed(4));
    let re = parse(&pruned).unwrap();
    assert_eq!(re.stages.len(), 3);
    assert_eq!(re.global_args.len(), 1);
    assert_eq!(re.graph(&no_args()).unwrap().deps[2], [0, 1]);
    // Inside the main crate, also parse the live file next to Cargo.toml.
    let on_disk = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile");
    if let Ok(text) = std::fs::read_to_string(on_disk) {
        let live = ok(&text);
        assert!(live.graph(&no_args()).is_ok());
    }
}

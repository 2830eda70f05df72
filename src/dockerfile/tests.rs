//! Behaviour tests for the Dockerfile module: every construct of the issue,
//! the stage graph, pruning, context sources, and malformed input.

use std::collections::BTreeMap;

use super::*;

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
fn diamond_deps_and_needed() {
    let src = "FROM alpine AS base\nFROM base AS left\nFROM base AS right\nFROM scratch AS unrelated\nFROM left AS top\nCOPY --from=right /r /r\n";
    let df = ok(src);
    let g = df.graph(&no_args()).unwrap();
    assert_eq!(g.deps, vec![vec![], vec![0], vec![0], vec![], vec![1, 2]]);
    let cases: &[(usize, &[usize])] = &[(4, &[0, 1, 2, 4]), (2, &[0, 2]), (3, &[3]), (0, &[0])];
    for (target, want) in cases {
        assert_eq!(g.needed(*target), want.to_vec(), "target {target}");
    }
}

#[test]
fn pruned_keeps_directives_args_and_renumbers() {
    let src = "# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=alpine\n# a comment about stages\nFROM $BASE AS zero\nRUN echo zero\n\nFROM $BASE AS one\nRUN echo one\nFROM $BASE AS two\n# comment kept inside stage\nRUN echo two\nFROM scratch AS three\nCOPY --from=2 /two /two\nCOPY --from=\\\n1 /one /one\nRUN --mount=type=bind,from=2,target=/t \\\n    --mount=\"type=cache,from=1,target=/c\" true\nCOPY --from=zero /z /z\n";
    let df = ok(src);
    let g = df.graph(&no_args()).unwrap();
    let keep = g.needed(3);
    assert_eq!(keep, [0, 1, 2, 3]);
    // Drop stage 0 artificially is not closed; keep 1,2,3 as if 3 did not need 0.
    let text = df.pruned(&[1, 2, 3]);
    assert!(text.starts_with("# syntax=docker/dockerfile:1\n# escape=\\\nARG BASE=alpine\n"));
    assert!(text.contains("COPY --from=1 /two /two"), "{text}");
    assert!(text.contains("COPY --from=\\\n0 /one /one"), "{text}");
    assert!(
        text.contains("--mount=type=bind,from=1,target=/t"),
        "{text}"
    );
    assert!(
        text.contains("--mount=\"type=cache,from=0,target=/c\""),
        "{text}"
    );
    assert!(text.contains("# comment kept inside stage\nRUN echo two"));
    assert!(!text.contains("echo zero"));
    assert!(!text.contains("a comment about stages"));
    let re = parse(&text).unwrap();
    assert_eq!(
        re.stages
            .iter()
            .map(|s| s.name.clone().unwrap_or_default())
            .collect::<Vec<_>>(),
        ["one", "two", "three"]
    );
    // `zero` is gone, so that COPY --from=zero is now an image: not closed input.
    let g2 = re.graph(&no_args()).unwrap();
    assert_eq!(g2.deps[2], [0, 1]);
    for (a, b) in re.stages.iter().zip(&df.stages[1..]) {
        assert_eq!(a.instructions.len(), b.instructions.len());
    }
}

#[test]
fn pruned_of_a_closed_set_reparses_to_the_same_graph() {
    let src = "ARG BASE=busybox\nFROM ${BASE} AS base\nRUN true\nFROM base AS api\nRUN <<EOF\nFROM inside heredoc\nEOF\nFROM base AS web\nCOPY --from=0 /a /a\nCOPY --from=api /b /b\n";
    let df = ok(src);
    let g = df.graph(&no_args()).unwrap();
    let text = df.pruned(&g.needed(2));
    assert_eq!(parse(&text).unwrap().graph(&no_args()).unwrap(), g);
    let only_web = df.pruned(&[0, 2]);
    let re = parse(&only_web).unwrap();
    assert_eq!(re.stages.len(), 2);
    assert_eq!(re.stages[1].instructions[0].flag("from"), Some("0"));
    // Out-of-range and duplicate keep indices are ignored.
    assert_eq!(df.pruned(&[2, 0, 0, 99]), only_web);
}

#[test]
fn context_sources_expand_args_env_and_skip_from() {
    let src = "ARG APP=api\nARG VER=1\nFROM alpine AS base\nENV ROOT=app\nFROM base AS api\nARG APP\nARG DIR=${ROOT}/${APP}\nARG VER\nCOPY ${DIR}/ /srv/\nCOPY \"$ROOT/shared\" /x\nCOPY --from=base /etc /etc\nADD https://example.com/f.tgz git@github.com:x/y.git local.tgz /opt/\nCOPY [\"${ROOT}/exec\", \"/e\"]\nCOPY --chmod=755 run-$VER.sh /\n";
    let df = ok(src);
    let srcs = df.context_sources(1, &no_args()).unwrap();
    assert_eq!(
        srcs,
        [
            ContextSource::Local {
                path: "app/api/".into(),
                line: 9
            },
            ContextSource::Local {
                path: "app/shared".into(),
                line: 10
            },
            ContextSource::Remote {
                url: "https://example.com/f.tgz".into(),
                line: 12,
                checksum: None,
            },
            ContextSource::Remote {
                url: "git@github.com:x/y.git".into(),
                line: 12,
                checksum: None,
            },
            ContextSource::Local {
                path: "local.tgz".into(),
                line: 12
            },
            ContextSource::Local {
                path: "app/exec".into(),
                line: 13
            },
            ContextSource::Local {
                path: "run-1.sh".into(),
                line: 14
            },
        ]
    );
    let srcs = df
        .context_sources(1, &args(&[("APP", "web"), ("DIR", "other")]))
        .unwrap();
    assert_eq!(
        srcs[0],
        ContextSource::Local {
            path: "other/".into(),
            line: 9
        }
    );
    let vars = df.vars_for_stage(1, &args(&[("APP", "web")])).unwrap();
    assert_eq!(vars.get("DIR").map(String::as_str), Some("app/web"));
    assert_eq!(vars.get("ROOT").map(String::as_str), Some("app"));
    assert_eq!(vars.get("VER").map(String::as_str), Some("1"));
    assert_eq!(df.stage_arg_names(1), ["APP", "DIR", "VER"]);
    assert!(df.stage_arg_names(0).is_empty());
    assert!(df.stage_arg_names(42).is_empty());
    assert!(df.context_sources(42, &no_args()).unwrap().is_empty());
}

#[test]
fn global_args_are_not_in_scope_inside_a_stage_unless_redeclared() {
    let df = ok("ARG DIR=app\nFROM a\nCOPY $DIR/x /x\n");
    assert_eq!(
        local_paths(&df.context_sources(0, &no_args()).unwrap()),
        local(&["/x"])
    );
}

#[test]
fn env_wins_over_arg() {
    let df = ok("FROM a\nENV D=envval\nARG D=argval\nCOPY $D /x\n");
    assert_eq!(
        local_paths(&df.context_sources(0, &args(&[("D", "cli")])).unwrap()),
        local(&["envval"])
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
fn malformed_inputs_report_their_line() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "FROM a\nRUN <<EOF\necho hi\n",
            2,
            "unterminated heredoc `EOF`",
        ),
        (
            "FROM a\nCOPY <<-END /x\n\tbody\n",
            2,
            "unterminated heredoc",
        ),
        ("FROM\n", 1, "FROM requires"),
        ("ARG X=1\n\nFROM a b\n", 3, "one or three"),
        ("FROM a AS\n", 1, "one or three"),
        ("FROM a AS 1abc\n", 1, "invalid stage name"),
        ("# c\nRUN echo hi\nFROM a\n", 2, "before the first FROM"),
        ("ARG A\nENV B=1\nFROM a\n", 2, "before the first FROM"),
        ("FROM a\nCOPY --=x a b\n", 2, "malformed flag"),
        ("FROM a\nCOPY --from a b\n", 2, "needs a value"),
        ("FROM a\nCOPY --fr$om=x a b\n", 2, "malformed flag"),
        ("FROM a\nCOPY --from=\"x a b\n", 2, "unterminated quote"),
        ("FROM a\nRUN --mount= true\n", 2, "empty value"),
        (
            "FROM a AS x\nRUN true\nFROM b AS X\n",
            3,
            "duplicate stage name `x`: already used by the stage on line 1",
        ),
        ("FROM a\nCOPY onlyone\n", 2, "at least two arguments"),
        ("FROM a\nRUN\n", 2, "RUN requires a command"),
        ("FROM a\nENV\n", 2, "ENV requires at least one argument"),
        ("FROM a\nENV a=1 b\n", 2, "not of the form name=value"),
        ("FROM a\nENV lonely\n", 2, "has no value"),
        ("FROM a\nARG =x\n", 2, "ARG names can not be blank"),
        ("FROM a\nCMD [1, 2]\n", 2, "every element must be a string"),
        ("FROM a\nSHELL /bin/sh -c\n", 2, "JSON form"),
        ("FROM a\nFORM b\n", 2, "unknown instruction `FORM`"),
        ("FROM a\nRUN a\n  && b\n", 3, "unknown instruction `&&`"),
        ("# escape=x\nFROM a\n", 1, "invalid escape token"),
        ("# escape=`\n# escape=\\\nFROM a\n", 2, "only one `escape`"),
        ("", 1, "no FROM"),
        ("# only a comment\n\n", 2, "no FROM"),
    ];
    for (src, line, needle) in cases {
        match parse(src) {
            Ok(_) => panic!("expected an error for {src:?}"),
            Err(e) => {
                assert_eq!(e.line, *line, "{src:?}: {e}");
                assert!(e.message.contains(needle), "{src:?}: {e}");
            }
        }
    }
}

#[test]
fn bad_json_is_shell_form_like_docker() {
    let df = ok("FROM a\nRUN [\"echo\", 'single']\n");
    assert_eq!(
        df.stages[0].instructions[0].args,
        Args::Shell("[\"echo\", 'single']".into())
    );
}

#[test]
fn graph_errors_report_their_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("FROM a\nFROM b\nCOPY --from=5 /x /x\n", 3, "out of range"),
        ("FROM a\nCOPY --from=0 /x /x\n", 2, "out of range"),
        ("FROM a\nFROM b\nCOPY --from=-1 /x /x\n", 3, "out of range"),
        (
            "FROM a AS one\nCOPY --from=two /x /x\nFROM b AS two\n",
            2,
            "not defined before this one",
        ),
        (
            "FROM a AS self\nCOPY --from=self /x /x\n",
            2,
            "not defined before",
        ),
        ("FROM a\nRUN --mount=from=3 true\n", 2, "out of range"),
        ("FROM ${X\n", 1, "missing closing"),
    ];
    for (src, line, needle) in cases {
        let df = ok(src);
        match df.graph(&no_args()) {
            Ok(g) => panic!("expected a graph error for {src:?}, got {g:?}"),
            Err(e) => {
                assert_eq!(e.line, *line, "{src:?}: {e}");
                assert!(e.message.contains(needle), "{src:?}: {e}");
            }
        }
    }
}

#[test]
fn from_unknown_stage_name_is_an_image() {
    let df = ok("FROM later AS first\nFROM alpine AS later\n");
    let g = df.graph(&no_args()).unwrap();
    assert_eq!(g.bases[0], BaseRef::Image("later".into()));
    assert!(g.deps[0].is_empty());
}

#[test]
fn big_and_hostile_inputs_never_panic() {
    let long = "x".repeat(1 << 20);
    let df = ok(&format!("FROM a\nRUN echo {long}\n"));
    assert_eq!(shell(&df.stages[0].instructions[0]).len(), (1 << 20) + 5);
    let df = ok(&format!("FROM a\nCOPY {long} /x\n"));
    assert_eq!(df.context_sources(0, &no_args()).unwrap().len(), 1);
    let nested = "${A:-".repeat(100_000);
    let df = ok(&format!("FROM {nested}\n"));
    assert!(df.graph(&no_args()).is_err());
    let hostile = [
        "\u{feff}",
        "\\",
        "FROM a\n\\\n",
        "FROM a\nRUN <<\n",
        "FROM a\nRUN <<-\n",
        "FROM a\nCOPY --from=99999999999999999999999 a b\n",
        "FROM a\nRUN --mount=\"\" x\n",
        "FROM a\nRUN --mount=from=\"\",x=\"\" y\n",
        "FROM \u{e9}\u{1f600} AS \u{e9}\n",
        "FROM a\nCOPY \u{1f600}\u{1f600} \u{e9}\n",
        "\r\n\r\nFROM a\r\nRUN x \\\r\n  y\r\n",
        "FROM a\nRUN --\n",
        "FROM a\nRUN -- x\n",
        "FROM a\nCOPY --from=' a b\n",
        "ARG ${\nFROM $X\n",
        "FROM a\nENV x=\"unterminated\nCOPY $x /y\n",
    ];
    for src in hostile {
        if let Ok(df) = parse(src) {
            let _ = df.graph(&no_args());
            for i in 0..df.stages.len() {
                let _ = df.context_sources(i, &no_args());
                let _ = df.vars_for_stage(i, &no_args());
            }
            let _ = parse(&df.pruned(&(0..df.stages.len()).collect::<Vec<_>>()));
        }
    }
    // Many stages stay fast (no quadratic lookups).
    const N: usize = 5_000;
    let mut many = String::from("FROM scratch AS s0\n");
    for i in 1..N {
        many.push_str(&format!(
            "FROM s{} AS s{i}\nCOPY --from=0 /a /a\nENV V{i}=x\n",
            i - 1
        ));
    }
    let df = ok(&many);
    let g = df.graph(&no_args()).unwrap();
    assert_eq!(g.needed(N - 1).len(), N);
    assert_eq!(df.vars_for_stage(N - 1, &no_args()).unwrap().len(), N - 1);
    assert_eq!(parse(&df.pruned(&g.needed(N - 1))).unwrap().stages.len(), N);
    let comments = format!("FROM a\nRUN x \\\n{}  y\n", "# c\n\n".repeat(200_000));
    assert_eq!(shell(&ok(&comments).stages[0].instructions[0]), "x   y");

    // Every prefix of a rich Dockerfile either parses or errors.
    let rich = include_str!("testdata/rich.Dockerfile");
    let mut cut = 0;
    while cut <= rich.len() {
        if rich.is_char_boundary(cut)
            && let Ok(df) = parse(&rich[..cut])
        {
            let _ = df.graph(&no_args());
            let _ = df.pruned(&[0, 1, 2]);
        }
        cut += 7;
    }
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

#[test]
fn random_token_soup_never_panics() {
    const HEADS: &[&str] = &[
        "FROM ",
        "from ",
        "RUN ",
        "COPY ",
        "ADD ",
        "ARG ",
        "ENV ",
        "# c",
        "",
        "  ",
        "CMD ",
        "EOF",
        "# escape=`",
        "run --mount=",
    ];
    const TOKENS: &[&str] = &[
        "a",
        "AS s",
        "as t",
        "0",
        "1",
        " ",
        "\\",
        "`",
        "\"",
        "'",
        "#",
        "x=1",
        "$",
        "${A}",
        "${A:-b}",
        "${",
        "}",
        "--from=",
        "--from=0 ",
        "--from=s ",
        "--mount=from=1",
        "from=s,",
        ",",
        "<<EOF",
        "<<-EOF",
        "<<'Q'",
        "\t",
        "[",
        "]",
        "\"a\",",
        "\r",
        "é",
        "-- ",
        " /d",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n as u64) as usize
    };
    let mut parsed = 0;
    for _ in 0..4_000 {
        let mut src = String::from("FROM a AS s\n");
        for _ in 0..next(10) {
            src.push_str(HEADS[next(HEADS.len())]);
            for _ in 0..next(5) {
                src.push_str(TOKENS[next(TOKENS.len())]);
            }
            src.push('\n');
        }
        if let Ok(df) = parse(&src) {
            parsed += 1;
            let all: Vec<usize> = (0..df.stages.len()).collect();
            for &i in &all {
                let _ = df.context_sources(i, &no_args());
            }
            // Keeping every stage must give an equivalent Dockerfile.
            let re = parse(&df.pruned(&all));
            assert!(re.is_ok(), "{src:?} -> {:?}", df.pruned(&all));
            if let (Ok(g), Ok(re)) = (df.graph(&no_args()), re) {
                assert_eq!(re.graph(&no_args()).ok(), Some(g), "{src:?}");
            }
        }
    }
    assert!(parsed > 300, "only {parsed} inputs parsed");
}

#[test]
fn rewritten_images_keep_flags_names_and_stages() {
    let src = "\
# syntax=docker/dockerfile:1
ARG BASE=node:20
FROM --platform=linux/amd64 ${BASE} AS base
RUN echo base
FROM base AS app
COPY --from=busybox:1.36 /bin/busybox /bin/busybox
RUN --mount=type=bind,from=alpine:3.20,target=/a ls /a
COPY --from=base /x /x
FROM scratch AS other
";
    let df = crate::dockerfile::parse(src).expect("parses");
    let mirror = |img: &str| Some(format!("mirror.example/hub/{img}"));
    let empty = BTreeMap::new();
    let with =
        |args: &BTreeMap<String, String>, keep: &[usize], f: &dyn Fn(&str) -> Option<String>| {
            let rewrites = crate::dockerfile::Rewrites {
                prelude: Vec::new(),
                build_args: Some(args),
                image: Some(f),
            };
            df.pruned_with(keep, &rewrites)
        };
    let out = with(&empty, &[0, 1], &mirror);
    assert!(
        out.contains("FROM --platform=linux/amd64 mirror.example/hub/node:20 AS base\n"),
        "{out}"
    );
    assert!(
        out.contains("COPY --from=mirror.example/hub/busybox:1.36 /bin/busybox"),
        "{out}"
    );
    assert!(
        out.contains("from=mirror.example/hub/alpine:3.20,target=/a"),
        "{out}"
    );
    assert!(
        out.contains("COPY --from=base /x /x"),
        "a stage reference stays: {out}"
    );
    assert!(out.contains("FROM base AS app"), "{out}");
    assert!(!out.contains("other"), "{out}");
    // Still a valid Dockerfile with the same stages.
    let again = crate::dockerfile::parse(&out).expect("the rewritten file parses");
    assert_eq!(again.stages.len(), 2);
    // A build arg picks the base; nothing to rewrite leaves the text as pruned.
    let args = BTreeMap::from([("BASE".to_string(), "python:3.12".to_string())]);
    let out = with(&args, &[0], &mirror);
    assert!(
        out.contains("mirror.example/hub/python:3.12 AS base"),
        "{out}"
    );
    let none = with(&empty, &[0, 1], &|_| None);
    assert_eq!(none, df.pruned(&[0, 1]));
}

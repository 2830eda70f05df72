//! The stage graph, pruning, rewritten images and context sources.

use super::*;

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

use super::*;

fn di(text: &str) -> DockerIgnore {
    DockerIgnore::parse(text).expect("valid .dockerignore")
}

#[test]
fn docker_doc_examples() {
    let d = di("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
    assert!(d.excluded("somedir/temporary.txt"));
    assert!(d.excluded("somedir/temp"));
    assert!(!d.excluded("temporary.txt"));
    assert!(d.excluded("somedir/subdir/temporary.txt"));
    assert!(!d.excluded("a/b/c/temporary.txt"));
    assert!(d.excluded("tempa"));
    assert!(d.excluded("tempb"));
    assert!(!d.excluded("tempab"));
    assert!(!d.excluded("temp"));
    assert!(!d.excluded("# comment"));
}

#[test]
fn double_star_matches_any_depth() {
    let d = di("**/*.go");
    assert!(d.excluded("main.go"));
    assert!(d.excluded("a/b/c/main.go"));
    assert!(!d.excluded("a/b/main.rs"));
    let d = di("a/**/z");
    assert!(d.excluded("a/z"));
    assert!(d.excluded("a/b/c/z"));
    assert!(!d.excluded("b/z"));
    let d = di("vendor/**");
    assert!(d.excluded("vendor/x"));
    assert!(d.excluded("vendor/x/y"));
    // Docker's suffix shortcut: `**foo` is a plain suffix test.
    let d = di("**foo");
    assert!(d.excluded("barfoo"));
    assert!(d.excluded("x/barfoo"));
    let d = di("**");
    assert!(d.excluded("anything/at/all"));
}

#[test]
fn exceptions_last_match_wins() {
    let d = di("*.md\n!README*.md\nREADME-secret.md\n");
    assert!(d.excluded("CHANGES.md"));
    assert!(!d.excluded("README.md"));
    assert!(!d.excluded("README-public.md"));
    assert!(d.excluded("README-secret.md"));
    let d = di("*.md\nREADME-secret.md\n!README*.md\n");
    assert!(!d.excluded("README-secret.md"));
}

#[test]
fn parent_directory_match_excludes_children() {
    let d = di("build");
    assert!(d.excluded("build"));
    assert!(d.excluded("build/out/a.o"));
    assert!(!d.excluded("src/build.rs"));
    let d = di("*\n!app\napp/**/*.md");
    assert!(d.excluded("Cargo.toml"));
    assert!(!d.excluded("app"));
    assert!(!d.excluded("app/api/index.html"));
    assert!(d.excluded("app/api/README.md"));
    // `**` also matches zero directories.
    assert!(d.excluded("app/README.md"));
}

#[test]
fn reinclude_inside_excluded_dir_and_descend_rule() {
    let d = di("docs\n!docs/keep.txt");
    assert!(d.excluded("docs"));
    assert!(!d.excluded("docs/keep.txt"));
    assert!(d.excluded("docs/other.txt"));
    assert!(d.descend("docs"));
    assert!(d.in_context("docs/keep.txt"));
    assert!(!d.in_context("docs/other.txt"));
    // Docker only descends when an exception literally starts with `dir/`.
    let d = di("*\n!**/*.go");
    assert!(!d.excluded("src/x.go"));
    assert!(!d.descend("src"));
    assert!(!d.in_context("src/x.go"));
    assert!(d.in_context("x.go"));
}

#[test]
fn cleaning_leading_slash_and_dot() {
    let d = di("/secret\n./tmp/\n  spaced  \n\t# not a comment\n");
    assert!(d.excluded("secret"));
    assert!(d.excluded("tmp/x"));
    assert!(d.excluded("spaced"));
    assert!(d.excluded("# not a comment"));
    assert!(!d.excluded("./"));
    assert!(d.excluded("/secret/x"));
    let d = di("! /keep\n*\n!/keep\n");
    assert!(!d.excluded("keep"));
    let d = di("a/../b\n");
    assert!(d.excluded("b"));
    assert!(!d.excluded("a"));
}

#[test]
fn classes_escapes_and_question_mark() {
    let d = di("file[0-9].txt\n[^a]x\nlit\\*eral\nq?");
    assert!(d.excluded("file3.txt"));
    assert!(!d.excluded("filex.txt"));
    assert!(d.excluded("bx"));
    assert!(!d.excluded("ax"));
    assert!(d.excluded("lit*eral"));
    assert!(!d.excluded("litXeral"));
    assert!(d.excluded("qa"));
    assert!(!d.excluded("q/"));
    let d = di("a.b\n(x)+\n");
    assert!(d.excluded("a.b"));
    assert!(!d.excluded("aXb"));
    assert!(d.excluded("(x)+"));
    let d = di("*.tx?");
    assert!(d.excluded("a.txt"));
    assert!(!d.excluded("dir/a.txt"));
}

#[test]
fn star_does_not_cross_slash() {
    let d = di("*.txt");
    assert!(d.excluded("a.txt"));
    assert!(!d.excluded("dir/a.txt"));
}

#[test]
fn crlf_and_bom() {
    let d = di("\u{feff}target\r\n!target/keep\r\n");
    assert!(d.excluded("target/x"));
    assert!(!d.excluded("target/keep"));
}

#[test]
fn malformed_patterns_are_errors_with_line() {
    for (text, line) in [
        ("ok\n!", 2),
        ("[abc", 1),
        ("a\nb\\", 2),
        ("x[]y", 1),
        ("[z-a]", 1),
    ] {
        match DockerIgnore::parse(text) {
            Err(ContextError::DockerignorePattern { line: l, .. }) => {
                assert_eq!(l, line, "{text:?}")
            }
            other => panic!("{text:?}: expected pattern error, got {other:?}"),
        }
    }
}

#[test]
fn never_panics_on_odd_input() {
    let inputs = [
        "",
        "\n\n",
        "!!",
        "[",
        "]",
        "\\",
        "*[",
        "**/",
        "/",
        "..",
        "../x",
        "[^]",
        "[\\",
        "[a-",
        "é*ü?[é-ü]",
        "^a",
        "a^b",
        "\u{0}",
        "**/**/**",
        "*?*?*?*?*?*?*?*?*?*?*?*?x",
    ];
    for text in inputs {
        if let Ok(d) = DockerIgnore::parse(text) {
            for p in [
                "",
                ".",
                "/",
                "a",
                "a/b/c",
                "é/ü",
                "x/../y",
                "\u{0}",
                &"a".repeat(300),
            ] {
                let _ = d.excluded(p);
                let _ = d.in_context(p);
            }
        }
    }
    let d = di("a^b\n^c");
    assert!(d.excluded("a^b"), "exact patterns compare literally");
    assert!(d.excluded("^c") && !d.excluded("c"));
    let d = di("^c*\na^b*");
    assert!(d.excluded("cat"), "in a regexp `^` is an anchor");
    assert!(!d.excluded("^cat"));
    assert!(!d.excluded("a^bc"), "a mid-pattern anchor never matches");
}

#[test]
fn with_exceptions_keeps_build_files() {
    let d = di("*\n");
    let k = d
        .with_exceptions(&["Dockerfile", ".dockerignore"])
        .expect("valid");
    assert!(!k.excluded("Dockerfile"));
    assert!(!k.excluded(".dockerignore"));
    assert!(k.excluded("other"));
    let d = di("docker\n");
    let k = d.with_exceptions(&["docker/Dockerfile"]).expect("valid");
    assert!(k.in_context("docker/Dockerfile"));
    assert!(!k.in_context("docker/other"));
}

#[test]
fn go_filepath_match() {
    let ok = |p: &str, n: &str| go_match(p, n).expect("valid pattern");
    assert!(ok("*.txt", "a.txt"));
    assert!(!ok("*.txt", "d/a.txt"));
    assert!(ok("d/*.txt", "d/a.txt"));
    assert!(ok("a?c", "abc"));
    assert!(!ok("a?c", "a/c"));
    assert!(ok("[a-c]x", "bx"));
    assert!(ok("[^a-c]x", "dx"));
    assert!(ok("\\*", "*"));
    assert!(!ok("\\*", "x"));
    assert!(ok("a*b*c", "axxbyyc"));
    assert!(!ok("a*b*c", "axxbyy"));
    assert!(ok("*", "anything"));
    assert!(go_match("[", "x").is_err());
    assert!(go_match("a[", "b").is_err());
    assert!(go_match("x\\", "x").is_err());
}

#[test]
fn with_excluded_wins_over_exceptions_and_is_literal() {
    let ig = DockerIgnore::parse("*\n!out\n!a*b\n").expect("parse");
    assert!(!ig.excluded("out/report.json"));
    let ig = ig.with_excluded(&["out", "a*b"]).expect("exclude");
    assert!(ig.excluded("out"));
    assert!(ig.excluded("out/report.json"));
    assert!(ig.excluded("a*b"));
    let none = DockerIgnore::default()
        .with_excluded(&["a*b"])
        .expect("exclude");
    assert!(none.excluded("a*b"));
    assert!(!none.excluded("axb"), "the star is literal");
    assert!(!none.excluded("outside"));
}

//! Malformed, hostile and random input: errors name their line, nothing
//! panics.

use super::*;

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
    let rich = include_str!("../testdata/rich.Dockerfile");
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

/// Line starts for the token soup.
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
/// Tokens for the token soup.
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
/// A xorshift generator: the same soup on every run.
struct XorShift(u64);

impl XorShift {
    /// A number below `n`.
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// One random Dockerfile: a first stage, then lines of a head and tokens.
fn soup(rng: &mut XorShift) -> String {
    let mut src = String::from("FROM a AS s\n");
    for _ in 0..rng.below(10) {
        src.push_str(HEADS[rng.below(HEADS.len())]);
        for _ in 0..rng.below(5) {
            src.push_str(TOKENS[rng.below(TOKENS.len())]);
        }
        src.push('\n');
    }
    src
}

/// Checks one soup that parsed: context sources do not panic, and keeping
/// every stage reparses to the same graph.
fn check_parsed_soup(src: &str, df: &Dockerfile) {
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

#[test]
fn random_token_soup_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for _ in 0..4_000 {
        let src = soup(&mut rng);
        if let Ok(df) = parse(&src) {
            parsed += 1;
            check_parsed_soup(&src, &df);
        }
    }
    assert!(parsed > 300, "only {parsed} inputs parsed");
}

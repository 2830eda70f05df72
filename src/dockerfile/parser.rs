//! Turns Dockerfile text into instructions and stages: keywords, flags,
//! exec/shell arguments, heredoc bodies, `FROM ... AS name`, global `ARG`s,
//! with the syntax checks Docker makes before a build starts.

use super::lexer::{self, PhysLine, Segment};
use super::{
    ArgDecl, Args, Directive, Dockerfile, DockerfileError, Flag, Heredoc, Instruction, Stage,
};

/// Instructions Docker knows.
const KEYWORDS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Flags that are meaningless without a value.
const VALUE_FLAGS: &[&str] = &[
    "from",
    "platform",
    "mount",
    "chown",
    "chmod",
    "network",
    "security",
    "checksum",
    "exclude",
    "interval",
    "timeout",
    "start-period",
    "start-interval",
    "retries",
];

/// Parses a Dockerfile. Any input gives `Ok` or an error naming the line.
pub(crate) fn parse(src: &str) -> Result<Dockerfile, DockerfileError> {
    let lines = lexer::split_lines(src);
    let (raw_directives, escape) = lexer::read_directives(src, &lines)?;
    let directives = raw_directives
        .into_iter()
        .filter_map(|d| {
            let l = lines.get(d.line_idx)?;
            Some(Directive {
                name: d.name,
                value: d.value,
                line: d.line_idx + 1,
                raw: src[l.start..l.end].to_string(),
            })
        })
        .collect();

    let mut global_args = Vec::new();
    let mut global_arg_instructions = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut stage_names = std::collections::BTreeMap::new();
    let mut idx = 0;
    while idx < lines.len() {
        let Some((ins, next)) = read_instruction(src, &lines, idx, escape)? else {
            break;
        };
        idx = next;
        validate(&ins, escape)?;
        if ins.keyword == "FROM" {
            let stage = stage_from(ins, stages.len())?;
            if let Some(name) = &stage.name {
                if let Some(prev) = stage_names.get(name).and_then(|&j: &usize| stages.get(j)) {
                    return Err(DockerfileError::new(
                        stage.line,
                        format!(
                            "duplicate stage name `{name}`: already used by the stage on line {}; rename one of them",
                            prev.line
                        ),
                    ));
                }
                stage_names.insert(name.clone(), stage.index);
            }
            stages.push(stage);
        } else if let Some(stage) = stages.last_mut() {
            stage.end_line = ins.end_line;
            stage.instructions.push(ins);
        } else if ins.keyword == "ARG" {
            global_args.extend(arg_decls(&ins, escape)?);
            global_arg_instructions.push(ins);
        } else {
            return Err(DockerfileError::new(
                ins.line,
                format!(
                    "`{}` comes before the first FROM; only ARG may appear before FROM",
                    ins.keyword
                ),
            ));
        }
    }
    if stages.is_empty() {
        return Err(DockerfileError::new(
            lines.len().max(1),
            "the Dockerfile has no FROM instruction, so it defines no stage to build",
        ));
    }
    Ok(Dockerfile {
        escape,
        global_args,
        stages,
        directives,
        source: src.to_string(),
        global_arg_instructions,
        stage_names,
    })
}

/// Reads the next instruction starting at or after line `idx`; returns it and
/// the index of the first line after it, or `None` at end of input.
fn read_instruction(
    src: &str,
    lines: &[PhysLine],
    idx: usize,
    escape: char,
) -> Result<Option<(Instruction, usize)>, DockerfileError> {
    let Some(first) = skip_blank_and_comments(src, lines, idx) else {
        return Ok(None);
    };
    let line_no = first + 1;
    let err = |msg: String| DockerfileError::new(line_no, msg);

    let Logical {
        text: logical,
        segments,
        mut last,
    } = join_continuations(src, lines, first, escape);
    let (keyword, kw_end) = read_keyword(&logical, escape).map_err(&err)?;
    let (flags, args_start) = parse_flags(&logical, kw_end).map_err(&err)?;
    let args_text = logical[args_start..].trim();

    // Heredocs: bodies follow the instruction line.
    let mut heredocs = Vec::new();
    if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") {
        for word in lexer::split_words(args_text, escape) {
            if let Some(marker) = lexer::heredoc_marker(word, escape) {
                heredocs.push(read_heredoc(src, lines, &mut last, marker).map_err(&err)?);
            }
        }
    }

    let args = parse_args(&keyword, args_text).map_err(&err)?;
    check_arity(&keyword, &args, heredocs.is_empty()).map_err(&err)?;

    let start = lines[first].start;
    let end = lines[last].end.max(start);
    let ins = Instruction {
        keyword,
        line: line_no,
        end_line: last + 1,
        raw: src[start..end].to_string(),
        flags,
        args,
        heredocs,
        logical,
        segments,
        span: start..end,
    };
    Ok(Some((ins, last + 1)))
}

/// The index of the first line at or after `idx` that is neither blank nor a
/// comment (directives are comments too), or `None` at end of input.
fn skip_blank_and_comments(src: &str, lines: &[PhysLine], mut idx: usize) -> Option<usize> {
    loop {
        let l = lines.get(idx)?;
        let trimmed = src[l.start..l.end].trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            idx += 1;
            continue;
        }
        return Some(idx);
    }
}

/// One instruction's text with its continuation lines joined.
struct Logical {
    /// The joined text, without escape characters before line ends.
    text: String,
    /// Where each piece of `text` comes from in the source.
    segments: Vec<Segment>,
    /// The index of the last physical line joined.
    last: usize,
}

/// Joins the instruction starting at line `first` with its continuation
/// lines, skipping comments and blank lines between them.
fn join_continuations(src: &str, lines: &[PhysLine], first: usize, escape: char) -> Logical {
    let mut logical = String::new();
    let mut segments = Vec::new();
    let l = lines[first];
    let text = &src[l.start..l.end];
    let trimmed = text.trim_start();
    let lead = text.len() - trimmed.len();
    let (piece, mut cont) = match lexer::strip_continuation(trimmed, escape) {
        Some(p) => (p, true),
        None => (trimmed, false),
    };
    segments.push(Segment {
        joined: 0,
        src: l.start + lead,
        len: piece.len(),
    });
    logical.push_str(piece);
    let mut last = first;
    let mut j = first + 1;
    while cont && j < lines.len() {
        let l = lines[j];
        j += 1;
        let text = &src[l.start..l.end];
        if lexer::is_comment(text) || text.trim_start().is_empty() {
            continue;
        }
        last = j - 1;
        let (piece, c) = match lexer::strip_continuation(text, escape) {
            Some(p) => (p, true),
            None => (text, false),
        };
        cont = c;
        segments.push(Segment {
            joined: logical.len(),
            src: l.start,
            len: piece.len(),
        });
        logical.push_str(piece);
    }
    Logical {
        text: logical,
        segments,
        last,
    }
}

/// The upper-cased keyword of a logical line and the offset where it ends;
/// an error for a word that is no instruction Docker knows.
fn read_keyword(logical: &str, escape: char) -> Result<(String, usize), String> {
    let kw_end = logical.find(char::is_whitespace).unwrap_or(logical.len());
    let keyword = logical[..kw_end].to_ascii_uppercase();
    if !KEYWORDS.contains(&keyword.as_str()) {
        let shown: String = logical[..kw_end].chars().take(40).collect();
        return Err(format!(
            "unknown instruction `{shown}`; if it belongs to the previous instruction, end that line with `{escape}`"
        ));
    }
    Ok((keyword, kw_end))
}

/// Reads the body of one heredoc from the lines after `*last`, up to its
/// terminator line; advances `*last` past what it read.
fn read_heredoc(
    src: &str,
    lines: &[PhysLine],
    last: &mut usize,
    marker: lexer::HeredocMarker,
) -> Result<Heredoc, String> {
    let mut body = String::new();
    let mut terminated = false;
    while let Some(l) = lines.get(*last + 1) {
        *last += 1;
        let text = &src[l.start..l.end];
        let candidate = if marker.chomp {
            text.trim_start_matches('\t')
        } else {
            text
        };
        if candidate == marker.name {
            terminated = true;
            break;
        }
        body.push_str(candidate);
        body.push('\n');
    }
    if !terminated {
        return Err(format!(
            "unterminated heredoc `{}`: add a line containing only `{}` after its body",
            marker.name, marker.name
        ));
    }
    Ok(Heredoc {
        name: marker.name,
        body,
        expand: marker.expand,
        chomp: marker.chomp,
    })
}

/// Parses leading `--name[=value]` words from `line[pos..]`; returns the flags
/// and the offset where the arguments start.
fn parse_flags(line: &str, mut pos: usize) -> Result<(Vec<Flag>, usize), String> {
    let mut flags = Vec::new();
    loop {
        let rest = &line[pos..];
        let skipped = rest.len() - rest.trim_start().len();
        pos += skipped;
        if !line[pos..].starts_with("--") {
            return Ok((flags, pos));
        }
        let start = pos;
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut end = line.len();
        for (k, ch) in line[pos..].char_indices() {
            match quote {
                Some(q) if ch == q => quote = None,
                Some(_) => word.push(ch),
                None if ch == '"' || ch == '\'' => quote = Some(ch),
                None if ch.is_whitespace() => {
                    end = pos + k;
                    break;
                }
                None => word.push(ch),
            }
        }
        let raw = &line[start..end];
        if quote.is_some() {
            return Err(format!("unterminated quote in flag `{}`", shorten(raw)));
        }
        pos = end;
        if word == "--" {
            return Ok((flags, pos));
        }
        let body = word.get(2..).unwrap_or_default();
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(format!(
                "malformed flag `{}`: flags are written `--name` or `--name=value`",
                shorten(raw)
            ));
        }
        if VALUE_FLAGS.contains(&name) && value.is_none() {
            return Err(format!(
                "flag `--{name}` needs a value: write `--{name}=<value>`"
            ));
        }
        if matches!(name, "from" | "mount") && value.as_deref() == Some("") {
            return Err(format!(
                "flag `--{name}=` has an empty value: give a stage name, index or image"
            ));
        }
        flags.push(Flag {
            name: name.to_string(),
            value,
            raw: start..end,
        });
    }
}

fn shorten(s: &str) -> String {
    let mut out: String = s.chars().take(60).collect();
    if out.len() < s.len() {
        out.push('…');
    }
    out
}

/// Exec form when the arguments are a JSON array of strings (for the
/// instructions that accept it), shell form otherwise, as Docker does.
fn parse_args(keyword: &str, text: &str) -> Result<Args, String> {
    let json_capable = matches!(
        keyword,
        "RUN" | "CMD" | "ENTRYPOINT" | "COPY" | "ADD" | "VOLUME" | "SHELL"
    );
    if json_capable
        && text.starts_with('[')
        && let Ok(serde_json::Value::Array(items)) = serde_json::from_str(text)
    {
        let strings: Option<Vec<String>> = items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Some(s),
                _ => None,
            })
            .collect();
        return strings.map(Args::Exec).ok_or_else(|| {
            format!("{keyword}: when using JSON array syntax, every element must be a string")
        });
    }
    if keyword == "SHELL" {
        return Err(
            "SHELL requires its arguments in JSON form, e.g. SHELL [\"/bin/sh\", \"-c\"]".into(),
        );
    }
    Ok(Args::Shell(text.to_string()))
}

fn check_arity(keyword: &str, args: &Args, no_heredoc: bool) -> Result<(), String> {
    let count = match args {
        Args::Exec(v) => v.len(),
        Args::Shell(s) => s.split_whitespace().count(),
    };
    match keyword {
        "COPY" | "ADD" if count < 2 => Err(format!(
            "{keyword} requires at least two arguments (sources and a destination)"
        )),
        "CMD" | "ENTRYPOINT" => Ok(()),
        "RUN" if count == 0 && no_heredoc => Err("RUN requires a command".into()),
        _ if count == 0 && matches!(args, Args::Shell(_)) => {
            Err(format!("{keyword} requires at least one argument"))
        }
        _ => Ok(()),
    }
}

/// Builds a stage from its `FROM` instruction.
fn stage_from(ins: Instruction, index: usize) -> Result<Stage, DockerfileError> {
    let err = |msg: String| DockerfileError::new(ins.line, msg);
    let text = match &ins.args {
        Args::Shell(s) => s.as_str(),
        Args::Exec(_) => "",
    };
    let words: Vec<&str> = text.split_whitespace().collect();
    let (from, name) = match words.as_slice() {
        [base] => (*base, None),
        [base, kw, name] if kw.eq_ignore_ascii_case("as") => (*base, Some(name.to_lowercase())),
        _ => {
            return Err(err(
                "FROM requires either one or three arguments: `FROM <image> [AS <name>]`".into(),
            ));
        }
    };
    if let Some(name) = &name {
        let mut chars = name.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
        if !ok {
            return Err(err(format!(
                "invalid stage name `{name}`: it must start with a letter and hold only letters, digits, `-`, `_` and `.`"
            )));
        }
    }
    let platform = ins.flag("platform").map(str::to_string);
    Ok(Stage {
        index,
        name,
        from: from.to_string(),
        platform,
        line: ins.line,
        end_line: ins.end_line,
        instructions: Vec::new(),
        from_instruction: ins,
    })
}

/// The names (and raw defaults) an `ARG` instruction declares.
pub(crate) fn arg_decls(ins: &Instruction, escape: char) -> Result<Vec<ArgDecl>, DockerfileError> {
    let Args::Shell(text) = &ins.args else {
        return Ok(Vec::new());
    };
    let mut out = Vec::new();
    for word in lexer::split_words(text, escape) {
        let (name, default) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word, None),
        };
        if name.is_empty() {
            return Err(DockerfileError::new(
                ins.line,
                format!("ARG names can not be blank (in `{}`)", shorten(word)),
            ));
        }
        out.push(ArgDecl {
            name: name.to_string(),
            default,
            line: ins.line,
        });
    }
    Ok(out)
}

/// Syntax checks of `ARG` and `ENV` that Docker makes before building.
fn validate(ins: &Instruction, escape: char) -> Result<(), DockerfileError> {
    match ins.keyword.as_str() {
        "ARG" => arg_decls(ins, escape).map(|_| ()),
        "ENV" => {
            let Args::Shell(text) = &ins.args else {
                return Ok(());
            };
            let words = lexer::split_words(text, escape);
            let bad = match words.first() {
                Some(first) if !first.contains('=') => (words.len() < 2).then(|| {
                    format!(
                        "ENV `{}` has no value: write `ENV {}=<value>`",
                        shorten(first),
                        shorten(first)
                    )
                }),
                _ => words
                    .iter()
                    .find(|w| !w.contains('=') || w.starts_with('='))
                    .map(|w| {
                        format!(
                            "ENV syntax error: `{}` is not of the form name=value",
                            shorten(w)
                        )
                    }),
            };
            bad.map_or(Ok(()), |m| Err(DockerfileError::new(ins.line, m)))
        }
        _ => Ok(()),
    }
}

/// The `(name, raw value)` pairs an `ENV` instruction sets.
pub(crate) fn env_pairs(ins: &Instruction, escape: char) -> Vec<(String, String)> {
    let Args::Shell(text) = &ins.args else {
        return Vec::new();
    };
    let words = lexer::split_words(text, escape);
    match words.first() {
        Some(first) if !first.contains('=') => {
            // Legacy `ENV name value with spaces`.
            let value = text[first.len()..].trim().to_string();
            vec![(first.to_string(), value)]
        }
        _ => words
            .into_iter()
            .filter_map(|w| w.split_once('='))
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
    }
}

//! Low-level Dockerfile lexing: physical lines, parser directives, logical
//! lines (continuations joined, comment and empty lines inside them skipped, as
//! BuildKit does) with a map back to source offsets, quote-aware word splitting
//! and heredoc delimiter detection.

use super::DockerfileError;

/// One physical line: byte offsets of its content (without `\r\n`) in the source.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PhysLine {
    pub start: usize,
    pub end: usize,
}

/// Maps a piece of a logical line back to the source: `len` bytes at
/// `joined` in the logical line come from `src` in the source text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub joined: usize,
    pub src: usize,
    pub len: usize,
}

/// Splits `src` into lines on `\n`, dropping a trailing `\r` and a leading UTF-8 BOM.
pub(crate) fn split_lines(src: &str) -> Vec<PhysLine> {
    let mut out = Vec::new();
    let mut start = if src.starts_with('\u{feff}') { 3 } else { 0 };
    while start < src.len() {
        let (end_nl, next) = match src[start..].find('\n') {
            Some(rel) => (start + rel, start + rel + 1),
            None => (src.len(), src.len()),
        };
        let end = if src[start..end_nl].ends_with('\r') {
            end_nl - 1
        } else {
            end_nl
        };
        out.push(PhysLine { start, end });
        start = next;
    }
    out
}

/// A recognised parser directive.
pub(crate) struct RawDirective {
    pub name: String,
    pub value: String,
    pub line_idx: usize,
}

/// Reads the parser directives at the very top of the file. Processing stops at
/// the first line that is not a known directive (a comment, a blank line, an
/// instruction, or an unknown directive, which counts as a comment).
pub(crate) fn read_directives(
    src: &str,
    lines: &[PhysLine],
) -> Result<(Vec<RawDirective>, char), DockerfileError> {
    let mut out: Vec<RawDirective> = Vec::new();
    let mut escape = '\\';
    for (idx, l) in lines.iter().enumerate() {
        let Some((name, value)) = directive(&src[l.start..l.end]) else {
            break;
        };
        if !matches!(name.as_str(), "escape" | "syntax" | "check") {
            break;
        }
        if out.iter().any(|d| d.name == name) {
            return Err(DockerfileError::new(
                idx + 1,
                format!("only one `{name}` parser directive can be used; remove the duplicate"),
            ));
        }
        if name == "escape" {
            escape = match value.as_str() {
                "\\" => '\\',
                "`" => '`',
                other => {
                    return Err(DockerfileError::new(
                        idx + 1,
                        format!(
                            "invalid escape token `{other}`: the escape directive accepts only `\\` or `` ` ``"
                        ),
                    ));
                }
            };
        }
        out.push(RawDirective {
            name,
            value,
            line_idx: idx,
        });
    }
    Ok((out, escape))
}

/// Parses `# name = value` (name: a letter then letters/digits) into (lowercase name, value).
fn directive(text: &str) -> Option<(String, String)> {
    let rest = text.trim_start().strip_prefix('#')?;
    let rest = rest.trim_start_matches([' ', '\t']);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let (name, after) = rest.split_at(name_len);
    let after = after.trim_start_matches([' ', '\t']).strip_prefix('=')?;
    let value = after.trim_matches([' ', '\t']);
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}

/// If `line` ends with the escape character (optionally followed by spaces or
/// tabs), returns the line without it.
pub(crate) fn strip_continuation(line: &str, escape: char) -> Option<&str> {
    line.trim_end_matches([' ', '\t']).strip_suffix(escape)
}

/// True for a line that is a comment once leading whitespace is removed.
pub(crate) fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Splits `s` into words on unquoted whitespace, keeping quotes and escapes
/// in the words (BuildKit's `parseWords`). Never fails: an unterminated quote
/// runs to the end.
pub(crate) fn split_words(s: &str, escape: char) -> Vec<&str> {
    let mut words = Vec::new();
    let mut start: Option<usize> = None;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        if start.is_none() {
            if c.is_whitespace() {
                continue;
            }
            start = Some(i);
        }
        match quote {
            Some('\'') if c == '\'' => quote = None,
            Some('\'') => {}
            Some(q) => {
                if c == escape {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None => {
                if c == escape {
                    escaped = true;
                } else if c == '"' || c == '\'' {
                    quote = Some(c);
                } else if c.is_whitespace()
                    && let Some(st) = start.take()
                {
                    words.push(&s[st..i]);
                }
            }
        }
    }
    if let Some(st) = start {
        words.push(&s[st..]);
    }
    words
}

/// A heredoc delimiter word found on an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocMarker {
    pub name: String,
    pub expand: bool,
    pub chomp: bool,
}

/// Recognises a heredoc word: `[n]<<[-]WORD` where WORD has no `<`
/// (BuildKit's `^(\d*)<<(-?)([^<]*)$`). Quotes or escapes in WORD turn expansion off.
pub(crate) fn heredoc_marker(word: &str, escape: char) -> Option<HeredocMarker> {
    let rest = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let rest = rest.strip_prefix("<<")?;
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let mut name = String::with_capacity(rest.len());
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c == '"' || c == '\'' {
            continue;
        }
        if c == escape {
            if let Some(n) = chars.next() {
                name.push(n);
            }
            continue;
        }
        name.push(c);
    }
    if name.is_empty() {
        return None;
    }
    let expand = name == rest;
    Some(HeredocMarker {
        name,
        expand,
        chomp,
    })
}

/// Maps a byte range of a logical line to the source ranges it came from.
pub(crate) fn map_range(
    segments: &[Segment],
    range: std::ops::Range<usize>,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    for s in segments {
        let lo = range.start.max(s.joined);
        let hi = range.end.min(s.joined + s.len);
        if lo < hi {
            out.push(s.src + (lo - s.joined)..s.src + (hi - s.joined));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_handle_crlf_bom_and_missing_final_newline() {
        let src = "\u{feff}FROM a\r\nRUN b\n\nCMD c";
        let got: Vec<&str> = split_lines(src)
            .iter()
            .map(|l| &src[l.start..l.end])
            .collect();
        assert_eq!(got, ["FROM a", "RUN b", "", "CMD c"]);
    }

    #[test]
    fn directive_syntax() {
        assert_eq!(directive("# escape=`"), Some(("escape".into(), "`".into())));
        assert_eq!(
            directive("#Syntax = docker/dockerfile:1 "),
            Some(("syntax".into(), "docker/dockerfile:1".into()))
        );
        assert_eq!(directive("# just a comment"), None);
        assert_eq!(directive("# x="), None);
        assert_eq!(directive("FROM a"), None);
    }

    #[test]
    fn words_keep_quotes() {
        assert_eq!(
            split_words(r#"a="b c" 'd e' f\ g"#, '\\'),
            [r#"a="b c""#, "'d e'", r"f\ g"]
        );
        assert_eq!(split_words("  ", '\\'), Vec::<&str>::new());
        assert_eq!(split_words("\"unterminated x", '\\'), ["\"unterminated x"]);
    }

    #[test]
    fn heredoc_markers() {
        let m = |w| heredoc_marker(w, '\\');
        assert_eq!(
            m("<<EOF"),
            Some(HeredocMarker {
                name: "EOF".into(),
                expand: true,
                chomp: false
            })
        );
        assert_eq!(
            m("<<-\"END\""),
            Some(HeredocMarker {
                name: "END".into(),
                expand: false,
                chomp: true
            })
        );
        assert_eq!(m("<<'X'").map(|h| h.expand), Some(false));
        assert_eq!(m("2<<EOF").map(|h| h.name), Some("EOF".into()));
        assert_eq!(m("<<"), None);
        assert_eq!(m("<<<x"), None);
        assert_eq!(m("\"<<EOF\""), None);
        assert_eq!(m("cat<<EOF"), None);
    }
}

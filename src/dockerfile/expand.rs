//! Word processing as Docker does it for `FROM`, `ARG`, `ENV`, `COPY` and
//! `--from` values: quote removal, escapes, and variable substitution with
//! `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:+alt}`,
//! `${VAR+alt}`, `${VAR:?msg}` and `${VAR?msg}`, and the Dockerfile 1.7
//! string operations (BuildKit v0.13, Docker 26): `${VAR#pattern}`,
//! `${VAR##pattern}`, `${VAR%pattern}`, `${VAR%%pattern}`,
//! `${VAR/pattern/replacement}` and `${VAR//pattern/replacement}` (shell
//! patterns: see `pattern.rs`). Unset variables expand to "". Which engines
//! can run the string operations is `features.rs`'s business, not this file's.

use super::pattern::Pattern;

/// Deepest `${A:-${B:-...}}` nesting accepted, so hostile input cannot exhaust the stack.
const MAX_DEPTH: usize = 64;

/// Processes one word: removes quotes and escapes, substitutes variables
/// looked up with `lookup`. Errors are messages without a line number.
pub(crate) fn expand_word(
    word: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    let mut lx = Lexer {
        c: word.chars().collect(),
        p: 0,
        escape,
        lookup,
    };
    lx.word(&[], false, 0)
}

struct Lexer<'a> {
    c: Vec<char>,
    p: usize,
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Lexer<'_> {
    fn peek(&self) -> Option<char> {
        self.c.get(self.p).copied()
    }

    /// Reads until end of input, or until (not consuming) one of `stops`
    /// outside quotes. With `raw_escapes` an escaped character keeps its
    /// escape (a pattern needs to know that `\\*` is a literal `*`).
    fn word(&mut self, stops: &[char], raw_escapes: bool, depth: usize) -> Result<String, String> {
        if depth > MAX_DEPTH {
            return Err("variable substitution is nested too deeply".into());
        }
        let mut out = String::new();
        while let Some(ch) = self.peek() {
            if stops.contains(&ch) {
                return Ok(out);
            }
            self.p += 1;
            if ch == '\'' {
                self.single_quoted(&mut out)?;
            } else if ch == '"' {
                self.double_quoted(&mut out, depth)?;
            } else if ch == self.escape {
                if let Some(n) = self.peek() {
                    if raw_escapes {
                        out.push(ch);
                    }
                    out.push(n);
                    self.p += 1;
                }
            } else if ch == '$' {
                self.dollar(&mut out, depth)?;
            } else {
                out.push(ch);
            }
        }
        match stops.last() {
            Some(s) => Err(format!("missing closing `{s}` in variable substitution")),
            None => Ok(out),
        }
    }

    fn single_quoted(&mut self, out: &mut String) -> Result<(), String> {
        while let Some(ch) = self.peek() {
            self.p += 1;
            if ch == '\'' {
                return Ok(());
            }
            out.push(ch);
        }
        Err("unexpected end of text while looking for the matching `'`".into())
    }

    fn double_quoted(&mut self, out: &mut String, depth: usize) -> Result<(), String> {
        while let Some(ch) = self.peek() {
            self.p += 1;
            if ch == '"' {
                return Ok(());
            }
            if ch == self.escape {
                match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        out.push(n);
                        self.p += 1;
                    }
                    _ => out.push(ch),
                }
            } else if ch == '$' {
                self.dollar(out, depth)?;
            } else {
                out.push(ch);
            }
        }
        Err("unexpected end of text while looking for the matching `\"`".into())
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                name.push(c);
                self.p += 1;
            } else {
                break;
            }
        }
        name
    }

    /// Called after a `$` was consumed.
    fn dollar(&mut self, out: &mut String, depth: usize) -> Result<(), String> {
        match self.peek() {
            Some('{') => {
                self.p += 1;
                self.braced(out, depth)
            }
            Some(c) if c.is_ascii_digit() => {
                self.p += 1;
                out.push_str(&(self.lookup)(&c.to_string()).unwrap_or_default());
                Ok(())
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let name = self.name();
                out.push_str(&(self.lookup)(&name).unwrap_or_default());
                Ok(())
            }
            _ => {
                out.push('$');
                Ok(())
            }
        }
    }

    fn braced(&mut self, out: &mut String, depth: usize) -> Result<(), String> {
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: `${` must be followed by a variable name".into());
        }
        let value = (self.lookup)(&name);
        let (colon, op) = match self.peek() {
            Some('}') => {
                self.p += 1;
                out.push_str(&value.unwrap_or_default());
                return Ok(());
            }
            Some(':') => {
                self.p += 1;
                match self.peek() {
                    Some(op @ ('-' | '+' | '?')) => (true, op),
                    Some(other) => {
                        return Err(format!(
                            "unsupported modifier `:{other}` in `${{{name}...}}`; use {MODIFIERS}"
                        ));
                    }
                    None => return Err(format!("missing closing `}}` after `${{{name}`")),
                }
            }
            Some(op @ ('-' | '+' | '?')) => (false, op),
            Some(op @ ('#' | '%' | '/')) => {
                self.p += 1;
                let v = value.unwrap_or_default();
                out.push_str(&self.string_operation(op, &v, depth)?);
                return Ok(());
            }
            Some(other) => {
                return Err(format!(
                    "unsupported modifier `{other}` in `${{{name}...}}`; use {MODIFIERS}"
                ));
            }
            None => return Err(format!("missing closing `}}` after `${{{name}`")),
        };
        self.p += 1;
        let word = self.word(&['}'], false, depth + 1)?;
        self.p += 1; // the closing brace, guaranteed by word(&['}'])
        let set = match (&value, colon) {
            (Some(v), true) => !v.is_empty(),
            (Some(_), false) => true,
            (None, _) => false,
        };
        match op {
            '-' => out.push_str(&if set { value.unwrap_or_default() } else { word }),
            '+' => {
                if set {
                    out.push_str(&word);
                }
            }
            _ => {
                if !set {
                    return Err(if word.is_empty() {
                        format!("{name}: parameter not set or empty")
                    } else {
                        format!("{name}: {word}")
                    });
                }
                out.push_str(&value.unwrap_or_default());
            }
        }
        Ok(())
    }

    /// `#`, `##`, `%`, `%%`, `/` or `//` on `value`; `op` was consumed.
    fn string_operation(&mut self, op: char, value: &str, depth: usize) -> Result<String, String> {
        let doubled = self.peek() == Some(op);
        if doubled {
            self.p += 1;
        }
        let stops: &[char] = if op == '/' { &['/', '}'] } else { &['}'] };
        let pattern = Pattern::new(&self.word(stops, true, depth + 1)?, self.escape);
        let replacement = if op == '/' && self.peek() == Some('/') {
            self.p += 1;
            self.word(&['}'], false, depth + 1)?
        } else {
            String::new()
        };
        self.p += 1; // the closing brace, guaranteed by word()
        Ok(match op {
            '#' => pattern.trim_prefix(value, doubled),
            '%' => pattern.trim_suffix(value, doubled),
            _ => pattern.replace(value, &replacement, doubled),
        })
    }
}

/// The modifiers `${VAR...}` accepts, for error messages.
const MODIFIERS: &str = ":- - :+ + :? ? # ## % %% / or //";

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(word: &str) -> Result<String, String> {
        let lookup = |n: &str| match n {
            "SET" => Some("val".to_string()),
            "EMPTY" => Some(String::new()),
            _ => None,
        };
        expand_word(word, '\\', &lookup)
    }

    #[test]
    fn substitutions() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$SET", "val"),
            ("${SET}:1", "val:1"),
            ("$UNSET-x", "-x"),
            ("${UNSET:-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${UNSET-def}", "def"),
            ("${SET:-def}", "val"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET:+alt}", ""),
            ("${UNSET:-${SET}/x}", "val/x"),
            ("${UNSET:-a}b${SET}", "abval"),
            ("'$SET'", "$SET"),
            ("\"$SET x\"", "val x"),
            ("a\\$SET", "a$SET"),
            ("cost$", "cost$"),
            ("$ x", "$ x"),
            ("${SET:?must}", "val"),
        ];
        for (input, want) in cases {
            assert_eq!(ex(input).as_deref(), Ok(*want), "input {input}");
        }
    }

    #[test]
    fn errors() {
        for bad in [
            "${SET",
            "${UNSET:-x",
            "${}",
            "${SET:3}",
            "${SET/x",
            "'open",
            "\"open",
            "${UNSET:?}",
            "${UNSET?no base}",
        ] {
            assert!(ex(bad).is_err(), "{bad} should fail");
        }
        assert_eq!(ex("${UNSET?no base}"), Err("UNSET: no base".into()));
    }

    /// Issue 14, real-world item 2: valid Dockerfile 1.7 expansions (Hugo's
    /// `ARG DART_ARCH=${TARGETARCH/amd64/x64}`, `ARG X=${P#linux/}`).
    #[test]
    fn dockerfile_1_7_string_operations() {
        let lookup = |n: &str| match n {
            "P" => Some("linux/amd64".to_string()),
            "TARGETARCH" => Some("amd64".to_string()),
            "V" => Some("v1.2.3-rc1".to_string()),
            _ => None,
        };
        let ex = |w: &str| expand_word(w, '\\', &lookup);
        let cases: &[(&str, &str)] = &[
            ("${P#linux/}", "amd64"),
            ("${TARGETARCH/amd64/x64}", "x64"),
            ("${TARGETARCH/arm64/aarch64}", "amd64"),
            ("${V#v}", "1.2.3-rc1"),
            ("${V##*.}", "3-rc1"),
            ("${V#*.}", "2.3-rc1"),
            ("${V%-*}", "v1.2.3"),
            ("${V%%.*}", "v1"),
            ("${V%.*}", "v1.2"),
            ("${V/./_}", "v1_2.3-rc1"),
            ("${V//./_}", "v1_2_3-rc1"),
            ("${V/-rc1}", "v1.2.3"),
            ("${UNSET#x}", ""),
            ("${UNSET//a/b}", ""),
            ("${P#${UNSET:-linux}/}", "amd64"),
            ("x-${P%/*}-y", "x-linux-y"),
        ];
        for (input, want) in cases {
            assert_eq!(ex(input).as_deref(), Ok(*want), "input {input}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "${A:-".repeat(10_000) + &"}".repeat(10_000);
        assert!(ex(&deep).is_err());
        let ok = "${A:-".repeat(10) + "x" + &"}".repeat(10);
        assert_eq!(ex(&ok), Ok("x".into()));
    }

    #[test]
    fn backtick_escape_keeps_backslashes() {
        let none = |_: &str| None;
        assert_eq!(
            expand_word(r"C:\app\bin", '`', &none),
            Ok(r"C:\app\bin".into())
        );
        assert_eq!(expand_word("a` b", '`', &none), Ok("a b".into()));
    }
}

//! Shell patterns for the Dockerfile 1.7 string operations
//! (`${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`, `${v/p/r}`, `${v//p/r}`), as
//! BuildKit's shell lexer reads them: `*` any run of characters, `?` one
//! character, `[abc]` / `[a-z]` / `[!x]` / `[^x]` a class, and the escape
//! character making the next character literal. Pure and bounded: values
//! are short, and matching is a plain backtracking walk over `char`s.

/// One element of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    Any,
    One,
    Class {
        ranges: Vec<(char, char)>,
        negated: bool,
    },
}

/// A compiled shell pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern(Vec<Token>);

impl Pattern {
    /// Compiles `text`, where `escape` makes the next character literal.
    pub(crate) fn new(text: &str, escape: char) -> Pattern {
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            match c {
                '*' => out.push(Token::Any),
                '?' => out.push(Token::One),
                '[' => match class(&chars[i..]) {
                    Some((token, used)) => {
                        out.push(token);
                        i += used;
                    }
                    None => out.push(Token::Literal('[')),
                },
                c if c == escape => {
                    if let Some(&n) = chars.get(i) {
                        out.push(Token::Literal(n));
                        i += 1;
                    }
                }
                c => out.push(Token::Literal(c)),
            }
        }
        Pattern(out)
    }

    /// Whether the whole of `s` matches.
    fn matches(&self, s: &[char]) -> bool {
        match_from(&self.0, s)
    }

    /// Whether the whole of `s` matches.
    pub(crate) fn matches_whole(&self, s: &str) -> bool {
        self.matches(&s.chars().collect::<Vec<_>>())
    }

    /// `s` without the shortest (or longest) prefix that matches.
    pub(crate) fn trim_prefix(&self, s: &str, longest: bool) -> String {
        let chars: Vec<char> = s.chars().collect();
        let mut lens: Vec<usize> = (0..=chars.len()).collect();
        if longest {
            lens.reverse();
        }
        match lens.into_iter().find(|&n| self.matches(&chars[..n])) {
            Some(n) => chars[n..].iter().collect(),
            None => s.to_string(),
        }
    }

    /// `s` without the shortest (or longest) suffix that matches.
    pub(crate) fn trim_suffix(&self, s: &str, longest: bool) -> String {
        let chars: Vec<char> = s.chars().collect();
        let mut starts: Vec<usize> = (0..=chars.len()).collect();
        if !longest {
            starts.reverse();
        }
        match starts.into_iter().find(|&k| self.matches(&chars[k..])) {
            Some(k) => chars[..k].iter().collect(),
            None => s.to_string(),
        }
    }

    /// `s` with the first (or every) match replaced by `with`: the leftmost
    /// match, longest at that position. An empty pattern replaces nothing.
    pub(crate) fn replace(&self, s: &str, with: &str, all: bool) -> String {
        if self.0.is_empty() {
            return s.to_string();
        }
        let chars: Vec<char> = s.chars().collect();
        let mut out = String::new();
        let mut at = 0;
        let mut replaced = false;
        while at <= chars.len() {
            let found = (!replaced || all)
                .then(|| {
                    (at..=chars.len())
                        .rev()
                        .find(|&end| self.matches(&chars[at..end]))
                })
                .flatten();
            if let Some(end) = found {
                out.push_str(with);
                replaced = true;
                if end > at {
                    at = end;
                    continue;
                }
            }
            if let Some(&c) = chars.get(at) {
                out.push(c);
            }
            at += 1;
        }
        out
    }
}

/// Parses a class after its `[`; returns it and the characters used
/// (including the closing `]`), or `None` when it is not closed.
fn class(rest: &[char]) -> Option<(Token, usize)> {
    let mut i = 0;
    let negated = matches!(rest.first(), Some('!' | '^'));
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    while let Some(&c) = rest.get(i) {
        if c == ']' && !first {
            return Some((Token::Class { ranges, negated }, i + 1));
        }
        first = false;
        match (rest.get(i + 1), rest.get(i + 2)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                ranges.push((c, hi));
                i += 3;
            }
            _ => {
                ranges.push((c, c));
                i += 1;
            }
        }
    }
    None
}

fn match_from(p: &[Token], s: &[char]) -> bool {
    let Some((first, rest)) = p.split_first() else {
        return s.is_empty();
    };
    match first {
        Token::Any => (0..=s.len()).any(|k| match_from(rest, &s[k..])),
        Token::One => !s.is_empty() && match_from(rest, &s[1..]),
        Token::Literal(c) => s.first() == Some(c) && match_from(rest, &s[1..]),
        Token::Class { ranges, negated } => s.first().is_some_and(|c| {
            let inside = ranges.iter().any(|(lo, hi)| (lo..=hi).contains(&c));
            inside != *negated && match_from(rest, &s[1..])
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::new(text, '\\')
    }

    #[test]
    fn prefixes_and_suffixes_shortest_and_longest() {
        assert_eq!(p("linux/").trim_prefix("linux/amd64", false), "amd64");
        assert_eq!(p("*/").trim_prefix("a/b/c", false), "b/c");
        assert_eq!(p("*/").trim_prefix("a/b/c", true), "c");
        assert_eq!(p("/*").trim_suffix("a/b/c", false), "a/b");
        assert_eq!(p("/*").trim_suffix("a/b/c", true), "a");
        assert_eq!(p("x").trim_prefix("abc", false), "abc");
        assert_eq!(p("?").trim_suffix("v1.2", false), "v1.");
        assert_eq!(p("[0-9]*").trim_prefix("3.12-slim", true), "");
        assert_eq!(p("[!0-9]").trim_prefix("v1", false), "1");
    }

    #[test]
    fn replacements_first_and_all() {
        assert_eq!(p("amd64").replace("amd64", "x64", false), "x64");
        assert_eq!(p("arm64").replace("amd64", "arm", false), "amd64");
        assert_eq!(p("a").replace("banana", "o", false), "bonana");
        assert_eq!(p("a").replace("banana", "o", true), "bonono");
        assert_eq!(p("n*").replace("banana", "", false), "ba");
        assert_eq!(p("").replace("abc", "x", true), "abc");
        assert_eq!(p("\\*").replace("a*b", "-", true), "a-b");
    }

    #[test]
    fn unclosed_classes_are_literal() {
        assert_eq!(p("[ab").trim_prefix("[abc", false), "c");
        assert_eq!(p("[]]").trim_prefix("]x", false), "x");
    }
}

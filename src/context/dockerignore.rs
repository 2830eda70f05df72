//! `.dockerignore` exactly as the Docker CLI applies it to a classic-builder context.
//!
//! Reading follows moby `patternmatcher/ignorefile.ReadAll` (UTF-8 BOM dropped, `#` lines
//! are comments only when `#` is the first byte, whitespace trimmed, `filepath.Clean`,
//! a leading `/` dropped, `!` exceptions). Matching follows `patternmatcher.Pattern`
//! (its regexp translation: `*` and `?` never cross `/`, `**` spans directories, `[...]`
//! classes, `\` escapes, and the exact/prefix/suffix shortcuts) combined as
//! `MatchesUsingParentResults` does while `go-archive` walks the context: the last
//! matching pattern wins and a path is excluded when it or a parent directory matches.
//! [`DockerIgnore::descend`] is Docker's rule for walking into an excluded directory.
//! Also hosts Go's `filepath.Match`, which COPY/ADD wildcards use.

use std::path::Path;

use super::ContextError;

mod filepath_match;

pub(super) use filepath_match::go_match;
use filepath_match::validate_go_pattern;

/// A parsed `.dockerignore`: an ordered list of patterns, the last match wins.
#[derive(Debug, Clone, Default)]
pub(crate) struct DockerIgnore {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned pattern without the leading `!` (Docker's `Pattern.String()`).
    cleaned: String,
    exclusion: bool,
    kind: MatchKind,
}

#[derive(Debug, Clone)]
enum MatchKind {
    Exact,
    /// Trailing `**` after literals: plain prefix test.
    Prefix(String),
    /// Leading `**` followed by literals only: plain suffix test.
    Suffix(String),
    Regex(Vec<Tok>),
}

/// One element of Docker's generated regular expression.
#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Lit(char),
    /// `?` → `[^/]`
    AnyOne,
    /// `*` → `[^/]*`
    Star,
    /// inner `**` → `(.*/)?`
    DirStar,
    /// trailing `**` → `.*`
    AllStar,
    /// `[...]`, matches any char (including `/`) in or, when negated, not in the ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// An unescaped `^` outside a class: a regexp start anchor.
    Start,
}

impl DockerIgnore {
    /// Parses the text of a `.dockerignore` file.
    ///
    /// Errors on a lone `!` and on patterns Go's `filepath.Match` rejects
    /// (unclosed `[`, trailing `\`), as the Docker CLI does.
    pub(crate) fn parse(text: &str) -> Result<DockerIgnore, ContextError> {
        let mut out = DockerIgnore::default();
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        for (idx, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if let Some(p) = read_line(line) {
                out.push(&p, idx + 1)?;
            }
        }
        Ok(out)
    }

    /// Reads `<root>/.dockerignore`; a missing file means "exclude nothing".
    pub(crate) fn load(root: &Path) -> Result<DockerIgnore, ContextError> {
        let path = root.join(".dockerignore");
        match std::fs::read(&path) {
            Ok(bytes) => Self::parse(&String::from_utf8_lossy(&bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(DockerIgnore::default()),
            Err(source) => Err(ContextError::DockerignoreRead { path, source }),
        }
    }

    /// True when the file has no pattern at all.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the path (relative to the context root, `/`-separated) is excluded
    /// by the patterns: it or one of its parent directories matches, last match wins.
    ///
    /// This is the verdict on the path itself; [`super::walk::list`] additionally
    /// skips the contents of excluded directories unless [`Self::descend`] allows them.
    pub(crate) fn excluded(&self, rel: &str) -> bool {
        let rel = clean(rel.trim_start_matches('/'));
        if rel == "." || self.patterns.is_empty() {
            return false;
        }
        let mut info: Option<Vec<bool>> = None;
        let mut prefix = String::new();
        let mut verdict = false;
        for comp in rel.split('/') {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            let (v, i) = self.evaluate(&prefix, info.as_deref());
            verdict = v;
            info = Some(i);
        }
        verdict
    }

    /// Whether the path would be in the context Docker sends: not excluded, and every
    /// excluded parent directory is one Docker still walks into ([`Self::descend`]).
    pub(crate) fn in_context(&self, rel: &str) -> bool {
        let rel = clean(rel.trim_start_matches('/'));
        if rel == "." {
            return true;
        }
        let mut info: Option<Vec<bool>> = None;
        let mut prefix = String::new();
        let comps: Vec<&str> = rel.split('/').collect();
        for (n, comp) in comps.iter().enumerate() {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(comp);
            let (v, i) = self.evaluate(&prefix, info.as_deref());
            let last = n + 1 == comps.len();
            if last {
                return !v;
            }
            if v && !self.descend(&prefix) {
                return false;
            }
            info = Some(i);
        }
        true
    }

    /// Docker's rule for an excluded directory: walk into it only when some `!`
    /// pattern, as a literal string, starts with `dir/` (go-archive's `TarWithOptions`).
    pub(crate) fn descend(&self, dir: &str) -> bool {
        if !self.exclusions {
            return false;
        }
        let dir_slash = format!("{dir}/");
        self.patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.cleaned).starts_with(&dir_slash))
    }

    /// Returns a copy with `!name` appended for every `name` that is excluded, as the
    /// Docker CLI does for `.dockerignore` and the Dockerfile (`TrimBuildFilesFromExcludes`).
    pub(crate) fn with_exceptions(&self, names: &[&str]) -> Result<DockerIgnore, ContextError> {
        let mut out = self.clone();
        for name in names {
            if out.excluded(name)
                && let Some(p) = read_line(&format!("!{name}"))
            {
                out.push(&p, 0)?;
            }
        }
        Ok(out)
    }

    /// Returns a copy that also excludes each of `paths` (relative to the context,
    /// taken literally: wildcard characters are escaped), whatever the earlier
    /// patterns say. Used to keep stackbake's own output out of the context.
    pub(crate) fn with_excluded(&self, paths: &[&str]) -> Result<DockerIgnore, ContextError> {
        let mut out = self.clone();
        for path in paths {
            let mut literal = String::with_capacity(path.len());
            for c in path.chars() {
                if matches!(c, '*' | '?' | '[' | '\\') {
                    literal.push('\\');
                }
                literal.push(c);
            }
            if let Some(p) = read_line(&literal) {
                out.push(&p, 0)?;
            }
        }
        Ok(out)
    }

    /// `MatchesUsingParentResults`: verdict for `file` plus the per-pattern match flags
    /// that its children reuse. `parent` is `None` for top-level paths.
    pub(super) fn evaluate(&self, file: &str, parent: Option<&[bool]>) -> (bool, Vec<bool>) {
        let parent = parent.filter(|p| p.len() == self.patterns.len() && !p.is_empty());
        let mut matched = false;
        let mut info = vec![false; self.patterns.len()];
        for (i, pat) in self.patterns.iter().enumerate() {
            let mut m = parent.is_some_and(|p| p[i]);
            if !m {
                if pat.exclusion != matched {
                    continue;
                }
                m = pat.matches(file);
                if !m
                    && parent.is_none()
                    && let Some((parent_path, _)) = file.rsplit_once('/')
                {
                    let mut acc = String::new();
                    for comp in parent_path.split('/') {
                        if !acc.is_empty() {
                            acc.push('/');
                        }
                        acc.push_str(comp);
                        if pat.matches(&acc) {
                            m = true;
                            break;
                        }
                    }
                }
            }
            info[i] = m;
            if m {
                matched = !pat.exclusion;
            }
        }
        (matched, info)
    }

    fn push(&mut self, line_pattern: &str, line: usize) -> Result<(), ContextError> {
        // NewPatternMatcher: trim, clean, `!`, syntax check, compile.
        let bad = |reason: &str| ContextError::DockerignorePattern {
            line,
            pattern: line_pattern.to_string(),
            reason: reason.to_string(),
        };
        let p = line_pattern.trim();
        if p.is_empty() {
            return Ok(());
        }
        let mut p = clean(p);
        let mut exclusion = false;
        if let Some(rest) = p.strip_prefix('!') {
            if rest.is_empty() {
                return Err(bad("a lone `!` excludes nothing; write `!path`"));
            }
            exclusion = true;
            p = rest.to_string();
        }
        validate_go_pattern(&p).map_err(|r| bad(&r))?;
        let kind = compile(&p);
        if exclusion {
            self.exclusions = true;
        }
        self.patterns.push(Pattern {
            cleaned: p,
            exclusion,
            kind,
        });
        Ok(())
    }
}

/// `ignorefile.ReadAll` for one line: `None` for comments and blank lines.
fn read_line(line: &str) -> Option<String> {
    if line.starts_with('#') {
        return None;
    }
    let mut pattern = line.trim();
    if pattern.is_empty() {
        return None;
    }
    let invert = pattern.starts_with('!');
    if invert {
        pattern = pattern[1..].trim();
    }
    let mut p = String::new();
    if !pattern.is_empty() {
        let c = clean(pattern);
        p = if c.len() > 1 && c.starts_with('/') {
            c[1..].to_string()
        } else {
            c
        };
    }
    Some(if invert { format!("!{p}") } else { p })
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchKind::Exact => path == self.cleaned,
            MatchKind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            MatchKind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    || suffix
                        .strip_prefix('/')
                        .is_some_and(|rest| !suffix.is_empty() && path == rest)
            }
            MatchKind::Regex(toks) => regex_match(toks, path),
        }
    }
}

/// Go's `path.Clean` for `/`-separated paths.
pub(super) fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".to_string();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    for comp in p.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|l| *l != "..") {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    let joined = out.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// Docker's `Pattern.compile`, producing the match shortcut or regexp tokens.
fn compile(p: &str) -> MatchKind {
    #[derive(PartialEq)]
    enum T {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let mut t = T::Exact;
    let mut toks = Vec::new();
    let mut it = p.chars().peekable();
    let mut i = 0usize;
    while let Some(ch) = it.next() {
        match ch {
            '*' => {
                if it.peek() == Some(&'*') {
                    it.next();
                    if it.peek() == Some(&'/') {
                        it.next();
                    }
                    if it.peek().is_none() {
                        if t == T::Exact {
                            t = T::Prefix;
                        } else {
                            toks.push(Tok::AllStar);
                            t = T::Regex;
                        }
                    } else {
                        toks.push(Tok::DirStar);
                        t = T::Regex;
                    }
                    if i == 0 {
                        t = T::Suffix;
                    }
                } else {
                    toks.push(Tok::Star);
                    t = T::Regex;
                }
            }
            '?' => {
                toks.push(Tok::AnyOne);
                t = T::Regex;
            }
            '\\' => match it.next() {
                Some(c) => {
                    toks.push(Tok::Lit(c));
                    t = T::Regex;
                }
                None => toks.push(Tok::Lit('\\')),
            },
            '[' => {
                toks.push(parse_class(&mut it));
                t = T::Regex;
            }
            ']' => {
                toks.push(Tok::Lit(']'));
                t = T::Regex;
            }
            '^' => toks.push(Tok::Start),
            c => toks.push(Tok::Lit(c)),
        }
        i += 1;
    }
    match t {
        T::Exact => MatchKind::Exact,
        T::Prefix => MatchKind::Prefix(p[..p.len() - 2].to_string()),
        T::Suffix => MatchKind::Suffix(p[2..].to_string()),
        T::Regex => MatchKind::Regex(toks),
    }
}

/// Parses a class body after `[` (the pattern was validated by [`validate_go_pattern`]).
fn parse_class(it: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Tok {
    let mut negated = false;
    if it.peek() == Some(&'^') {
        it.next();
        negated = true;
    }
    let mut ranges = Vec::new();
    while let Some(c) = it.next() {
        if c == ']' && !ranges.is_empty() {
            break;
        }
        let lo = if c == '\\' {
            it.next().unwrap_or('\\')
        } else {
            c
        };
        let mut hi = lo;
        if it.peek() == Some(&'-') {
            it.next();
            hi = match it.next() {
                Some('\\') => it.next().unwrap_or('\\'),
                Some(h) => h,
                None => lo,
            };
        }
        ranges.push((lo, hi));
    }
    Tok::Class { negated, ranges }
}

/// NFA simulation of Docker's anchored regexp `^...$` over `path`.
fn regex_match(toks: &[Tok], path: &str) -> bool {
    let n = toks.len();
    // state index: 2*i = at token i; 2*i+1 = inside the `(.*/)?` group of token i.
    let mut cur = vec![false; 2 * n + 2];
    add(toks, &mut cur, 0, true);
    for c in path.chars() {
        let mut next = vec![false; 2 * n + 2];
        let mut any = false;
        for i in 0..=n {
            if cur[2 * i] && i < n {
                match &toks[i] {
                    Tok::Lit(x) if *x == c => add(toks, &mut next, i + 1, false),
                    Tok::AnyOne if c != '/' => add(toks, &mut next, i + 1, false),
                    Tok::Class { negated, ranges } => {
                        let inside = ranges.iter().any(|(lo, hi)| *lo <= c && c <= *hi);
                        if inside != *negated {
                            add(toks, &mut next, i + 1, false);
                        }
                    }
                    Tok::Star if c != '/' => add(toks, &mut next, i, false),
                    Tok::AllStar if c != '\n' => add(toks, &mut next, i, false),
                    _ => {}
                }
            }
            if cur[2 * i + 1] && c != '\n' {
                next[2 * i + 1] = true;
                if c == '/' {
                    add(toks, &mut next, i + 1, false);
                }
            }
        }
        for v in &next {
            any |= *v;
        }
        if !any {
            return false;
        }
        cur = next;
    }
    cur[2 * n]
}

/// Adds state `i` and its epsilon closure.
fn add(toks: &[Tok], set: &mut [bool], i: usize, at_start: bool) {
    if set[2 * i] {
        return;
    }
    set[2 * i] = true;
    if i >= toks.len() {
        return;
    }
    match toks[i] {
        Tok::Star | Tok::AllStar => add(toks, set, i + 1, at_start),
        Tok::DirStar => {
            set[2 * i + 1] = true;
            add(toks, set, i + 1, at_start);
        }
        Tok::Start if at_start => add(toks, set, i + 1, at_start),
        _ => {}
    }
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests;

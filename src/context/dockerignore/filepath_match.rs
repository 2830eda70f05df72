//! Go's `filepath.Match` on Unix, which COPY/ADD wildcards use, and the
//! pattern check `.dockerignore` reading applies before compiling a pattern.

/// Checks a pattern the way Go's `filepath.Match(pattern, ".")` reports `ErrBadPattern`,
/// plus reversed ranges (which Docker's regexp compile rejects later).
pub(in crate::context) fn validate_go_pattern(p: &str) -> Result<(), String> {
    let mut it = p.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '\\' => {
                it.next()
                    .ok_or_else(|| "trailing `\\` escapes nothing".to_string())?;
            }
            '[' => {
                if it.peek() == Some(&'^') {
                    it.next();
                }
                let mut nrange = 0;
                loop {
                    if it.peek() == Some(&']') && nrange > 0 {
                        it.next();
                        break;
                    }
                    let lo = get_esc(&mut it)?;
                    let mut hi = lo;
                    if it.peek() == Some(&'-') {
                        it.next();
                        hi = get_esc(&mut it)?;
                    }
                    if lo > hi {
                        return Err(format!("character range `{lo}-{hi}` is reversed"));
                    }
                    nrange += 1;
                }
            }
            _ => {}
        }
    }
    Ok(())
}

fn get_esc(it: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    let unclosed = || "unclosed or malformed `[...]` character class".to_string();
    let c = match it.next() {
        None | Some('-') | Some(']') => return Err(unclosed()),
        Some('\\') => it.next().ok_or_else(unclosed)?,
        Some(c) => c,
    };
    if it.peek().is_none() {
        return Err(unclosed());
    }
    Ok(c)
}

/// Go's `filepath.Match` on Unix (`*`, `?`, `[...]`, `\`), used for COPY/ADD wildcards.
pub(in crate::context) fn go_match(pattern: &str, name: &str) -> Result<bool, String> {
    let mut pat = pattern;
    let mut name = name;
    'outer: while !pat.is_empty() {
        let (star, chunk, rest) = scan_chunk(pat);
        pat = rest;
        if star && chunk.is_empty() {
            return Ok(!name.contains('/'));
        }
        let (t, ok) = match_chunk(chunk, name)?;
        if ok && (t.is_empty() || !pat.is_empty()) {
            name = t;
            continue;
        }
        if star {
            for (i, c) in name.char_indices() {
                if c == '/' {
                    break;
                }
                let (t, ok) = match_chunk(chunk, &name[i + c.len_utf8()..])?;
                if ok {
                    if pat.is_empty() && !t.is_empty() {
                        continue;
                    }
                    name = t;
                    continue 'outer;
                }
            }
        }
        validate_go_pattern(pat)?;
        return Ok(false);
    }
    Ok(name.is_empty())
}

fn scan_chunk(pattern: &str) -> (bool, &str, &str) {
    let trimmed = pattern.trim_start_matches('*');
    let star = trimmed.len() != pattern.len();
    let bytes = trimmed.as_bytes();
    let mut inrange = false;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => {
                i += usize::from(i + 1 < bytes.len());
            }
            b'[' => inrange = true,
            b']' => inrange = false,
            b'*' if !inrange => break,
            _ => {}
        }
        i += 1;
    }
    // `i` may sit after a multi-byte char only at a boundary: all tested bytes are ASCII
    // and an escaped byte is skipped whole only when ASCII; fix up to a char boundary.
    while !trimmed.is_char_boundary(i) {
        i += 1;
    }
    (star, &trimmed[..i], &trimmed[i..])
}

/// Matches one chunk at the start of `s`; returns the rest and whether it matched.
fn match_chunk<'a>(chunk: &str, s: &'a str) -> Result<(&'a str, bool), String> {
    let mut failed = false;
    let mut s = s;
    let mut it = chunk.chars().peekable();
    while let Some(c) = it.next() {
        if !failed && s.is_empty() {
            failed = true;
        }
        match c {
            '[' => {
                let mut r = '\0';
                if !failed && let Some(ch) = s.chars().next() {
                    r = ch;
                    s = &s[ch.len_utf8()..];
                }
                let mut negated = false;
                if it.peek() == Some(&'^') {
                    it.next();
                    negated = true;
                }
                let mut matched = false;
                let mut nrange = 0;
                loop {
                    if it.peek() == Some(&']') && nrange > 0 {
                        it.next();
                        break;
                    }
                    let lo = get_esc(&mut it)?;
                    let mut hi = lo;
                    if it.peek() == Some(&'-') {
                        it.next();
                        hi = get_esc(&mut it)?;
                    }
                    if lo <= r && r <= hi {
                        matched = true;
                    }
                    nrange += 1;
                }
                if matched == negated {
                    failed = true;
                }
            }
            '?' => {
                if !failed && let Some(ch) = s.chars().next() {
                    if ch == '/' {
                        failed = true;
                    }
                    s = &s[ch.len_utf8()..];
                }
            }
            _ => {
                let lit = if c == '\\' {
                    it.next().ok_or("trailing `\\` escapes nothing")?
                } else {
                    c
                };
                if !failed && let Some(ch) = s.chars().next() {
                    if ch != lit {
                        failed = true;
                    }
                    s = &s[ch.len_utf8()..];
                }
            }
        }
    }
    if failed {
        Ok(("", false))
    } else {
        Ok((s, true))
    }
}

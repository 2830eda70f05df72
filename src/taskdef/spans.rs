//! Where each value of a JSON text is: the one span scanner of stackbake,
//! and the one `line_col`.
//!
//! serde_json reports no spans, and re-serialising a `Value` would reformat
//! the user's file. So [`JsonSpans::scan`] walks the text once and records,
//! for every value, the byte range of its key token and of its value token
//! (a string with its quotes, an object or array with its brackets), its
//! members and elements, and its key path
//! (`containerDefinitions[1].portMappings[0].containerPort`). Keys are
//! compared after unescaping, so `"im\u0061ge"` is `image`.
//!
//! Two kinds of callers use it: [`super::rewrite::pin_images`] splices new `image`
//! strings into exact byte ranges (found by structure, not by path text, so
//! a key that contains `.` or `[` cannot be mistaken for a path), and
//! `check` turns a key path into `line:column` ([`JsonSpans::key`],
//! [`JsonSpans::value`]). The scanner is strict: it is run on text that
//! serde_json accepted, and any disagreement is an error, never a guess.

use std::collections::BTreeMap;
use std::ops::Range;

/// Nesting depth at which the scanner gives up (serde_json stops at 128).
const MAX_DEPTH: usize = 256;

/// 1-based line and column (in characters) of byte `offset` in `text`.
/// An offset past the end counts as the end; an offset inside a multi-byte
/// character counts as that character.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[line_start..].chars().count() + 1)
}

/// The parent of a key path: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``;
/// `None` for the document itself (``).
pub(crate) fn parent_path(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Why the scanner stopped, at byte `offset`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ScanError {
    /// Byte offset in the text.
    pub offset: usize,
    /// What was expected.
    pub message: String,
}

/// One value of the document.
#[derive(Debug, Clone)]
struct Node {
    /// The key token (quotes included), for object members.
    key: Option<Range<usize>>,
    /// The value token.
    value: Range<usize>,
    /// Object members (decoded key, node), in file order; repeated keys kept.
    members: Vec<(String, usize)>,
    /// Array elements, in order.
    elements: Vec<usize>,
}

/// Identifies a value of a scanned document.
pub(crate) type NodeId = usize;

/// The key and value spans of every value of one JSON text.
#[derive(Debug, Clone, Default)]
pub(crate) struct JsonSpans {
    text: String,
    nodes: Vec<Node>,
    /// Key path → node; a path written twice (a repeated key) names the
    /// last, the one serde_json keeps.
    paths: BTreeMap<String, NodeId>,
}

impl JsonSpans {
    /// Scans `text` (a leading UTF-8 BOM is skipped). Fails on anything
    /// that is not one JSON value.
    pub(crate) fn scan(text: &str) -> Result<Self, ScanError> {
        let mut s = Scanner {
            text,
            bytes: text.as_bytes(),
            pos: if text.starts_with('\u{feff}') { 3 } else { 0 },
            nodes: Vec::new(),
            paths: BTreeMap::new(),
        };
        s.ws();
        s.value(String::new(), None, 0)?;
        s.ws();
        if s.pos != s.bytes.len() {
            return Err(s.error("trailing characters after the JSON value"));
        }
        Ok(Self {
            text: text.to_owned(),
            nodes: s.nodes,
            paths: s.paths,
        })
    }

    /// No spans for `text`: every lookup answers line 1, column 1.
    pub(crate) fn unscanned(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            ..Self::default()
        }
    }

    /// The text that was scanned.
    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    /// The document's top-level value.
    pub(crate) fn root(&self) -> Option<NodeId> {
        (!self.nodes.is_empty()).then_some(0)
    }

    /// The member `key` of object `node`; the last one if the key repeats
    /// (the one serde_json keeps).
    pub(crate) fn member(&self, node: NodeId, key: &str) -> Option<NodeId> {
        self.members_named(node, key).last()
    }

    /// Every member `key` of object `node`, in file order.
    pub(crate) fn members_named<'s>(
        &'s self,
        node: NodeId,
        key: &'s str,
    ) -> impl DoubleEndedIterator<Item = NodeId> + 's {
        self.nodes
            .get(node)
            .into_iter()
            .flat_map(|n| n.members.iter())
            .filter(move |(k, _)| k == key)
            .map(|(_, id)| *id)
    }

    /// The element `index` of array `node`.
    pub(crate) fn element(&self, node: NodeId, index: usize) -> Option<NodeId> {
        self.nodes.get(node)?.elements.get(index).copied()
    }

    /// The byte range of the key token of `node` (quotes included).
    pub(crate) fn key_span(&self, node: NodeId) -> Option<Range<usize>> {
        self.nodes.get(node)?.key.clone()
    }

    /// The byte range of the value token of `node` (a string with its quotes).
    pub(crate) fn value_span(&self, node: NodeId) -> Option<Range<usize>> {
        Some(self.nodes.get(node)?.value.clone())
    }

    /// The node at `path`, or at its nearest ancestor that exists.
    fn nearest(&self, path: &str) -> Option<NodeId> {
        let mut p = Some(path);
        while let Some(cur) = p {
            if let Some(&id) = self.paths.get(cur) {
                return Some(id);
            }
            p = parent_path(cur);
        }
        None
    }

    /// Line and column of the key of `path` (of the value, for array
    /// elements and the document), or of its nearest ancestor that exists;
    /// 1:1 when nothing is known.
    pub(crate) fn key(&self, path: &str) -> (usize, usize) {
        self.nearest(path)
            .and_then(|id| self.nodes.get(id))
            .map_or((1, 1), |n| {
                let at = n.key.as_ref().unwrap_or(&n.value).start;
                line_col(&self.text, at)
            })
    }

    /// Line and column of the value at `path`, or of its nearest ancestor
    /// that exists; 1:1 when nothing is known.
    pub(crate) fn value(&self, path: &str) -> (usize, usize) {
        self.nearest(path)
            .and_then(|id| self.nodes.get(id))
            .map_or((1, 1), |n| line_col(&self.text, n.value.start))
    }

    /// Line and column of byte `offset` of the text.
    pub(crate) fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    nodes: Vec<Node>,
    paths: BTreeMap<String, NodeId>,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn error(&self, message: &str) -> ScanError {
        ScanError {
            offset: self.pos,
            message: message.to_owned(),
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), ScanError> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected `{}`", char::from(byte))))
        }
    }

    /// Reads the value at the cursor as node `path`, with key token `key`.
    fn value(
        &mut self,
        path: String,
        key: Option<Range<usize>>,
        depth: usize,
    ) -> Result<NodeId, ScanError> {
        if depth > MAX_DEPTH {
            return Err(self.error("nesting too deep"));
        }
        let id = self.nodes.len();
        let start = self.pos;
        self.nodes.push(Node {
            key,
            value: start..start,
            members: Vec::new(),
            elements: Vec::new(),
        });
        match self.peek() {
            Some(b'{') => self.object(id, &path, depth)?,
            Some(b'[') => self.array(id, &path, depth)?,
            Some(b'"') => {
                self.string()?;
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => self.literal()?,
        }
        self.nodes[id].value = start..self.pos;
        // A member with an empty key at the top level would have the
        // document's own path: the document keeps it.
        if !(path.is_empty() && id != 0) {
            self.paths.insert(path, id);
        }
        Ok(id)
    }

    /// Reads the object at the cursor (node `id` at `path`) and its members.
    fn object(&mut self, id: NodeId, path: &str, depth: usize) -> Result<(), ScanError> {
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let (key_span, name) = self.string()?;
            self.ws();
            self.expect(b':')?;
            self.ws();
            let child_path = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            let child = self.value(child_path, Some(key_span), depth + 1)?;
            self.nodes[id].members.push((name, child));
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `}`")),
            }
        }
    }

    /// Reads the array at the cursor (node `id` at `path`) and its elements.
    fn array(&mut self, id: NodeId, path: &str, depth: usize) -> Result<(), ScanError> {
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.ws();
            let index = self.nodes[id].elements.len();
            let child = self.value(format!("{path}[{index}]"), None, depth + 1)?;
            self.nodes[id].elements.push(child);
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.error("expected `,` or `]`")),
            }
        }
    }

    /// Skips the number at the cursor.
    fn number(&mut self) {
        while matches!(
            self.peek(),
            Some(b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
        ) {
            self.pos += 1;
        }
    }

    /// Skips `true`, `false` or `null` at the cursor.
    fn literal(&mut self) -> Result<(), ScanError> {
        let literal = ["true", "false", "null"].into_iter().find(|l| {
            self.text
                .get(self.pos..)
                .is_some_and(|rest| rest.starts_with(l))
        });
        match literal {
            Some(l) => {
                self.pos += l.len();
                Ok(())
            }
            None => Err(self.error("expected a JSON value")),
        }
    }

    /// Reads a string token; returns its byte range (quotes included) and
    /// its decoded value.
    fn string(&mut self) -> Result<(Range<usize>, String), ScanError> {
        let start = self.pos;
        self.expect(b'"')?;
        let mut value = String::new();
        loop {
            let run_start = self.pos;
            while matches!(self.peek(), Some(b) if b != b'"' && b != b'\\' && b >= 0x20) {
                self.pos += 1;
            }
            // The run stops at an ASCII byte or the end: a char boundary.
            value.push_str(self.text.get(run_start..self.pos).unwrap_or(""));
            match self.peek() {
                Some(b'"') => {
                    self.pos += 1;
                    return Ok((start..self.pos, value));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let escaped = self
                        .peek()
                        .ok_or_else(|| self.error("unterminated escape"))?;
                    self.pos += 1;
                    let c = match escaped {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.error("invalid escape")),
                    };
                    value.push(c);
                }
                _ => return Err(self.error("unterminated string")),
            }
        }
    }

    /// Decodes the hex of a `\u` escape (the `\u` is consumed), joining
    /// surrogate pairs.
    fn unicode_escape(&mut self) -> Result<char, ScanError> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u".as_slice()) {
                return Err(self.error("lone surrogate in \\u escape"));
            }
            self.pos += 2;
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err(self.error("invalid surrogate pair in \\u escape"));
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid \\u escape"))
    }

    fn hex4(&mut self) -> Result<u32, ScanError> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .filter(|d| d.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| self.error("bad \\u escape"))?;
        let code = u32::from_str_radix(digits, 16).map_err(|_| self.error("bad \\u escape"))?;
        self.pos += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> JsonSpans {
        match JsonSpans::scan(text) {
            Ok(s) => s,
            Err(e) => panic!("{e:?}: {text}"),
        }
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("x", 99), (1, 2));
        assert_eq!(line_col("", 0), (1, 1));
        assert_eq!(line_col("a\n", 2), (2, 1));
    }

    /// An offset inside a multi-byte character counts as that character.
    /// The copy of `line_col` that `taskdef` had took the whole text for
    /// such an offset, and so reported the last line.
    #[test]
    fn line_col_inside_a_multibyte_character() {
        let text = "é\nü\n😀x\nlast";
        // 'é' is bytes 0..2: byte 1 is inside it, on line 1.
        assert_eq!(line_col(text, 1), (1, 1));
        // '😀' is bytes 6..10 on line 3: every byte of it is column 1.
        for offset in 6..10 {
            assert_eq!(line_col(text, offset), (3, 1), "offset {offset}");
        }
        assert_eq!(line_col(text, 10), (3, 2));
        assert_eq!(line_col(text, text.len()), (4, 5));
    }

    #[test]
    fn paths_map_to_key_and_value_positions() {
        let text = "{\n  \"a\": 1,\n  \"containerDefinitions\": [\n    {\"name\": \"x\"},\n    {\"name\": \"y\",\n     \"portMappings\": [ {\"containerPort\": 80} ]}\n  ]\n}";
        let s = scan(text);
        assert_eq!(s.key("a"), (2, 3));
        assert_eq!(s.value("a"), (2, 8));
        assert_eq!(s.key("containerDefinitions[1]"), (5, 5));
        assert_eq!(s.key("containerDefinitions[1].name"), (5, 6));
        assert_eq!(
            s.key("containerDefinitions[1].portMappings[0].containerPort"),
            (6, 25)
        );
        // an unknown child falls back to its nearest ancestor
        assert_eq!(s.key("containerDefinitions[1].nope"), (5, 5));
        assert_eq!(s.key("zzz"), (1, 1));
        assert_eq!(JsonSpans::unscanned(text).key("a"), (1, 1));
    }

    #[test]
    fn structure_gives_exact_value_spans() {
        let text = r#"{"a.b": 1, "a": {"b": "x\"y"}, "l": [true, {"k": null}], "a": {"b": "z"}}"#;
        let s = scan(text);
        let Some(root) = s.root() else {
            panic!("no root")
        };
        assert_eq!(s.value_span(root), Some(0..text.len()));
        // `a` repeats: the last one is the member, both are listed.
        assert_eq!(s.members_named(root, "a").count(), 2);
        let b = s.member(root, "a").and_then(|a| s.member(a, "b"));
        let span = b.and_then(|b| s.value_span(b));
        assert_eq!(span.map(|r| &text[r]), Some("\"z\""));
        // a key with a dot is found by structure, not mistaken for a path
        let dotted = s.member(root, "a.b").and_then(|n| s.value_span(n));
        assert_eq!(dotted.map(|r| &text[r]), Some("1"));
        let k = s
            .member(root, "l")
            .and_then(|l| s.element(l, 1))
            .and_then(|e| s.member(e, "k"));
        assert_eq!(
            k.and_then(|k| s.key_span(k)).map(|r| &text[r]),
            Some("\"k\"")
        );
        assert_eq!(
            k.and_then(|k| s.value_span(k)).map(|r| &text[r]),
            Some("null")
        );
    }

    #[test]
    fn escaped_keys_are_decoded() {
        let s = scan("{\"a\\u0062\": {\"c\": 1}}");
        assert_eq!(s.key("ab.c"), (1, 14));
        let s = scan(r#"{"caf\u00e9 \ud83d\ude00": 1}"#);
        assert_eq!(s.key("café 😀"), (1, 2));
    }

    #[test]
    fn bom_is_skipped_and_positions_count_it() {
        let s = scan("\u{feff}{\"a\": 1}");
        assert_eq!(s.root().and_then(|r| s.value_span(r)), Some(3..11));
        assert_eq!(s.key("a"), (1, 3));
    }

    #[test]
    fn empty_and_odd_values() {
        for text in ["{}", "[]", "1", "\"s\"", "null", " {\"a\": [[], {}]} "] {
            let _ = scan(text);
        }
        for bad in [
            "",
            "{",
            "[[[[",
            "{\"a\"",
            "{\"a\":}",
            "{\"a\":1,}",
            "{} x",
            "{\"a\" 1}",
            "{\"a\":\"\\x\"}",
            "{\"a\":\"\\ud800\"}",
            "{\"a\":\"\\u12\"}",
            "{\"a\":\"\\u+123\"}",
            "{\"a\":tru}",
            "{\"\\",
            "]",
        ] {
            assert!(JsonSpans::scan(bad).is_err(), "{bad}");
        }
        let deep = format!("{{\"a\":{}{}}}", "[".repeat(300), "]".repeat(300));
        assert!(JsonSpans::scan(&deep).is_err());
        assert!(JsonSpans::scan(&"[".repeat(10_000)).is_err());
    }
}

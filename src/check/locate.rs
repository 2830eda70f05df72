//! Where a key lives in the source text, so findings can say `file:line:col`.
//!
//! serde_json and serde_yaml give no spans for keys or values of a parsed
//! document, so this module holds two small locators:
//!
//! - [`JsonLocator`]: a span-aware JSON scanner (same spirit as the one in
//!   `taskdef/rewrite.rs`) that records, for every value, its path
//!   (`containerDefinitions[1].portMappings[0].containerPort`) and the byte
//!   offsets of its key and of its value. It never fails: on malformed input
//!   it keeps what it saw so far.
//! - [`YamlLocator`]: a line-based locator for the block-style YAML that
//!   appspec and buildspec files use (mappings, `- ` sequences, block
//!   scalars, comments). Flow style (`{a: 1}`) is located at its parent key.
//!
//! Both fall back to the nearest ancestor path they know, then to 1:1.

use std::collections::BTreeMap;

/// Nesting depth at which the JSON scanner stops descending.
const MAX_DEPTH: usize = 200;

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    (line, before[start..].chars().count() + 1)
}

/// The parent of a path: `a.b[2]` → `a.b`, `a.b` → `a`, `a` → ``.
fn parent(path: &str) -> Option<&str> {
    if path.is_empty() {
        return None;
    }
    let cut = path.rfind(['.', '[']).unwrap_or(0);
    Some(&path[..cut])
}

/// Key and value positions of every value of a JSON document, by path.
#[derive(Debug, Default)]
pub struct JsonLocator {
    text: String,
    /// path → (key offset, value offset); array elements have key == value.
    spans: BTreeMap<String, (usize, usize)>,
}

impl JsonLocator {
    /// Scans `text` (a leading BOM is fine). Never fails.
    pub fn new(text: &str) -> Self {
        let mut s = Scanner {
            b: text.as_bytes(),
            i: 0,
            spans: BTreeMap::new(),
        };
        if text.starts_with('\u{feff}') {
            s.i = 3;
        }
        s.skip_ws();
        let start = s.i;
        s.spans.insert(String::new(), (start, start));
        let _ = s.value(String::new(), 0);
        Self {
            text: text.to_owned(),
            spans: s.spans,
        }
    }

    fn find(&self, path: &str) -> Option<(usize, usize)> {
        let mut p = Some(path);
        while let Some(cur) = p {
            if let Some(&span) = self.spans.get(cur) {
                return Some(span);
            }
            p = parent(cur);
        }
        None
    }

    /// Line and column of the key of `path` (of the value for array elements),
    /// or of its nearest known ancestor.
    pub fn key(&self, path: &str) -> (usize, usize) {
        self.find(path)
            .map_or((1, 1), |(k, _)| line_col(&self.text, k))
    }

    /// Line and column of the value at `path`, or of its nearest known ancestor.
    pub fn value(&self, path: &str) -> (usize, usize) {
        self.find(path)
            .map_or((1, 1), |(_, v)| line_col(&self.text, v))
    }
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    spans: BTreeMap<String, (usize, usize)>,
}

impl Scanner<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    /// Reads a string token starting at `"`; returns its decoded text.
    fn string(&mut self) -> Option<String> {
        let start = self.i;
        if self.peek() != Some(b'"') {
            return None;
        }
        self.i += 1;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    self.i += 1;
                    let raw = std::str::from_utf8(self.b.get(start..self.i)?).ok()?;
                    return Some(
                        serde_json::from_str::<String>(raw)
                            .unwrap_or_else(|_| raw.trim_matches('"').to_owned()),
                    );
                }
                _ => self.i += 1,
            }
        }
        None
    }

    fn value(&mut self, path: String, depth: usize) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.skip_ws();
        match self.peek()? {
            b'{' => {
                self.i += 1;
                loop {
                    self.skip_ws();
                    match self.peek()? {
                        b'}' => {
                            self.i += 1;
                            return Some(());
                        }
                        b',' => {
                            self.i += 1;
                            continue;
                        }
                        _ => {}
                    }
                    let key_at = self.i;
                    let key = self.string()?;
                    self.skip_ws();
                    if self.peek()? != b':' {
                        return None;
                    }
                    self.i += 1;
                    self.skip_ws();
                    let child = if path.is_empty() {
                        key
                    } else {
                        format!("{path}.{key}")
                    };
                    self.spans.entry(child.clone()).or_insert((key_at, self.i));
                    self.value(child, depth + 1)?;
                }
            }
            b'[' => {
                self.i += 1;
                let mut index = 0;
                loop {
                    self.skip_ws();
                    match self.peek()? {
                        b']' => {
                            self.i += 1;
                            return Some(());
                        }
                        b',' => {
                            self.i += 1;
                            continue;
                        }
                        _ => {}
                    }
                    let child = format!("{path}[{index}]");
                    index += 1;
                    self.spans.entry(child.clone()).or_insert((self.i, self.i));
                    self.value(child, depth + 1)?;
                }
            }
            b'"' => self.string().map(|_| ()),
            _ => {
                // number, true, false, null: up to the next delimiter
                let start = self.i;
                while self.i < self.b.len()
                    && !matches!(
                        self.b[self.i],
                        b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t'
                    )
                {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }
}

/// Line and column of keys and sequence items of a block-style YAML document.
#[derive(Debug, Default)]
pub struct YamlLocator {
    /// path → (line, col of the key or of the item's content).
    spans: BTreeMap<String, (usize, usize)>,
}

#[derive(Debug)]
struct Frame {
    indent: usize,
    seg: String,
    is_item: bool,
}

fn path_of(stack: &[Frame]) -> String {
    let mut p = String::new();
    for f in stack {
        if f.is_item || p.is_empty() {
            p.push_str(&f.seg);
        } else {
            p.push('.');
            p.push_str(&f.seg);
        }
    }
    p
}

/// The key of a `key: value` / `key:` line, and where its value starts.
fn split_key(content: &str) -> Option<(String, &str)> {
    let (key, rest) = if let Some(q) = content.chars().next().filter(|c| *c == '"' || *c == '\'') {
        let end = content[1..].find(q)? + 1;
        let rest = content[end + 1..].trim_start();
        (content[1..end].to_owned(), rest.strip_prefix(':')?)
    } else {
        let at = content
            .find(": ")
            .or_else(|| content.ends_with(':').then(|| content.len() - 1))?;
        let key = &content[..at];
        if key.contains(" #") || key.starts_with('#') || key.starts_with('{') {
            return None;
        }
        (key.trim_end().to_owned(), &content[at + 1..])
    };
    Some((key, rest.trim()))
}

fn is_block_scalar(value: &str) -> bool {
    let v = value.split(" #").next().unwrap_or("").trim();
    v.starts_with('|') || v.starts_with('>')
}

impl YamlLocator {
    /// Scans `text` line by line. Never fails.
    pub fn new(text: &str) -> Self {
        let mut spans = BTreeMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        let mut counters: BTreeMap<String, usize> = BTreeMap::new();
        let mut block_over: Option<usize> = None;
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let indent = line.chars().take_while(|c| *c == ' ').count();
            let content = line.trim();
            if let Some(limit) = block_over {
                if content.is_empty() || indent > limit {
                    continue;
                }
                block_over = None;
            }
            if content.is_empty()
                || content.starts_with('#')
                || content == "---"
                || content == "..."
            {
                continue;
            }
            let mut col = indent;
            let mut rest = &line[indent..];
            // Sequence items, possibly nested on one line (`- - a`).
            while rest == "-" || rest.starts_with("- ") {
                while stack
                    .last()
                    .is_some_and(|f| f.indent > col || (f.indent == col && f.is_item))
                {
                    stack.pop();
                }
                let parent = path_of(&stack);
                let counter = counters.entry(parent).or_insert(0);
                let seg = format!("[{counter}]");
                *counter += 1;
                let after = rest[1..].trim_start();
                let skip = rest.len() - after.len();
                stack.push(Frame {
                    indent: col,
                    seg,
                    is_item: true,
                });
                spans
                    .entry(path_of(&stack))
                    .or_insert((line_no, col + skip + 1));
                col += skip;
                rest = after;
                if rest.is_empty() {
                    break;
                }
            }
            if rest.is_empty() {
                continue;
            }
            if is_block_scalar(rest) {
                block_over = Some(indent);
                continue;
            }
            let Some((key, value)) = split_key(rest) else {
                continue;
            };
            while stack
                .last()
                .is_some_and(|f| f.indent > col || (f.indent == col && !f.is_item))
            {
                stack.pop();
            }
            stack.push(Frame {
                indent: col,
                seg: key,
                is_item: false,
            });
            let path = path_of(&stack);
            counters.remove(&path);
            spans.entry(path).or_insert((line_no, col + 1));
            if is_block_scalar(value) {
                block_over = Some(col);
            }
        }
        Self { spans }
    }

    /// Line and column of `path` (`Resources[0].TargetService.Properties`),
    /// or of its nearest known ancestor, else 1:1.
    pub fn at(&self, path: &str) -> (usize, usize) {
        let mut p = Some(path);
        while let Some(cur) = p {
            if let Some(&pos) = self.spans.get(cur) {
                return pos;
            }
            p = parent(cur);
        }
        (1, 1)
    }

    /// Whether `path` itself was seen.
    pub fn has(&self, path: &str) -> bool {
        self.spans.contains_key(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_paths_map_to_key_and_value_positions() {
        let text = "{\n  \"a\": 1,\n  \"containerDefinitions\": [\n    {\"name\": \"x\"},\n    {\"name\": \"y\",\n     \"portMappings\": [ {\"containerPort\": 80} ]}\n  ]\n}";
        let loc = JsonLocator::new(text);
        assert_eq!(loc.key("a"), (2, 3));
        assert_eq!(loc.value("a"), (2, 8));
        assert_eq!(loc.key("containerDefinitions[1]"), (5, 5));
        assert_eq!(loc.key("containerDefinitions[1].name"), (5, 6));
        assert_eq!(
            loc.key("containerDefinitions[1].portMappings[0].containerPort"),
            (6, 25)
        );
        // unknown child falls back to the nearest ancestor
        assert_eq!(loc.key("containerDefinitions[1].nope"), (5, 5));
        assert_eq!(loc.key("zzz"), (1, 1));
    }

    #[test]
    fn json_scanner_survives_garbage() {
        for s in [
            "",
            "{",
            "[[[[",
            "{\"a\":",
            "\"",
            "{\"a\" 1}",
            "\u{feff}{}",
            "{\"\\",
            "]",
        ] {
            let loc = JsonLocator::new(s);
            let _ = loc.key("a.b[0]");
        }
        let deep = "[".repeat(10_000);
        let _ = JsonLocator::new(&deep).key("[0]");
    }

    #[test]
    fn json_escaped_keys_are_decoded() {
        let loc = JsonLocator::new("{\"a\\u0062\": {\"c\": 1}}");
        assert_eq!(loc.key("ab.c"), (1, 14));
    }

    #[test]
    fn yaml_paths_follow_indentation_and_items() {
        let text = "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: <TASK_DEFINITION>\n        LoadBalancerInfo:\n          ContainerName: \"nginx\"\n          ContainerPort: 80\n  - Other:\n      Type: x\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.at("version"), (1, 1));
        assert_eq!(loc.at("Resources[0]"), (3, 5));
        assert_eq!(loc.at("Resources[0].TargetService"), (3, 5));
        assert_eq!(
            loc.at("Resources[0].TargetService.Properties.LoadBalancerInfo.ContainerPort"),
            (9, 11)
        );
        assert_eq!(loc.at("Resources[1].Other.Type"), (11, 7));
        assert_eq!(loc.at("Resources[0].TargetService.Nope"), (3, 5));
    }

    #[test]
    fn yaml_compact_sequences_block_scalars_and_comments() {
        let text = "version: 0.2\nphases:\n  build:\n    commands:\n    - echo hi\n    - |\n      a: b\n      stackbake build\n    - stackbake build # x\nartifacts:\n  files:\n  - taskdef.json\n";
        let loc = YamlLocator::new(text);
        assert_eq!(loc.at("phases.build.commands[0]"), (5, 7));
        assert_eq!(loc.at("phases.build.commands[1]"), (6, 7));
        assert_eq!(loc.at("phases.build.commands[2]"), (9, 7));
        assert!(!loc.has("phases.build.commands[1].a"));
        assert_eq!(loc.at("artifacts.files[0]"), (12, 5));
    }
}

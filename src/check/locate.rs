//! Where a key of a YAML file lives, so findings can say `file:line:col`.
//!
//! serde_yaml gives no spans for keys or values of a parsed document, so
//! [`YamlLocator`] is a line-based locator for the block-style YAML that
//! appspec and buildspec files use (mappings, `- ` sequences, block
//! scalars, comments). Flow style (`{a: 1}`) is located at its parent key.
//! It falls back to the nearest ancestor path it knows, then to 1:1. (JSON
//! files are located by the span scanner, `taskdef::spans`.)

use std::collections::BTreeMap;

use crate::taskdef::spans::parent_path as parent;

/// Line and column of keys and sequence items of a block-style YAML document.
#[derive(Debug, Default)]
pub(super) struct YamlLocator {
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

/// The locator's scan state, line to line.
#[derive(Debug, Default)]
struct Scan {
    /// path → (line, col), as in [`YamlLocator`].
    spans: BTreeMap<String, (usize, usize)>,
    /// The keys and items enclosing the current line.
    stack: Vec<Frame>,
    /// The next item index under each sequence's path.
    counters: BTreeMap<String, usize>,
    /// Inside a block scalar: lines indented more than this are its text.
    block_over: Option<usize>,
}

impl Scan {
    /// Records the keys and sequence items of line `line_no`.
    fn line(&mut self, line_no: usize, line: &str) {
        let indent = line.chars().take_while(|c| *c == ' ').count();
        let content = line.trim();
        if let Some(limit) = self.block_over {
            if content.is_empty() || indent > limit {
                return;
            }
            self.block_over = None;
        }
        if content.is_empty() || content.starts_with('#') || content == "---" || content == "..." {
            return;
        }
        let (col, rest) = self.items(line_no, indent, &line[indent..]);
        if rest.is_empty() {
            return;
        }
        if is_block_scalar(rest) {
            self.block_over = Some(indent);
            return;
        }
        let Some((key, value)) = split_key(rest) else {
            return;
        };
        self.key(line_no, col, key);
        if is_block_scalar(value) {
            self.block_over = Some(col);
        }
    }

    /// Records the sequence items that start `rest` at column `col`,
    /// possibly nested on one line (`- - a`); returns the column and the
    /// text after them.
    fn items<'l>(&mut self, line_no: usize, mut col: usize, mut rest: &'l str) -> (usize, &'l str) {
        while rest == "-" || rest.starts_with("- ") {
            while self
                .stack
                .last()
                .is_some_and(|f| f.indent > col || (f.indent == col && f.is_item))
            {
                self.stack.pop();
            }
            let parent = path_of(&self.stack);
            let counter = self.counters.entry(parent).or_insert(0);
            let seg = format!("[{counter}]");
            *counter += 1;
            let after = rest[1..].trim_start();
            let skip = rest.len() - after.len();
            self.stack.push(Frame {
                indent: col,
                seg,
                is_item: true,
            });
            self.spans
                .entry(path_of(&self.stack))
                .or_insert((line_no, col + skip + 1));
            col += skip;
            rest = after;
            if rest.is_empty() {
                break;
            }
        }
        (col, rest)
    }

    /// Records mapping key `key` at column `col`.
    fn key(&mut self, line_no: usize, col: usize, key: String) {
        while self
            .stack
            .last()
            .is_some_and(|f| f.indent > col || (f.indent == col && !f.is_item))
        {
            self.stack.pop();
        }
        self.stack.push(Frame {
            indent: col,
            seg: key,
            is_item: false,
        });
        let path = path_of(&self.stack);
        self.counters.remove(&path);
        self.spans.entry(path).or_insert((line_no, col + 1));
    }
}

impl YamlLocator {
    /// Scans `text` line by line. Never fails.
    pub(super) fn new(text: &str) -> Self {
        let mut scan = Scan::default();
        for (n, line) in text.lines().enumerate() {
            scan.line(n + 1, line);
        }
        Self { spans: scan.spans }
    }

    /// Line and column of `path` (`Resources[0].TargetService.Properties`),
    /// or of its nearest known ancestor, else 1:1.
    pub(super) fn at(&self, path: &str) -> (usize, usize) {
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
    pub(super) fn has(&self, path: &str) -> bool {
        self.spans.contains_key(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

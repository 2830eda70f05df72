//! The ECS side of a stackbake run: reading `taskdef.json` (the ECS task
//! definition) and `appspec.yaml` (the CodeDeploy ECS appspec), mapping each
//! container to a Dockerfile target (SPEC step 2), and writing the artifact
//! files with pinned images (SPEC step 8). Pure logic: no network, no Docker,
//! no file I/O — callers pass text in and get text out.

pub(crate) mod appspec;
pub(crate) mod image_ref;
pub(crate) mod mapping;
pub(crate) mod rewrite;
pub(crate) mod spans;

mod error;

use std::collections::BTreeMap;
use std::ops::Range;

use serde_json::{Map, Value};

use spans::JsonSpans;

pub(crate) use error::TaskdefError;
pub(crate) use image_ref::{Image, ImageError};
pub(crate) use mapping::{Mapping, map_containers};
pub(crate) use rewrite::{image_definitions_json, image_detail_json};

/// The JSON type name of a value, for error messages.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// One container of the task definition, as stackbake sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Container {
    /// `containerDefinitions[i].name`.
    pub name: String,
    /// `containerDefinitions[i].image`, verbatim.
    pub image: String,
}

/// A task definition without problems, that remembers its exact text, so
/// that [`rewrite::pin_images`] can change the `image` values and nothing else.
#[derive(Debug, Clone)]
pub(crate) struct TaskDef {
    value: Value,
    /// The text, and where each of its values is.
    spans: JsonSpans,
    containers: Vec<Container>,
    /// Byte range (quotes included) of each container's `image` string.
    image_spans: Vec<Range<usize>>,
}

/// One thing wrong with a task definition: what (the error `build` stops
/// on) and where (its key path, and its line and column in the file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Key path of what is wrong (`containerDefinitions[2].image`); empty
    /// for the whole document.
    pub path: String,
    /// 1-based line: of the key at `path`, or of its nearest ancestor.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, as `build` reports it.
    pub error: TaskdefError,
}

/// Everything reading a task definition found: the document (when the
/// text is JSON), where each of its values is, and every problem, in the
/// order `build` reports them ([`TaskDef::parse`] fails with the first).
#[derive(Debug, Clone)]
pub(crate) struct Reading {
    value: Option<Value>,
    spans: JsonSpans,
    containers: Vec<Container>,
    image_spans: Vec<Range<usize>>,
    problems: Vec<Problem>,
}

impl Reading {
    /// Every problem found, in the order `build` reports them.
    pub(crate) fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// The task definition, when the reading found no problem.
    pub(crate) fn taskdef(&self) -> Option<TaskDef> {
        self.clone().into_taskdef().ok()
    }

    /// The task definition, or the first problem's error.
    pub(crate) fn into_taskdef(self) -> Result<TaskDef, TaskdefError> {
        match (self.problems.into_iter().next(), self.value) {
            (Some(first), _) => Err(first.error),
            (None, Some(value)) => Ok(TaskDef {
                value,
                spans: self.spans,
                containers: self.containers,
                image_spans: self.image_spans,
            }),
            (None, None) => Err(TaskdefError::Scan {
                line: 1,
                column: 1,
                message: "no document was read".to_owned(),
            }),
        }
    }

    /// The parsed JSON and where each of its values is, whatever its
    /// problems; `None` when the text is not JSON.
    pub(crate) fn into_document(self) -> Option<(Value, JsonSpans)> {
        Some((self.value?, self.spans))
    }
}

impl TaskDef {
    /// Parses a task definition: the first problem [`TaskDef::read`] finds
    /// is the error.
    pub(crate) fn parse(text: &str) -> Result<Self, TaskdefError> {
        Self::read(text).into_taskdef()
    }

    /// Reads a task definition and reports every problem, each with its
    /// key path and line:column: invalid JSON (then nothing else), a
    /// top-level value that is not an object, a missing, non-array or empty
    /// `containerDefinitions`, a container that is not an object or lacks a
    /// non-empty string `name` or `image`, repeated container names, and a
    /// repeated `containerDefinitions`, `name` or `image` key. A leading
    /// UTF-8 BOM is accepted and kept.
    pub(crate) fn read(text: &str) -> Reading {
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(e) => {
                return Reading {
                    value: None,
                    spans: JsonSpans::unscanned(text),
                    containers: Vec::new(),
                    image_spans: Vec::new(),
                    problems: vec![Problem {
                        path: String::new(),
                        line: e.line().max(1),
                        column: e.column().max(1),
                        error: TaskdefError::Json {
                            line: e.line(),
                            column: e.column(),
                            message: strip_position(&e.to_string()),
                        },
                    }],
                };
            }
        };
        let (spans, scan_error) = match JsonSpans::scan(text) {
            Ok(spans) => (spans, None),
            Err(e) => (JsonSpans::unscanned(text), Some(e)),
        };
        let mut v = Validator {
            spans: &spans,
            problems: Vec::new(),
        };
        let containers = v.structure(&value);
        let image_spans = match scan_error {
            Some(e) => {
                v.scan_problem(e.offset, e.message);
                Vec::new()
            }
            None => {
                v.duplicate_keys();
                v.image_spans(&containers)
            }
        };
        let problems = v.problems;
        Reading {
            value: Some(value),
            spans,
            containers: containers.into_iter().map(|(_, c)| c).collect(),
            image_spans,
            problems,
        }
    }

    /// The exact text this task definition was parsed from.
    pub(crate) fn raw(&self) -> &str {
        self.spans.text()
    }

    /// The parsed JSON (key order preserved).
    pub(crate) fn value(&self) -> &Value {
        &self.value
    }

    /// The containers, in file order.
    pub(crate) fn containers(&self) -> Vec<Container> {
        self.containers.clone()
    }

    /// The container names, in file order.
    pub(crate) fn container_names(&self) -> Vec<String> {
        self.containers.iter().map(|c| c.name.clone()).collect()
    }

    /// The task definition `family`, when it is a non-empty string.
    pub(crate) fn family(&self) -> Option<&str> {
        self.value
            .get("family")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
    }

    /// The AWS region of the first container whose image is in a private ECR
    /// registry (used when `AWS_REGION` is not set).
    pub(crate) fn region_hint(&self) -> Option<String> {
        self.containers
            .iter()
            .find_map(|c| match Image::parse(&c.image) {
                Ok(Image::Ref(r)) => r.ecr().map(|ecr| ecr.region),
                _ => None,
            })
    }

    pub(crate) fn image_spans(&self) -> &[Range<usize>] {
        &self.image_spans
    }

    pub(crate) fn container_list(&self) -> &[Container] {
        &self.containers
    }
}

/// Collects the problems of one task definition, placed by `spans`.
struct Validator<'s> {
    spans: &'s JsonSpans,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    /// A problem at the key of `path` (or of its nearest ancestor).
    fn at(&mut self, path: String, error: TaskdefError) {
        let (line, column) = self.spans.key(&path);
        self.problems.push(Problem {
            path,
            line,
            column,
            error,
        });
    }

    fn scan_problem(&mut self, offset: usize, message: String) {
        let (line, column) = self.spans.line_col(offset);
        self.problems.push(Problem {
            path: String::new(),
            line,
            column,
            error: TaskdefError::Scan {
                line,
                column,
                message,
            },
        });
    }

    /// The shape of the document and of each container; returns the
    /// containers that are fine, with their index.
    fn structure(&mut self, value: &Value) -> Vec<(usize, Container)> {
        let Some(defs) = self.container_definitions(value) else {
            return Vec::new();
        };
        let mut first_named: BTreeMap<&str, usize> = BTreeMap::new();
        let mut containers = Vec::with_capacity(defs.len());
        for (index, def) in defs.iter().enumerate() {
            if let Some(container) = self.container(index, def, &mut first_named) {
                containers.push((index, container));
            }
        }
        containers
    }

    /// The `containerDefinitions` array of a document that is an object;
    /// `None` when there is none to read (an empty one is a problem too).
    fn container_definitions<'v>(&mut self, value: &'v Value) -> Option<&'v [Value]> {
        let Value::Object(top) = value else {
            self.at(
                String::new(),
                TaskdefError::NotAnObject {
                    found: json_kind(value),
                },
            );
            return None;
        };
        let defs = match top.get("containerDefinitions") {
            Some(Value::Array(defs)) => defs,
            Some(other) => {
                self.at(
                    "containerDefinitions".to_owned(),
                    TaskdefError::ContainerDefinitionsNotArray {
                        found: json_kind(other),
                    },
                );
                return None;
            }
            None => {
                let describe_output = top.contains_key("taskDefinition");
                self.at(
                    if describe_output {
                        "taskDefinition"
                    } else {
                        ""
                    }
                    .to_owned(),
                    TaskdefError::MissingContainerDefinitions { describe_output },
                );
                return None;
            }
        };
        if defs.is_empty() {
            self.at(
                "containerDefinitions".to_owned(),
                TaskdefError::NoContainers,
            );
        }
        Some(defs)
    }

    /// Container `index` of `containerDefinitions`, when it is an object with
    /// a string `name` and `image` and its name is not taken; `first_named`
    /// maps each name seen so far to its first index.
    fn container<'v>(
        &mut self,
        index: usize,
        def: &'v Value,
        first_named: &mut BTreeMap<&'v str, usize>,
    ) -> Option<Container> {
        let path = format!("containerDefinitions[{index}]");
        let Value::Object(obj) = def else {
            self.at(
                path,
                TaskdefError::ContainerNotObject {
                    index,
                    found: json_kind(def),
                },
            );
            return None;
        };
        let name = self.field(obj, index, &path, "name", String::new());
        let label = name
            .as_ref()
            .map_or_else(String::new, |n| format!(" ({n})"));
        let image = self.field(obj, index, &path, "image", label);
        let mut unique = true;
        if let Some(Value::String(n)) = obj.get("name") {
            if let Some(&first) = first_named.get(n.as_str()) {
                unique = false;
                self.at(
                    format!("{path}.name"),
                    TaskdefError::DuplicateContainer {
                        name: n.clone(),
                        first,
                        second: index,
                    },
                );
            } else {
                first_named.insert(n, index);
            }
        }
        match (name, image, unique) {
            (Some(name), Some(image), true) => Some(Container { name, image }),
            _ => None,
        }
    }

    /// A container's non-empty string `field`, or a problem.
    fn field(
        &mut self,
        obj: &Map<String, Value>,
        index: usize,
        path: &str,
        field: &'static str,
        label: String,
    ) -> Option<String> {
        let problem = match obj.get(field) {
            Some(Value::String(s)) if !s.is_empty() => return Some(s.clone()),
            None => "is missing".to_owned(),
            Some(Value::String(_)) => "is empty".to_owned(),
            Some(v) => format!("is {}", json_kind(v)),
        };
        self.at(
            format!("{path}.{field}"),
            TaskdefError::ContainerField {
                index,
                label,
                field,
                problem,
            },
        );
        None
    }

    /// A second `containerDefinitions` key, or a second `name` or `image`
    /// key in a container: JSON readers disagree on which one wins.
    fn duplicate_keys(&mut self) {
        let spans = self.spans;
        let Some(root) = spans.root() else { return };
        let mut found: Vec<(usize, String, String)> = Vec::new();
        let mut repeated = |node, key: &str, path: String| {
            for second in spans.members_named(node, key).skip(1) {
                if let Some(span) = spans.key_span(second) {
                    found.push((span.start, key.to_owned(), path.clone()));
                }
            }
        };
        repeated(
            root,
            "containerDefinitions",
            "containerDefinitions".to_owned(),
        );
        if let Some(defs) = spans.member(root, "containerDefinitions") {
            let mut index = 0;
            while let Some(def) = spans.element(defs, index) {
                for key in ["name", "image"] {
                    repeated(def, key, format!("containerDefinitions[{index}].{key}"));
                }
                index += 1;
            }
        }
        found.sort();
        for (offset, key, path) in found {
            let (line, column) = spans.line_col(offset);
            self.problems.push(Problem {
                path,
                line,
                column,
                error: TaskdefError::DuplicateKey { key, line, column },
            });
        }
    }

    /// The byte range of each container's `image` string. The scanner and
    /// serde_json must agree on it: a disagreement is a problem.
    fn image_spans(&mut self, containers: &[(usize, Container)]) -> Vec<Range<usize>> {
        let spans = self.spans;
        let mut out = Vec::with_capacity(containers.len());
        for (index, c) in containers {
            let span = spans
                .root()
                .and_then(|root| spans.member(root, "containerDefinitions"))
                .and_then(|defs| spans.element(defs, *index))
                .and_then(|def| spans.member(def, "image"))
                .and_then(|image| spans.value_span(image))
                .filter(|span| {
                    spans
                        .text()
                        .get(span.clone())
                        .and_then(|token| serde_json::from_str::<String>(token).ok())
                        .is_some_and(|image| image == c.image)
                });
            match span {
                Some(span) => out.push(span),
                None => self.scan_problem(
                    0,
                    format!("the image of container `{}` was not found", c.name),
                ),
            }
        }
        out
    }
}

/// serde_json appends " at line L column C"; we print the position ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod fuzz_tests;

#[cfg(test)]
mod tests;

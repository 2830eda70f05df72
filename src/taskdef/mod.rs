//! The ECS side of a stackbake run: reading `taskdef.json` (the ECS task
//! definition) and `appspec.yaml` (the CodeDeploy ECS appspec), mapping each
//! container to a Dockerfile target (SPEC step 2), and writing the artifact
//! files with pinned images (SPEC step 8). Pure logic: no network, no Docker,
//! no file I/O — callers pass text in and get text out.

pub mod appspec;
pub mod image_ref;
pub mod mapping;
pub mod rewrite;

use std::ops::Range;

use serde_json::Value;

use crate::reference::{HostError, ImageRefError};

pub use appspec::AppSpec;
pub use image_ref::{Image, ImageError};
pub use mapping::{Mapping, map_containers, parse_target_flag};
pub use rewrite::{image_definitions_json, image_detail_json, pin_images};

/// Everything that can be wrong with a task definition, an appspec, the
/// container-to-target mapping or a pin request. Every message names the file
/// or flag, what is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskdefError {
    /// The task definition is not valid JSON.
    #[error(
        "taskdef.json:{line}:{column}: invalid JSON: {message}; fix the syntax (a JSON linter shows the exact spot)"
    )]
    Json {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// The parser's description.
        message: String,
    },
    /// The top-level JSON value is not an object.
    #[error(
        "taskdef.json: the top-level value is {found}, expected an object with `containerDefinitions` (an ECS task definition)"
    )]
    NotAnObject {
        /// JSON type found instead.
        found: &'static str,
    },
    /// `containerDefinitions` is missing.
    #[error(
        "taskdef.json: `containerDefinitions` is missing: an ECS task definition lists its containers there{hint}"
    )]
    MissingContainerDefinitions {
        /// Extra advice (starts with `; `), or empty.
        hint: String,
    },
    /// `containerDefinitions` is not an array.
    #[error(
        "taskdef.json: `containerDefinitions` is {found}, expected an array of container definitions"
    )]
    ContainerDefinitionsNotArray {
        /// JSON type found instead.
        found: &'static str,
    },
    /// An element of `containerDefinitions` is not an object.
    #[error(
        "taskdef.json: containerDefinitions[{index}] is {found}, expected an object with `name` and `image`"
    )]
    ContainerNotObject {
        /// Index in `containerDefinitions`.
        index: usize,
        /// JSON type found instead.
        found: &'static str,
    },
    /// A container lacks a string `name` or `image`, or it is empty.
    #[error(
        "taskdef.json: containerDefinitions[{index}]{label}: `{field}` {problem}; every container needs a non-empty string `{field}`"
    )]
    ContainerField {
        /// Index in `containerDefinitions`.
        index: usize,
        /// ` (name)` when the container has a name, else empty.
        label: String,
        /// `name` or `image`.
        field: &'static str,
        /// What is wrong (`is missing`, `is a number`, `is empty`).
        problem: String,
    },
    /// Two containers share a name.
    #[error(
        "taskdef.json: containers {first} and {second} are both named `{name}`; container names must be unique"
    )]
    DuplicateContainer {
        /// The repeated name.
        name: String,
        /// Index of the first.
        first: usize,
        /// Index of the second.
        second: usize,
    },
    /// A key that stackbake reads or rewrites appears twice in one object.
    #[error(
        "taskdef.json:{line}:{column}: key `{key}` appears twice in the same object; keep one, JSON readers disagree on which wins"
    )]
    DuplicateKey {
        /// The key.
        key: String,
        /// 1-based line of the second occurrence.
        line: usize,
        /// 1-based column of the second occurrence.
        column: usize,
    },
    /// The span scanner disagreed with serde_json (a stackbake bug).
    #[error(
        "taskdef.json:{line}:{column}: internal error while locating image fields: {message}; please report this with the file"
    )]
    Scan {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What went wrong.
        message: String,
    },
    /// A container's `image` is not a valid reference or placeholder.
    #[error("taskdef.json: container `{container}` has image `{image}`: {source}")]
    InvalidImage {
        /// Container name.
        container: String,
        /// The image text.
        image: String,
        /// Why it is invalid.
        source: ImageError,
    },
    /// A `--target` flag is not `CONTAINER=STAGE`.
    #[error(
        "--target `{flag}`: {problem}; write it as CONTAINER=STAGE, e.g. --target bash-dog-api=api"
    )]
    TargetFlag {
        /// The flag value.
        flag: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A `--target` names a container the task definition lacks.
    #[error(
        "--target {container}={stage}: taskdef.json has no container `{container}`; its containers are: {}",
        list(available)
    )]
    UnknownTargetContainer {
        /// Container named by the flag.
        container: String,
        /// Stage named by the flag.
        stage: String,
        /// Containers that exist.
        available: Vec<String>,
    },
    /// A `--target` names a stage the Dockerfile lacks.
    #[error(
        "--target {container}={stage}: the Dockerfile has no stage `{stage}`; its stages are: {}",
        list(stages)
    )]
    UnknownTargetStage {
        /// Container named by the flag.
        container: String,
        /// Stage named by the flag.
        stage: String,
        /// Stages that exist.
        stages: Vec<String>,
    },
    /// Two `--target` flags give one container different stages.
    #[error(
        "--target: container `{container}` is given two stages, `{first}` and `{second}`; pass one --target per container"
    )]
    ConflictingTarget {
        /// The container.
        container: String,
        /// First stage given.
        first: String,
        /// Second stage given.
        second: String,
    },
    /// A container whose image is in our registry maps to no stage.
    #[error(
        "container `{container}` (image `{image}`) matches no Dockerfile stage: no stage is named like the container or like a `-`-suffix of the repository `{repository}`. Stages: {}. Rename the stage, or pass --target {container}=STAGE",
        list(stages)
    )]
    Unmapped {
        /// Container name.
        container: String,
        /// Its image.
        image: String,
        /// The image's repository.
        repository: String,
        /// Stages that exist.
        stages: Vec<String>,
    },
    /// The `--registry` value is not a host.
    #[error("--registry `{registry}`: {source} (e.g. --registry 127.0.0.1:5000)")]
    InvalidRegistry {
        /// The flag value.
        registry: String,
        /// Why it is invalid.
        source: HostError,
    },
    /// A pin names a container the task definition lacks.
    #[error(
        "cannot pin container `{container}`: taskdef.json has no such container; its containers are: {}",
        list(available)
    )]
    UnknownPin {
        /// Container asked for.
        container: String,
        /// Containers that exist.
        available: Vec<String>,
    },
    /// A pin's new image is not a valid reference.
    #[error("cannot pin container `{container}` to `{image}`: {source}")]
    InvalidPin {
        /// Container.
        container: String,
        /// The new image.
        image: String,
        /// Why it is invalid.
        source: ImageRefError,
    },
    /// The appspec is not valid YAML.
    #[error("appspec.yaml{location}: invalid YAML: {message}; fix the syntax")]
    Yaml {
        /// `:line:column` when known, else empty.
        location: String,
        /// The parser's description.
        message: String,
    },
    /// A key of the appspec is missing or wrong.
    #[error("appspec.yaml: {path} {problem}")]
    AppSpec {
        /// Key path (`Resources[0].TargetService.Type`).
        path: String,
        /// What is wrong and what it should be.
        problem: String,
    },
    /// The appspec's load-balanced container is not in the task definition.
    #[error(
        "appspec.yaml: {path} is `{container}`, but taskdef.json has no such container; set it to one of: {}",
        list(available)
    )]
    LbContainerNotInTaskdef {
        /// Key path of ContainerName.
        path: String,
        /// The name given.
        container: String,
        /// Containers that exist.
        available: Vec<String>,
    },
}

/// Formats a list for an error message: `a, b, c`, or `(none)`.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

/// The JSON type name of a value, for error messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
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
pub struct Container {
    /// `containerDefinitions[i].name`.
    pub name: String,
    /// `containerDefinitions[i].image`, verbatim.
    pub image: String,
}

/// A parsed task definition that remembers its exact text, so that
/// [`pin_images`] can change the `image` values and nothing else.
#[derive(Debug, Clone)]
pub struct TaskDef {
    raw: String,
    value: Value,
    containers: Vec<Container>,
    /// Byte range (quotes included) of each container's `image` string in `raw`.
    image_spans: Vec<Range<usize>>,
}

impl TaskDef {
    /// Parses a task definition. Fails with a line:column for invalid JSON,
    /// and with a named container for a missing/non-string `name` or `image`,
    /// repeated names, or a repeated `image`/`name` key. A leading UTF-8 BOM is
    /// accepted and kept.
    pub fn parse(text: &str) -> Result<Self, TaskdefError> {
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        let value: Value = serde_json::from_str(body).map_err(|e| TaskdefError::Json {
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
        })?;
        let Value::Object(top) = &value else {
            return Err(TaskdefError::NotAnObject {
                found: json_kind(&value),
            });
        };
        let defs = match top.get("containerDefinitions") {
            Some(Value::Array(defs)) => defs,
            Some(other) => {
                return Err(TaskdefError::ContainerDefinitionsNotArray {
                    found: json_kind(other),
                });
            }
            None => {
                let hint = if top.contains_key("taskDefinition") {
                    "; this looks like `aws ecs describe-task-definition` output: use the object under `taskDefinition`".to_owned()
                } else {
                    String::new()
                };
                return Err(TaskdefError::MissingContainerDefinitions { hint });
            }
        };
        let mut containers: Vec<Container> = Vec::with_capacity(defs.len());
        for (index, def) in defs.iter().enumerate() {
            let Value::Object(obj) = def else {
                return Err(TaskdefError::ContainerNotObject {
                    index,
                    found: json_kind(def),
                });
            };
            let field = |field: &'static str, label: String| match obj.get(field) {
                Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                found => Err(TaskdefError::ContainerField {
                    index,
                    label,
                    field,
                    problem: match found {
                        None => "is missing".to_owned(),
                        Some(Value::String(_)) => "is empty".to_owned(),
                        Some(v) => format!("is {}", json_kind(v)),
                    },
                }),
            };
            let name = field("name", String::new())?;
            let image = field("image", format!(" ({name})"))?;
            if let Some(first) = containers.iter().position(|c| c.name == name) {
                return Err(TaskdefError::DuplicateContainer {
                    name,
                    first,
                    second: index,
                });
            }
            containers.push(Container { name, image });
        }
        let scanned = rewrite::scan_images(text)?;
        if scanned.len() != containers.len() {
            return Err(TaskdefError::Scan {
                line: 1,
                column: 1,
                message: format!(
                    "found {} container definitions, serde_json found {}",
                    scanned.len(),
                    containers.len()
                ),
            });
        }
        let mut image_spans = Vec::with_capacity(scanned.len());
        for (c, s) in containers.iter().zip(scanned) {
            match s {
                Some((span, image)) if image == c.image => image_spans.push(span),
                _ => {
                    let (line, column) = line_col(text, 0);
                    return Err(TaskdefError::Scan {
                        line,
                        column,
                        message: format!("the image of container `{}` was not found", c.name),
                    });
                }
            }
        }
        Ok(Self {
            raw: text.to_owned(),
            value,
            containers,
            image_spans,
        })
    }

    /// The exact text this task definition was parsed from.
    pub fn raw(&self) -> &str {
        &self.raw
    }

    /// The parsed JSON (key order preserved).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The containers, in file order.
    pub fn containers(&self) -> Vec<Container> {
        self.containers.clone()
    }

    /// The container names, in file order.
    pub fn container_names(&self) -> Vec<String> {
        self.containers.iter().map(|c| c.name.clone()).collect()
    }

    /// The task definition `family`, when it is a non-empty string.
    pub fn family(&self) -> Option<&str> {
        self.value
            .get("family")
            .and_then(Value::as_str)
            .filter(|f| !f.is_empty())
    }

    /// The AWS region of the first container whose image is in a private ECR
    /// registry (used when `AWS_REGION` is not set).
    pub fn region_hint(&self) -> Option<String> {
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

/// serde_json appends " at line L column C"; we print the position ourselves.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example stack's task definition; the path works from the scratch
    /// crate and from the main crate (both keep it at the crate root).
    pub(crate) const EXAMPLE_TASKDEF: &str = include_str!("../../taskdef.json");

    fn err(text: &str) -> TaskdefError {
        match TaskDef::parse(text) {
            Ok(td) => panic!("parsed: {td:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn example_taskdef_lists_containers_in_order() -> Result<(), TaskdefError> {
        let td = TaskDef::parse(EXAMPLE_TASKDEF)?;
        assert_eq!(
            td.container_names(),
            ["nginx", "bash-dog-api", "sidecar", "log-router"]
        );
        assert_eq!(
            td.containers()[1].image,
            "123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest"
        );
        assert_eq!(td.region_hint().as_deref(), Some("us-east-2"));
        assert_eq!(td.family(), Some("bash-dog"));
        assert_eq!(td.raw(), EXAMPLE_TASKDEF);
        Ok(())
    }

    #[test]
    fn invalid_json_reports_line_and_column() {
        let e = err("{\n  \"containerDefinitions\": [\n    {\"name\": \"a\",, }\n  ]\n}");
        let TaskdefError::Json { line, column, .. } = &e else {
            panic!("{e:?}");
        };
        assert_eq!((*line, *column), (3, 18));
        let msg = e.to_string();
        assert!(msg.starts_with("taskdef.json:3:18: invalid JSON"), "{msg}");
        assert_eq!(msg.matches("line").count(), 0, "{msg}");
    }

    #[test]
    fn empty_and_truncated_input_are_errors() {
        assert!(matches!(err(""), TaskdefError::Json { .. }));
        assert!(matches!(
            err("{\"containerDefinitions\": ["),
            TaskdefError::Json { .. }
        ));
        assert!(matches!(
            err("[]"),
            TaskdefError::NotAnObject { found: "an array" }
        ));
    }

    #[test]
    fn container_definitions_must_be_an_array() {
        assert!(matches!(
            err("{\"family\": \"x\"}"),
            TaskdefError::MissingContainerDefinitions { .. }
        ));
        assert!(matches!(
            err("{\"containerDefinitions\": {}}"),
            TaskdefError::ContainerDefinitionsNotArray { found: "an object" }
        ));
        assert!(matches!(
            err("{\"containerDefinitions\": [1]}"),
            TaskdefError::ContainerNotObject { index: 0, .. }
        ));
        let e = err("{\"taskDefinition\": {\"containerDefinitions\": []}}").to_string();
        assert!(e.contains("describe-task-definition"), "{e}");
    }

    #[test]
    fn containers_need_string_name_and_image() {
        let e = err(r#"{"containerDefinitions": [{"image": "nginx"}]}"#);
        assert_eq!(
            e.to_string(),
            "taskdef.json: containerDefinitions[0]: `name` is missing; every container needs a non-empty string `name`"
        );
        let e = err(r#"{"containerDefinitions": [{"name": "web", "image": 5}]}"#);
        assert_eq!(
            e.to_string(),
            "taskdef.json: containerDefinitions[0] (web): `image` is a number; every container needs a non-empty string `image`"
        );
        let e = err(r#"{"containerDefinitions": [{"name": "web", "image": ""}]}"#);
        assert!(e.to_string().contains("`image` is empty"), "{e}");
    }

    #[test]
    fn duplicate_container_names_are_rejected() {
        let e = err(
            r#"{"containerDefinitions": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}, {"name": "a", "image": "z"}]}"#,
        );
        assert_eq!(
            e,
            TaskdefError::DuplicateContainer {
                name: "a".into(),
                first: 0,
                second: 2
            }
        );
        assert!(e.to_string().contains("both named `a`"));
    }

    #[test]
    fn duplicate_image_key_is_rejected_with_position() {
        let e = err(
            "{\"containerDefinitions\": [{\"name\": \"a\", \"image\": \"x\",\n \"image\": \"y\"}]}",
        );
        assert_eq!(
            e,
            TaskdefError::DuplicateKey {
                key: "image".into(),
                line: 2,
                column: 2
            }
        );
    }

    #[test]
    fn bom_is_accepted() -> Result<(), TaskdefError> {
        let td = TaskDef::parse(
            "\u{feff}{\"containerDefinitions\": [{\"name\": \"a\", \"image\": \"x\"}]}",
        )?;
        assert_eq!(td.container_names(), ["a"]);
        Ok(())
    }

    #[test]
    fn region_hint_skips_non_ecr_images() -> Result<(), TaskdefError> {
        let td = TaskDef::parse(
            r#"{"containerDefinitions": [
                {"name": "a", "image": "public.ecr.aws/x/y"},
                {"name": "b", "image": "<IMAGE1_NAME>"},
                {"name": "c", "image": "999999999999.dkr.ecr.eu-central-1.amazonaws.com/p-c"}]}"#,
        )?;
        assert_eq!(td.region_hint().as_deref(), Some("eu-central-1"));
        let none =
            TaskDef::parse(r#"{"containerDefinitions": [{"name": "a", "image": "nginx"}]}"#)?;
        assert_eq!(none.region_hint(), None);
        Ok(())
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncé d", 7), (2, 4));
        assert_eq!(line_col("x", 99), (1, 2));
    }

    #[test]
    fn never_panics_on_garbage() {
        for s in [
            "",
            "{",
            "}",
            "[",
            "\"",
            "{\"containerDefinitions\"",
            "nul",
            "{\"a\":1}",
            "\u{feff}",
            "{\"containerDefinitions\": [{\"name\": \"\\ud800\", \"image\": \"x\"}]}",
            "{\"containerDefinitions\": [null, {}]}",
        ] {
            let _ = TaskDef::parse(s);
        }
    }
}

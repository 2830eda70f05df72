//! [`TaskdefError`]: everything that can be wrong with a task definition,
//! an appspec, the container-to-target mapping or a pin request.

use super::ImageError;
use crate::reference::{HostError, ImageRefError};

/// Everything that can be wrong with a task definition, an appspec, the
/// container-to-target mapping or a pin request. Every message names the file
/// or flag, what is wrong, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TaskdefError {
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
        "taskdef.json: `containerDefinitions` is missing: an ECS task definition lists its containers there{}",
        describe_hint(*describe_output)
    )]
    MissingContainerDefinitions {
        /// The object has a `taskDefinition` key instead: this is
        /// `aws ecs describe-task-definition` output.
        describe_output: bool,
    },
    /// `containerDefinitions` is not an array.
    #[error(
        "taskdef.json: `containerDefinitions` is {found}, expected an array of container definitions"
    )]
    ContainerDefinitionsNotArray {
        /// JSON type found instead.
        found: &'static str,
    },
    /// `containerDefinitions` is an empty array.
    #[error(
        "taskdef.json: `containerDefinitions` is empty: a task definition needs at least one container (RegisterTaskDefinition rejects an empty list)"
    )]
    NoContainers,
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

/// The advice added to [`TaskdefError::MissingContainerDefinitions`].
fn describe_hint(describe_output: bool) -> &'static str {
    if describe_output {
        "; this looks like `aws ecs describe-task-definition` output: use the object under `taskDefinition`"
    } else {
        ""
    }
}

/// Formats a list for an error message: `a, b, c`, or `(none)`.
fn list(items: &[String]) -> String {
    if items.is_empty() {
        "(none)".to_owned()
    } else {
        items.join(", ")
    }
}

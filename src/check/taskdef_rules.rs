//! Rules on `taskdef.json` alone: its structure as RegisterTaskDefinition
//! sees it (`taskdef/…`) and awsvpc networking between its containers
//! (`network/…`). Secrets and leftover placeholders have their own files.

use serde_json::{Map, Value};

use super::finding::{Finding, Severity};
pub(crate) use super::network_rules::container_ports;
use crate::reference::EcrHost;
use crate::taskdef::Image;
use crate::taskdef::spans::JsonSpans;
use crate::taskdef::{Problem, TaskDef, TaskdefError};

/// A task definition that parsed as JSON, with where its values are.
pub(crate) struct Td {
    /// The file, as shown in findings.
    pub file: String,
    /// The parsed document.
    pub value: Value,
    /// Key and value positions.
    pub loc: JsonSpans,
    /// The task definition as `build` reads it, when it has no problem.
    pub taskdef: Option<TaskDef>,
}

/// One container definition that is a JSON object, with its index and name.
pub(crate) struct Container<'a> {
    pub index: usize,
    pub name: Option<&'a str>,
    pub def: &'a Map<String, Value>,
}

impl<'a> Container<'a> {
    /// The JSON path of this container's key `key`.
    pub(super) fn path(&self, key: &str) -> String {
        if key.is_empty() {
            format!("containerDefinitions[{}]", self.index)
        } else {
            format!("containerDefinitions[{}].{key}", self.index)
        }
    }

    /// `name` for messages, `#index` when unnamed.
    pub(super) fn label(&self) -> String {
        self.name
            .map_or_else(|| format!("#{}", self.index), |n| format!("`{n}`"))
    }

    /// The image string, if any.
    pub(super) fn image(&self) -> Option<&'a str> {
        self.def.get("image").and_then(Value::as_str)
    }
}

impl Td {
    /// The container definitions that are objects.
    pub(super) fn containers(&self) -> Vec<Container<'_>> {
        self.value
            .get("containerDefinitions")
            .and_then(Value::as_array)
            .map(|defs| {
                defs.iter()
                    .enumerate()
                    .filter_map(|(index, d)| {
                        d.as_object().map(|def| Container {
                            index,
                            name: def.get("name").and_then(Value::as_str),
                            def,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of all containers.
    pub(super) fn names(&self) -> Vec<String> {
        self.containers()
            .iter()
            .filter_map(|c| c.name.map(str::to_owned))
            .collect()
    }

    /// A finding at the key of `path`.
    pub(super) fn at(
        &self,
        path: &str,
        severity: Severity,
        rule: &'static str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Finding {
        Finding::new(
            &self.file,
            self.loc.key(path),
            severity,
            rule,
            message,
            help,
        )
    }

    /// Whether the task uses awsvpc networking (explicitly, or as FARGATE forces).
    pub(super) fn awsvpc(&self) -> bool {
        match self.value.get("networkMode").and_then(Value::as_str) {
            Some(mode) => mode == "awsvpc",
            None => self.fargate(),
        }
    }

    /// Whether `requiresCompatibilities` includes FARGATE.
    pub(super) fn fargate(&self) -> bool {
        self.value
            .get("requiresCompatibilities")
            .and_then(Value::as_array)
            .is_some_and(|a| a.iter().any(|v| v.as_str() == Some("FARGATE")))
    }
}

/// Reads the task definition with [`TaskDef::read`], the reader `build`
/// uses, and reports each of its problems (`taskdef/invalid-json`,
/// `taskdef/structure`, `taskdef/describe-output`,
/// `taskdef/duplicate-container-name`). Returns `None` only when the text
/// is not JSON at all.
pub(crate) fn parse(file: &str, text: &str, out: &mut Vec<Finding>) -> Option<Td> {
    let reading = TaskDef::read(text);
    out.extend(reading.problems().iter().map(|p| finding(file, p)));
    let taskdef = reading.taskdef();
    let (value, loc) = reading.into_document()?;
    Some(Td {
        file: file.to_owned(),
        value,
        loc,
        taskdef,
    })
}

const STRUCTURE: &str = "taskdef/structure";

/// The finding for one problem of the task definition.
fn finding(file: &str, p: &Problem) -> Finding {
    let Explanation {
        rule,
        message,
        help,
    } = document_problem(&p.error).unwrap_or_else(|| part_problem(&p.error));
    Finding::new(
        file,
        (p.line, p.column),
        Severity::Error,
        rule,
        message,
        help,
    )
}

/// A problem's rule id, message and `help:` line.
struct Explanation {
    rule: &'static str,
    message: String,
    help: String,
}

impl Explanation {
    /// An explanation with a fixed help line.
    fn new(rule: &'static str, message: String, help: &str) -> Self {
        Self {
            rule,
            message,
            help: help.to_owned(),
        }
    }
}

/// A problem of the document as a whole (its JSON, its top-level shape,
/// `containerDefinitions` itself); `None` for the others.
fn document_problem(error: &TaskdefError) -> Option<Explanation> {
    Some(match error {
        TaskdefError::Json { message, .. } => Explanation::new(
            "taskdef/invalid-json",
            format!("taskdef.json is not valid JSON: {message}"),
            "fix the syntax at this position (a trailing comma or a missing quote is the usual cause)",
        ),
        TaskdefError::NotAnObject { found } => Explanation::new(
            STRUCTURE,
            format!("the task definition is {found}, expected an object"),
            "write an object with `family` and `containerDefinitions`",
        ),
        TaskdefError::MissingContainerDefinitions {
            describe_output: true,
        } => Explanation::new(
            "taskdef/describe-output",
            "this is `aws ecs describe-task-definition` output, not a task definition".to_owned(),
            "keep only the object under `taskDefinition` (and drop its output-only fields)",
        ),
        TaskdefError::MissingContainerDefinitions {
            describe_output: false,
        } => Explanation::new(
            STRUCTURE,
            "`containerDefinitions` is missing".to_owned(),
            "list the task's containers under `containerDefinitions`",
        ),
        TaskdefError::ContainerDefinitionsNotArray { found } => Explanation::new(
            STRUCTURE,
            format!("`containerDefinitions` is {found}, expected an array"),
            "list the containers as a JSON array",
        ),
        TaskdefError::NoContainers => Explanation::new(
            STRUCTURE,
            "`containerDefinitions` is empty".to_owned(),
            "a task definition needs at least one container",
        ),
        _ => return None,
    })
}

/// A problem of one container or one object's keys, or any other problem.
fn part_problem(error: &TaskdefError) -> Explanation {
    match error {
        TaskdefError::ContainerNotObject { index, found } => Explanation::new(
            STRUCTURE,
            format!("containerDefinitions[{index}] is {found}, expected an object"),
            "each container definition is an object with `name` and `image`",
        ),
        TaskdefError::ContainerField {
            index,
            field,
            problem,
            ..
        } => Explanation {
            rule: STRUCTURE,
            message: format!("containerDefinitions[{index}]: `{field}` {problem}"),
            help: format!("every container needs a non-empty string `{field}`"),
        },
        TaskdefError::DuplicateContainer { name, first, .. } => Explanation::new(
            "taskdef/duplicate-container-name",
            format!("container name `{name}` is already used by containerDefinitions[{first}]"),
            "container names must be unique within a task definition",
        ),
        TaskdefError::DuplicateKey { key, .. } => Explanation::new(
            STRUCTURE,
            format!("key `{key}` appears twice in the same object"),
            "keep one: JSON readers disagree on which one wins",
        ),
        other => Explanation::new(
            STRUCTURE,
            other.to_string(),
            "please report this with the file",
        ),
    }
}

/// Fields DescribeTaskDefinition returns that RegisterTaskDefinition rejects.
const OUTPUT_ONLY: [&str; 8] = [
    "taskDefinitionArn",
    "revision",
    "status",
    "requiresAttributes",
    "compatibilities",
    "registeredAt",
    "registeredBy",
    "deregisteredAt",
];

/// Valid Fargate task sizes: cpu units → (min MiB, max MiB, step MiB).
const FARGATE_SIZES: [(u64, u64, u64, u64); 7] = [
    (256, 512, 2048, 512),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122_880, 8192),
];

/// `"1024"`, `1024`, `"1 vCPU"`, `"0.25 vcpu"` → CPU units.
fn cpu_units(v: &Value) -> Option<u64> {
    scaled(v, &["vcpu"])
}

/// `"2048"`, `2048`, `"2 GB"`, `"2GB"` → MiB.
fn memory_mib(v: &Value) -> Option<u64> {
    scaled(v, &["gb"])
}

fn scaled(v: &Value, units: &[&str]) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let lower = s.trim().to_ascii_lowercase();
            for unit in units {
                if let Some(num) = lower.strip_suffix(unit) {
                    let x: f64 = num.trim().parse().ok()?;
                    let units = x * 1024.0;
                    return (units.fract() == 0.0 && units > 0.0 && units < 1e9)
                        .then_some(units as u64);
                }
            }
            lower.parse().ok()
        }
        _ => None,
    }
}

/// Whether `image` names a private ECR repository.
pub(crate) fn ecr_parts(image: &str) -> Option<EcrHost> {
    match Image::parse(image) {
        Ok(Image::Ref(r)) => r.ecr(),
        _ => None,
    }
}

/// Whether `image` is a `<IMAGEn_NAME>` placeholder.
fn image_placeholder(image: &str) -> bool {
    image
        .strip_prefix("<IMAGE")
        .and_then(|r| r.strip_suffix("_NAME>"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The task-level rules.
pub(crate) fn rules(td: &Td, out: &mut Vec<Finding>) {
    let Some(top) = td.value.as_object() else {
        return;
    };
    for key in top.keys() {
        if OUTPUT_ONLY.contains(&key.as_str()) {
            out.push(td.at(
                key,
                Severity::Error,
                "taskdef/output-only-field",
                format!("`{key}` is an output-only field: RegisterTaskDefinition rejects it"),
                "delete it (it was copied from describe-task-definition output)",
            ));
        }
    }
    fargate(td, out);
    execution_role(td, out);
    references(td, out);
    essential(td, out);
    placeholders(td, out);
    super::network_rules::rules(td, out);
}

fn fargate(td: &Td, out: &mut Vec<Finding>) {
    if !td.fargate() {
        return;
    }
    let mode = td.value.get("networkMode").and_then(Value::as_str);
    if mode != Some("awsvpc") {
        let (path, found) = match mode {
            Some(m) => ("networkMode", format!("is `{m}`")),
            None => ("requiresCompatibilities", "is not set".to_owned()),
        };
        out.push(td.at(
            path,
            Severity::Error,
            "taskdef/fargate-network-mode",
            format!("FARGATE requires `networkMode: awsvpc`, but networkMode {found}"),
            "set \"networkMode\": \"awsvpc\"",
        ));
    }
    let cpu = td.value.get("cpu");
    let memory = td.value.get("memory");
    let help = "use a Fargate size, e.g. cpu \"256\" with memory \"512\", cpu \"512\" with \"1024\", cpu \"1024\" with \"2048\"";
    let (Some(cpu), Some(memory)) = (cpu, memory) else {
        out.push(td.at(
            if cpu.is_none() { "cpu" } else { "memory" },
            Severity::Error,
            "taskdef/fargate-cpu-memory",
            format!(
                "FARGATE requires task-level `cpu` and `memory`; `{}` is missing",
                if cpu.is_none() { "cpu" } else { "memory" }
            ),
            help,
        ));
        return;
    };
    let (Some(c), Some(m)) = (cpu_units(cpu), memory_mib(memory)) else {
        out.push(td.at(
            "cpu",
            Severity::Error,
            "taskdef/fargate-cpu-memory",
            format!("cannot read task-level cpu {cpu} / memory {memory}"),
            help,
        ));
        return;
    };
    match FARGATE_SIZES.iter().find(|(units, ..)| *units == c) {
        None => out.push(td.at(
            "cpu",
            Severity::Error,
            "taskdef/fargate-cpu-memory",
            format!("cpu {c} is not a Fargate size"),
            "use 256, 512, 1024, 2048, 4096, 8192 or 16384 CPU units",
        )),
        Some((_, min, max, step)) => {
            if m < *min || m > *max || (m - min) % step != 0 {
                out.push(td.at(
                    "memory",
                    Severity::Error,
                    "taskdef/fargate-cpu-memory",
                    format!("memory {m} MiB is not valid with cpu {c} on Fargate"),
                    format!("with cpu {c}, memory must be {min} to {max} MiB in steps of {step}"),
                ));
            }
        }
    }
}

fn execution_role(td: &Td, out: &mut Vec<Finding>) {
    let has_role = td
        .value
        .get("executionRoleArn")
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if has_role {
        return;
    }
    for c in td.containers() {
        let reason = if c
            .def
            .get("secrets")
            .and_then(Value::as_array)
            .is_some_and(|a| !a.is_empty())
        {
            Some(("secrets", "reads `secrets`"))
        } else if c.def.get("repositoryCredentials").is_some() {
            Some(("repositoryCredentials", "uses `repositoryCredentials`"))
        } else if c
            .def
            .get("logConfiguration")
            .and_then(|l| l.get("logDriver"))
            .and_then(Value::as_str)
            == Some("awslogs")
        {
            Some(("logConfiguration.logDriver", "logs with `awslogs`"))
        } else if c.image().and_then(ecr_parts).is_some() {
            Some(("image", "pulls from a private ECR repository"))
        } else {
            None
        };
        if let Some((key, why)) = reason {
            out.push(td.at(
                &c.path(key),
                Severity::Error,
                "taskdef/execution-role-required",
                format!(
                    "container {} {why}, which needs a task execution role, but `executionRoleArn` is missing",
                    c.label()
                ),
                "add \"executionRoleArn\": \"arn:aws:iam::<account>:role/<role>\" (a role with AmazonECSTaskExecutionRolePolicy)",
            ));
            return;
        }
    }
}

fn references(td: &Td, out: &mut Vec<Finding>) {
    let names = td.names();
    let list = names.join(", ");
    for c in td.containers() {
        if let Some(deps) = c.def.get("dependsOn").and_then(Value::as_array) {
            for (i, d) in deps.iter().enumerate() {
                if let Some(n) = d.get("containerName").and_then(Value::as_str)
                    && !names.iter().any(|x| x == n)
                {
                    out.push(td.at(
                        &c.path(&format!("dependsOn[{i}].containerName")),
                        Severity::Error,
                        "taskdef/unknown-container-ref",
                        format!(
                            "container {} depends on `{n}`, which is not a container of this task",
                            c.label()
                        ),
                        format!("use one of: {list}"),
                    ));
                }
            }
        }
        if let Some(links) = c.def.get("links").and_then(Value::as_array) {
            for (i, l) in links.iter().enumerate() {
                let Some(l) = l.as_str() else { continue };
                let n = l.split(':').next().unwrap_or(l);
                if !names.iter().any(|x| x == n) {
                    out.push(td.at(
                        &c.path(&format!("links[{i}]")),
                        Severity::Error,
                        "taskdef/unknown-container-ref",
                        format!(
                            "container {} links to `{n}`, which is not a container of this task",
                            c.label()
                        ),
                        format!("use one of: {list}"),
                    ));
                } else if td.awsvpc() {
                    out.push(td.at(
                        &c.path(&format!("links[{i}]")),
                        Severity::Error,
                        "network/links-awsvpc",
                        format!(
                            "container {} uses `links`, which awsvpc networking does not support",
                            c.label()
                        ),
                        "delete `links`: with awsvpc, containers reach each other on localhost",
                    ));
                }
            }
        }
    }
}

fn essential(td: &Td, out: &mut Vec<Finding>) {
    let cs = td.containers();
    if !cs.is_empty()
        && cs
            .iter()
            .all(|c| c.def.get("essential").and_then(Value::as_bool) == Some(false))
    {
        out.push(td.at(
            "containerDefinitions",
            Severity::Error,
            "taskdef/no-essential-container",
            "every container has `essential: false`; ECS requires at least one essential container",
            "set \"essential\": true on the main container",
        ));
    }
}

fn placeholders(td: &Td, out: &mut Vec<Finding>) {
    let mut seen: Vec<&str> = Vec::new();
    for c in td.containers() {
        let Some(image) = c.image() else { continue };
        if image_placeholder(image) && !seen.contains(&image) {
            seen.push(image);
            if seen.len() == 5 {
                out.push(td.at(
                    &c.path("image"),
                    Severity::Error,
                    "taskdef/too-many-image-placeholders",
                    "more than 4 `<IMAGEn_NAME>` placeholders; CodeDeploy substitutes at most 4",
                    "let stackbake pin the images instead (write real repository URIs), or use at most 4 placeholders",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fargate_sizes() {
        assert_eq!(cpu_units(&Value::from("0.25 vCPU")), Some(256));
        assert_eq!(memory_mib(&Value::from("2 GB")), Some(2048));
        assert_eq!(memory_mib(&Value::from("2GB")), Some(2048));
        assert_eq!(cpu_units(&Value::from(512)), Some(512));
        assert_eq!(cpu_units(&Value::from("lots")), None);
    }
}

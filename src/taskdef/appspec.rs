//! Reading the CodeDeploy ECS `appspec.yaml`: `version: 0.0`, one
//! `AWS::ECS::Service` resource with its `TaskDefinition` and the optional
//! `LoadBalancerInfo` (the container whose image goes into `imageDetail.json`).
//! serde_yaml is confined to this file so it is easy to replace; stackbake
//! copies the appspec verbatim and never re-serialises it, so comments survive.

use serde_yaml::Value;

use super::{TaskDef, TaskdefError};
use ProblemKind as K;

/// The parts of an ECS appspec that stackbake uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AppSpec {
    /// The resource's name (the key under `Resources[0]`, e.g. `TargetService`).
    pub resource_name: String,
    /// `Properties.TaskDefinition`, usually the placeholder `<TASK_DEFINITION>`.
    pub task_definition: String,
    /// `Properties.LoadBalancerInfo.ContainerName`, when `LoadBalancerInfo` is present.
    pub lb_container: Option<String>,
    /// `Properties.LoadBalancerInfo.ContainerPort`, when `LoadBalancerInfo` is present.
    pub lb_port: Option<u16>,
}

/// How a YAML value is named in messages ("a list", "a mapping", ...).
fn yaml_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// One thing wrong with an appspec: the key path it concerns and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    /// Key path (`Resources[0].TargetService.Properties.TaskDefinition`);
    /// empty for the whole document.
    pub path: String,
    /// What is wrong.
    pub kind: ProblemKind,
}

/// What is wrong with an appspec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProblemKind {
    /// Not YAML: the parser's message, and its 1-based line and column
    /// when it knows them.
    Syntax {
        /// Line and column.
        location: Option<(usize, usize)>,
        /// The parser's description, without its position.
        message: String,
    },
    /// The document is not a mapping.
    NotAMapping {
        /// What it is instead.
        found: &'static str,
    },
    /// `version` is missing (`None`), or not 0.0 (its value, as YAML).
    Version {
        /// The value found.
        found: Option<String>,
    },
    /// `Resources` is missing (`None`), or not a list (what it is).
    NoResourceList {
        /// What it is instead.
        found: Option<&'static str>,
    },
    /// `Resources` does not have exactly one entry.
    ResourceCount {
        /// How many entries it has.
        entries: usize,
        /// How many of them are `AWS::ECS::Service` resources.
        services: usize,
    },
    /// The resource entry, its body or its `Properties` has the wrong
    /// shape; `problem` says how, and what to write (after the key path).
    Shape {
        /// What is wrong and what it should be.
        problem: String,
    },
    /// The resource's `Type` is missing (`None`), or not
    /// `AWS::ECS::Service` (its value, as YAML).
    NotEcsService {
        /// The value found.
        found: Option<String>,
    },
    /// `TaskDefinition` is missing (`None`), or not a string (what it is).
    TaskDefinition {
        /// What it is instead.
        found: Option<&'static str>,
    },
    /// `LoadBalancerInfo` is not a mapping.
    LoadBalancerInfo {
        /// What it is instead.
        found: &'static str,
    },
    /// `ContainerName` is missing (`None`), or not a string (what it is).
    ContainerName {
        /// What it is instead.
        found: Option<&'static str>,
    },
    /// `ContainerPort` is missing (`None`), or not a port (its value, as YAML).
    ContainerPort {
        /// The value found.
        found: Option<String>,
    },
}

impl Problem {
    /// The error `build` reports for this problem.
    pub(crate) fn error(&self) -> TaskdefError {
        let problem = match &self.kind {
            K::Syntax { location, message } => {
                return TaskdefError::Yaml {
                    location: location
                        .map(|(line, column)| format!(":{line}:{column}"))
                        .unwrap_or_default(),
                    message: message.clone(),
                };
            }
            K::NotAMapping { found } => {
                return TaskdefError::AppSpec {
                    path: "the document".to_owned(),
                    problem: format!(
                        "is {found}: an ECS appspec is a mapping with `version: 0.0` and `Resources`"
                    ),
                };
            }
            K::Version { found: None } => "is missing: add `version: 0.0`".to_owned(),
            K::Version { found: Some(v) } => {
                format!("is `{v}`: set it to `0.0` (the only appspec version CodeDeploy accepts)")
            }
            K::NoResourceList { found: None } => {
                "is missing: add a `Resources` list with one AWS::ECS::Service resource".to_owned()
            }
            K::NoResourceList { found: Some(kind) } => format!(
                "is {kind}: it must be a list with one AWS::ECS::Service resource (`- TargetService: ...`)"
            ),
            K::ResourceCount { entries, .. } => {
                return TaskdefError::AppSpec {
                    path: "Resources".to_owned(),
                    problem: format!(
                        "has {entries} entries: an ECS appspec has exactly one, the AWS::ECS::Service resource"
                    ),
                };
            }
            K::Shape { problem } => problem.clone(),
            K::NotEcsService { found: None } => {
                "is missing: set it to AWS::ECS::Service".to_owned()
            }
            K::NotEcsService { found: Some(v) } => format!(
                "is `{v}`: set it to AWS::ECS::Service (stackbake handles ECS deployments only)"
            ),
            K::TaskDefinition { found: None } => {
                "is missing: set it to <TASK_DEFINITION>".to_owned()
            }
            K::TaskDefinition { found: Some(kind) } => {
                format!("is {kind}: set it to the string <TASK_DEFINITION>")
            }
            K::LoadBalancerInfo { found } => {
                format!("is {found}: it must hold `ContainerName` and `ContainerPort`")
            }
            K::ContainerName { found: None } => {
                "is missing: set it to the container that receives load balancer traffic".to_owned()
            }
            K::ContainerName { found: Some(kind) } => format!(
                "is {kind}: set it to the name (a string) of the container that receives load balancer traffic"
            ),
            K::ContainerPort { found: None } => {
                "is missing: set it to the port the load balancer sends traffic to".to_owned()
            }
            K::ContainerPort { found: Some(v) } => {
                format!("is `{v}`: set it to an integer port between 1 and 65535")
            }
        };
        TaskdefError::AppSpec {
            path: self.path.clone(),
            problem,
        }
    }
}

/// A YAML parse error as a position and a message without the position
/// (which serde_yaml writes into its message).
pub(crate) fn yaml_syntax(e: &serde_yaml::Error) -> (Option<(usize, usize)>, String) {
    (
        e.location().map(|l| (l.line(), l.column())),
        strip_position(&e.to_string()),
    )
}

/// Removes serde_yaml's ` at line L column C` (the location is printed
/// up front instead).
fn strip_position(message: &str) -> String {
    let Some(at) = message.find(" at line ") else {
        return message.to_owned();
    };
    let rest = &message[at + " at line ".len()..];
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let line_len = digits(rest);
    let Some(after_col) = rest[line_len..].strip_prefix(" column ") else {
        return message.to_owned();
    };
    let tail = &after_col[digits(after_col)..];
    format!("{}{tail}", &message[..at])
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A YAML value as the user wrote it, for messages (`1`, `AWS::Lambda::Function`).
fn shown(v: &Value) -> String {
    serde_yaml::to_string(v)
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// `version: 0.0`. CodeDeploy's only appspec version, written as the number
/// 0.0 (every AWS example) or as the string "0.0" (what the AWS CDK's
/// `EcsAppSpec` writes, and what the user guide asks for); the integer 0 is
/// not it.
fn is_version_0_0(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.is_f64() && n.as_f64() == Some(0.0),
        Value::String(s) => s == "0.0",
        _ => false,
    }
}

/// `ContainerPort`: an integer from 1 to 65535, or a string holding one
/// (`"8080"`, as appspec templates often write it).
fn port(v: &Value) -> Option<u16> {
    let n = match v {
        Value::Number(n) => n.as_u64()?,
        Value::String(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    u16::try_from(n).ok().filter(|p| *p != 0)
}

/// A key's value, `None` when missing or null.
fn get<'v>(map: &'v Value, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|v| !v.is_null())
}

/// Everything reading an appspec found: every problem (in the order
/// `build` reports them; [`AppSpec::parse`] fails with the first) and the
/// values that could be read despite them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Reading {
    problems: Vec<Problem>,
    resource_name: Option<String>,
    task_definition: Option<String>,
    load_balanced: bool,
    lb_container: Option<String>,
    lb_port: Option<u16>,
}

impl Reading {
    /// Every problem found.
    pub(crate) fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// Whether the service has a `LoadBalancerInfo`, even a broken one.
    pub(crate) fn load_balanced(&self) -> bool {
        self.load_balanced
    }

    /// The appspec as far as it could be read: `Some` when the service's
    /// name and `TaskDefinition` were read, whatever else is wrong (a
    /// broken `LoadBalancerInfo` is left out). Rules that compare the
    /// appspec with other files use it.
    pub(crate) fn appspec(&self) -> Option<AppSpec> {
        Some(AppSpec {
            resource_name: self.resource_name.clone()?,
            task_definition: self.task_definition.clone()?,
            lb_container: self.lb_container.clone(),
            lb_port: self.lb_port,
        })
    }

    /// The appspec, or the first problem's error.
    pub(crate) fn into_appspec(self) -> Result<AppSpec, TaskdefError> {
        if let Some(first) = self.problems.first() {
            return Err(first.error());
        }
        self.appspec().ok_or_else(|| TaskdefError::AppSpec {
            path: "Resources".to_owned(),
            problem: "has no readable AWS::ECS::Service resource".to_owned(),
        })
    }

    fn problem(&mut self, path: &str, kind: ProblemKind) {
        self.problems.push(Problem {
            path: path.to_owned(),
            kind,
        });
    }
}

impl AppSpec {
    /// Parses an ECS appspec: the first problem [`AppSpec::read`] finds is
    /// the error.
    pub(crate) fn parse(text: &str) -> Result<Self, TaskdefError> {
        Self::read(text).into_appspec()
    }

    /// Reads an ECS appspec and reports every problem with the key path it
    /// concerns: invalid YAML, a document that is not a mapping, a
    /// `version` that is not 0.0, `Resources` that is not a list of exactly
    /// one resource, a resource that is not a single-key mapping of `Type:
    /// AWS::ECS::Service` and `Properties`, a missing or non-string
    /// `TaskDefinition`, and a `LoadBalancerInfo` without a string
    /// `ContainerName` and a `ContainerPort` from 1 to 65535. Reading goes
    /// on past a problem wherever what follows can still be read.
    pub(crate) fn read(text: &str) -> Reading {
        let mut r = Reading::default();
        r.read_all(text);
        r
    }

    /// Checks that the load-balanced container exists in the task definition.
    pub(crate) fn check_against(&self, td: &TaskDef) -> Result<(), TaskdefError> {
        let Some(name) = &self.lb_container else {
            return Ok(());
        };
        let names = td.container_names();
        if names.contains(name) {
            Ok(())
        } else {
            Err(TaskdefError::LbContainerNotInTaskdef {
                path: format!(
                    "Resources[0].{}.Properties.LoadBalancerInfo.ContainerName",
                    self.resource_name
                ),
                container: name.clone(),
                available: names,
            })
        }
    }
}

/// The steps of [`AppSpec::read`]; a step that returns `None` found a
/// problem after which nothing further can be read.
impl Reading {
    /// Reads the whole appspec, in the order its problems are reported.
    fn read_all(&mut self, text: &str) -> Option<()> {
        let doc = self.document(text)?;
        self.version(&doc);
        let resource = self.first_resource(&doc)?;
        let (base, body) = self.service(resource)?;
        let (props_path, props) = self.properties(&base, body)?;
        self.task_definition(&props_path, props);
        self.load_balancer(&props_path, props)
    }

    /// Parses the YAML and checks that the document is a mapping.
    fn document(&mut self, text: &str) -> Option<Value> {
        let doc: Value = match serde_yaml::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                let (location, message) = yaml_syntax(&e);
                self.problem("", K::Syntax { location, message });
                return None;
            }
        };
        if !doc.is_mapping() {
            self.problem(
                "",
                K::NotAMapping {
                    found: yaml_kind(&doc),
                },
            );
            return None;
        }
        Some(doc)
    }

    /// Checks that `version` is 0.0.
    fn version(&mut self, doc: &Value) {
        match get(doc, "version") {
            None => self.problem("version", K::Version { found: None }),
            Some(v) if !is_version_0_0(v) => self.problem(
                "version",
                K::Version {
                    found: Some(shown(v)),
                },
            ),
            Some(_) => {}
        }
    }

    /// Checks that `Resources` is a list of exactly one entry and returns its first.
    fn first_resource<'d>(&mut self, doc: &'d Value) -> Option<&'d Value> {
        let list = match get(doc, "Resources") {
            Some(Value::Sequence(list)) => list,
            found => {
                self.problem(
                    "Resources",
                    K::NoResourceList {
                        found: found.map(yaml_kind),
                    },
                );
                return None;
            }
        };
        if list.len() != 1 {
            let services = list
                .iter()
                .filter_map(Value::as_mapping)
                .flat_map(|m| m.values())
                .filter(|body| get(body, "Type").and_then(Value::as_str) == Some(ECS_SERVICE))
                .count();
            self.problem(
                if list.is_empty() {
                    "Resources"
                } else {
                    "Resources[1]"
                },
                K::ResourceCount {
                    entries: list.len(),
                    services,
                },
            );
        }
        list.first()
    }

    /// Reads the resource as a single-key mapping of an `AWS::ECS::Service`
    /// body; returns the body's key path and the body.
    fn service<'d>(&mut self, resource: &'d Value) -> Option<(String, &'d Value)> {
        let (name, body) = self.single_entry(resource)?;
        let Value::String(resource_name) = name else {
            self.problem(
                "Resources[0]",
                K::Shape {
                    problem: "has a non-string resource name: name it, e.g. `TargetService`"
                        .to_owned(),
                },
            );
            return None;
        };
        let base = format!("Resources[0].{resource_name}");
        if !body.is_mapping() {
            self.problem(
                &base,
                K::Shape {
                    problem: format!(
                        "is {}: it must hold `Type` and `Properties`",
                        yaml_kind(body)
                    ),
                },
            );
            return None;
        }
        match get(body, "Type") {
            Some(t) if t.as_str() == Some(ECS_SERVICE) => {}
            found => {
                self.problem(
                    &join(&base, "Type"),
                    K::NotEcsService {
                        found: found.map(shown),
                    },
                );
                return None;
            }
        }
        self.resource_name = Some(resource_name.clone());
        Some((base, body))
    }

    /// The one key and value of the resource mapping (`- TargetService: ...`).
    fn single_entry<'d>(&mut self, resource: &'d Value) -> Option<(&'d Value, &'d Value)> {
        match resource {
            Value::Mapping(m) if m.len() == 1 => m.iter().next(),
            other => {
                let shape = match other {
                    Value::Mapping(m) => format!("a mapping with {} keys", m.len()),
                    v => yaml_kind(v).to_owned(),
                };
                self.problem(
                    "Resources[0]",
                    K::Shape {
                        problem: format!(
                            "is {shape}: it must be a mapping with a single key, the resource name (`- TargetService:`)"
                        ),
                    },
                );
                None
            }
        }
    }

    /// Checks that the service has a `Properties` mapping; returns its key path and it.
    fn properties<'d>(&mut self, base: &str, body: &'d Value) -> Option<(String, &'d Value)> {
        let props_path = join(base, "Properties");
        match get(body, "Properties") {
            Some(p) if p.is_mapping() => Some((props_path, p)),
            found => {
                let problem = match found {
                    None => {
                        "is missing: add `Properties` with `TaskDefinition` and `LoadBalancerInfo`"
                            .to_owned()
                    }
                    Some(p) => format!("is {}: it must be a mapping", yaml_kind(p)),
                };
                self.problem(&props_path, K::Shape { problem });
                None
            }
        }
    }

    /// Reads the string `TaskDefinition`.
    fn task_definition(&mut self, props_path: &str, props: &Value) {
        match get(props, "TaskDefinition") {
            Some(Value::String(s)) => self.task_definition = Some(s.clone()),
            found => self.problem(
                &join(props_path, "TaskDefinition"),
                K::TaskDefinition {
                    found: found.map(yaml_kind),
                },
            ),
        }
    }

    /// Reads `LoadBalancerInfo`, when there is one: its `ContainerName` and `ContainerPort`.
    fn load_balancer(&mut self, props_path: &str, props: &Value) -> Option<()> {
        let lb = get(props, "LoadBalancerInfo")?;
        self.load_balanced = true;
        let lb_path = join(props_path, "LoadBalancerInfo");
        if !lb.is_mapping() {
            self.problem(
                &lb_path,
                K::LoadBalancerInfo {
                    found: yaml_kind(lb),
                },
            );
            return None;
        }
        match get(lb, "ContainerName") {
            Some(Value::String(s)) => self.lb_container = Some(s.clone()),
            found => self.problem(
                &join(&lb_path, "ContainerName"),
                K::ContainerName {
                    found: found.map(yaml_kind),
                },
            ),
        }
        self.container_port(&lb_path, get(lb, "ContainerPort"));
        Some(())
    }

    /// Reads `ContainerPort`, a port from 1 to 65535.
    fn container_port(&mut self, lb_path: &str, found: Option<&Value>) {
        let port_path = join(lb_path, "ContainerPort");
        match found {
            Some(p) => match port(p) {
                Some(n) => self.lb_port = Some(n),
                None => self.problem(
                    &port_path,
                    K::ContainerPort {
                        found: Some(shown(p)),
                    },
                ),
            },
            None => self.problem(&port_path, K::ContainerPort { found: None }),
        }
    }
}

/// The resource type of an ECS deployment.
const ECS_SERVICE: &str = "AWS::ECS::Service";

#[cfg(test)]
mod tests;

//! Reading the CodeDeploy ECS `appspec.yaml`: `version: 0.0`, one
//! `AWS::ECS::Service` resource with its `TaskDefinition` and the optional
//! `LoadBalancerInfo` (the container whose image goes into `imageDetail.json`).
//! serde_yaml is confined to this file so it is easy to replace; stackbake
//! copies the appspec verbatim and never re-serialises it, so comments survive.

use serde_yaml::Value;

use super::{TaskDef, TaskdefError};

/// The parts of an ECS appspec that stackbake uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSpec {
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
pub fn yaml_kind(v: &Value) -> &'static str {
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

fn wrong(path: &str, problem: String) -> TaskdefError {
    TaskdefError::AppSpec {
        path: path.to_owned(),
        problem,
    }
}

/// Looks up `key` in `map`, with an error naming `path.key` and `fix`.
fn required<'v>(
    map: &'v Value,
    path: &str,
    key: &str,
    fix: &str,
) -> Result<&'v Value, TaskdefError> {
    match map.get(key) {
        Some(Value::Null) | None => Err(wrong(&join(path, key), format!("is missing: {fix}"))),
        Some(v) => Ok(v),
    }
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

impl AppSpec {
    /// Parses and checks an ECS appspec. Errors name the key path that is
    /// wrong (`Resources[0].TargetService.Properties.TaskDefinition`) and
    /// what it should be. A `LoadBalancerInfo` that is present must have a
    /// string `ContainerName` and an integer `ContainerPort` (1-65535).
    pub fn parse(text: &str) -> Result<Self, TaskdefError> {
        let doc: Value = serde_yaml::from_str(text).map_err(|e| TaskdefError::Yaml {
            location: e
                .location()
                .map(|l| format!(":{}:{}", l.line(), l.column()))
                .unwrap_or_default(),
            message: strip_position(&e.to_string()),
        })?;
        if !doc.is_mapping() {
            return Err(wrong(
                "the document",
                format!(
                    "is {}: an ECS appspec is a mapping with `version: 0.0` and `Resources`",
                    yaml_kind(&doc)
                ),
            ));
        }
        let version = required(&doc, "", "version", "add `version: 0.0`")?;
        let version_ok = match version {
            Value::Number(n) => n.as_f64() == Some(0.0) && !n.is_i64() && !n.is_u64(),
            Value::String(s) => s == "0.0",
            _ => false,
        };
        if !version_ok {
            let shown = serde_yaml::to_string(version).unwrap_or_default();
            return Err(wrong(
                "version",
                format!(
                    "is `{}`: set it to `0.0` (the only appspec version CodeDeploy accepts)",
                    shown.trim()
                ),
            ));
        }
        let resources = required(
            &doc,
            "",
            "Resources",
            "add a `Resources` list with one AWS::ECS::Service resource",
        )?;
        let Value::Sequence(list) = resources else {
            return Err(wrong(
                "Resources",
                format!(
                    "is {}: it must be a list with one AWS::ECS::Service resource (`- TargetService: ...`)",
                    yaml_kind(resources)
                ),
            ));
        };
        let [resource] = list.as_slice() else {
            return Err(wrong(
                "Resources",
                format!(
                    "has {} entries: an ECS appspec has exactly one, the AWS::ECS::Service resource",
                    list.len()
                ),
            ));
        };
        let entries = match resource {
            Value::Mapping(m) if m.len() == 1 => m,
            other => {
                return Err(wrong(
                    "Resources[0]",
                    format!(
                        "is {}: it must be a mapping with a single key, the resource name (`- TargetService:`)",
                        match other {
                            Value::Mapping(m) => format!("a mapping with {} keys", m.len()),
                            v => yaml_kind(v).to_owned(),
                        }
                    ),
                ));
            }
        };
        let Some((name, body)) = entries.iter().next() else {
            return Err(wrong("Resources[0]", "is empty".to_owned()));
        };
        let Value::String(resource_name) = name else {
            return Err(wrong(
                "Resources[0]",
                "has a non-string resource name: name it, e.g. `TargetService`".to_owned(),
            ));
        };
        let base = format!("Resources[0].{resource_name}");
        if !body.is_mapping() {
            return Err(wrong(
                &base,
                format!(
                    "is {}: it must hold `Type` and `Properties`",
                    yaml_kind(body)
                ),
            ));
        }
        let ty = required(body, &base, "Type", "set it to AWS::ECS::Service")?;
        if ty.as_str() != Some("AWS::ECS::Service") {
            let shown = serde_yaml::to_string(ty).unwrap_or_default();
            return Err(wrong(
                &join(&base, "Type"),
                format!(
                    "is `{}`: set it to AWS::ECS::Service (stackbake handles ECS deployments only)",
                    shown.trim()
                ),
            ));
        }
        let props_path = join(&base, "Properties");
        let props = required(
            body,
            &base,
            "Properties",
            "add `Properties` with `TaskDefinition` and `LoadBalancerInfo`",
        )?;
        if !props.is_mapping() {
            return Err(wrong(
                &props_path,
                format!("is {}: it must be a mapping", yaml_kind(props)),
            ));
        }
        let td = required(
            props,
            &props_path,
            "TaskDefinition",
            "set it to <TASK_DEFINITION>",
        )?;
        let Value::String(task_definition) = td else {
            return Err(wrong(
                &join(&props_path, "TaskDefinition"),
                format!(
                    "is {}: set it to the string <TASK_DEFINITION>",
                    yaml_kind(td)
                ),
            ));
        };
        let (lb_container, lb_port) = match props.get("LoadBalancerInfo") {
            None | Some(Value::Null) => (None, None),
            Some(lb) => {
                let lb_path = join(&props_path, "LoadBalancerInfo");
                if !lb.is_mapping() {
                    return Err(wrong(
                        &lb_path,
                        format!(
                            "is {}: it must hold `ContainerName` and `ContainerPort`",
                            yaml_kind(lb)
                        ),
                    ));
                }
                let name = required(
                    lb,
                    &lb_path,
                    "ContainerName",
                    "set it to the container that receives load balancer traffic",
                )?;
                let Value::String(name) = name else {
                    return Err(wrong(
                        &join(&lb_path, "ContainerName"),
                        format!(
                            "is {}: set it to the name (a string) of the container that receives load balancer traffic",
                            yaml_kind(name)
                        ),
                    ));
                };
                let port = required(
                    lb,
                    &lb_path,
                    "ContainerPort",
                    "set it to the port the load balancer sends traffic to",
                )?;
                let port_num = port
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .filter(|p| *p != 0);
                let Some(port_num) = port_num else {
                    let shown = serde_yaml::to_string(port).unwrap_or_default();
                    return Err(wrong(
                        &join(&lb_path, "ContainerPort"),
                        format!(
                            "is `{}`: set it to an integer port between 1 and 65535",
                            shown.trim()
                        ),
                    ));
                };
                (Some(name.clone()), Some(port_num))
            }
        };
        Ok(Self {
            resource_name: resource_name.clone(),
            task_definition: task_definition.clone(),
            lb_container,
            lb_port,
        })
    }

    /// Checks that the load-balanced container exists in the task definition.
    pub fn check_against(&self, td: &TaskDef) -> Result<(), TaskdefError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_APPSPEC: &str = include_str!("../../appspec.yaml");
    const EXAMPLE_TASKDEF: &str = include_str!("../../taskdef.json");

    const GOOD: &str = "version: 0.0
Resources:
  - TargetService:
      Type: AWS::ECS::Service
      Properties:
        TaskDefinition: <TASK_DEFINITION>
        LoadBalancerInfo:
          ContainerName: \"nginx\"
          ContainerPort: 80
";

    fn msg(text: &str) -> String {
        match AppSpec::parse(text) {
            Ok(a) => panic!("parsed: {a:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn example_appspec_parses_and_matches_taskdef() -> Result<(), TaskdefError> {
        let a = AppSpec::parse(EXAMPLE_APPSPEC)?;
        assert_eq!(
            a,
            AppSpec {
                resource_name: "TargetService".into(),
                task_definition: "<TASK_DEFINITION>".into(),
                lb_container: Some("nginx".into()),
                lb_port: Some(80),
            }
        );
        a.check_against(&TaskDef::parse(EXAMPLE_TASKDEF)?)
    }

    #[test]
    fn version_as_string_and_without_load_balancer() -> Result<(), TaskdefError> {
        let a = AppSpec::parse(
            "version: \"0.0\"\nResources:\n  - Svc:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: arn:aws:ecs:x\n",
        )?;
        assert_eq!(a.lb_container, None);
        assert_eq!(a.lb_port, None);
        assert_eq!(a.task_definition, "arn:aws:ecs:x");
        Ok(())
    }

    #[test]
    fn json_appspec_is_accepted() -> Result<(), TaskdefError> {
        let a = AppSpec::parse(
            r#"{"version": 0.0, "Resources": [{"T": {"Type": "AWS::ECS::Service", "Properties": {"TaskDefinition": "<TASK_DEFINITION>", "LoadBalancerInfo": {"ContainerName": "web", "ContainerPort": 8080}}}}]}"#,
        )?;
        assert_eq!(a.lb_port, Some(8080));
        Ok(())
    }

    #[test]
    fn wrong_version() {
        assert_eq!(
            msg(&GOOD.replace("version: 0.0", "version: 1")),
            "appspec.yaml: version is `1`: set it to `0.0` (the only appspec version CodeDeploy accepts)"
        );
        assert!(msg(&GOOD.replace("version: 0.0", "version: 0")).contains("version is `0`"));
        assert!(
            msg(&GOOD.replace("version: 0.0\n", ""))
                .contains("version is missing: add `version: 0.0`")
        );
    }

    #[test]
    fn missing_container_name_names_the_path() {
        assert_eq!(
            msg(&GOOD.replace("          ContainerName: \"nginx\"\n", "")),
            "appspec.yaml: Resources[0].TargetService.Properties.LoadBalancerInfo.ContainerName is missing: set it to the container that receives load balancer traffic"
        );
    }

    #[test]
    fn bad_ports() {
        for port in ["\"80\"", "0", "70000", "-1", "80.5"] {
            let m = msg(&GOOD.replace("ContainerPort: 80", &format!("ContainerPort: {port}")));
            assert!(
                m.starts_with("appspec.yaml: Resources[0].TargetService.Properties.LoadBalancerInfo.ContainerPort is `")
                    && m.ends_with("set it to an integer port between 1 and 65535"),
                "{port}: {m}"
            );
        }
        assert!(
            msg(&GOOD.replace("          ContainerPort: 80\n", ""))
                .contains("ContainerPort is missing")
        );
        assert!(msg(&GOOD.replace("\"nginx\"", "[a]")).contains("ContainerName is a list"));
    }

    #[test]
    fn resource_shape_errors() {
        assert!(msg(&GOOD.replace("AWS::ECS::Service", "AWS::Lambda::Function"))
            .starts_with("appspec.yaml: Resources[0].TargetService.Type is `AWS::Lambda::Function`: set it to AWS::ECS::Service"));
        assert!(
            msg(&GOOD.replace("        TaskDefinition: <TASK_DEFINITION>\n", ""))
                .contains("Resources[0].TargetService.Properties.TaskDefinition is missing")
        );
        assert!(
            msg(&GOOD.replace("<TASK_DEFINITION>", "[1]")).contains("TaskDefinition is a list")
        );
        assert!(msg("version: 0.0\nResources: []\n").contains("Resources has 0 entries"));
        assert!(
            msg("version: 0.0\nResources: {}\n")
                .contains("Resources is a mapping: it must be a list")
        );
        assert!(msg("version: 0.0\n").contains("Resources is missing"));
        let two = format!("{GOOD}  - Other:\n      Type: AWS::ECS::Service\n");
        assert!(msg(&two).contains("Resources has 2 entries"));
        assert!(
            msg("version: 0.0\nResources:\n  - A: 1\n    B: 2\n")
                .contains("Resources[0] is a mapping with 2 keys")
        );
        assert!(
            msg("version: 0.0\nResources:\n  - T:\n      Type: AWS::ECS::Service\n")
                .contains("Resources[0].T.Properties is missing")
        );
    }

    #[test]
    fn not_yaml_or_not_a_mapping() {
        let m = msg("version: 0.0\nResources: [\n");
        assert!(m.starts_with("appspec.yaml:"), "{m}");
        assert!(
            m.starts_with(
                "appspec.yaml:3:1: invalid YAML: did not find expected node content, while parsing"
            ),
            "{m}"
        );
        assert_eq!(strip_position("x at line 1 column 22; y"), "x; y");
        assert_eq!(strip_position("x at line q"), "x at line q");
        assert!(msg("").contains("the document is empty"));
        assert!(msg("- a\n- b\n").contains("the document is a list"));
    }

    #[test]
    fn lb_container_must_exist_in_taskdef() -> Result<(), TaskdefError> {
        let a = AppSpec::parse(&GOOD.replace("\"nginx\"", "web"))?;
        let e = a
            .check_against(&TaskDef::parse(EXAMPLE_TASKDEF)?)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "appspec.yaml: Resources[0].TargetService.Properties.LoadBalancerInfo.ContainerName is `web`, but taskdef.json has no such container; set it to one of: nginx, bash-dog-api, sidecar, log-router"
            )
        );
        Ok(())
    }

    #[test]
    fn never_panics_on_odd_yaml() {
        for s in [
            "~",
            "[",
            "{",
            "version: 0.0\nResources:\n  - ~\n",
            "version: !!binary aGk=\n",
            "a: &x [*x]\n",
            "---\n---\n",
            "version: .nan\n",
        ] {
            let _ = AppSpec::parse(s);
        }
    }
}

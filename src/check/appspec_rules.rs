//! Rules on the CodeDeploy ECS `appspec.yaml` (`appspec/…`): `version: 0.0`,
//! exactly one `AWS::ECS::Service` resource, `TaskDefinition` left as the
//! `<TASK_DEFINITION>` placeholder, and `LoadBalancerInfo` naming a container
//! of the task definition and one of that container's ports.

use serde_yaml::Value;

use super::finding::{Finding, Severity};
use super::locate::YamlLocator;
use super::taskdef_rules::{Td, container_ports};

/// What the buildspec rules need to know about the appspec.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AppspecInfo {
    /// The service has a `LoadBalancerInfo` (a blue/green deployment behind a load balancer).
    pub load_balanced: bool,
}

use crate::taskdef::appspec::yaml_kind as kind;

/// Runs the appspec rules; `td` is the task definition when it parsed.
pub(crate) fn rules(
    file: &str,
    text: &str,
    td: Option<&Td>,
    out: &mut Vec<Finding>,
) -> AppspecInfo {
    let mut info = AppspecInfo::default();
    let doc: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            out.push(Finding::invalid_yaml(
                file,
                "appspec/invalid-yaml",
                "appspec",
                &e,
            ));
            return info;
        }
    };
    let loc = YamlLocator::new(text);
    let at = |path: &str| loc.at(path);
    let mut push = |path: &str, rule: &'static str, msg: String, help: &str| {
        out.push(Finding::new(
            file,
            at(path),
            Severity::Error,
            rule,
            msg,
            help,
        ));
    };
    if !doc.is_mapping() {
        push(
            "",
            "appspec/structure",
            format!("the appspec is {}, expected a mapping", kind(&doc)),
            "start from `version: 0.0` and a `Resources` list with one AWS::ECS::Service",
        );
        return info;
    }
    let version_ok = match doc.get("version") {
        Some(Value::Number(n)) => n.is_f64() && n.as_f64() == Some(0.0),
        Some(Value::String(s)) => s == "0.0",
        _ => false,
    };
    if !version_ok {
        let shown = doc.get("version").map_or_else(
            || "missing".to_owned(),
            |v| {
                serde_yaml::to_string(v)
                    .unwrap_or_default()
                    .trim()
                    .to_owned()
            },
        );
        push(
            if loc.has("version") { "version" } else { "" },
            "appspec/version",
            format!("appspec `version` is {shown}, but CodeDeploy accepts only 0.0"),
            "write `version: 0.0`",
        );
    }
    let Some(resources) = doc.get("Resources").and_then(Value::as_sequence) else {
        push(
            if loc.has("Resources") {
                "Resources"
            } else {
                ""
            },
            "appspec/one-ecs-service",
            "`Resources` is missing or not a list".to_owned(),
            "add `Resources:` with one `- TargetService:` of `Type: AWS::ECS::Service`",
        );
        return info;
    };
    let mut services = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        let Some(map) = r.as_mapping() else { continue };
        for (name, body) in map {
            let Some(name) = name.as_str() else { continue };
            if body.get("Type").and_then(Value::as_str) == Some("AWS::ECS::Service") {
                services.push((format!("Resources[{i}].{name}"), body));
            }
        }
    }
    if services.len() != 1 {
        let path = services
            .get(1)
            .map_or("Resources".to_owned(), |(p, _)| format!("{p}.Type"));
        push(
            &path,
            "appspec/one-ecs-service",
            format!(
                "the appspec has {} `AWS::ECS::Service` resources; an ECS deployment needs exactly one",
                services.len()
            ),
            "keep a single `- TargetService:` with `Type: AWS::ECS::Service`",
        );
        if services.is_empty() {
            return info;
        }
    }
    let (base, service) = &services[0];
    let props = service.get("Properties");
    let td_path = format!("{base}.Properties.TaskDefinition");
    match props.and_then(|p| p.get("TaskDefinition")) {
        Some(Value::String(s)) if s == "<TASK_DEFINITION>" => {}
        other => push(
            if loc.has(&td_path) { &td_path } else { base },
            "appspec/task-definition-placeholder",
            match other.and_then(Value::as_str) {
                Some(s) => {
                    format!("`TaskDefinition` is `{s}`, not the `<TASK_DEFINITION>` placeholder")
                }
                None => "`TaskDefinition` is missing".to_owned(),
            },
            "write `TaskDefinition: <TASK_DEFINITION>`: CodePipeline replaces it with the task definition it registers",
        ),
    }
    let Some(lb) = props.and_then(|p| p.get("LoadBalancerInfo")) else {
        return info;
    };
    info.load_balanced = true;
    let lb_path = format!("{base}.Properties.LoadBalancerInfo");
    let name_path = format!("{lb_path}.ContainerName");
    let port_path = format!("{lb_path}.ContainerPort");
    let Some(name) = lb.get("ContainerName").and_then(Value::as_str) else {
        push(
            &lb_path,
            "appspec/lb-container",
            "`LoadBalancerInfo.ContainerName` is missing or not a string".to_owned(),
            "name the container that receives load balancer traffic",
        );
        return info;
    };
    let Some(td) = td else { return info };
    let names = td.names();
    let Some(ports) = container_ports(td, name) else {
        push(
            &name_path,
            "appspec/lb-container",
            format!("`ContainerName: {name}` is not a container of the task definition"),
            &format!("use one of: {}", names.join(", ")),
        );
        return info;
    };
    let port = match lb.get("ContainerPort") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let listed = ports
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    match port {
        Some(p) if ports.contains(&p) => {}
        Some(p) => push(
            &port_path,
            "appspec/lb-port",
            format!("`ContainerPort: {p}` is not a containerPort of container `{name}`"),
            &if listed.is_empty() {
                format!("add a portMappings entry with containerPort {p} to `{name}`")
            } else {
                format!("use one of its ports: {listed}")
            },
        ),
        None => push(
            if loc.has(&port_path) {
                &port_path
            } else {
                &lb_path
            },
            "appspec/lb-port",
            "`LoadBalancerInfo.ContainerPort` is missing or not a port number".to_owned(),
            "set it to the containerPort the load balancer sends traffic to",
        ),
    }
    info
}

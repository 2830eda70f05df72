//! Rules on the CodeDeploy ECS `appspec.yaml` (`appspec/…`): every problem
//! [`AppSpec::read`] (the reader `build` uses) finds — `version: 0.0`,
//! exactly one `AWS::ECS::Service` resource, its shape, `LoadBalancerInfo` —
//! and, on what it read: `TaskDefinition` left as the `<TASK_DEFINITION>`
//! placeholder, and `LoadBalancerInfo` naming a container of the task
//! definition ([`AppSpec::check_against`]) and one of that container's ports.

use super::finding::{Finding, Severity};
use super::locate::YamlLocator;
use super::taskdef_rules::{Td, container_ports};
use crate::taskdef::appspec::{AppSpec, Problem, ProblemKind};
use crate::taskdef::{TaskDef, TaskdefError};

/// What the buildspec rules need to know about the appspec.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AppspecInfo {
    /// The service has a `LoadBalancerInfo` (a blue/green deployment behind a load balancer).
    pub load_balanced: bool,
}

const PLACEHOLDER: &str = "appspec/task-definition-placeholder";
const PLACEHOLDER_HELP: &str = "write `TaskDefinition: <TASK_DEFINITION>`: CodePipeline replaces it with the task definition it registers";

/// Runs the appspec rules; `td` is the task definition when it parsed.
pub(crate) fn rules(
    file: &str,
    text: &str,
    td: Option<&Td>,
    out: &mut Vec<Finding>,
) -> AppspecInfo {
    let reading = AppSpec::read(text);
    let loc = YamlLocator::new(text);
    out.extend(reading.problems().iter().map(|p| finding(file, &loc, p)));
    let info = AppspecInfo {
        load_balanced: reading.load_balanced(),
    };
    let Some(appspec) = reading.appspec() else {
        return info;
    };
    let service = Service {
        file,
        loc: &loc,
        props: format!("Resources[0].{}.Properties", appspec.resource_name),
        appspec: &appspec,
    };
    service.placeholder(out);
    // Compared with the task definition only when that has no problem of
    // its own (those are reported by the taskdef rules).
    if let Some((td, taskdef)) = td.and_then(|td| Some((td, td.taskdef.as_ref()?))) {
        service.load_balancer(td, taskdef, out);
    }
    info
}

/// The appspec's service as read, with where its keys are.
struct Service<'a> {
    /// The file, as shown in findings.
    file: &'a str,
    /// Key positions.
    loc: &'a YamlLocator,
    /// The path of the service's `Properties`.
    props: String,
    /// The service.
    appspec: &'a AppSpec,
}

impl Service<'_> {
    /// An error at the key of `path`.
    fn push(
        &self,
        out: &mut Vec<Finding>,
        path: &str,
        rule: &'static str,
        message: String,
        help: &str,
    ) {
        out.push(Finding::new(
            self.file,
            self.loc.at(path),
            Severity::Error,
            rule,
            message,
            help,
        ));
    }

    /// `appspec/task-definition-placeholder`: `TaskDefinition` is the placeholder.
    fn placeholder(&self, out: &mut Vec<Finding>) {
        if self.appspec.task_definition != "<TASK_DEFINITION>" {
            self.push(
                out,
                &format!("{}.TaskDefinition", self.props),
                PLACEHOLDER,
                format!(
                    "`TaskDefinition` is `{}`, not the `<TASK_DEFINITION>` placeholder",
                    self.appspec.task_definition
                ),
                PLACEHOLDER_HELP,
            );
        }
    }

    /// `appspec/lb-container`: `LoadBalancerInfo` names a container of the
    /// task definition; then its port.
    fn load_balancer(&self, td: &Td, taskdef: &TaskDef, out: &mut Vec<Finding>) {
        match self.appspec.check_against(taskdef) {
            Err(TaskdefError::LbContainerNotInTaskdef {
                path,
                container,
                available,
            }) => self.push(
                out,
                &path,
                "appspec/lb-container",
                format!("`ContainerName: {container}` is not a container of the task definition"),
                &format!("use one of: {}", available.join(", ")),
            ),
            Err(other) => self.push(
                out,
                &format!("{}.LoadBalancerInfo", self.props),
                "appspec/lb-container",
                other.to_string(),
                "name a container of the task definition",
            ),
            Ok(()) => self.lb_port(td, out),
        }
    }

    /// `appspec/lb-port`: `ContainerPort` is one of the container's ports.
    fn lb_port(&self, td: &Td, out: &mut Vec<Finding>) {
        let (Some(name), Some(port)) = (&self.appspec.lb_container, self.appspec.lb_port) else {
            return;
        };
        let ports = container_ports(td, name).unwrap_or_default();
        if ports.contains(&u64::from(port)) {
            return;
        }
        let listed = ports
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        self.push(
            out,
            &format!("{}.LoadBalancerInfo.ContainerPort", self.props),
            "appspec/lb-port",
            format!("`ContainerPort: {port}` is not a containerPort of container `{name}`"),
            &if listed.is_empty() {
                format!("add a portMappings entry with containerPort {port} to `{name}`")
            } else {
                format!("use one of its ports: {listed}")
            },
        );
    }
}

/// The finding for one problem of the appspec, at its key path.
fn finding(file: &str, loc: &YamlLocator, p: &Problem) -> Finding {
    use ProblemKind as K;
    let (rule, message, help): (&'static str, String, &str) = match &p.kind {
        K::Syntax { location, message } => {
            return Finding::invalid_yaml(
                file,
                "appspec/invalid-yaml",
                "appspec",
                *location,
                message,
            );
        }
        K::NotAMapping { found } => (
            "appspec/structure",
            format!("the appspec is {found}, expected a mapping"),
            "start from `version: 0.0` and a `Resources` list with one AWS::ECS::Service",
        ),
        K::Version { found } => (
            "appspec/version",
            format!(
                "appspec `version` is {}, but CodeDeploy accepts only 0.0",
                found.as_deref().unwrap_or("missing")
            ),
            "write `version: 0.0`",
        ),
        K::NoResourceList { .. } => (
            "appspec/one-ecs-service",
            "`Resources` is missing or not a list".to_owned(),
            "add `Resources:` with one `- TargetService:` of `Type: AWS::ECS::Service`",
        ),
        K::ResourceCount { entries, services } => (
            "appspec/one-ecs-service",
            if *services == 1 {
                format!(
                    "`Resources` has {entries} entries; an ECS deployment has exactly one, the AWS::ECS::Service"
                )
            } else {
                format!(
                    "the appspec has {services} `AWS::ECS::Service` resources; an ECS deployment needs exactly one"
                )
            },
            "keep a single `- TargetService:` with `Type: AWS::ECS::Service`",
        ),
        K::NotEcsService { found } => (
            "appspec/one-ecs-service",
            match found {
                Some(t) => format!("the resource's `Type` is `{t}`, not `AWS::ECS::Service`"),
                None => "the resource has no `Type`".to_owned(),
            },
            "set `Type: AWS::ECS::Service`: an ECS deployment has exactly one AWS::ECS::Service resource",
        ),
        K::Shape { problem } => (
            "appspec/structure",
            format!("{} {problem}", p.path),
            "an ECS appspec's resource is `- TargetService:` with `Type` and `Properties`",
        ),
        K::TaskDefinition { found } => (
            PLACEHOLDER,
            match found {
                Some(kind) => {
                    format!("`TaskDefinition` is {kind}, not the `<TASK_DEFINITION>` placeholder")
                }
                None => "`TaskDefinition` is missing".to_owned(),
            },
            PLACEHOLDER_HELP,
        ),
        K::LoadBalancerInfo { .. } | K::ContainerName { .. } => (
            "appspec/lb-container",
            "`LoadBalancerInfo.ContainerName` is missing or not a string".to_owned(),
            "name the container that receives load balancer traffic",
        ),
        K::ContainerPort { .. } => (
            "appspec/lb-port",
            "`LoadBalancerInfo.ContainerPort` is missing or not a port number".to_owned(),
            "set it to the containerPort the load balancer sends traffic to",
        ),
    };
    Finding::new(file, loc.at(&p.path), Severity::Error, rule, message, help)
}

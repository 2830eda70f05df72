use super::*;

const EXAMPLE_APPSPEC: &str = include_str!("../../../appspec.yaml");
const EXAMPLE_TASKDEF: &str = include_str!("../../../taskdef.json");

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
        msg(&GOOD.replace("version: 0.0\n", "")).contains("version is missing: add `version: 0.0`")
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
    for port in ["\"http\"", "0", "\"0\"", "70000", "-1", "80.5", "[80]"] {
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

/// The copies of this parser in `check` and `build` disagreed on a
/// quoted port: `check` took `"8080"`, `build` refused it. It is a port.
#[test]
fn quoted_port_is_a_port() -> Result<(), TaskdefError> {
    let a = AppSpec::parse(&GOOD.replace("ContainerPort: 80", "ContainerPort: \"8080\""))?;
    assert_eq!(a.lb_port, Some(8080));
    Ok(())
}

/// `version` is the number 0.0 or the string "0.0"; the integer 0 and
/// other spellings are not.
#[test]
fn version_spellings() {
    for ok in ["0.0", "\"0.0\"", "'0.0'", "0.00"] {
        let text = GOOD.replace("version: 0.0", &format!("version: {ok}"));
        assert!(AppSpec::parse(&text).is_ok(), "{ok}");
    }
    for bad in ["0", "\"0\"", "\"0.0 \"", "1.0", "~", "[0.0]", "\"v0.0\""] {
        let text = GOOD.replace("version: 0.0", &format!("version: {bad}"));
        let problems = AppSpec::read(&text).problems().to_vec();
        assert!(
            matches!(
                problems.as_slice(),
                [Problem { path, kind: ProblemKind::Version { .. } }] if path == "version"
            ),
            "{bad}: {problems:?}"
        );
    }
}

/// `read` reports every problem it can reach, each at its key path,
/// and keeps what it could read; `parse` fails with the first.
#[test]
fn read_reports_every_problem_with_its_path() {
    let text = "version: 1\nResources:\n  - Svc:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: [x]\n        LoadBalancerInfo:\n          ContainerName: 7\n          ContainerPort: 0\n  - Extra:\n      Type: AWS::ECS::Service\n";
    let r = AppSpec::read(text);
    let paths: Vec<&str> = r.problems().iter().map(|p| p.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "version",
            "Resources[1]",
            "Resources[0].Svc.Properties.TaskDefinition",
            "Resources[0].Svc.Properties.LoadBalancerInfo.ContainerName",
            "Resources[0].Svc.Properties.LoadBalancerInfo.ContainerPort",
        ]
    );
    assert_eq!(
        r.problems()[1].kind,
        ProblemKind::ResourceCount {
            entries: 2,
            services: 2
        }
    );
    assert!(r.load_balanced());
    assert_eq!(r.appspec(), None, "TaskDefinition could not be read");
    assert_eq!(
        msg(text),
        "appspec.yaml: version is `1`: set it to `0.0` (the only appspec version CodeDeploy accepts)"
    );
    let r = AppSpec::read(&GOOD.replace("version: 0.0", "version: 2"));
    assert_eq!(r.problems().len(), 1);
    assert_eq!(
        r.appspec().map(|a| a.lb_container),
        Some(Some("nginx".to_owned()))
    );
}

#[test]
fn resource_shape_errors() {
    assert!(msg(&GOOD.replace("AWS::ECS::Service", "AWS::Lambda::Function"))
            .starts_with("appspec.yaml: Resources[0].TargetService.Type is `AWS::Lambda::Function`: set it to AWS::ECS::Service"));
    assert!(
        msg(&GOOD.replace("        TaskDefinition: <TASK_DEFINITION>\n", ""))
            .contains("Resources[0].TargetService.Properties.TaskDefinition is missing")
    );
    assert!(msg(&GOOD.replace("<TASK_DEFINITION>", "[1]")).contains("TaskDefinition is a list"));
    assert!(msg("version: 0.0\nResources: []\n").contains("Resources has 0 entries"));
    assert!(
        msg("version: 0.0\nResources: {}\n").contains("Resources is a mapping: it must be a list")
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

//! Tests of `check`: the valid corpus gives no findings, and each rule fires
//! on a small broken fixture at the right line. The shared fixtures and
//! helpers are here; `taskdef_tests`, `secrets_tests` and `stages_tests`
//! hold the rules of those groups.

use std::path::Path;

use super::*;
use crate::dockerfile;

pub(super) const DOCKERFILE: &str = "\
FROM alpine:3.20 AS base
RUN apk add --no-cache curl

FROM base AS api
EXPOSE 8080
CMD [\"api\"]

FROM base AS worker
CMD [\"worker\"]
";

/// A valid task definition (line numbers matter to the tests below).
pub(super) const TASKDEF: &str = r#"{
  "family": "shop",
  "networkMode": "awsvpc",
  "requiresCompatibilities": ["FARGATE"],
  "cpu": "512",
  "memory": "1024",
  "executionRoleArn": "arn:aws:iam::210987654321:role/shop-execution",
  "taskRoleArn": "arn:aws:iam::210987654321:role/shop-task",
  "containerDefinitions": [
    {
      "name": "api",
      "image": "210987654321.dkr.ecr.eu-west-1.amazonaws.com/shop-api:latest",
      "essential": true,
      "portMappings": [{ "containerPort": 8080, "hostPort": 8080, "protocol": "tcp" }],
      "environment": [{ "name": "WORKER_URL", "value": "http://localhost:9000" }],
      "secrets": [
        { "name": "DB_PASSWORD", "valueFrom": "arn:aws:secretsmanager:eu-west-1:210987654321:secret:shop/db-AbC123:password::" },
        { "name": "API_KEY", "valueFrom": "arn:aws:ssm:eu-west-1:210987654321:parameter/shop/api-key" }
      ],
      "dependsOn": [{ "containerName": "worker", "condition": "START" }],
      "logConfiguration": {
        "logDriver": "awslogs",
        "options": { "awslogs-group": "/ecs/shop", "awslogs-region": "eu-west-1", "awslogs-stream-prefix": "api" }
      }
    },
    {
      "name": "worker",
      "image": "210987654321.dkr.ecr.eu-west-1.amazonaws.com/shop-worker:latest",
      "essential": false,
      "portMappings": [{ "containerPort": 9000, "protocol": "tcp" }]
    }
  ]
}
"#;

pub(super) const APPSPEC: &str = "\
version: 0.0
Resources:
  - TargetService:
      Type: AWS::ECS::Service
      Properties:
        TaskDefinition: <TASK_DEFINITION>
        LoadBalancerInfo:
          ContainerName: \"api\"
          ContainerPort: 8080
";

pub(super) const BUILDSPEC: &str = "\
version: 0.2
phases:
  build:
    commands:
      - stackbake build --mirror docker.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/docker-hub
artifacts:
  files:
    - taskdef.json
    - appspec.yaml
    - imageDetail.json
";

/// Writes a project (name, text) into a temp dir and checks it.
pub(super) fn run(files: &[(&str, &str)]) -> Vec<Finding> {
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => panic!("tempdir: {e}"),
    };
    for (name, text) in files {
        if let Err(e) = std::fs::write(tmp.path().join(name), text) {
            panic!("write {name}: {e}");
        }
    }
    check(&project(tmp.path()))
}

pub(super) fn project(dir: &Path) -> ProjectFiles {
    ProjectFiles {
        dir: dir.to_path_buf(),
        dockerfile: dir.join("Dockerfile"),
        taskdef: dir.join("taskdef.json"),
        extra_taskdefs: Vec::new(),
        appspec: dir.join("appspec.yaml"),
        buildspec: dir.join("buildspec.yml"),
    }
}

/// The valid stack with one file's text changed by `edit`.
pub(super) fn stack_with(file: &str, edit: impl Fn(&str) -> String) -> Vec<Finding> {
    let mut files = vec![
        ("Dockerfile", DOCKERFILE.to_owned()),
        ("taskdef.json", TASKDEF.to_owned()),
        ("appspec.yaml", APPSPEC.to_owned()),
        ("buildspec.yml", BUILDSPEC.to_owned()),
    ];
    for (name, text) in &mut files {
        if *name == file {
            let new = edit(text);
            assert_ne!(&new, text, "the edit changed nothing in {file}");
            *text = new;
        }
    }
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, t)| (*n, t.as_str())).collect();
    run(&refs)
}

pub(super) fn replace(from: &'static str, to: &'static str) -> impl Fn(&str) -> String {
    move |t: &str| t.replacen(from, to, 1)
}

/// Asserts that `rule` fired in `file` at `line`, with `severity`.
#[track_caller]
pub(super) fn fired(findings: &[Finding], rule: &str, file: &str, line: usize, severity: Severity) {
    assert!(
        findings
            .iter()
            .any(|f| f.rule == rule && f.file == file && f.line == line && f.severity == severity),
        "expected {rule} at {file}:{line} ({severity:?}), got:\n{}",
        render_human(findings)
    );
}

#[test]
fn valid_stack_has_no_findings() {
    let f = stack_with("none", |t| t.to_owned());
    assert!(f.is_empty(), "{}", render_human(&f));
}

#[test]
fn rule_ids_are_unique_kebab_case_with_known_prefixes() {
    let prefixes = [
        "names/",
        "appspec/",
        "taskdef/",
        "network/",
        "secrets/",
        "placeholder/",
        "stages/",
        "buildspec/",
        "policies/",
        "engine/",
    ];
    let mut seen = std::collections::BTreeSet::new();
    for (id, _) in RULES {
        assert!(seen.insert(*id), "{id} twice");
        assert!(prefixes.iter().any(|p| id.starts_with(p)), "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'-' || b == b'/'),
            "{id}"
        );
    }
}

/// The example stack of the repository (crate root) has no errors; its
/// documentation account is a known warning.
#[test]
fn example_stack_has_no_errors() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let findings = check(&project(root));
    assert!(!has_errors(&findings), "{}", render_human(&findings));
    // Known warnings: the documentation account 123456789012 in taskdef.json
    // and in the buildspec's mirror, and the buildspec's documented `<org>` /
    // `REPLACE-ME` placeholders.
    assert!(
        findings.iter().all(|f| matches!(
            (f.rule, f.file.as_str()),
            (
                "placeholder/example-account",
                "taskdef.json" | "buildspec.yml"
            ) | ("placeholder/example-value", "buildspec.yml")
        )),
        "{}",
        render_human(&findings)
    );
    assert!(
        findings
            .iter()
            .any(|f| f.rule == "placeholder/example-account" && f.file == "taskdef.json")
    );
}

const REALISTIC_1: &str = include_str!("testdata/realistic-web.json");
const REALISTIC_2: &str = include_str!("testdata/realistic-worker.json");
const REALISTIC_3: &str = include_str!("testdata/realistic-ec2-bridge.json");

#[test]
fn realistic_task_definitions_have_no_findings() {
    let dockerfile = "FROM node:22 AS deps\nRUN npm ci\nFROM deps AS web\nFROM deps AS envoy-config\nFROM deps AS queue-worker\nFROM deps AS scheduler\nFROM deps AS app\n";
    for td in [REALISTIC_1, REALISTIC_2, REALISTIC_3] {
        let f = run(&[("Dockerfile", dockerfile), ("taskdef.json", td)]);
        let f: Vec<_> = f
            .into_iter()
            .filter(|f| !(f.rule == "names/missing-file" && f.file == "appspec.yaml"))
            .collect();
        assert!(f.is_empty(), "{}", render_human(&f));
    }
}

// ---- names/ ----

#[test]
fn missing_required_files_are_findings() {
    let f = run(&[]);
    for file in ["Dockerfile", "taskdef.json", "appspec.yaml"] {
        fired(&f, "names/missing-file", file, 1, Severity::Error);
    }
    assert_eq!(f.len(), 3, "{}", render_human(&f));
}

#[test]
fn near_miss_names_are_errors_instead_and_warnings_next_to() {
    let f = run(&[
        ("Dockerfile", DOCKERFILE),
        ("taskdef.json", TASKDEF),
        ("appspec.yml", APPSPEC),
        ("buildspec.yml", BUILDSPEC),
        ("BuildSpec.yaml", BUILDSPEC),
    ]);
    fired(&f, "names/near-miss", "appspec.yml", 1, Severity::Error);
    fired(
        &f,
        "names/near-miss",
        "BuildSpec.yaml",
        1,
        Severity::Warning,
    );
    assert!(
        !f.iter().any(|f| f.rule == "names/missing-file"),
        "{}",
        render_human(&f)
    );
}

#[test]
fn unreadable_file_is_a_finding() {
    let tmp = tempfile::tempdir().ok();
    let Some(tmp) = tmp else { return };
    let _ = std::fs::write(tmp.path().join("taskdef.json"), [0xff, 0xfe, 0x00]);
    let f = check(&project(tmp.path()));
    fired(&f, "names/unreadable", "taskdef.json", 1, Severity::Error);
}

// ---- appspec/ ----

#[test]
fn appspec_version() {
    let f = stack_with("appspec.yaml", replace("version: 0.0", "version: 0"));
    fired(&f, "appspec/version", "appspec.yaml", 1, Severity::Error);
}

/// The string "0.0" is the version too (the AWS CDK writes it so).
#[test]
fn appspec_version_as_a_string() {
    let f = stack_with("appspec.yaml", replace("version: 0.0", "version: \"0.0\""));
    assert!(f.is_empty(), "{}", render_human(&f));
}

#[test]
fn appspec_resource_shape() {
    let f = stack_with(
        "appspec.yaml",
        replace("  - TargetService:\n", "  - Other: 1\n    TargetService:\n"),
    );
    fired(&f, "appspec/structure", "appspec.yaml", 3, Severity::Error);
}

#[test]
fn appspec_invalid_yaml() {
    let f = stack_with(
        "appspec.yaml",
        replace("      Properties:", "\tProperties:"),
    );
    assert!(
        f.iter().any(|f| f.rule == "appspec/invalid-yaml"),
        "{}",
        render_human(&f)
    );
}

#[test]
fn appspec_needs_exactly_one_service() {
    // at the surplus entry
    let f = stack_with("appspec.yaml", |t| {
        format!("{t}  - Second:\n      Type: AWS::ECS::Service\n")
    });
    fired(
        &f,
        "appspec/one-ecs-service",
        "appspec.yaml",
        10,
        Severity::Error,
    );
    // at the `Type` that is not AWS::ECS::Service
    let f = stack_with(
        "appspec.yaml",
        replace("AWS::ECS::Service", "AWS::Lambda::Function"),
    );
    fired(
        &f,
        "appspec/one-ecs-service",
        "appspec.yaml",
        4,
        Severity::Error,
    );
    // a second resource of another type is one resource too many
    let f = stack_with("appspec.yaml", |t| {
        format!("{t}  - Hook:\n      Type: AWS::Lambda::Function\n")
    });
    fired(
        &f,
        "appspec/one-ecs-service",
        "appspec.yaml",
        10,
        Severity::Error,
    );
}

#[test]
fn appspec_task_definition_placeholder() {
    let f = stack_with(
        "appspec.yaml",
        replace(
            "<TASK_DEFINITION>",
            "arn:aws:ecs:eu-west-1:210987654321:task-definition/shop:3",
        ),
    );
    fired(
        &f,
        "appspec/task-definition-placeholder",
        "appspec.yaml",
        6,
        Severity::Error,
    );
}

#[test]
fn appspec_lb_container_and_port() {
    let f = stack_with("appspec.yaml", replace("\"api\"", "\"web\""));
    fired(
        &f,
        "appspec/lb-container",
        "appspec.yaml",
        8,
        Severity::Error,
    );
    let f = stack_with(
        "appspec.yaml",
        replace("ContainerPort: 8080", "ContainerPort: 80"),
    );
    fired(&f, "appspec/lb-port", "appspec.yaml", 9, Severity::Error);
    // a quoted port is a port (as `check` always took it; `build` now does too)
    let f = stack_with(
        "appspec.yaml",
        replace("ContainerPort: 8080", "ContainerPort: \"8080\""),
    );
    assert!(f.is_empty(), "{}", render_human(&f));
    let f = stack_with(
        "appspec.yaml",
        replace("ContainerPort: 8080", "ContainerPort: 70000"),
    );
    fired(&f, "appspec/lb-port", "appspec.yaml", 9, Severity::Error);
}

// ---- robustness ----

#[test]
fn garbage_never_panics() {
    let odd = "{\"networkMode\": \"awsvpc\", \"containerDefinitions\": [{\"name\": \"\", \"image\": \"x\", \"environment\": [{\"value\": \"http://é:1\"}]}, {\"name\": \"é\", \"image\": \"<IMAGE1_NAME>\", \"portMappings\": [{\"containerPort\": 1}, {\"containerPort\": 1, \"hostPort\": 99999999999999999999}]}]}";
    let _ = run(&[
        ("Dockerfile", DOCKERFILE),
        ("taskdef.json", odd),
        (
            "appspec.yaml",
            "version: 0.0\nResources:\n- é:\n    Type: AWS::ECS::Service\n    Properties:\n      LoadBalancerInfo: {ContainerName: é, ContainerPort: -1}\n",
        ),
    ]);
    for text in [
        "",
        "\u{feff}",
        "{",
        "null",
        "- - -",
        ": :",
        "\t\t",
        "version: [",
        "{\"containerDefinitions\": [null, 1, {}]}",
        "[[[[[[[[[[",
    ] {
        let _ = run(&[
            ("Dockerfile", text),
            ("taskdef.json", text),
            ("appspec.yaml", text),
            ("buildspec.yml", text),
        ]);
    }
}

/// Deterministic mutations of the valid fixtures (bytes dropped, duplicated
/// or replaced) through every text-level rule: no panic, no hang.
#[test]
fn mutated_fixtures_never_panic() {
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    let specials = [
        '"', '{', '}', '[', ']', ':', ',', '\n', ' ', '-', '#', '|', 'é', '\\', '<',
    ];
    let df = dockerfile::parse(DOCKERFILE).ok();
    for base in [TASKDEF, APPSPEC, BUILDSPEC] {
        for _ in 0..250 {
            let mut chars: Vec<char> = base.chars().collect();
            for _ in 0..(1 + next() % 4) {
                if chars.is_empty() {
                    break;
                }
                let at = next() % chars.len();
                match next() % 3 {
                    0 => {
                        chars.remove(at);
                    }
                    1 => chars.insert(at, specials[next() % specials.len()]),
                    _ => chars[at] = specials[next() % specials.len()],
                }
            }
            let text: String = chars.into_iter().collect();
            let mut out = Vec::new();
            let td = taskdef_rules::parse("taskdef.json", &text, &mut out);
            if let Some(td) = &td {
                taskdef_rules::rules(td, &mut out);
                secrets_rules::rules(td, &mut out);
                placeholder_rules::taskdef(td, &mut out);
                if let Some(df) = &df {
                    dockerfile_rules::rules(df, td, &[], None, &mut out);
                }
            }
            let good_td = taskdef_rules::parse("taskdef.json", TASKDEF, &mut Vec::new());
            appspec_rules::rules("appspec.yaml", &text, good_td.as_ref(), &mut out);
            let expected = buildspec_rules::Expected {
                taskdefs: &["taskdef.json"],
                appspec: "appspec.yaml",
                image_detail: true,
            };
            buildspec_rules::rules("buildspec.yml", &text, &expected, &mut out);
            placeholder_rules::yaml("x", &text, &mut out);
            let _ = dockerfile_rules::parse("Dockerfile", &text, &mut out);
            for f in &out {
                assert!(f.line >= 1 && f.col >= 1, "{f:?}");
            }
        }
    }
}

#[test]
fn policies_written_by_init_pass_and_broken_ones_are_caught() {
    let scope = crate::policies::IamScope {
        account: "210987654321",
        region: "eu-west-1",
        project: "shop",
        create_repos: false,
        mirror_repositories: Vec::new(),
    };
    let iam = crate::policies::iam_policy(&scope);
    let lifecycle = crate::policies::lifecycle_policy();
    let with = |iam: &str, lifecycle: &str| {
        run(&[
            ("Dockerfile", DOCKERFILE),
            ("taskdef.json", TASKDEF),
            ("appspec.yaml", APPSPEC),
            ("buildspec.yml", BUILDSPEC),
            ("iam-policy.json", iam),
            ("ecr-lifecycle-policy.json", lifecycle),
        ])
    };
    assert!(with(&iam, &lifecycle).is_empty());
    // A policy for another project misses the task definition's repositories.
    let other = crate::policies::iam_policy(&crate::policies::IamScope {
        project: "other",
        ..scope
    });
    let f = with(&other, &lifecycle);
    fired(
        &f,
        "policies/iam-missing-action",
        "iam-policy.json",
        1,
        Severity::Warning,
    );
    assert!(f[0].message.contains("repository/shop-api"), "{f:?}");
    let f = with(
        &iam,
        r#"{"rules":[{"rulePriority":1,"selection":{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":10},"action":{"type":"expire"}}]}"#,
    );
    fired(
        &f,
        "policies/lifecycle-expires-fingerprints",
        "ecr-lifecycle-policy.json",
        1,
        Severity::Warning,
    );
}

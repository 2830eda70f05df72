//! `stackbake init`: starters for the example and other Dockerfiles pass
//! `check`; bad input writes nothing.

use std::path::Path;

use serde_json::Value;

use super::*;
use crate::check::{self, ProjectFiles, Severity};
use crate::cli::CommonArgs;

fn args(dir: &Path) -> InitArgs {
    InitArgs {
        common: CommonArgs {
            dir: dir.to_path_buf(),
            dockerfile: "Dockerfile".into(),
            taskdef: vec!["taskdef.json".into()],
            appspec: "appspec.yaml".into(),
            json: false,
            verbose: false,
        },
        project: Some("bash-dog".into()),
        account: Some("210987654321".into()),
        region: Some("eu-west-1".into()),
        stages: Vec::new(),
        lb_container: None,
        batch: None,
        create_repos: false,
        // Base images come from Docker Hub: pulled through a mirror, as
        // `check` advises for CodeBuild.
        mirrors: vec!["docker.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/docker-hub".into()],
    }
}

const EXAMPLE_DOCKERFILE: &str = include_str!("../../Dockerfile");

fn no_env(_: &str) -> Option<String> {
    None
}

fn files(dir: &Path) -> ProjectFiles {
    ProjectFiles {
        dir: dir.to_path_buf(),
        dockerfile: dir.join("Dockerfile"),
        taskdef: dir.join("taskdef.json"),
        extra_taskdefs: Vec::new(),
        appspec: dir.join("appspec.yaml"),
        buildspec: dir.join("buildspec.yml"),
    }
}

fn only_todos(dir: &Path) {
    let findings = check::check(&files(dir));
    let other: Vec<_> = findings
        .iter()
        .filter(|f| f.rule != "placeholder/todo")
        .collect();
    assert!(other.is_empty(), "{}", check::render_human(&findings));
    assert!(findings.iter().all(|f| f.severity == Severity::Warning));
    assert!(findings.iter().any(|f| f.file == "taskdef.json"));
}

#[test]
fn example_dockerfile_gives_three_containers_that_pass_check()
-> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
    let written = init_with_env(&args(tmp.path()), &no_env)?;
    assert_eq!(written.len(), 5);
    let td: Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("taskdef.json"))?)?;
    let names: Vec<&str> = td["containerDefinitions"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, ["api", "sidecar", "nginx"]);
    assert_eq!(
        td["containerDefinitions"][0]["image"],
        "210987654321.dkr.ecr.eu-west-1.amazonaws.com/bash-dog-api:latest"
    );
    assert_eq!(
        td["containerDefinitions"][0]["portMappings"][0]["containerPort"],
        8080
    );
    assert_eq!(td["networkMode"], "awsvpc");
    let appspec = std::fs::read_to_string(tmp.path().join("appspec.yaml"))?;
    // the stage that EXPOSEs 80 is the load-balanced one
    assert!(appspec.contains("ContainerName: \"nginx\""), "{appspec}");
    assert!(appspec.contains("ContainerPort: 80\n"), "{appspec}");
    let buildspec = std::fs::read_to_string(tmp.path().join("buildspec.yml"))?;
    assert!(buildspec.contains("- ./stackbake build\n"), "{buildspec}");
    for a in ["taskdef.json", "appspec.yaml", "imageDetail.json"] {
        assert!(buildspec.contains(&format!("    - {a}\n")), "{buildspec}");
    }
    only_todos(tmp.path());
    Ok(())
}

#[test]
fn stage_and_lb_flags_choose_containers() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
    let mut a = args(tmp.path());
    a.stages = vec!["nginx".into(), "sidecar".into()];
    a.lb_container = Some("nginx".into());
    init_with_env(&a, &no_env)?;
    let td = std::fs::read_to_string(tmp.path().join("taskdef.json"))?;
    assert!(td.contains("bash-dog-sidecar") && td.contains("bash-dog-nginx"));
    assert!(!td.contains("bash-dog-api"));
    let appspec = std::fs::read_to_string(tmp.path().join("appspec.yaml"))?;
    assert!(
        appspec.contains("ContainerName: \"nginx\"") && appspec.contains("ContainerPort: 80\n")
    );
    only_todos(tmp.path());
    Ok(())
}

#[test]
fn stages_without_expose_get_todo_ports_and_still_pass() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    std::fs::write(
        tmp.path().join("Dockerfile"),
        "FROM alpine AS base\nEXPOSE 80\nFROM base AS web\nFROM base AS admin\nFROM alpine AS worker\n",
    )?;
    let mut a = args(tmp.path());
    a.lb_container = Some("worker".into());
    a.region = None;
    init_with_env(&a, &|k| {
        (k == "AWS_DEFAULT_REGION").then(|| "ap-south-1".to_owned())
    })?;
    let td = std::fs::read_to_string(tmp.path().join("taskdef.json"))?;
    assert!(td.contains("ap-south-1"));
    let appspec = std::fs::read_to_string(tmp.path().join("appspec.yaml"))?;
    assert!(appspec.contains("ContainerPort: 8080  # TODO"), "{appspec}");
    only_todos(tmp.path());
    Ok(())
}

#[test]
fn refuses_to_overwrite_and_writes_nothing() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
    std::fs::write(tmp.path().join("appspec.yaml"), "mine")?;
    let e = init_with_env(&args(tmp.path()), &no_env)
        .err()
        .ok_or("init succeeded")?;
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("appspec.yaml"), "{e}");
    assert!(!tmp.path().join("taskdef.json").exists());
    assert!(!tmp.path().join("buildspec.yml").exists());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("appspec.yaml"))?,
        "mine"
    );
    Ok(())
}

#[test]
fn bad_input_is_a_usage_error() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    // no Dockerfile
    let e = init_with_env(&args(tmp.path()), &no_env)
        .err()
        .ok_or("ok")?;
    assert_eq!(e.exit_code(), 2);
    std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
    for change in [
        |a: &mut InitArgs| a.account = None,
        |a: &mut InitArgs| a.account = Some("12345".into()),
        |a: &mut InitArgs| a.region = None,
        |a: &mut InitArgs| a.project = Some("Bad Name".into()),
        |a: &mut InitArgs| a.stages = vec!["nope".into()],
        |a: &mut InitArgs| a.lb_container = Some("base".into()),
    ] {
        let mut a = args(tmp.path());
        change(&mut a);
        let e = init_with_env(&a, &no_env).err().ok_or("ok")?;
        assert_eq!(e.exit_code(), 2, "{e}");
    }
    assert!(!tmp.path().join("taskdef.json").exists());
    // unnamed stages only
    let tmp2 = tempfile::tempdir()?;
    std::fs::write(tmp2.path().join("Dockerfile"), "FROM alpine\nRUN true\n")?;
    let e = init_with_env(&args(tmp2.path()), &no_env)
        .err()
        .ok_or("ok")?;
    assert!(e.to_string().contains("no deployable stage"), "{e}");
    Ok(())
}

#[test]
fn batch_writes_a_build_graph_that_passes_check() -> Result<(), Box<dyn std::error::Error>> {
    let tmp = tempfile::tempdir()?;
    std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
    let mut a = args(tmp.path());
    a.batch = Some(3);
    init_with_env(&a, &no_env)?;
    let buildspec = std::fs::read_to_string(tmp.path().join("buildspec.yml"))?;
    let doc: serde_yaml::Value = serde_yaml::from_str(&buildspec)?;
    let graph = doc["batch"]["build-graph"]
        .as_sequence()
        .ok_or("no graph")?;
    let ids: Vec<&str> = graph
        .iter()
        .filter_map(|b| b["identifier"].as_str())
        .collect();
    assert_eq!(ids, ["shard_1", "shard_2", "shard_3", "assemble"]);
    assert_eq!(graph[1]["env"]["variables"]["STACKBAKE_SHARD"], "2/3");
    assert_eq!(graph[3]["depend-on"].as_sequence().map(Vec::len), Some(3));
    assert_eq!(doc["artifacts"]["base-directory"], "stackbake-out");
    only_todos(tmp.path());

    for bad in [0, batch::MAX_SHARDS + 1] {
        let tmp = tempfile::tempdir()?;
        std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
        let mut a = args(tmp.path());
        a.batch = Some(bad);
        let e = init_with_env(&a, &no_env).err().ok_or("accepted")?;
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(!tmp.path().join("buildspec.yml").exists());
    }
    Ok(())
}

/// Issue 14, item 1: buildkit, buildx, compose and the docker CLI pick
/// a per-platform stage with `FROM binary-$TARGETOS`.
#[test]
fn platform_variant_stages_are_not_offered_as_containers() -> Result<(), Box<dyn std::error::Error>>
{
    let tmp = tempfile::tempdir()?;
    std::fs::write(
        tmp.path().join("Dockerfile"),
        "FROM alpine:3.20 AS binary-linux\nRUN echo one > /x\nFROM alpine:3.20 AS binary-darwin\nRUN echo two > /x\nFROM binary-$TARGETOS AS binary\nFROM alpine:3.20 AS app\nCOPY --from=binary /x /x\nEXPOSE 80\n",
    )?;
    init_with_env(&args(tmp.path()), &no_env)?;
    let td = std::fs::read_to_string(tmp.path().join("taskdef.json"))?;
    assert!(td.contains("\"name\": \"app\""), "{td}");
    assert!(!td.contains("binary"), "{td}");
    Ok(())
}

#[test]
fn the_policies_follow_the_flags() -> Result<(), Box<dyn std::error::Error>> {
    let read = |dir: &Path, name: &str| -> Value {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).expect("written"))
            .expect("valid JSON")
    };
    let repo = "arn:aws:ecr:eu-west-1:210987654321:repository/bash-dog-api";
    let cache = "arn:aws:ecr:eu-west-1:210987654321:repository/docker-hub/library/node";

    let plain = tempfile::tempdir()?;
    std::fs::write(plain.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
    let mut a = args(plain.path());
    a.mirrors.clear();
    init_with_env(&a, &no_env)?;
    let iam = read(plain.path(), policies::IAM_POLICY_FILE);
    assert!(policies::allows(&iam, "ecr:PutImage", repo));
    assert!(!policies::allows(&iam, "ecr:CreateRepository", repo));
    assert!(!policies::allows(
        &iam,
        "ecr:BatchImportUpstreamImage",
        cache
    ));
    let bs = std::fs::read_to_string(plain.path().join("buildspec.yml"))?;
    assert!(!bs.contains("STACKBAKE_MIRROR"), "{bs}");
    assert!(!bs.contains("STACKBAKE_CREATE_REPOS"), "{bs}");
    // Without a mirror, check advises one for the Docker Hub base.
    let findings = check::check(&files(plain.path()));
    assert!(
        findings
            .iter()
            .any(|f| f.rule == "stages/docker-hub-without-mirror"),
        "{}",
        check::render_human(&findings)
    );

    let both = tempfile::tempdir()?;
    std::fs::write(both.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
    let mut a = args(both.path());
    a.create_repos = true;
    init_with_env(&a, &no_env)?;
    let iam = read(both.path(), policies::IAM_POLICY_FILE);
    assert!(policies::allows(&iam, "ecr:CreateRepository", repo));
    assert!(policies::allows(
        &iam,
        "ecr:BatchImportUpstreamImage",
        cache
    ));
    assert!(!policies::allows(&iam, "ecr:PutImage", cache), "pulls only");
    let lifecycle = read(both.path(), policies::LIFECYCLE_POLICY_FILE);
    assert_eq!(
        lifecycle["rules"][0]["selection"]["tagPatternList"][0],
        "fp-*"
    );
    let bs = std::fs::read_to_string(both.path().join("buildspec.yml"))?;
    assert!(bs.contains("STACKBAKE_CREATE_REPOS: \"true\""), "{bs}");
    assert!(
        bs.contains("STACKBAKE_MIRROR: \"docker.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/docker-hub\""),
        "{bs}"
    );
    only_todos(both.path());
    Ok(())
}

//! Issue 5: `stackbake check` and `stackbake init` through the real binary,
//! and `build` refusing to start when a check finds an error.

use serde_json::Value;

use crate::harness::{Fixture, Project, Sb};

fn check(project: &Project, extra: &[&str]) -> crate::harness::Outcome {
    Sb::new()
        .args(["check", "--dir"])
        .arg(project.root())
        .args(extra)
        .run()
}

#[test]
fn the_example_stack_passes_with_warnings_only() {
    let project = Project::example();
    let run = check(&project, &["--json"]);
    run.assert_success();
    let report: Value = run.json();
    assert_eq!(report["schema_version"], 1);
    assert_eq!(report["errors"], 0, "{run}");
    let findings = report["findings"].as_array().expect("findings");
    assert!(findings.iter().all(|f| f["severity"] == "warning"), "{run}");
    run.assert_stderr_mentions("0 errors");
}

#[test]
fn a_broken_taskdef_is_reported_with_rule_file_and_line() {
    let project = Project::example();
    // sidecar listens on the api's port: in awsvpc both share one network namespace.
    project.edit("taskdef.json", |t| {
        t.replace(
            "\"containerPort\": 9090, \"hostPort\": 9090",
            "\"containerPort\": 8080, \"hostPort\": 8080",
        )
    });
    let run = check(&project, &["--json"]);
    run.assert_code(2);
    let report: Value = run.json();
    let dup: Vec<&Value> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "network/duplicate-port")
        .collect();
    assert_eq!(dup.len(), 1, "{run}");
    assert_eq!(dup[0]["file"], "taskdef.json");
    assert_eq!(dup[0]["severity"], "error");
    // The finding points at one of the two 8080 mappings.
    let lines: Vec<u64> = project
        .read("taskdef.json")
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("\"containerPort\": 8080"))
        .map(|(i, _)| i as u64 + 1)
        .collect();
    assert!(
        lines.contains(&dup[0]["line"].as_u64().expect("line")),
        "{lines:?} {run}"
    );
    run.assert_stderr_mentions("error[network/duplicate-port]");
    run.assert_stderr_mentions("help:");
}

#[test]
fn build_refuses_to_start_on_an_error_finding() {
    let fx = Fixture::with_registry();
    fx.project.edit("appspec.yaml", |a| {
        a.replace(
            "TaskDefinition: <TASK_DEFINITION>",
            "TaskDefinition: bash-dog:12",
        )
    });
    let run = fx.build().run();
    run.assert_code(2);
    run.assert_stderr_mentions("appspec/task-definition-placeholder");
    run.assert_stderr_mentions("nothing was built");
    assert!(
        !run.stderr.contains("Step 1/") && !run.stderr.contains("] building"),
        "no build may start:\n{run}"
    );
    for repo in ["bash-dog-api", "bash-dog-sidecar", "bash-dog-nginx"] {
        assert!(fx.registry().tags(repo).is_empty(), "{repo} got a push");
    }
    assert!(Project::files_in(fx.project.out()).is_empty());
}

#[test]
fn json_into_a_closed_pipe_is_not_a_panic() {
    // `stackbake check --json | head -c0`: the reader is gone before the write.
    let project = Project::example();
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let out = std::process::Command::new(crate::harness::BIN)
        .args(["check", "--json", "--dir"])
        .arg(project.root())
        .stdout(writer)
        .output()
        .expect("run stackbake");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(0), "{stderr}");
}

#[test]
fn buildspec_findings_are_shown_by_build_but_do_not_stop_it() {
    // A buildspec that runs stackbake through a wrapper and ships no
    // taskdef.json: errors for `check`, warnings for `build`, which goes on
    // to the engine (here a missing socket, so it ends with exit 3, not 2).
    let fx = Fixture::inputs_only();
    fx.project.write(
        "buildspec.yml",
        "version: 0.2\nphases:\n  build:\n    commands:\n      - make ci\n",
    );
    let checked = check(&fx.project, &[]);
    checked.assert_code(2);
    checked.assert_stderr_mentions("error[buildspec/no-stackbake-build]");

    let run = fx
        .build()
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .run();
    run.assert_code(3);
    run.assert_stderr_mentions("warning[buildspec/no-stackbake-build]");
    run.assert_stderr_mentions("privileged");
    assert!(Project::files_in(fx.project.out()).is_empty());
}

#[test]
fn init_writes_files_that_pass_check_and_never_overwrites() {
    let project = Project::example();
    for f in ["taskdef.json", "appspec.yaml", "buildspec.yml"] {
        project.remove(f);
    }
    let init = || {
        Sb::new()
            .args(["init", "--dir"])
            .arg(project.root())
            .args([
                "--project",
                "bash-dog",
                "--account",
                "210987654321",
                "--region",
                "eu-west-1",
                // The example's base comes from Docker Hub: pulled through a
                // mirror, as `check` advises for CodeBuild.
                "--mirror",
                "docker.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/docker-hub",
            ])
            .run()
    };
    let run = init();
    run.assert_success();
    let taskdef: Value = serde_json::from_str(&project.read("taskdef.json")).expect("json");
    let images: Vec<&str> = taskdef["containerDefinitions"]
        .as_array()
        .expect("containers")
        .iter()
        .map(|c| c["image"].as_str().expect("image"))
        .collect();
    for stage in ["api", "sidecar", "nginx"] {
        let want = format!("210987654321.dkr.ecr.eu-west-1.amazonaws.com/bash-dog-{stage}:latest");
        assert!(images.contains(&want.as_str()), "{images:?}");
    }
    let checked = check(&project, &["--json"]);
    checked.assert_success();
    let report: Value = checked.json();
    assert_eq!(report["errors"], 0, "{checked}");
    assert!(
        report["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .all(|f| f["rule"] == "placeholder/todo"),
        "only TODO warnings: {checked}"
    );

    let before = project.read("taskdef.json");
    let again = init();
    again.assert_code(2);
    again.assert_stderr_mentions("taskdef.json");
    assert_eq!(
        project.read("taskdef.json"),
        before,
        "init must not overwrite"
    );
}

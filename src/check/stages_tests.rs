//! `check`'s `stages/` and `buildspec/` rules, each on a small broken
//! fixture at the right line.

use super::tests::{
    APPSPEC, BUILDSPEC, DOCKERFILE, TASKDEF, fired, project, replace, run, stack_with,
};
use super::*;

// ---- stages/ ----

#[test]
fn stages_unmapped_container() {
    let f = stack_with(
        "taskdef.json",
        replace("shop-worker:latest", "shop-wrker:latest"),
    );
    let f2: Vec<_> = f
        .iter()
        .filter(|f| f.rule == "stages/unmapped-container")
        .collect();
    assert!(f2.is_empty(), "worker still maps by its container name");
    let f = stack_with("taskdef.json", |t| {
        t.replacen("\"name\": \"worker\"", "\"name\": \"jobs\"", 1)
            .replacen(
                "\"containerName\": \"worker\"",
                "\"containerName\": \"jobs\"",
                1,
            )
            .replacen("shop-worker:latest", "shop-jobs:latest", 1)
    });
    fired(
        &f,
        "stages/unmapped-container",
        "taskdef.json",
        28,
        Severity::Error,
    );
}

#[test]
fn stages_mapping_honours_target_flags() {
    let tmp = match tempfile::tempdir() {
        Ok(t) => t,
        Err(e) => panic!("{e}"),
    };
    let td = TASKDEF
        .replacen("\"name\": \"worker\"", "\"name\": \"jobs\"", 1)
        .replacen(
            "\"containerName\": \"worker\"",
            "\"containerName\": \"jobs\"",
            1,
        )
        .replacen("shop-worker:latest", "shop-jobs:latest", 1);
    for (name, text) in [
        ("Dockerfile", DOCKERFILE),
        ("taskdef.json", td.as_str()),
        ("appspec.yaml", APPSPEC),
        ("buildspec.yml", BUILDSPEC),
    ] {
        if let Err(e) = std::fs::write(tmp.path().join(name), text) {
            panic!("{e}");
        }
    }
    let files = project(tmp.path());
    fired(
        &check(&files),
        "stages/unmapped-container",
        "taskdef.json",
        28,
        Severity::Error,
    );
    let f = check_with(
        &files,
        &[("jobs".into(), "worker".into())],
        None,
        &Default::default(),
    );
    assert!(f.is_empty(), "{}", render_human(&f));
    // an invalid --target is reported, not a panic
    let f = check_with(
        &files,
        &[("nope".into(), "worker".into())],
        None,
        &Default::default(),
    );
    assert!(
        f.iter()
            .any(|f| f.rule == "stages/unmapped-container" && f.message.contains("nope")),
        "{}",
        render_human(&f)
    );
}

#[test]
fn stages_duplicate_name_and_invalid_dockerfile() {
    let f = stack_with(
        "Dockerfile",
        replace("FROM base AS worker", "FROM base AS api"),
    );
    fired(
        &f,
        "stages/duplicate-name",
        "Dockerfile",
        8,
        Severity::Error,
    );
    let f = stack_with("Dockerfile", |t| format!("RUN echo before\n{t}"));
    fired(
        &f,
        "stages/invalid-dockerfile",
        "Dockerfile",
        1,
        Severity::Error,
    );
}

#[test]
fn stages_repository_pattern() {
    let dockerfile = format!("{DOCKERFILE}FROM base AS cron\n");
    let td = TASKDEF.replacen(
        "      \"portMappings\": [{ \"containerPort\": 9000, \"protocol\": \"tcp\" }]\n    }",
        "      \"portMappings\": [{ \"containerPort\": 9000, \"protocol\": \"tcp\" }]\n    },\n    {\n      \"name\": \"cron\",\n      \"image\": \"210987654321.dkr.ecr.eu-west-1.amazonaws.com/cron:latest\"\n    }",
        1,
    );
    assert_ne!(td, TASKDEF);
    let f = run(&[
        ("Dockerfile", &dockerfile),
        ("taskdef.json", &td),
        ("appspec.yaml", APPSPEC),
        ("buildspec.yml", BUILDSPEC),
    ]);
    fired(
        &f,
        "stages/repository-pattern",
        "taskdef.json",
        34,
        Severity::Warning,
    );
}

// ---- buildspec/ ----

#[test]
fn buildspec_version() {
    let f = stack_with("buildspec.yml", replace("version: 0.2", "version: 0.1"));
    fired(&f, "buildspec/version", "buildspec.yml", 1, Severity::Error);
}

#[test]
fn buildspec_must_run_stackbake_build() {
    let f = stack_with(
        "buildspec.yml",
        replace("stackbake build", "stackbake plan"),
    );
    fired(
        &f,
        "buildspec/no-stackbake-build",
        "buildspec.yml",
        2,
        Severity::Error,
    );
}

#[test]
fn buildspec_artifacts() {
    let f = stack_with("buildspec.yml", replace("    - appspec.yaml\n", ""));
    fired(
        &f,
        "buildspec/missing-artifact",
        "buildspec.yml",
        7,
        Severity::Error,
    );
    let f = stack_with("buildspec.yml", replace("    - imageDetail.json\n", ""));
    fired(
        &f,
        "buildspec/missing-artifact",
        "buildspec.yml",
        7,
        Severity::Warning,
    );
    let f = stack_with("buildspec.yml", |t| {
        t.replacen(
            "    - taskdef.json\n    - appspec.yaml\n    - imageDetail.json\n",
            "    - '**/*'\n",
            1,
        )
    });
    assert!(f.is_empty(), "{}", render_human(&f));
}

#[test]
fn buildspec_invalid_yaml() {
    let f = stack_with("buildspec.yml", replace("phases:", "phases: ["));
    assert!(
        f.iter().any(|f| f.rule == "buildspec/invalid-yaml"),
        "{}",
        render_human(&f)
    );
}

#[test]
fn stages_docker_hub_without_mirror() {
    let f = stack_with(
        "buildspec.yml",
        replace(
            "stackbake build --mirror docker.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/docker-hub",
            "stackbake build",
        ),
    );
    fired(
        &f,
        "stages/docker-hub-without-mirror",
        "Dockerfile",
        1,
        Severity::Warning,
    );
    assert_eq!(f.len(), 1, "{f:?}");
    // STACKBAKE_MIRROR in the buildspec's environment is a mirror too.
    let f = stack_with("buildspec.yml", |b| {
        b.replace(
            "stackbake build --mirror docker.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/docker-hub",
            "stackbake build",
        )
        .replace(
            "version: 0.2\n",
            "version: 0.2\nenv:\n  variables:\n    STACKBAKE_MIRROR: docker.io=210987654321.dkr.ecr.eu-west-1.amazonaws.com/docker-hub\n",
        )
    });
    assert!(f.is_empty(), "{f:?}");
}

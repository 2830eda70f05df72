//! Outputs for pipelines against the in-memory fakes: several task
//! definitions pinned from one build (all written, or none).

use super::fakes::World;
use super::tests::{Project, REGISTRY, TARGETS, build, failing};
use crate::error::{Error, exit_code};

/// Writes `taskdef.prod.json`: the example's taskdef with another family
/// and `edit` applied.
fn prod_taskdef(p: &Project, edit: impl Fn(String) -> String) {
    let td = std::fs::read_to_string(p.path().join("taskdef.json")).expect("taskdef");
    let prod = edit(td.replace("\"family\": \"bash-dog\"", "\"family\": \"bash-dog-prod\""));
    std::fs::write(p.path().join("taskdef.prod.json"), prod).expect("write");
}

const TWO: [&str; 4] = [
    "--taskdef",
    "taskdef.json",
    "--taskdef",
    "taskdef.prod.json",
];

#[tokio::test(start_paused = true)]
async fn two_task_definitions_are_pinned_from_one_build() {
    let p = Project::example();
    // prod runs without the sidecar.
    prod_taskdef(&p, |t| {
        let start = t
            .find("    {\n      \"name\": \"sidecar\"")
            .expect("sidecar");
        let end = t[start..].find("    },\n").expect("end") + start + "    },\n".len();
        format!("{}{}", &t[..start], &t[end..])
    });
    let world = World::new();
    let report = build(&world, &p.settings(&TWO))
        .await
        .result
        .expect("builds");
    for t in TARGETS {
        assert_eq!(
            world.calls(&format!("build {t}")).len(),
            1,
            "{t} built once"
        );
    }
    let staging = std::fs::read_to_string(p.out().join("taskdef.json")).expect("staging");
    let prod = std::fs::read_to_string(p.out().join("taskdef.prod.json")).expect("prod");
    assert!(prod.contains("\"family\": \"bash-dog-prod\"") && !prod.contains("sidecar"));
    for t in &report.targets {
        let image = t.image.as_deref().expect("pinned");
        assert!(image.starts_with(&format!("{REGISTRY}/")), "{image}");
        assert!(staging.contains(image), "staging pins {image}");
        assert_eq!(
            prod.contains(image),
            t.container != "sidecar",
            "prod: {image}"
        );
    }
    let defs = std::fs::read_to_string(p.out().join("imagedefinitions.json")).expect("defs");
    let defs: serde_json::Value = serde_json::from_str(&defs).expect("JSON");
    let names: Vec<&str> = defs
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert_eq!(
        names,
        ["nginx", "bash-dog-api", "sidecar"],
        "each container once"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_build_writes_neither_task_definition() {
    let p = Project::example();
    prod_taskdef(&p, |t| t);
    let world = World::new();
    world.script("sidecar", failing(1, "RUN false returned 1"));
    let run = build(&world, &p.settings(&TWO)).await;
    assert_eq!(run.failures().len(), 1);
    assert!(!p.out().join("taskdef.json").exists());
    assert!(!p.out().join("taskdef.prod.json").exists());
}

#[tokio::test(start_paused = true)]
async fn one_container_name_with_two_images_is_bad_input() {
    let p = Project::example();
    prod_taskdef(&p, |t| {
        t.replace("/bash-dog-nginx:latest", "/prod-nginx:latest")
    });
    let world = World::new();
    let run = build(&world, &p.settings(&TWO)).await;
    let err = run.result.expect_err("refused");
    assert_eq!(err.exit_code(), exit_code::BAD_INPUT);
    let Error::Input { path, message } = &err else {
        panic!("not an input error: {err}");
    };
    assert!(path.ends_with("taskdef.prod.json"), "{}", path.display());
    assert!(
        message.contains("\"nginx\"") && message.contains("prod-nginx"),
        "{message}"
    );
    assert!(world.calls("build ").is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_env_file_is_written_with_the_artifact_and_only_then() {
    let p = Project::example();
    let env = p.path().join("out-env/stackbake.env");
    let env_arg = env.to_string_lossy().to_string();
    let world = World::new();
    world.script("sidecar", failing(1, "RUN false returned 1"));
    let run = build(&world, &p.settings(&["--env-file", &env_arg])).await;
    assert_eq!(run.failures().len(), 1);
    assert!(!env.exists(), "a failed build writes no env file");

    let world = World::new();
    let report = build(&world, &p.settings(&["--env-file", &env_arg]))
        .await
        .result
        .expect("builds");
    let text = std::fs::read_to_string(&env).expect("env file");
    for t in &report.targets {
        let base = crate::envfile::names(&[t.container.as_str()])[&t.container].clone();
        let image = t.image.as_deref().expect("image");
        assert!(text.contains(&format!("{base}_IMAGE={image}\n")), "{text}");
        assert!(text.contains(&format!("{base}_ACTION=built\n")), "{text}");
    }
    assert!(text.starts_with("SB_COMMIT_TAG=abc1234\n"), "{text}");
}

#[tokio::test(start_paused = true)]
async fn an_env_file_inside_the_project_is_not_part_of_any_fingerprint() {
    let p = Project::example();
    // sidecar copies the whole context.
    let df = std::fs::read_to_string(p.path().join("Dockerfile")).expect("Dockerfile");
    let df = df.replace(
        "COPY app/sidecar/run.sh /srv/sidecar/run.sh",
        "COPY . /srv/sidecar/",
    );
    std::fs::write(p.path().join("Dockerfile"), df).expect("write");
    // Under app/, which the example's .dockerignore keeps in the context.
    let env = p
        .path()
        .join("app/stackbake.env")
        .to_string_lossy()
        .to_string();
    let world = World::new();
    build(&world, &p.settings(&["--env-file", &env]))
        .await
        .result
        .expect("first build");
    assert!(p.path().join("app/stackbake.env").exists());
    let second = build(&world, &p.settings_tagged("def5678", &["--env-file", &env]))
        .await
        .result
        .expect("second build");
    for t in &second.targets {
        assert_eq!(t.action, "reused", "{}", t.target);
    }
}

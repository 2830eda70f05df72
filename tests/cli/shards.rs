//! Issue 15: scale-out over CodeBuild batch builds, through the real binary.
//! Shards run as parallel processes against one real registry (2 over the
//! example, 3 over a six-target stack written here); the assemble run is a
//! plain `build`; one shard killed mid-build; `init --batch 3` and `check`
//! on its buildspec and broken variants; `--env-file` sourced by bash; two
//! task definitions; the ECS limit of 10 containers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Fixture, Outcome, Project, Sb, is_sha256, report_target};

const SHARD_LIMIT: Duration = Duration::from_secs(300);

/// `build --shard K/N --json` of `fx`, writing into its own out dir.
fn shard(fx: &Fixture, k: u32, n: u32) -> Sb {
    fx.build_with(Some(&shard_out(fx, k)), "plain")
        .args(["--shard", &format!("{k}/{n}"), "--json"])
}

fn shard_out(fx: &Fixture, k: u32) -> PathBuf {
    fx.project.temp().join(format!("out-shard-{k}"))
}

/// Runs shards 1..=n of `fx` at once, as separate processes; their reports.
fn run_shards(fx: &Fixture, n: u32) -> Vec<Value> {
    let running: Vec<_> = (1..=n).map(|k| shard(fx, k, n).spawn()).collect();
    running
        .into_iter()
        .map(|r| {
            let outcome = r.wait(SHARD_LIMIT);
            outcome.assert_success();
            outcome.json()
        })
        .collect()
}

/// container → (shard index from 1, its report entry), over every report;
/// panics when two shards reported one container.
fn by_container(reports: &[Value]) -> BTreeMap<String, (usize, Value)> {
    let mut out = BTreeMap::new();
    for (i, r) in reports.iter().enumerate() {
        assert_eq!(r["shard"]["index"], i + 1, "{r:#}");
        for t in r["targets"].as_array().expect("targets") {
            let container = t["container"].as_str().expect("container").to_string();
            let before = out.insert(container.clone(), (i + 1, t.clone()));
            assert!(before.is_none(), "{container} reported by two shards");
        }
    }
    out
}

/// The assemble step: a plain `build --json` that must succeed.
fn assemble(fx: &Fixture) -> (Outcome, Value) {
    let run = fx.build().arg("--json").run();
    run.assert_success();
    let report = run.json();
    (run, report)
}

/// Checks that every shard built something, each target was built by one
/// shard, the assemble run built nothing and pinned the shards' digests.
fn assert_split_and_assembled(fx: &Fixture, reports: &[Value], containers: &[&str]) {
    for (i, r) in reports.iter().enumerate() {
        assert!(
            !r["targets"].as_array().expect("targets").is_empty(),
            "shard {} was idle: {r:#}",
            i + 1
        );
        assert!(
            !shard_out(fx, i as u32 + 1).join("taskdef.json").exists(),
            "a shard wrote a taskdef"
        );
    }
    let built = by_container(reports);
    let mut seen: Vec<&str> = built.keys().map(String::as_str).collect();
    seen.sort_unstable();
    let mut want = containers.to_vec();
    want.sort_unstable();
    assert_eq!(seen, want, "every target built by one shard");
    for (container, (_, t)) in &built {
        assert_eq!(t["action"], "built", "{container}");
        let repo = t["repository"].as_str().expect("repository");
        assert!(
            fx.registry().digest(repo, "latest").is_none(),
            "a shard moved {repo}:latest"
        );
    }
    let (run, report) = assemble(fx);
    assert!(
        !run.stderr.contains("] Step 1/"),
        "the assemble step built:\n{run}"
    );
    let taskdef = std::fs::read_to_string(fx.project.out().join("taskdef.json")).expect("taskdef");
    for (container, (_, t)) in &built {
        let a = report_target(&report, container);
        assert_eq!(a["action"], "reused", "{container}");
        assert_eq!(a["digest"], t["digest"], "{container}");
        assert_eq!(a["image"], t["image"], "{container}");
        let image = a["image"].as_str().expect("image");
        assert!(
            taskdef.contains(&format!("\"{image}\"")),
            "{container}: {image}"
        );
    }
}

#[test]
fn two_shards_split_the_example_and_the_assemble_step_builds_nothing() {
    let fx = Fixture::with_registry();
    let reports = run_shards(&fx, 2);
    assert_split_and_assembled(&fx, &reports, &["bash-dog-api", "nginx", "sidecar"]);
}

/// A stack of six targets: `tools` (an expensive stage) shared by t1 and
/// t2, the others on `base` alone.
fn six_target_stack(fx: &Fixture) -> Vec<String> {
    let mut df = String::from(
        "ARG BASE=busybox:1.36.1\nFROM ${BASE} AS base\nRUN mkdir -p /srv && echo base > /srv/base.txt\n\
         FROM base AS tools\nRUN echo tools1 > /srv/tools1\nRUN echo tools2 > /srv/tools2\nRUN echo tools3 > /srv/tools3\n",
    );
    let names: Vec<String> = (1..=6).map(|i| format!("t{i}")).collect();
    let mut containers = Vec::new();
    for (i, t) in names.iter().enumerate() {
        let from = if i < 2 { "tools" } else { "base" };
        df.push_str(&format!(
            "FROM {from} AS {t}\nRUN echo {t} > /srv/{t}.txt\nCMD [\"httpd\", \"-f\", \"-p\", \"{port}\"]\n",
            port = 8001 + i
        ));
        containers.push(format!(
            "    {{\"name\": \"{t}\", \"image\": \"{}/six-{t}:latest\", \"essential\": true, \"portMappings\": [{{\"containerPort\": {}, \"protocol\": \"tcp\"}}]}}",
            fx.registry().addr(),
            8001 + i
        ));
    }
    fx.project.write("Dockerfile", &df);
    fx.project.write(
        "taskdef.json",
        &format!(
            "{{\n  \"family\": \"six\",\n  \"networkMode\": \"awsvpc\",\n  \"requiresCompatibilities\": [\"FARGATE\"],\n  \"cpu\": \"256\",\n  \"memory\": \"512\",\n  \"executionRoleArn\": \"arn:aws:iam::210987654321:role/six-execution\",\n  \"containerDefinitions\": [\n{}\n  ]\n}}\n",
            containers.join(",\n")
        ),
    );
    fx.project.write(
        "appspec.yaml",
        "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: <TASK_DEFINITION>\n        LoadBalancerInfo:\n          ContainerName: \"t1\"\n          ContainerPort: 8001\n",
    );
    names
}

#[test]
fn three_shards_split_a_six_target_stack() {
    let fx = Fixture::with_registry();
    let names = six_target_stack(&fx);
    let reports = run_shards(&fx, 3);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_split_and_assembled(&fx, &reports, &refs);
}

#[test]
fn after_a_shard_is_killed_the_assemble_step_builds_its_targets() {
    let fx = Fixture::with_registry();
    // Every target sleeps first, so shard 2 is surely mid-build when killed.
    for (after, stage) in [
        ("FROM base AS api", "api"),
        ("FROM base AS sidecar", "sidecar"),
        ("FROM base AS nginx", "nginx"),
    ] {
        fx.project
            .add_step_after(after, &format!("RUN echo {stage} && sleep 8"));
    }
    let mut two = shard(&fx, 2, 2).spawn();
    let one = shard(&fx, 1, 2).spawn();
    assert!(
        two.wait_for_stderr(Duration::from_secs(120), |e| e.contains("&& sleep 8")),
        "shard 2 never started a target:\n{}",
        two.stderr_so_far()
    );
    two.signal("KILL");
    let killed = two.wait(Duration::from_secs(30));
    assert_eq!(killed.code, None, "killed by the signal:\n{killed}");
    let first = one.wait(SHARD_LIMIT);
    first.assert_success();
    let first = first.json();
    let mine: Vec<String> = first["targets"]
        .as_array()
        .expect("targets")
        .iter()
        .filter_map(|t| t["container"].as_str().map(String::from))
        .collect();
    assert!(!mine.is_empty() && mine.len() < 3, "{first:#}");

    let (_, report) = assemble(&fx);
    for (container, repo) in [
        ("bash-dog-api", "bash-dog-api"),
        ("nginx", "bash-dog-nginx"),
        ("sidecar", "bash-dog-sidecar"),
    ] {
        let t = report_target(&report, container);
        let expected = if mine.iter().any(|m| m == container) {
            "reused"
        } else {
            "built"
        };
        assert_eq!(t["action"], expected, "{container}: {report:#}");
        let digest = t["digest"].as_str().expect("digest");
        assert!(is_sha256(digest));
        assert_eq!(
            fx.registry().digest(repo, &fx.tag).as_deref(),
            Some(digest),
            "{repo}"
        );
        assert_eq!(
            fx.registry().digest(repo, "latest").as_deref(),
            Some(digest),
            "{repo}"
        );
    }
}

/// `stackbake check --dir DIR`.
fn check(dir: &Path) -> Outcome {
    Sb::new().args(["check", "--dir"]).arg(dir).run()
}

#[test]
fn init_batch_writes_a_buildspec_that_check_passes_and_broken_ones_fail() {
    let project = Project::example();
    for f in ["taskdef.json", "appspec.yaml", "buildspec.yml"] {
        project.remove(f);
    }
    Sb::new()
        .args([
            "init",
            "--batch",
            "3",
            "--project",
            "bash-dog",
            "--account",
            "210987654321",
            "--region",
            "eu-west-1",
            "--dir",
        ])
        .arg(project.root())
        .run()
        .assert_success();
    check(project.root()).assert_success();
    let valid = project.read("buildspec.yml");
    for (what, from, to, rule) in [
        (
            "a dangling depend-on",
            "        - shard_2\n",
            "        - shard_9\n",
            "buildspec/batch-depend-on",
        ),
        (
            "a missing shard",
            "STACKBAKE_SHARD: \"2/3\"",
            "STACKBAKE_SHARD: \"3/3\"",
            "buildspec/batch-shards",
        ),
        (
            "two artifact nodes",
            "\n        variables:\n          STACKBAKE_SHARD: \"3/3\"",
            "",
            "buildspec/batch-assemble",
        ),
    ] {
        let broken = valid.replacen(from, to, 1);
        assert_ne!(broken, valid, "{what}: nothing replaced");
        project.write("buildspec.yml", &broken);
        let run = check(project.root());
        run.assert_code(2);
        run.assert_stderr_mentions(&format!("error[{rule}]"));
    }
}

#[test]
fn the_env_file_sourced_by_bash_equals_the_report() {
    let fx = Fixture::with_registry();
    let env = fx.project.temp().join("stackbake.env");
    let run = fx.build().arg("--json").arg("--env-file").arg(&env).run();
    run.assert_success();
    let report = run.json();
    let script = format!(
        "set -eu; source '{}'; printf '%s\\n' \"$SB_COMMIT_TAG\" \"$SB_REGISTRY\" \
         \"$SB_BASH_DOG_API_IMAGE\" \"$SB_BASH_DOG_API_DIGEST\" \"$SB_BASH_DOG_API_ACTION\" \
         \"$SB_NGINX_IMAGE\" \"$SB_SIDECAR_DIGEST\" \"$SB_LOG_ROUTER_IMAGE\" \"$SB_LOG_ROUTER_ACTION\"",
        env.display()
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let api = report_target(&report, "bash-dog-api");
    let want = vec![
        s(&report["commit_tag"]),
        s(&report["registry"]),
        s(&api["image"]),
        s(&api["digest"]),
        s(&api["action"]),
        s(&report_target(&report, "nginx")["image"]),
        s(&report_target(&report, "sidecar")["digest"]),
        s(&report["external"][0]["image"]),
        "external".to_string(),
    ];
    assert_eq!(got, want);
}

#[test]
fn two_task_definitions_are_pinned_together_or_not_at_all() {
    let fx = Fixture::with_registry();
    fx.project.write(
        "taskdef.prod.json",
        &fx.project
            .read("taskdef.json")
            .replace("\"family\": \"bash-dog\"", "\"family\": \"bash-dog-prod\""),
    );
    let two = [
        "--taskdef",
        "taskdef.json",
        "--taskdef",
        "taskdef.prod.json",
    ];
    let run = fx.build().args(two).arg("--json").run();
    run.assert_success();
    let report = run.json();
    let out = fx.project.out();
    let staging = std::fs::read_to_string(out.join("taskdef.json")).expect("staging");
    let prod = std::fs::read_to_string(out.join("taskdef.prod.json")).expect("prod");
    assert!(prod.contains("bash-dog-prod"));
    for t in report["targets"].as_array().expect("targets") {
        let image = t["image"].as_str().expect("image");
        assert!(staging.contains(image) && prod.contains(image), "{image}");
    }

    // A failed target: neither task definition is written.
    let fx = Fixture::with_registry();
    fx.project
        .write("taskdef.prod.json", &fx.project.read("taskdef.json"));
    fx.project
        .add_step_after("FROM base AS sidecar", "RUN false");
    let run = fx.build().args(two).run();
    run.assert_code(1);
    assert!(!fx.project.out().join("taskdef.json").exists(), "{run}");
    assert!(
        !fx.project.out().join("taskdef.prod.json").exists(),
        "{run}"
    );
}

#[test]
fn check_refuses_a_task_definition_of_eleven_containers() {
    let project = Project::example();
    let extra: Vec<String> = (1..=7)
        .map(|i| format!("    {{\"name\": \"extra-{i}\", \"image\": \"public.ecr.aws/nginx/nginx:1.27\", \"essential\": false}},\n"))
        .collect();
    project.edit("taskdef.json", |t| {
        t.replacen(
            "  \"containerDefinitions\": [\n",
            &format!("  \"containerDefinitions\": [\n{}", extra.concat()),
            1,
        )
    });
    let run = check(project.root());
    run.assert_code(2);
    run.assert_stderr_mentions("error[taskdef/too-many-containers]");
    run.assert_stderr_mentions("11 containers");
    run.assert_stderr_mentions("several task definitions");
}

//! Issue 2: `stackbake build --local` over the example stack — cold builds
//! pushed to a real registry, the artifact files, local-only builds, and the
//! exit codes for bad input (2), failed targets (1) and a broken
//! environment (3). Registry state is read with curl, never with our code.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use serde_json::{Value, json};

use crate::harness::{
    Fixture, Outcome, Project, docker_run, free_port, is_sha256, local_image_exists, report_target,
};

/// (container, repository, target stage) of the example's three targets.
const TARGETS: [(&str, &str, &str); 3] = [
    ("nginx", "bash-dog-nginx", "nginx"),
    ("bash-dog-api", "bash-dog-api", "api"),
    ("sidecar", "bash-dog-sidecar", "sidecar"),
];

const LOG_ROUTER_IMAGE: &str = "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable";

/// The artifact files every successful build writes into `--out`.
const ARTIFACT: [&str; 5] = [
    "appspec.yaml",
    "imageDetail.json",
    "imagedefinitions.json",
    "stackbake-report.json",
    "taskdef.json",
];

/// The shared stage's first step, as the classic builder prints it.
const BASE_MKDIR_STEP: &str = "RUN mkdir -p /srv/bin /srv/www";

/// Panics unless `dir` holds no file (a failed run writes no artifact).
fn assert_no_artifact(dir: &Path) {
    let files = Project::files_in(dir);
    assert!(
        files.is_empty(),
        "a failed run wrote {files:?} into {}",
        dir.display()
    );
}

/// Checks the out dir's taskdef.json against the input: same JSON except
/// the mapped images, and byte-identical text outside those image values.
fn assert_taskdef_pinned(input: &str, output: &str, images: &BTreeMap<&str, String>) {
    let mut expected: Value = serde_json::from_str(input).expect("input taskdef is JSON");
    let mut expected_text = input.to_owned();
    let containers = expected["containerDefinitions"]
        .as_array_mut()
        .expect("containerDefinitions");
    for c in containers {
        let Some(new) = c["name"].as_str().and_then(|name| images.get(name)) else {
            continue;
        };
        let old = c["image"].as_str().expect("image").to_owned();
        let (old_lit, new_lit) = (json!(old).to_string(), json!(new).to_string());
        assert_eq!(expected_text.matches(&old_lit).count(), 1, "{old_lit}");
        expected_text = expected_text.replace(&old_lit, &new_lit);
        c["image"] = json!(new);
    }
    let got: Value = serde_json::from_str(output)
        .unwrap_or_else(|e| panic!("output taskdef.json is not JSON ({e}):\n{output}"));
    assert_eq!(
        got, expected,
        "taskdef.json changed beyond the image values"
    );
    assert_eq!(
        output, expected_text,
        "taskdef.json text differs outside the image values"
    );
}

/// How often the step containing `step` was executed and taken from cache,
/// over all `[prefix] ` streams of a `--progress plain` log: the classic
/// builder's (`Step 2/5 : RUN …` then `---> Running in` or `---> Using
/// cache`) and BuildKit's (`#5 [base 2/3] RUN …` then `#5 DONE` or `#5
/// CACHED`; `#5 SHARED with [unit]` is the same run of a step that builds
/// in flight together share, counted once, where it says `DONE`).
pub(crate) fn step_runs(stderr: &str, step: &str) -> (usize, usize) {
    let mut pending = BTreeSet::new();
    let mut vertices: BTreeSet<(String, String)> = BTreeSet::new();
    let (mut executed, mut cached) = (0, 0);
    for line in stderr.lines() {
        let Some((prefix, rest)) = line.strip_prefix('[').and_then(|l| l.split_once("] ")) else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some((vertex, what)) = rest
            .strip_prefix('#')
            .and_then(|r| r.split_once(' '))
            .filter(|(n, _)| n.bytes().all(|b| b.is_ascii_digit()))
        {
            let key = (prefix.to_owned(), vertex.to_owned());
            if what.starts_with('[') && what.contains(step) {
                vertices.insert(key);
            } else if vertices.contains(&key) && (what == "CACHED" || what.starts_with("DONE")) {
                vertices.remove(&key);
                if what == "CACHED" {
                    cached += 1;
                } else {
                    executed += 1;
                }
            }
            continue;
        }
        if rest.starts_with("Step ") {
            if rest.contains(step) {
                pending.insert(prefix.to_owned());
            } else {
                pending.remove(prefix);
            }
        } else if pending.contains(prefix) {
            if rest.starts_with("---> Running in") {
                executed += 1;
                pending.remove(prefix);
            } else if rest.starts_with("---> Using cache") {
                cached += 1;
                pending.remove(prefix);
            }
        }
    }
    (executed, cached)
}

#[test]
fn cold_build_pushes_pins_and_writes_the_artifact() {
    let fx = Fixture::with_registry();
    // The shared step leaves a mark no second run of it could repeat.
    fx.project.edit("Dockerfile", |t| {
        t.replace(
            "> /srv/base.txt",
            "> /srv/base.txt && cat /proc/sys/kernel/random/uuid > /srv/base-run",
        )
    });
    let run = fx.build().arg("--json").run();
    run.assert_success();
    let out = fx.project.out();

    // The report: on stdout (--json) and in the out dir, the same document.
    let report = run.json();
    assert_eq!(Project::json_in(out, "stackbake-report.json"), report);
    assert_report_header(&fx, &report);

    let mut pinned = BTreeMap::new();
    for (container, repo, stage) in TARGETS {
        let image = assert_built_and_pinned(&fx, &report, (container, repo, stage));
        pinned.insert(container, image);
    }

    assert_artifact_files(&fx, &pinned);
    assert_images_hold_their_files(&pinned);
    assert_shared_stage_ran_once(&run, &pinned);
}

/// Panics unless the cold build's report names the commit tag, the
/// registry, the external container and three targets.
fn assert_report_header(fx: &Fixture, report: &Value) {
    assert_eq!(report["schema_version"], 1, "{report:#}");
    assert_eq!(report["commit_tag"], fx.tag.as_str());
    assert_eq!(report["registry"], fx.registry().addr());
    assert_eq!(
        report["external"],
        json!([{"container": "log-router", "image": LOG_ROUTER_IMAGE}])
    );
    assert_eq!(
        report["targets"].as_array().map(Vec::len),
        Some(3),
        "{report:#}"
    );
}

/// Panics unless `container` was built from `stage`, pushed to `repo` and
/// pinned to the digest both its tags name in the registry (read with
/// curl); returns the pinned image.
fn assert_built_and_pinned(
    fx: &Fixture,
    report: &Value,
    (container, repo, stage): (&str, &str, &str),
) -> String {
    let registry = fx.registry();
    let t = report_target(report, container);
    assert_eq!(t["target"], stage, "{t:#}");
    assert_eq!(t["repository"], repo, "{t:#}");
    assert_eq!(t["action"], "built", "{t:#}");
    // Fingerprints arrive with build skipping; when present, well-formed.
    let fingerprint = t.get("fingerprint").unwrap_or(&Value::Null);
    assert!(
        fingerprint.is_null() || fingerprint.as_str().is_some_and(is_sha256),
        "{t:#}"
    );
    assert!(
        t["seconds"].is_number() && t["bytes_pushed"].is_number(),
        "{t:#}"
    );
    let digest = t["digest"].as_str().expect("digest").to_owned();
    assert!(is_sha256(&digest), "{t:#}");
    let image = format!("{}/{repo}@{digest}", registry.addr());
    assert_eq!(t["image"], image.as_str());
    let tags: Vec<&str> = t["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        tags.contains(&fx.tag.as_str()) && tags.contains(&"latest"),
        "{t:#}"
    );
    // The registry itself, read with curl: both tags point at the pin.
    for tag in [fx.tag.as_str(), "latest"] {
        assert_eq!(
            registry.digest(repo, tag).as_deref(),
            Some(digest.as_str()),
            "{repo}:{tag} in the registry"
        );
    }
    image
}

/// Panics unless the out dir holds exactly the artifact, each file pinning
/// `pinned` (container → image), and the tracked inputs are untouched.
fn assert_artifact_files(fx: &Fixture, pinned: &BTreeMap<&str, String>) {
    let out = fx.project.out();
    assert_eq!(Project::files_in(out), ARTIFACT);
    let input = fx.project.read("taskdef.json");
    let output = fs::read_to_string(out.join("taskdef.json")).expect("out taskdef.json");
    assert_taskdef_pinned(&input, &output, pinned);
    assert_eq!(
        Project::json_in(out, "imageDetail.json"),
        json!({"ImageURI": pinned["nginx"]})
    );
    let definitions = Project::json_in(out, "imagedefinitions.json");
    let got: BTreeSet<(String, String)> = definitions
        .as_array()
        .expect("imagedefinitions.json is an array")
        .iter()
        .map(|d| (d["name"].to_string(), d["imageUri"].to_string()))
        .collect();
    let want: BTreeSet<(String, String)> = pinned
        .iter()
        .map(|(c, i)| (json!(c).to_string(), json!(i).to_string()))
        .collect();
    assert_eq!(got, want, "imagedefinitions.json: {definitions:#}");
    assert_eq!(definitions.as_array().map(Vec::len), Some(3));
    assert_eq!(
        fs::read_to_string(out.join("appspec.yaml")).expect("appspec copy"),
        fx.project.read("appspec.yaml")
    );
    // --local leaves the tracked inputs alone.
    let original = fs::read_to_string(Path::new(crate::harness::REPO_ROOT).join("taskdef.json"))
        .expect("repo taskdef");
    assert_eq!(input, original);
}

/// Panics unless the pinned images hold what the Dockerfile put there.
fn assert_images_hold_their_files(pinned: &BTreeMap<&str, String>) {
    assert_eq!(
        docker_run(&pinned["bash-dog-api"], &["cat", "/srv/api/greeting.txt"]),
        "hello from api"
    );
    assert_eq!(
        docker_run(&pinned["nginx"], &["cat", "/srv/www/static/site.css"]),
        "body { color: #333; }"
    );
    assert_eq!(
        docker_run(&pinned["sidecar"], &["cat", "/srv/base.txt"]),
        "base stage ran"
    );
}

/// Panics unless the streamed logs carry a prefix per target and the shared
/// stage ran once (its log, and the one mark all images share).
fn assert_shared_stage_ran_once(run: &Outcome, pinned: &BTreeMap<&str, String>) {
    for (_, _, stage) in TARGETS {
        assert!(
            run.stderr.contains(&format!("[{stage}] ")),
            "no [{stage}] log lines:\n{run}"
        );
    }
    let (executed, cached) = step_runs(&run.stderr, BASE_MKDIR_STEP);
    assert_eq!(
        executed, 1,
        "the shared `base` step ran {executed} times ({cached} cache hits):\n{run}"
    );
    let marks: BTreeSet<String> = TARGETS
        .iter()
        .map(|(container, _, _)| docker_run(&pinned[container], &["cat", "/srv/base-run"]))
        .collect();
    assert_eq!(
        marks.len(),
        1,
        "the shared step ran more than once: {marks:?}"
    );
}

#[test]
fn no_latest_leaves_latest_untouched() {
    let fx = Fixture::with_registry();
    let run = fx.build().args(["--no-latest", "--json"]).run();
    run.assert_success();
    let report = run.json();
    for (container, repo, _) in TARGETS {
        let tags = fx.registry().tags(repo);
        assert!(tags.contains(&fx.tag), "{repo} tags {tags:?}");
        assert!(!tags.iter().any(|t| t == "latest"), "{repo} tags {tags:?}");
        let t = report_target(&report, container);
        assert!(
            !t["tags"]
                .as_array()
                .expect("tags")
                .iter()
                .any(|t| t == "latest"),
            "{t:#}"
        );
    }
}

#[test]
fn build_args_reach_the_target_image() {
    let fx = Fixture::with_registry();
    let run = fx
        .build()
        // A comma is part of the value, as with docker (not two arguments).
        .args(["--build-arg", "API_GREETING=hi, all", "--json"])
        .run();
    run.assert_success();
    let api = report_target(&run.json(), "bash-dog-api")["image"]
        .as_str()
        .expect("api image")
        .to_owned();
    assert_eq!(
        docker_run(&api, &["cat", "/srv/api/greeting.txt"]),
        "hi, all from api"
    );
}

#[test]
fn a_taskdef_elsewhere_is_pinned_in_place_under_its_own_name() {
    // taskdef and appspec in deploy/, under the names the pipeline's deploy
    // action is configured with; --out is that directory (in place).
    let fx = Fixture::local_only();
    let taskdef = fx.project.read("taskdef.json");
    let appspec = fx.project.read("appspec.yaml");
    fx.project.remove("taskdef.json");
    fx.project.remove("appspec.yaml");
    fx.project.write("deploy/taskdef.prod.json", &taskdef);
    fx.project.write("deploy/appspec.yaml", &appspec);
    let deploy = fx.project.path("deploy");
    let run = fx
        .build_with(Some(&deploy), "plain")
        .args(["--taskdef", "deploy/taskdef.prod.json"])
        .args(["--appspec", "deploy/appspec.yaml"])
        .run();
    run.assert_success();
    assert_eq!(
        Project::files_in(&deploy),
        [
            "appspec.yaml",
            "imageDetail.json",
            "imagedefinitions.json",
            "stackbake-report.json",
            "taskdef.prod.json",
        ]
    );
    assert_eq!(fx.project.read("deploy/appspec.yaml"), appspec);
    assert!(!fx.project.path("taskdef.json").exists());
    let pinned = Project::json_in(&deploy, "taskdef.prod.json");
    for (container, repo, _) in TARGETS {
        let c = pinned["containerDefinitions"]
            .as_array()
            .expect("containers")
            .iter()
            .find(|c| c["name"] == container)
            .expect("container");
        assert_eq!(c["image"], format!("{repo}:{}", fx.tag), "{container}");
    }
}

#[test]
fn without_registry_images_are_tagged_locally() {
    let fx = Fixture::local_only();
    // No --out: --local writes into DIR/stackbake-out.
    let run = fx.build_with(None, "plain").arg("--json").run();
    run.assert_success();
    let out = fx.project.path("stackbake-out");
    assert_eq!(Project::files_in(&out), ARTIFACT);
    assert!(!fx.project.out().exists());

    let report = run.json();
    assert_eq!(report["registry"], Value::Null, "{report:#}");
    let mut local = BTreeMap::new();
    for (container, repo, _) in TARGETS {
        let reference = format!("{repo}:{}", fx.tag);
        assert!(local_image_exists(&reference), "no local {reference}");
        let t = report_target(&report, container);
        assert_eq!(t["digest"], Value::Null, "{t:#}");
        assert_eq!(t["action"], "built", "{t:#}");
        local.insert(container, reference);
    }
    let taskdef = Project::json_in(&out, "taskdef.json");
    for c in taskdef["containerDefinitions"]
        .as_array()
        .expect("containers")
    {
        let name = c["name"].as_str().expect("name");
        let want = local.get(name).map_or(LOG_ROUTER_IMAGE, String::as_str);
        assert_eq!(c["image"], want, "container {name}");
    }
    assert_eq!(
        Project::json_in(&out, "imageDetail.json"),
        json!({"ImageURI": local["nginx"]})
    );
    assert_eq!(
        docker_run(&local["bash-dog-api"], &["cat", "/srv/api/greeting.txt"]),
        "hello from api"
    );
    assert!(!fx.project.read("taskdef.json").contains(&fx.tag));
}

// ------------------------------------------------------------- bad input: 2

/// Runs a build over a broken project and checks exit 2, the stderr
/// mentions, and that no artifact was written.
fn assert_bad_input(fx: &Fixture, extra: &[&str], mentions: &[&str]) -> String {
    let run = fx.build().args(extra).run();
    run.assert_code(2);
    for needle in mentions {
        run.assert_stderr_mentions(needle);
    }
    assert_no_artifact(fx.project.out());
    assert_no_artifact(&fx.project.path("stackbake-out"));
    run.stderr.clone()
}

#[test]
fn missing_dockerfile_is_bad_input() {
    let fx = Fixture::inputs_only();
    fx.project.remove("Dockerfile");
    assert_bad_input(&fx, &[], &["Dockerfile"]);
}

#[test]
fn unterminated_heredoc_is_bad_input_with_its_line() {
    let fx = Fixture::inputs_only();
    let mut line = 0;
    fx.project.edit("Dockerfile", |text| {
        let mut lines: Vec<&str> = text.lines().collect();
        let at = lines
            .iter()
            .position(|l| *l == "FROM base AS sidecar")
            .expect("sidecar stage")
            + 1;
        lines.insert(at, "RUN <<END_OF_SCRIPT");
        lines.insert(at + 1, "echo this heredoc never ends");
        line = at + 1;
        lines.join("\n") + "\n"
    });
    let stderr = assert_bad_input(&fx, &[], &["Dockerfile"]);
    assert!(
        stderr.contains(&format!(":{line}")) || stderr.contains(&format!("line {line}")),
        "stderr does not give line {line}:\n{stderr}"
    );
    let lower = stderr.to_lowercase();
    assert!(
        lower.contains("heredoc") || stderr.contains("END_OF_SCRIPT"),
        "stderr does not name the heredoc:\n{stderr}"
    );
}

#[test]
fn invalid_taskdef_json_is_bad_input() {
    let fx = Fixture::inputs_only();
    fx.project.write(
        "taskdef.json",
        "{\"family\": \"bash-dog\", \"containerDefinitions\": [\n",
    );
    assert_bad_input(&fx, &[], &["taskdef.json"]);
}

#[test]
fn container_without_a_stage_lists_the_stages() {
    let fx = Fixture::inputs_only();
    fx.project.edit("taskdef.json", |text| {
        let mut taskdef: Value = serde_json::from_str(&text).expect("taskdef");
        taskdef["containerDefinitions"]
            .as_array_mut()
            .expect("containers")
            .push(json!({
                "name": "worker",
                "image": "123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-worker:latest",
                "essential": false
            }));
        serde_json::to_string_pretty(&taskdef).expect("serialize")
    });
    assert_bad_input(
        &fx,
        &[],
        &["worker", "base", "assets", "api", "sidecar", "nginx"],
    );
}

#[test]
fn unknown_target_container_is_bad_input() {
    let fx = Fixture::inputs_only();
    assert_bad_input(&fx, &["--target", "nope=api"], &["nope"]);
}

#[test]
fn missing_appspec_is_bad_input() {
    let fx = Fixture::inputs_only();
    fx.project.remove("appspec.yaml");
    assert_bad_input(&fx, &[], &["appspec.yaml"]);
}

// ------------------------------------------------------- environment: 3

#[test]
fn unreachable_docker_daemon_hints_privileged_mode() {
    let fx = Fixture::inputs_only();
    let run = fx
        .build()
        .env("DOCKER_HOST", "unix:///nonexistent.sock")
        .run();
    run.assert_code(3).assert_stderr_mentions("privileged");
    assert_no_artifact(fx.project.out());
}

#[test]
fn unreachable_registry_is_an_environment_error() {
    let mut fx = Fixture::local_only();
    let closed = format!("127.0.0.1:{}", free_port());
    fx.images.watch_registry(&closed);
    let run = fx.build().args(["--registry", &closed]).run();
    run.assert_code(3).assert_stderr_mentions(&closed);
    assert_no_artifact(fx.project.out());
}

// ---------------------------------------------------- failed target: 1

#[test]
fn failed_target_names_it_shows_its_log_and_moves_no_latest() {
    let fx = Fixture::with_registry();
    fx.project.add_step_after(
        "COPY app/sidecar/run.sh /srv/sidecar/run.sh",
        "RUN echo sidecar-breaks-here && false",
    );
    assert!(fx.project.read("Dockerfile").contains("&& false"));
    // Quiet: whatever log shows up on stderr comes from the error report.
    let run = fx.build_with(Some(fx.project.out()), "quiet").run();
    run.assert_code(1).assert_stderr_mentions("sidecar");
    run.assert_stderr_mentions("sidecar-breaks-here");
    assert_no_artifact(fx.project.out());
    for (_, repo, _) in TARGETS {
        let tags = fx.registry().tags(repo);
        assert!(
            !tags.iter().any(|t| t == "latest"),
            "{repo}:latest moved although sidecar failed ({tags:?}):\n{run}"
        );
    }
}

#[test]
fn step_runs_counts_per_prefix() {
    let log = "[base] Step 2/4 : RUN mkdir -p /srv/bin /srv/www  && echo x\n\
               [api] Step 2/9 : RUN mkdir -p /srv/bin /srv/www  && echo x\n\
               [base]  ---> Running in 0123abcd\n\
               [api]  ---> Using cache\n\
               [api] Step 3/9 : COPY app/shared/ /srv/shared/\n\
               [api]  ---> Running in feedbeef\n\
               [nginx] Step 2/9 : RUN mkdir -p /srv/bin /srv/www  && echo x\n\
               [nginx]  ---> Using cache\n";
    assert_eq!(step_runs(log, BASE_MKDIR_STEP), (1, 2));
    assert_eq!(step_runs("no prefixes here\n", BASE_MKDIR_STEP), (0, 0));
    let buildkit = "[base] #5 [base 2/3] RUN mkdir -p /srv/bin /srv/www && echo x\n\
               [api] #5 [base 2/3] RUN mkdir -p /srv/bin /srv/www && echo x\n\
               [base] #6 [base 3/3] COPY app/shared/ /srv/shared/\n\
               [base] #6 DONE 0.1s\n\
               [base] #5 base stage output\n\
               [base] #5 DONE 1.0s\n\
               [api] #5 CACHED\n";
    assert_eq!(step_runs(buildkit, BASE_MKDIR_STEP), (1, 1));
}

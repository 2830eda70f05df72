//! Issue 4: build only what changed — a sequence of `build --local
//! --registry` runs over the example stack, each asserting from the report
//! exactly which targets were built and which reused (and, in the registry,
//! that reused digests are the earlier ones); `plan --json` changing
//! nothing; and the fingerprint label on the pushed image. Registry state
//! is read with curl and skopeo, never with our code.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Fixture, Outcome, Project, Sb, is_sha256, report_target};

/// (container, repository) of the example's three targets.
const TARGETS: [(&str, &str); 3] = [
    ("nginx", "bash-dog-nginx"),
    ("bash-dog-api", "bash-dog-api"),
    ("sidecar", "bash-dog-sidecar"),
];

const ALL: [&str; 3] = ["nginx", "bash-dog-api", "sidecar"];
const LABEL: &str = "dev.stackbake.fingerprint";

fn repo_of(container: &str) -> &'static str {
    TARGETS
        .iter()
        .find(|(c, _)| *c == container)
        .map(|(_, r)| *r)
        .unwrap_or_else(|| panic!("unknown container {container}"))
}

fn field(t: &Value, name: &str) -> String {
    t[name]
        .as_str()
        .unwrap_or_else(|| panic!("no string {name:?} in {t:#}"))
        .to_owned()
}

/// What one build step left behind, per container.
#[derive(Clone, Debug, PartialEq)]
struct Step {
    digest: BTreeMap<String, String>,
    fingerprint: BTreeMap<String, String>,
}

/// Checks one successful `build --json` run: exactly `built` were built and
/// every other target reused; reused digests equal `before`'s; the registry
/// holds the commit tag, `latest` and the fingerprint tag at each target's
/// digest. Returns the step's digests and fingerprints.
fn check_build(
    fx: &Fixture,
    run: &Outcome,
    step: &str,
    built: &[&str],
    before: Option<&Step>,
    commit_tag: &str,
) -> Step {
    run.assert_success();
    let report = run.json();
    assert_eq!(report["commit_tag"], commit_tag, "{step}: {report:#}");
    let actions: BTreeMap<String, String> = ALL
        .iter()
        .map(|c| (c.to_string(), field(report_target(&report, c), "action")))
        .collect();
    let want: BTreeMap<String, String> = ALL
        .iter()
        .map(|c| {
            let a = if built.contains(c) { "built" } else { "reused" };
            (c.to_string(), a.to_owned())
        })
        .collect();
    assert_eq!(actions, want, "{step}: built/reused per container\n{run}");

    let mut now = Step {
        digest: BTreeMap::new(),
        fingerprint: BTreeMap::new(),
    };
    let registry = fx.registry();
    for container in ALL {
        let repo = repo_of(container);
        let t = report_target(&report, container);
        let digest = field(t, "digest");
        let fingerprint = field(t, "fingerprint");
        assert!(is_sha256(&digest), "{step}: {t:#}");
        assert!(is_sha256(&fingerprint), "{step}: {t:#}");
        if let Some(before) = before {
            if built.contains(&container) {
                assert_ne!(
                    fingerprint, before.fingerprint[container],
                    "{step}: {container} was built but its fingerprint did not change"
                );
            } else {
                assert_eq!(
                    digest, before.digest[container],
                    "{step}: reused {container} must keep the earlier digest"
                );
                assert_eq!(
                    fingerprint, before.fingerprint[container],
                    "{step}: reused {container} must keep its fingerprint"
                );
                assert_eq!(
                    t["bytes_pushed"].as_u64(),
                    Some(0),
                    "{step}: reused {container} must push no layer: {t:#}"
                );
            }
        }
        let fp_tag = format!("fp-{}", &fingerprint["sha256:".len()..]);
        for tag in [commit_tag, "latest", fp_tag.as_str()] {
            assert_eq!(
                registry.digest(repo, tag).as_deref(),
                Some(digest.as_str()),
                "{step}: {repo}:{tag} in the registry\n{run}"
            );
        }
        now.digest.insert(container.to_owned(), digest);
        now.fingerprint.insert(container.to_owned(), fingerprint);
    }
    now
}

/// `stackbake build --local --dir ROOT --out OUT --build-arg BASE=…
/// --tag TAG --progress plain --registry ADDR` (like `Fixture::build`, with
/// a per-step commit tag).
fn local_build(fx: &Fixture, tag: &str) -> Sb {
    Sb::new()
        .args(["build", "--local", "--dir"])
        .arg(fx.project.root())
        .arg("--out")
        .arg(fx.project.out())
        .arg("--build-arg")
        .arg(format!("BASE={}", fx.base_ref()))
        .args(["--tag", tag, "--progress", "plain"])
        .args(["--registry", fx.registry().addr()])
}

/// Tag lists of the three repositories, read with curl.
fn all_tags(fx: &Fixture) -> BTreeMap<&'static str, Vec<String>> {
    TARGETS
        .iter()
        .map(|(_, repo)| {
            let mut tags = fx.registry().tags(repo);
            tags.sort();
            (*repo, tags)
        })
        .collect()
}

/// Labels of `repo:tag` in the test's registry, read with skopeo.
fn skopeo_labels(fx: &Fixture, repo: &str, tag: &str) -> Value {
    let reference = format!("docker://{}/{repo}:{tag}", fx.registry().addr());
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", &reference])
        .output()
        .expect("skopeo not found: run `scripts/test setup`");
    assert!(
        out.status.success(),
        "skopeo inspect {reference} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).expect("skopeo inspect prints JSON");
    json["Labels"].clone()
}

#[test]
fn rebuilds_only_what_changed() {
    let fx = Fixture::with_registry();
    let mut times: Vec<(String, Duration)> = Vec::new();
    let mut n = 0;
    // One build with a new commit tag, checked; returns its Step.
    let mut build = |step: &str, extra: &[&str], built: &[&str], before: Option<&Step>| {
        n += 1;
        let tag = format!("{}s{n}", fx.tag);
        let run = local_build(&fx, &tag).arg("--json").args(extra).run();
        times.push((step.to_owned(), run.elapsed));
        check_build(&fx, &run, step, built, before, &tag)
    };

    let cold = build("cold", &[], &ALL, None);

    // No change, new commit tag: nothing built, the tag lands on all three.
    let same = build("no change", &[], &[], Some(&cold));
    assert_eq!(same, cold);
    let (planned, actions) = plan(&fx, &[]);
    let plan_time = planned.elapsed;
    assert_plan(&planned, &actions, &every_target("reuse", "unchanged"));

    // A file only api's COPY reads.
    let original_index = fx.project.read("app/api/index.json");
    fx.project
        .edit("app/api/index.json", |s| s.replace('}', ", \"v\": 2}"));
    assert_ne!(fx.project.read("app/api/index.json"), original_index);
    let api = build("app/api edit", &[], &["bash-dog-api"], Some(&same));
    assert_ne!(api.digest["bash-dog-api"], cold.digest["bash-dog-api"]);

    // A file the shared `base` stage copies: every target depends on it.
    let original_config = fx.project.read("app/shared/config.txt");
    fx.project
        .edit("app/shared/config.txt", |s| s.replace("v1", "v2"));
    let shared = build("app/shared edit", &[], &ALL, Some(&api));

    // A file of the `assets` stage, which only nginx takes with COPY --from.
    let original_css = fx.project.read("app/assets/site.css");
    fx.project
        .edit("app/assets/site.css", |s| s.replace("#333", "#444"));
    let assets = build("app/assets edit", &[], &["nginx"], Some(&shared));

    // A new file inside the context that no instruction reads.
    fx.project.write("app/unused/notes.txt", "read by nobody\n");
    let unused = build("unread file", &[], &[], Some(&assets));

    // A .dockerignore'd file (app/**/*.md), beside a file sidecar copies…
    fx.project
        .edit("app/sidecar/README.md", |s| s + "\nmore notes\n");
    let ignored = build("ignored README", &[], &[], Some(&unused));
    // …and inside a directory api copies whole: ignored, so not read.
    fx.project
        .write("app/api/CHANGES.md", "ignored by .dockerignore\n");
    let ignored_in_copy = build("ignored file in a COPY'd dir", &[], &[], Some(&ignored));

    // A build arg only api uses.
    let arg = build(
        "API_GREETING=hi",
        &["--build-arg", "API_GREETING=hi"],
        &["bash-dog-api"],
        Some(&ignored_in_copy),
    );

    // Back to the cold inputs: everything reused, with the cold digests.
    restore_cold_inputs(
        &fx.project,
        &original_index,
        &original_config,
        &original_css,
    );
    let reverted = build("revert", &[], &[], Some(&cold));
    assert_ne!(arg, cold);
    assert_eq!(reverted, cold, "a revert must find the cold build's images");

    // --force: everything built again, same fingerprints.
    let forced = build("--force", &["--force"], &ALL, None);
    assert_eq!(forced.fingerprint, cold.fingerprint);

    assert_no_change_is_faster(&times, plan_time);
}

/// Undoes `rebuilds_only_what_changed`'s edits: the three edited files get
/// their original text back, the added files go, the README loses its line.
fn restore_cold_inputs(project: &Project, index: &str, config: &str, css: &str) {
    project.write("app/api/index.json", index);
    project.write("app/shared/config.txt", config);
    project.write("app/assets/site.css", css);
    project.remove("app/unused/notes.txt");
    project.remove("app/api/CHANGES.md");
    project.edit("app/sidecar/README.md", |s| {
        s.strip_suffix("\nmore notes\n")
            .map(str::to_owned)
            .unwrap_or(s)
    });
}

/// Prints each step's time (and the plan's) and panics unless the
/// no-change build was faster than the cold one.
fn assert_no_change_is_faster(times: &[(String, Duration)], plan_time: Duration) {
    for (step, elapsed) in times {
        eprintln!("timing: {step}: {:.2} s", elapsed.as_secs_f64());
    }
    eprintln!(
        "timing: plan after no change: {:.2} s",
        plan_time.as_secs_f64()
    );
    let by_step: BTreeMap<&str, Duration> = times.iter().map(|(s, d)| (s.as_str(), *d)).collect();
    assert!(
        by_step["no change"] < by_step["cold"],
        "a no-change build ({:?}) is not faster than a cold one ({:?})",
        by_step["no change"],
        by_step["cold"]
    );
}

/// Runs `plan --json` and checks that it changed nothing: identical tag
/// lists, nothing in its `--out` (a fresh path) or the build's out dir, no
/// `stackbake-out`. Returns (action, reason,
/// fingerprint, digest) per container.
fn plan(fx: &Fixture, extra: &[&str]) -> (Outcome, BTreeMap<String, (String, String, Value)>) {
    let before = all_tags(fx);
    let plan_out = fx.project.temp().join("plan-out");
    let out_before = Project::files_in(fx.project.out());
    let run = Sb::new()
        .args(["plan", "--local", "--dir"])
        .arg(fx.project.root())
        .arg("--out")
        .arg(&plan_out)
        .arg("--build-arg")
        .arg(format!("BASE={}", fx.base_ref()))
        .args(["--tag", &format!("{}plan", fx.tag), "--json"])
        .args(["--registry", fx.registry().addr()])
        .args(extra)
        .run();
    run.assert_success();
    assert_eq!(all_tags(fx), before, "plan changed the registry:\n{run}");
    assert!(
        !plan_out.exists(),
        "plan wrote {:?} into its --out",
        Project::files_in(&plan_out)
    );
    assert_eq!(
        Project::files_in(fx.project.out()),
        out_before,
        "plan touched the build's out dir"
    );
    assert!(
        !fx.project.path("stackbake-out").exists(),
        "plan wrote stackbake-out"
    );
    let report = run.json();
    let mut by = BTreeMap::new();
    for container in ALL {
        let t = report_target(&report, container);
        let fingerprint = field(t, "fingerprint");
        assert!(is_sha256(&fingerprint), "{t:#}");
        by.insert(
            container.to_owned(),
            (field(t, "action"), field(t, "reason"), t.clone()),
        );
    }
    (run, by)
}

/// Panics unless each container's (action, reason) is as `want` says.
fn assert_plan(
    run: &Outcome,
    got: &BTreeMap<String, (String, String, Value)>,
    want: &[(&str, &str, &str)],
) {
    let got: BTreeMap<&str, (&str, &str)> = got
        .iter()
        .map(|(c, (a, r, _))| (c.as_str(), (a.as_str(), r.as_str())))
        .collect();
    let want: BTreeMap<&str, (&str, &str)> = want.iter().map(|(c, a, r)| (*c, (*a, *r))).collect();
    assert_eq!(got, want, "plan actions/reasons\n{run}");
}

/// The same (action, reason) for each of the three targets, for
/// [`assert_plan`].
fn every_target<'a>(action: &'a str, reason: &'a str) -> [(&'a str, &'a str, &'a str); 3] {
    ALL.map(|container| (container, action, reason))
}

#[test]
fn plan_changes_nothing_and_explains_each_target() {
    let fx = Fixture::with_registry();
    let mut times: Vec<(&str, Duration)> = Vec::new();

    // Empty registry: everything is new.
    let (run, empty) = plan(&fx, &[]);
    times.push(("plan, empty registry", run.elapsed));
    assert_plan(&run, &empty, &every_target("build", "new"));
    for (_, _, t) in empty.values() {
        assert!(t.get("digest").is_none_or(Value::is_null), "{t:#}");
    }

    let build = local_build(&fx, &fx.tag).arg("--json").run();
    times.push(("cold build", build.elapsed));
    build.assert_success();
    let report = build.json();

    // The label on the pushed image holds the report's fingerprint.
    let api = report_target(&report, "bash-dog-api");
    let labels = skopeo_labels(&fx, "bash-dog-api", &fx.tag);
    assert_eq!(
        labels[LABEL], api["fingerprint"],
        "label {LABEL} of bash-dog-api:{}: {labels:#}",
        fx.tag
    );

    // After the build: everything unchanged, same fingerprints and digests.
    let (run, unchanged) = plan(&fx, &[]);
    times.push(("plan, no change", run.elapsed));
    assert_plan(&run, &unchanged, &every_target("reuse", "unchanged"));
    for container in ALL {
        let built = report_target(&report, container);
        let planned = &unchanged[container].2;
        assert_eq!(planned["fingerprint"], built["fingerprint"], "{container}");
        assert_eq!(planned["digest"], built["digest"], "{container}");
    }

    // An api source edit: only api is to build, because it changed.
    fx.project
        .edit("app/api/index.json", |s| s.replace('}', ", \"v\": 3}"));
    let (run, changed) = plan(&fx, &[]);
    assert_plan(
        &run,
        &changed,
        &[
            ("nginx", "reuse", "unchanged"),
            ("bash-dog-api", "build", "changed"),
            ("sidecar", "reuse", "unchanged"),
        ],
    );
    assert_ne!(changed["bash-dog-api"].2["fingerprint"], api["fingerprint"]);

    // --force: everything to build, forced.
    let (run, forced) = plan(&fx, &["--force"]);
    assert_plan(&run, &forced, &every_target("build", "forced"));

    for (step, elapsed) in &times {
        eprintln!("timing: {step}: {:.2} s", elapsed.as_secs_f64());
    }
}

#[test]
fn own_output_inside_the_context_does_not_change_fingerprints() {
    // A stage that copies the whole context, and a .dockerignore that lets
    // everything in: stackbake's own output must still not count, or every
    // laptop run would rebuild (the report holds timings).
    let fx = Fixture::local_only();
    fx.project.write(".dockerignore", "app/**/*.md\n");
    fx.project.edit("Dockerfile", |d| {
        d.replace(
            "COPY app/sidecar/run.sh /srv/sidecar/run.sh",
            "COPY . /srv/sidecar/",
        )
    });
    let sidecar = |out: Option<&std::path::Path>| -> String {
        let mut sb = Sb::new()
            .args(["plan", "--local", "--json", "--dir"])
            .arg(fx.project.root())
            .arg("--build-arg")
            .arg(format!("BASE={}", fx.base_ref()))
            .args(["--tag", &fx.tag]);
        if let Some(out) = out {
            sb = sb.arg("--out").arg(out);
        }
        let run = sb.run();
        run.assert_success();
        field(report_target(&run.json(), "sidecar"), "fingerprint")
    };

    // --local's default out dir, stackbake-out/ inside the project.
    let before = sidecar(None);
    fx.project
        .write("stackbake-out/stackbake-report.json", "{\"took\": 1}");
    fx.project.write("stackbake-out/taskdef.json", "{}");
    assert_eq!(sidecar(None), before, "stackbake-out/ counted");

    // In place (--out is the project): the report does not count.
    let root = fx.project.root().to_path_buf();
    let in_place = sidecar(Some(&root));
    fx.project.write("stackbake-report.json", "{\"took\": 2}");
    assert_eq!(sidecar(Some(&root)), in_place, "the report counted");

    // Any other file there does: the stage really reads the whole context.
    fx.project.write("notes.txt", "a change");
    assert_ne!(sidecar(None), before, "the stage does not read the root");
}

//! Issue 6: faults, interrupts and secrets. The real binary builds the
//! example stack while a [`FaultProxy`] between it (and the Docker engine)
//! and a test registry answers 503, resets, stalls or goes down; while the
//! engine's socket is cut; while a target fails; and under SIGINT. After
//! every run the registry is read directly (curl, never through the proxy,
//! never with our code): transient faults must not change the result, and
//! a failed run must leave no artifact and no moved `latest`. The last test
//! greps every byte printed or written across these scenarios for the
//! registry password.
//!
//! The scenarios by theme: `registry.rs` (transient and lasting registry
//! faults), `engine.rs` (the engine and the failure policy),
//! `interrupts.rs` (signals) and `secrets.rs` (the password).

mod engine;
mod interrupts;
mod registry;
mod secrets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    BaseImage, Fixture, LocalImages, Outcome, Project, Registry, Sb, docker, files_under,
    require_docker, unique_id,
};
use crate::proxy::{Fault, FaultProxy};

/// (container, repository) of the example's three targets.
const TARGETS: [(&str, &str); 3] = [
    ("nginx", "bash-dog-nginx"),
    ("bash-dog-api", "bash-dog-api"),
    ("sidecar", "bash-dog-sidecar"),
];

const ARTIFACT: [&str; 5] = [
    "appspec.yaml",
    "imageDetail.json",
    "imagedefinitions.json",
    "stackbake-report.json",
    "taskdef.json",
];

/// What a failed run is given to finish: the registry client's retry budget
/// (60 s) plus the engine's own push retries, with room for a loaded machine.
const FAILED_RUN_LIMIT: Duration = Duration::from_secs(170);

/// A fixture whose registry is reached only through a fault proxy.
struct Rig {
    fx: Fixture,
    proxy: FaultProxy,
    registry: Registry,
}

impl Rig {
    /// Anonymous registry behind a proxy starting in `fault`.
    fn new(fault: Fault) -> Rig {
        Rig::launch(None, fault)
    }

    /// Registry demanding `user`/`pass`, behind a proxy starting in `fault`.
    fn with_auth(user: &str, pass: &str, fault: Fault) -> Rig {
        Rig::launch(Some((user, pass)), fault)
    }

    fn launch(credentials: Option<(&str, &str)>, fault: Fault) -> Rig {
        require_docker();
        let tag = unique_id();
        let registry = match credentials {
            Some((u, p)) => Registry::start_with_auth(u, p),
            None => Registry::start(),
        };
        let proxy = FaultProxy::start_with(registry.addr(), fault);
        let mut images = LocalImages::new(&tag);
        images.watch_registry(&proxy.addr());
        images.watch_registry(registry.addr());
        let fx = Fixture {
            images,
            project: Project::example(),
            registry: None,
            base: Some(BaseImage::fresh()),
            tag,
        };
        Rig {
            fx,
            proxy,
            registry,
        }
    }

    /// `stackbake build --local` through the proxy with commit tag `tag`,
    /// artifact into `out`, credentials (if any) by flag and environment.
    fn build(&self, tag: &str, out: &Path) -> Sb {
        let mut sb = Sb::new()
            .args(["build", "--local", "--dir"])
            .arg(self.fx.project.root())
            .arg("--out")
            .arg(out)
            .arg("--build-arg")
            .arg(format!("BASE={}", self.fx.base_ref()))
            .args(["--tag", tag, "--progress", "plain"])
            .args(["--registry", &self.proxy.addr()])
            .timeout(FAILED_RUN_LIMIT);
        if let Some((user, pass)) = self.registry.credentials() {
            sb = sb
                .args(["--registry-user", user])
                .env("STACKBAKE_REGISTRY_PASSWORD", pass);
        }
        sb
    }

    /// A new, not yet existing out dir next to the project.
    fn out(&self, name: &str) -> PathBuf {
        self.fx.project.temp().join(name)
    }

    /// Every repository's tags, read from the registry directly.
    fn all_tags(&self) -> BTreeMap<&'static str, Vec<String>> {
        TARGETS
            .iter()
            .map(|(_, repo)| {
                let mut tags = self.registry.tags(repo);
                tags.sort();
                (*repo, tags)
            })
            .collect()
    }

    /// Every repository's `latest` digest, read from the registry directly.
    fn latest(&self) -> BTreeMap<&'static str, Option<String>> {
        TARGETS
            .iter()
            .map(|(_, repo)| (*repo, self.registry.digest(repo, "latest")))
            .collect()
    }

    /// A change to the api sources only: api must be rebuilt and pushed.
    fn change_api(&self, marker: &str) {
        self.fx.project.edit("app/api/index.json", |t| {
            format!("{t}\n{{\"marker\": \"{marker}\"}}\n")
        });
    }
}

/// Panics unless the successful `run` (`--json`) wrote the whole artifact
/// into `out` and every digest it names is the registry's own for `tag`
/// and `latest` (read directly, not through the proxy).
fn assert_pushed_as_reported(rig: &Rig, run: &Outcome, out: &Path, tag: &str) {
    run.assert_success();
    assert_eq!(Project::files_in(out), ARTIFACT, "artifact files:\n{run}");
    let report = run.json();
    assert_eq!(Project::json_in(out, "stackbake-report.json"), report);
    let taskdef = Project::json_in(out, "taskdef.json");
    for (container, repo) in TARGETS {
        let t = report["targets"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["container"] == container))
            .unwrap_or_else(|| panic!("no report entry for {container}:\n{run}"));
        let digest = t["digest"].as_str().unwrap_or_default().to_owned();
        let own = rig.registry.digest(repo, tag);
        assert_eq!(
            own.as_deref(),
            Some(digest.as_str()),
            "{repo}:{tag} in the registry differs from the report:\n{run}"
        );
        assert_eq!(
            rig.registry.digest(repo, "latest").as_deref(),
            Some(digest.as_str()),
            "{repo}:latest is not the reported digest:\n{run}"
        );
        let fp = t["fingerprint"].as_str().unwrap_or_default();
        let fp_tag = format!("fp-{}", fp.trim_start_matches("sha256:"));
        assert_eq!(
            rig.registry.digest(repo, &fp_tag).as_deref(),
            Some(digest.as_str()),
            "{repo}:{fp_tag} is not the reported digest:\n{run}"
        );
        let pinned = taskdef["containerDefinitions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["name"] == container))
            .map(|c| c["image"].clone())
            .unwrap_or(Value::Null);
        assert_eq!(
            pinned,
            Value::String(format!("{}/{repo}@{digest}", rig.proxy.addr())),
            "taskdef.json pin of {container}:\n{run}"
        );
    }
}

/// Panics unless `dir` holds no file at all.
fn assert_no_artifact(dir: &Path, run: &Outcome) {
    let files = files_under(dir);
    assert!(files.is_empty(), "a failed run wrote {files:?}:\n{run}");
}

/// Runs one build behind `fault`: at most `budget` faults from the start
/// (registry lookups, cache pulls, builds), then `budget` more once the
/// first push begins, so that pushes meet them too (a burst of hiccups in
/// each phase, not a broken registry). Checks the run succeeds as if
/// nothing happened; returns the run and (connections, faults injected).
fn survives(fault: Fault, budget: usize) -> (Outcome, usize, usize) {
    let rig = Rig::new(fault);
    rig.proxy.limit_faults(budget);
    let out = rig.out("out");
    let mut running = rig.build(&rig.fx.tag, &out).arg("--json").spawn();
    let pushing = running.wait_for_stderr(Duration::from_secs(120), |e| e.contains("] pushing "));
    let before_push = rig.proxy.faults();
    rig.proxy.limit_faults(budget);
    let run = running.wait(FAILED_RUN_LIMIT);
    assert!(pushing, "no push started:\n{run}");
    assert_pushed_as_reported(&rig, &run, &out, &rig.fx.tag);
    let (conns, faults) = (rig.proxy.connections(), rig.proxy.faults());
    // A clean build opens about 90 connections (registry client and engine).
    assert!(
        before_push >= 1 && faults > before_push,
        "the proxy injected {before_push} faults before the pushes and {} during them, \
         over {conns} connections: the test proved little:\n{run}",
        faults - before_push
    );
    eprintln!(
        "{fault:?}: {faults} faults ({before_push} before the first push) over {conns} \
         connections; exit {:?} in {:.1?}; stackbake push retries: {}; engine layer retries: {}",
        run.code,
        run.elapsed,
        run.stderr.matches("push failed").count(),
        run.stderr.matches("Retrying in").count()
    );
    (run, conns, faults)
}

/// Makes the sidecar target fail to build.
fn break_sidecar(project: &Project) {
    project.add_step_after(
        "COPY app/sidecar/run.sh /srv/sidecar/run.sh",
        "RUN echo sidecar-fails && false",
    );
    assert!(project.read("Dockerfile").contains("&& false"));
}

/// Containers created from this test's own fresh base image: the build
/// containers of this test's run and of no other.
fn build_containers(base: &str) -> Vec<String> {
    let ancestor = format!("ancestor={base}");
    let (_, out, _) = docker(&["ps", "-aq", "--no-trunc", "--filter", &ancestor]);
    out.split_whitespace().map(str::to_owned).collect()
}

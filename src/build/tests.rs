//! The orchestrator against in-memory fakes: the schedule, `--jobs`,
//! `--fail-fast`, cancellation, a failed shared stage, push retries, and the
//! publish order (push, verify pins, move `latest`, then rename the
//! artifact into place). Time is paused, so a build that "takes" seconds
//! costs none.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;

use super::fakes::{FakeServices, Script, World};
use crate::cancel::{CancelReason, RunState};
use crate::config::Settings;
use crate::error::{Cause, Error};
use crate::events::Event;

use crate::report::Report;
use crate::report::reporter::{Render, Reporter};

pub(super) const REGISTRY: &str = "127.0.0.1:5000";
pub(super) const TARGETS: [&str; 3] = ["api", "sidecar", "nginx"];

/// A copy of the example stack in a temp dir.
pub(super) struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    pub(super) fn example() -> Project {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        for f in [
            "Dockerfile",
            ".dockerignore",
            "taskdef.json",
            "appspec.yaml",
        ] {
            std::fs::copy(root.join(f), dir.path().join(f)).expect("copy example file");
        }
        copy_dir(&root.join("app"), &dir.path().join("app"));
        Project { dir }
    }

    pub(super) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(super) fn write(&self, rel: &str, content: &str) {
        std::fs::write(self.path().join(rel), content).expect("write a project file");
    }

    pub(super) fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    pub(super) fn settings(&self, extra: &[&str]) -> Settings {
        self.settings_tagged("abc1234", extra)
    }

    pub(super) fn settings_tagged(&self, tag: &str, extra: &[&str]) -> Settings {
        let dir = self.path().to_string_lossy().to_string();
        let out = self.out().to_string_lossy().to_string();
        let mut argv = vec![
            "stackbake",
            "build",
            "--dir",
            &dir,
            "--out",
            &out,
            "--tag",
            tag,
            "--local",
            "--registry",
            REGISTRY,
            "--build-arg",
            "BASE=stackbake-test/busybox:latest",
        ];
        argv.extend_from_slice(extra);
        let cli = crate::cli::Cli::try_parse_from(argv).expect("flags parse");
        let crate::cli::Command::Build(args) = cli.command else {
            panic!("not a build command");
        };
        Settings::from_args(&args).expect("settings")
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        if e.file_type().expect("type").is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).expect("copy");
        }
    }
}

/// Collects every event a run sends.
#[derive(Clone, Default)]
pub(super) struct Collected(pub(super) Arc<Mutex<Vec<Event>>>);

impl Render for Collected {
    fn event(&mut self, event: &Event) {
        self.0.lock().expect("events").push(event.clone());
    }
}

/// What a build against the fakes gave.
pub(super) struct Run {
    pub(super) result: Result<Report, Error>,
    pub(super) events: Vec<Event>,
}

impl Run {
    pub(super) fn failures(&self) -> Vec<(String, String)> {
        match &self.result {
            Err(Error::Targets { failures, .. }) => failures
                .iter()
                .map(|f| (f.target.clone(), f.cause.to_string()))
                .collect(),
            other => panic!("expected failed targets, got {:?}", other.as_ref().err()),
        }
    }
}

async fn build_with(world: &Arc<World>, s: &Settings, state: &RunState) -> Run {
    let collected = Collected::default();
    let reporter = Reporter::with_renderers(vec![Box::new(collected.clone())]);
    let result = super::build(s, &FakeServices(world.clone()), &reporter.events(), state).await;
    reporter.finish(None);
    let events = collected.0.lock().expect("events").clone();
    Run { result, events }
}

pub(super) async fn build(world: &Arc<World>, s: &Settings) -> Run {
    build_with(world, s, &RunState::new()).await
}

fn position(journal: &[String], entry: &str) -> usize {
    journal
        .iter()
        .position(|e| e == entry)
        .unwrap_or_else(|| panic!("{entry:?} not in the journal: {journal:#?}"))
}

pub(super) fn slow(seconds: u64) -> Script {
    Script {
        takes: Duration::from_secs(seconds),
        fails: None,
    }
}

pub(super) fn failing(seconds: u64, message: &str) -> Script {
    Script {
        takes: Duration::from_secs(seconds),
        fails: Some(message.to_string()),
    }
}

#[tokio::test(start_paused = true)]
async fn the_shared_stage_is_built_once_before_the_targets_and_their_digests_are_pinned() {
    let p = Project::example();
    let world = World::new();
    let run = build(&world, &p.settings(&[])).await;
    let report = run.result.expect("the build succeeds");
    assert_eq!(
        world.calls("build "),
        ["build base", "build api", "build sidecar", "build nginx"],
        "base first, each unit once"
    );
    let journal = world.journal();
    for t in TARGETS {
        assert!(position(&journal, "built base") < position(&journal, &format!("build {t}")));
    }
    for t in &report.targets {
        let digest = world
            .digest(&t.repository, "abc1234")
            .expect("commit tag pushed");
        assert_eq!(t.digest.as_deref(), Some(digest.as_str()));
        assert_eq!(world.digest(&t.repository, "latest"), Some(digest.clone()));
        assert_eq!(t.action, "built");
    }
    let taskdef = std::fs::read_to_string(p.out().join("taskdef.json")).expect("taskdef");
    assert!(taskdef.contains(&format!("{REGISTRY}/bash-dog-api@sha256:")));
}

#[tokio::test(start_paused = true)]
async fn jobs_bounds_how_many_units_build_at_once() {
    for (jobs, expected) in [("1", 1), ("2", 2), ("3", 3)] {
        let p = Project::example();
        let world = World::new();
        for t in TARGETS {
            world.script(t, slow(10));
        }
        build(&world, &p.settings(&["--jobs", jobs]))
            .await
            .result
            .expect("the build succeeds");
        assert_eq!(world.most_running(), expected, "--jobs {jobs}");
    }
    // Without --jobs, BuildKit (the fakes' builder) gets every ready target
    // at once, whatever the number of CPUs.
    let p = Project::example();
    let world = World::new();
    for t in TARGETS {
        world.script(t, slow(10));
    }
    build(&world, &p.settings(&[]))
        .await
        .result
        .expect("the build succeeds");
    assert_eq!(world.most_running(), TARGETS.len());
}

#[tokio::test(start_paused = true)]
async fn fail_fast_stops_the_other_targets_and_nothing_is_published() {
    let p = Project::example();
    let world = World::new();
    world.script("api", slow(600));
    world.script("nginx", slow(600));
    world.script("sidecar", failing(1, "RUN false returned 1"));
    let started = tokio::time::Instant::now();
    let run = build(&world, &p.settings(&["--fail-fast", "--jobs", "3"])).await;
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the slow builds were stopped, not waited for: {:?}",
        started.elapsed()
    );
    let failures = run.failures();
    assert!(failures.contains(&("sidecar".to_string(), "RUN false returned 1".to_string())));
    for t in ["api", "nginx"] {
        assert!(
            failures.contains(&(t.to_string(), Cause::Cancelled.to_string())),
            "{t} cancelled: {failures:?}"
        );
    }
    assert!(world.calls("push").is_empty(), "{:?}", world.journal());
    assert!(world.calls("copy").is_empty(), "no tag moved");
    assert!(world.calls("remove leftovers").len() == 1);
    assert!(!p.out().join("taskdef.json").exists());

    // With one job, the units after the failure never start.
    let p = Project::example();
    let world = World::new();
    world.script("api", failing(1, "RUN false returned 1"));
    let run = build(&world, &p.settings(&["--fail-fast", "--jobs", "1"])).await;
    let failures = run.failures();
    for t in ["sidecar", "nginx"] {
        assert!(
            failures.contains(&(t.to_string(), Cause::NotStarted.to_string())),
            "{t} not started: {failures:?}"
        );
    }
    assert_eq!(world.calls("build "), ["build base", "build api"]);

    // Without --fail-fast, the others finish (and push their commit tag),
    // but nothing is published.
    let p = Project::example();
    let world = World::new();
    world.script("api", slow(600));
    world.script("sidecar", failing(1, "RUN false returned 1"));
    let run = build(&world, &p.settings(&[])).await;
    assert_eq!(run.failures().len(), 1);
    assert!(world.digest("bash-dog-api", "abc1234").is_some());
    assert!(world.digest("bash-dog-api", "latest").is_none());
    assert!(!p.out().join("taskdef.json").exists());
}

#[tokio::test(start_paused = true)]
async fn a_failed_shared_stage_means_its_targets_are_not_built() {
    let p = Project::example();
    let world = World::new();
    world.script("base", failing(2, "COPY failed: no source files"));
    let run = build(&world, &p.settings(&[])).await;
    assert_eq!(world.calls("build "), ["build base"]);
    let failures = run.failures();
    assert_eq!(failures.len(), 4, "{failures:?}");
    for t in TARGETS {
        assert!(
            failures.contains(&(
                t.to_string(),
                Cause::DependencyFailed("base".into()).to_string()
            )),
            "{failures:?}"
        );
    }
    assert_eq!(
        run.result.as_ref().err().map(Error::exit_code),
        Some(crate::error::exit_code::TARGET_FAILED)
    );
}

#[tokio::test(start_paused = true)]
async fn an_interrupt_stops_the_builds_and_publishes_nothing() {
    let p = Project::example();
    let world = World::new();
    for t in TARGETS {
        world.script(t, slow(600));
    }
    let state = RunState::new();
    let stopper = state.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(5)).await;
        stopper.cancel(CancelReason::Interrupted);
    });
    let started = tokio::time::Instant::now();
    let run = build_with(&world, &p.settings(&[]), &state).await;
    assert!(matches!(run.result, Err(Error::Interrupted)));
    assert!(started.elapsed() < Duration::from_secs(60));
    assert_eq!(world.calls("remove leftovers").len(), 1);
    assert!(world.calls("push").is_empty());
    assert!(world.calls("copy").is_empty());
    assert!(!p.out().exists() || !p.out().join("taskdef.json").exists());
}

#[tokio::test(start_paused = true)]
async fn transient_push_failures_are_retried_and_refusals_are_not() {
    let p = Project::example();
    let world = World::new();
    let hiccup = "received unexpected HTTP status: 503 Service Unavailable";
    world.fail_pushes("bash-dog-api", &[hiccup, hiccup]);
    let run = build(&world, &p.settings(&[])).await;
    run.result.expect("two 503s, then the push succeeds");
    assert_eq!(world.calls("push bash-dog-api:").len(), 3);
    let retries = run
        .events
        .iter()
        .filter(|e| matches!(e, Event::Retry { unit, .. } if unit == "api"))
        .count();
    assert_eq!(retries, 2);

    let p = Project::example();
    let world = World::new();
    world.fail_pushes(
        "bash-dog-api",
        &["denied: requested access to the resource is denied"],
    );
    let run = build(&world, &p.settings(&[])).await;
    assert_eq!(
        world.calls("push bash-dog-api:").len(),
        1,
        "a refusal is final"
    );
    let failures = run.failures();
    assert_eq!(failures.len(), 1);
    assert!(failures[0].1.contains("denied"), "{failures:?}");

    // "authentication required" with credentials the registry just took:
    // tried once more, and a second one is final.
    let unauthenticated = "unauthorized: authentication required";
    for (fails, pushes, ok) in [(1, 2, true), (2, 2, false)] {
        let p = Project::example();
        let world = World::new();
        world.fail_pushes("bash-dog-api", &vec![unauthenticated; fails]);
        let run = build(&world, &p.settings(&[])).await;
        assert_eq!(world.calls("push bash-dog-api:").len(), pushes);
        assert_eq!(run.result.is_ok(), ok);
    }

    // As many attempts as --retries allows, then a failure.
    let p = Project::example();
    let world = World::new();
    world.fail_pushes("bash-dog-api", &[hiccup; 10]);
    let run = build(&world, &p.settings(&["--retries", "2"])).await;
    assert_eq!(world.calls("push bash-dog-api:").len(), 3);
    assert_eq!(run.failures().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn pins_are_verified_and_latest_moves_before_the_artifact_is_renamed_into_place() {
    let p = Project::example();
    let world = World::new();
    world.watch_out_dir(p.out());
    build(&world, &p.settings(&[]))
        .await
        .result
        .expect("the build succeeds");
    let journal = world.journal();
    let last = |prefix: &str| {
        journal
            .iter()
            .rposition(|e| e.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {journal:#?}"))
    };
    let first = |prefix: &str| {
        journal
            .iter()
            .position(|e| e.starts_with(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in {journal:#?}"))
    };
    // Every push (and its fingerprint tag) before any pin is verified,
    // every pin verified before `latest` moves.
    let verify = |e: &String| e.starts_with("head ") && e.contains(":sha256:");
    let first_verify = journal.iter().position(verify).expect("pins verified");
    let last_verify = journal.iter().rposition(verify).expect("pins verified");
    assert!(last("push ") < first_verify, "{journal:#?}");
    assert!(last("copy bash-dog-api:fp-") < first_verify, "{journal:#?}");
    assert_eq!(
        journal.iter().filter(|e| verify(e)).count(),
        3,
        "one per pinned container"
    );
    assert!(
        last_verify < first("copy bash-dog-api:latest"),
        "{journal:#?}"
    );
    // When `latest` moved, the artifact was staged but not yet in place.
    let seen = world.out_dir_at_latest();
    assert_eq!(seen.len(), 3, "one look per repository");
    for names in seen {
        assert!(!names.contains(&"taskdef.json".to_string()), "{names:?}");
        assert!(
            names.iter().any(|n| n.starts_with(".stackbake-")),
            "staged: {names:?}"
        );
    }
    assert!(p.out().join("taskdef.json").exists());
}

#[tokio::test(start_paused = true)]
async fn a_second_run_reuses_every_target_by_fingerprint() {
    let p = Project::example();
    let world = World::new();
    let first = build(&world, &p.settings(&[])).await.result.expect("cold");
    let second = build(&world, &p.settings_tagged("def5678", &[]))
        .await
        .result
        .expect("no change");
    assert_eq!(
        world.calls("build ").len(),
        4,
        "nothing built the second time"
    );
    for (a, b) in first.targets.iter().zip(&second.targets) {
        assert_eq!(b.action, "reused");
        assert_eq!(a.digest, b.digest);
        assert_eq!(world.digest(&b.repository, "def5678"), b.digest);
    }
}

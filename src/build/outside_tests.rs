//! The orchestrator against the fakes, for inputs from outside the context
//! (issue 14): a base that moved in its registry or was re-imported into
//! the engine rebuilds its targets (on exactly the new digest, with the
//! move named), an unresolvable base stops the run before anything is
//! built, and `--max-age` rebuilds old images without cache.

use std::sync::Arc;

use super::fakes::{BASE, World};
use super::tests::{Project, REGISTRY, TARGETS, build};
use crate::error::{Error, exit_code};
use crate::events::{Event, Reason};
use crate::report::reporter::Reporter;

const MOVING: &str = "BASE=127.0.0.1:5000/base:1";

/// (target, reason) of every `Decided` event.
fn reasons(events: &[Event]) -> Vec<(String, Reason)> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Decided { target, reason, .. } => Some((target.clone(), *reason)),
            _ => None,
        })
        .collect()
}

fn all(reason: Reason) -> Vec<(String, Reason)> {
    // Decisions come in stage order: api, sidecar, nginx.
    TARGETS.iter().map(|t| (t.to_string(), reason)).collect()
}

#[tokio::test(start_paused = true)]
async fn a_base_that_moved_in_its_registry_rebuilds_its_targets_on_the_new_digest() {
    let p = Project::example();
    let world = World::new();
    let v1 = world.put("base", "1", "base v1");
    let base = ["--build-arg", MOVING];
    build(&world, &p.settings(&base))
        .await
        .result
        .expect("cold");
    let sent = world.jobs("base")[0].dockerfile.clone();
    assert!(
        sent.contains(&format!("FROM {REGISTRY}/base@{v1} AS base")),
        "the engine is sent the resolved digest:\n{sent}"
    );
    let again = build(&world, &p.settings_tagged("def5678", &base)).await;
    assert_eq!(reasons(&again.events), all(Reason::Unchanged));

    let v2 = world.put("base", "1", "base v2: a security patch");
    let moved = build(&world, &p.settings_tagged("fed9876", &base)).await;
    let report = moved.result.expect("rebuilt");
    assert!(
        report.targets.iter().all(|t| t.action == "built"),
        "{report:#?}"
    );
    assert_eq!(reasons(&moved.events), all(Reason::Changed));
    let jobs = world.jobs("base");
    let sent = &jobs.last().expect("rebuilt").dockerfile;
    assert!(
        sent.contains(&format!("FROM {REGISTRY}/base@{v2} AS base")),
        "{sent}"
    );
    for t in TARGETS {
        assert!(
            moved.events.iter().any(|e| matches!(e,
                Event::BaseMoved { target, image, from, to }
                    if target == t && image == "127.0.0.1:5000/base:1" && *from == v1 && *to == v2)),
            "{t}: the move is named: {:#?}",
            moved.events
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_reimported_engine_only_base_rebuilds_its_targets() {
    let p = Project::example();
    let world = World::new();
    build(&world, &p.settings(&[])).await.result.expect("cold");
    let same = build(&world, &p.settings_tagged("def5678", &[])).await;
    assert_eq!(reasons(&same.events), all(Reason::Unchanged));
    world.import(BASE, "busybox with a patched libc");
    let run = build(&world, &p.settings_tagged("fed9876", &[])).await;
    run.result.expect("rebuilt");
    assert_eq!(reasons(&run.events), all(Reason::Changed));
    assert!(
        run.events
            .iter()
            .any(|e| matches!(e, Event::BaseMoved { image, .. } if image == BASE)),
        "{:#?}",
        run.events
    );
}

#[tokio::test(start_paused = true)]
async fn an_unresolvable_base_stops_the_run_before_anything_is_built() {
    let p = Project::example();
    let world = World::new();
    let run = build(&world, &p.settings(&["--build-arg", MOVING])).await;
    let err = run.result.expect_err("no such base anywhere");
    assert!(matches!(err, Error::Unresolved(_)), "{err:?}");
    assert_eq!(err.exit_code(), exit_code::ENVIRONMENT);
    assert!(
        err.render().contains("127.0.0.1:5000/base:1"),
        "{}",
        err.render()
    );
    assert!(world.calls("build ").is_empty(), "{:?}", world.journal());

    let run = build(
        &world,
        &p.settings(&["--build-arg", MOVING, "--allow-unresolved"]),
    )
    .await;
    run.result.expect("the flag builds on the reference text");
    assert!(
        run.events.iter().any(
            |e| matches!(e, Event::Unresolved { input, .. } if input == "127.0.0.1:5000/base:1")
        ),
        "a warning: {:#?}",
        run.events
    );
    let sent = world.jobs("base")[0].dockerfile.clone();
    assert!(
        sent.contains("FROM ${BASE} AS base"),
        "sent as written:\n{sent}"
    );
}

async fn plan_reasons(world: &Arc<World>, p: &Project, extra: &[&str]) -> Vec<String> {
    let reporter = Reporter::with_renderers(Vec::new());
    let s = p.settings(extra);
    let fakes = super::fakes::FakeServices(world.clone());
    let report = super::plan(&s, &fakes, &reporter.events())
        .await
        .expect("plan");
    reporter.finish(None);
    report
        .targets
        .iter()
        .map(|t| t.reason.clone().unwrap_or_default())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn max_age_rebuilds_old_images_without_cache() {
    let p = Project::example();
    let world = World::new();
    world.stamp_builds("2020-01-01T00:00:00Z");
    build(&world, &p.settings(&[])).await.result.expect("cold");
    assert_eq!(plan_reasons(&world, &p, &[]).await, ["unchanged"; 3]);
    assert_eq!(
        plan_reasons(&world, &p, &["--max-age", "7d"]).await,
        ["expired"; 3]
    );

    world.stamp_builds("2999-01-01T00:00:00Z");
    let run = build(&world, &p.settings_tagged("def5678", &["--max-age", "7d"])).await;
    run.result.expect("rebuilt");
    assert_eq!(reasons(&run.events), all(Reason::Expired));
    for unit in ["base", "api", "sidecar", "nginx"] {
        let jobs = world.jobs(unit);
        assert_eq!(jobs.len(), 2, "{unit} built twice");
        assert!(
            !jobs[0].no_cache && jobs[1].no_cache,
            "{unit}: the rebuild runs every step"
        );
    }
    // The rebuilt images are fresh: reused again.
    assert_eq!(
        plan_reasons(&world, &p, &["--max-age", "7d"]).await,
        ["unchanged"; 3]
    );
}

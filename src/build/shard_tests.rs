//! `build --shard K/N` against the in-memory fakes: the shards split the
//! targets to build (each built by exactly one shard, none idle while there
//! is work), push commit and fingerprint tags but no `latest` and no task
//! definition; an empty shard succeeds; the assemble step (a plain build)
//! reuses every shard-built target and builds what a failed shard did not.

use super::fakes::{Script, World};
use super::tests::{Project, TARGETS, build, failing, slow};
use crate::events::Event;
use crate::report::Report;

/// The targets each shard reported, in shard order.
fn shard_targets(reports: &[Report]) -> Vec<Vec<String>> {
    reports
        .iter()
        .map(|r| r.targets.iter().map(|t| t.target.clone()).collect())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn two_shards_split_the_targets_and_the_assemble_step_builds_nothing() {
    let p = Project::example();
    let world = World::new();
    // Shard 2 starts only after shard 1 pushed everything: it must still
    // see the same assignment (shard 1's targets are this commit's work).
    let mut reports = Vec::new();
    for k in ["1/2", "2/2"] {
        let run = build(&world, &p.settings(&["--shard", k])).await;
        let report = run.result.expect("the shard succeeds");
        assert_eq!(report.shard.map(|s| s.index), k[..1].parse().ok());
        reports.push(report);
    }
    let per_shard = shard_targets(&reports);
    assert!(per_shard.iter().all(|t| !t.is_empty()), "{per_shard:?}");
    let mut all: Vec<String> = per_shard.concat();
    all.sort();
    assert_eq!(all, ["api", "nginx", "sidecar"], "each target by one shard");
    for t in TARGETS {
        assert_eq!(
            world.calls(&format!("build {t}")).len(),
            1,
            "{t} built once"
        );
    }
    assert!(
        world.calls("copy bash-dog-api:latest").is_empty(),
        "no latest"
    );
    assert!(!p.out().join("taskdef.json").exists(), "no taskdef");
    assert!(p.out().join("stackbake-report.json").exists());

    let builds = world.calls("build ").len();
    let assembled = build(&world, &p.settings(&[]))
        .await
        .result
        .expect("assemble");
    assert_eq!(
        world.calls("build ").len(),
        builds,
        "the assemble step builds nothing"
    );
    for t in &assembled.targets {
        assert_eq!(t.action, "reused", "{}", t.target);
        let shard = reports
            .iter()
            .flat_map(|r| &r.targets)
            .find(|s| s.container == t.container)
            .expect("a shard reported it");
        assert_eq!(t.digest, shard.digest, "{}", t.container);
        assert_eq!(t.image, shard.image, "{}", t.container);
    }
    let taskdef = std::fs::read_to_string(p.out().join("taskdef.json")).expect("taskdef");
    for t in &assembled.targets {
        assert!(taskdef.contains(t.image.as_deref().unwrap_or("-")));
    }
}

#[tokio::test(start_paused = true)]
async fn shards_running_at_once_each_build_their_own_targets() {
    let p = Project::example();
    let world = World::new();
    for t in TARGETS {
        world.script(t, slow(30));
    }
    let (a, b, c) = (
        p.settings(&["--shard", "1/3"]),
        p.settings(&["--shard", "2/3"]),
        p.settings(&["--shard", "3/3"]),
    );
    let (a, b, c) = tokio::join!(build(&world, &a), build(&world, &b), build(&world, &c));
    let reports: Vec<Report> = [a, b, c]
        .into_iter()
        .map(|r| r.result.expect("the shard succeeds"))
        .collect();
    let per_shard = shard_targets(&reports);
    assert!(
        per_shard.iter().all(|t| t.len() == 1),
        "one target each: {per_shard:?}"
    );
    for t in TARGETS {
        assert_eq!(
            world.calls(&format!("build {t}")).len(),
            1,
            "{t} built once"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn an_empty_shard_succeeds_and_says_so() {
    let p = Project::example();
    let world = World::new();
    let run = build(&world, &p.settings(&["--shard", "5/5"])).await;
    let report = run.result.expect("an empty shard is a success");
    assert!(report.targets.is_empty());
    assert!(world.calls("build ").is_empty() && world.calls("push").is_empty());
    assert!(
        run.events.iter().any(|e| matches!(
            e,
            Event::ShardEmpty { shard, elsewhere: 3, unchanged: 0 } if shard.index == 5
        )),
        "{:?}",
        run.events
    );
}

#[tokio::test(start_paused = true)]
async fn the_assemble_step_builds_what_a_failed_shard_did_not() {
    let p = Project::example();
    let world = World::new();
    let first = build(&world, &p.settings(&["--shard", "1/2"])).await;
    let mine = shard_targets(&[first.result.expect("shard 1")]).concat();
    // Shard 2 fails on its first target.
    let world_fail = world.clone();
    let others: Vec<&str> = TARGETS
        .into_iter()
        .filter(|t| !mine.iter().any(|m| m == t))
        .collect();
    world_fail.script(others[0], failing(1, "RUN false returned 1"));
    let second = build(&world, &p.settings(&["--shard", "2/2"])).await;
    assert!(!second.failures().is_empty());
    world.script(others[0], Script::default());
    let assembled = build(&world, &p.settings(&[]))
        .await
        .result
        .expect("assemble");
    for t in &assembled.targets {
        let expected = if mine.contains(&t.target) {
            "reused"
        } else if t.target == others[0] {
            "built"
        } else {
            "reused"
        };
        assert_eq!(t.action, expected, "{}", t.target);
    }
    assert_eq!(
        world.calls(&format!("build {}", others[0])).len(),
        2,
        "the shard's try, then the assemble's"
    );
}

//! The orchestrator against in-memory fakes in ECR mode: immutable
//! repositories (no tag is ever overwritten, a commit tag on another image
//! is an error, a refusal the settings did not predict is learnt) and the
//! registry's tag limit.

use std::time::Duration;

use clap::Parser;

use super::fakes::{Script, World};
use super::tests::{Project, Run, build};
use crate::config::Settings;
use crate::events::Event;
use crate::registry::tags::{Mutability, Wildcard};

/// Settings of an ECR-mode build (AWS and the registry are the fakes).
fn ecr_settings(p: &Project, tag: &str, extra: &[&str]) -> Settings {
    let dir = p.path().to_string_lossy().to_string();
    let out = p.out().to_string_lossy().to_string();
    let mut argv = vec![
        "stackbake",
        "build",
        "--dir",
        &dir,
        "--out",
        &out,
        "--tag",
        tag,
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

fn immutable(except: &[&str]) -> Mutability {
    Mutability::Immutable {
        except: except.iter().map(|t| Wildcard::new(*t)).collect(),
    }
}

const REPOS: [&str; 3] = ["bash-dog-api", "bash-dog-sidecar", "bash-dog-nginx"];

fn tag_not_moved(run: &Run) -> Vec<(String, String)> {
    run.events
        .iter()
        .filter_map(|e| match e {
            Event::TagNotMoved {
                repository, tag, ..
            } => Some((repository.clone(), tag.clone())),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn immutable_repositories_never_see_an_overwrite_and_retries_succeed() {
    let p = Project::example();
    let world = World::new();
    for r in REPOS {
        world.set_mutability(r, immutable(&[]), false);
    }
    // Cold, then a new commit with no change: everything reused.
    let cold = build(&world, &ecr_settings(&p, "aaa1111", &[]))
        .await
        .result
        .expect("cold");
    let next = build(&world, &ecr_settings(&p, "bbb2222", &[])).await;
    let moved = tag_not_moved(&next);
    let next = next.result.expect("a new commit on immutable repositories");
    for (a, b) in cold.targets.iter().zip(&next.targets) {
        assert_eq!(a.digest, b.digest);
        assert_eq!(world.digest(&b.repository, "bbb2222"), b.digest);
        // `latest` named the same image already: it counts as carried.
        assert_eq!(b.tags, ["bbb2222", "latest"]);
    }
    assert!(moved.is_empty(), "{moved:?}");
    // A retry of the same commit: every tag exists, with the right digest.
    let retry = build(&world, &ecr_settings(&p, "bbb2222", &[]))
        .await
        .result
        .expect("retry");
    assert_eq!(retry.targets.len(), 3);
    // One file changed: api is rebuilt and pinned; its `latest` stays where
    // it is, with one line saying why.
    p.write("app/api/index.json", "{\"changed\": true}\n");
    let changed = build(&world, &ecr_settings(&p, "ccc3333", &[])).await;
    let kept = tag_not_moved(&changed);
    let report = changed.result.expect("one file changed");
    let api = &report.targets[1];
    assert_eq!(api.repository, "bash-dog-api");
    assert_eq!(api.action, "built");
    assert_ne!(api.digest, cold.targets[1].digest);
    assert_eq!(api.tags, ["ccc3333"], "latest stayed on the old image");
    assert_eq!(
        kept,
        [(
            "123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api".to_string(),
            "latest".to_string()
        )]
    );
    assert_eq!(
        world.digest("bash-dog-api", "latest"),
        cold.targets[1].digest
    );
    assert_eq!(world.refused_overwrites(), 0, "{:#?}", world.journal());
}

#[tokio::test(start_paused = true)]
async fn an_immutable_commit_tag_on_another_image_is_an_environment_error() {
    let p = Project::example();
    let world = World::new();
    for r in REPOS {
        world.set_mutability(r, immutable(&["latest"]), false);
    }
    build(&world, &ecr_settings(&p, "aaa1111", &[]))
        .await
        .result
        .expect("cold");
    let pinned = std::fs::read_to_string(p.out().join("taskdef.json")).expect("taskdef");
    // --force on the same commit: a different image under the same tag.
    world.script(
        "api",
        Script {
            takes: Duration::from_secs(1),
            fails: None,
        },
    );
    p.write("app/api/index.json", "{\"other\": 1}\n");
    let run = build(&world, &ecr_settings(&p, "aaa1111", &["--force"])).await;
    let err = run.result.expect_err("the commit tag names another image");
    assert_eq!(err.exit_code(), crate::error::exit_code::ENVIRONMENT);
    let text = err.render();
    assert!(
        text.contains("bash-dog-api:aaa1111 already names sha256:"),
        "{text}"
    );
    assert!(text.contains("--tag aaa1111-2"), "{text}");
    let after = std::fs::read_to_string(p.out().join("taskdef.json")).expect("taskdef");
    assert_eq!(after, pinned, "the artifact is the cold build's, untouched");
    assert_eq!(world.refused_overwrites(), 0, "{:#?}", world.journal());
}

#[tokio::test(start_paused = true)]
async fn a_refusal_the_settings_did_not_predict_is_learnt() {
    let p = Project::example();
    let world = World::new();
    for r in REPOS {
        // The registry enforces immutability, AWS did not say so.
        world.set_mutability(r, immutable(&[]), true);
    }
    build(&world, &ecr_settings(&p, "aaa1111", &[]))
        .await
        .result
        .expect("cold");
    // The same commit again with --force: the pushes are refused (tag
    // exists); the images are the same ones (cached), so it succeeds.
    let again = build(&world, &ecr_settings(&p, "aaa1111", &["--force"])).await;
    again
        .result
        .expect("same images under the same immutable commit tag");
    let refused = world.refused_overwrites();
    assert!(refused >= 1, "the first refusal teaches");
    // A new commit (reuse): latest is now known to be immutable and is
    // looked at, not overwritten.
    build(&world, &ecr_settings(&p, "bbb2222", &[]))
        .await
        .result
        .expect("reuse");
    assert!(world.refused_overwrites() <= refused + REPOS.len());
}

#[tokio::test(start_paused = true)]
async fn a_target_reused_past_the_tag_limit_keeps_building_and_pinning() {
    let p = Project::example();
    let world = World::new();
    world.limit_tags(4);
    let cold = build(&world, &ecr_settings(&p, "c0", &[]))
        .await
        .result
        .expect("cold");
    for n in 1..8 {
        let run = build(&world, &ecr_settings(&p, &format!("c{n}"), &[])).await;
        let skipped = tag_not_moved(&run);
        let report = run
            .result
            .unwrap_or_else(|e| panic!("commit {n}: {}", e.render()));
        for (a, b) in cold.targets.iter().zip(&report.targets) {
            assert_eq!(a.digest, b.digest, "commit {n} pins the same image");
            let tagged = world.digest(&b.repository, &format!("c{n}")).is_some();
            assert_eq!(
                b.tags.contains(&format!("c{n}")),
                tagged,
                "commit {n}: {b:?}"
            );
        }
        // fp, latest, c0 and c1 fill the 4 tags: from c2 on the commit tag is skipped.
        assert_eq!(
            skipped.len(),
            if n >= 2 { 3 } else { 0 },
            "commit {n}: {skipped:?}"
        );
    }
    let taskdef = std::fs::read_to_string(p.out().join("taskdef.json")).expect("taskdef");
    assert!(taskdef.contains(cold.targets[0].digest.as_deref().expect("digest")));
}

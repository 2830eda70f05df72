//! An unreachable or vanishing engine is an environment error; a failing
//! target lets the others finish (or, with `--fail-fast`, cancels them)
//! and moves no `latest`.

use std::path::PathBuf;
use std::thread;
use std::time::Duration;

use super::{TARGETS, assert_no_artifact, break_sidecar, build_containers};
use crate::harness::Fixture;
use crate::proxy::EngineProxy;

#[test]
fn engine_socket_that_closes_every_connection_is_an_environment_error() {
    let fx = Fixture::inputs_only();
    let engine = EngineProxy::closing();
    let run = fx
        .build()
        .env("DOCKER_HOST", engine.docker_host())
        .timeout(Duration::from_secs(60))
        .run();
    run.assert_code(3);
    let lower = run.stderr.to_lowercase();
    assert!(
        lower.contains("daemon") || lower.contains("docker engine"),
        "the message does not mention the Docker daemon:\n{run}"
    );
    assert!(!lower.contains("panicked"), "{run}");
    assert!(
        engine.connections() > 0,
        "never connected to the socket:\n{run}"
    );
    assert_no_artifact(fx.project.out(), &run);
}

/// The engine goes away while the targets are building (every connection
/// to its socket closed, the socket removed). SPEC: a Docker daemon that
/// fails is an environment error (exit 3) with a clear message. (Once a
/// bug: exit 1, each target "build failed: error reading a body from
/// connection" with the hint "fix the failing instruction shown above".)
#[test]
fn engine_gone_mid_build_is_an_environment_error() {
    let fx = Fixture::local_only();
    fx.project
        .add_step_after("COPY app/api/ /srv/api/", "RUN sleep 5");
    let engine = EngineProxy::start(&docker_socket());
    let mut running = fx.build().env("DOCKER_HOST", engine.docker_host()).spawn();
    let building = running.wait_for_stderr(Duration::from_secs(60), |e| e.contains("RUN sleep 5"));
    engine.cut();
    let run = running.wait(Duration::from_secs(120));
    assert!(building, "the build never reached `RUN sleep 5`:\n{run}");
    assert!(!run.stderr.contains("panicked"), "{run}");
    assert_no_artifact(fx.project.out(), &run);
    let error = run
        .stderr
        .split_once("error:")
        .map(|(_, e)| e.to_lowercase())
        .unwrap_or_default();
    assert!(
        error.contains("daemon") || error.contains("docker engine"),
        "the error does not say the Docker daemon went away:\n{run}"
    );
    assert_eq!(
        run.code,
        Some(3),
        "the Docker daemon going away is an environment failure (exit 3), whichever target \
         noticed it first:\n{run}"
    );
}

/// The engine's socket: `DOCKER_HOST` when it names a unix socket, else the default.
fn docker_socket() -> PathBuf {
    std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/var/run/docker.sock"))
}

// ------------------------------------------------------- failure policy

#[test]
fn a_silent_build_step_longer_than_the_timeout_is_not_a_hang() {
    // `RUN sleep 6` prints nothing for 6 s; with --timeout 2 the engine
    // still answers, so the build goes on (as a quiet `go build` would).
    let fx = Fixture::local_only();
    fx.project
        .add_step_after("COPY app/sidecar/run.sh /srv/sidecar/run.sh", "RUN sleep 6");
    let run = fx.build().args(["--timeout", "2"]).run();
    run.assert_success();
    assert!(run.stderr.contains("RUN sleep 6"), "{run}");
}

#[test]
fn a_failing_target_lets_the_others_finish_but_moves_no_latest() {
    let fx = Fixture::with_registry();
    break_sidecar(&fx.project);
    let run = fx.build().args(["--jobs", "4"]).run();
    run.assert_code(1).assert_stderr_mentions("sidecar-fails");
    assert_no_artifact(fx.project.out(), &run);
    let registry = fx.registry();
    for repo in ["bash-dog-api", "bash-dog-nginx"] {
        assert!(
            registry.digest(repo, &fx.tag).is_some(),
            "{repo}:{} missing: without --fail-fast the other targets finish and push:\n{run}",
            fx.tag
        );
    }
    assert_eq!(
        registry.tags("bash-dog-sidecar"),
        Vec::<String>::new(),
        "{run}"
    );
    for (_, repo) in TARGETS {
        assert_eq!(
            registry.digest(repo, "latest"),
            None,
            "{repo}:latest moved:\n{run}"
        );
    }
}

#[test]
fn fail_fast_cancels_the_other_targets() {
    let fx = Fixture::with_registry();
    break_sidecar(&fx.project);
    // api is still busy when sidecar fails.
    fx.project.edit("Dockerfile", |t| {
        t.replace(
            "COPY app/api/ /srv/api/\n",
            "COPY app/api/ /srv/api/\nRUN sleep 20\n",
        )
    });
    let run = fx.build().args(["--jobs", "4", "--fail-fast"]).run();
    run.assert_code(1).assert_stderr_mentions("sidecar-fails");
    let lower = run.stderr.to_lowercase();
    assert!(
        lower.contains("cancelled") || lower.contains("not started"),
        "stderr does not say the other targets were cancelled or not started:\n{run}"
    );
    assert_no_artifact(fx.project.out(), &run);
    let registry = fx.registry();
    assert_eq!(
        registry.digest("bash-dog-api", &fx.tag),
        None,
        "api was pushed although --fail-fast should have cancelled it:\n{run}"
    );
    thread::sleep(Duration::from_secs(2));
    eprintln!(
        "fail-fast: exit {:?} in {:.1?}; build containers left on the test's base 2 s later: {:?}",
        run.code,
        run.elapsed,
        build_containers(&fx.base_ref())
    );
    for (_, repo) in TARGETS {
        assert_eq!(
            registry.digest(repo, "latest"),
            None,
            "{repo}:latest moved:\n{run}"
        );
    }
}

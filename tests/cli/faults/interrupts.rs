//! SIGINT and SIGTERM during a build exit 130 and leave no build
//! container; a second signal exits at once.

use std::thread;
use std::time::{Duration, Instant};

use super::{assert_no_artifact, build_containers};
use crate::harness::Fixture;

/// Starts a build that sleeps in `RUN sleep 30`, waits until that step's
/// container runs, and returns the fixture, the run and the base image.
fn build_until_sleeping() -> (Fixture, crate::harness::Running, String) {
    let fx = Fixture::local_only();
    fx.project.edit("Dockerfile", |t| {
        t.replace(
            "COPY app/api/ /srv/api/\n",
            "COPY app/api/ /srv/api/\nRUN sleep 30\n",
        )
    });
    // The classic builder's own build containers are what these tests
    // watch (BuildKit runs steps without engine containers), so the
    // example's cache mount, which it cannot run, is taken out.
    fx.project.without_cache_mount();
    let base = fx.base_ref();
    let mut running = fx.build().args(["--builder", "classic"]).spawn();
    // The step has a container once the engine prints its `Running in`.
    let sleeping = running.wait_for_stderr(Duration::from_secs(90), |e| {
        e.split_once("RUN sleep 30")
            .is_some_and(|(_, after)| after.contains("Running in"))
    });
    assert!(
        sleeping,
        "the build never reached `RUN sleep 30`: {}",
        running.stderr_so_far()
    );
    // Let the container start for real.
    thread::sleep(Duration::from_millis(500));
    assert!(
        !build_containers(&base).is_empty(),
        "no build container while sleeping: {}",
        running.stderr_so_far()
    );
    (fx, running, base)
}

fn a_signal_during_a_build_exits_130_and_leaves_no_container(signal: &str) {
    let (fx, running, base) = build_until_sleeping();
    running.signal(signal);
    let signalled = Instant::now();
    let run = running.wait(Duration::from_secs(60));
    let to_exit = signalled.elapsed();
    run.assert_code(130);
    assert!(
        to_exit < Duration::from_secs(15),
        "took {to_exit:?} to exit after SIG{signal}:\n{run}"
    );
    run.assert_stderr_mentions("interrupted");
    assert_no_artifact(fx.project.out(), &run);
    thread::sleep(Duration::from_secs(2));
    let left = build_containers(&base);
    eprintln!(
        "SIG{signal}: exit after {to_exit:?}, build containers left: {}",
        left.len()
    );
    assert!(
        left.is_empty(),
        "build containers left behind on the test's base: {left:?}\n{run}"
    );
}

#[test]
fn sigint_during_a_build_exits_130_and_leaves_no_container() {
    a_signal_during_a_build_exits_130_and_leaves_no_container("INT");
}

#[test]
fn sigterm_during_a_build_exits_130_and_leaves_no_container() {
    a_signal_during_a_build_exits_130_and_leaves_no_container("TERM");
}

#[test]
fn a_second_signal_exits_at_once() {
    let (fx, running, _base) = build_until_sleeping();
    running.signal("INT");
    // The first signal starts the clean stop (which waits at least 300 ms for
    // the engine before removing containers); the second must cut it short.
    thread::sleep(Duration::from_millis(100));
    running.signal("INT");
    let signalled = Instant::now();
    let run = running.wait(Duration::from_secs(60));
    run.assert_code(130);
    run.assert_stderr_mentions("interrupted twice");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "a second signal must end the run at once, took {:?}:\n{run}",
        signalled.elapsed()
    );
    assert_no_artifact(fx.project.out(), &run);
}

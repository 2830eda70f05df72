//! Issue 6: faults, interrupts and secrets. The real binary builds the
//! example stack while a [`FaultProxy`] between it (and the Docker engine)
//! and a test registry answers 503, resets, stalls or goes down; while the
//! engine's socket is cut; while a target fails; and under SIGINT. After
//! every run the registry is read directly (curl, never through the proxy,
//! never with our code): transient faults must not change the result, and
//! a failed run must leave no artifact and no moved `latest`. The last test
//! greps every byte printed or written across these scenarios for the
//! registry password.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    BaseImage, Fixture, LocalImages, Outcome, Project, Registry, Sb, docker, files_under,
    require_docker, unique_id,
};
use crate::proxy::{EngineProxy, Fault, FaultProxy};

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

// ------------------------------------------------------- transient faults

/// 503 on every 7th connection, up to 3 before and 3 after the first push
/// begins: stackbake's registry client and its push retries (and the
/// engine's own) ride them out.
#[test]
fn a_burst_of_503s_on_every_7th_connection_still_builds_and_pins_the_registry_digests() {
    survives(Fault::Fail503Every(7), 3);
}

/// Every 9th connection closed unanswered, up to 3 before and 3 after the
/// first push begins: same result.
#[test]
fn a_burst_of_resets_on_every_9th_connection_still_builds_and_pins_the_registry_digests() {
    survives(Fault::ResetEvery(9), 3);
}

/// A registry that keeps failing every 3rd connection is not a hiccup: each
/// engine push opens several connections, so every attempt meets a 503, and
/// the engine waits 5+10+15+20 s inside each attempt before it gives up on
/// a layer. The run must still end by itself, fail cleanly and move nothing.
/// Ignored by default: it takes minutes (`cargo test --test cli -- --ignored persistent`).
#[test]
#[ignore = "slow (minutes): the engine's own layer-upload retries dominate"]
fn persistent_503_on_every_third_connection_fails_cleanly() {
    let rig = Rig::new(Fault::Fail503Every(3));
    let out = rig.out("out");
    let run = rig
        .build(&rig.fx.tag, &out)
        .timeout(Duration::from_secs(900))
        .run();
    eprintln!(
        "persistent 503 every 3rd: exit {:?} after {:?}, {} of {} connections failed",
        run.code,
        run.elapsed,
        rig.proxy.faults(),
        rig.proxy.connections()
    );
    assert!(matches!(run.code, Some(1 | 3)), "{run}");
    assert_no_artifact(&out, &run);
    for (_, repo) in TARGETS {
        assert_eq!(
            rig.registry.digest(repo, "latest"),
            None,
            "{repo}:latest moved:\n{run}"
        );
    }
}

// ------------------------------------------------------- registry down

/// A first build succeeds; then (1) with the registry down from the start a
/// rebuild fails with exit 3 before building, and (2) with the registry
/// killed when the first push starts a rebuild fails with exit 1 (the
/// target's push step failed after its retries). Neither writes an
/// artifact or changes any tag in the registry (`latest` keeps the first
/// digest); with the registry back, a third build succeeds.
#[test]
fn registry_down_or_killed_mid_push_moves_no_tag_and_writes_nothing() {
    let rig = Rig::new(Fault::Pass);
    let out1 = rig.out("out1");
    let first = rig.build(&rig.fx.tag, &out1).arg("--json").run();
    assert_pushed_as_reported(&rig, &first, &out1, &rig.fx.tag);
    let tags_before = rig.all_tags();
    let latest_before = rig.latest();
    assert!(
        latest_before.values().all(Option::is_some),
        "{latest_before:?}"
    );

    // (1) Down for the whole run.
    rig.change_api("down-from-the-start");
    rig.proxy.set(Fault::Down);
    let out2 = rig.out("out2");
    let tag2 = format!("{}d", rig.fx.tag);
    let down = rig.build(&tag2, &out2).run();
    assert_eq!(
        down.code,
        Some(3),
        "registry unreachable before any build: the fingerprint lookup fails, which is an \
         environment error (exit 3), not a target failure:\n{down}"
    );
    down.assert_stderr_mentions(&rig.proxy.addr());
    assert_no_artifact(&out2, &down);
    assert_eq!(rig.all_tags(), tags_before, "tags changed:\n{down}");
    assert_eq!(rig.latest(), latest_before, "latest moved:\n{down}");

    // (2) Killed when the first push begins.
    rig.proxy.set(Fault::Pass);
    let out3 = rig.out("out3");
    let tag3 = format!("{}k", rig.fx.tag);
    let mut running = rig.build(&tag3, &out3).spawn();
    let pushing = running.wait_for_stderr(Duration::from_secs(120), |e| e.contains("] pushing "));
    rig.proxy.set(Fault::Down);
    let killed_at = running.elapsed();
    let killed = running.wait(FAILED_RUN_LIMIT);
    assert!(pushing, "no push started:\n{killed}");
    assert_eq!(
        killed.code,
        Some(1),
        "registry gone mid-push: the push step of a target fails after its retries, which \
         is a target failure (exit 1):\n{killed}"
    );
    killed.assert_stderr_mentions("push");
    assert_no_artifact(&out3, &killed);
    assert_eq!(rig.all_tags(), tags_before, "tags changed:\n{killed}");
    assert_eq!(rig.latest(), latest_before, "latest moved:\n{killed}");
    eprintln!(
        "registry down from the start: exit {:?} in {:.1?}: {}",
        down.code,
        down.elapsed,
        error_part(&down)
    );
    eprintln!(
        "registry killed mid-push after {killed_at:.1?}: exit {:?} in {:.1?}: {}",
        killed.code,
        killed.elapsed,
        error_part(&killed)
    );

    // Back up: the same rebuild now succeeds and moves `latest` of api only.
    rig.proxy.set(Fault::Pass);
    let out4 = rig.out("out4");
    let tag4 = format!("{}b", rig.fx.tag);
    let back = rig.build(&tag4, &out4).arg("--json").run();
    assert_pushed_as_reported(&rig, &back, &out4, &tag4);
    let latest_after = rig.latest();
    assert_ne!(latest_after["bash-dog-api"], latest_before["bash-dog-api"]);
    assert_eq!(
        latest_after["bash-dog-nginx"],
        latest_before["bash-dog-nginx"]
    );
}

/// The registry stops answering (every open and new connection stalls)
/// when the first push begins: with `--timeout 5` the run ends non-zero by
/// itself, says that nothing made progress, and writes nothing.
#[test]
fn stalled_registry_times_out_with_a_clear_message() {
    let rig = Rig::new(Fault::Pass);
    let out = rig.out("out");
    let mut running = rig
        .build(&rig.fx.tag, &out)
        .args(["--timeout", "5"])
        .spawn();
    let pushing = running.wait_for_stderr(Duration::from_secs(120), |e| e.contains("] pushing "));
    rig.proxy.set(Fault::Stall);
    let stalled_at = running.elapsed();
    let run = running.wait(FAILED_RUN_LIMIT);
    assert!(pushing, "no push started:\n{run}");
    assert!(
        matches!(run.code, Some(1 | 3)),
        "a stalled registry must end the run with a failure (1: a push failed, 3: the registry \
         is unreachable):\n{run}"
    );
    let lower = run.stderr.to_lowercase();
    assert!(
        ["no progress", "timeout", "timed out"]
            .iter()
            .any(|w| lower.contains(w)),
        "no word about the timeout:\n{run}"
    );
    assert!(
        run.elapsed - stalled_at < Duration::from_secs(120),
        "took {:?} after the stall began:\n{run}",
        run.elapsed - stalled_at
    );
    assert_no_artifact(&out, &run);
    for (_, repo) in TARGETS {
        assert_eq!(
            rig.registry.digest(repo, "latest"),
            None,
            "{repo}:latest moved:\n{run}"
        );
    }
    eprintln!(
        "stall at push (--timeout 5): exit {:?}, ended {:.1?} after the stall: {}",
        run.code,
        run.elapsed - stalled_at,
        error_part(&run)
    );
}

/// The registry stalls from the very start, so the first thing that meets
/// it is stackbake's own registry client (the fingerprint lookups), not an
/// engine stream. `--timeout` says it bounds "an engine or registry call";
/// with `--timeout 5` and 5 attempts the run should end well within 45 s.
/// (Once a bug: each lookup waited the client's fixed 60 s request timeout.)
#[test]
fn registry_stalled_from_the_start_obeys_timeout() {
    let rig = Rig::new(Fault::Stall);
    let out = rig.out("out");
    let run = rig.build(&rig.fx.tag, &out).args(["--timeout", "5"]).run();
    eprintln!(
        "stall from the start (--timeout 5): exit {:?} in {:.1?}: {}",
        run.code,
        run.elapsed,
        error_part(&run)
    );
    assert!(matches!(run.code, Some(1 | 3)), "{run}");
    assert_no_artifact(&out, &run);
    assert!(
        run.elapsed < Duration::from_secs(45),
        "--timeout 5 did not bound the stalled registry lookups ({:?}):\n{run}",
        run.elapsed
    );
}

/// The error paragraph of a failed run (for the logs of these tests).
fn error_part(run: &Outcome) -> String {
    let e = run.stderr.find("error:").map_or("", |i| &run.stderr[i..]);
    e.chars().take(400).collect::<String>().replace('\n', " | ")
}

// ------------------------------------------------------- engine unreachable

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

fn break_sidecar(project: &Project) {
    project.add_step_after(
        "COPY app/sidecar/run.sh /srv/sidecar/run.sh",
        "RUN echo sidecar-fails && false",
    );
    assert!(project.read("Dockerfile").contains("&& false"));
}

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

// ------------------------------------------------------- interrupts

/// Containers created from this test's own fresh base image: the build
/// containers of this test's run and of no other.
fn build_containers(base: &str) -> Vec<String> {
    let ancestor = format!("ancestor={base}");
    let (_, out, _) = docker(&["ps", "-aq", "--no-trunc", "--filter", &ancestor]);
    out.split_whitespace().map(str::to_owned).collect()
}

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

// ------------------------------------------------------- secrets

/// Every byte `run` printed plus every file under `dirs`, checked for the
/// password and for the base64 of `user:password` and of the password.
fn assert_no_secret(user: &str, pass: &str, runs: &[&Outcome], dirs: &[&Path]) {
    use base64::Engine as _;
    let encode = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let needles = [
        pass.to_owned(),
        encode(format!("{user}:{pass}").as_bytes()),
        encode(pass.as_bytes()),
    ];
    for run in runs {
        for needle in &needles {
            assert!(
                !run.stdout.contains(needle.as_str()) && !run.stderr.contains(needle.as_str()),
                "the registry password (or its base64 {needle:?}) was printed:\n{run}"
            );
        }
    }
    for dir in dirs {
        for file in files_under(dir) {
            let bytes = std::fs::read(&file).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            for needle in &needles {
                assert!(
                    !text.contains(needle.as_str()),
                    "{} holds the registry password (or {needle:?})",
                    file.display()
                );
            }
        }
    }
}

/// The scenarios above against a registry that demands a password, all with
/// `--verbose`: a burst of 503s (success), the registry killed mid-push, a
/// failing target, and a wrong password. Not one printed or written byte
/// (stdout, stderr, every file under the project's temp dir) holds the
/// password, nor `user:password` or the password in base64.
#[test]
fn the_registry_password_never_appears_in_any_output_or_file() {
    let user = "ci-user";
    let pass = format!("Pw-{}-never-print-me", unique_id());
    let rig = Rig::with_auth(user, &pass, Fault::Fail503Every(7));
    rig.proxy.limit_faults(6);
    let mut runs = Vec::new();

    let out1 = rig.out("out1");
    let ok = rig
        .build(&rig.fx.tag, &out1)
        .args(["--json", "--verbose"])
        .run();
    assert_pushed_as_reported(&rig, &ok, &out1, &rig.fx.tag);
    runs.push(ok);

    rig.change_api("secret-kill");
    rig.proxy.set(Fault::Pass);
    let out2 = rig.out("out2");
    let mut running = rig
        .build(&format!("{}k", rig.fx.tag), &out2)
        .arg("--verbose")
        .spawn();
    let pushing = running.wait_for_stderr(Duration::from_secs(120), |e| e.contains("] pushing "));
    rig.proxy.set(Fault::Down);
    let killed = running.wait(FAILED_RUN_LIMIT);
    assert!(pushing, "no push started:\n{killed}");
    assert_ne!(killed.code, Some(0), "{killed}");
    runs.push(killed);

    rig.proxy.set(Fault::Pass);
    break_sidecar(&rig.fx.project);
    let out3 = rig.out("out3");
    let failed = rig
        .build(&format!("{}f", rig.fx.tag), &out3)
        .args(["--verbose", "--json"])
        .run();
    failed.assert_code(1);
    runs.push(failed);

    let wrong = Sb::new()
        .args(["build", "--local", "--dir"])
        .arg(rig.fx.project.root())
        .arg("--out")
        .arg(rig.out("out4"))
        .args([
            "--registry",
            &rig.proxy.addr(),
            "--registry-user",
            user,
            "--verbose",
        ])
        .env("STACKBAKE_REGISTRY_PASSWORD", format!("{pass}-wrong"))
        .timeout(FAILED_RUN_LIMIT)
        .run();
    assert_ne!(wrong.code, Some(0), "{wrong}");
    runs.push(wrong);

    let refs: Vec<&Outcome> = runs.iter().collect();
    assert_no_secret(user, &pass, &refs, &[rig.fx.project.temp()]);
    // The wrong password must not be printed either.
    assert_no_secret(
        user,
        &format!("{pass}-wrong"),
        &refs,
        &[rig.fx.project.temp()],
    );
}

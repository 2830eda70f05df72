//! Issue 12: the BuildKit builder, on both test engines: the machine's
//! Docker 20.10 (BuildKit v0.8, graph driver) and the side engine Docker 26
//! (BuildKit v0.13, containerd image store, `scripts/docker26`). Modern
//! Dockerfile features and secrets build; what an engine or builder cannot
//! run is refused before anything is built (exit 2); a secret's value ends
//! up nowhere; registry cache makes a fresh engine skip unchanged steps; a
//! cache source that cannot be used is skipped with a line.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::build::step_runs;
use crate::harness::{
    Engine26, Fixture, Images26, Outcome, Project, Sb, assert_secret_nowhere, docker, docker_run,
    docker26, push_unusable_cache, registry_base, report_target, unique_id,
};

/// The shared stage's first step.
const BASE_STEP: &str = "RUN mkdir -p /srv/bin /srv/www";

/// A heredoc and a `COPY --link`, which Docker 20.10's BuildKit cannot run.
fn add_heredoc_and_link(p: &Project) {
    p.add_step_after(
        "COPY app/api/ /srv/api/",
        "RUN <<EOF\necho from a heredoc > /srv/heredoc.txt\nEOF",
    );
    p.add_step_after(
        "COPY app/sidecar/run.sh /srv/sidecar/run.sh",
        "COPY --link app/api/index.json /srv/linked.json",
    );
}

/// A required secret mount that records only the value's length.
fn add_secret_step(p: &Project) {
    p.add_step_after(
        "COPY app/api/ /srv/api/",
        "RUN --mount=type=secret,id=token,required=true wc -c < /run/secrets/token > /srv/token-length",
    );
}

/// The 1-based line of the first Dockerfile line containing `needle`.
fn line_of(p: &Project, needle: &str) -> usize {
    p.read("Dockerfile")
        .lines()
        .position(|l| l.contains(needle))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no {needle:?} in the Dockerfile"))
}

/// The error paragraph of a failed run.
fn error_part(run: &Outcome) -> String {
    run.stderr
        .split_once("error:")
        .map(|(_, e)| e.to_owned())
        .unwrap_or_default()
}

fn assert_nothing_built(run: &Outcome, out: &Path) {
    assert!(
        !run.stderr.contains("] building"),
        "a build started:\n{run}"
    );
    assert!(
        Project::files_in(out).is_empty(),
        "an artifact was written:\n{run}"
    );
}

/// A value no test file or image holds by chance, always 48 bytes long (a
/// warm engine may take the secret step from its cache: the length it
/// recorded must still match).
fn secret_value() -> String {
    let v = format!("sb-secret-{}-do-not-leak-", unique_id());
    format!("{v:x<48}").chars().take(48).collect()
}

// ------------------------------------------------------- refused up front

#[test]
fn a_heredoc_and_copy_link_are_refused_up_front_on_docker_20_10() {
    let fx = Fixture::local_only();
    add_heredoc_and_link(&fx.project);
    let heredoc = line_of(&fx.project, "RUN <<EOF");
    let link = line_of(&fx.project, "COPY --link");
    let run = fx.build().run();
    run.assert_code(2);
    let error = error_part(&run);
    for needle in [
        format!("line {heredoc}"),
        format!("line {link}"),
        "heredoc".to_owned(),
        "COPY --link app/api/index.json".to_owned(),
        "Docker 20.10".to_owned(),
        "v0.8".to_owned(),
        "Docker 23.0 or newer".to_owned(),
        "upgrade the engine".to_owned(),
    ] {
        assert!(error.contains(&needle), "{needle:?} missing:\n{run}");
    }
    assert_nothing_built(&run, fx.project.out());

    // `check` reports the same, now that an engine answers.
    let check = Sb::new()
        .args(["check", "--dir"])
        .arg(fx.project.root())
        .run();
    check.assert_code(2);
    check.assert_stderr_mentions("engine/unsupported");
    check.assert_stderr_mentions(&format!("Dockerfile:{heredoc}:"));
}

#[test]
fn the_classic_builder_refuses_any_mount_up_front() {
    let fx = Fixture::local_only();
    let mount = line_of(&fx.project, "--mount=type=cache");
    let run = fx.build().args(["--builder", "classic"]).run();
    run.assert_code(2);
    let error = error_part(&run);
    for needle in [
        format!("line {mount}"),
        "RUN --mount".to_owned(),
        "classic builder".to_owned(),
        "--builder auto".to_owned(),
    ] {
        assert!(error.contains(&needle), "{needle:?} missing:\n{run}");
    }
    assert_nothing_built(&run, fx.project.out());
}

#[test]
fn a_missing_required_secret_or_a_bad_secret_flag_stops_before_building() {
    let fx = Fixture::local_only();
    add_secret_step(&fx.project);
    let run = fx.build().run();
    run.assert_code(2);
    run.assert_stderr_mentions("secret `token`");
    run.assert_stderr_mentions("--secret id=token,src=FILE");
    assert_nothing_built(&run, fx.project.out());
    for (flag, needle) in [
        (
            "id=token,src=/nonexistent/token.txt",
            "/nonexistent/token.txt",
        ),
        (
            "id=token,env=SB_TEST_SURELY_UNSET",
            "SB_TEST_SURELY_UNSET is not set",
        ),
        ("token", "not KEY=VALUE"),
        ("src=x", "the id is missing"),
    ] {
        let run = fx.build().args(["--secret", flag]).run();
        run.assert_code(2);
        run.assert_stderr_mentions(needle);
        assert_nothing_built(&run, fx.project.out());
    }
}

// ------------------------------------------------------- Docker 20.10

#[test]
fn cache_and_secret_mounts_build_on_docker_20_10_and_the_secret_leaks_nowhere() {
    let fx = Fixture::with_registry();
    add_secret_step(&fx.project);
    let value = secret_value();
    let run = fx
        .build()
        .args(["--json", "--secret", "id=token,env=SB_TEST_TOKEN"])
        .env("SB_TEST_TOKEN", &value)
        .env("STACKBAKE_LOG", "trace")
        .run();
    run.assert_success();
    run.assert_stderr_mentions("builder: BuildKit");
    // The `# syntax=docker/dockerfile:1` line did not send BuildKit to Docker Hub.
    assert!(!run.stderr.contains("docker/dockerfile"), "{run}");
    let image = format!("{}/bash-dog-api:{}", fx.registry().addr(), fx.tag);
    assert_eq!(
        docker_run(&image, &["cat", "/srv/token-length"]),
        value.len().to_string()
    );
    // The cache mount held the log; the image does not.
    assert_eq!(
        docker_run(
            &image,
            &["sh", "-c", "test -e /root/.cache/builds.log || echo absent"]
        ),
        "absent"
    );
    let (executed, _) = step_runs(&run.stderr, BASE_STEP);
    assert_eq!(executed, 1, "the shared step ran {executed} times:\n{run}");
    assert_secret_nowhere(
        &value,
        &[&run.stdout, &run.stderr],
        &[fx.project.root(), fx.project.out()],
        &image,
        docker,
    );

    // Neither the secret's value nor the builder is part of a fingerprint.
    let plan = Sb::new()
        .args(["plan", "--local", "--json", "--dir"])
        .arg(fx.project.root())
        .arg("--build-arg")
        .arg(format!("BASE={}", fx.base_ref()))
        .args(["--tag", &fx.tag, "--registry", fx.registry().addr()])
        .args([
            "--builder",
            "classic",
            "--secret",
            "id=token,env=SB_TEST_TOKEN",
        ])
        .env("SB_TEST_TOKEN", "another value")
        .run();
    plan.assert_success();
    let report = plan.json();
    for c in ["nginx", "bash-dog-api", "sidecar"] {
        assert_eq!(report_target(&report, c)["action"], "reuse", "{plan}");
    }
}

#[test]
fn a_failing_step_shows_its_last_lines_in_the_error_on_docker_20_10() {
    let fx = Fixture::local_only();
    break_sidecar(&fx.project);
    let run = fx.build_with(Some(fx.project.out()), "quiet").run();
    assert_failing_step(&run);
}

fn break_sidecar(p: &Project) {
    p.add_step_after(
        "COPY app/sidecar/run.sh /srv/sidecar/run.sh",
        "RUN echo first-words && echo last-words && exit 3",
    );
}

fn assert_failing_step(run: &Outcome) {
    run.assert_code(1);
    let error = error_part(run);
    for needle in [
        "[sidecar]",
        "RUN echo first-words",
        "exit code: 3",
        "last-words",
        "hint:",
    ] {
        assert!(
            error.contains(needle),
            "{needle:?} missing from the error:\n{run}"
        );
    }
}

// ------------------------------------------------------- Docker 26

#[test]
fn modern_features_and_secrets_build_on_docker_26_and_the_secret_leaks_nowhere() {
    let engine = Engine26::shared();
    let fx = Fixture::registry_only();
    let _images = Images26::of(fx.registry());
    let base = registry_base(fx.registry());
    add_heredoc_and_link(&fx.project);
    add_secret_step(&fx.project);
    let value = secret_value();
    let secret_dir = tempfile::tempdir().expect("tempdir");
    let secret_file = secret_dir.path().join("token");
    std::fs::write(&secret_file, &value).expect("write the secret");
    let run = fx
        .build_on(engine.host(), &base, &fx.tag, fx.project.out())
        .arg("--json")
        .arg("--secret")
        .arg(format!("id=token,src={}", secret_file.display()))
        .env("STACKBAKE_LOG", "trace")
        .run();
    run.assert_success();
    run.assert_stderr_mentions("containerd image store");
    assert!(!run.stderr.contains("docker/dockerfile"), "{run}");
    let run_in = |image: &str, cmd: &[&str]| {
        let mut args = vec!["run", "--rm", "--network", "none", image];
        args.extend_from_slice(cmd);
        let (ok, out, err) = docker26(&args);
        assert!(ok, "docker run {image} {cmd:?}: {err}");
        out.trim().to_owned()
    };
    let api = format!("{}/bash-dog-api:{}", fx.registry().addr(), fx.tag);
    let sidecar = format!("{}/bash-dog-sidecar:{}", fx.registry().addr(), fx.tag);
    assert_eq!(run_in(&api, &["cat", "/srv/heredoc.txt"]), "from a heredoc");
    assert_eq!(
        run_in(&api, &["cat", "/srv/token-length"]),
        value.len().to_string()
    );
    assert_eq!(
        run_in(&sidecar, &["cat", "/srv/linked.json"]),
        fx.project.read("app/api/index.json").trim()
    );
    for repo in ["bash-dog-api", "bash-dog-nginx", "bash-dog-sidecar"] {
        assert!(
            fx.registry().tags(repo).contains(&"buildcache".to_owned()),
            "no registry cache for {repo}:\n{run}"
        );
    }
    // The engine is shared with other tests (warm): the step may be cached,
    // but never run twice.
    let (executed, _) = step_runs(&run.stderr, BASE_STEP);
    assert!(
        executed <= 1,
        "the shared step ran {executed} times:\n{run}"
    );
    assert_secret_nowhere(
        &value,
        &[&run.stdout, &run.stderr],
        &[fx.project.root(), fx.project.out()],
        &api,
        docker26,
    );
}

/// A Dockerfile 1.7 string operation (issue 14, item 2), in an instruction
/// the frontend expands.
fn add_string_operation(p: &Project) {
    p.add_step_after(
        "COPY app/api/ /srv/api/",
        "ARG PLATFORM=linux/amd64\nENV ARCH=${PLATFORM#linux/}\nRUN echo \"$ARCH\" > /srv/arch.txt",
    );
}

#[test]
fn a_string_operation_is_refused_on_docker_20_10_and_expanded_on_docker_26() {
    let fx = Fixture::local_only();
    add_string_operation(&fx.project);
    let line = line_of(&fx.project, "ENV ARCH=");
    let run = fx.build().run();
    run.assert_code(2);
    let error = error_part(&run);
    for needle in [
        format!("line {line}"),
        "${PLATFORM#linux/}".to_owned(),
        "Docker 26.0 or newer".to_owned(),
        "Docker 20.10".to_owned(),
    ] {
        assert!(error.contains(&needle), "{needle:?} missing:\n{run}");
    }
    assert_nothing_built(&run, fx.project.out());

    let engine = Engine26::shared();
    let fx = Fixture::registry_only();
    let _images = Images26::of(fx.registry());
    let base = registry_base(fx.registry());
    add_string_operation(&fx.project);
    let run = fx
        .build_on(engine.host(), &base, &fx.tag, fx.project.out())
        .run();
    run.assert_success();
    let api = format!("{}/bash-dog-api:{}", fx.registry().addr(), fx.tag);
    let (ok, out, err) = docker26(&[
        "run",
        "--rm",
        "--network",
        "none",
        &api,
        "cat",
        "/srv/arch.txt",
    ]);
    assert!(ok, "{err}");
    assert_eq!(out.trim(), "amd64");
}

#[test]
fn on_a_fresh_docker_26_an_unchanged_step_comes_from_the_registry_cache() {
    let engine = Engine26::fresh();
    let fx = Fixture::registry_only();
    let _images = Images26::of(fx.registry());
    let base = registry_base(fx.registry());
    let out = |n: &str| fx.project.out().with_file_name(format!("out-{n}"));
    let cold = fx.build_on(engine.host(), &base, "c1", &out("c1")).run();
    cold.assert_success();
    assert_eq!(step_runs(&cold.stderr, BASE_STEP).0, 1, "{cold}");

    // One file changed, on a wiped engine (as CodeBuild starts every build):
    // once failed here ("failed to read diff archive") with the classic builder.
    engine.wipe();
    fx.project.edit("app/api/index.json", |t| {
        t.replace('{', "{\"changed\": true, ")
    });
    let changed = fx
        .build_on(engine.host(), &base, "c2", &out("c2"))
        .arg("--json")
        .run();
    changed.assert_success();
    let report = changed.json();
    assert_eq!(report_target(&report, "bash-dog-api")["action"], "built");
    assert_eq!(report_target(&report, "nginx")["action"], "reused");
    assert_eq!(
        step_runs(&changed.stderr, BASE_STEP),
        (0, 1),
        "the unchanged shared step ran again on the fresh engine:\n{changed}"
    );
    assert_eq!(
        step_runs(&changed.stderr, "COPY app/api/").0,
        1,
        "{changed}"
    );

    // No change, on a wiped engine: nothing to build at all.
    engine.wipe();
    let same = fx.build_on(engine.host(), &base, "c3", &out("c3")).run();
    same.assert_success();
    assert!(!same.stderr.contains("] building"), "{same}");
}

#[test]
fn the_classic_builder_on_docker_26_skips_the_cache_image_it_cannot_use() {
    let engine = Engine26::shared();
    let fx = Fixture::registry_only();
    let _images = Images26::of(fx.registry());
    let base = registry_base(fx.registry());
    fx.project.without_cache_mount();
    let out = |n: &str| fx.project.out().with_file_name(format!("out-{n}"));
    let first = fx
        .build_on(engine.host(), &base, "k1", &out("k1"))
        .args(["--builder", "classic"])
        .run();
    first.assert_success();
    fx.project
        .edit("app/api/index.json", |t| t.replace('{', "{\"k\": 2, "));
    let second = fx
        .build_on(engine.host(), &base, "k2", &out("k2"))
        .args(["--builder", "classic"])
        .run();
    second.assert_success();
    second.assert_stderr_mentions(&format!(
        "cache source {}/bash-dog-api:latest skipped",
        fx.registry().addr()
    ));
}

#[test]
fn a_registry_cache_that_cannot_be_used_is_skipped_with_a_line_on_docker_26() {
    let engine = Engine26::shared();
    let fx = Fixture::registry_only();
    let _images = Images26::of(fx.registry());
    let base = registry_base(fx.registry());
    // A cache manifest whose config no builder can read.
    push_unusable_cache(fx.registry(), "bash-dog-api", "buildcache");
    let bogus = format!("{}/bash-dog-api:buildcache", fx.registry().addr());
    let run = fx
        .build_on(engine.host(), &base, &fx.tag, fx.project.out())
        .run();
    run.assert_success();
    run.assert_stderr_mentions(&format!("cache source {bogus} skipped"));
}

#[test]
fn a_failing_step_shows_its_last_lines_in_the_error_on_docker_26() {
    let engine = Engine26::shared();
    let fx = Fixture::registry_only();
    let _images = Images26::of(fx.registry());
    let base = registry_base(fx.registry());
    break_sidecar(&fx.project);
    let run = fx
        .build_on(engine.host(), &base, &fx.tag, fx.project.out())
        .run();
    assert_failing_step(&run);
}

#[test]
fn an_interrupted_buildkit_build_exits_130_and_the_next_build_works() {
    let fx = Fixture::local_only();
    fx.project
        .add_step_after("COPY app/api/ /srv/api/", "RUN sleep 30");
    let mut running = fx.build().spawn();
    let sleeping =
        running.wait_for_stderr(Duration::from_secs(90), |e| e.contains("] RUN sleep 30"));
    assert!(
        sleeping,
        "never reached `RUN sleep 30`: {}",
        running.stderr_so_far()
    );
    std::thread::sleep(Duration::from_millis(500));
    running.signal("INT");
    let signalled = Instant::now();
    let run = running.wait(Duration::from_secs(60));
    run.assert_code(130);
    assert!(
        signalled.elapsed() < Duration::from_secs(15),
        "took {:?} to stop:\n{run}",
        signalled.elapsed()
    );
    assert!(Project::files_in(fx.project.out()).is_empty(), "{run}");
    // The cancelled build and its session are gone from the engine: the
    // next run (new session ids) builds.
    fx.project
        .edit("Dockerfile", |t| t.replace("RUN sleep 30\n", ""));
    fx.build().run().assert_success();
}

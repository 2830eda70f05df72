//! Issue 14: inputs from outside the build context, against real peers. A
//! base image that moved in its loopback registry rebuilds exactly the
//! targets on it, on the new base; an engine-only base re-imported under
//! the same tag rebuilds its targets; a base registry that is down stops
//! the build (exit 3) unless `--allow-unresolved`, never reusing silently;
//! `ADD http://…` rebuilds only the target that reads it when the served
//! bytes change; `--max-age` rebuilds an image older than it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{
    Fixture, Outcome, REPO_ROOT, Registry, Sb, docker, docker_ok, docker_run, report_target,
};

const CONTAINERS: [&str; 3] = ["nginx", "bash-dog-api", "sidecar"];

/// `stackbake CMD --local --dir ROOT --build-arg BASE=… --tag TAG --json
/// --progress plain [--registry ADDR]` (`--out` for builds).
fn run(fx: &Fixture, cmd: &str, tag: &str, extra: &[&str]) -> Outcome {
    let mut sb = Sb::new()
        .args([cmd, "--local", "--dir"])
        .arg(fx.project.root())
        .arg("--build-arg")
        .arg(format!("BASE={}", fx.base_ref()))
        .args(["--tag", tag, "--json", "--progress", "plain"]);
    if cmd == "build" {
        sb = sb.arg("--out").arg(fx.project.out());
    }
    if let Some(r) = &fx.registry {
        sb = sb.args(["--registry", r.addr()]);
    }
    sb.args(extra).run()
}

/// container → (action, reason or "-") of a report.
fn actions(run: &Outcome) -> Vec<(String, String)> {
    let report: Value = run.json();
    CONTAINERS
        .iter()
        .map(|c| {
            let t = report_target(&report, c);
            let action = t["action"].as_str().unwrap_or("?").to_owned();
            let reason = t["reason"].as_str().unwrap_or("-").to_owned();
            (c.to_string(), format!("{action} {reason}"))
        })
        .map(|(c, a)| (c, a.trim_end_matches(" -").to_owned()))
        .collect()
}

fn expect(pairs: [(&str, &str); 3]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(c, a)| (c.to_string(), a.to_string()))
        .collect()
}

fn digest_of(run: &Outcome, container: &str) -> String {
    report_target(&run.json(), container)["digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

/// Builds `FROM parent` + `RUN echo VERSION > /base-version` as `reference`
/// with the classic builder; returns its image id.
fn derived_base(parent: &str, version: &str, reference: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("Dockerfile"),
        format!("FROM {parent}\nRUN echo {version} > /base-version\n"),
    )
    .expect("write Dockerfile");
    let out = Command::new("docker")
        .args(["build", "-q", "-t", reference])
        .arg(dir.path())
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .output()
        .expect("docker build");
    assert!(
        out.status.success(),
        "docker build of {reference}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The example stack with `sidecar` on its own base (`ARG OTHER`), so that
/// a move of `BASE` leaves it alone.
fn sidecar_on_other_base(fx: &Fixture) {
    fx.project.edit("Dockerfile", |d| {
        d.replace(
            "ARG BASE=busybox:1.36.1\n",
            "ARG BASE=busybox:1.36.1\nARG OTHER\n",
        )
        .replace("FROM base AS sidecar", "FROM ${OTHER} AS sidecar")
    });
}

#[test]
fn a_base_that_moved_in_its_registry_rebuilds_exactly_its_targets_on_the_new_base() {
    let fx = Fixture::with_registry();
    sidecar_on_other_base(&fx);
    let moving = format!("{}/base:1", fx.registry().addr());
    let v1 = derived_base(&fx.base_ref(), "v1", &moving);
    docker_ok(&["push", &moving]);
    let args = [
        "--build-arg".to_owned(),
        format!("BASE={moving}"),
        "--build-arg".to_owned(),
        format!("OTHER={}", fx.base_ref()),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let cold = run(&fx, "build", &fx.tag, &args);
    cold.assert_success();
    assert_eq!(
        actions(&cold),
        expect([
            ("nginx", "built"),
            ("bash-dog-api", "built"),
            ("sidecar", "built")
        ])
    );
    let again = run(&fx, "build", &fx.tag, &args);
    again.assert_success();
    assert_eq!(
        actions(&again),
        expect([
            ("nginx", "reused"),
            ("bash-dog-api", "reused"),
            ("sidecar", "reused")
        ])
    );

    // A new image under the same tag, as a security patch of the base would
    // be; the engine's own copy of the tag is left on the old one (stale).
    derived_base(&fx.base_ref(), "v2", &moving);
    docker_ok(&["push", &moving]);
    docker_ok(&["tag", &v1, &moving]);

    let planned = run(&fx, "plan", &fx.tag, &args);
    planned.assert_success();
    assert_eq!(
        actions(&planned),
        expect([
            ("nginx", "build changed"),
            ("bash-dog-api", "build changed"),
            ("sidecar", "reuse unchanged")
        ])
    );
    planned.assert_stderr_mentions(&format!("base {moving} moved: sha256:"));
    let moved = run(&fx, "build", &fx.tag, &args);
    moved.assert_success();
    assert_eq!(
        actions(&moved),
        expect([
            ("nginx", "built"),
            ("bash-dog-api", "built"),
            ("sidecar", "reused")
        ])
    );
    moved.assert_stderr_mentions(&format!("[api] base {moving} moved: sha256:"));
    assert_eq!(digest_of(&moved, "sidecar"), digest_of(&cold, "sidecar"));
    for (container, repo) in [
        ("bash-dog-api", "bash-dog-api"),
        ("nginx", "bash-dog-nginx"),
    ] {
        let image = format!(
            "{}/{repo}@{}",
            fx.registry().addr(),
            digest_of(&moved, container)
        );
        assert_eq!(
            docker_run(&image, &["cat", "/base-version"]),
            "v2",
            "{container} holds the new base's files"
        );
    }
}

#[test]
fn an_engine_only_base_reimported_under_the_same_tag_rebuilds_its_targets() {
    let fx = Fixture::local_only();
    run(&fx, "build", &fx.tag, &[]).assert_success();
    let same = run(&fx, "plan", &fx.tag, &[]);
    same.assert_success();
    assert_eq!(
        actions(&same),
        expect([
            ("nginx", "reuse unchanged"),
            ("bash-dog-api", "reuse unchanged"),
            ("sidecar", "reuse unchanged")
        ])
    );
    let (_, old_id, _) = docker(&["image", "inspect", "--format", "{{.Id}}", &fx.base_ref()]);
    let out = Command::new(Path::new(REPO_ROOT).join("scripts/test"))
        .args(["import-base", &fx.base_ref()])
        .stdin(Stdio::null())
        .output()
        .expect("scripts/test import-base");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let planned = run(&fx, "plan", &fx.tag, &[]);
    planned.assert_success();
    assert_eq!(
        actions(&planned),
        expect([
            ("nginx", "build changed"),
            ("bash-dog-api", "build changed"),
            ("sidecar", "build changed")
        ])
    );
    planned.assert_stderr_mentions(&format!("base {} moved", fx.base_ref()));
    let rebuilt = run(&fx, "build", &fx.tag, &[]);
    rebuilt.assert_success();
    assert_eq!(
        actions(&rebuilt),
        expect([
            ("nginx", "built"),
            ("bash-dog-api", "built"),
            ("sidecar", "built")
        ])
    );
    drop(fx);
    // The first import lost its tag; what was built on it is gone with the fixture.
    let _ = docker(&["rmi", old_id.trim()]);
}

#[test]
fn a_base_registry_that_is_down_stops_the_build_or_warns_with_the_flag() {
    let fx = Fixture::with_registry();
    let other = Registry::start();
    let base = format!("{}/base:1", other.addr());
    docker_ok(&["tag", &fx.base_ref(), &base]);
    let _untag = Untag(base.clone());
    docker_ok(&["push", &base]);
    let args = ["--build-arg", &format!("BASE={base}"), "--retries", "0"].map(str::to_owned);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run(&fx, "build", &fx.tag, &args).assert_success();
    drop(other);

    let down = run(&fx, "build", &format!("{}d", fx.tag), &args);
    down.assert_code(3)
        .assert_stderr_mentions(&base)
        .assert_stderr_mentions(&format!(
            "registry {}",
            base.split('/').next().unwrap_or("")
        ))
        .assert_stderr_mentions("--allow-unresolved");
    for repo in ["bash-dog-api", "bash-dog-nginx", "bash-dog-sidecar"] {
        assert_eq!(
            fx.registry().digest(repo, &format!("{}d", fx.tag)),
            None,
            "nothing was reused or built on the unresolved base"
        );
    }

    let mut flagged = args.clone();
    flagged.push("--allow-unresolved");
    let warned = run(&fx, "plan", &fx.tag, &flagged);
    warned.assert_success().assert_stderr_mentions("warning");
    warned.assert_stderr_mentions(&base);
    assert_eq!(
        actions(&warned),
        expect([
            ("nginx", "build changed"),
            ("bash-dog-api", "build changed"),
            ("sidecar", "build changed")
        ]),
        "by its text, the base is another input: nothing is reused silently"
    );
    // The flag also reads STACKBAKE_ALLOW_UNRESOLVED.
    let built = Sb::new()
        .args(["build", "--local", "--dir"])
        .arg(fx.project.root())
        .arg("--out")
        .arg(fx.project.out())
        .args(&args)
        .args(["--tag", &fx.tag, "--json", "--progress", "plain"])
        .args(["--registry", fx.registry().addr()])
        .env("STACKBAKE_ALLOW_UNRESOLVED", "true")
        .run();
    built.assert_success().assert_stderr_mentions("warning");
}

/// Removes a local tag on drop (one the fixture does not watch).
struct Untag(String);

impl Drop for Untag {
    fn drop(&mut self) {
        let _ = docker(&["rmi", &self.0]);
    }
}

/// A tiny HTTP/1.1 server on 127.0.0.1 that serves the same bytes on every
/// path; stopped on drop.
struct FileServer {
    port: u16,
    body: Arc<Mutex<Vec<u8>>>,
    stop: Arc<AtomicBool>,
}

impl FileServer {
    fn start(body: &str) -> FileServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = Arc::new(Mutex::new(body.as_bytes().to_vec()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (body.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(c) = conn {
                    let bytes = b.lock().expect("body").clone();
                    let _ = serve(c, &bytes);
                }
            }
        });
        FileServer { port, body, stop }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn set(&self, body: &str) {
        *self.body.lock().expect("body") = body.as_bytes().to_vec();
    }
}

fn serve(mut c: TcpStream, body: &[u8]) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&request);
    let is_head = head.starts_with("HEAD ");
    write!(
        c,
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    if !is_head {
        c.write_all(body)?;
    }
    c.flush()
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[test]
fn add_url_rebuilds_only_the_target_that_reads_it_when_the_bytes_change() {
    let fx = Fixture::with_registry();
    let server = FileServer::start("hello from the server, v1\n");
    let url = server.url("greeting.txt");
    fx.project.add_step_after(
        "COPY app/api/ /srv/api/",
        &format!("ADD {url} /srv/api/remote.txt"),
    );
    let cold = run(&fx, "build", &fx.tag, &[]);
    cold.assert_success();
    let same = run(&fx, "build", &fx.tag, &[]);
    same.assert_success();
    assert_eq!(
        actions(&same),
        expect([
            ("nginx", "reused"),
            ("bash-dog-api", "reused"),
            ("sidecar", "reused")
        ])
    );
    server.set("hello from the server, v2\n");
    let changed = run(&fx, "build", &fx.tag, &[]);
    changed.assert_success();
    assert_eq!(
        actions(&changed),
        expect([
            ("nginx", "reused"),
            ("bash-dog-api", "built"),
            ("sidecar", "reused")
        ])
    );
    let image = format!(
        "{}/bash-dog-api@{}",
        fx.registry().addr(),
        digest_of(&changed, "bash-dog-api")
    );
    assert_eq!(
        docker_run(&image, &["cat", "/srv/api/remote.txt"]),
        "hello from the server, v2"
    );
}

#[test]
fn max_age_rebuilds_an_image_older_than_it() {
    let fx = Fixture::with_registry();
    let cold = run(&fx, "build", &fx.tag, &[]);
    cold.assert_success();
    let fresh = run(&fx, "plan", &fx.tag, &["--max-age", "1h"]);
    fresh.assert_success();
    assert_eq!(
        actions(&fresh),
        expect([
            ("nginx", "reuse unchanged"),
            ("bash-dog-api", "reuse unchanged"),
            ("sidecar", "reuse unchanged")
        ])
    );
    thread::sleep(Duration::from_secs(2));
    let old = run(&fx, "plan", &fx.tag, &["--max-age", "1s"]);
    old.assert_success();
    assert_eq!(
        actions(&old),
        expect([
            ("nginx", "build expired"),
            ("bash-dog-api", "build expired"),
            ("sidecar", "build expired")
        ])
    );
    let rebuilt = Sb::new()
        .args(["build", "--local", "--dir"])
        .arg(fx.project.root())
        .arg("--out")
        .arg(fx.project.out())
        .arg("--build-arg")
        .arg(format!("BASE={}", fx.base_ref()))
        .args(["--tag", &fx.tag, "--json", "--progress", "plain"])
        .args(["--registry", fx.registry().addr()])
        .env("STACKBAKE_MAX_AGE", "1s")
        .run();
    rebuilt.assert_success();
    assert_eq!(
        actions(&rebuilt),
        expect([
            ("nginx", "built"),
            ("bash-dog-api", "built"),
            ("sidecar", "built")
        ])
    );
    for c in CONTAINERS {
        assert_ne!(
            digest_of(&rebuilt, c),
            digest_of(&cold, c),
            "{c}: a new image, not the expired one"
        );
    }
}

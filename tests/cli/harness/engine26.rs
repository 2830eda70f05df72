//! The Docker 26 side engine (BuildKit v0.13, containerd image store) for
//! the BuildKit tests: `scripts/docker26` started once, its use serialised
//! (tests that only build share it, one that wipes it holds it alone), its
//! images cleaned up, a base image with one fixed digest from a registry,
//! and checks that a build secret is nowhere.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::*;

/// Serialises the tests' use of the side engine: tests that only build hold
/// it shared, a test that wipes it holds it alone.
const ENGINE26_LOCK: &str = "/tmp/stackbake-docker26-tests.lock";

/// Runs `scripts/docker26 ARGS`; panics with its output when it fails.
fn docker26_script(args: &[&str]) -> String {
    let out = Command::new(Path::new(REPO_ROOT).join("scripts/docker26"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run scripts/docker26");
    assert!(
        out.status.success(),
        "scripts/docker26 {} failed:\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The side engine (Docker 26, BuildKit v0.13, containerd image store),
/// held shared or alone while the value lives.
pub(crate) struct Engine26 {
    host: String,
    _lock: fs::File,
}

impl Engine26 {
    fn open(exclusive: bool) -> Engine26 {
        static SETUP: OnceLock<String> = OnceLock::new();
        let host = SETUP
            .get_or_init(|| {
                docker26_script(&["setup"]);
                docker26_script(&["host"])
            })
            .clone();
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(ENGINE26_LOCK)
            .expect("open the side engine's test lock");
        if exclusive {
            lock.lock().expect("lock the side engine");
        } else {
            lock.lock_shared().expect("lock the side engine (shared)");
        }
        Engine26 { host, _lock: lock }
    }

    /// The engine, shared with other tests that only build on it.
    pub(crate) fn shared() -> Engine26 {
        Engine26::open(false)
    }

    /// The engine alone, freshly wiped (as every CodeBuild build starts).
    pub(crate) fn fresh() -> Engine26 {
        let e = Engine26::open(true);
        e.wipe();
        e
    }

    /// Wipes the engine's data root (only for an engine held alone).
    pub(crate) fn wipe(&self) {
        docker26_script(&["wipe"]);
    }

    /// `unix:///…`, for `DOCKER_HOST`.
    pub(crate) fn host(&self) -> &str {
        &self.host
    }
}

/// The side engine's own docker CLI; returns (success, stdout, stderr).
pub(crate) fn docker26(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(Path::new(REPO_ROOT).join("scripts/docker26"))
        .arg("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run scripts/docker26 docker");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The busybox test base, pushed from the machine's engine into `registry`
/// as `ADDR/stackbake-base/busybox:1`: always the same image (one digest),
/// never imported again, so a fresh engine can find its layers cached.
pub(crate) fn registry_base(registry: &Registry) -> String {
    let reference = format!("{}/stackbake-base/busybox:1", registry.addr());
    docker_ok(&["tag", "stackbake-test/busybox:latest", &reference]);
    let (ok, _, err) = docker(&["push", &reference]);
    let _ = docker(&["rmi", &reference]);
    assert!(ok, "push of the test base to {reference} failed:\n{err}");
    reference
}

/// Removes, on drop, the side engine's images named under `prefix`
/// (`127.0.0.1:PORT/`).
pub(crate) struct Images26 {
    prefix: String,
}

impl Images26 {
    /// Watches the images of `registry`.
    pub(crate) fn of(registry: &Registry) -> Images26 {
        Images26 {
            prefix: format!("{}/", registry.addr()),
        }
    }
}

impl Drop for Images26 {
    fn drop(&mut self) {
        let (_, listing, _) = docker26(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        let refs: Vec<&str> = listing
            .lines()
            .filter(|r| r.starts_with(&self.prefix) && !r.ends_with(":<none>"))
            .collect();
        if !refs.is_empty() {
            let mut args = vec!["rmi", "-f"];
            args.extend(refs);
            let _ = docker26(&args);
        }
    }
}

impl Fixture {
    /// A registry and the example project, no base image in the machine's
    /// engine (side-engine tests take theirs from the registry).
    pub(crate) fn registry_only() -> Fixture {
        Fixture::new(true, false)
    }

    /// `stackbake build --local --registry ADDR` of the project on `docker_host`,
    /// into `out`, with `--build-arg BASE=base`, `--tag tag`, `--progress plain`.
    pub(crate) fn build_on(&self, docker_host: &str, base: &str, tag: &str, out: &Path) -> Sb {
        Sb::new()
            .args(["build", "--local", "--dir"])
            .arg(self.project.root())
            .arg("--out")
            .arg(out)
            .arg("--build-arg")
            .arg(format!("BASE={base}"))
            .args(["--tag", tag, "--progress", "plain"])
            .args(["--registry", self.registry().addr()])
            .env("DOCKER_HOST", docker_host)
    }
}

/// Every place a secret `value` must not be after a build of `image`: what
/// the run printed, the files under `dirs`, and the image as `docker save`
/// writes it (config, history, every layer, decompressed). `docker` is the
/// CLI of the engine that holds the image. Panics naming where it was found.
pub(crate) fn assert_secret_nowhere(
    value: &str,
    printed: &[&str],
    dirs: &[&Path],
    image: &str,
    docker: fn(&[&str]) -> (bool, String, String),
) {
    for (i, text) in printed.iter().enumerate() {
        assert!(
            !text.contains(value),
            "the secret is in printed output #{i}"
        );
    }
    let contains = |bytes: &[u8]| bytes.windows(value.len()).any(|w| w == value.as_bytes());
    for dir in dirs {
        for f in files_under(dir) {
            let bytes = fs::read(&f).unwrap_or_default();
            assert!(!contains(&bytes), "the secret is in {}", f.display());
        }
    }
    let (ok, history, err) = docker(&["history", "--no-trunc", image]);
    assert!(ok, "docker history {image}: {err}");
    assert!(
        !history.contains(value),
        "the secret is in the image history"
    );
    let (ok, config, err) = docker(&["image", "inspect", image]);
    assert!(ok, "docker image inspect {image}: {err}");
    assert!(!config.contains(value), "the secret is in the image config");
    let dir = tempfile::tempdir().expect("temp dir for docker save");
    let tar = dir.path().join("image.tar");
    let tar_s = tar.to_string_lossy().into_owned();
    let (ok, _, err) = docker(&["save", "-o", &tar_s, image]);
    assert!(ok, "docker save {image}: {err}");
    let unpacked = dir.path().join("unpacked");
    fs::create_dir(&unpacked).expect("mkdir");
    let status = Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&unpacked)
        .status()
        .expect("tar");
    assert!(status.success(), "cannot unpack the saved image");
    let files = files_under(&unpacked);
    assert!(
        files.len() > 2,
        "the saved image holds almost nothing: {files:?}"
    );
    for f in files {
        let bytes = fs::read(&f).unwrap_or_default();
        let plain = if bytes.starts_with(&[0x1f, 0x8b]) {
            Command::new("gzip")
                .arg("-dc")
                .arg(&f)
                .output()
                .map(|o| o.stdout)
                .unwrap_or_default()
        } else {
            bytes
        };
        assert!(
            !contains(&plain),
            "the secret is in the saved image's {}",
            f.display()
        );
    }
}

impl Project {
    /// Takes the example's cache mount out of its Dockerfile (with the line
    /// that writes into it), for runs on the classic builder, which cannot
    /// run `--mount`.
    pub(crate) fn without_cache_mount(&self) {
        self.edit("Dockerfile", |t| {
            let out = t
                .replace("--mount=type=cache,target=/root/.cache ", "")
                .replace(" \\\n && echo \"api built\" >> /root/.cache/builds.log", "");
            assert!(
                !out.contains("--mount") && !out.contains("builds.log"),
                "{out}"
            );
            out
        });
    }
}

/// Puts a registry cache manifest under `repo:tag` that no builder can use:
/// BuildKit's cache config media type over a config blob that is not JSON.
pub(crate) fn push_unusable_cache(registry: &Registry, repo: &str, tag: &str) {
    let config = b"this is not a cache config";
    let digest = {
        let out = Command::new("sha256sum")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .and_then(|mut c| {
                c.stdin.take().map(|mut i| i.write_all(config));
                c.wait_with_output()
            })
            .expect("sha256sum");
        let hex = String::from_utf8_lossy(&out.stdout);
        format!(
            "sha256:{}",
            hex.split_whitespace().next().unwrap_or_default()
        )
    };
    let addr = registry.addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let blob = dir.path().join("config");
    fs::write(&blob, config).expect("write blob");
    let location = curl(&[
        "-i",
        "-X",
        "POST",
        &format!("http://{addr}/v2/{repo}/blobs/uploads/"),
    ]);
    let location = location
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_owned())
        })
        .expect("upload location");
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = if location.starts_with("http") {
        format!("{location}{sep}digest={digest}")
    } else {
        format!("http://{addr}{location}{sep}digest={digest}")
    };
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", blob.display()),
        &url,
    ]);
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.buildkit.cacheconfig.v0",
            "digest": digest,
            "size": config.len(),
        },
        "layers": [],
    });
    let file = dir.path().join("manifest.json");
    fs::write(&file, manifest.to_string()).expect("write manifest");
    curl(&[
        "-f",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", file.display()),
        &format!("http://{addr}/v2/{repo}/manifests/{tag}"),
    ]);
}

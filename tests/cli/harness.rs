//! Test harness for the `cli` integration tests: throw-away registries and moto
//! servers, cache-cold base images, temp copies of the example stack, a
//! builder that runs the real `stackbake` binary, independent registry reads
//! (curl, never our own code) and cleanup of every image a test creates.
//!
//! Everything a test starts is stopped or removed when its guard drops, also
//! when the test panics. Only std, serde_json and tempfile are used here.

// Each issue's tests use a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tempfile::TempDir;

/// Root of the repository: the example stack and `scripts/test` live here.
pub const REPO_ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_stackbake");

/// Default limit for one `stackbake` run.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(300);

/// Files of the example stack copied by [`Project::example`] (if present).
const EXAMPLE_FILES: &[&str] = &[
    "Dockerfile",
    ".dockerignore",
    "taskdef.json",
    "appspec.yaml",
    "buildspec.yml",
];

/// A string unique to this test (process id, clock, counter), usable as a
/// Docker tag, a directory name and a commit tag (`--tag`).
pub fn unique_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "sbt{:x}{:x}n{}",
        std::process::id(),
        nanos % 0xffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago. Also the
/// way to get a closed port for "registry unreachable" tests.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free TCP port on 127.0.0.1")
}

/// Status code of `GET path` on `addr`, or None if nothing answers.
fn http_status(addr: &str, path: &str) -> Option<u16> {
    let sock = addr.parse().ok()?;
    let mut stream = TcpStream::connect_timeout(&sock, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut head = [0u8; 32];
    let n = stream.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]);
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Polls `ready` every 50 ms until it is true, `child` exits, or `limit`.
fn wait_until(child: &mut Child, limit: Duration, ready: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if ready() {
            return true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
    false
}

fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Panics with a hint unless the Docker engine answers (checked once).
pub fn require_docker() {
    static UP: OnceLock<bool> = OnceLock::new();
    let up = *UP.get_or_init(|| {
        Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(
        up,
        "the Docker engine does not answer `docker info`: run `scripts/test setup` first"
    );
}

/// Runs the docker CLI; returns (success, stdout, stderr).
pub fn docker(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run the docker CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the docker CLI and returns its trimmed stdout; panics on failure.
pub fn docker_ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = docker(args);
    assert!(ok, "docker {} failed:\n{stderr}", args.join(" "));
    stdout.trim().to_owned()
}

/// `docker run --rm --network none IMAGE CMD...`, trimmed stdout.
pub fn docker_run(image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none", image];
    args.extend_from_slice(cmd);
    docker_ok(&args)
}

/// True if the engine has `reference` (tag or digest reference) locally.
pub fn local_image_exists(reference: &str) -> bool {
    docker(&["image", "inspect", reference]).0
}

// ---------------------------------------------------------------- registry

/// A `docker-registry serve` (distribution 2.8) on 127.0.0.1, with its
/// storage in a temp dir; killed on drop.
pub struct Registry {
    child: Child,
    addr: String,
    credentials: Option<(String, String)>,
    dir: TempDir,
}

impl Registry {
    /// An anonymous registry.
    pub fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that demands basic auth `user`/`pass` (htpasswd, bcrypt).
    pub fn start_with_auth(user: &str, pass: &str) -> Registry {
        Registry::launch(Some((user.to_owned(), pass.to_owned())))
    }

    fn launch(credentials: Option<(String, String)>) -> Registry {
        let dir = tempfile::Builder::new()
            .prefix("stackbake-registry-")
            .tempdir()
            .expect("temp dir for the registry");
        let auth = match &credentials {
            None => String::new(),
            Some((user, pass)) => {
                let out = Command::new("htpasswd")
                    .args(["-Bbn", user, pass])
                    .output()
                    .expect("htpasswd not found: run `scripts/test setup` (apache2-utils)");
                assert!(out.status.success(), "htpasswd -Bbn failed");
                let file = dir.path().join("htpasswd");
                fs::write(&file, &out.stdout).expect("write htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: stackbake-test\n    path: {}\n",
                    file.display()
                )
            }
        };
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let config = dir.path().join("config.yml");
            fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {data}\n  delete:\n    enabled: true\n\
                     http:\n  addr: {addr}\n  secret: stackbake-test-secret\n{auth}",
                    data = dir.path().join("data").display()
                ),
            )
            .expect("write registry config");
            let log_path = dir.path().join("registry.log");
            let log = fs::File::create(&log_path).expect("registry log file");
            let mut child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup registry log"))
                .stderr(log)
                .spawn()
                .expect("/usr/bin/docker-registry not found: run `scripts/test setup`");
            let up = wait_until(&mut child, Duration::from_secs(15), || {
                matches!(http_status(&addr, "/v2/"), Some(200 | 401))
            });
            if up {
                return Registry {
                    child,
                    addr,
                    credentials,
                    dir,
                };
            }
            stop(&mut child);
            last_log = fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("docker-registry did not start (3 attempts); its log:\n{last_log}");
    }

    /// `127.0.0.1:PORT`, as passed to `--registry`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The basic-auth user and password, for `start_with_auth` registries.
    pub fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's log so far (for assertion messages).
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Digest of `repo:reference` read with curl, using this registry's credentials.
    pub fn digest(&self, repo: &str, reference: &str) -> Option<String> {
        registry_digest_auth(&self.addr, repo, reference, self.credentials())
    }

    /// Tags of `repo` read with curl, using this registry's credentials.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        registry_tags_auth(&self.addr, repo, self.credentials())
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl not found: run `scripts/test setup`");
    assert!(
        out.status.success(),
        "curl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn auth_args(credentials: Option<(&str, &str)>) -> Vec<String> {
    credentials
        .map(|(u, p)| vec!["-u".to_owned(), format!("{u}:{p}")])
        .unwrap_or_default()
}

/// `Docker-Content-Digest` of `repo:reference` on an anonymous registry
/// (HEAD with the schema 2 / OCI Accept types), or None if it has no such
/// manifest.
pub fn registry_digest(addr: &str, repo: &str, reference: &str) -> Option<String> {
    registry_digest_auth(addr, repo, reference, None)
}

/// [`registry_digest`] with optional basic auth.
pub fn registry_digest_auth(
    addr: &str,
    repo: &str,
    reference: &str,
    credentials: Option<(&str, &str)>,
) -> Option<String> {
    let url = format!("http://{addr}/v2/{repo}/manifests/{reference}");
    let auth = auth_args(credentials);
    let mut args: Vec<&str> = auth.iter().map(String::as_str).collect();
    args.extend([
        "-I",
        "-H",
        "Accept: application/vnd.docker.distribution.manifest.v2+json",
        "-H",
        "Accept: application/vnd.oci.image.manifest.v1+json",
        &url,
    ]);
    let head = curl(&args);
    let status = head.lines().next()?.split_whitespace().nth(1)?;
    if status != "200" {
        return None;
    }
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("docker-content-digest")
            .then(|| value.trim().to_owned())
    })
}

/// Tags of `repo` on an anonymous registry (empty if the repo is unknown).
pub fn registry_tags(addr: &str, repo: &str) -> Vec<String> {
    registry_tags_auth(addr, repo, None)
}

/// [`registry_tags`] with optional basic auth.
pub fn registry_tags_auth(
    addr: &str,
    repo: &str,
    credentials: Option<(&str, &str)>,
) -> Vec<String> {
    let url = format!("http://{addr}/v2/{repo}/tags/list");
    let auth = auth_args(credentials);
    let mut args: Vec<&str> = auth.iter().map(String::as_str).collect();
    args.push(&url);
    let body = curl(&args);
    let json: Value = serde_json::from_str(&body)
        .unwrap_or_else(|e| panic!("tags/list of {repo} is not JSON ({e}): {body}"));
    if json.get("errors").is_some() {
        let unknown = body.contains("NAME_UNKNOWN");
        assert!(unknown, "tags/list of {repo} failed: {body}");
        return Vec::new();
    }
    json["tags"]
        .as_array()
        .map(|tags| {
            tags.iter()
                .filter_map(|t| t.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

// -------------------------------------------------------------------- moto

/// A `moto_server` (AWS stand-in, account 123456789012) on 127.0.0.1;
/// killed on drop.
pub struct Moto {
    child: Child,
    endpoint: String,
    _dir: TempDir,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub fn start() -> Moto {
        let dir = tempfile::Builder::new()
            .prefix("stackbake-moto-")
            .tempdir()
            .expect("temp dir for moto");
        let log_path = dir.path().join("moto.log");
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let log = fs::File::create(&log_path).expect("moto log file");
            let mut child = Command::new("moto_server")
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup moto log"))
                .stderr(log)
                .spawn()
                .expect("moto_server not found: run `scripts/test setup`");
            let up = wait_until(&mut child, Duration::from_secs(30), || {
                http_status(&addr, "/moto-api/") == Some(200)
            });
            if up {
                return Moto {
                    child,
                    endpoint: format!("http://{addr}"),
                    _dir: dir,
                };
            }
            stop(&mut child);
            last_log = fs::read_to_string(&log_path).unwrap_or_default();
        }
        panic!("moto_server did not start (3 attempts); its log:\n{last_log}");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Environment pointing the AWS SDK at this moto: endpoint, dummy keys,
    /// `AWS_REGION=us-east-2`.
    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint.as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
    }

    /// Wipes moto's state (`POST /moto-api/reset`).
    pub fn reset(&self) {
        curl(&["-X", "POST", &format!("{}/moto-api/reset", self.endpoint)]);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

// -------------------------------------------------------------- base image

/// A fresh import of the busybox test base image as
/// `stackbake-test/busybox:<unique>`: a new image id, so the engine's layer
/// cache is cold for the test that uses it. `docker rmi -f` of that tag on drop.
pub struct BaseImage {
    reference: String,
}

impl BaseImage {
    /// Imports a new copy (through `scripts/test import-base`).
    pub fn fresh() -> BaseImage {
        require_docker();
        let reference = format!("stackbake-test/busybox:{}", unique_id());
        let out = Command::new(Path::new(REPO_ROOT).join("scripts/test"))
            .args(["import-base", &reference])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run scripts/test import-base");
        assert!(
            out.status.success(),
            "scripts/test import-base {reference} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        BaseImage { reference }
    }

    /// `stackbake-test/busybox:<unique>`, for `--build-arg BASE=`.
    pub fn reference(&self) -> &str {
        &self.reference
    }
}

impl Drop for BaseImage {
    /// Removes what the test's builds left on top of this base (stopped
    /// build containers, untagged intermediate and stage images: all
    /// descendants of this unique image, so nobody else's), then the base.
    fn drop(&mut self) {
        let (found, root, _) =
            docker(&["image", "inspect", "--format", "{{.Id}}", &self.reference]);
        if found {
            remove_descendants(root.trim(), &self.reference);
        }
        let _ = docker(&["rmi", "-f", &self.reference]);
    }
}

/// Removes the containers and images descending from image `root`.
fn remove_descendants(root: &str, reference: &str) {
    let ancestor = format!("ancestor={reference}");
    let (_, containers, _) = docker(&["ps", "-aq", "--no-trunc", "--filter", &ancestor]);
    let containers: Vec<&str> = containers.split_whitespace().collect();
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(containers);
        let _ = docker(&args);
    }
    // Leaves first: removing a leaf also removes its untagged parents.
    for _round in 0..10 {
        let (_, all, _) = docker(&["images", "-aq", "--no-trunc"]);
        let all: BTreeSet<&str> = all.split_whitespace().collect();
        if all.is_empty() {
            return;
        }
        let mut args = vec!["image", "inspect", "--format", "{{.Id}} {{.Parent}}"];
        args.extend(all.iter().copied());
        let (_, edges, _) = docker(&args);
        let edges: Vec<(&str, &str)> = edges.lines().filter_map(|l| l.split_once(' ')).collect();
        let mut descendants = BTreeSet::from([root]);
        loop {
            let before = descendants.len();
            for (id, parent) in &edges {
                if descendants.contains(parent) {
                    descendants.insert(id);
                }
            }
            if descendants.len() == before {
                break;
            }
        }
        descendants.remove(root);
        let leaves: Vec<&str> = descendants
            .iter()
            .copied()
            .filter(|d| {
                !edges
                    .iter()
                    .any(|(id, p)| p == d && descendants.contains(id))
            })
            .collect();
        if leaves.is_empty() {
            return;
        }
        let mut args = vec!["rmi", "-f"];
        args.extend(leaves);
        let _ = docker(&args);
    }
}

// ----------------------------------------------------------------- project

/// A temp copy of the example stack: `root()` is the project (`--dir`),
/// `out()` a sibling directory that does not exist yet (`--out`).
pub struct Project {
    dir: TempDir,
    root: PathBuf,
    out: PathBuf,
}

impl Project {
    /// Copies Dockerfile, .dockerignore, taskdef.json, appspec.yaml,
    /// buildspec.yml (if present) and app/ from the repository root.
    pub fn example() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("stackbake-project-")
            .tempdir()
            .expect("temp dir for the project");
        let root = dir.path().join("stack");
        let out = dir.path().join("out");
        fs::create_dir(&root).expect("create project dir");
        let repo = Path::new(REPO_ROOT);
        for name in EXAMPLE_FILES {
            let src = repo.join(name);
            if src.exists() {
                fs::copy(&src, root.join(name))
                    .unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
            }
        }
        copy_tree(&repo.join("app"), &root.join("app"));
        Project { dir, root, out }
    }

    /// The project directory (`--dir`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The artifact directory for `--out` (absolute; not created).
    pub fn out(&self) -> &Path {
        &self.out
    }

    /// `root()/rel`.
    pub fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Contents of `root()/rel`.
    pub fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Writes `root()/rel`, creating parent directories.
    pub fn write(&self, rel: &str, contents: &str) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {rel}: {e}"));
    }

    /// Rewrites `root()/rel` through `edit`.
    pub fn edit(&self, rel: &str, edit: impl FnOnce(String) -> String) {
        let new = edit(self.read(rel));
        self.write(rel, &new);
    }

    /// Adds the Dockerfile instruction `step` right after the line `after`
    /// (which must be there).
    pub fn add_step_after(&self, after: &str, step: &str) {
        let old = self.read("Dockerfile");
        let new = old.replacen(&format!("{after}\n"), &format!("{after}\n{step}\n"), 1);
        assert_ne!(old, new, "no line {after:?} in the Dockerfile");
        self.write("Dockerfile", &new);
    }

    /// Deletes the file `root()/rel`.
    pub fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).unwrap_or_else(|e| panic!("remove {rel}: {e}"));
    }

    /// Names of the files in `dir` (empty if it does not exist).
    pub fn files_in(dir: &Path) -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Parses `dir/name` as JSON.
    pub fn json_in(dir: &Path, name: &str) -> Value {
        let path = dir.join(name);
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
    }

    /// The temp dir holding `root()` and `out()`.
    pub fn temp(&self) -> &Path {
        self.dir.path()
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap_or_else(|e| panic!("create {}: {e}", dst.display()));
    let entries = fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            copy_tree(&from, &to);
        } else if kind.is_symlink() {
            let target = fs::read_link(&from).expect("read symlink");
            std::os::unix::fs::symlink(target, &to).expect("create symlink");
        } else {
            fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
    }
}

// ------------------------------------------------------- running stackbake

/// Builder for one run of the real `stackbake` binary. `CODEBUILD_*`,
/// `AWS_*` and `STACKBAKE_*` are removed from the inherited environment
/// (set them with [`Sb::env`]); `NO_COLOR=1`; stdin is /dev/null.
pub struct Sb {
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl Default for Sb {
    fn default() -> Self {
        Sb::new()
    }
}

impl Sb {
    /// A run with no arguments yet.
    pub fn new() -> Sb {
        Sb {
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Appends one argument.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Sb {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(mut self, args: I) -> Sb
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the run.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Sb {
        self.env
            .push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Sets several environment variables (e.g. [`Moto::env`]).
    pub fn envs(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Sb {
        for (k, v) in vars {
            self = self.env(k, v);
        }
        self
    }

    /// Removes an inherited environment variable for the run.
    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> Sb {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Working directory of the run (default: the test's).
    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> Sb {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Kill the run and fail the test after `timeout` (default 300 s).
    pub fn timeout(mut self, timeout: Duration) -> Sb {
        self.timeout = timeout;
        self
    }

    /// The command to run (inherited `CODEBUILD_*`, `AWS_*` and
    /// `STACKBAKE_*` removed, `NO_COLOR=1`, the test's env on top) and its
    /// printable form.
    fn command(&self) -> (Command, String) {
        let mut cmd = Command::new(BIN);
        cmd.args(&self.args);
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if ["CODEBUILD_", "AWS_", "STACKBAKE_"]
                .iter()
                .any(|p| k.starts_with(p))
            {
                cmd.env_remove(&key);
            }
        }
        cmd.env("NO_COLOR", "1");
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let command = format!(
            "stackbake {}",
            self.args
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ")
        );
        (cmd, command)
    }

    /// Runs the binary to completion (or the timeout, which panics).
    pub fn run(self) -> Outcome {
        let (mut cmd, command) = self.command();
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let stdout = drain(child.stdout.take());
        let stderr = drain(child.stderr.take());
        let status = loop {
            match child.try_wait().expect("wait for stackbake") {
                Some(status) => break Some(status),
                None if started.elapsed() > self.timeout => {
                    stop(&mut child);
                    break None;
                }
                None => thread::sleep(Duration::from_millis(25)),
            }
        };
        let outcome = Outcome {
            command,
            code: status.and_then(|s| s.code()),
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            elapsed: started.elapsed(),
        };
        assert!(
            status.is_some(),
            "timed out after {:?}:\n{outcome}",
            self.timeout
        );
        outcome
    }
}

fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// What one run of `stackbake` did. `Display` shows all of it, for
/// assertion messages.
pub struct Outcome {
    /// The command line, for messages.
    pub command: String,
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl Outcome {
    /// Panics (showing the whole run) unless the exit code is `code`.
    pub fn assert_code(&self, code: i32) -> &Outcome {
        assert_eq!(self.code, Some(code), "unexpected exit code:\n{self}");
        self
    }

    /// Panics unless the exit code is 0.
    pub fn assert_success(&self) -> &Outcome {
        self.assert_code(0)
    }

    /// stdout parsed as JSON (`--json`).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}):\n{self}"))
    }

    /// Panics unless stderr contains `needle` (case-insensitive).
    pub fn assert_stderr_mentions(&self, needle: &str) -> &Outcome {
        assert!(
            self.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "stderr does not mention {needle:?}:\n{self}"
        );
        self
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.command)?;
        writeln!(f, "exit code: {:?} after {:?}", self.code, self.elapsed)?;
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

// ----------------------------------------------------------------- cleanup

/// Removes, on drop, every local image reference a test caused: repository
/// names under one of `prefixes` (e.g. `127.0.0.1:PORT/`), any reference
/// tagged `tag`, and any other tag of those same images. Never prunes.
pub struct LocalImages {
    prefixes: Vec<String>,
    tag: String,
}

impl LocalImages {
    /// Watches references tagged `tag` (unique to the test).
    pub fn new(tag: &str) -> LocalImages {
        LocalImages {
            prefixes: Vec::new(),
            tag: tag.to_owned(),
        }
    }

    /// Also watches every repository named `HOST:PORT/...`.
    pub fn watch_registry(&mut self, addr: &str) {
        self.prefixes.push(format!("{addr}/"));
    }

    /// The local references this guard would remove now.
    pub fn references(&self) -> Vec<String> {
        let (ok, listing, _) = docker(&[
            "images",
            "--digests",
            "--no-trunc",
            "--format",
            "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}",
        ]);
        if !ok {
            return Vec::new();
        }
        let rows: Vec<Vec<&str>> = listing
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|r| r.len() == 4)
            .collect();
        let ours = |r: &[&str]| {
            r[1] == self.tag || self.prefixes.iter().any(|p| r[0].starts_with(p.as_str()))
        };
        let ids: BTreeSet<&str> = rows.iter().filter(|r| ours(r)).map(|r| r[3]).collect();
        let mut refs = BTreeSet::new();
        for r in rows.iter().filter(|r| ours(r) || ids.contains(r[3])) {
            if r[0] == "<none>" {
                continue;
            }
            if r[1] != "<none>" {
                refs.insert(format!("{}:{}", r[0], r[1]));
            }
            if r[2] != "<none>" {
                refs.insert(format!("{}@{}", r[0], r[2]));
            }
        }
        refs.into_iter().collect()
    }
}

impl Drop for LocalImages {
    fn drop(&mut self) {
        let refs = self.references();
        if !refs.is_empty() {
            let mut args = vec!["rmi"];
            args.extend(refs.iter().map(String::as_str));
            let _ = docker(&args);
        }
    }
}

// ----------------------------------------------------------------- fixture

/// Everything one build test owns. Fields drop in order: local images
/// first, then the project, the registry and last the base image.
pub struct Fixture {
    /// Cleanup of the images this test makes.
    pub images: LocalImages,
    /// The temp copy of the example stack.
    pub project: Project,
    /// The test's own registry, if any.
    pub registry: Option<Registry>,
    /// The base image passed as `--build-arg BASE=`.
    pub base: Option<BaseImage>,
    /// Unique commit tag (`--tag`).
    pub tag: String,
}

impl Fixture {
    /// Fresh base image, fresh anonymous registry, example project.
    pub fn with_registry() -> Fixture {
        Fixture::new(true, true)
    }

    /// Fresh base image, no registry (images only tagged locally).
    pub fn local_only() -> Fixture {
        Fixture::new(false, true)
    }

    /// Inputs only: no registry, no base image (`BASE` names an image that
    /// does not exist), for runs that must stop before building.
    pub fn inputs_only() -> Fixture {
        Fixture::new(false, false)
    }

    fn new(registry: bool, base: bool) -> Fixture {
        require_docker();
        let tag = unique_id();
        let mut images = LocalImages::new(&tag);
        let registry = registry.then(Registry::start);
        if let Some(r) = &registry {
            images.watch_registry(r.addr());
        }
        Fixture {
            images,
            project: Project::example(),
            registry,
            base: base.then(BaseImage::fresh),
            tag,
        }
    }

    /// The registry; panics for fixtures without one.
    pub fn registry(&self) -> &Registry {
        self.registry
            .as_ref()
            .expect("this fixture has no registry")
    }

    /// The `BASE` build arg value.
    pub fn base_ref(&self) -> String {
        match &self.base {
            Some(b) => b.reference().to_owned(),
            None => format!("stackbake-test/busybox:absent-{}", self.tag),
        }
    }

    /// `stackbake build --local --dir ROOT --out OUT --build-arg BASE=…
    /// --tag TAG --progress plain [--registry ADDR]`.
    pub fn build(&self) -> Sb {
        self.build_with(Some(self.project.out()), "plain")
    }

    /// Like [`Fixture::build`] with no `--out` (the `--local` default
    /// `ROOT/stackbake-out`) or another `--progress`.
    pub fn build_with(&self, out: Option<&Path>, progress: &str) -> Sb {
        let mut sb = Sb::new()
            .args(["build", "--local", "--dir"])
            .arg(self.project.root());
        if let Some(out) = out {
            sb = sb.arg("--out").arg(out);
        }
        sb = sb
            .arg("--build-arg")
            .arg(format!("BASE={}", self.base_ref()))
            .args(["--tag", &self.tag, "--progress", progress]);
        if let Some(r) = &self.registry {
            sb = sb.args(["--registry", r.addr()]);
        }
        sb
    }
}

// ------------------------------------------------- ECR and fingerprint additions

impl Fixture {
    /// Fresh base image, fresh registry demanding basic auth `user`/`pass`
    /// (e.g. moto's ECR token), example project.
    pub fn with_auth_registry(user: &str, pass: &str) -> Fixture {
        require_docker();
        let tag = unique_id();
        let mut images = LocalImages::new(&tag);
        let registry = Registry::start_with_auth(user, pass);
        images.watch_registry(registry.addr());
        Fixture {
            images,
            project: Project::example(),
            registry: Some(registry),
            base: Some(BaseImage::fresh()),
            tag,
        }
    }
}

/// Every regular file under `dir` (recursively, symlinks not followed), as
/// absolute paths; empty if `dir` does not exist.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                Ok(kind) if kind.is_file() => found.push(entry.path()),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

// ------------------------------------------------- faults additions: background runs

/// A `stackbake` run started with [`Sb::spawn`]: the test can watch its
/// stderr while it runs, signal it, and then collect its [`Outcome`]. Killed
/// on drop if still running.
pub struct Running {
    child: Child,
    command: String,
    started: Instant,
    stdout: Option<thread::JoinHandle<String>>,
    stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    stderr_reader: Option<thread::JoinHandle<()>>,
}

impl Sb {
    /// Starts the binary in the background with the same environment rules
    /// as [`Sb::run`] (the run's own timeout is not applied: pass a limit to
    /// [`Running::wait`]).
    pub fn spawn(self) -> Running {
        let (mut cmd, command) = self.command();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        let started = Instant::now();
        let stdout = drain(child.stdout.take());
        let stderr: std::sync::Arc<std::sync::Mutex<Vec<u8>>> = std::sync::Arc::default();
        let stderr_reader = child.stderr.take().map(|mut pipe| {
            let sink = stderr.clone();
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match pipe.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => sink
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .extend_from_slice(&buf[..n]),
                    }
                }
            })
        });
        Running {
            child,
            command,
            started,
            stdout: Some(stdout),
            stderr,
            stderr_reader,
        }
    }
}

impl Running {
    /// The process id (for `kill -INT`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Time since the start.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Everything written to stderr so far.
    pub fn stderr_so_far(&self) -> String {
        let bytes = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Waits until stderr satisfies `seen` (true) or the run exits or
    /// `limit` passes (false). Polls every 20 ms.
    pub fn wait_for_stderr(&mut self, limit: Duration, seen: impl Fn(&str) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if seen(&self.stderr_so_far()) {
                return true;
            }
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return seen(&self.stderr_so_far());
            }
            thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Sends `signal` (a `kill` name: `INT`, `TERM`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("cannot run kill");
        assert!(status.success(), "kill -{signal} {} failed", self.pid());
    }

    /// Waits for the exit (killing the run and panicking after `limit`).
    pub fn wait(mut self, limit: Duration) -> Outcome {
        let status = loop {
            match self.child.try_wait().expect("wait for stackbake") {
                Some(status) => break Some(status),
                None if self.started.elapsed() > limit => {
                    stop(&mut self.child);
                    break None;
                }
                None => thread::sleep(Duration::from_millis(25)),
            }
        };
        if let Some(t) = self.stderr_reader.take() {
            let _ = t.join();
        }
        let outcome = Outcome {
            command: self.command.clone(),
            code: status.and_then(|s| s.code()),
            stdout: self
                .stdout
                .take()
                .and_then(|t| t.join().ok())
                .unwrap_or_default(),
            stderr: self.stderr_so_far(),
            elapsed: self.started.elapsed(),
        };
        assert!(status.is_some(), "timed out after {limit:?}:\n{outcome}");
        outcome
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            stop(&mut self.child);
        }
    }
}

/// Whether `s` is `sha256:<64 hex>`.
pub fn is_sha256(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The report entry of `container`.
pub fn report_target<'a>(report: &'a Value, container: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["container"] == container))
        .unwrap_or_else(|| panic!("no report target for {container}: {report:#}"))
}

// ------------------------------------------- BuildKit additions: the Docker 26 side engine

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
pub struct Engine26 {
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
    pub fn shared() -> Engine26 {
        Engine26::open(false)
    }

    /// The engine alone, freshly wiped (as every CodeBuild build starts).
    pub fn fresh() -> Engine26 {
        let e = Engine26::open(true);
        e.wipe();
        e
    }

    /// Wipes the engine's data root (only for an engine held alone).
    pub fn wipe(&self) {
        docker26_script(&["wipe"]);
    }

    /// `unix:///…`, for `DOCKER_HOST`.
    pub fn host(&self) -> &str {
        &self.host
    }
}

/// The side engine's own docker CLI; returns (success, stdout, stderr).
pub fn docker26(args: &[&str]) -> (bool, String, String) {
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
pub fn registry_base(registry: &Registry) -> String {
    let reference = format!("{}/stackbake-base/busybox:1", registry.addr());
    docker_ok(&["tag", "stackbake-test/busybox:latest", &reference]);
    let (ok, _, err) = docker(&["push", &reference]);
    let _ = docker(&["rmi", &reference]);
    assert!(ok, "push of the test base to {reference} failed:\n{err}");
    reference
}

/// Removes, on drop, the side engine's images named under `prefix`
/// (`127.0.0.1:PORT/`).
pub struct Images26 {
    prefix: String,
}

impl Images26 {
    /// Watches the images of `registry`.
    pub fn of(registry: &Registry) -> Images26 {
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
    pub fn registry_only() -> Fixture {
        Fixture::new(true, false)
    }

    /// `stackbake build --local --registry ADDR` of the project on `docker_host`,
    /// into `out`, with `--build-arg BASE=base`, `--tag tag`, `--progress plain`.
    pub fn build_on(&self, docker_host: &str, base: &str, tag: &str, out: &Path) -> Sb {
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
pub fn assert_secret_nowhere(
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
    pub fn without_cache_mount(&self) {
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
pub fn push_unusable_cache(registry: &Registry, repo: &str, tag: &str) {
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

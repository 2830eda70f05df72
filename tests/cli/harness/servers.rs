//! Servers a test owns, on 127.0.0.1: a throw-away `docker-registry`
//! ([`Registry`]) with independent reads (curl) and writes (raw HTTP, never
//! the client under test), a `moto_server` ([`Moto`]), and a scripted
//! in-process HTTP server ([`FakeServer`]) for failure modes no real server
//! shows. Each is stopped when its guard drops, also when the test panics.
//!
//! One implementation for both suites: the `cli` integration tests and the
//! library's unit tests (`src/testing.rs` includes this file with `#[path]`).
//! So it uses only std and crates the package depends on, never the
//! library's own code, and its items are `pub(crate)`.

// Each suite uses a different subset of these helpers.
#![allow(dead_code)]

// The scripted HTTP server, its own file; `#[path]` so that both suites
// find it next to this one.
#[path = "fake_server.rs"]
mod fake_server;
// Unused by the `cli` suite, like the server itself (see above).
#[allow(unused_imports)]
pub(crate) use fake_server::*;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use tempfile::TempDir;

/// moto's ECR registry user (GetAuthorizationToken).
pub(crate) const ECR_USER: &str = "AWS";
/// moto's ECR registry password: a registry started with
/// [`Registry::start_with_auth`]`(ECR_USER, ECR_PASSWORD)` accepts moto's token.
pub(crate) const ECR_PASSWORD: &str = "123456789012-auth-token";

/// A TCP port on 127.0.0.1 that nothing listened on a moment ago. Also the
/// way to get a closed port for "registry unreachable" tests.
pub(crate) fn free_port() -> u16 {
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

/// Kills and reaps `child`.
pub(super) fn stop(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

// ---------------------------------------------------------------- registry

/// A `docker-registry serve` (distribution 2.8) on 127.0.0.1, with its
/// storage in a temp dir; killed on drop.
pub(crate) struct Registry {
    child: Child,
    addr: String,
    credentials: Option<(String, String)>,
    dir: TempDir,
}

impl Registry {
    /// An anonymous registry.
    pub(crate) fn start() -> Registry {
        Registry::launch(None)
    }

    /// A registry that demands basic auth `user`/`pass` (htpasswd, bcrypt).
    pub(crate) fn start_with_auth(user: &str, pass: &str) -> Registry {
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
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// The basic-auth user and password, for `start_with_auth` registries.
    pub(crate) fn credentials(&self) -> Option<(&str, &str)> {
        self.credentials
            .as_ref()
            .map(|(u, p)| (u.as_str(), p.as_str()))
    }

    /// The registry's log so far (for assertion messages).
    pub(crate) fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// Digest of `repo:reference` read with curl, using this registry's credentials.
    pub(crate) fn digest(&self, repo: &str, reference: &str) -> Option<String> {
        registry_digest(&self.addr, repo, reference, self.credentials())
    }

    /// Tags of `repo` read with curl, using this registry's credentials.
    pub(crate) fn tags(&self, repo: &str) -> Vec<String> {
        registry_tags(&self.addr, repo, self.credentials())
    }

    /// Pushes a tiny one-layer image (schema 2 manifest, empty labels) as
    /// `repo:tag` with raw HTTP requests (monolithic blob uploads, manifest
    /// PUT), using this registry's credentials; returns the manifest's
    /// digest and its exact bytes.
    pub(crate) async fn push_image(&self, repo: &str, tag: &str) -> (String, Vec<u8>) {
        self.push_labelled_image(repo, tag, &[]).await
    }

    /// [`Registry::push_image`] with these config labels.
    pub(crate) async fn push_labelled_image(
        &self,
        repo: &str,
        tag: &str,
        labels: &[(&str, &str)],
    ) -> (String, Vec<u8>) {
        let labels: std::collections::BTreeMap<&str, &str> = labels.iter().copied().collect();
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux",
            "config": {"Labels": labels},
            "rootfs": {"type": "layers", "diff_ids": []},
        }))
        .expect("config json");
        let layer = format!("layer of {repo}:{tag}").into_bytes();
        let config_digest = self.upload_blob(repo, &config).await;
        let layer_digest = self.upload_blob(repo, &layer).await;
        let manifest = serde_json::to_vec_pretty(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                       "size": config.len(), "digest": config_digest},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                        "size": layer.len(), "digest": layer_digest}],
        }))
        .expect("manifest json");
        let resp = self
            .raw(reqwest::Method::PUT, &format!("/v2/{repo}/manifests/{tag}"))
            .header(
                "content-type",
                "application/vnd.docker.distribution.manifest.v2+json",
            )
            .body(manifest.clone())
            .send()
            .await
            .expect("put manifest");
        assert_eq!(resp.status().as_u16(), 201, "put manifest");
        (sha256(&manifest), manifest)
    }

    /// Uploads one blob with the monolithic upload API; returns its digest.
    pub(crate) async fn upload_blob(&self, repo: &str, data: &[u8]) -> String {
        let digest = sha256(data);
        let resp = self
            .raw(reqwest::Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .send()
            .await
            .expect("start upload");
        assert_eq!(resp.status().as_u16(), 202, "start upload");
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .expect("upload Location")
            .to_owned();
        let mut url = if location.starts_with("http") {
            location
        } else {
            format!("http://{}{location}", self.addr)
        };
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&format!("digest={digest}"));
        let mut put = reqwest::Client::new().put(url);
        if let Some((user, pass)) = self.credentials() {
            put = put.basic_auth(user, Some(pass));
        }
        let resp = put
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("finish upload");
        assert_eq!(resp.status().as_u16(), 201, "finish upload");
        digest
    }

    /// A raw request to `path` on this registry, with its credentials.
    fn raw(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let rb = reqwest::Client::new().request(method, format!("http://{}{path}", self.addr));
        match self.credentials() {
            Some((user, pass)) => rb.basic_auth(user, Some(pass)),
            None => rb,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// `sha256:<hex>` of `bytes`.
pub(crate) fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

pub(crate) fn curl(args: &[&str]) -> String {
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

/// `Docker-Content-Digest` of `repo:reference` on the registry at `addr`
/// (HEAD with the schema 2 / OCI Accept types), or None if it has no such
/// manifest (404); panics on any other answer but 200.
fn registry_digest(
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
    match status {
        "200" => {}
        "404" => return None,
        _ => panic!("HEAD {url} answered {status}:\n{head}"),
    }
    head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("docker-content-digest")
            .then(|| value.trim().to_owned())
    })
}

/// Tags of `repo` on the registry at `addr` (empty if the repo is unknown).
fn registry_tags(addr: &str, repo: &str, credentials: Option<(&str, &str)>) -> Vec<String> {
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
pub(crate) struct Moto {
    child: Child,
    endpoint: String,
    _dir: TempDir,
}

impl Moto {
    /// Starts moto and waits until it answers.
    pub(crate) fn start() -> Moto {
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
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Environment pointing the AWS SDK at this moto: [`aws_env`] of its
    /// endpoint.
    pub(crate) fn env(&self) -> Vec<(String, String)> {
        aws_env(&self.endpoint)
    }

    /// Wipes moto's state (`POST /moto-api/reset`).
    pub(crate) fn reset(&self) {
        curl(&["-X", "POST", &format!("{}/moto-api/reset", self.endpoint)]);
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// Environment pointing the AWS SDK at `endpoint`: `AWS_ENDPOINT_URL`,
/// dummy keys, `AWS_REGION=us-east-2`.
pub(crate) fn aws_env(endpoint: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-2"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

//! Test support: real servers on loopback (Debian's `docker-registry`,
//! `moto_server`), killed on drop; a tiny scripted HTTP server for failure
//! modes; raw registry helpers (blob upload, manifest put, HEAD) that do not
//! use the client under test.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const USER: &str = "AWS";
pub const PASSWORD: &str = "123456789012-auth-token";
pub const LABEL: &str = "stackbake.fingerprint";

/// A child server process and its temp dir; killed and reaped on drop.
pub struct ServerGuard {
    child: Child,
    _dir: tempfile::TempDir,
    pub port: u16,
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not listen on port {port} within 20 s");
}

/// Starts `docker-registry` on a free loopback port, with htpasswd auth
/// (user `AWS`, password `123456789012-auth-token`) when `auth`.
pub fn start_registry(auth: bool) -> ServerGuard {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
        dir.path().join("data").display()
    );
    if auth {
        let out = Command::new("htpasswd")
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("run htpasswd");
        assert!(out.status.success(), "htpasswd failed");
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, &out.stdout).expect("write htpasswd");
        config.push_str(&format!(
            "auth:\n  htpasswd:\n    realm: test\n    path: {}\n",
            path.display()
        ));
    }
    let cfg_path = dir.path().join("config.yml");
    std::fs::write(&cfg_path, config).expect("write config");
    let mut child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    wait_for_port(port, &mut child, "docker-registry");
    ServerGuard {
        child,
        _dir: dir,
        port,
    }
}

/// Starts `moto_server` on a free loopback port.
pub fn start_moto() -> ServerGuard {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start moto_server");
    wait_for_port(port, &mut child, "moto_server");
    ServerGuard {
        child,
        _dir: dir,
        port,
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

fn raw_client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("reqwest client")
}

fn with_auth(rb: reqwest::RequestBuilder, auth: bool) -> reqwest::RequestBuilder {
    if auth {
        rb.basic_auth(USER, Some(PASSWORD))
    } else {
        rb
    }
}

/// Uploads one blob with the monolithic upload API; returns its digest.
pub async fn upload_blob(host: &str, auth: bool, repo: &str, data: &[u8]) -> String {
    let http = raw_client();
    let digest = sha256(data);
    let resp = with_auth(
        http.post(format!("http://{host}/v2/{repo}/blobs/uploads/")),
        auth,
    )
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
        format!("http://{host}{location}")
    };
    url.push(if url.contains('?') { '&' } else { '?' });
    url.push_str(&format!("digest={digest}"));
    let resp = with_auth(http.put(url), auth)
        .header("content-type", "application/octet-stream")
        .body(data.to_vec())
        .send()
        .await
        .expect("finish upload");
    assert_eq!(resp.status().as_u16(), 201, "finish upload");
    digest
}

/// The manifest bytes of a tiny one-layer image (config with `labels`).
pub async fn push_image(
    host: &str,
    auth: bool,
    repo: &str,
    tag: &str,
    labels: &[(&str, &str)],
) -> (String, Vec<u8>) {
    let labels: HashMap<&str, &str> = labels.iter().copied().collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "config": {"Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": []},
    }))
    .expect("config json");
    let layer = format!("layer of {repo}:{tag}").into_bytes();
    let config_digest = upload_blob(host, auth, repo, &config).await;
    let layer_digest = upload_blob(host, auth, repo, &layer).await;
    let manifest = serde_json::to_vec_pretty(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": config.len(), "digest": config_digest},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": layer.len(), "digest": layer_digest}],
    }))
    .expect("manifest json");
    let resp = with_auth(
        raw_client().put(format!("http://{host}/v2/{repo}/manifests/{tag}")),
        auth,
    )
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

/// `Docker-Content-Digest` of a raw HEAD, independent of the client.
pub async fn raw_head_digest(
    host: &str,
    auth: bool,
    repo: &str,
    reference: &str,
) -> Option<String> {
    let resp = with_auth(
        raw_client().head(format!("http://{host}/v2/{repo}/manifests/{reference}")),
        auth,
    )
    .header(
        "accept",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
    .send()
    .await
    .expect("raw HEAD");
    if resp.status().as_u16() == 404 {
        return None;
    }
    assert!(resp.status().is_success(), "raw HEAD: {}", resp.status());
    resp.headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// A request as the scripted server saw it.
#[derive(Debug, Clone)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
}

/// A scripted reply.
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn new(status: u16) -> Self {
        Reply {
            status,
            headers: vec![],
            body: vec![],
        }
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_owned(), v.to_owned()));
        self
    }
    pub fn body(mut self, b: impl Into<Vec<u8>>) -> Self {
        self.body = b.into();
        self
    }
}

type Handler = dyn Fn(&SeenRequest) -> Reply + Send + Sync;

/// A tiny HTTP/1.1 server on loopback answering from a closure; it records
/// every request and stops when dropped.
pub struct FakeServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    pub async fn start(handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static) -> Self {
        Self::start_on(0, handler).await
    }

    /// Like `start`, on a given port (0: any).
    pub async fn start_on(
        port: u16,
        handler: impl Fn(&SeenRequest) -> Reply + Send + Sync + 'static,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("bind fake server");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let handler = handler.clone();
                let seen = seen2.clone();
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let head_end = loop {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let mut lines = head.split("\r\n");
                    let mut first = lines.next().unwrap_or("").split(' ');
                    let method = first.next().unwrap_or("").to_owned();
                    let path = first.next().unwrap_or("").to_owned();
                    let headers: HashMap<String, String> = lines
                        .filter_map(|l| l.split_once(':'))
                        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .collect();
                    let len: usize = headers
                        .get("content-length")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match sock.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let req = SeenRequest {
                        method: method.clone(),
                        path,
                        headers,
                    };
                    seen.lock().expect("lock").push(req.clone());
                    let reply = handler(&req);
                    let mut out = Vec::new();
                    let _ = write!(out, "HTTP/1.1 {} X\r\nConnection: close\r\n", reply.status);
                    for (k, v) in &reply.headers {
                        let _ = write!(out, "{k}: {v}\r\n");
                    }
                    let _ = write!(out, "Content-Length: {}\r\n\r\n", reply.body.len());
                    if method != "HEAD" {
                        out.extend_from_slice(&reply.body);
                    }
                    let _ = sock.write_all(&out).await;
                    let _ = sock.shutdown().await;
                });
            }
        });
        FakeServer { addr, seen, task }
    }

    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn requests(&self) -> Vec<SeenRequest> {
        self.seen.lock().expect("lock").clone()
    }
}

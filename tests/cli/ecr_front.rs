//! An HTTP front that makes a test `docker-registry` behave as ECR does, for
//! the tests of ECR's real rules: in a repository whose tags are immutable
//! (all, or all but some wildcards), a PUT of an existing tag is refused
//! with ECR's HTTP 400 `TAG_INVALID`; with a tag limit, the (N+1)th tag on
//! one image is refused with ECR's HTTP 403. It counts the PUTs that tried
//! to overwrite an immutable tag, and records every request (method and
//! path), so a test can tell which ECR actions a build needed.
//!
//! [`AwsRecorder`] sits in front of moto the same way and records the AWS
//! API operations (`X-Amz-Target`, or `Action=` of the query protocol).
//!
//! Both handle one request per connection (they answer `Connection:
//! close`), so every request is seen, also from clients that keep
//! connections alive (the Docker engine). Only std threads.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use sha2::{Digest as _, Sha256};

/// One HTTP request as read from a client, body de-chunked.
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request as sent upstream: `Connection: close`, body by length.
    fn to_upstream(&self) -> Vec<u8> {
        let mut out = format!("{} {} HTTP/1.1\r\n", self.method, self.path).into_bytes();
        for (k, v) in &self.headers {
            let skip = [
                "connection",
                "transfer-encoding",
                "content-length",
                "keep-alive",
            ];
            if !skip.iter().any(|s| k.eq_ignore_ascii_case(s)) {
                out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
            }
        }
        out.extend_from_slice(
            format!(
                "Content-Length: {}\r\nConnection: close\r\n\r\n",
                self.body.len()
            )
            .as_bytes(),
        );
        out.extend_from_slice(&self.body);
        out
    }
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut req = Request {
        method,
        path,
        headers,
        body: Vec::new(),
    };
    if req
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            if n == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut t = String::new();
                    reader.read_line(&mut t).ok()?;
                    if t.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk).ok()?;
            req.body.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = req.header("content-length").and_then(|n| n.parse().ok()) {
        req.body = vec![0; n];
        reader.read_exact(&mut req.body).ok()?;
    }
    Some(req)
}

/// Sends `req` upstream and relays the answer, with `Connection: close`;
/// returns the status.
fn relay(req: &Request, upstream: &str, client: &mut TcpStream) -> Option<u16> {
    let mut up = TcpStream::connect(upstream).ok()?;
    up.set_read_timeout(Some(Duration::from_secs(120))).ok()?;
    up.write_all(&req.to_upstream()).ok()?;
    let mut reader = BufReader::new(up);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).ok()?;
    let status = status_line.split_whitespace().nth(1)?.parse().ok()?;
    let mut head = status_line.clone();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        if h.trim().is_empty() {
            break;
        }
        if !h.to_ascii_lowercase().starts_with("connection:") {
            head.push_str(&h);
        }
    }
    head.push_str("Connection: close\r\n\r\n");
    client.write_all(head.as_bytes()).ok()?;
    std::io::copy(&mut reader, client).ok()?;
    Some(status)
}

fn answer(client: &mut TcpStream, status: &str, body: &str) {
    let _ = client.write_all(
        format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
}

/// Accepts connections until `stop`, handling each on its own thread.
fn serve(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    handle: Arc<dyn Fn(Request, TcpStream) + Send + Sync>,
) {
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let handle = handle.clone();
                    thread::spawn(move || {
                        let _ = stream.set_nonblocking(false);
                        let Ok(clone) = stream.try_clone() else {
                            return;
                        };
                        let mut reader = BufReader::new(clone);
                        if let Some(req) = read_request(&mut reader) {
                            handle(req, stream);
                        }
                    });
                }
                Err(_) => thread::sleep(Duration::from_millis(5)),
            }
        }
    });
}

#[derive(Default)]
struct FrontState {
    upstream: String,
    /// repository → tags excluded from immutability (None: mutable).
    immutable: Mutex<BTreeMap<String, Vec<String>>>,
    tag_limit: Mutex<Option<usize>>,
    /// (repository, digest) → its tags, as PUT through this front.
    tags: Mutex<BTreeMap<(String, String), BTreeSet<String>>>,
    overwrites: AtomicUsize,
    limit_refusals: AtomicUsize,
    requests: Mutex<Vec<(String, String)>>,
}

/// ECR's rules in front of a registry.
pub(crate) struct EcrFront {
    addr: String,
    state: Arc<FrontState>,
    stop: Arc<AtomicBool>,
}

/// ECR's wildcard: `*` matches any run of characters.
fn wildcard(pattern: &str, tag: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == tag,
        Some((head, rest)) => {
            let Some(tail) = tag.strip_prefix(head) else {
                return false;
            };
            (0..=tail.len()).any(|i| tail.is_char_boundary(i) && wildcard(rest, &tail[i..]))
        }
    }
}

impl EcrFront {
    /// A front on a free loopback port for the registry at `upstream`.
    pub(crate) fn start(upstream: &str) -> EcrFront {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the ECR front");
        let addr = listener.local_addr().expect("front address").to_string();
        let state = Arc::new(FrontState {
            upstream: upstream.to_string(),
            ..FrontState::default()
        });
        let stop = Arc::new(AtomicBool::new(false));
        let s = state.clone();
        serve(
            listener,
            stop.clone(),
            Arc::new(move |req, client| handle(&s, req, client)),
        );
        EcrFront { addr, state, stop }
    }

    /// `127.0.0.1:PORT`, for `--registry`.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// `repo`'s tags are immutable, except those matching `except`.
    pub(crate) fn immutable(&self, repo: &str, except: &[&str]) {
        self.state.immutable.lock().expect("state").insert(
            repo.to_string(),
            except.iter().map(|s| (*s).to_string()).collect(),
        );
    }

    /// At most `n` tags per image from now on.
    pub(crate) fn limit_tags(&self, n: usize) {
        *self.state.tag_limit.lock().expect("state") = Some(n);
    }

    /// PUTs that tried to overwrite an immutable tag.
    pub(crate) fn overwrite_attempts(&self) -> usize {
        self.state.overwrites.load(Ordering::SeqCst)
    }

    /// Tags refused for the tag limit.
    pub(crate) fn limit_refusals(&self) -> usize {
        self.state.limit_refusals.load(Ordering::SeqCst)
    }

    /// Every request seen: (method, path without query).
    pub(crate) fn requests(&self) -> Vec<(String, String)> {
        self.state.requests.lock().expect("state").clone()
    }
}

impl Drop for EcrFront {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// `(repository, tag)` of a `PUT /v2/<repo>/manifests/<tag>`.
fn manifest_put(req: &Request) -> Option<(String, String)> {
    if req.method != "PUT" {
        return None;
    }
    let rest = req.path.strip_prefix("/v2/")?;
    let (repo, reference) = rest.rsplit_once("/manifests/")?;
    (!reference.contains(':')).then(|| (repo.to_string(), reference.to_string()))
}

/// The digest `repo:tag` names upstream, asked with the client's credentials.
fn upstream_digest(state: &FrontState, req: &Request, repo: &str, tag: &str) -> Option<String> {
    let mut up = TcpStream::connect(&state.upstream).ok()?;
    let mut head = format!(
        "HEAD /v2/{repo}/manifests/{tag} HTTP/1.1\r\nHost: {}\r\nAccept: application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json\r\nConnection: close\r\n",
        state.upstream
    );
    if let Some(auth) = req.header("authorization") {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    up.write_all(head.as_bytes()).ok()?;
    let mut text = String::new();
    up.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?;
    if status != "200" {
        return None;
    }
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("docker-content-digest")
            .then(|| v.trim().to_string())
    })
}

fn handle(state: &FrontState, req: Request, mut client: TcpStream) {
    let path = req.path.split('?').next().unwrap_or_default().to_string();
    state
        .requests
        .lock()
        .expect("state")
        .push((req.method.clone(), path));
    if let Some((repo, tag)) = manifest_put(&req) {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&req.body)));
        let existing = upstream_digest(state, &req, &repo, &tag);
        let fixed = state
            .immutable
            .lock()
            .expect("state")
            .get(&repo)
            .is_some_and(|except| !except.iter().any(|p| wildcard(p, &tag)));
        if fixed && existing.is_some() {
            state.overwrites.fetch_add(1, Ordering::SeqCst);
            answer(
                &mut client,
                "400 Bad Request",
                &format!(
                    r#"{{"errors":[{{"code":"TAG_INVALID","message":"The image tag '{tag}' already exists in the '{repo}' repository and cannot be overwritten because the repository is immutable."}}]}}"#
                ),
            );
            return;
        }
        let limit = *state.tag_limit.lock().expect("state");
        let key = (repo.clone(), digest.clone());
        let count = state
            .tags
            .lock()
            .expect("state")
            .get(&key)
            .map_or(0, |t| t.len() - usize::from(t.contains(&tag)));
        if existing.as_deref() != Some(digest.as_str()) && limit.is_some_and(|n| count >= n) {
            state.limit_refusals.fetch_add(1, Ordering::SeqCst);
            answer(
                &mut client,
                "403 Forbidden",
                &format!(
                    r#"{{"errors":[{{"code":"DENIED","message":"Adding tag '{tag}' to an image in the repository with name '{repo}' in registry with id '123456789012' exceeds the maximum allowed number of tags per image which is '{}'"}}]}}"#,
                    limit.unwrap_or_default()
                ),
            );
            return;
        }
        if relay(&req, &state.upstream, &mut client) == Some(201) {
            let mut tags = state.tags.lock().expect("state");
            for ((r, _), set) in tags.iter_mut() {
                if *r == repo {
                    set.remove(&tag);
                }
            }
            tags.entry(key).or_default().insert(tag);
        }
    } else {
        relay(&req, &state.upstream, &mut client);
    }
    let _ = client.shutdown(Shutdown::Both);
}

/// Records the AWS API operations a run calls, in front of moto.
pub(crate) struct AwsRecorder {
    endpoint: String,
    calls: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
}

impl AwsRecorder {
    /// A recorder on a free loopback port for moto at `upstream` (`http://HOST:PORT`).
    pub(crate) fn start(upstream: &str) -> AwsRecorder {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the AWS recorder");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let calls: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let upstream = upstream.trim_start_matches("http://").to_string();
        let c = calls.clone();
        serve(
            listener,
            stop.clone(),
            Arc::new(move |req: Request, mut client: TcpStream| {
                let op = match req.header("x-amz-target") {
                    // `AmazonEC2ContainerRegistry_V20150921.DescribeRepositories`
                    Some(t) => format!("ecr:{}", t.rsplit('.').next().unwrap_or(t)),
                    None => String::from_utf8_lossy(&req.body)
                        .split('&')
                        .find_map(|kv| kv.strip_prefix("Action="))
                        .map_or_else(|| "unknown".to_string(), |a| format!("sts:{a}")),
                };
                c.lock().expect("calls").push(op);
                relay(&req, &upstream, &mut client);
                let _ = client.shutdown(Shutdown::Both);
            }),
        );
        AwsRecorder {
            endpoint,
            calls,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT`, for `AWS_ENDPOINT_URL`.
    pub(crate) fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The operations called so far (`ecr:GetAuthorizationToken`, `sts:GetCallerIdentity`).
    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.lock().expect("calls").clone()
    }
}

impl Drop for AwsRecorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[test]
fn wildcards_match_like_ecr() {
    assert!(wildcard("latest", "latest"));
    assert!(!wildcard("latest", "latest1"));
    assert!(wildcard("dev-*", "dev-1"));
    assert!(wildcard("*", "x"));
    assert!(!wildcard("a*c", "ab"));
}

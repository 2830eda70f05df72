//! One request to the registry, sent with the client's retry policy
//! (transient failures and 5xx/429 retried, `Retry-After` honoured), with
//! Basic or Bearer authentication, and its reply mapped to an error when
//! the status is not the one expected.

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};

use super::auth::parse_bearer_challenge;
use super::{Client, RegistryError};
use crate::registry::retry::{self, Attempt};
use crate::registry::secret::Secret;

#[derive(Clone)]
pub(super) enum Auth {
    None,
    Basic,
    Bearer(Secret),
}

/// One request to the registry (the URL is `base + path`).
pub(super) struct Req<'a> {
    pub(super) method: Method,
    pub(super) path: String,
    pub(super) accept: &'static str,
    pub(super) content_type: Option<&'a str>,
    pub(super) body: Option<Bytes>,
    /// Token scope key: `""` for `/v2/`, else `repository:<repo>:<actions>`.
    pub(super) scope: String,
    pub(super) repo: &'a str,
}

impl<'a> Req<'a> {
    /// A read (`GET`/`HEAD`, no body) of `path` in `repo`, under its pull scope.
    pub(super) fn pull(method: Method, repo: &'a str, path: String, accept: &'static str) -> Self {
        Req {
            method,
            path,
            accept,
            content_type: None,
            body: None,
            scope: format!("repository:{repo}:pull"),
            repo,
        }
    }
}

pub(super) struct Reply {
    pub(super) status: u16,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) attempts: u32,
}

impl Client {
    /// Maps a reply with an unexpected status to an error.
    pub(super) fn unexpected(&self, req: &Req<'_>, reply: &Reply) -> RegistryError {
        let host = self.inner.host.clone();
        if let Some(e) = tag_refusal(&host, req, reply) {
            return e;
        }
        match reply.status {
            401 => RegistryError::Unauthorized {
                host,
                anonymous: self.inner.creds.is_none(),
            },
            403 => RegistryError::Denied {
                host,
                repo: if req.repo.is_empty() {
                    "(registry)".to_owned()
                } else {
                    req.repo.to_owned()
                },
                action: if req.method == Method::PUT {
                    "push"
                } else {
                    "pull"
                },
            },
            s if retry::is_retryable_status(s) => RegistryError::Unavailable {
                host,
                method: req.method.to_string(),
                path: req.path.clone(),
                status: s,
                attempts: reply.attempts,
                detail: error_body_detail(&reply.body),
            },
            s => RegistryError::Status {
                host,
                method: req.method.to_string(),
                path: req.path.clone(),
                status: s,
                detail: error_body_detail(&reply.body),
            },
        }
    }

    /// Sends `req` with the best auth we have; on a 401 with a Bearer
    /// challenge, gets a token for the scope and retries once with it.
    pub(super) async fn call(&self, req: &Req<'_>) -> Result<Reply, RegistryError> {
        let url = format!("{}{}", self.inner.base, req.path);
        let auth = match self.cached_token(&req.scope) {
            Some(t) => Auth::Bearer(t),
            None if self.inner.creds.is_some() => Auth::Basic,
            None => Auth::None,
        };
        let reply = self.execute(req, &url, &auth).await?;
        if reply.status != 401 {
            return Ok(reply);
        }
        let challenge = reply
            .headers
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(parse_bearer_challenge);
        let Some(challenge) = challenge else {
            return Ok(reply);
        };
        let token = self.fetch_token(&challenge, &req.scope).await?;
        self.store_token(&req.scope, token.clone());
        self.execute(req, &url, &Auth::Bearer(token.token)).await
    }
    /// Sends one request with retries; buffers the whole body.
    pub(super) async fn execute(
        &self,
        req: &Req<'_>,
        url: &str,
        auth: &Auth,
    ) -> Result<Reply, RegistryError> {
        let inner = &self.inner;
        let (result, attempts) = retry::run(&inner.policy, |_| async {
            let mut rb = inner
                .http
                .request(req.method.clone(), url)
                .timeout(inner.policy.request_timeout)
                .header("accept", req.accept);
            if let Some(ct) = req.content_type {
                rb = rb.header("content-type", ct);
            }
            match (auth, &inner.creds) {
                (Auth::Bearer(t), _) => rb = rb.bearer_auth(t.expose()),
                (Auth::Basic, Some(c)) => {
                    rb = rb.basic_auth(&c.username, Some(c.password.expose()));
                }
                _ => {}
            }
            if let Some(body) = &req.body {
                rb = rb.body(body.clone());
            }
            let resp = match rb.send().await {
                Ok(r) => r,
                Err(e) if e.is_builder() || e.is_redirect() => return Attempt::Done(Err(e)),
                Err(e) => {
                    return Attempt::Retry {
                        last: Err(e),
                        after: None,
                    };
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    return Attempt::Retry {
                        last: Err(e),
                        after: None,
                    };
                }
            };
            let reply = (status, headers, body);
            if retry::is_retryable_status(status) {
                let after = header_str(&reply.1, "retry-after").and_then(retry::parse_retry_after);
                Attempt::Retry {
                    last: Ok(reply),
                    after,
                }
            } else {
                Attempt::Done(Ok(reply))
            }
        })
        .await;
        match result {
            Ok((status, headers, body)) => Ok(Reply {
                status,
                headers,
                body,
                attempts,
            }),
            Err(e) => Err(RegistryError::Unreachable {
                host: url_host(url).unwrap_or_else(|| inner.host.clone()),
                attempts,
                detail: error_chain(&e),
            }),
        }
    }
}

/// ECR's two refusals of a tag PUT, as their own errors: an existing tag
/// in an immutable repository (400 `TAG_INVALID`) and one tag too many on an
/// image (403, "maximum allowed number of tags").
fn tag_refusal(host: &str, req: &Req<'_>, reply: &Reply) -> Option<RegistryError> {
    if req.method != Method::PUT {
        return None;
    }
    let tag = req.path.rsplit_once("/manifests/")?.1.to_owned();
    let items = error_items(&reply.body).unwrap_or_default();
    let has = |code: &str, words: &str| {
        items.iter().any(|(c, m)| {
            (code.is_empty() || c.as_deref() == Some(code))
                && m.as_deref().is_some_and(|m| m.contains(words))
        })
    };
    let repo = req.repo.to_owned();
    let host = host.to_owned();
    match reply.status {
        400 if has("TAG_INVALID", "already exists") => {
            Some(RegistryError::TagImmutable { host, repo, tag })
        }
        403 if has("", "maximum allowed number of tags") => Some(RegistryError::TagLimit {
            host,
            repo,
            tag,
            detail: error_body_detail(&reply.body),
        }),
        _ => None,
    }
}

/// The `(code, message)` items of a distribution error body, if it is one.
fn error_items(body: &[u8]) -> Option<Vec<(Option<String>, Option<String>)>> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<Item>,
    }
    #[derive(serde::Deserialize)]
    struct Item {
        code: Option<String>,
        message: Option<String>,
    }
    let env: Envelope = serde_json::from_slice(body).ok()?;
    Some(
        env.errors
            .into_iter()
            .map(|e| (e.code, e.message))
            .collect(),
    )
}

pub(super) fn url_host(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// An error and its sources on one line.
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(cause) = src {
        let text = cause.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        src = cause.source();
    }
    s
}

pub(super) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::trim)
}

/// `": CODE: message"` from a distribution error body, or a short excerpt
/// of a non-JSON body, or `""`.
pub(super) fn error_body_detail(body: &[u8]) -> String {
    if let Some(items) = error_items(body) {
        let parts: Vec<String> = items
            .iter()
            .map(|e| match e {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.clone(),
                (None, Some(m)) => m.clone(),
                (None, None) => String::new(),
            })
            .filter(|s| !s.is_empty())
            .collect();
        if !parts.is_empty() {
            return format!(": {}", truncate(&parts.join("; "), 300));
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if text.is_empty() {
        String::new()
    } else {
        format!(": {}", truncate(&text, 200))
    }
}

pub(super) fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

//! A small OCI distribution (v2) registry HTTP client over reqwest: ping,
//! manifest HEAD/GET/PUT, tag copy by exact manifest bytes, tag listing with
//! `Link` pagination, and reading a label from an image's config blob.
//!
//! Authentication: HTTP Basic when credentials are given (ECR and htpasswd
//! registries both accept it); on a `401` carrying a `Bearer` challenge, a
//! token is fetched from the realm (with the Basic credentials, or
//! anonymously), cached per scope and the request is retried once with it.
//! Loopback registries (127.0.0.0/8, `localhost`, `::1`) are spoken to over
//! plain HTTP, all others over HTTPS. Credentials and tokens never appear in
//! errors: this module prints nothing and formats no header values. Hosts,
//! repositories, tags and digests are checked with [`crate::reference`].

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderValue};

use super::retry::{self, Attempt, RetryPolicy};
use super::secret::{Credentials, Secret};
use crate::reference::{Digest, Host, HostError, Reference, Repository, RepositoryError};

/// Docker image manifest, schema 2.
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

const ACCEPT_MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
const USER_AGENT: &str = concat!("stackbake/", env!("CARGO_PKG_VERSION"));
/// Largest tag-list page ECR accepts.
const DEFAULT_TAG_PAGE: usize = 1000;
/// Upper bound on tag-list pages followed, against a registry that loops.
const MAX_TAG_PAGES: usize = 10_000;

/// Errors of the registry client. Messages name the registry, repository and
/// reference involved and say what to do; they never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The `--registry` value is not `HOST[:PORT]`.
    #[error(
        "invalid registry host {host:?}: {source} (e.g. 123456789012.dkr.ecr.us-east-2.amazonaws.com or 127.0.0.1:5000)"
    )]
    InvalidHost {
        /// The value given.
        host: String,
        /// What is wrong with it.
        source: HostError,
    },
    /// A repository name that the distribution spec does not allow.
    #[error("invalid repository name {repo:?} for registry {host}: {source} (e.g. bash-dog-api)")]
    InvalidRepository {
        /// Registry host.
        host: String,
        /// The name given.
        repo: String,
        /// What is wrong with it.
        source: RepositoryError,
    },
    /// A tag or digest that the distribution spec does not allow.
    #[error(
        "invalid reference {reference:?} for {host}/{repo}: expected a tag \
         ([A-Za-z0-9_][A-Za-z0-9._-], at most 128 characters) or a digest \
         (sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex>)"
    )]
    InvalidReference {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// The reference given.
        reference: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("could not set up the HTTP client for registry {host}: {detail}")]
    ClientSetup {
        /// Registry host.
        host: String,
        /// Cause.
        detail: String,
    },
    /// Connection errors or timeouts on every attempt.
    #[error(
        "registry {host} is unreachable after {attempts} attempt(s): {detail}; check the host name and \
         port, the network, and that the registry is running"
    )]
    Unreachable {
        /// Registry host (or token service).
        host: String,
        /// Attempts made.
        attempts: u32,
        /// Transport error chain.
        detail: String,
    },
    /// HTTP 401 after authenticating (or with no credentials to offer).
    #[error("{}", unauthorized_message(host, *anonymous))]
    Unauthorized {
        /// Registry host.
        host: String,
        /// True when no credentials were configured.
        anonymous: bool,
    },
    /// HTTP 403: authenticated, but not allowed.
    #[error(
        "the registry {host} denied {action} on repository {repo}: the credentials lack permission; \
         grant it (for ECR the role needs ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, ecr:PutImage \
         and the layer upload actions on the repository) or use other credentials"
    )]
    Denied {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// `pull` or `push`.
        action: &'static str,
    },
    /// 5xx or 429 on every attempt.
    #[error(
        "registry {host} kept answering HTTP {status} to {method} {path} after {attempts} attempt(s){detail}; \
         the registry is overloaded or failing, try again later"
    )]
    Unavailable {
        /// Registry host.
        host: String,
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// Last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The registry's error message, prefixed with ": ", or empty.
        detail: String,
    },
    /// Any other unexpected status.
    #[error("registry {host} answered HTTP {status} to {method} {path}{detail}")]
    Status {
        /// Registry host.
        host: String,
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// Status.
        status: u16,
        /// The registry's error message, prefixed with ": ", or empty.
        detail: String,
    },
    /// Content whose sha256 does not match the digest it was served under.
    #[error(
        "{what} {repo}@{reference} from registry {host} hashes to {actual} but {expected} was expected; \
         the registry or a proxy altered it, so it is not used"
    )]
    DigestMismatch {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// Tag or digest requested.
        reference: String,
        /// Manifest or blob.
        what: ContentKind,
        /// Digest announced or requested.
        expected: String,
        /// Digest of the bytes received.
        actual: String,
    },
    /// `copy_tag` from a reference that does not exist.
    #[error(
        "no manifest {repo}:{reference} in registry {host}, so there is nothing to copy; push the image first"
    )]
    ManifestMissing {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// Source reference.
        reference: String,
    },
    /// A response that could not be understood.
    #[error("registry {host} sent an unusable response for {what}: {detail}")]
    InvalidResponse {
        /// Registry host.
        host: String,
        /// What was requested.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The bearer-token service refused or failed.
    #[error(
        "could not get a bearer token for registry {host} from {realm}: {detail}; check the credentials \
         and that the token service is reachable"
    )]
    Token {
        /// Registry host.
        host: String,
        /// Token realm URL (no credentials in it).
        realm: String,
        /// What went wrong.
        detail: String,
    },
}

/// What kind of content failed a digest check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// An image manifest or index.
    Manifest,
    /// A blob (image config or layer).
    Blob,
}

impl std::fmt::Display for ContentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContentKind::Manifest => "manifest",
            ContentKind::Blob => "blob",
        })
    }
}

fn unauthorized_message(host: &str, anonymous: bool) -> String {
    if anonymous {
        format!(
            "the registry {host} requires credentials and none were given: for ECR check the AWS \
             credentials and region; for another registry pass --registry-user and set \
             STACKBAKE_REGISTRY_PASSWORD"
        )
    } else {
        format!(
            "the registry {host} refused the credentials (HTTP 401): check the user name and password \
             (for ECR: that the AWS account and region match the registry host and the token is fresh; \
             for another registry: --registry-user and STACKBAKE_REGISTRY_PASSWORD)"
        )
    }
}

/// An image manifest (or index) exactly as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The `Content-Type` it is served and must be put with.
    pub media_type: String,
    /// The exact bytes; its digest is the sha256 of these.
    pub bytes: Bytes,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
}

impl Manifest {
    /// Wraps manifest bytes, computing their sha256 digest.
    pub fn new(media_type: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        Manifest {
            media_type: media_type.into(),
            digest: Digest::sha256_of(&bytes).to_string(),
            bytes,
        }
    }
}

/// A registry HTTP client for one host. Cheap to clone; `Send + Sync`.
#[derive(Clone)]
pub struct Registry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("host", &self.inner.host)
            .field("base", &self.inner.base)
            .field("credentials", &self.inner.creds)
            .finish_non_exhaustive()
    }
}

struct Inner {
    host: String,
    base: String,
    http: reqwest::Client,
    creds: Option<Credentials>,
    policy: RetryPolicy,
    tokens: RwLock<HashMap<String, CachedToken>>,
}

#[derive(Clone)]
struct CachedToken {
    token: Secret,
    expires: Instant,
}

#[derive(Clone)]
enum Auth {
    None,
    Basic,
    Bearer(Secret),
}

/// One request to the registry (the URL is `base + path`).
struct Req<'a> {
    method: Method,
    path: String,
    accept: &'static str,
    content_type: Option<&'a str>,
    body: Option<Bytes>,
    /// Token scope key: `""` for `/v2/`, else `repository:<repo>:<actions>`.
    scope: String,
    repo: &'a str,
}

struct Reply {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    attempts: u32,
}

impl Registry {
    /// A client for `host` (`HOST` or `HOST:PORT`, IPv6 in brackets), with
    /// optional Basic credentials and a retry policy.
    pub fn new(
        host: &str,
        creds: Option<Credentials>,
        opts: RetryPolicy,
    ) -> Result<Self, RegistryError> {
        let parsed = Host::parse(host).map_err(|source| RegistryError::InvalidHost {
            host: host.to_owned(),
            source,
        })?;
        let http = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(opts.request_timeout.min(Duration::from_secs(15)))
            .build()
            .map_err(|e| RegistryError::ClientSetup {
                host: host.to_owned(),
                detail: error_chain(&e),
            })?;
        Ok(Registry {
            inner: Arc::new(Inner {
                host: host.to_owned(),
                base: format!("{}://{}", parsed.scheme(), parsed.authority()),
                http,
                creds,
                policy: opts,
                tokens: RwLock::new(HashMap::new()),
            }),
        })
    }

    /// The registry host as given (`HOST[:PORT]`).
    pub fn host(&self) -> &str {
        &self.inner.host
    }

    /// Checks that the registry answers the v2 API and accepts the
    /// credentials (`GET /v2/`).
    pub async fn ping(&self) -> Result<(), RegistryError> {
        let req = Req {
            method: Method::GET,
            path: "/v2/".to_owned(),
            accept: "application/json",
            content_type: None,
            body: None,
            scope: String::new(),
            repo: "",
        };
        let reply = self.call(&req).await?;
        match reply.status {
            200..=299 => Ok(()),
            _ => Err(self.unexpected(&req, &reply)),
        }
    }

    /// The digest of `repo:reference` (HEAD), or `None` if it does not exist.
    pub async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        self.check_names(repo, reference)?;
        let req = Req {
            method: Method::HEAD,
            path: format!("/v2/{repo}/manifests/{reference}"),
            accept: ACCEPT_MANIFESTS,
            content_type: None,
            body: None,
            scope: format!("repository:{repo}:pull"),
            repo,
        };
        let reply = self.call(&req).await?;
        match reply.status {
            404 => Ok(None),
            200..=299 => match header_str(&reply.headers, "docker-content-digest") {
                Some(d) if Digest::parse(d).is_ok() => Ok(Some(d.to_owned())),
                // No usable digest header: fetch and hash the manifest.
                _ => Ok(self.get_manifest(repo, reference).await?.map(|m| m.digest)),
            },
            _ => Err(self.unexpected(&req, &reply)),
        }
    }

    /// The manifest `repo:reference` with its exact bytes, or `None` if it
    /// does not exist. The bytes are checked against the digest the registry
    /// announces and, for a digest reference, against the reference.
    pub async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        self.check_names(repo, reference)?;
        let req = Req {
            method: Method::GET,
            path: format!("/v2/{repo}/manifests/{reference}"),
            accept: ACCEPT_MANIFESTS,
            content_type: None,
            body: None,
            scope: format!("repository:{repo}:pull"),
            repo,
        };
        let reply = self.call(&req).await?;
        match reply.status {
            404 => return Ok(None),
            200..=299 => {}
            _ => return Err(self.unexpected(&req, &reply)),
        }
        let announced = header_str(&reply.headers, "docker-content-digest").map(str::to_owned);
        let mut expected = vec![];
        if let Ok(Reference::Digest(d)) = Reference::parse(reference) {
            expected.push(d.to_string());
        }
        if let Some(d) = &announced {
            expected.push(d.clone());
        }
        for want in &expected {
            let checked = Digest::parse(want).map(|d| d.verify(&reply.body));
            match checked {
                Ok(Ok(())) => {}
                Ok(Err(mismatch)) => {
                    return Err(RegistryError::DigestMismatch {
                        host: self.inner.host.clone(),
                        repo: repo.to_owned(),
                        reference: reference.to_owned(),
                        what: ContentKind::Manifest,
                        expected: want.clone(),
                        actual: mismatch.actual.to_string(),
                    });
                }
                Err(_) => {
                    return Err(RegistryError::InvalidResponse {
                        host: self.inner.host.clone(),
                        what: format!("manifest {repo}:{reference}"),
                        detail: format!("unsupported or malformed digest {want:?}"),
                    });
                }
            }
        }
        let media_type = header_str(&reply.headers, "content-type")
            .map(|ct| ct.split(';').next().unwrap_or("").trim().to_owned())
            .filter(|ct| !ct.is_empty() && ct != "application/octet-stream")
            .or_else(|| media_type_from_json(&reply.body))
            .ok_or_else(|| RegistryError::InvalidResponse {
                host: self.inner.host.clone(),
                what: format!("manifest {repo}:{reference}"),
                detail: "no Content-Type and no mediaType field".to_owned(),
            })?;
        let digest = match announced {
            Some(d) if d.starts_with("sha256:") => d,
            _ => Digest::sha256_of(&reply.body).to_string(),
        };
        Ok(Some(Manifest {
            media_type,
            bytes: reply.body,
            digest,
        }))
    }

    /// Puts `m`'s exact bytes under `repo:tag` with its media type; returns
    /// the digest, which is the sha256 of the bytes.
    pub async fn put_manifest(
        &self,
        repo: &str,
        tag: &str,
        m: &Manifest,
    ) -> Result<String, RegistryError> {
        self.check_names(repo, tag)?;
        let computed = Digest::sha256_of(&m.bytes).to_string();
        let req = Req {
            method: Method::PUT,
            path: format!("/v2/{repo}/manifests/{tag}"),
            accept: "application/json",
            content_type: Some(&m.media_type),
            body: Some(m.bytes.clone()),
            scope: format!("repository:{repo}:pull,push"),
            repo,
        };
        let reply = self.call(&req).await?;
        if !(200..=299).contains(&reply.status) {
            return Err(self.unexpected(&req, &reply));
        }
        match header_str(&reply.headers, "docker-content-digest") {
            Some(d) if d.starts_with("sha256:") && d != computed => {
                Err(RegistryError::DigestMismatch {
                    host: self.inner.host.clone(),
                    repo: repo.to_owned(),
                    reference: tag.to_owned(),
                    what: ContentKind::Manifest,
                    expected: computed,
                    actual: d.to_owned(),
                })
            }
            _ => Ok(computed),
        }
    }

    /// Points `repo:to_tag` at the manifest of `repo:from_ref` by putting the
    /// exact same bytes with the same media type; returns the digest, which
    /// is unchanged.
    pub async fn copy_tag(
        &self,
        repo: &str,
        from_ref: &str,
        to_tag: &str,
    ) -> Result<String, RegistryError> {
        self.check_names(repo, to_tag)?;
        let m = self.get_manifest(repo, from_ref).await?.ok_or_else(|| {
            RegistryError::ManifestMissing {
                host: self.inner.host.clone(),
                repo: repo.to_owned(),
                reference: from_ref.to_owned(),
            }
        })?;
        let digest = self.put_manifest(repo, to_tag, &m).await?;
        if digest != m.digest {
            return Err(RegistryError::DigestMismatch {
                host: self.inner.host.clone(),
                repo: repo.to_owned(),
                reference: to_tag.to_owned(),
                what: ContentKind::Manifest,
                expected: m.digest,
                actual: digest,
            });
        }
        Ok(digest)
    }

    /// All tags of `repo` (empty if the repository does not exist), following
    /// `Link` pagination.
    pub async fn tags(&self, repo: &str) -> Result<Vec<String>, RegistryError> {
        self.tags_with_page_size(repo, DEFAULT_TAG_PAGE).await
    }

    /// Like [`Registry::tags`], asking for `page_size` tags per page.
    pub async fn tags_with_page_size(
        &self,
        repo: &str,
        page_size: usize,
    ) -> Result<Vec<String>, RegistryError> {
        self.check_repo(repo)?;
        let mut path = format!("/v2/{repo}/tags/list?n={}", page_size.max(1));
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let req = Req {
                method: Method::GET,
                path: path.clone(),
                accept: "application/json",
                content_type: None,
                body: None,
                scope: format!("repository:{repo}:pull"),
                repo,
            };
            let reply = self.call(&req).await?;
            match reply.status {
                404 if tags.is_empty() => return Ok(tags),
                200..=299 => {}
                _ => return Err(self.unexpected(&req, &reply)),
            }
            #[derive(serde::Deserialize)]
            struct TagList {
                tags: Option<Vec<String>>,
            }
            let page: TagList = serde_json::from_slice(&reply.body).map_err(|e| {
                RegistryError::InvalidResponse {
                    host: self.inner.host.clone(),
                    what: format!("tag list of {repo}"),
                    detail: e.to_string(),
                }
            })?;
            tags.extend(page.tags.unwrap_or_default());
            let next = reply
                .headers
                .get_all("link")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(parse_next_link);
            match next {
                None => return Ok(tags),
                Some(url) => {
                    let next_path =
                        link_to_path(&url).ok_or_else(|| RegistryError::InvalidResponse {
                            host: self.inner.host.clone(),
                            what: format!("tag list of {repo}"),
                            detail: format!("unusable Link target {url:?}"),
                        })?;
                    if next_path == path {
                        return Err(RegistryError::InvalidResponse {
                            host: self.inner.host.clone(),
                            what: format!("tag list of {repo}"),
                            detail: "the Link header points at the same page again".to_owned(),
                        });
                    }
                    path = next_path;
                }
            }
        }
        Err(RegistryError::InvalidResponse {
            host: self.inner.host.clone(),
            what: format!("tag list of {repo}"),
            detail: format!("more than {MAX_TAG_PAGES} pages"),
        })
    }

    /// The value of the config label `label` of image `repo:reference`, or
    /// `None` if the image or the label does not exist. For a multi-platform
    /// index, the linux/amd64 image (else the first) is read.
    pub async fn image_label(
        &self,
        repo: &str,
        reference: &str,
        label: &str,
    ) -> Result<Option<String>, RegistryError> {
        let Some(mut m) = self.get_manifest(repo, reference).await? else {
            return Ok(None);
        };
        let what = || format!("manifest {repo}:{reference}");
        let mut json = self.parse_json(&m.bytes, what)?;
        if is_index(&m.media_type, &json) {
            let Some(child) = pick_platform_manifest(&json) else {
                return Ok(None);
            };
            let Some(cm) = self.get_manifest(repo, &child).await? else {
                return Ok(None);
            };
            m = cm;
            json = self.parse_json(&m.bytes, what)?;
        }
        let Some(config) = json
            .get("config")
            .and_then(|c| c.get("digest"))
            .and_then(|d| d.as_str())
        else {
            return Ok(None);
        };
        let blob = self.get_blob(repo, config).await?;
        let cfg = self.parse_json(&blob, || format!("config blob {repo}@{config}"))?;
        Ok(config_label(&cfg, label))
    }

    async fn get_blob(&self, repo: &str, digest: &str) -> Result<Bytes, RegistryError> {
        self.check_names(repo, digest)?;
        let Ok(want) = Digest::parse(digest) else {
            return Err(self.invalid_reference(repo, digest));
        };
        let req = Req {
            method: Method::GET,
            path: format!("/v2/{repo}/blobs/{digest}"),
            accept: "*/*",
            content_type: None,
            body: None,
            scope: format!("repository:{repo}:pull"),
            repo,
        };
        let reply = self.call(&req).await?;
        if !(200..=299).contains(&reply.status) {
            return Err(self.unexpected(&req, &reply));
        }
        match want.verify(&reply.body) {
            Ok(()) => Ok(reply.body),
            Err(mismatch) => Err(RegistryError::DigestMismatch {
                host: self.inner.host.clone(),
                repo: repo.to_owned(),
                reference: digest.to_owned(),
                what: ContentKind::Blob,
                expected: digest.to_owned(),
                actual: mismatch.actual.to_string(),
            }),
        }
    }

    fn parse_json(
        &self,
        bytes: &[u8],
        what: impl Fn() -> String,
    ) -> Result<serde_json::Value, RegistryError> {
        serde_json::from_slice(bytes).map_err(|e| RegistryError::InvalidResponse {
            host: self.inner.host.clone(),
            what: what(),
            detail: format!("not JSON: {e}"),
        })
    }

    fn check_repo(&self, repo: &str) -> Result<(), RegistryError> {
        match Repository::parse(repo) {
            Ok(_) => Ok(()),
            Err(source) => Err(RegistryError::InvalidRepository {
                host: self.inner.host.clone(),
                repo: repo.to_owned(),
                source,
            }),
        }
    }

    fn check_names(&self, repo: &str, reference: &str) -> Result<(), RegistryError> {
        self.check_repo(repo)?;
        if Reference::parse(reference).is_ok() {
            Ok(())
        } else {
            Err(self.invalid_reference(repo, reference))
        }
    }

    fn invalid_reference(&self, repo: &str, reference: &str) -> RegistryError {
        RegistryError::InvalidReference {
            host: self.inner.host.clone(),
            repo: repo.to_owned(),
            reference: reference.chars().take(200).collect(),
        }
    }

    /// Maps a reply with an unexpected status to an error.
    fn unexpected(&self, req: &Req<'_>, reply: &Reply) -> RegistryError {
        let host = self.inner.host.clone();
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
    async fn call(&self, req: &Req<'_>) -> Result<Reply, RegistryError> {
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

    fn cached_token(&self, scope: &str) -> Option<Secret> {
        let map = self.inner.tokens.read().unwrap_or_else(|e| e.into_inner());
        map.get(scope)
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.token.clone())
    }

    fn store_token(&self, scope: &str, token: CachedToken) {
        let mut map = self.inner.tokens.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, t| t.expires > Instant::now());
        map.insert(scope.to_owned(), token);
    }

    /// Gets a token from the challenge's realm, with the Basic credentials
    /// when the realm is HTTPS or loopback (never over plain HTTP to another
    /// host), else anonymously.
    async fn fetch_token(
        &self,
        ch: &BearerChallenge,
        our_scope: &str,
    ) -> Result<CachedToken, RegistryError> {
        let host = &self.inner.host;
        let token_err = |detail: String| RegistryError::Token {
            host: host.clone(),
            realm: ch.realm.clone(),
            detail,
        };
        let mut url = reqwest::Url::parse(&ch.realm)
            .map_err(|e| token_err(format!("the realm is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(token_err("the realm is not an http(s) URL".to_owned()));
        }
        let secure = realm_may_get_credentials(&url);
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = &ch.service {
                q.append_pair("service", service);
            }
            let scope = ch.scope.as_deref().unwrap_or(our_scope);
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
        }
        let auth = if secure && self.inner.creds.is_some() {
            Auth::Basic
        } else {
            Auth::None
        };
        let req = Req {
            method: Method::GET,
            path: String::new(),
            accept: "application/json",
            content_type: None,
            body: None,
            scope: String::new(),
            repo: "",
        };
        let reply = self.execute(&req, url.as_str(), &auth).await?;
        match reply.status {
            200..=299 => {}
            401 | 403 => {
                return Err(RegistryError::Unauthorized {
                    host: host.clone(),
                    anonymous: self.inner.creds.is_none(),
                });
            }
            s => {
                return Err(token_err(format!(
                    "HTTP {s}{}",
                    error_body_detail(&reply.body)
                )));
            }
        }
        let (token, expires_in) = parse_token_response(&reply.body)
            .ok_or_else(|| token_err("the answer holds no token".to_owned()))?;
        let ttl = Duration::from_secs(expires_in.clamp(10, 24 * 3600).saturating_sub(5));
        Ok(CachedToken {
            token,
            expires: Instant::now() + ttl,
        })
    }

    /// Sends one request with retries; buffers the whole body.
    async fn execute(&self, req: &Req<'_>, url: &str, auth: &Auth) -> Result<Reply, RegistryError> {
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

fn url_host(url: &str) -> Option<String> {
    let u = reqwest::Url::parse(url).ok()?;
    let host = u.host_str()?;
    Some(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// An error and its sources on one line.
fn error_chain(e: &dyn std::error::Error) -> String {
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

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v: &HeaderValue| v.to_str().ok())
        .map(str::trim)
}

/// `": CODE: message"` from a distribution error body, or a short excerpt
/// of a non-JSON body, or `""`.
fn error_body_detail(body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Envelope {
        errors: Vec<ErrItem>,
    }
    #[derive(serde::Deserialize)]
    struct ErrItem {
        code: Option<String>,
        message: Option<String>,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        let parts: Vec<String> = env
            .errors
            .iter()
            .map(|e| match (&e.code, &e.message) {
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

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// Credentials go to a token realm only over HTTPS, or plain HTTP on loopback.
fn realm_may_get_credentials(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url
            .host_str()
            .is_some_and(|h| Host::parse(h).is_ok_and(|h| h.is_loopback())),
        _ => false,
    }
}

/// A `WWW-Authenticate: Bearer ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BearerChallenge {
    /// Token service URL.
    pub realm: String,
    /// `service` parameter, if any.
    pub service: Option<String>,
    /// `scope` parameter, if any.
    pub scope: Option<String>,
}

/// Parses a `Bearer` challenge; `None` for other schemes or without realm.
pub fn parse_bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_auth_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(BearerChallenge {
        realm: get("realm").filter(|r| !r.is_empty())?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `key=value` / `key="quoted, value"` pairs separated by commas.
fn parse_auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.trim().is_empty() && chars.peek().is_none() {
            return out;
        }
        if chars.peek() != Some(&'=') {
            // A token without a value: skip it.
            chars.next();
            if chars.peek().is_none() {
                return out;
            }
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        out.push((key.trim().to_owned(), value));
    }
}

/// The target of the `rel="next"` link in a `Link` header.
pub fn parse_next_link(header: &str) -> Option<String> {
    let mut rest = header;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let end = after.find('>')?;
        let target = &after[..end];
        let params_and_more = &after[end + 1..];
        let params_end = params_and_more.find('<').unwrap_or(params_and_more.len());
        let params = &params_and_more[..params_end];
        let is_next = params.split(';').any(|p| {
            let Some((k, v)) = p.split_once('=') else {
                return false;
            };
            k.trim().eq_ignore_ascii_case("rel")
                && v.trim()
                    .trim_end_matches(',')
                    .trim()
                    .trim_matches('"')
                    .split_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next && !target.is_empty() {
            return Some(target.to_owned());
        }
        rest = params_and_more;
    }
    None
}

/// The `/v2/...` path and query of a link target, absolute or not. The
/// authority of an absolute link is dropped: credentials go to our host only.
fn link_to_path(link: &str) -> Option<String> {
    let path = if let Some(rest) = link
        .strip_prefix("https://")
        .or_else(|| link.strip_prefix("http://"))
    {
        &rest[rest.find('/')?..]
    } else {
        link
    };
    (path.starts_with("/v2/") && !path.contains(char::is_whitespace)).then(|| path.to_owned())
}

fn media_type_from_json(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("mediaType")?.as_str().map(str::to_owned)
}

fn is_index(media_type: &str, json: &serde_json::Value) -> bool {
    media_type == DOCKER_MANIFEST_LIST
        || media_type == OCI_INDEX
        || (json.get("manifests").is_some() && json.get("config").is_none())
}

/// From an index: the digest of the linux/amd64 manifest, else the first.
pub fn pick_platform_manifest(index: &serde_json::Value) -> Option<String> {
    let list = index.get("manifests")?.as_array()?;
    let digest = |m: &serde_json::Value| {
        m.get("digest")
            .and_then(|d| d.as_str())
            .filter(|d| Digest::parse(d).is_ok())
            .map(str::to_owned)
    };
    let amd64 = list.iter().find(|m| {
        let p = m.get("platform");
        let field = |k: &str| p.and_then(|p| p.get(k)).and_then(|v| v.as_str());
        field("os") == Some("linux") && field("architecture") == Some("amd64")
    });
    amd64
        .and_then(digest)
        .or_else(|| list.iter().find_map(digest))
}

/// `config.Labels[label]` of an image config (Docker and OCI alike).
pub fn config_label(config: &serde_json::Value, label: &str) -> Option<String> {
    config
        .get("config")?
        .get("Labels")?
        .get(label)?
        .as_str()
        .map(str::to_owned)
}

/// The token of a token-service answer (`token` or `access_token`) and its
/// lifetime in seconds (60 when not given).
fn parse_token_response(body: &[u8]) -> Option<(Secret, u64)> {
    #[derive(serde::Deserialize)]
    struct TokenReply {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let r: TokenReply = serde_json::from_slice(body).ok()?;
    let token = r.token.filter(|t| !t.is_empty()).or(r.access_token)?;
    if token.is_empty() {
        return None;
    }
    Some((Secret::new(token), r.expires_in.unwrap_or(60)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts_use_http_and_others_https() {
        let scheme = |h: &str| {
            Registry::new(h, None, RetryPolicy::default())
                .map(|r| r.inner.base.clone())
                .unwrap_or_else(|e| panic!("{h}: {e}"))
        };
        assert_eq!(scheme("127.0.0.1:5000"), "http://127.0.0.1:5000");
        assert_eq!(scheme("127.8.9.1"), "http://127.8.9.1");
        assert_eq!(scheme("localhost:5000"), "http://localhost:5000");
        assert_eq!(scheme("LOCALHOST"), "http://LOCALHOST");
        assert_eq!(scheme("[::1]:5000"), "http://[::1]:5000");
        assert_eq!(scheme("::1"), "http://[::1]");
        assert_eq!(
            scheme("123456789012.dkr.ecr.us-east-2.amazonaws.com"),
            "https://123456789012.dkr.ecr.us-east-2.amazonaws.com"
        );
        assert_eq!(scheme("10.0.0.1:5000"), "https://10.0.0.1:5000");
        assert_eq!(scheme("128.0.0.1"), "https://128.0.0.1");
        assert_eq!(
            scheme("localhost.example.com"),
            "https://localhost.example.com"
        );
    }

    #[test]
    fn malformed_hosts_are_rejected() {
        for h in [
            "",
            "https://x",
            "x/y",
            "x:",
            "x:0",
            "x:99999",
            "x:ab",
            "user@x",
            "[::1",
            "[zz]:1",
            "[::1]x",
            ":5000",
            "a b",
            "x\u{0}",
            "é.com",
        ] {
            assert!(
                Registry::new(h, None, RetryPolicy::default()).is_err(),
                "{h:?} accepted"
            );
        }
    }

    #[test]
    fn bearer_challenge_with_quoted_commas_is_parsed() {
        let c = parse_bearer_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.realm, "https://auth.docker.io/token");
        assert_eq!(c.service.as_deref(), Some("registry.docker.io"));
        assert_eq!(
            c.scope.as_deref(),
            Some("repository:samalba/my-app:pull,push")
        );
    }

    #[test]
    fn bearer_challenge_variants() {
        let c = parse_bearer_challenge(
            r#"bearer  realm=http://127.0.0.1:1/t , error="insufficient_scope""#,
        )
        .unwrap();
        assert_eq!(c.realm, "http://127.0.0.1:1/t");
        assert_eq!(c.service, None);
        assert_eq!(c.scope, None);
        let c = parse_bearer_challenge(r#"Bearer realm="a\"b""#).unwrap();
        assert_eq!(c.realm, "a\"b");
        assert_eq!(parse_bearer_challenge(r#"Basic realm="x""#), None);
        assert_eq!(parse_bearer_challenge("Bearer"), None);
        assert_eq!(parse_bearer_challenge(r#"Bearer service="x""#), None);
        assert_eq!(parse_bearer_challenge(r#"Bearer realm="""#), None);
        for junk in [
            "",
            "Bearer ,,,",
            "Bearer =",
            "Bearer realm",
            "Bearer realm=\"unterminated",
            "Bearer a,b=c,=d",
        ] {
            let _ = parse_bearer_challenge(junk);
        }
    }

    #[test]
    fn credentials_go_to_realms_over_https_or_loopback_only() {
        let ok = |u: &str| realm_may_get_credentials(&reqwest::Url::parse(u).unwrap());
        assert!(ok("https://auth.docker.io/token"));
        assert!(ok("http://127.0.0.1:5001/token"));
        assert!(ok("http://[::1]:5001/token"));
        assert!(ok("http://localhost/token"));
        assert!(!ok("http://auth.example.com/token"));
        assert!(!ok("ftp://auth.example.com/token"));
    }

    /// A cheap deterministic generator of awkward strings.
    fn junk_strings() -> Vec<String> {
        let alphabet: Vec<char> = "<>\";=, \t:/@[]?#aZ0-._éß\u{0}\u{202e}🦀".chars().collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        (0..3000)
            .map(|i| {
                let len = i % 40;
                (0..len)
                    .map(|_| {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        alphabet[(state % alphabet.len() as u64) as usize]
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn parsers_never_panic_on_junk() {
        for s in junk_strings() {
            let _ = parse_bearer_challenge(&s);
            let _ = parse_bearer_challenge(&format!("Bearer {s}"));
            let _ = parse_next_link(&s);
            let _ = link_to_path(&s);
            let _ = error_body_detail(s.as_bytes());
            let _ = parse_token_response(s.as_bytes());
            let _ = media_type_from_json(s.as_bytes());
        }
    }

    #[test]
    fn next_link_is_found_relative_or_absolute() {
        assert_eq!(
            parse_next_link(r#"</v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(
            parse_next_link(
                r#"<https://r.example/v2/app/tags/list?n=1&last=a>; rel="prev", <https://r.example/v2/app/tags/list?n=1&last=c>; rel=next"#
            )
            .as_deref(),
            Some("https://r.example/v2/app/tags/list?n=1&last=c")
        );
        assert_eq!(parse_next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(parse_next_link(""), None);
        assert_eq!(parse_next_link("<unterminated; rel=next"), None);
        assert_eq!(parse_next_link(r#"<>; rel="next""#), None);
    }

    #[test]
    fn link_targets_become_paths_on_our_host_only() {
        assert_eq!(
            link_to_path("https://evil.example/v2/a/tags/list?n=1").as_deref(),
            Some("/v2/a/tags/list?n=1")
        );
        assert_eq!(
            link_to_path("/v2/a/tags/list").as_deref(),
            Some("/v2/a/tags/list")
        );
        assert_eq!(link_to_path("?n=1"), None);
        assert_eq!(link_to_path("https://host-only"), None);
        assert_eq!(link_to_path("/other"), None);
    }

    #[test]
    fn manifest_digest_is_the_sha256_of_its_bytes() {
        let m = Manifest::new(OCI_MANIFEST, Bytes::from_static(b""));
        assert_eq!(m.digest, Digest::sha256_of(b"").to_string());
    }

    #[test]
    fn error_body_detail_summarises_registry_errors() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(
            error_body_detail(body),
            ": MANIFEST_UNKNOWN: manifest unknown"
        );
        assert_eq!(error_body_detail(b""), "");
        assert_eq!(
            error_body_detail(b"<html>\n oops </html>"),
            ": <html> oops </html>"
        );
        assert!(error_body_detail(&[b'x'; 1000]).chars().count() < 210);
        assert_eq!(error_body_detail(&[0xff, 0xfe]), ": \u{fffd}\u{fffd}");
    }

    #[test]
    fn platform_manifest_prefers_linux_amd64() {
        let d1 = Digest::sha256_of(b"1").to_string();
        let d2 = Digest::sha256_of(b"2").to_string();
        let idx = serde_json::json!({"manifests": [
            {"digest": d1, "platform": {"os": "linux", "architecture": "arm64"}},
            {"digest": d2, "platform": {"os": "linux", "architecture": "amd64"}}]});
        assert_eq!(pick_platform_manifest(&idx), Some(d2));
        let idx = serde_json::json!({"manifests": [{"digest": "bad"}, {"digest": d1}]});
        assert_eq!(pick_platform_manifest(&idx), Some(d1));
        assert_eq!(
            pick_platform_manifest(&serde_json::json!({"manifests": 3})),
            None
        );
        assert_eq!(pick_platform_manifest(&serde_json::json!([])), None);
    }

    #[test]
    fn config_labels_are_read_from_the_config_section() {
        let cfg = serde_json::json!({"config": {"Labels": {"stackbake.fingerprint": "sha256:ab", "n": 1}}});
        assert_eq!(
            config_label(&cfg, "stackbake.fingerprint").as_deref(),
            Some("sha256:ab")
        );
        assert_eq!(config_label(&cfg, "n"), None);
        assert_eq!(config_label(&cfg, "missing"), None);
        assert_eq!(
            config_label(&serde_json::json!({"config": {"Labels": null}}), "x"),
            None
        );
        assert_eq!(config_label(&serde_json::json!("str"), "x"), None);
    }

    #[test]
    fn token_responses_accept_token_or_access_token() {
        let (t, ttl) = parse_token_response(br#"{"token":"abc","expires_in":300}"#).unwrap();
        assert_eq!((t.expose(), ttl), ("abc", 300));
        let (t, ttl) = parse_token_response(br#"{"token":"","access_token":"xyz"}"#).unwrap();
        assert_eq!((t.expose(), ttl), ("xyz", 60));
        assert!(parse_token_response(br#"{"token":""}"#).is_none());
        assert!(parse_token_response(b"nope").is_none());
    }

    #[test]
    fn unauthorized_messages_say_what_to_do_and_hold_no_secret() {
        let e = RegistryError::Unauthorized {
            host: "r.example".into(),
            anonymous: false,
        };
        let s = e.to_string();
        assert!(
            s.contains("r.example") && s.contains("refused the credentials"),
            "{s}"
        );
        let e = RegistryError::Unauthorized {
            host: "r.example".into(),
            anonymous: true,
        };
        assert!(e.to_string().contains("requires credentials"));
    }

    #[test]
    fn registry_debug_redacts_the_password() {
        let r = Registry::new(
            "127.0.0.1:5000",
            Some(Credentials::new("AWS", "sekrit-token")),
            RetryPolicy::default(),
        )
        .unwrap();
        let dbg = format!("{r:?}");
        assert!(!dbg.contains("sekrit"), "{dbg}");
        assert!(dbg.contains("127.0.0.1:5000"), "{dbg}");
    }

    #[test]
    fn registry_is_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Registry>();
    }
}

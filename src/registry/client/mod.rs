//! A small OCI distribution (v2) registry HTTP client over reqwest: ping,
//! manifest HEAD/GET/PUT, tag copy by exact manifest bytes, and an image's
//! config (`config.rs`: labels and creation time, for `--max-age` and for
//! naming the base that moved). Its other parts: the errors (`error.rs`),
//! the transport with retries (`transport.rs`) and authentication (`auth.rs`).
//!
//! Authentication: HTTP Basic when credentials are given (ECR and htpasswd
//! registries both accept it); on a `401` carrying a `Bearer` challenge, a
//! token is fetched from the realm (with the Basic credentials, or
//! anonymously), cached per scope and the request is retried once with it.
//! Loopback registries (127.0.0.0/8, `localhost`, `::1`) are spoken to over
//! plain HTTP, all others over HTTPS. Credentials and tokens never appear in
//! errors: this module prints nothing and formats no header values. Hosts,
//! repositories, tags and digests are checked with [`crate::reference`].

mod auth;
mod config;
mod error;
mod transport;

#[cfg(test)]
mod live_tests;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use reqwest::Method;

use super::retry::RetryPolicy;
use super::secret::Credentials;
use crate::reference::{Digest, Host, Reference, Repository};

use auth::CachedToken;
pub(crate) use config::ImageConfig;
pub(crate) use error::{ContentKind, RegistryError};
use transport::{Req, error_chain, header_str};

/// Docker image manifest, schema 2.
#[cfg(test)]
pub(crate) const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
/// Docker manifest list (multi-platform).
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
/// OCI image manifest.
#[cfg(test)]
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// OCI image index (multi-platform).
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

const ACCEPT_MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";
const USER_AGENT: &str = concat!("stackbake/", env!("CARGO_PKG_VERSION"));

/// An image manifest (or index) exactly as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Manifest {
    /// The `Content-Type` it is served and must be put with.
    pub media_type: String,
    /// The exact bytes; its digest is the sha256 of these.
    pub bytes: Bytes,
    /// `sha256:<hex>` of `bytes`.
    pub digest: String,
}

impl Manifest {
    /// Wraps manifest bytes, computing their sha256 digest.
    #[cfg(test)]
    pub(crate) fn new(media_type: impl Into<String>, bytes: impl Into<Bytes>) -> Self {
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
pub(crate) struct Client {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
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

impl Client {
    /// A client for `host` (`HOST` or `HOST:PORT`, IPv6 in brackets), with
    /// optional Basic credentials and a retry policy.
    pub(crate) fn new(
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
        Ok(Client {
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

    /// Checks that the registry answers the v2 API and accepts the
    /// credentials (`GET /v2/`).
    pub(crate) async fn ping(&self) -> Result<(), RegistryError> {
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
    pub(crate) async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        self.check_names(repo, reference)?;
        let req = Req::pull(
            Method::HEAD,
            repo,
            format!("/v2/{repo}/manifests/{reference}"),
            ACCEPT_MANIFESTS,
        );
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
    pub(crate) async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Manifest>, RegistryError> {
        self.check_names(repo, reference)?;
        let req = Req::pull(
            Method::GET,
            repo,
            format!("/v2/{repo}/manifests/{reference}"),
            ACCEPT_MANIFESTS,
        );
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
    pub(crate) async fn put_manifest(
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
    pub(crate) async fn copy_tag(
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
}

fn media_type_from_json(bytes: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    v.get("mediaType")?.as_str().map(str::to_owned)
}

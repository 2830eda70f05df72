//! Resolving an image reference to what the build will use, in this order:
//!
//! 1. A reference with a digest (`name@sha256:…`) is that digest.
//! 2. An image the engine holds that did not come from a registry under
//!    this name (imported, loaded or built locally: none of its
//!    `RepoDigests` is of this repository) exists only in the engine, and
//!    resolves to its image id. The builder uses that local image (the
//!    classic builder and the engine's BuildKit both prefer a local one).
//! 3. Anything else resolves by a manifest `HEAD` at the registry its name
//!    says, to the manifest (or multi-platform index) digest. The engine is
//!    then sent the reference pinned to that digest (`name@sha256:…`, see
//!    `dockerfile::Rewrites`), so a stale local copy under the same tag is
//!    never built on: the image built is the one the fingerprint covers.
//!
//! Docker Hub names (`python:3.12-slim`, `docker.io/…`) are asked at
//! `registry-1.docker.io`, official images under `library/`. The registry
//! images go to is asked with its in-memory credentials (the ECR token, or
//! `--registry-user`); every other registry anonymously (the client fetches
//! an anonymous bearer token when challenged). Credentials are never logged.
//!
//! [`Routes`] is where a registry mirror plugs in (`--mirror
//! docker.io=REGISTRY/PREFIX`): it changes where a registry is *asked* and
//! what the engine is sent, never the [`Identity`]. A mirror serves the same
//! digests, so switching to one changes no fingerprint.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::{Identity, Input, ResolveError, Resolved, Sources};
use crate::build::mirror::Mirror;
use crate::error::Error;
use crate::reference::ImageRef;
use crate::registry::Registry;

/// Docker Hub's name in references, and the host that serves its API.
const DOCKER_HUB: &str = "docker.io";
const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// Where an image lives, by its name: registry (`docker.io` for Docker
/// Hub), repository there, and tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Location {
    /// The registry the name says (`docker.io`, `ghcr.io`, `127.0.0.1:5000`).
    pub(crate) registry: String,
    /// The repository in it (`library/python`).
    pub(crate) repository: String,
    /// The tag (default `latest`) or digest.
    pub(crate) reference: String,
}

impl Location {
    /// Where `r` lives.
    pub(crate) fn of(r: &ImageRef) -> Location {
        let registry = match r.host().map(|h| h.as_str()) {
            None | Some("index.docker.io") => DOCKER_HUB.to_string(),
            Some(h) => h.to_string(),
        };
        let repo = r.repository().as_str();
        let repository = if registry == DOCKER_HUB && !repo.contains('/') {
            format!("library/{repo}")
        } else {
            repo.to_string()
        };
        let reference = match (r.digest(), r.tag()) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.to_string(),
            (None, None) => "latest".to_string(),
        };
        Location {
            registry,
            repository,
            reference,
        }
    }
}

/// Where a registry is asked: its API host, and a prefix for repositories.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Route {
    /// The host asked.
    pub(crate) host: String,
    /// The repository asked (`PREFIX/library/python` through a mirror).
    pub(crate) repository: String,
    /// Whether a mirror serves it (then the engine is sent this name).
    pub(crate) mirrored: bool,
}

/// Registry → mirror (`HOST`, `PREFIX`). Empty until `--mirror` fills it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Routes {
    mirrors: BTreeMap<String, (String, String)>,
}

impl Routes {
    /// The routes of `--mirror`s.
    pub(crate) fn mirrored(mirrors: &[Mirror]) -> Routes {
        Routes {
            mirrors: mirrors
                .iter()
                .map(|m| {
                    let (host, prefix) = m.host_and_prefix();
                    (
                        m.source().to_string(),
                        (host.to_string(), prefix.to_string()),
                    )
                })
                .collect(),
        }
    }

    /// Serves `registry` (`docker.io`) from `host` under `prefix`.
    #[cfg(test)]
    pub(crate) fn with_mirror(mut self, registry: &str, host: &str, prefix: &str) -> Routes {
        self.mirrors
            .insert(registry.to_string(), (host.to_string(), prefix.to_string()));
        self
    }

    /// Where `loc` is asked.
    pub(crate) fn route(&self, loc: &Location) -> Route {
        match self.mirrors.get(&loc.registry) {
            Some((host, prefix)) => Route {
                host: host.clone(),
                repository: format!("{}/{}", prefix.trim_matches('/'), loc.repository),
                mirrored: true,
            },
            None => Route {
                host: if loc.registry == DOCKER_HUB {
                    DOCKER_HUB_API.to_string()
                } else {
                    loc.registry.clone()
                },
                repository: loc.repository.clone(),
                mirrored: false,
            },
        }
    }
}

/// One registry client per host asked, shared by the run's lookups (so a
/// bearer token is fetched once per repository).
pub(crate) struct Clients(BTreeMap<String, Arc<dyn Registry>>);

impl Clients {
    /// Clients for every host the image inputs are asked at.
    pub(crate) fn new(inputs: &BTreeSet<Input>, src: &Sources<'_>) -> Result<Clients, Error> {
        let mut map: BTreeMap<String, Arc<dyn Registry>> = BTreeMap::new();
        for i in inputs {
            let Input::Image(text) = i else { continue };
            let Ok(r) = ImageRef::parse(text) else {
                continue;
            };
            let host = src.routes.route(&Location::of(&r)).host;
            if map.contains_key(&host) {
                continue;
            }
            let creds = match &src.ours {
                Some((ours, creds)) if *ours == host => creds.clone(),
                _ => None,
            };
            let client = src.services.registry(&host, creds, src.policy)?;
            map.insert(host, client);
        }
        Ok(Clients(map))
    }
}

/// Resolves image `text` (see the module docs for the order).
pub(crate) async fn resolve(
    text: &str,
    src: &Sources<'_>,
    clients: &Clients,
) -> Result<Resolved, ResolveError> {
    let r = ImageRef::parse(text).map_err(|e| ResolveError::Invalid {
        image: text.to_string(),
        detail: e.to_string(),
    })?;
    if let Some(d) = r.digest() {
        return Ok(Resolved {
            identity: Identity::Digest(d.to_string()),
            pin: None,
        });
    }
    let loc = Location::of(&r);
    if let Some(engine) = src.engine {
        let local = engine
            .inspect(text)
            .await
            .map_err(|source| ResolveError::Engine {
                image: text.to_string(),
                source,
            })?;
        if let Some(local) = local
            && !local.repo_digests.iter().any(|d| same_repository(d, &loc))
        {
            return Ok(Resolved {
                identity: Identity::ImageId(local.id),
                pin: None,
            });
        }
    }
    let route = src.routes.route(&loc);
    let client = clients
        .0
        .get(&route.host)
        .ok_or_else(|| ResolveError::NotFound {
            image: text.to_string(),
            registry: route.host.clone(),
            repository: route.repository.clone(),
            reference: loc.reference.clone(),
        })?;
    let found = client
        .manifest_digest(&route.repository, &loc.reference)
        .await
        .map_err(|e| ResolveError::Registry {
            image: text.to_string(),
            registry: route.host.clone(),
            source: Box::new(e),
        })?;
    let Some(digest) = found else {
        return Err(ResolveError::NotFound {
            image: text.to_string(),
            registry: route.host,
            repository: route.repository,
            reference: loc.reference,
        });
    };
    let name = if route.mirrored {
        format!("{}/{}", route.host, route.repository)
    } else {
        match r.host() {
            Some(h) => format!("{h}/{}", r.repository()),
            None => r.repository().to_string(),
        }
    };
    Ok(Resolved {
        pin: Some(format!("{name}@{digest}")),
        identity: Identity::Digest(digest),
    })
}

/// Whether a `RepoDigests` entry (`name@sha256:…`) is of `loc`'s repository.
fn same_repository(repo_digest: &str, loc: &Location) -> bool {
    let name = repo_digest.split('@').next().unwrap_or_default();
    ImageRef::parse(name).is_ok_and(|n| {
        let l = Location::of(&n);
        l.registry == loc.registry && l.repository == loc.repository
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(text: &str) -> Location {
        Location::of(&ImageRef::parse(text).expect("valid reference"))
    }

    #[test]
    fn docker_hub_names_get_their_registry_and_library() {
        let l = loc("python:3.12-slim");
        assert_eq!(
            (
                l.registry.as_str(),
                l.repository.as_str(),
                l.reference.as_str()
            ),
            ("docker.io", "library/python", "3.12-slim")
        );
        assert_eq!(
            loc("docker.io/grafana/grafana").repository,
            "grafana/grafana"
        );
        assert_eq!(loc("docker.io/grafana/grafana").reference, "latest");
        assert_eq!(loc("index.docker.io/library/node:20").registry, "docker.io");
        let l = loc("127.0.0.1:5000/base:1");
        assert_eq!(
            (l.registry.as_str(), l.repository.as_str()),
            ("127.0.0.1:5000", "base")
        );
        let r = Routes::default().route(&loc("busybox"));
        assert_eq!(
            (r.host.as_str(), r.repository.as_str()),
            ("registry-1.docker.io", "library/busybox")
        );
    }

    #[test]
    fn a_mirror_changes_where_an_image_is_asked_not_its_name() {
        let routes = Routes::default().with_mirror(
            "docker.io",
            "123456789012.dkr.ecr.us-east-2.amazonaws.com",
            "/hub/",
        );
        let r = routes.route(&loc("node:20"));
        assert_eq!(r.host, "123456789012.dkr.ecr.us-east-2.amazonaws.com");
        assert_eq!(r.repository, "hub/library/node");
        assert!(r.mirrored);
        assert!(!routes.route(&loc("ghcr.io/x/y:1")).mirrored);
    }

    #[test]
    fn repo_digests_are_matched_by_repository() {
        let l = loc("busybox:1.36.1");
        assert!(same_repository("busybox@sha256:abc", &l));
        assert!(same_repository("docker.io/library/busybox@sha256:abc", &l));
        assert!(!same_repository("127.0.0.1:5000/busybox@sha256:abc", &l));
        assert!(!same_repository("garbage@@", &l));
    }
}

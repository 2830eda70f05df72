//! `--mirror SOURCE=REGISTRY/PREFIX`: base images from a public registry
//! (Docker Hub first of all) are pulled through a mirror, typically an ECR
//! pull-through cache, in what the engine is sent, never in the user's
//! Dockerfile. `FROM node:20` with `--mirror docker.io=R/docker-hub` is sent
//! as `FROM R/docker-hub/library/node:20`. A mirror serves the same
//! digests, so fingerprints (computed from the user's Dockerfile) do not
//! change when a pipeline starts using one. Pure: no network.

use crate::reference::{Host, ImageRef};

/// Docker Hub's names: the canonical one first.
const DOCKER_HUB: [&str; 3] = ["docker.io", "index.docker.io", "registry-1.docker.io"];

/// One `--mirror SOURCE=REGISTRY/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mirror {
    /// The registry mirrored (`docker.io`).
    source: String,
    /// Where its images are pulled from instead (`REGISTRY/PREFIX`).
    target: String,
}

/// A `--mirror` value that is not `SOURCE=REGISTRY/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "--mirror {value:?}: {reason}; expected SOURCE=REGISTRY/PREFIX, e.g. \
     --mirror docker.io=123456789012.dkr.ecr.us-east-2.amazonaws.com/docker-hub"
)]
pub(crate) struct MirrorError {
    value: String,
    reason: &'static str,
}

impl Mirror {
    /// Parses `SOURCE=REGISTRY/PREFIX`.
    pub(crate) fn parse(value: &str) -> Result<Mirror, MirrorError> {
        let err = |reason| MirrorError {
            value: value.to_string(),
            reason,
        };
        let (source, target) = value.split_once('=').ok_or(err("no `=`"))?;
        let source = source.trim().to_ascii_lowercase();
        let target = target.trim().trim_end_matches('/').to_string();
        let source = if DOCKER_HUB.contains(&source.as_str()) {
            DOCKER_HUB[0].to_string()
        } else {
            Host::parse(&source).map_err(|_| err("the source is not a registry host"))?;
            source
        };
        let (host, prefix) = target
            .split_once('/')
            .ok_or(err("the target has no /PREFIX after the registry"))?;
        Host::parse(host).map_err(|_| err("the target's registry is not a host"))?;
        // The prefix must be a valid repository path itself.
        ImageRef::parse(&format!("{host}/{prefix}"))
            .map_err(|_| err("the target's prefix is not a repository path"))?;
        Ok(Mirror { source, target })
    }
}

impl Mirror {
    /// The mirrored registry (`docker.io`).
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// The registry host and repository prefix images are pulled from.
    pub(crate) fn host_and_prefix(&self) -> (&str, &str) {
        self.target.split_once('/').unwrap_or((&self.target, ""))
    }

    /// The ARN pattern of the repositories an ECR pull-through cache serves
    /// this mirror from (`arn:aws:ecr:REGION:ACCOUNT:repository/PREFIX/*`),
    /// when the mirror is one.
    pub(crate) fn ecr_repositories(&self) -> Option<String> {
        let (host, prefix) = self.target.split_once('/')?;
        let ecr = Host::parse(host).ok()?.ecr()?;
        Some(format!(
            "arn:aws:ecr:{}:{}:repository/{prefix}/*",
            ecr.region, ecr.account
        ))
    }
}

/// `image` as pulled through the first mirror of its registry, or `None`
/// when no mirror serves it (or it is not an image reference).
pub(crate) fn rewrite(image: &str, mirrors: &[Mirror]) -> Option<String> {
    let r = ImageRef::parse(image).ok()?;
    let host = r
        .host()
        .map_or(DOCKER_HUB[0], |h| h.as_str())
        .to_ascii_lowercase();
    let source = if DOCKER_HUB.contains(&host.as_str()) {
        DOCKER_HUB[0]
    } else {
        host.as_str()
    };
    let mirror = mirrors.iter().find(|m| m.source == source)?;
    let repo = r.repository().as_str();
    // Docker Hub's official images live under `library/`.
    let path = if source == DOCKER_HUB[0] && !repo.contains('/') {
        format!("library/{repo}")
    } else {
        repo.to_string()
    };
    let mut out = format!("{}/{path}", mirror.target);
    if let Some(t) = r.tag() {
        out.push(':');
        out.push_str(t.as_str());
    }
    if let Some(d) = r.digest() {
        out.push('@');
        out.push_str(d.as_str());
    }
    Some(out)
}

/// Whether `image` comes from Docker Hub.
pub(crate) fn is_docker_hub(image: &str) -> bool {
    ImageRef::parse(image).is_ok_and(|r| r.host().is_none_or(|h| DOCKER_HUB.contains(&h.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ECR: &str = "123456789012.dkr.ecr.us-east-2.amazonaws.com";

    fn hub() -> Vec<Mirror> {
        vec![Mirror::parse(&format!("docker.io={ECR}/docker-hub")).expect("parses")]
    }

    #[test]
    fn docker_hub_images_go_through_the_mirror_with_library_for_official_ones() {
        let m = hub();
        let expect = |image: &str, want: &str| {
            assert_eq!(rewrite(image, &m).as_deref(), Some(want), "{image}");
        };
        expect("node:20", &format!("{ECR}/docker-hub/library/node:20"));
        expect("node", &format!("{ECR}/docker-hub/library/node"));
        expect(
            "bitnami/redis:7",
            &format!("{ECR}/docker-hub/bitnami/redis:7"),
        );
        expect(
            "docker.io/library/python:3.12-slim",
            &format!("{ECR}/docker-hub/library/python:3.12-slim"),
        );
        expect(
            "index.docker.io/nginx:1.25",
            &format!("{ECR}/docker-hub/library/nginx:1.25"),
        );
        let d = format!("sha256:{}", "a".repeat(64));
        expect(
            &format!("alpine:3.20@{d}"),
            &format!("{ECR}/docker-hub/library/alpine:3.20@{d}"),
        );
    }

    #[test]
    fn other_registries_are_left_alone_unless_mirrored() {
        let m = hub();
        assert_eq!(rewrite("public.ecr.aws/docker/library/node:20", &m), None);
        assert_eq!(rewrite(&format!("{ECR}/bash-dog-api:latest"), &m), None);
        assert_eq!(rewrite("127.0.0.1:5000/base:1", &m), None);
        let mut both = m;
        both.push(Mirror::parse(&format!("ghcr.io={ECR}/ghcr")).expect("parses"));
        assert_eq!(
            rewrite("ghcr.io/org/tool:1", &both).as_deref(),
            Some(format!("{ECR}/ghcr/org/tool:1").as_str())
        );
    }

    #[test]
    fn malformed_mirrors_say_what_is_expected() {
        for bad in [
            "docker.io",
            "docker.io=",
            "docker.io=host-only",
            "not a host=r/p",
            "docker.io=r/UPPER",
        ] {
            let e = Mirror::parse(bad).expect_err(bad);
            assert!(e.to_string().contains("SOURCE=REGISTRY/PREFIX"), "{e}");
        }
        let m = Mirror::parse(&format!("registry-1.docker.io={ECR}/docker-hub/")).expect("ok");
        assert_eq!(
            rewrite("node:20", &[m]).as_deref(),
            Some(format!("{ECR}/docker-hub/library/node:20").as_str())
        );
    }

    #[test]
    fn an_ecr_mirror_names_its_cache_repositories() {
        assert_eq!(
            hub()[0].ecr_repositories().as_deref(),
            Some("arn:aws:ecr:us-east-2:123456789012:repository/docker-hub/*")
        );
        let other = Mirror::parse("docker.io=mirror.example.com/hub").expect("parses");
        assert_eq!(other.ecr_repositories(), None);
    }

    #[test]
    fn docker_hub_is_recognised_by_its_names() {
        assert!(is_docker_hub("node:20"));
        assert!(is_docker_hub("bitnami/redis"));
        assert!(is_docker_hub("docker.io/library/node"));
        assert!(!is_docker_hub("public.ecr.aws/x/y"));
        assert!(!is_docker_hub("localhost:5000/x"));
    }
}

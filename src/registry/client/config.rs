//! An image's config, read from the registry without pulling: its manifest
//! (for a multi-platform index, the linux/amd64 image, else the first),
//! then the config blob the manifest names, checked against its digest.
//! What stackbake reads of it: the labels and the `created` time.

use std::collections::BTreeMap;

use bytes::Bytes;
use reqwest::Method;

use super::transport::Req;
use super::{Client, ContentKind, DOCKER_MANIFEST_LIST, OCI_INDEX, RegistryError};
use crate::reference::Digest;

/// What stackbake reads of an image's config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageConfig {
    /// `created`, as written (RFC 3339), if any.
    pub created: Option<String>,
    /// `config.Labels` with string values.
    pub labels: BTreeMap<String, String>,
}

impl ImageConfig {
    /// The parts of a config JSON (Docker and OCI alike) stackbake reads.
    pub(crate) fn from_json(config: &serde_json::Value) -> ImageConfig {
        let labels = config
            .get("config")
            .and_then(|c| c.get("Labels"))
            .and_then(|l| l.as_object())
            .map(|l| {
                l.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        ImageConfig {
            created: config
                .get("created")
                .and_then(|c| c.as_str())
                .map(str::to_owned),
            labels,
        }
    }
}

impl Client {
    /// The config of image `repo:reference`, or `None` if the image does
    /// not exist (or is an index with no usable manifest, or names no config).
    pub(crate) async fn image_config(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ImageConfig>, RegistryError> {
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
        Ok(Some(ImageConfig::from_json(&cfg)))
    }

    /// The blob `repo@digest`, checked against the digest.
    async fn get_blob(&self, repo: &str, digest: &str) -> Result<Bytes, RegistryError> {
        self.check_names(repo, digest)?;
        let Ok(want) = Digest::parse(digest) else {
            return Err(self.invalid_reference(repo, digest));
        };
        let req = Req::pull(
            Method::GET,
            repo,
            format!("/v2/{repo}/blobs/{digest}"),
            "*/*",
        );
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
}

/// Whether a manifest is a multi-platform index.
fn is_index(media_type: &str, json: &serde_json::Value) -> bool {
    media_type == DOCKER_MANIFEST_LIST
        || media_type == OCI_INDEX
        || (json.get("manifests").is_some() && json.get("config").is_none())
}

/// From an index: the digest of the linux/amd64 manifest, else the first.
pub(crate) fn pick_platform_manifest(index: &serde_json::Value) -> Option<String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn config_labels_and_created_are_read() {
        let cfg = serde_json::json!({
            "created": "2026-11-30T08:24:01.123456789Z",
            "config": {"Labels": {"dev.stackbake.fingerprint": "sha256:ab", "n": 1}}});
        let c = ImageConfig::from_json(&cfg);
        assert_eq!(c.created.as_deref(), Some("2026-11-30T08:24:01.123456789Z"));
        assert_eq!(
            c.labels,
            BTreeMap::from([("dev.stackbake.fingerprint".into(), "sha256:ab".into())])
        );
        let none = ImageConfig::from_json(&serde_json::json!({"config": {"Labels": null}}));
        assert_eq!(none, ImageConfig::default());
        assert_eq!(
            ImageConfig::from_json(&serde_json::json!("str")),
            ImageConfig::default()
        );
    }

    #[test]
    fn indexes_are_told_from_manifests() {
        let idx = serde_json::json!({"manifests": []});
        assert!(is_index("application/json", &idx));
        assert!(is_index(OCI_INDEX, &serde_json::json!({})));
        assert!(!is_index(
            "application/vnd.docker.distribution.manifest.v2+json",
            &serde_json::json!({"config": {}, "layers": []})
        ));
    }
}

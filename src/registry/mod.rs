//! The registry side of stackbake: the [`Registry`] trait the orchestrator
//! talks to (manifest lookups and tag copies), its HTTP implementation
//! ([`Client`], a small OCI distribution v2 client), and the AWS side
//! ([`ecr`]): account from STS, ECR authorization token and repositories,
//! behind the [`ecr::Aws`] trait. Secrets ([`Secret`], [`Credentials`]) stay
//! in memory and print as `<redacted>`; retries follow [`RetryPolicy`].

pub(crate) mod client;
pub(crate) mod ecr;
pub(crate) mod retry;
pub(crate) mod secret;
pub(crate) mod tags;

use async_trait::async_trait;

pub(crate) use client::{Client, ImageConfig, RegistryError};
pub(crate) use ecr::AwsError;
pub(crate) use retry::RetryPolicy;
pub(crate) use secret::{Credentials, Secret};

/// What the orchestrator asks of the registry images go to.
#[async_trait]
pub(crate) trait Registry: Send + Sync {
    /// Checks that the registry answers and accepts the credentials.
    async fn ping(&self) -> Result<(), RegistryError>;

    /// The manifest digest of `repo:reference` (a tag or a digest), or
    /// `None` when it does not exist.
    async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError>;

    /// Points `repo:to` at the manifest of `repo:from`; returns its digest.
    async fn copy_tag(&self, repo: &str, from: &str, to: &str) -> Result<String, RegistryError>;

    /// The config digest of the image manifest `repo:reference` (`None`
    /// when it does not exist or is an index).
    async fn config_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError>;

    /// The config (labels, creation time) of image `repo:reference`, or
    /// `None` when it does not exist.
    async fn image_config(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ImageConfig>, RegistryError>;
}

#[async_trait]
impl Registry for Client {
    async fn ping(&self) -> Result<(), RegistryError> {
        Client::ping(self).await
    }

    async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        Client::manifest_digest(self, repo, reference).await
    }

    async fn copy_tag(&self, repo: &str, from: &str, to: &str) -> Result<String, RegistryError> {
        Client::copy_tag(self, repo, from, to).await
    }

    async fn config_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let Some(m) = Client::get_manifest(self, repo, reference).await? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice::<serde_json::Value>(&m.bytes)
            .ok()
            .and_then(|v| v.get("config")?.get("digest")?.as_str().map(str::to_owned)))
    }

    async fn image_config(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ImageConfig>, RegistryError> {
        Client::image_config(self, repo, reference).await
    }
}

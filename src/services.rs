//! The I/O edges a run uses, behind one seam: the Docker engine (builder and
//! image store), AWS, and registry clients. [`Real`] connects to the real
//! ones; the orchestrator's tests hand it in-memory fakes instead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::engine::docker::DockerEngine;
use crate::engine::{Builder, Engine, EngineError};
use crate::registry::ecr::Aws;
use crate::registry::{AwsError, Client, Credentials, Registry, RegistryError, RetryPolicy};

/// A connected engine: its builder and its image store.
#[derive(Clone)]
pub(crate) struct Connected {
    /// Runs builds.
    pub(crate) builder: Arc<dyn Builder>,
    /// Pulls, tags, pushes and looks up images.
    pub(crate) engine: Arc<dyn Engine>,
}

/// Where a run's I/O goes.
#[async_trait]
pub(crate) trait Services: Send + Sync {
    /// Connects to the engine; `timeout` bounds each call, `idle` each
    /// silence of a stream.
    async fn engine(&self, timeout: Duration, idle: Duration) -> Result<Connected, EngineError>;

    /// Connects to AWS (STS, ECR) in the region from the environment or `region_hint`.
    async fn aws(
        &self,
        region_hint: Option<String>,
        attempt_timeout: Duration,
    ) -> Result<Arc<dyn Aws>, AwsError>;

    /// A client for the registry at `host`.
    fn registry(
        &self,
        host: &str,
        credentials: Option<Credentials>,
        policy: RetryPolicy,
    ) -> Result<Arc<dyn Registry>, RegistryError>;
}

/// The real engine, AWS and registries.
pub(crate) struct Real;

#[async_trait]
impl Services for Real {
    async fn engine(&self, timeout: Duration, idle: Duration) -> Result<Connected, EngineError> {
        let docker = Arc::new(DockerEngine::connect(timeout, idle).await?);
        Ok(Connected {
            builder: docker.clone(),
            engine: docker,
        })
    }

    async fn aws(
        &self,
        region_hint: Option<String>,
        attempt_timeout: Duration,
    ) -> Result<Arc<dyn Aws>, AwsError> {
        Ok(Arc::new(
            crate::registry::ecr::connect(region_hint, attempt_timeout).await?,
        ))
    }

    fn registry(
        &self,
        host: &str,
        credentials: Option<Credentials>,
        policy: RetryPolicy,
    ) -> Result<Arc<dyn Registry>, RegistryError> {
        Ok(Arc::new(Client::new(host, credentials, policy)?))
    }
}

//! The I/O edges a run uses, behind one seam: the Docker engine (builder and
//! image store), AWS, and registry clients. [`Real`] connects to the real
//! ones; the orchestrator's tests hand it in-memory fakes instead.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::build::capabilities::{BuilderKind, Capabilities};
use crate::cli::BuilderFlag;
use crate::engine::buildkit::BuildKit;
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
    /// Which builder, on which engine.
    pub(crate) caps: Capabilities,
    /// How the builder was chosen, for the run's notice.
    pub(crate) description: String,
    /// Why `auto` chose the classic builder, if it did.
    pub(crate) fallback: Option<String>,
}

/// Where a run's I/O goes.
#[async_trait]
pub(crate) trait Services: Send + Sync {
    /// Connects to the engine and picks the builder `choice` asks for;
    /// `timeout` bounds each call, `idle` each silence of a stream.
    async fn engine(
        &self,
        timeout: Duration,
        idle: Duration,
        choice: BuilderFlag,
    ) -> Result<Connected, EngineError>;

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
    async fn engine(
        &self,
        timeout: Duration,
        idle: Duration,
        choice: BuilderFlag,
    ) -> Result<Connected, EngineError> {
        let docker = Arc::new(DockerEngine::connect(timeout, idle).await?);
        let facts = docker.facts().clone();
        let store = if facts.containerd_store {
            "containerd image store"
        } else {
            "graph driver"
        };
        let classic = |fallback: Option<String>| Connected {
            builder: docker.clone(),
            engine: docker.clone(),
            caps: Capabilities {
                builder: BuilderKind::Classic,
                engine: facts.version.clone(),
            },
            description: format!("classic builder of Docker {} ({store})", facts.version),
            fallback,
        };
        if choice == BuilderFlag::Classic {
            return Ok(classic(None));
        }
        match connect_buildkit(&docker, idle).await {
            Ok(bk) => {
                let cache = if bk.registry_cache() {
                    "registry cache in <repository>:buildcache"
                } else {
                    "inline cache"
                };
                Ok(Connected {
                    description: format!("BuildKit of Docker {} ({store}, {cache})", facts.version),
                    builder: Arc::new(bk),
                    engine: docker.clone(),
                    caps: Capabilities {
                        builder: BuilderKind::BuildKit,
                        engine: facts.version.clone(),
                    },
                    fallback: None,
                })
            }
            Err(detail) if choice == BuilderFlag::Auto => Ok(classic(Some(format!(
                "BuildKit is not reachable: {detail}"
            )))),
            Err(detail) => Err(EngineError::NoBuildKit { detail }),
        }
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

/// The engine's BuildKit, if this engine offers it here: a local unix
/// socket (BuildKit's upgrades need it), Docker 18.09 or newer, and an
/// answer on `/grpc`.
async fn connect_buildkit(docker: &DockerEngine, idle: Duration) -> Result<BuildKit, String> {
    let host = std::env::var("DOCKER_HOST").ok();
    let socket = crate::engine::buildkit::socket_from_env(host.as_deref())
        .ok_or_else(|| "DOCKER_HOST is not a unix socket".to_string())?;
    let client = docker.client();
    let api = client.client_version();
    if (api.major_version, api.minor_version) < (1, 31) {
        return Err(format!(
            "the engine speaks API {}.{}, BuildKit needs 1.31 (Docker 18.09)",
            api.major_version, api.minor_version
        ));
    }
    BuildKit::connect(client, socket, &api, idle)
        .await
        .map_err(|e| e.to_string())
}

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

/// A connected engine: its image store, and the builders it offers.
#[derive(Clone)]
pub(crate) struct Connected {
    /// Pulls, tags, pushes and looks up images.
    pub(crate) engine: Arc<dyn Engine>,
    /// Picks the builder (asked only when something is to be built).
    pub(crate) builders: Arc<dyn ChooseBuilder>,
}

/// The builder a run uses.
#[derive(Clone)]
pub(crate) struct Chosen {
    /// Runs builds.
    pub(crate) builder: Arc<dyn Builder>,
    /// Which builder, on which engine.
    pub(crate) caps: Capabilities,
    /// What builds, for the run's notice.
    pub(crate) description: String,
    /// Why `auto` chose the classic builder, if it did.
    pub(crate) fallback: Option<String>,
    /// Whether builds in flight at once run a step they share only once
    /// (BuildKit): then every target starts at once, with no shared-stage
    /// unit first.
    pub(crate) merges_shared_steps: bool,
}

/// Picks the builder `--builder` asks for.
#[async_trait]
pub(crate) trait ChooseBuilder: Send + Sync {
    /// `auto`: BuildKit wherever the engine offers it, else classic;
    /// `buildkit`: BuildKit or an error; `classic`: classic.
    async fn choose(&self, choice: BuilderFlag) -> Result<Chosen, EngineError>;
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
            engine: docker.clone(),
            builders: Arc::new(RealBuilders { docker, idle }),
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

/// The real engine's builders.
struct RealBuilders {
    docker: Arc<DockerEngine>,
    idle: Duration,
}

#[async_trait]
impl ChooseBuilder for RealBuilders {
    async fn choose(&self, choice: BuilderFlag) -> Result<Chosen, EngineError> {
        let docker = &self.docker;
        let facts = docker.facts().await?;
        let store = if facts.containerd_store {
            "containerd image store"
        } else {
            "graph driver"
        };
        let classic = |fallback: Option<String>| Chosen {
            builder: docker.clone(),
            caps: Capabilities {
                builder: BuilderKind::Classic,
                engine: facts.version.clone(),
            },
            description: format!("classic builder of Docker {} ({store})", facts.version),
            fallback,
            merges_shared_steps: false,
        };
        if choice == BuilderFlag::Classic {
            return Ok(classic(None));
        }
        match connect_buildkit(docker, self.idle).await {
            Ok(bk) => {
                let cache = if bk.registry_cache() {
                    "registry cache in <repository>:buildcache"
                } else {
                    "inline cache"
                };
                Ok(Chosen {
                    description: format!("BuildKit of Docker {} ({store}, {cache})", facts.version),
                    builder: Arc::new(bk),
                    caps: Capabilities {
                        builder: BuilderKind::BuildKit,
                        engine: facts.version.clone(),
                    },
                    fallback: None,
                    merges_shared_steps: true,
                })
            }
            Err(detail) if choice == BuilderFlag::Auto => Ok(classic(Some(format!(
                "BuildKit is not reachable: {detail}"
            )))),
            Err(detail) => Err(EngineError::NoBuildKit { detail }),
        }
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

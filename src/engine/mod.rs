//! The image builder and the engine's image operations, behind two traits:
//! [`Builder`] runs one build, [`Engine`] pulls, tags, pushes and looks
//! images up. [`docker::DockerEngine`] implements both over the Docker
//! Engine API (bollard, classic builder); [`buildkit::BuildKit`] is the
//! other builder, through the engine's own BuildKit. The orchestrator only
//! sees the traits, so its tests run against in-memory fakes.

pub(crate) mod buildkit;
pub(crate) mod docker;
mod error;
mod inspect;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use async_trait::async_trait;

use crate::context::walk::Entry;
use crate::events::{Events, UnitEvents};
use crate::registry::{Credentials, Secret};

pub(crate) use error::{EngineError, is_push_unauthenticated, is_tag_immutable, is_transient};

/// Credentials for one registry, handed to the engine per request; never
/// stored in the engine's own (printable) credential type.
#[derive(Debug, Clone)]
pub(crate) struct RegistryAuth {
    /// `HOST[:PORT]`.
    pub(crate) host: String,
    /// User and password (redacted in `Debug`).
    pub(crate) credentials: Credentials,
}

/// One build the builder runs: a unit's pruned Dockerfile over the context
/// files it reads.
#[derive(Debug, Clone)]
pub(crate) struct BuildJob {
    /// The Dockerfile to build (its last stage is the image).
    pub(crate) dockerfile: String,
    /// The build context's root.
    pub(crate) root: PathBuf,
    /// The context entries sent (relative to `root`).
    pub(crate) entries: Vec<Entry>,
    /// `--build-arg`s.
    pub(crate) build_args: BTreeMap<String, String>,
    /// Images the builder may take cached layers from.
    pub(crate) cache_from: Vec<String>,
    /// Credentials for private registries the Dockerfile pulls from.
    pub(crate) auth: Option<RegistryAuth>,
    /// The external images the kept stages are built `FROM`, as sent
    /// (ARGs expanded, through any mirror): named when a pull fails.
    pub(crate) base_images: Vec<String>,
    /// Run every step, using no cached layer (`--max-age` expired it).
    pub(crate) no_cache: bool,
    /// `--secret` values by id, for `RUN --mount=type=secret` (BuildKit).
    pub(crate) secrets: Arc<HashMap<String, Secret>>,
    /// References the built image is exported under (BuildKit; empty for a
    /// shared stage, which is only built into the builder's cache).
    pub(crate) names: Vec<String>,
    /// Repositories (with host) whose registry cache this build reads.
    pub(crate) cache_repos: Vec<String>,
    /// The repository (with host) this build writes its registry cache to.
    pub(crate) cache_to: Option<String>,
}

/// A built image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltImage {
    /// The engine's image id.
    pub(crate) id: String,
}

/// A pushed image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pushed {
    /// `sha256:<hex>` of the manifest the registry stored.
    pub(crate) digest: String,
    /// Layer bytes uploaded (layers the registry had count 0).
    pub(crate) bytes_pushed: u64,
}

/// An image in the engine's store, as stackbake reads it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct LocalImage {
    /// The image id (`sha256:` of its config).
    pub(crate) id: String,
    /// `name@sha256:…` of every registry manifest it was pulled from or pushed as.
    pub(crate) repo_digests: Vec<String>,
    /// Its creation time (RFC 3339), if known.
    pub(crate) created: Option<String>,
    /// Its config labels.
    pub(crate) labels: BTreeMap<String, String>,
}

/// Runs builds.
#[async_trait]
pub(crate) trait Builder: Send + Sync {
    /// Builds `job`, reporting steps and log lines through `events`.
    async fn build(&self, job: BuildJob, events: &UnitEvents) -> Result<BuiltImage, EngineError>;

    /// Removes what builds that were stopped midway left behind (the classic
    /// builder's intermediate containers).
    async fn remove_leftovers(&self, events: &Events);
}

/// The engine's image store.
#[async_trait]
pub(crate) trait Engine: Send + Sync {
    /// Pulls `image`; `Ok(false)` when the registry does not have it.
    async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<bool, EngineError>;

    /// Gives `image` (id or reference) the name `repo:tag`.
    async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), EngineError>;

    /// Pushes `repo:tag`, logging through `events`.
    async fn push(
        &self,
        repo: &str,
        tag: &str,
        auth: Option<&RegistryAuth>,
        events: &UnitEvents,
    ) -> Result<Pushed, EngineError>;

    /// Whether the engine holds `reference`.
    async fn image_exists(&self, reference: &str) -> Result<bool, EngineError>;

    /// The image `reference` (a name or an id) names in the engine, if any.
    async fn inspect(&self, reference: &str) -> Result<Option<LocalImage>, EngineError>;
}

//! The Docker engine driver: everything stackbake asks of the local daemon
//! (pull, classic build, tag, push, inspect) through bollard, behind the
//! [`Builder`] and [`Engine`] traits.
//!
//! A bollard stream has succeeded only when it was drained with no `Err`:
//! an `errorDetail` arrives as `Err(DockerStreamError)` after HTTP 200
//! (FIELD-NOTES). Every function here drains its stream to the end.
//!
//! The classic builder runs each `RUN` in an intermediate container and
//! names it in the log (` ---> Running in <id>`, later `Removing
//! intermediate container <id>`); those lines are how we know which
//! containers are ours, even when other builds share the engine, so that a
//! stopped run can remove them.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, PushImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures_util::{Stream, StreamExt};

use super::error::is_not_found;
use super::{BuildJob, Builder, BuiltImage, Engine, EngineError, Pushed, RegistryAuth};
use crate::events::{Event, Events, UnitEvents};
use crate::reference::{Digest, DigestAlgorithm};

/// Name of the Dockerfile inside each context tar. The tarball module lists
/// it in the tar's .dockerignore, so the daemon removes it from the context
/// before building (as docker CLI does for `-f -`).
const DOCKERFILE_IN_CONTEXT: &str = ".dockerfile.stackbake";

/// How long a silent build waits for the engine to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected engine. Cheap to clone.
#[derive(Clone)]
pub(crate) struct DockerEngine {
    pub(super) docker: bollard::Docker,
    /// How long a pull or push stream may stay silent before we give up; a
    /// silent build is checked with a ping this often.
    idle: Duration,
    /// Intermediate containers of classic builds that were started and not
    /// yet removed.
    containers: Arc<Mutex<BTreeSet<String>>>,
    /// What the engine said about itself, once asked.
    facts: Arc<tokio::sync::OnceCell<EngineFacts>>,
}

/// What the engine says about itself (its version, its image store).
#[derive(Debug, Clone, Default)]
pub(crate) struct EngineFacts {
    /// The engine's version (`20.10.24+dfsg1`, `26.1.5`).
    pub(crate) version: String,
    /// Whether images live in the containerd image store (not a graph driver).
    pub(crate) containerd_store: bool,
}

/// The engine's credential struct, built at the call that needs it: it
/// derives `Debug` with the password in it, so it is never stored.
fn docker_creds(auth: Option<&RegistryAuth>) -> Option<DockerCredentials> {
    auth.map(|a| DockerCredentials {
        username: Some(a.credentials.username.clone()),
        password: Some(a.credentials.password.expose().to_string()),
        serveraddress: Some(a.host.clone()),
        ..Default::default()
    })
}

impl DockerEngine {
    /// Connects (honouring DOCKER_HOST), negotiates the API version and pings.
    pub(crate) async fn connect(
        timeout: Duration,
        idle: Duration,
    ) -> Result<DockerEngine, EngineError> {
        let unreachable = |e: bollard::errors::Error| EngineError::Unreachable {
            detail: e.to_string(),
        };
        let docker = bollard::Docker::connect_with_defaults()
            .map_err(unreachable)?
            .with_timeout(timeout);
        // bollard defaults to an API version newer than Docker 20.10 speaks.
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        Ok(DockerEngine {
            docker,
            idle,
            containers: Arc::default(),
            facts: Arc::default(),
        })
    }

    /// What the engine says about itself, asked once, when first needed (a
    /// run that builds nothing never asks).
    pub(crate) async fn facts(&self) -> Result<EngineFacts, EngineError> {
        let facts = self
            .facts
            .get_or_try_init(|| async {
                let version =
                    self.docker
                        .version()
                        .await
                        .map_err(|e| EngineError::Unreachable {
                            detail: e.to_string(),
                        })?;
                // Only a detail: an engine that will not tell is taken as a graph driver.
                let containerd_store = self.docker.info().await.ok().is_some_and(|i| {
                    i.driver_status.unwrap_or_default().iter().any(|kv| {
                        kv.first().is_some_and(|k| k == "driver-type")
                            && kv
                                .get(1)
                                .is_some_and(|v| v.contains("containerd.snapshotter"))
                    })
                });
                let facts = EngineFacts {
                    version: version.version.unwrap_or_default(),
                    containerd_store,
                };
                tracing::debug!(?facts, "engine");
                Ok::<_, EngineError>(facts)
            })
            .await?;
        Ok(facts.clone())
    }

    /// The bollard client (cheap to clone).
    pub(crate) fn client(&self) -> bollard::Docker {
        self.docker.clone()
    }

    /// Notes a build log line, tracking the intermediate containers it names.
    fn observe_build_line(&self, line: &str) {
        let line = line.trim();
        let mut c = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = line.strip_prefix("---> Running in ") {
            c.insert(id.trim().to_string());
        } else if let Some(id) = line
            .strip_prefix("Removing intermediate container ")
            // Docker 23+ prints the past tense.
            .or_else(|| line.strip_prefix("---> Removed intermediate container "))
        {
            c.remove(id.trim());
        }
    }

    /// Build containers that were started and not yet removed.
    fn live_containers(&self) -> Vec<String> {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }

    /// Runs a classic build, calling `on_line` with every complete log line;
    /// returns the image id.
    async fn build_classic<S>(
        &self,
        job: &BuildJob,
        context: S,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, EngineError>
    where
        S: Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let build_args: HashMap<String, String> = job.build_args.clone().into_iter().collect();
        let opts = BuildImageOptionsBuilder::default()
            .dockerfile(DOCKERFILE_IN_CONTEXT)
            .rm(true)
            .forcerm(true)
            .buildargs(&build_args)
            .cachefrom(&job.cache_from)
            .nocache(job.no_cache)
            .build();
        let body = bollard::body_try_stream(context);
        // A FROM on a private registry needs its credentials (X-Registry-Config).
        let registry_auth = job
            .auth
            .as_ref()
            .and_then(|a| docker_creds(Some(a)).map(|c| HashMap::from([(a.host.clone(), c)])));
        let mut stream = self.docker.build_image(opts, registry_auth, Some(body));
        let mut lines = LineBuffer::default();
        let mut image_id = None;
        loop {
            // A RUN step may print nothing for long (`go build`, `cargo build
            // -q`): during a build, silence is a hang only when the engine
            // itself stops answering.
            let item = match tokio::time::timeout(self.idle, stream.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => match tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await {
                    Ok(Ok(_)) => continue,
                    _ => {
                        return Err(EngineError::Unreachable {
                            detail: format!(
                                "the build printed nothing for {} s (--timeout) and the engine no longer answers",
                                self.idle.as_secs()
                            ),
                        });
                    }
                },
            };
            match item {
                Ok(info) => {
                    if let Some(text) = &info.stream {
                        lines.push(text, &mut on_line);
                    }
                    if let Some(status) = &info.status {
                        lines.push(&format!("{status}\n"), &mut on_line);
                    }
                    if let Some(id) = info.aux.as_ref().and_then(|a| a.id.clone()) {
                        image_id = Some(id);
                    }
                }
                Err(e) => {
                    lines.flush(&mut on_line);
                    // A dropped connection is the daemon's fault only if it no longer answers.
                    if lost_connection(&e) && self.docker.ping().await.is_err() {
                        return Err(EngineError::Unreachable {
                            detail: format!("lost the connection during the build: {e}"),
                        });
                    }
                    let message = error_message(&e);
                    on_line(&message);
                    return Err(EngineError::Build { message });
                }
            }
        }
        lines.flush(&mut on_line);
        image_id.ok_or(EngineError::NoImageId)
    }

    /// The next stream item, or [`EngineError::Stalled`] after `idle` of silence.
    async fn next_or_stall<S: Stream + Unpin>(
        &self,
        stream: &mut S,
        action: &str,
    ) -> Result<Option<S::Item>, EngineError> {
        tokio::time::timeout(self.idle, stream.next())
            .await
            .map_err(|_| EngineError::Stalled {
                action: action.to_string(),
                seconds: self.idle.as_secs(),
            })
    }

    /// Force-removes a container (a build container left by a stopped run).
    async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
            .force(true)
            .build();
        self.docker
            .remove_container(id, Some(opts))
            .await
            .map_err(|e| EngineError::Call {
                action: format!("removing build container {id}"),
                message: error_message(&e),
            })
    }
}

#[async_trait]
impl Builder for DockerEngine {
    async fn build(
        &self,
        mut job: BuildJob,
        events: &UnitEvents,
    ) -> Result<BuiltImage, EngineError> {
        if !job.cache_from.is_empty() && self.facts().await?.containerd_store {
            // There the classic builder fails the whole build on a cache
            // image ("failed to read diff archive", FIELD-NOTES).
            for source in std::mem::take(&mut job.cache_from) {
                events.send(Event::CacheSkipped {
                    unit: events.unit().to_string(),
                    source,
                    reason: "the classic builder cannot use cache images on the containerd \
                             image store (use BuildKit: --builder auto)"
                        .to_string(),
                });
            }
        }
        let context = crate::context::tarball::tar_stream(
            job.root.clone(),
            job.entries.clone(),
            Some((
                DOCKERFILE_IN_CONTEXT.to_string(),
                job.dockerfile.clone().into_bytes(),
            )),
        );
        // The FROM step in progress, if any: an error there is a failed pull.
        let pulling: Mutex<Option<String>> = Mutex::default();
        let on_line = |line: &str| {
            self.observe_build_line(line);
            if line.starts_with("Step ") {
                events.step(line);
                *pulling.lock().unwrap_or_else(|p| p.into_inner()) = from_step_image(line);
            } else if line.trim_start().starts_with("---> ") {
                *pulling.lock().unwrap_or_else(|p| p.into_inner()) = None;
            }
            events.log(line);
        };
        match self.build_classic(&job, context, on_line).await {
            Ok(id) => Ok(BuiltImage { id }),
            Err(EngineError::Build { message }) => {
                match pulling.into_inner().unwrap_or_else(|p| p.into_inner()) {
                    Some(written) => {
                        let image = base_named(&written, &job.base_images);
                        Err(EngineError::BasePull {
                            registry: registry_of(&image),
                            image,
                            message,
                        })
                    }
                    None => Err(EngineError::Build { message }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn remove_leftovers(&self, events: &Events) {
        // Give the engine a moment to notice the closed build connections first.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for id in self.live_containers() {
            match self.remove_container(&id).await {
                Ok(()) => events.send(Event::ContainerRemoved(id)),
                Err(e) if e.to_string().contains("No such container") => {}
                Err(e) => events.send(Event::CleanupFailed(e.to_string())),
            }
        }
    }
}

#[async_trait]
impl Engine for DockerEngine {
    async fn pull(&self, image: &str, auth: Option<&RegistryAuth>) -> Result<bool, EngineError> {
        let opts = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut stream = self
            .docker
            .create_image(Some(opts), None, docker_creds(auth));
        let action = format!("the pull of {image}");
        while let Some(item) = self.next_or_stall(&mut stream, &action).await? {
            if let Err(e) = item {
                let message = error_message(&e);
                if is_not_found(&message) {
                    return Ok(false);
                }
                return Err(EngineError::Call {
                    action: format!("pull of {image}"),
                    message,
                });
            }
        }
        Ok(true)
    }

    async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let opts = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        self.docker
            .tag_image(image, Some(opts))
            .await
            .map_err(|e| EngineError::Call {
                action: format!("tagging {image} as {repo}:{tag}"),
                message: error_message(&e),
            })
    }

    async fn push(
        &self,
        repo: &str,
        tag: &str,
        auth: Option<&RegistryAuth>,
        events: &UnitEvents,
    ) -> Result<Pushed, EngineError> {
        let image = format!("{repo}:{tag}");
        let opts = PushImageOptionsBuilder::default().tag(tag).build();
        let mut stream = self.docker.push_image(repo, Some(opts), docker_creds(auth));
        let action = format!("the push of {image}");
        let mut digest = None;
        // bollard's PushImageInfo has no layer id, so layers are told apart by
        // their total size: an approximation that only merges equal-sized layers.
        let mut layer_totals: BTreeSet<u64> = BTreeSet::new();
        while let Some(item) = self.next_or_stall(&mut stream, &action).await? {
            match item {
                Ok(info) => {
                    let status = info.status.unwrap_or_default();
                    // bollard drops the `aux` record; the digest is in the status line
                    // "<tag>: digest: sha256:<hex> size: <n>" (FIELD-NOTES).
                    if let Some(d) = parse_push_digest(&status) {
                        digest = Some(d);
                    }
                    if status.starts_with("Pushing")
                        && let Some(total) = info.progress_detail.as_ref().and_then(|p| p.total)
                    {
                        layer_totals.insert(u64::try_from(total).unwrap_or(0));
                    }
                    if status == "Pushed" || status.starts_with("Pushing") {
                        // progress lines; not logged one by one
                    } else if !status.is_empty() {
                        events.log(&status);
                    }
                }
                Err(e) => {
                    return Err(EngineError::Push {
                        image,
                        message: error_message(&e),
                    });
                }
            }
        }
        let bytes_pushed = layer_totals.iter().sum::<u64>();
        let digest = digest.ok_or(EngineError::NoDigest { image })?;
        Ok(Pushed {
            digest,
            bytes_pushed,
        })
    }

    async fn inspect(&self, reference: &str) -> Result<Option<super::LocalImage>, EngineError> {
        self.inspect_local(reference).await
    }

    async fn image_exists(&self, reference: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(EngineError::Call {
                action: format!("looking up {reference}"),
                message: error_message(&e),
            }),
        }
    }
}

/// Whether a bollard error means the daemon went away (as opposed to the
/// daemon reporting a failure, which arrives as a stream or server error).
fn lost_connection(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    !matches!(
        e,
        E::DockerStreamError { .. } | E::DockerResponseServerError { .. }
    )
}

/// Turns a bollard error into the engine's own words.
pub(super) fn error_message(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match e {
        E::DockerStreamError { error } => error.trim().to_string(),
        E::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

/// The image of a classic builder's `Step 2/5 : FROM [--flags] IMAGE [AS name]`
/// line, as written (ARGs unexpanded); `None` for other steps.
fn from_step_image(line: &str) -> Option<String> {
    let (_, instruction) = line.split_once(" : ")?;
    let mut words = instruction.split_whitespace();
    if !words.next()?.eq_ignore_ascii_case("FROM") {
        return None;
    }
    words.find(|w| !w.starts_with("--")).map(str::to_owned)
}

/// The base a FROM step pulls: as written, or, when written with an ARG,
/// the job's base (or bases) with ARGs expanded.
fn base_named(written: &str, bases: &[String]) -> String {
    if !written.contains('$') || bases.is_empty() {
        return written.to_string();
    }
    bases.join(" or ")
}

/// The registry an image is pulled from.
pub(super) fn registry_of(image: &str) -> String {
    match crate::reference::ImageRef::parse(image)
        .ok()
        .and_then(|r| r.host().cloned())
    {
        Some(h) => h.to_string(),
        None => "Docker Hub (registry-1.docker.io)".to_string(),
    }
}

/// Parses `"<tag>: digest: sha256:<hex> size: <n>"`.
pub(crate) fn parse_push_digest(status: &str) -> Option<String> {
    let rest = status.split(": digest: ").nth(1)?;
    let digest = Digest::parse(rest.split_whitespace().next()?).ok()?;
    (digest.algorithm() == DigestAlgorithm::Sha256).then(|| digest.to_string())
}

/// Splits the engine's text chunks into complete lines.
#[derive(Default)]
struct LineBuffer {
    partial: String,
}

impl LineBuffer {
    fn push(&mut self, text: &str, on_line: &mut impl FnMut(&str)) {
        self.partial.push_str(text);
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if !line.trim().is_empty() {
                on_line(line);
            }
        }
    }

    fn flush(&mut self, on_line: &mut impl FnMut(&str)) {
        let rest = std::mem::take(&mut self.partial);
        if !rest.trim().is_empty() {
            on_line(rest.trim_end());
        }
    }
}

#[cfg(test)]
mod tests;

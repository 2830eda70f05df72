//! In-memory fakes of the engine (builder and image store), the registry
//! and AWS, sharing one [`World`] that records every call in a journal, so
//! that the orchestrator's tests can check order, concurrency and failure
//! handling in milliseconds (time is paused: a scripted build "takes" its
//! seconds without waiting).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

use crate::engine::{
    BuildJob, Builder, BuiltImage, Engine, EngineError, LocalImage, Pushed, RegistryAuth,
};
use crate::events::{Events, UnitEvents};
use crate::registry::ecr::{Aws, Repositories};
use crate::registry::tags::Mutability;
use crate::registry::{AwsError, Credentials, ImageConfig, Registry, RegistryError, RetryPolicy};

/// The base image the example stack is built on in these tests, present in
/// the fake engine only (as `scripts/test` imports it into the real one).
pub(crate) const BASE: &str = "stackbake-test/busybox:latest";
use crate::services::{Connected, Services};

/// How a fake build of one unit behaves.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    /// How long it takes.
    pub(crate) takes: Duration,
    /// Its error, if it fails.
    pub(crate) fails: Option<String>,
}

/// Everything the fakes share.
#[derive(Default)]
pub(crate) struct World {
    journal: Mutex<Vec<String>>,
    /// repository → tag → digest.
    tags: Mutex<BTreeMap<String, BTreeMap<String, String>>>,
    /// Every manifest the registry holds: (repository, digest).
    manifests: Mutex<BTreeSet<(String, String)>>,
    /// The engine's images: reference → id.
    local: Mutex<BTreeMap<String, String>>,
    /// The engine's images by id: what `inspect` tells of them.
    images: Mutex<BTreeMap<String, LocalImage>>,
    /// The registry's image configs, by manifest digest.
    configs: Mutex<BTreeMap<String, ImageConfig>>,
    /// The `created` time builds stamp on their images.
    created: Mutex<String>,
    /// Every build job the builder was given, with its unit's name.
    jobs: Mutex<Vec<(String, BuildJob)>>,
    scripts: Mutex<BTreeMap<String, Script>>,
    /// Errors the next pushes of a repository fail with, in order.
    push_faults: Mutex<BTreeMap<String, VecDeque<String>>>,
    running: AtomicUsize,
    most_running: AtomicUsize,
    /// Each repository's tag mutability (as FakeAws reports it and the fake
    /// registry enforces it).
    mutability: Mutex<BTreeMap<String, Mutability>>,
    /// Whether FakeAws reports the mutability (else the registry only enforces it).
    hide_mutability: AtomicBool,
    /// At most this many tags per image (`usize::MAX`: no limit).
    tag_limit: AtomicUsize,
    /// PUTs of a tag the repository refused (it would have moved an immutable tag).
    refused_overwrites: AtomicUsize,
    /// Image id each pushed manifest was made from (its config digest).
    config_ids: Mutex<BTreeMap<String, String>>,
    /// Where the artifact goes, to look at it when `latest` moves.
    out: Mutex<Option<PathBuf>>,
    /// What the out dir held at each move of `latest`.
    at_latest: Mutex<Vec<Vec<String>>>,
}

impl World {
    /// A world whose engine holds [`BASE`] (imported: in no registry).
    pub(crate) fn new() -> Arc<World> {
        let w = World::default();
        w.tag_limit.store(usize::MAX, Ordering::SeqCst);
        *w.created.lock().expect("created") = "2026-01-01T00:00:00Z".to_string();
        w.import(BASE, "busybox");
        Arc::new(w)
    }

    /// `repo`'s tags follow `m`; FakeAws reports it unless `hidden`.
    pub(crate) fn set_mutability(&self, repo: &str, m: Mutability, hidden: bool) {
        self.mutability
            .lock()
            .expect("mutability")
            .insert(repo.to_string(), m);
        self.hide_mutability.store(hidden, Ordering::SeqCst);
    }

    /// At most `n` tags per image from now on.
    pub(crate) fn limit_tags(&self, n: usize) {
        self.tag_limit.store(n, Ordering::SeqCst);
    }

    /// How many PUTs would have moved an immutable tag (and were refused).
    pub(crate) fn refused_overwrites(&self) -> usize {
        self.refused_overwrites.load(Ordering::SeqCst)
    }

    /// The tags naming `digest` in `repo`.
    pub(crate) fn tags_of(&self, repo: &str, digest: &str) -> Vec<String> {
        self.tags
            .lock()
            .expect("tags")
            .get(repo)
            .map(|t| {
                t.iter()
                    .filter(|(_, d)| *d == digest)
                    .map(|(t, _)| t.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A tag write as the registry would judge it: `Err` with the refusal.
    fn judge(&self, repo: &str, tag: &str, digest: &str) -> Result<(), RegistryError> {
        let current = self.digest(repo, tag);
        let fixed = self
            .mutability
            .lock()
            .expect("mutability")
            .get(repo)
            .is_some_and(|m| m.is_fixed(tag));
        if fixed && current.is_some() {
            self.refused_overwrites.fetch_add(1, Ordering::SeqCst);
            return Err(RegistryError::TagImmutable {
                host: "fake".into(),
                repo: repo.into(),
                tag: tag.into(),
            });
        }
        if current.as_deref() != Some(digest)
            && self.tags_of(repo, digest).len() >= self.tag_limit.load(Ordering::SeqCst)
        {
            return Err(RegistryError::TagLimit {
                host: "fake".into(),
                repo: repo.into(),
                tag: tag.into(),
                detail: String::new(),
            });
        }
        Ok(())
    }

    /// Imports an image with `content` into the engine as `reference`
    /// (`docker import`: a new id, no registry digest); returns its id.
    pub(crate) fn import(&self, reference: &str, content: &str) -> String {
        let id = format!("sha256:{}", hex::encode(Sha256::digest(content.as_bytes())));
        self.local
            .lock()
            .expect("local")
            .insert(reference.to_string(), id.clone());
        self.images.lock().expect("images").insert(
            id.clone(),
            LocalImage {
                id: id.clone(),
                ..LocalImage::default()
            },
        );
        id
    }

    /// Replaces what the engine tells of image `image.id`.
    pub(crate) fn set_image(&self, image: LocalImage) {
        self.images
            .lock()
            .expect("images")
            .insert(image.id.clone(), image);
    }

    /// Sets the `created` time of the images built from now on (RFC 3339).
    pub(crate) fn stamp_builds(&self, created: &str) {
        *self.created.lock().expect("created") = created.to_string();
    }

    /// The build jobs sent for unit `label`, in order.
    pub(crate) fn jobs(&self, label: &str) -> Vec<BuildJob> {
        self.jobs
            .lock()
            .expect("jobs")
            .iter()
            .filter(|(l, _)| l == label)
            .map(|(_, j)| j.clone())
            .collect()
    }

    fn note(&self, entry: String) {
        self.journal.lock().expect("journal").push(entry);
    }

    /// Every call, in order.
    pub(crate) fn journal(&self) -> Vec<String> {
        self.journal.lock().expect("journal").clone()
    }

    /// Journal entries starting with `prefix`.
    pub(crate) fn calls(&self, prefix: &str) -> Vec<String> {
        self.journal()
            .into_iter()
            .filter(|e| e.starts_with(prefix))
            .collect()
    }

    /// Scripts the build of unit `label`.
    pub(crate) fn script(&self, label: &str, script: Script) {
        self.scripts
            .lock()
            .expect("scripts")
            .insert(label.to_string(), script);
    }

    /// The next pushes of `repo` (without host) fail with these messages.
    pub(crate) fn fail_pushes(&self, repo: &str, messages: &[&str]) {
        self.push_faults.lock().expect("faults").insert(
            repo.to_string(),
            messages.iter().map(|m| (*m).to_string()).collect(),
        );
    }

    /// The most builds that ran at once.
    pub(crate) fn most_running(&self) -> usize {
        self.most_running.load(Ordering::SeqCst)
    }

    /// The digest `repo:tag` names in the registry.
    pub(crate) fn digest(&self, repo: &str, tag: &str) -> Option<String> {
        self.tags
            .lock()
            .expect("tags")
            .get(repo)
            .and_then(|t| t.get(tag))
            .cloned()
    }

    /// Puts an image under `repo:tag` in the registry; returns its digest.
    pub(crate) fn put(&self, repo: &str, tag: &str, content: &str) -> String {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(content.as_bytes())));
        self.manifests
            .lock()
            .expect("manifests")
            .insert((repo.to_string(), digest.clone()));
        self.tags
            .lock()
            .expect("tags")
            .entry(repo.to_string())
            .or_default()
            .insert(tag.to_string(), digest.clone());
        digest
    }

    /// Watches `out` when `latest` moves.
    pub(crate) fn watch_out_dir(&self, out: PathBuf) {
        *self.out.lock().expect("out") = Some(out);
    }

    /// The out dir's file names at each move of `latest`.
    pub(crate) fn out_dir_at_latest(&self) -> Vec<Vec<String>> {
        self.at_latest.lock().expect("at latest").clone()
    }

    fn resolve(&self, repo: &str, reference: &str) -> Option<String> {
        if reference.starts_with("sha256:") {
            let has = self
                .manifests
                .lock()
                .expect("manifests")
                .contains(&(repo.to_string(), reference.to_string()));
            return has.then(|| reference.to_string());
        }
        self.digest(repo, reference)
    }
}

/// Splits `host/repo` into the repository.
fn without_host(full: &str) -> &str {
    match full.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) => rest,
        _ => full,
    }
}

/// The fake engine: builder and image store.
pub(crate) struct FakeEngine(pub(crate) Arc<World>);

/// Counts a running build while it lives (also when it is cancelled).
struct Running<'a>(&'a World);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Builder for FakeEngine {
    async fn build(&self, job: BuildJob, events: &UnitEvents) -> Result<BuiltImage, EngineError> {
        let w = &self.0;
        let label = events.unit().to_string();
        w.note(format!("build {label}"));
        let now = w.running.fetch_add(1, Ordering::SeqCst) + 1;
        w.most_running.fetch_max(now, Ordering::SeqCst);
        let _running = Running(w);
        let script = w
            .scripts
            .lock()
            .expect("scripts")
            .get(&label)
            .cloned()
            .unwrap_or_default();
        events.step("Step 1/2 : FROM base");
        events.log("Step 1/2 : FROM base");
        tokio::time::sleep(script.takes).await;
        if let Some(message) = script.fails {
            events.log(&message);
            w.note(format!("failed {label}"));
            return Err(EngineError::Build { message });
        }
        w.note(format!("built {label}"));
        let id = format!(
            "sha256:{}",
            hex::encode(Sha256::digest(format!("{label}\n{}", job.dockerfile)))
        );
        let image = LocalImage {
            id: id.clone(),
            repo_digests: Vec::new(),
            created: Some(w.created.lock().expect("created").clone()),
            labels: labels_of(&job.dockerfile),
        };
        w.images.lock().expect("images").insert(id.clone(), image);
        w.jobs.lock().expect("jobs").push((label, job));
        Ok(BuiltImage { id })
    }

    async fn remove_leftovers(&self, _events: &Events) {
        self.0.note("remove leftovers".to_string());
    }
}

#[async_trait]
impl Engine for FakeEngine {
    async fn pull(&self, image: &str, _auth: Option<&RegistryAuth>) -> Result<bool, EngineError> {
        let w = &self.0;
        w.note(format!("pull {image}"));
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        Ok(w.resolve(without_host(repo), tag).is_some())
    }

    async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let w = &self.0;
        w.note(format!("engine-tag {repo}:{tag}"));
        let mut local = w.local.lock().expect("local");
        let id = local
            .get(image)
            .cloned()
            .unwrap_or_else(|| image.to_string());
        local.insert(format!("{repo}:{tag}"), id);
        Ok(())
    }

    async fn push(
        &self,
        repo: &str,
        tag: &str,
        _auth: Option<&RegistryAuth>,
        events: &UnitEvents,
    ) -> Result<Pushed, EngineError> {
        let w = &self.0;
        let name = without_host(repo).to_string();
        w.note(format!("push {name}:{tag}"));
        let fault = w
            .push_faults
            .lock()
            .expect("faults")
            .get_mut(&name)
            .and_then(VecDeque::pop_front);
        if let Some(message) = fault {
            return Err(EngineError::Push {
                image: format!("{repo}:{tag}"),
                message,
            });
        }
        let id = w
            .local
            .lock()
            .expect("local")
            .get(&format!("{repo}:{tag}"))
            .cloned()
            .unwrap_or_default();
        let content = format!("{name}\n{id}");
        let would_be = format!("sha256:{}", hex::encode(Sha256::digest(content.as_bytes())));
        if let Err(e) = w.judge(&name, tag, &would_be) {
            return Err(EngineError::Push {
                image: format!("{repo}:{tag}"),
                message: match e {
                    RegistryError::TagImmutable { .. } => format!(
                        "tag invalid: The image tag '{tag}' already exists in the '{name}' repository and cannot be overwritten because the repository is immutable."
                    ),
                    other => other.to_string(),
                },
            });
        }
        let digest = w.put(&name, tag, &content);
        w.config_ids
            .lock()
            .expect("config ids")
            .insert(digest.clone(), id.clone());
        if let Some(image) = w.images.lock().expect("images").get_mut(&id) {
            image.repo_digests.push(format!("{repo}@{digest}"));
            let config = ImageConfig {
                created: image.created.clone(),
                labels: image.labels.clone(),
            };
            w.configs
                .lock()
                .expect("configs")
                .insert(digest.clone(), config);
        }
        events.log(&format!("{tag}: digest: {digest} size: 527"));
        Ok(Pushed {
            digest,
            bytes_pushed: 1000,
        })
    }

    async fn image_exists(&self, reference: &str) -> Result<bool, EngineError> {
        Ok(self.0.local.lock().expect("local").contains_key(reference))
    }

    async fn inspect(&self, reference: &str) -> Result<Option<LocalImage>, EngineError> {
        let w = &self.0;
        let id = w.local.lock().expect("local").get(reference).cloned();
        let id = id.unwrap_or_else(|| reference.to_string());
        Ok(w.images.lock().expect("images").get(&id).cloned())
    }
}

/// The labels of a built Dockerfile's last `LABEL` line (`"k"="v" …`).
fn labels_of(dockerfile: &str) -> BTreeMap<String, String> {
    let Some(line) = dockerfile.lines().rev().find(|l| l.starts_with("LABEL ")) else {
        return BTreeMap::new();
    };
    line["LABEL ".len()..]
        .split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| {
            (
                k.trim_matches('"').to_string(),
                v.trim_matches('"').to_string(),
            )
        })
        .collect()
}

/// The fake registry.
pub(crate) struct FakeRegistry(pub(crate) Arc<World>);

#[async_trait]
impl Registry for FakeRegistry {
    async fn ping(&self) -> Result<(), RegistryError> {
        Ok(())
    }

    async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        self.0.note(format!("head {repo}:{reference}"));
        Ok(self.0.resolve(repo, reference))
    }

    async fn image_config(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<ImageConfig>, RegistryError> {
        let w = &self.0;
        w.note(format!("config {repo}:{reference}"));
        Ok(w.resolve(repo, reference).map(|d| {
            w.configs
                .lock()
                .expect("configs")
                .get(&d)
                .cloned()
                .unwrap_or_default()
        }))
    }

    async fn copy_tag(&self, repo: &str, from: &str, to: &str) -> Result<String, RegistryError> {
        let w = &self.0;
        w.note(format!("copy {repo}:{to}"));
        let Some(digest) = w.resolve(repo, from) else {
            return Err(RegistryError::ManifestMissing {
                host: "fake".into(),
                repo: repo.into(),
                reference: from.into(),
            });
        };
        w.judge(repo, to, &digest)?;
        if to == "latest"
            && let Some(out) = w.out.lock().expect("out").clone()
        {
            let mut names: Vec<String> = std::fs::read_dir(&out)
                .map(|d| {
                    d.filter_map(|e| e.ok())
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            w.at_latest.lock().expect("at latest").push(names);
        }
        w.tags
            .lock()
            .expect("tags")
            .entry(repo.to_string())
            .or_default()
            .insert(to.to_string(), digest.clone());
        Ok(digest)
    }

    async fn config_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<String>, RegistryError> {
        let w = &self.0;
        Ok(w.resolve(repo, reference)
            .and_then(|d| w.config_ids.lock().expect("config ids").get(&d).cloned()))
    }
}

/// Fake AWS: a fixed account, region and registry.
pub(crate) struct FakeAws {
    credentials: Credentials,
    world: Arc<World>,
}

#[async_trait]
impl Aws for FakeAws {
    fn account(&self) -> &str {
        "123456789012"
    }
    fn region(&self) -> &str {
        "us-east-2"
    }
    fn registry_host(&self) -> &str {
        "123456789012.dkr.ecr.us-east-2.amazonaws.com"
    }
    fn credentials(&self) -> &Credentials {
        &self.credentials
    }
    async fn ensure_repositories(
        &self,
        _repos: &[String],
        _create: bool,
    ) -> Result<Repositories, AwsError> {
        let w = &self.world;
        let mutability = if w.hide_mutability.load(Ordering::SeqCst) {
            BTreeMap::new()
        } else {
            w.mutability.lock().expect("mutability").clone()
        };
        Ok(Repositories {
            mutability,
            ..Repositories::default()
        })
    }
}

#[async_trait]
impl crate::services::ChooseBuilder for FakeEngine {
    async fn choose(
        &self,
        _choice: crate::cli::BuilderFlag,
    ) -> Result<crate::services::Chosen, EngineError> {
        Ok(crate::services::Chosen {
            builder: Arc::new(FakeEngine(self.0.clone())),
            caps: crate::build::capabilities::Capabilities {
                builder: crate::build::capabilities::BuilderKind::BuildKit,
                engine: "26.1.5".to_string(),
            },
            description: "fake".to_string(),
            fallback: None,
            merges_shared_steps: false,
        })
    }
}

/// Services that are all fakes over one world.
pub(crate) struct FakeServices(pub(crate) Arc<World>);

#[async_trait]
impl Services for FakeServices {
    async fn engine(&self, _timeout: Duration, _idle: Duration) -> Result<Connected, EngineError> {
        let e = Arc::new(FakeEngine(self.0.clone()));
        Ok(Connected {
            engine: e.clone(),
            builders: e,
        })
    }

    async fn aws(
        &self,
        _region_hint: Option<String>,
        _attempt_timeout: Duration,
    ) -> Result<Arc<dyn Aws>, AwsError> {
        Ok(Arc::new(FakeAws {
            credentials: Credentials::new("AWS", "fake-token"),
            world: self.0.clone(),
        }))
    }

    fn registry(
        &self,
        _host: &str,
        _credentials: Option<Credentials>,
        _policy: RetryPolicy,
    ) -> Result<Arc<dyn Registry>, RegistryError> {
        Ok(Arc::new(FakeRegistry(self.0.clone())))
    }
}

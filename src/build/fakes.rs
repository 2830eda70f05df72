//! In-memory fakes of the engine (builder and image store), the registry
//! and AWS, sharing one [`World`] that records every call in a journal, so
//! that the orchestrator's tests can check order, concurrency and failure
//! handling in milliseconds (time is paused: a scripted build "takes" its
//! seconds without waiting).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

use crate::engine::{BuildJob, Builder, BuiltImage, Engine, EngineError, Pushed, RegistryAuth};
use crate::events::{Events, UnitEvents};
use crate::registry::ecr::Aws;
use crate::registry::{AwsError, Credentials, Registry, RegistryError, RetryPolicy};
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
    scripts: Mutex<BTreeMap<String, Script>>,
    /// Errors the next pushes of a repository fail with, in order.
    push_faults: Mutex<BTreeMap<String, VecDeque<String>>>,
    running: AtomicUsize,
    most_running: AtomicUsize,
    /// Where the artifact goes, to look at it when `latest` moves.
    out: Mutex<Option<PathBuf>>,
    /// What the out dir held at each move of `latest`.
    at_latest: Mutex<Vec<Vec<String>>>,
}

impl World {
    /// A world with nothing in it.
    pub(crate) fn new() -> Arc<World> {
        Arc::new(World::default())
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
        let digest = w.put(&name, tag, &format!("{name}\n{id}"));
        events.log(&format!("{tag}: digest: {digest} size: 527"));
        Ok(Pushed {
            digest,
            bytes_pushed: 1000,
        })
    }

    async fn image_exists(&self, reference: &str) -> Result<bool, EngineError> {
        Ok(self.0.local.lock().expect("local").contains_key(reference))
    }
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
}

/// Fake AWS: a fixed account, region and registry.
pub(crate) struct FakeAws {
    credentials: Credentials,
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
    ) -> Result<Vec<String>, AwsError> {
        Ok(Vec::new())
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

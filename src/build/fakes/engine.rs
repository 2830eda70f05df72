//! The fake engine: a builder that follows each unit's [`Script`] and an
//! image store over the shared [`World`].

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use sha2::{Digest as _, Sha256};

use crate::build::fakes::{World, without_host};
use crate::engine::{
    BuildJob, Builder, BuiltImage, Engine, EngineError, LocalImage, Pushed, RegistryAuth,
};
use crate::events::{Events, UnitEvents};
use crate::registry::{ImageConfig, RegistryError};

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

//! The fake registry, fake AWS and the services handing out the fakes, all
//! over the shared [`World`].

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;

use crate::build::fakes::{FakeEngine, World};
use crate::engine::EngineError;
use crate::registry::ecr::{Aws, Repositories};
use crate::registry::{AwsError, Credentials, ImageConfig, Registry, RegistryError, RetryPolicy};
use crate::services::{Connected, Services};

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

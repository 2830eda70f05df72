//! In-memory fakes of the engine (builder and image store), the registry
//! and AWS, sharing one [`World`] that records every call in a journal, so
//! that the orchestrator's tests can check order, concurrency and failure
//! handling in milliseconds (time is paused: a scripted build "takes" its
//! seconds without waiting). The engine's fakes are in `engine.rs`, the
//! registry's and AWS's in `registry.rs`.

mod engine;
mod registry;

pub(crate) use engine::FakeEngine;
pub(crate) use registry::FakeServices;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest as _, Sha256};

use crate::engine::{BuildJob, LocalImage};
use crate::registry::tags::Mutability;
use crate::registry::{ImageConfig, RegistryError};

/// The base image the example stack is built on in these tests, present in
/// the fake engine only (as `scripts/test` imports it into the real one).
pub(crate) const BASE: &str = "stackbake-test/busybox:latest";

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

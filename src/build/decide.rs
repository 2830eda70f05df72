//! SPEC step 4: build or reuse. Every target's fingerprint is computed (the
//! context's shared sources hashed once, the inputs from outside the
//! context already resolved), then looked up where its images go, all
//! targets at once: a target whose fingerprint tag exists in every one of
//! its repositories is reused, with the digest found there, unless
//! `--max-age` finds that image too old (reason `expired`). For a target
//! whose fingerprint changed, the images it uses are compared with those
//! its previous image (`latest`) recorded, and each one that moved is named.

use std::collections::BTreeMap;
use std::time::{Instant, SystemTime};

use crate::build::destination::Destination;
use crate::build::expiry;
use crate::build::inputs::{Inputs, Target};
use crate::config::Settings;
use crate::context::walk;
use crate::engine::Engine;
use crate::error::{Error, input};
use crate::events::{Action, Event, Events, Reason};
use crate::fingerprint::{self, Fingerprint};
use crate::outside::{self, Outside};
use crate::registry::ImageConfig;

/// Build or reuse, and why.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    /// The target.
    pub(crate) target: Target,
    /// Its fingerprint.
    pub(crate) fingerprint: Fingerprint,
    /// When an image with this fingerprint exists (reuse): its digest per
    /// repository (`None` when it exists only in the local engine).
    pub(crate) reuse: Option<BTreeMap<String, Option<String>>>,
    /// Why.
    pub(crate) reason: Reason,
}

impl Decision {
    /// Build or reuse.
    pub(crate) fn action(&self) -> Action {
        if self.reuse.is_some() {
            Action::Reuse
        } else {
            Action::Build
        }
    }
}

/// Where fingerprints are looked up.
#[derive(Clone, Copy)]
pub(crate) enum Lookup<'a> {
    /// The registry images go to.
    Registry(&'a Destination),
    /// The local engine (`--local` without `--registry`).
    Engine(&'a dyn Engine),
    /// Nowhere: everything is built.
    Nowhere,
}

/// Computes every target's fingerprint and looks it up.
pub(crate) async fn decide(
    s: &Settings,
    inputs: &Inputs,
    outside: &Outside,
    lookup: Lookup<'_>,
    events: &Events,
) -> Result<Vec<Decision>, Error> {
    let started = Instant::now();
    let entries = walk::list(&s.dir, &inputs.ignore, &[])
        .map_err(|e| input(&s.dir, format!("cannot read the build context: {e}")))?;
    let mut cache = fingerprint::SourceCache::default();
    let sources = fingerprint::Sources {
        df: &inputs.dockerfile,
        graph: &inputs.graph,
        build_args: &s.build_args,
        outside,
    };
    let mut fps = Vec::new();
    for t in &inputs.targets {
        let fp = blocking(|| {
            fingerprint::fingerprint_cached(&sources, t.stage, &s.dir, &entries, &mut cache)
        })
        .map_err(|e| input(&s.dockerfile, e.to_string()))?;
        fps.push(fp);
    }
    tracing::debug!(
        targets = fps.len(),
        seconds = started.elapsed().as_secs_f64(),
        "fingerprints computed"
    );
    // One lookup per target, all at once.
    let lookups = inputs
        .targets
        .iter()
        .zip(&fps)
        .map(|(t, fp)| find(s, t, fp, lookup));
    let results = futures_util::future::try_join_all(lookups).await?;
    let moved = inputs
        .targets
        .iter()
        .zip(&results)
        .filter(|(_, (_, reason))| *reason == Reason::Changed)
        .map(|(t, _)| async move {
            // Naming the move is a courtesy: a failure to read the previous
            // image changes no decision, so it stops nothing.
            if let Err(e) = moved(t, inputs, outside, lookup, events).await {
                tracing::debug!(stage = %t.name, error = %e, "previous image not read");
            }
        });
    futures_util::future::join_all(moved).await;
    let mut out = Vec::new();
    for ((t, fp), (reuse, reason)) in inputs.targets.iter().zip(fps).zip(results) {
        let d = Decision {
            target: t.clone(),
            fingerprint: fp,
            reuse,
            reason,
        };
        events.send(Event::Decided {
            target: t.name.clone(),
            action: d.action(),
            reason,
            fingerprint: d.fingerprint.as_digest(),
        });
        out.push(d);
    }
    tracing::debug!(
        seconds = started.elapsed().as_secs_f64(),
        "fingerprints and registry lookups done"
    );
    Ok(out)
}

/// Names each image target `t` uses that points elsewhere than when its
/// previous image (`latest` of its first repository) was built, as that
/// image's label recorded it.
async fn moved(
    t: &Target,
    inputs: &Inputs,
    outside: &Outside,
    lookup: Lookup<'_>,
    events: &Events,
) -> Result<(), Error> {
    let Some(repo) = t.repositories.first() else {
        return Ok(());
    };
    let Some(previous) = config_of(lookup, repo, "latest").await? else {
        return Ok(());
    };
    let Some(recorded) = previous.labels.get(outside::IMAGES_LABEL) else {
        return Ok(());
    };
    let before = outside::parse_images_label(recorded);
    let images = outside::images_of(&inputs.graph, &inputs.graph.needed(t.stage));
    let now = outside::parse_images_label(&outside.images_label(&images));
    for (image, to) in now {
        if let Some(from) = before.get(&image).filter(|from| **from != to) {
            events.send(Event::BaseMoved {
                target: t.name.clone(),
                image,
                from: from.clone(),
                to,
            });
        }
    }
    Ok(())
}

/// The config of image `repo:reference` where images are looked up.
async fn config_of(
    lookup: Lookup<'_>,
    repo: &str,
    reference: &str,
) -> Result<Option<ImageConfig>, Error> {
    Ok(match lookup {
        Lookup::Registry(d) => d.registry.image_config(repo, reference).await?,
        Lookup::Engine(e) => {
            e.inspect(&format!("{repo}:{reference}"))
                .await?
                .map(|i| ImageConfig {
                    created: i.created,
                    labels: i.labels,
                })
        }
        Lookup::Nowhere => None,
    })
}

/// Runs CPU- and disk-bound `f` where the runtime allows it to block (a
/// multi-threaded runtime moves its other tasks away first).
fn blocking<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Looks a target's fingerprint up: reuse (with the digest per repository)
/// or build, and why.
async fn find(
    s: &Settings,
    t: &Target,
    fp: &Fingerprint,
    lookup: Lookup<'_>,
) -> Result<(Option<BTreeMap<String, Option<String>>>, Reason), Error> {
    if s.force {
        return Ok((None, Reason::Forced));
    }
    let tag = fp.tag();
    let mut found: BTreeMap<String, Option<String>> = BTreeMap::new();
    for repo in &t.repositories {
        let hit = match lookup {
            Lookup::Registry(d) => d.registry.manifest_digest(repo, &tag).await?.map(Some),
            Lookup::Engine(e) => e
                .image_exists(&format!("{repo}:{tag}"))
                .await?
                .then_some(None),
            Lookup::Nowhere => None,
        };
        if let Some(h) = hit {
            found.insert(repo.clone(), h);
        }
    }
    let first = t
        .repositories
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    if found.len() == t.repositories.len() {
        if let Some(max_age) = s.max_age {
            // Every repository holds the same image (one build, one digest).
            let at = found.get(first).cloned().flatten().unwrap_or(tag);
            let created = config_of(lookup, first, &at).await?.and_then(|c| c.created);
            if expiry::expired(created.as_deref(), max_age, SystemTime::now()) {
                return Ok((None, Reason::Expired));
            }
        }
        return Ok((Some(found), Reason::Unchanged));
    }
    let seen = match lookup {
        Lookup::Registry(d) => d.registry.manifest_digest(first, "latest").await?.is_some(),
        Lookup::Engine(e) => e.image_exists(&format!("{first}:latest")).await?,
        Lookup::Nowhere => false,
    };
    Ok((None, if seen { Reason::Changed } else { Reason::New }))
}

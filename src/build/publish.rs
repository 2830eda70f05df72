//! SPEC steps 7–8, once every unit succeeded: reused images get the commit
//! tag by a manifest copy; every digest about to be pinned is verified in
//! the registry; the artifact is written under temporary names; `latest`
//! moves (to the exact digests pinned); and only then are the artifact's
//! files renamed into place. A failure anywhere leaves no artifact, and no
//! `latest` that points at an image not fully pushed.

use std::collections::BTreeMap;

use crate::artifact;
use crate::build::Prepared;
use crate::build::destination::Destination;
use crate::build::unit::UnitOutcome;
use crate::cancel::RunState;
use crate::config::Settings;
use crate::engine::Engine;
use crate::error::Error;
use crate::events::{Event, Events};
use crate::report::{Report, TargetReport};

/// Publishes the run; `outcome_of(stage)` is the outcome of the unit that
/// built that stage, if one did.
pub(crate) async fn publish<'a>(
    s: &Settings,
    p: &Prepared,
    engine: &dyn Engine,
    state: &RunState,
    events: &Events,
    outcome_of: impl Fn(usize) -> Option<&'a UnitOutcome>,
) -> Result<Report, Error> {
    let commit = p.commit.as_str();
    let dest = p.dest.as_ref();
    if state.is_cancelled() {
        return Err(Error::Interrupted);
    }
    // Reused images get the commit tag by a manifest copy (no pull, no push).
    let reuse_copies = p.decisions.iter().flat_map(|d| {
        d.reuse.iter().flat_map(move |found| {
            d.target.repositories.iter().map(move |repo| {
                // Copy by digest where we have it, so a tag moved meanwhile cannot sneak in.
                let from = found
                    .get(repo)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| d.fingerprint.tag());
                async move {
                    retag(dest, engine, repo, &from, commit).await?;
                    events.send(Event::Reused {
                        target: d.target.name.clone(),
                        image: format!(
                            "{}{repo}@{from}",
                            dest.map(|x| format!("{}/", x.host)).unwrap_or_default()
                        ),
                        tag: commit.to_string(),
                    });
                    Ok::<(), Error>(())
                }
            })
        })
    });
    futures_util::future::try_join_all(reuse_copies).await?;

    // Pins, report and files first: after `latest` moved, only the renames
    // of the staged files remain.
    let tags = p.tags(s);
    let mut pins: BTreeMap<String, String> = BTreeMap::new();
    let mut latest_from: BTreeMap<String, String> = BTreeMap::new();
    let mut targets = Vec::new();
    for (container, stage, repository, d) in p.mapped() {
        let o = outcome_of(d.target.stage);
        let (digest, bytes) = match &d.reuse {
            Some(found) => (found.get(repository).cloned().flatten(), 0),
            None => o
                .and_then(|o| o.pushed.get(repository).cloned())
                .unwrap_or((None, 0)),
        };
        let image = match (dest, &digest) {
            (Some(dst), Some(dg)) => verified_pin(dst, repository, dg).await?,
            _ => format!("{repository}:{commit}"),
        };
        latest_from.insert(
            repository.clone(),
            digest.clone().unwrap_or_else(|| commit.to_string()),
        );
        pins.insert(container.clone(), image.clone());
        targets.push(TargetReport {
            container: container.clone(),
            target: stage.clone(),
            repository: repository.clone(),
            action: if d.reuse.is_some() { "reused" } else { "built" }.into(),
            reason: None,
            fingerprint: Some(d.fingerprint.as_digest()),
            image: Some(image),
            digest,
            tags: tags.clone(),
            seconds: o.map_or(0.0, |o| (o.seconds * 10.0).round() / 10.0),
            bytes_pushed: bytes,
        });
    }
    let report = Report {
        schema_version: crate::report::SCHEMA_VERSION,
        commit_tag: commit.to_string(),
        registry: dest.map(|d| d.host.clone()),
        targets,
        external: p.externals(),
        shard: None,
    };
    // Written and synced under temporary names: a full disk or an unwritable
    // out dir fails here, before `latest` moves.
    let paths = artifact::Paths {
        appspec: &s.appspec,
        out: &s.out,
    };
    let staged = artifact::stage(&s.out, artifact::files(&paths, &p.inputs, &pins, &report)?)?;
    let env_file = crate::envfile::prepare(s.env_file.as_deref(), &report)?;
    if state.is_cancelled() {
        return Err(Error::Interrupted);
    }
    // Move `latest` only now that every target is fully pushed and the
    // artifact is ready, copying the exact digest that gets pinned.
    if !s.no_latest {
        let moves = latest_from
            .iter()
            .map(|(repo, from)| retag(dest, engine, repo, from, "latest"));
        futures_util::future::try_join_all(moves).await?;
    }
    if state.is_cancelled() {
        return Err(Error::Interrupted);
    }
    for f in &staged.commit()? {
        tracing::debug!(file = %f.display(), "artifact file written");
    }
    events.send(Event::ArtifactWritten(s.out.clone()));
    if let Some((staged, written)) = env_file {
        staged.commit()?;
        events.send(written);
    }
    Ok(report)
}

/// `host/repo@digest`, once the registry confirmed it holds that digest:
/// the taskdef never names an image the registry does not have.
async fn verified_pin(dest: &Destination, repo: &str, digest: &str) -> Result<String, Error> {
    let image = format!("{}@{digest}", dest.repository(repo));
    match dest.registry.manifest_digest(repo, digest).await? {
        Some(_) => Ok(image),
        None => Err(Error::PinMissing { image }),
    }
}

/// Gives `repo:from` the extra tag `to`: a manifest copy in the registry
/// (the digest stays the same), or a local tag when there is no registry.
async fn retag(
    dest: Option<&Destination>,
    engine: &dyn Engine,
    repo: &str,
    from: &str,
    to: &str,
) -> Result<(), Error> {
    match dest {
        Some(d) => {
            d.registry.copy_tag(repo, from, to).await?;
        }
        None => engine.tag(&format!("{repo}:{from}"), repo, to).await?,
    }
    Ok(())
}

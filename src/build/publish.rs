//! SPEC steps 7–8, once every unit succeeded: reused images get the commit
//! tag by a manifest copy; every digest about to be pinned is verified in
//! the registry; the artifact is written under temporary names; `latest`
//! moves (to the exact digests pinned); and only then are the artifact's
//! files renamed into place. A failure anywhere leaves no artifact, and no
//! `latest` that points at an image not fully pushed.

use std::collections::BTreeMap;

use crate::artifact;
use crate::build::Prepared;
use crate::build::decide::Decision;
use crate::build::destination::Destination;
use crate::build::unit::UnitOutcome;
use crate::cancel::RunState;
use crate::config::Settings;
use crate::engine::Engine;
use crate::error::{Cause, Error, Step, TargetFailure};
use crate::events::{Event, Events, TagReason};
use crate::registry::tags::{self, TagWrite};
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
    let run = Run {
        s,
        p,
        engine,
        events,
    };
    if state.is_cancelled() {
        return Err(Error::Interrupted);
    }
    let commit_tagged = run.commit_tag_reuses().await?;
    // Pins, report and files first: after `latest` moved, only the renames
    // of the staged files remain.
    let mut pins: BTreeMap<String, String> = BTreeMap::new();
    let mut latest_from: BTreeMap<String, String> = BTreeMap::new();
    let mut targets = Vec::new();
    for mapped in p.mapped() {
        let o = outcome_of(mapped.3.target.stage);
        let pinned = run.pin(mapped, o, &commit_tagged).await?;
        if let Some(from) = pinned.latest_from {
            latest_from.insert(pinned.report.repository.clone(), from);
        }
        pins.insert(pinned.report.container.clone(), pinned.image);
        targets.push(pinned.report);
    }
    let report = run.report(targets);
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
    run.move_all_latest(&latest_from).await?;
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

/// What one run publishes with: its settings, what was prepared, the engine
/// and where events go.
struct Run<'r> {
    s: &'r Settings,
    p: &'r Prepared,
    engine: &'r dyn Engine,
    events: &'r Events,
}

/// One mapped container once its image is pinned.
struct Pinned {
    /// The image pinned into the taskdef.
    image: String,
    /// Where `latest` moves from, when it moves.
    latest_from: Option<String>,
    /// Its line in the report.
    report: TargetReport,
}

impl Run<'_> {
    /// The commit tag.
    fn commit(&self) -> &str {
        self.p.commit.as_str()
    }

    /// The registry, when the run pushes to one.
    fn dest(&self) -> Option<&Destination> {
        self.p.dest.as_ref()
    }

    /// Gives every reused image the commit tag by a manifest copy (no pull,
    /// no push); per repository, whether it carries the tag afterwards.
    async fn commit_tag_reuses(&self) -> Result<BTreeMap<String, bool>, Error> {
        let reuse_copies = self.p.decisions.iter().flat_map(|d| {
            d.reuse.iter().flat_map(move |found| {
                d.target.repositories.iter().map(move |repo| {
                    // Copy by digest where we have it, so a tag moved meanwhile cannot sneak in.
                    let from = found
                        .get(repo)
                        .cloned()
                        .flatten()
                        .unwrap_or_else(|| d.fingerprint.tag());
                    self.commit_tag_reuse(d, repo, from)
                })
            })
        });
        Ok(futures_util::future::try_join_all(reuse_copies)
            .await?
            .into_iter()
            .collect())
    }

    /// Gives the image `from` of reused target `d` in `repo` the commit tag
    /// and reports the reuse when it carries it.
    async fn commit_tag_reuse(
        &self,
        d: &Decision,
        repo: &String,
        from: String,
    ) -> Result<(String, bool), Error> {
        let (commit, dest, events) = (self.commit(), self.dest(), self.events);
        let tagged = match dest {
            Some(dst) => {
                commit_tag_reused(dst, &d.target.name, repo, &from, commit, events).await?
            }
            None => {
                self.engine
                    .tag(&format!("{repo}:{from}"), repo, commit)
                    .await?;
                true
            }
        };
        if tagged {
            events.send(Event::Reused {
                target: d.target.name.clone(),
                image: format!(
                    "{}{repo}@{from}",
                    dest.map(|x| format!("{}/", x.host)).unwrap_or_default()
                ),
                tag: commit.to_string(),
            });
        }
        Ok((repo.clone(), tagged))
    }

    /// Pins one mapped container: verifies its digest in the registry,
    /// decides what happens to `latest` and writes its report line.
    async fn pin(
        &self,
        (container, stage, repository, d): (&String, &String, &String, &Decision),
        o: Option<&UnitOutcome>,
        commit_tagged: &BTreeMap<String, bool>,
    ) -> Result<Pinned, Error> {
        let (commit, dest) = (self.commit(), self.dest());
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
        let from = digest.clone().unwrap_or_else(|| commit.to_string());
        let latest = match (self.s.no_latest, dest) {
            (true, _) => Latest::Untouched,
            (false, Some(dst)) => plan_latest(dst, repository, &from, self.events).await?,
            (false, None) => Latest::Move,
        };
        let mut tags = Vec::new();
        if commit_tagged.get(repository).copied().unwrap_or(true) {
            tags.push(commit.to_string());
        }
        if latest != Latest::Untouched {
            tags.push("latest".to_string());
        }
        let report = TargetReport {
            container: container.clone(),
            target: stage.clone(),
            repository: repository.clone(),
            action: if d.reuse.is_some() { "reused" } else { "built" }.into(),
            reason: None,
            fingerprint: Some(d.fingerprint.as_digest()),
            image: Some(image.clone()),
            digest,
            tags,
            seconds: o.map_or(0.0, |o| (o.seconds * 10.0).round() / 10.0),
            bytes_pushed: bytes,
        };
        Ok(Pinned {
            image,
            latest_from: (latest == Latest::Move).then_some(from),
            report,
        })
    }

    /// The run's report, from the targets' lines.
    fn report(&self, targets: Vec<TargetReport>) -> Report {
        Report {
            schema_version: crate::report::SCHEMA_VERSION,
            commit_tag: self.commit().to_string(),
            registry: self.dest().map(|d| d.host.clone()),
            targets,
            external: self.p.externals(),
            shard: None,
        }
    }

    /// Moves `latest` in every repository of `latest_from`, copying the
    /// exact digest that gets pinned: only once every target is fully
    /// pushed and the artifact is ready.
    async fn move_all_latest(&self, latest_from: &BTreeMap<String, String>) -> Result<(), Error> {
        let moves = latest_from
            .iter()
            .map(|(repo, from)| move_latest(self.dest(), self.engine, repo, from, self.events));
        futures_util::future::try_join_all(moves).await?;
        Ok(())
    }
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

/// What happens to a repository's `latest`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Latest {
    /// `--no-latest`, or an immutable `latest` that names another image.
    Untouched,
    /// It already names the pinned image.
    AlreadyThere,
    /// It moves to the pinned image, last.
    Move,
}

/// Decides, before anything is written, whether `latest` can move to
/// `digest`: an immutable `latest` is looked at, never overwritten.
async fn plan_latest(
    dest: &Destination,
    repo: &str,
    digest: &str,
    events: &Events,
) -> Result<Latest, Error> {
    if !dest.policies.of(repo).is_fixed("latest") {
        return Ok(Latest::Move);
    }
    match dest.registry.manifest_digest(repo, "latest").await? {
        None => Ok(Latest::Move),
        Some(existing) if existing == digest => Ok(Latest::AlreadyThere),
        Some(existing) => {
            events.send(Event::TagNotMoved {
                repository: dest.repository(repo),
                tag: "latest".to_string(),
                reason: TagReason::Immutable { existing },
            });
            Ok(Latest::Untouched)
        }
    }
}

/// Moves `latest` to `from`: a tag write in the registry (one the
/// repository refuses is reported, not fatal), or a local tag.
async fn move_latest(
    dest: Option<&Destination>,
    engine: &dyn Engine,
    repo: &str,
    from: &str,
    events: &Events,
) -> Result<(), Error> {
    let Some(d) = dest else {
        engine
            .tag(&format!("{repo}:{from}"), repo, "latest")
            .await?;
        return Ok(());
    };
    let write = tags::put_tag(d.registry.as_ref(), &d.policies, repo, from, "latest").await?;
    if let Some(reason) = TagReason::of(&write) {
        events.send(Event::TagNotMoved {
            repository: d.repository(repo),
            tag: "latest".to_string(),
            reason,
        });
    }
    Ok(())
}

/// Gives a reused image in `repo` (manifest `digest`) the commit tag.
/// Whether it carries the tag afterwards: not when the image already has as
/// many tags as the registry allows (its digest is pinned all the same). An
/// immutable commit tag that names another image is an error.
async fn commit_tag_reused(
    dest: &Destination,
    target: &str,
    repo: &str,
    digest: &str,
    commit: &str,
    events: &Events,
) -> Result<bool, Error> {
    match tags::put_tag(dest.registry.as_ref(), &dest.policies, repo, digest, commit).await? {
        TagWrite::Written | TagWrite::AlreadyThere => Ok(true),
        TagWrite::LimitReached => {
            events.send(Event::TagNotMoved {
                repository: dest.repository(repo),
                tag: commit.to_string(),
                reason: TagReason::Limit,
            });
            Ok(false)
        }
        TagWrite::Kept { existing } => Err(Error::Publish(Box::new(TargetFailure::new(
            target,
            Step::Tag,
            Cause::TagConflict {
                repository: dest.repository(repo),
                tag: commit.to_string(),
                existing,
            },
        )))),
    }
}

//! `build --shard K/N` around the pure assignment of `shard.rs`: which
//! targets this shard builds, and what it leaves behind (its report; no
//! task definition, no `latest`).
//!
//! The targets split over the shards are the ones this commit has to
//! build: those whose fingerprint is in no registry, plus those a shard of
//! the same commit already pushed (fingerprint found, and the repository
//! holds the commit tag). Counting the latter keeps the assignment the same
//! on a shard that starts after another finished a target, and on a retried
//! batch. Targets reused from an earlier commit are left to the assemble
//! step, which gives them the commit tag.

use std::collections::BTreeSet;

use crate::artifact;
use crate::build::Prepared;
use crate::build::decide::Decision;
use crate::build::shard::{self, Shard, Work};
use crate::build::unit::UnitOutcome;
use crate::config::Settings;
use crate::context::walk;
use crate::error::{Error, input};
use crate::events::{Event, Events};
use crate::report::{Report, ShardReport, TargetReport};

/// What this shard builds.
pub(crate) struct Selection {
    /// Which shard.
    pub(crate) shard: Shard,
    /// Its targets (stage names), built or already pushed by this commit.
    pub(crate) targets: BTreeSet<String>,
}

impl Selection {
    /// Whether `d` is this shard's.
    pub(crate) fn has(&self, d: &Decision) -> bool {
        self.targets.contains(&d.target.name)
    }
}

/// Decides which targets shard `shard` builds, and says so.
pub(crate) async fn select(
    s: &Settings,
    p: &Prepared,
    shard: Shard,
    events: &Events,
) -> Result<Selection, Error> {
    let pending = pending(p).await?;
    let entries = walk::list(&s.dir, &p.inputs.ignore, &[])
        .map_err(|e| input(&s.dir, format!("cannot read the build context: {e}")))?;
    let costs = shard::stage_costs(&p.inputs.dockerfile, &s.build_args, &entries);
    let needed = p.inputs.needed();
    let work: Vec<Work<'_>> = pending
        .iter()
        .map(|d| Work {
            name: &d.target.name,
            needs: needed.get(d.target.stage).map_or(&[], Vec::as_slice),
        })
        .collect();
    let index = (shard.index - 1) as usize;
    let shard_of = shard::assign(&work, &costs, shard.count);
    let mine: Vec<String> = pending
        .iter()
        .zip(&shard_of)
        .filter(|(_, s)| **s == index)
        .map(|(d, _)| d.target.name.clone())
        .collect();
    let elsewhere = pending.len() - mine.len();
    let unchanged = p.decisions.len() - pending.len();
    events.send(if mine.is_empty() {
        Event::ShardEmpty {
            shard,
            elsewhere,
            unchanged,
        }
    } else {
        Event::Sharded {
            shard,
            targets: mine.clone(),
            elsewhere,
            unchanged,
        }
    });
    Ok(Selection {
        shard,
        targets: mine.into_iter().collect(),
    })
}

/// The decisions of the targets this commit builds (see the module docs),
/// in stage order.
async fn pending(p: &Prepared) -> Result<Vec<&Decision>, Error> {
    let Some(dest) = p.dest.as_ref() else {
        return Err(Error::Usage(
            "--shard needs a registry: pass --registry HOST[:PORT] (or drop --local)".to_string(),
        ));
    };
    let commit = p.commit.as_str();
    let lookups = p.decisions.iter().map(|d| async move {
        let this_commit = match (&d.reuse, d.target.repositories.first()) {
            (None, _) => true,
            (Some(_), Some(repo)) => dest.registry.manifest_digest(repo, commit).await?.is_some(),
            (Some(_), None) => false,
        };
        Ok::<_, Error>(this_commit.then_some(d))
    });
    Ok(futures_util::future::try_join_all(lookups)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// The shard's report, written alone into `--out`: its targets with the
/// digests it pushed (or that an earlier attempt of this commit pushed),
/// tagged with the commit only.
pub(crate) fn finish<'a>(
    s: &Settings,
    p: &Prepared,
    selection: &Selection,
    events: &Events,
    outcome_of: impl Fn(usize) -> Option<&'a UnitOutcome>,
) -> Result<Report, Error> {
    let mut targets = Vec::new();
    for (container, stage, repository, d) in p.mapped() {
        if !selection.has(d) {
            continue;
        }
        let o = outcome_of(d.target.stage);
        let (digest, bytes) = match &d.reuse {
            Some(found) => (found.get(repository).cloned().flatten(), 0),
            None => o
                .and_then(|o| o.pushed.get(repository).cloned())
                .unwrap_or((None, 0)),
        };
        let image = match (&p.dest, &digest) {
            (Some(dest), Some(dg)) => Some(format!("{}@{dg}", dest.repository(repository))),
            _ => None,
        };
        targets.push(TargetReport {
            container: container.clone(),
            target: stage.clone(),
            repository: repository.clone(),
            action: if d.reuse.is_some() { "reused" } else { "built" }.into(),
            reason: None,
            fingerprint: Some(d.fingerprint.as_digest()),
            image,
            digest,
            tags: vec![p.commit.clone()],
            seconds: o.map_or(0.0, |o| (o.seconds * 10.0).round() / 10.0),
            bytes_pushed: bytes,
        });
    }
    let report = Report {
        schema_version: crate::report::SCHEMA_VERSION,
        commit_tag: p.commit.clone(),
        registry: p.dest.as_ref().map(|d| d.host.clone()),
        targets,
        external: Vec::new(),
        shard: Some(ShardReport {
            index: selection.shard.index,
            count: selection.shard.count,
        }),
    };
    let file = artifact::OutFile {
        name: artifact::REPORT_FILE.to_string(),
        content: report.to_json().into_bytes(),
    };
    let staged = artifact::stage(&s.out, vec![file])?;
    let env_file = crate::envfile::prepare(s.env_file.as_deref(), &report)?;
    staged.commit()?;
    events.send(Event::ReportWritten(s.out.clone()));
    if let Some((staged, written)) = env_file {
        staged.commit()?;
        events.send(written);
    }
    Ok(report)
}

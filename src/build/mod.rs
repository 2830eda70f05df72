//! The `build` and `plan` commands: the order of SPEC's steps and nothing
//! else. Each step lives in the file named for it:
//!
//! | SPEC step | file |
//! |---|---|
//! | 1–2 inputs, taskdef mapping | `inputs.rs` |
//! | 3 registry, credentials | `destination.rs` |
//! | 4 inputs from outside the context, resolved | `crate::outside` |
//! | 4 fingerprints, build or reuse, `--max-age` | `decide.rs`, `expiry.rs` |
//! | 5–6 what the builder and engine can run, refused before any build | `capabilities.rs` |
//! | 5 `--shard K/N`: this shard's targets | `shard.rs` (pure), `sharding.rs` |
//! | 5–6 units and their order | `schedule.rs` |
//! | 6 running the units | `execute.rs` |
//! | 6–7 one unit: build, tag, push | `unit.rs` |
//! | 7 one image to one repository: commit and fingerprint tags | `deliver.rs` |
//! | 7–8 retag, verify, `latest`, artifact | `publish.rs` (a shard: `sharding.rs`) |
//!
//! The engine, the registry and AWS are reached only through
//! [`Services`], and everything a person sees leaves as an [`Event`].

pub(crate) mod capabilities;
pub(crate) mod decide;
mod deliver;
pub(crate) mod destination;
mod execute;
pub(crate) mod expiry;
pub(crate) mod inputs;
pub(crate) mod mirror;
mod publish;
pub(crate) mod schedule;
pub(crate) mod shard;
mod sharding;
mod unit;

#[cfg(test)]
mod ecr_tests;
#[cfg(test)]
pub(crate) mod fakes;
#[cfg(test)]
mod output_tests;
#[cfg(test)]
mod outside_tests;
#[cfg(test)]
mod shard_tests;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::artifact;
use crate::cancel::{CancelReason, RunState};
use crate::config::{self, Settings};
use crate::context::walk;
use crate::engine::Engine;
use crate::error::{Error, input};
use crate::events::{CachePull, Event, Events};
use crate::outside::{self, Outside};
use crate::report::{ExternalReport, Report, TargetReport};
use crate::services::Services;
use crate::taskdef::mapping::Mapping;

use decide::{Decision, Lookup};
use destination::{Destination, Intent};
use inputs::Inputs;

/// What `build` and `plan` share: inputs read, registry resolved, decisions made.
pub(crate) struct Prepared {
    pub(crate) inputs: Inputs,
    pub(crate) commit: String,
    pub(crate) dest: Option<Destination>,
    pub(crate) outside: Outside,
    pub(crate) decisions: Vec<Decision>,
}

impl Prepared {
    /// Every mapped container with its stage, repository and decision, in
    /// taskdef order.
    pub(crate) fn mapped(&self) -> impl Iterator<Item = (&String, &String, &String, &Decision)> {
        self.inputs.mappings.iter().filter_map(|m| match m {
            Mapping::Target {
                container,
                stage,
                repository,
                ..
            } => self
                .decisions
                .iter()
                .find(|d| &d.target.name == stage)
                .map(|d| (container, stage, repository, d)),
            Mapping::External { .. } => None,
        })
    }

    /// The tags every image carries after the run: the commit tag and, unless
    /// `--no-latest`, `latest`.
    pub(crate) fn tags(&self, s: &Settings) -> Vec<String> {
        let mut tags = vec![self.commit.clone()];
        if !s.no_latest {
            tags.push("latest".to_string());
        }
        tags
    }

    /// The report's external containers.
    pub(crate) fn externals(&self) -> Vec<ExternalReport> {
        self.inputs
            .mappings
            .iter()
            .filter_map(|m| match m {
                Mapping::External { container, image } => Some(ExternalReport {
                    container: container.clone(),
                    image: image.clone(),
                }),
                Mapping::Target { .. } => None,
            })
            .collect()
    }
}

/// Steps 1–4.
async fn prepare(
    s: &Settings,
    services: &dyn Services,
    events: &Events,
    intent: Intent,
    engine: Option<&dyn Engine>,
) -> Result<Prepared, Error> {
    let mut inputs = inputs::load(
        &s.dockerfile,
        &s.taskdefs,
        &s.appspec,
        &s.dir,
        &s.targets,
        &s.build_args,
        s.registry.as_deref(),
    )?;
    let mut own = artifact::own_output(&s.dir, &s.out, &s.taskdef);
    // The --env-file changes every run: inside the context it would change
    // the fingerprint of any stage that copies the whole context.
    own.extend(
        s.env_file
            .as_deref()
            .and_then(|f| artifact::inside(&s.dir, f)),
    );
    if !own.is_empty() {
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        inputs.ignore = inputs
            .ignore
            .with_excluded(&own)
            .map_err(|e| input(&s.out, e.to_string()))?;
    }
    let commit = config::commit_tag(s)?;
    let dest = destination::resolve(s, &inputs, services, events, intent).await?;
    let outside = resolve_outside(s, &inputs, services, dest.as_ref(), engine, events).await?;
    let lookup = match (&dest, engine) {
        (Some(d), _) => Lookup::Registry(d),
        (None, Some(e)) => Lookup::Engine(e),
        (None, None) => Lookup::Nowhere,
    };
    let decisions = decide::decide(s, &inputs, &outside, lookup, events).await?;
    Ok(Prepared {
        inputs,
        commit,
        dest,
        outside,
        decisions,
    })
}

/// Resolves every input from outside the context the targets use, once
/// each, in parallel (`crate::outside`).
async fn resolve_outside(
    s: &Settings,
    inputs: &Inputs,
    services: &dyn Services,
    dest: Option<&Destination>,
    engine: Option<&dyn Engine>,
    events: &Events,
) -> Result<Outside, Error> {
    let targets: Vec<usize> = inputs.targets.iter().map(|t| t.stage).collect();
    let wanted = outside::collect(
        &inputs.dockerfile,
        &inputs.graph,
        &targets,
        &s.build_args,
        &s.dockerfile,
    )?;
    let sources = outside::Sources {
        engine,
        services,
        ours: dest.map(|d| (d.host.clone(), d.creds.clone())),
        routes: outside::Routes::mirrored(&s.mirrors),
        policy: destination::retry_policy(s),
        timeout: s.timeout,
        allow_unresolved: s.allow_unresolved,
    };
    outside::resolve(wanted, &sources, events).await
}

/// Runs `stackbake plan`: the decisions, with no change anywhere.
pub(crate) async fn plan(
    s: &Settings,
    services: &dyn Services,
    events: &Events,
) -> Result<Report, Error> {
    // The engine is where fingerprints are looked up with `--local` alone;
    // otherwise it is only asked about images that may exist only there,
    // and a plan can go on without it (bases are then asked of registries).
    let engine = if s.local && s.registry.is_none() {
        Some(services.engine(s.timeout, s.timeout).await?.engine)
    } else {
        let quick = s.timeout.min(std::time::Duration::from_secs(10));
        services.engine(quick, quick).await.ok().map(|c| c.engine)
    };
    let p = prepare(s, services, events, Intent::Plan, engine.as_deref()).await?;
    let selection = match s.shard {
        Some(shard) => Some(sharding::select(s, &p, shard, events).await?),
        None => None,
    };
    let mut targets = Vec::new();
    for (container, stage, repository, d) in p.mapped() {
        if selection.as_ref().is_some_and(|sel| !sel.has(d)) {
            continue;
        }
        let digest = d
            .reuse
            .as_ref()
            .and_then(|r| r.get(repository).cloned().flatten());
        let image = match (&p.dest, &digest) {
            (Some(dest), Some(dg)) => Some(format!("{}@{dg}", dest.repository(repository))),
            (None, _) if d.reuse.is_some() => Some(format!("{repository}:{}", d.fingerprint.tag())),
            _ => None,
        };
        targets.push(TargetReport {
            container: container.clone(),
            target: stage.clone(),
            repository: repository.clone(),
            action: if d.reuse.is_some() { "reuse" } else { "build" }.into(),
            reason: Some(d.reason.as_str().into()),
            fingerprint: Some(d.fingerprint.as_digest()),
            image,
            digest,
            tags: p.tags(s),
            seconds: 0.0,
            bytes_pushed: 0,
        });
    }
    Ok(Report {
        schema_version: crate::report::SCHEMA_VERSION,
        external: if selection.is_some() {
            Vec::new()
        } else {
            p.externals()
        },
        commit_tag: p.commit,
        registry: p.dest.map(|d| d.host),
        targets,
        shard: selection.map(|sel| crate::report::ShardReport {
            index: sel.shard.index,
            count: sel.shard.count,
        }),
    })
}

/// Runs `stackbake build` (with `--shard`, one shard's part of it).
pub(crate) async fn build(
    s: &Settings,
    services: &dyn Services,
    events: &Events,
    state: &RunState,
) -> Result<Report, Error> {
    preflight(s, events)?;
    let connected = services.engine(s.timeout, s.timeout).await?;
    let engine = connected.engine.clone();
    let p = prepare(s, services, events, Intent::Build, Some(engine.as_ref())).await?;
    let selection = match s.shard {
        Some(shard) => Some(sharding::select(s, &p, shard, events).await?),
        None => None,
    };
    let to_build: Vec<&Decision> = p
        .decisions
        .iter()
        .filter(|d| d.reuse.is_none() && selection.as_ref().is_none_or(|sel| sel.has(d)))
        .collect();
    let mut outcomes = Vec::new();
    let mut units = Vec::new();
    let mut builder = None;
    if !to_build.is_empty() {
        // Only now: a run that reuses everything never asks for a builder.
        let chosen = connected.builders.choose(s.builder).await?;
        events.send(Event::Notice(crate::events::Notice::Builder {
            description: chosen.description.clone(),
            fallback: chosen.fallback.clone(),
        }));
        refuse_unbuildable(s, &p, &to_build, &chosen.caps)?;
        let targets = to_build.iter().map(|d| d.target.stage).collect();
        units = if chosen.merges_shared_steps {
            schedule::together(&p.inputs.needed(), &targets)
        } else {
            schedule::schedule(&p.inputs.needed(), &targets)
        };
        outcomes = run_units(s, &p, &to_build, &units, &chosen, &engine, state, events).await?;
        builder = Some(chosen.builder);
    }
    match (state.reason(), &builder) {
        (Some(CancelReason::Interrupted), b) => {
            if let Some(b) = b {
                b.remove_leftovers(events).await;
            }
            return Err(Error::Interrupted);
        }
        (Some(CancelReason::TargetFailed), Some(b)) => b.remove_leftovers(events).await,
        _ => {}
    }
    // Every failure is reported (a registry failure of one target must not
    // hide another's build error).
    let total = units.len();
    let failures: Vec<_> = outcomes
        .iter_mut()
        .filter_map(|o| o.failure.take())
        .collect();
    if !failures.is_empty() {
        return Err(Error::Targets { failures, total });
    }
    let outcome_of = |stage: usize| {
        units
            .iter()
            .position(|u| u.stage == stage)
            .and_then(|i| outcomes.get(i))
    };
    match &selection {
        Some(sel) => sharding::finish(s, &p, sel, events, outcome_of),
        None => publish::publish(s, &p, engine.as_ref(), state, events, outcome_of).await,
    }
}

/// SPEC step 6: builds `units` (the targets to build and the stages they
/// share) with the chosen builder; one outcome per unit.
#[allow(clippy::too_many_arguments)]
async fn run_units(
    s: &Settings,
    p: &Prepared,
    to_build: &[&Decision],
    units: &[schedule::Unit],
    chosen: &crate::services::Chosen,
    engine: &Arc<dyn Engine>,
    state: &RunState,
    events: &Events,
) -> Result<Vec<unit::UnitOutcome>, Error> {
    let entries = walk::list(&s.dir, &p.inputs.ignore, &[".dockerignore"])
        .map_err(|e| input(&s.dir, format!("cannot read the build context: {e}")))?;
    tracing::debug!(entries = entries.len(), "build context listed");
    let cache_from = match chosen.caps.builder {
        // BuildKit reads the previous images' cache from the registry
        // itself, lazily; nothing needs pulling first.
        capabilities::BuilderKind::BuildKit => {
            local_or_registry_refs(engine.as_ref(), p.dest.as_ref(), to_build).await
        }
        capabilities::BuilderKind::Classic => {
            pull_latest(engine.as_ref(), p.dest.as_ref(), to_build, events).await
        }
    };
    let labels: Vec<String> = units
        .iter()
        .map(|u| p.inputs.stage_label(u.stage))
        .collect();
    let shared = Arc::new(unit::Shared {
        builder: chosen.builder.clone(),
        engine: engine.clone(),
        dest: p.dest.clone(),
        commit: p.commit.clone(),
        push_retries: destination::push_policy(s),
        events: events.clone(),
    });
    let jobs = match chosen.caps.builder {
        // BuildKit runs the steps of concurrent builds under its own
        // scheduler (as `docker buildx bake` does); much of a build's time
        // is registry I/O (cache export, push), not CPU.
        capabilities::BuilderKind::BuildKit if !s.jobs_given => units.len(),
        _ => s.jobs,
    };
    let limits = execute::Limits {
        jobs,
        fail_fast: s.fail_fast,
    };
    let sources = unit::Sources {
        inputs: &p.inputs,
        decisions: &p.decisions,
        root: &s.dir,
        entries: &entries,
        build_args: &s.build_args,
        commit: &p.commit,
        mirrors: &s.mirrors,
        outside: &p.outside,
        dest: p.dest.as_ref(),
        secrets: &s.secrets,
    };
    Ok(
        execute::execute(units, &labels, &limits, state, events, |i, built| {
            // Cache sources: every image this run built so far, plus the pulled `latest`s.
            let mut cache = cache_from.clone();
            cache.extend(built);
            let job = unit::job(&sources, &units[i], cache);
            Box::pin(unit::run(shared.clone(), job))
        })
        .await,
    )
}

/// Refuses (exit 2) what the builder and engine cannot run in the stages
/// of the targets to build, and required secrets that were not given.
fn refuse_unbuildable(
    s: &Settings,
    p: &Prepared,
    to_build: &[&Decision],
    caps: &capabilities::Capabilities,
) -> Result<(), Error> {
    let needed = p.inputs.needed();
    let mut stages: Vec<usize> = to_build
        .iter()
        .filter_map(|d| needed.get(d.target.stage))
        .flatten()
        .copied()
        .collect();
    stages.sort_unstable();
    stages.dedup();
    let given = s.secrets.keys().cloned().collect();
    let refusals = capabilities::refusals(&p.inputs.dockerfile, &stages, caps, &given);
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(Error::Refused { refusals })
    }
}

/// The previous `latest` images BuildKit may read cache from: in the
/// registry, all (BuildKit skips a missing one); without a registry, those
/// the engine has (else BuildKit would look for them on Docker Hub).
async fn local_or_registry_refs(
    engine: &dyn Engine,
    dest: Option<&Destination>,
    to_build: &[&Decision],
) -> Vec<String> {
    let refs = latest_refs(dest, to_build);
    if dest.is_some() {
        return refs;
    }
    let mut local = Vec::new();
    for r in refs {
        if engine.image_exists(&r).await.unwrap_or(false) {
            local.push(r);
        }
    }
    local
}

/// Every target's `latest` reference.
fn latest_refs(dest: Option<&Destination>, to_build: &[&Decision]) -> Vec<String> {
    to_build
        .iter()
        .filter_map(|d| d.target.repositories.first())
        .map(|repo| match dest {
            Some(d) => format!("{}:latest", d.repository(repo)),
            None => format!("{repo}:latest"),
        })
        .collect()
}

/// Pulls every target's `latest` (in parallel; a missing one is normal) and
/// returns the cache sources for the builds.
async fn pull_latest(
    engine: &dyn Engine,
    dest: Option<&Destination>,
    to_build: &[&Decision],
    events: &Events,
) -> Vec<String> {
    let refs = latest_refs(dest, to_build);
    let Some(d) = dest else {
        // Local only: the previous run's local `latest` tags are the cache.
        return refs;
    };
    let auth = d.auth();
    let pulls = refs.iter().map(|r| {
        let auth = auth.clone();
        async move { (r.clone(), engine.pull(r, auth.as_ref()).await) }
    });
    let mut cache = Vec::new();
    for (r, res) in futures_util::future::join_all(pulls).await {
        let outcome = match res {
            Ok(true) => {
                cache.push(r.clone());
                CachePull::Found
            }
            Ok(false) => CachePull::Missing,
            Err(e) => CachePull::Failed(e.to_string()),
        };
        events.send(Event::CachePulled { image: r, outcome });
    }
    cache
}

/// Runs `stackbake check`'s rules before anything is built: an error
/// finding stops the build (exit 2) before a minute is spent on it;
/// warnings are shown and the build goes on.
fn preflight(s: &Settings, events: &Events) -> Result<(), Error> {
    let files = crate::check::ProjectFiles {
        dir: s.dir.clone(),
        dockerfile: s.dockerfile.clone(),
        taskdef: s.taskdef.clone(),
        extra_taskdefs: s.taskdefs.iter().skip(1).cloned().collect(),
        appspec: s.appspec.clone(),
        buildspec: s.dir.join("buildspec.yml"),
    };
    let mut findings =
        crate::check::check_with(&files, &s.targets, s.registry.as_deref(), &s.build_args);
    // buildspec.yml is not an input of `build`: when stackbake runs, CodeBuild
    // has already read it, and a buildspec that calls stackbake through a
    // wrapper (`make ci`) is fine. Its findings are shown, never a reason to stop.
    for f in &mut findings {
        if f.rule.starts_with("buildspec/") {
            f.severity = crate::check::Severity::Warning;
        }
    }
    if findings.is_empty() {
        return Ok(());
    }
    let errors = crate::check::has_errors(&findings);
    events.send(Event::Findings {
        text: crate::check::render_human(&findings),
        errors,
    });
    if errors {
        return Err(Error::Findings(
            "the checks above found errors, so nothing was built; fix them (or run `stackbake check`)".to_string(),
        ));
    }
    Ok(())
}

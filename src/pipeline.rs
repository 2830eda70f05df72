//! The `build` pipeline, SPEC steps 1–9: load inputs, resolve the registry,
//! pull caches, build the schedule's units in parallel, push, move
//! `latest`, verify, and write the artifact — the last two only when every
//! target succeeded.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::auth::DockerCredentials;
use tokio::task::JoinSet;

use crate::artifact::{self, OutFile};
use crate::cancel::{BUILD_LABEL, CancelReason, RunState};
use crate::config::{self, Settings};
use crate::context::walk::{self, Entry};
use crate::engine::{BuildRequest, Engine, EngineError};
use crate::error::{Error, TargetFailure};
use crate::fingerprint::{self, Fingerprint};
use crate::inputs::{self, Inputs};
use crate::plan::{self, Unit};
use crate::registry::{Credentials, Registry, RetryPolicy};
use crate::report::{ExternalReport, Report, TargetReport};
use crate::taskdef::mapping::Mapping;
use crate::taskdef::{self as td};
use crate::ui::Ui;

/// Name of the pruned Dockerfile inside each context tar. The tarball
/// module lists it in the tar's .dockerignore, so the daemon removes it
/// from the context before building (as docker CLI does for `-f -`).
const DOCKERFILE_IN_CONTEXT: &str = ".dockerfile.stackbake";
/// Lines of a failed target's log shown in the error.
const LOG_TAIL: usize = 15;

/// Where images go.
struct Destination {
    /// `host[:port]`.
    host: String,
    /// HTTP API client.
    registry: Registry,
    /// Credentials, if any, for the engine's pulls and pushes.
    creds: Option<Credentials>,
}

impl Destination {
    fn docker_creds(&self) -> Option<DockerCredentials> {
        docker_creds(&self.host, self.creds.as_ref())
    }
}

/// The engine's credential struct, built at the call that needs it: it
/// derives `Debug` with the password in it, so it is never stored.
fn docker_creds(host: &str, creds: Option<&Credentials>) -> Option<DockerCredentials> {
    creds.map(|c| DockerCredentials {
        username: Some(c.username.clone()),
        password: Some(c.password.expose().to_string()),
        serveraddress: Some(host.to_string()),
        ..Default::default()
    })
}

/// What a finished unit left behind.
#[derive(Default)]
struct UnitOutcome {
    image_id: Option<String>,
    seconds: f64,
    /// repository → (digest or None when only tagged locally, bytes pushed)
    pushed: BTreeMap<String, (Option<String>, u64)>,
    failure: Option<TargetFailure>,
}

/// Build or reuse, and why.
#[derive(Debug, Clone)]
pub struct Decision {
    /// The target.
    pub target: inputs::Target,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// Digest per repository when an image with this fingerprint exists (reuse).
    pub reuse: Option<BTreeMap<String, Option<String>>>,
    /// `new`, `changed`, `unchanged` or `forced`.
    pub reason: &'static str,
}

/// What `build` and `plan` share: inputs read, registry resolved, decisions made.
struct Prepared {
    inputs: Inputs,
    commit: String,
    dest: Option<Destination>,
    decisions: Vec<Decision>,
}

impl Prepared {
    /// Every mapped container with its stage, repository and decision, in
    /// taskdef order.
    fn mapped(&self) -> impl Iterator<Item = (&String, &String, &String, &Decision)> {
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
    fn tags(&self, s: &Settings) -> Vec<String> {
        let mut tags = vec![self.commit.clone()];
        if !s.no_latest {
            tags.push("latest".to_string());
        }
        tags
    }
}

/// Whether the caller may change anything.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Intent {
    Build,
    Plan,
}

async fn prepare(
    s: &Settings,
    ui: &Ui,
    intent: Intent,
    engine: Option<&Engine>,
) -> Result<Prepared, Error> {
    let mut inputs = inputs::load(
        &s.dockerfile,
        &s.taskdef,
        &s.appspec,
        &s.dir,
        &s.targets,
        &s.build_args,
        s.registry.as_deref(),
    )?;
    let own = own_output(&s.dir, &s.out, &s.taskdef);
    if !own.is_empty() {
        let own: Vec<&str> = own.iter().map(String::as_str).collect();
        inputs.ignore = inputs
            .ignore
            .with_excluded(&own)
            .map_err(|e| Error::Input {
                path: s.out.clone(),
                message: e.to_string(),
            })?;
    }
    let commit = config::commit_tag(s)?;
    let dest = resolve_destination(s, &inputs, ui, intent).await?;
    if let Some(d) = &dest {
        d.registry
            .ping()
            .await
            .map_err(|e| Error::Environment(e.to_string()))?;
    }
    let decisions = decide(s, &inputs, dest.as_ref(), engine, ui).await?;
    Ok(Prepared {
        inputs,
        commit,
        dest,
        decisions,
    })
}

/// Computes every target's fingerprint and looks it up where images go.
async fn decide(
    s: &Settings,
    inputs: &Inputs,
    dest: Option<&Destination>,
    engine: Option<&Engine>,
    ui: &Ui,
) -> Result<Vec<Decision>, Error> {
    let started = Instant::now();
    let fp_entries = walk::list(&s.dir, &inputs.ignore, &[]).map_err(|e| Error::Input {
        path: s.dir.clone(),
        message: format!("cannot read the build context: {e}"),
    })?;
    let mut cache = fingerprint::SourceCache::default();
    let mut fps = Vec::new();
    for t in &inputs.targets {
        let fp = tokio::task::block_in_place(|| {
            fingerprint::fingerprint_cached(
                &inputs.dockerfile,
                &inputs.graph,
                t.stage,
                &s.build_args,
                &s.dir,
                &fp_entries,
                &mut cache,
            )
        })
        .map_err(|e| Error::Input {
            path: s.dockerfile.clone(),
            message: e.to_string(),
        })?;
        fps.push(fp);
    }
    ui.debug(&format!(
        "fingerprints of {} targets took {:.2}s",
        fps.len(),
        started.elapsed().as_secs_f64()
    ));
    // One lookup per target, all at once.
    let lookups = inputs
        .targets
        .iter()
        .zip(&fps)
        .map(|(t, fp)| lookup(s, t, fp, dest, engine));
    let results = futures_util::future::try_join_all(lookups).await?;
    let mut out = Vec::new();
    for ((t, fp), (reuse, reason)) in inputs.targets.iter().zip(fps).zip(results) {
        ui.status(
            &t.name,
            &format!(
                "{} ({reason}) {fp}",
                if reuse.is_some() { "reuse" } else { "build" }
            ),
        );
        out.push(Decision {
            target: t.clone(),
            fingerprint: fp,
            reuse,
            reason,
        });
    }
    ui.debug(&format!(
        "fingerprints and registry lookups took {:.2}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(out)
}

/// Looks a target's fingerprint up where its images go: reuse (with the
/// digest per repository) or build, and why.
async fn lookup(
    s: &Settings,
    t: &inputs::Target,
    fp: &Fingerprint,
    dest: Option<&Destination>,
    engine: Option<&Engine>,
) -> Result<(Option<BTreeMap<String, Option<String>>>, &'static str), Error> {
    let env = |e: crate::registry::RegistryError| Error::Environment(e.to_string());
    if s.force {
        return Ok((None, "forced"));
    }
    let tag = fp.tag();
    let mut found: BTreeMap<String, Option<String>> = BTreeMap::new();
    for repo in &t.repositories {
        let hit = match (dest, engine) {
            (Some(d), _) => d
                .registry
                .manifest_digest(repo, &tag)
                .await
                .map_err(env)?
                .map(Some),
            (None, Some(e)) => e
                .image_exists(&format!("{repo}:{tag}"))
                .await
                .map_err(|e| Error::Environment(e.to_string()))?
                .then_some(None),
            (None, None) => None,
        };
        if let Some(h) = hit {
            found.insert(repo.clone(), h);
        }
    }
    if found.len() == t.repositories.len() {
        return Ok((Some(found), "unchanged"));
    }
    let first = t
        .repositories
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let seen = match (dest, engine) {
        (Some(d), _) => d
            .registry
            .manifest_digest(first, "latest")
            .await
            .map_err(env)?
            .is_some(),
        (None, Some(e)) => e
            .image_exists(&format!("{first}:latest"))
            .await
            .map_err(|e| Error::Environment(e.to_string()))?,
        (None, None) => false,
    };
    Ok((None, if seen { "changed" } else { "new" }))
}

/// Runs `stackbake plan`: the decisions, with no change anywhere.
pub async fn plan(s: &Settings, ui: Arc<Ui>) -> Result<Report, Error> {
    let engine = if s.local && s.registry.is_none() {
        Some(
            Engine::connect(s.timeout, s.timeout)
                .await
                .map_err(|e| Error::Environment(e.to_string()))?,
        )
    } else {
        None
    };
    let p = prepare(s, &ui, Intent::Plan, engine.as_ref()).await?;
    let mut targets = Vec::new();
    for (container, stage, repository, d) in p.mapped() {
        let digest = d
            .reuse
            .as_ref()
            .and_then(|r| r.get(repository).cloned().flatten());
        let image = match (&p.dest, &digest) {
            (Some(dest), Some(dg)) => Some(format!("{}/{repository}@{dg}", dest.host)),
            (None, _) if d.reuse.is_some() => Some(format!("{repository}:{}", d.fingerprint.tag())),
            _ => None,
        };
        targets.push(TargetReport {
            container: container.clone(),
            target: stage.clone(),
            repository: repository.clone(),
            action: if d.reuse.is_some() { "reuse" } else { "build" }.into(),
            reason: Some(d.reason.into()),
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
        commit_tag: p.commit,
        registry: p.dest.map(|d| d.host),
        targets,
        external: externals(&p.inputs),
    })
}

fn externals(inputs: &Inputs) -> Vec<ExternalReport> {
    inputs
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

/// Runs `stackbake build`.
pub async fn build(s: &Settings, ui: Arc<Ui>, state: RunState) -> Result<Report, Error> {
    preflight(s, &ui)?;
    let engine = Engine::connect(s.timeout, s.timeout)
        .await
        .map_err(|e| Error::Environment(e.to_string()))?;
    let p = prepare(s, &ui, Intent::Build, Some(&engine)).await?;
    let to_build: Vec<&Decision> = p.decisions.iter().filter(|d| d.reuse.is_none()).collect();
    let mut outcomes = Vec::new();
    let mut units = Vec::new();
    if !to_build.is_empty() {
        let entries =
            walk::list(&s.dir, &p.inputs.ignore, &[".dockerignore"]).map_err(|e| Error::Input {
                path: s.dir.clone(),
                message: format!("cannot read the build context: {e}"),
            })?;
        ui.debug(&format!("build context: {} entries", entries.len()));
        let cache_from = pull_latest(&engine, p.dest.as_ref(), &to_build, &ui).await;
        let stages = to_build.iter().map(|d| d.target.stage).collect();
        units = plan::schedule(&p.inputs.needed(), &stages);
        outcomes = run_units(
            s,
            &p.inputs,
            &units,
            &p.decisions,
            &engine,
            p.dest.as_ref(),
            &p.commit,
            entries,
            cache_from,
            ui.clone(),
            &state,
        )
        .await;
    }
    match state.reason() {
        Some(CancelReason::Interrupted) => return Err(Error::Interrupted),
        Some(CancelReason::TargetFailed) => remove_build_containers(&state, &ui).await,
        None => {}
    }
    let failures: Vec<TargetFailure> = outcomes
        .iter()
        .filter_map(|o| o.1.failure.clone())
        .collect();
    // Every failure is reported (a registry failure of one target must not
    // hide another's build error); one caused by the environment makes it exit 3.
    if !failures.is_empty() {
        return Err(Error::Targets {
            environment: failures.iter().any(|f| f.environment),
            failures,
            total: units.len(),
        });
    }

    finish(s, &state, &p, &engine, &units, &outcomes, &ui).await
}

async fn resolve_destination(
    s: &Settings,
    inputs: &Inputs,
    ui: &Ui,
    intent: Intent,
) -> Result<Option<Destination>, Error> {
    let env = |e: crate::registry::RegistryError| Error::Environment(e.to_string());
    if s.local {
        let Some(host) = &s.registry else {
            ui.info("--local without --registry: images are only tagged in the local engine");
            return Ok(None);
        };
        let registry =
            Registry::new(host, s.registry_credentials.clone(), retry_policy(s)).map_err(env)?;
        return Ok(Some(Destination {
            host: host.clone(),
            registry,
            creds: s.registry_credentials.clone(),
        }));
    }
    let session = crate::registry::ecr::connect(
        inputs.taskdef.region_hint(),
        retry_policy(s).request_timeout,
    )
    .await
    .map_err(|e| Error::Environment(e.to_string()))?;
    ui.info(&format!(
        "AWS account {}, region {}, registry {}",
        session.account, session.region, session.registry_host
    ));
    let repos: Vec<String> = inputs
        .targets
        .iter()
        .flat_map(|t| t.repositories.iter().cloned())
        .collect();
    if intent == Intent::Build {
        let created = session
            .ensure_repositories(&repos, s.create_repos)
            .await
            .map_err(|e| Error::Environment(e.to_string()))?;
        for r in created {
            ui.info(&format!("created ECR repository {r}"));
        }
    }
    let host = s
        .registry
        .clone()
        .unwrap_or_else(|| session.registry_host.clone());
    let creds = Some(session.credentials.clone());
    let registry = Registry::new(&host, creds.clone(), retry_policy(s)).map_err(env)?;
    Ok(Some(Destination {
        host,
        registry,
        creds,
    }))
}

/// Removes the intermediate containers of the builds this run started and
/// did not finish (after an interrupt or a `--fail-fast` stop).
pub async fn remove_build_containers(state: &RunState, ui: &Ui) {
    // Give the engine a moment to notice the closed build connections first.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let live = state.live_containers();
    if live.is_empty() {
        return;
    }
    let timeout = Duration::from_secs(20);
    let Ok(engine) = Engine::connect(timeout, timeout).await else {
        ui.always("stackbake: cannot reach the engine to remove build containers");
        return;
    };
    for id in live {
        match engine.remove_container(&id).await {
            Ok(()) => ui.always(&format!("stackbake: removed build container {id}")),
            Err(e) if e.to_string().contains("No such container") => {}
            Err(e) => ui.always(&format!("stackbake: {e}")),
        }
    }
}

/// The registry client's retries: `--timeout` lowers the per-request
/// timeout (a manifest request never needs more than the default).
fn retry_policy(s: &Settings) -> RetryPolicy {
    let d = RetryPolicy::default();
    RetryPolicy {
        attempts: s.retries + 1,
        request_timeout: s.timeout.min(d.request_timeout),
        ..d
    }
}

/// Pulls every target's `latest` (in parallel; a missing one is normal) and
/// returns the cache sources for the builds.
async fn pull_latest(
    engine: &Engine,
    dest: Option<&Destination>,
    to_build: &[&Decision],
    ui: &Ui,
) -> Vec<String> {
    let refs: Vec<String> = to_build
        .iter()
        .filter_map(|d| d.target.repositories.first())
        .map(|repo| match dest {
            Some(d) => format!("{}/{repo}:latest", d.host),
            None => format!("{repo}:latest"),
        })
        .collect();
    let Some(d) = dest else {
        // Local only: the previous run's local `latest` tags are the cache.
        return refs;
    };
    let pulls = refs.iter().map(|r| {
        let engine = engine.clone();
        let creds = d.docker_creds();
        async move { (r.clone(), engine.pull(r, creds).await) }
    });
    let mut cache = Vec::new();
    for (r, res) in futures_util::future::join_all(pulls).await {
        match res {
            Ok(true) => {
                ui.info(&format!("pulled {r} as build cache"));
                cache.push(r);
            }
            Ok(false) => ui.info(&format!(
                "no {r} yet (first build): building without its cache"
            )),
            Err(e) => ui.info(&format!(
                "could not pull {r} as cache, building without it: {e}"
            )),
        }
    }
    cache
}

/// The decision whose repositories and fingerprint a unit's image gets: only
/// a target being built has one. A stage built as a shared base of other
/// targets gets none even when it is also a target, because that target may
/// be reused, and a reused target is neither pushed nor retagged.
fn unit_decision<'a>(unit: &Unit, decisions: &'a [Decision]) -> Option<&'a Decision> {
    if !unit.is_target {
        return None;
    }
    decisions
        .iter()
        .find(|d| d.target.stage == unit.stage && d.reuse.is_none())
}

#[allow(clippy::too_many_arguments)]
async fn run_units(
    s: &Settings,
    inputs: &Inputs,
    units: &[Unit],
    decisions: &[Decision],
    engine: &Engine,
    dest: Option<&Destination>,
    commit: &str,
    entries: Vec<Entry>,
    cache_from: Vec<String>,
    ui: Arc<Ui>,
    state: &RunState,
) -> Vec<(usize, UnitOutcome)> {
    let entries = Arc::new(entries);
    let mut outcomes: Vec<Option<UnitOutcome>> = (0..units.len()).map(|_| None).collect();
    let mut started = vec![false; units.len()];
    let mut set: JoinSet<(usize, UnitOutcome)> = JoinSet::new();
    let mut task_unit: HashMap<tokio::task::Id, usize> = HashMap::new();
    let build_args: HashMap<String, String> = s.build_args.clone().into_iter().collect();
    loop {
        for i in 0..units.len() {
            if started[i] || set.len() >= s.jobs {
                continue;
            }
            if state.is_cancelled() {
                started[i] = true;
                outcomes[i] = Some(UnitOutcome {
                    failure: Some(TargetFailure::stopped(
                        inputs.stage_label(units[i].stage),
                        "build",
                        "not started: the run was stopped (--fail-fast or a signal)",
                    )),
                    ..Default::default()
                });
                continue;
            }
            let deps = &units[i].after;
            if deps.iter().any(|d| outcomes[*d].is_none()) {
                continue;
            }
            started[i] = true;
            let label = inputs.stage_label(units[i].stage);
            if let Some(failed) = deps
                .iter()
                .find(|d| outcomes[**d].as_ref().is_some_and(|o| o.failure.is_some()))
            {
                let dep = inputs.stage_label(units[*failed].stage);
                outcomes[i] = Some(UnitOutcome {
                    failure: Some(TargetFailure::stopped(
                        label,
                        "build",
                        format!("not built: the stage {dep:?} it needs failed"),
                    )),
                    ..Default::default()
                });
                continue;
            }
            // Cache sources: every image this run built so far, plus the pulled `latest`s.
            let mut cache = cache_from.clone();
            cache.extend(outcomes.iter().flatten().filter_map(|o| o.image_id.clone()));
            let decision = unit_decision(&units[i], decisions);
            let job = UnitJob {
                index: i,
                label,
                dockerfile: inputs.dockerfile.pruned(&units[i].keep),
                root: s.dir.clone(),
                entries: Arc::new(narrow_context(
                    inputs,
                    &units[i].keep,
                    &s.build_args,
                    &entries,
                )),
                request_args: build_args.clone(),
                cache,
                repositories: decision
                    .map(|d| d.target.repositories.clone())
                    .unwrap_or_default(),
                fingerprint: decision.map(|d| d.fingerprint.clone()),
                registry: dest.map(|d| d.registry.clone()),
                dest_host: dest.map(|d| d.host.clone()),
                creds: dest.and_then(|d| d.creds.clone()),
                retries: s.retries,
                commit: commit.to_string(),
                engine: engine.clone(),
                ui: ui.clone(),
                state: state.clone(),
            };
            let handle = set.spawn(job.run());
            task_unit.insert(handle.id(), i);
        }
        match set.join_next_with_id().await {
            Some(Ok((_, (i, outcome)))) => {
                if outcome.failure.is_some() && s.fail_fast {
                    state.cancel(CancelReason::TargetFailed);
                }
                outcomes[i] = Some(outcome);
            }
            Some(Err(e)) => {
                // A panicking task is a bug; report it as that unit's failure.
                ui.always(&format!("internal error in a build task: {e}"));
                if let Some(&i) = task_unit.get(&e.id()) {
                    let mut f = TargetFailure::stopped(
                        inputs.stage_label(units[i].stage),
                        "build",
                        format!("internal error: {e}"),
                    );
                    f.hint = "please report this as a stackbake bug".into();
                    outcomes[i] = Some(UnitOutcome {
                        failure: Some(f),
                        ..Default::default()
                    });
                }
            }
            None => {
                // Nothing runs and nothing can start: every unit is decided.
                for i in 0..units.len() {
                    if outcomes[i].is_none() {
                        outcomes[i] = Some(UnitOutcome {
                            failure: Some(TargetFailure::stopped(
                                inputs.stage_label(units[i].stage),
                                "build",
                                "not started: a stage it needs did not finish",
                            )),
                            ..Default::default()
                        });
                    }
                }
                break;
            }
        }
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| (i, o.unwrap_or_default()))
        .collect()
}

/// One unit's build and push, run on its own task.
struct UnitJob {
    index: usize,
    label: String,
    dockerfile: String,
    root: std::path::PathBuf,
    entries: Arc<Vec<Entry>>,
    request_args: HashMap<String, String>,
    cache: Vec<String>,
    repositories: Vec<String>,
    fingerprint: Option<Fingerprint>,
    registry: Option<Registry>,
    dest_host: Option<String>,
    /// Registry credentials (redacting `Debug`); turned into the engine's
    /// form only at each call.
    creds: Option<Credentials>,
    retries: u32,
    commit: String,
    engine: Engine,
    ui: Arc<Ui>,
    state: RunState,
}

impl UnitJob {
    async fn run(self) -> (usize, UnitOutcome) {
        let index = self.index;
        let state = self.state.clone();
        let label = self.label.clone();
        tokio::select! {
            biased;
            () = state.cancelled() => (index, UnitOutcome {
                failure: Some(TargetFailure::stopped(label, "build", "cancelled: the run was stopped (--fail-fast or a signal)".to_string())),
                ..Default::default()
            }),
            r = self.work() => r,
        }
    }

    async fn work(self) -> (usize, UnitOutcome) {
        let started = Instant::now();
        let tail: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut outcome = UnitOutcome::default();
        let state = &self.state;
        let log = |ui: &Ui, label: &str, tail: &Mutex<Vec<String>>, line: &str| {
            state.observe_build_line(line);
            ui.log(label, line);
            let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
            t.push(line.to_string());
            if t.len() > LOG_TAIL {
                t.remove(0);
            }
        };
        self.ui.status(&self.label, "building");
        // Deployable images carry their fingerprint (and provenance) in one
        // LABEL step; shared stages get none, so they stay cache-identical.
        let dockerfile = match &self.fingerprint {
            Some(fp) => with_labels(
                &self.dockerfile,
                &BTreeMap::from([
                    (fingerprint::LABEL.to_string(), fp.as_digest()),
                    ("dev.stackbake.stage".to_string(), self.label.clone()),
                    (BUILD_LABEL.to_string(), "1".to_string()),
                    (
                        "org.opencontainers.image.revision".to_string(),
                        self.commit.clone(),
                    ),
                ]),
            ),
            None => self.dockerfile.clone(),
        };
        let context = crate::context::tarball::tar_stream(
            self.root.clone(),
            self.entries.as_ref().clone(),
            Some((DOCKERFILE_IN_CONTEXT.to_string(), dockerfile.into_bytes())),
        );
        let req = BuildRequest {
            dockerfile: DOCKERFILE_IN_CONTEXT.to_string(),
            build_args: self.request_args.clone(),
            cache_from: self.cache.clone(),
            registry_auth: self.dest_host.as_ref().and_then(|h| {
                docker_creds(h, self.creds.as_ref()).map(|c| HashMap::from([(h.clone(), c)]))
            }),
        };
        let built = self
            .engine
            .build(req, context, |l| log(&self.ui, &self.label, &tail, l))
            .await;
        let image_id = match built {
            Ok(id) => id,
            Err(e) => {
                outcome.failure = Some(self.failure("build", &e, &tail));
                outcome.seconds = started.elapsed().as_secs_f64();
                return (self.index, outcome);
            }
        };
        outcome.image_id = Some(image_id.clone());
        for repo in &self.repositories {
            let full_repo = match &self.dest_host {
                Some(h) => format!("{h}/{repo}"),
                None => repo.clone(),
            };
            if let Err(e) = self.engine.tag(&image_id, &full_repo, &self.commit).await {
                outcome.failure = Some(self.failure("tag", &e, &tail));
                break;
            }
            let Some(registry) = &self.registry else {
                // Local only: the fingerprint tag marks the image for reuse.
                if let Some(fp) = &self.fingerprint
                    && let Err(e) = self.engine.tag(&image_id, &full_repo, &fp.tag()).await
                {
                    outcome.failure = Some(self.failure("tag", &e, &tail));
                    break;
                }
                outcome.pushed.insert(repo.clone(), (None, 0));
                continue;
            };
            self.ui
                .status(&self.label, &format!("pushing {full_repo}:{}", self.commit));
            let mut attempt = 1;
            let pushed = loop {
                let r = self
                    .engine
                    .push(
                        &full_repo,
                        &self.commit,
                        docker_creds(registry.host(), self.creds.as_ref()),
                        |l| {
                            log(&self.ui, &self.label, &tail, l);
                        },
                    )
                    .await;
                match r {
                    Err(e) if attempt <= self.retries && crate::engine::is_transient(&e) => {
                        let wait = Duration::from_millis(500 * 2u64.pow(attempt.min(5)));
                        self.ui.status(
                            &self.label,
                            &format!("push failed ({e}); retrying in {:.1}s", wait.as_secs_f64()),
                        );
                        tokio::time::sleep(wait).await;
                        attempt += 1;
                    }
                    other => break other,
                }
            };
            match pushed {
                Ok(p) => {
                    // The image is fully pushed: only now may its fingerprint tag point at it.
                    // Copied from the pushed digest, not the commit tag, which another
                    // build of the same commit could have moved meanwhile.
                    if let Some(fp) = &self.fingerprint
                        && let Err(e) = registry.copy_tag(repo, &p.digest, &fp.tag()).await
                    {
                        let mut f =
                            TargetFailure::stopped(self.label.clone(), "push", e.to_string());
                        // The registry, not the target, failed: exit 3 (SPEC).
                        f.environment = true;
                        outcome.failure = Some(f);
                        break;
                    }
                    outcome
                        .pushed
                        .insert(repo.clone(), (Some(p.digest), p.bytes_pushed));
                }
                Err(e) => {
                    outcome.failure = Some(self.failure("push", &e, &tail));
                    break;
                }
            }
        }
        outcome.seconds = started.elapsed().as_secs_f64();
        if outcome.failure.is_none() {
            self.ui
                .status(&self.label, &format!("done in {:.1}s", outcome.seconds));
        }
        (self.index, outcome)
    }

    fn failure(
        &self,
        step: &'static str,
        e: &EngineError,
        tail: &Mutex<Vec<String>>,
    ) -> TargetFailure {
        let hint = match (step, e) {
            ("build", _) => {
                "fix the failing instruction shown above; `docker build --target` reproduces it"
                    .to_string()
            }
            ("push", _) => format!(
                "check that {} accepts pushes with these credentials and that the repository exists",
                self.dest_host.as_deref().unwrap_or("the registry")
            ),
            _ => String::new(),
        };
        TargetFailure {
            target: self.label.clone(),
            step,
            message: e.to_string(),
            log_tail: tail.lock().unwrap_or_else(|p| p.into_inner()).clone(),
            hint,
            environment: matches!(e, EngineError::Unreachable { .. }),
        }
    }
}

async fn finish(
    s: &Settings,
    state: &RunState,
    p: &Prepared,
    engine: &Engine,
    units: &[Unit],
    outcomes: &[(usize, UnitOutcome)],
    ui: &Ui,
) -> Result<Report, Error> {
    let env = |e: crate::registry::RegistryError| Error::Environment(e.to_string());
    let commit = p.commit.as_str();
    if state.is_cancelled() {
        return Err(Error::Interrupted);
    }
    let dest = p.dest.as_ref();
    let outcome_of = |stage: usize| {
        units
            .iter()
            .position(|u| u.stage == stage)
            .and_then(|i| outcomes.get(i))
            .map(|o| &o.1)
    };
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
                    ui.status(
                        &d.target.name,
                        &format!(
                            "reused {}{repo}@{from} as :{commit}",
                            dest.map(|x| format!("{}/", x.host)).unwrap_or_default(),
                        ),
                    );
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
        // Every pinned digest must exist in the registry before the taskdef names it.
        let image = match (dest, &digest) {
            (Some(dst), Some(dg)) => {
                if dst
                    .registry
                    .manifest_digest(repository, dg)
                    .await
                    .map_err(env)?
                    .is_none()
                {
                    return Err(Error::Environment(format!(
                        "{}/{repository}@{dg} is missing from the registry right after the push; not writing an artifact that names it",
                        dst.host
                    )));
                }
                format!("{}/{repository}@{dg}", dst.host)
            }
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
        external: externals(&p.inputs),
    };
    // Written and synced under temporary names: a full disk or an unwritable
    // out dir fails here, before `latest` moves.
    let staged = artifact::stage(&s.out, artifact_files(s, &p.inputs, &pins, &report)?)?;
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
    let written = staged.commit()?;
    ui.info(&format!("artifact written to {}", s.out.display()));
    for path in written {
        ui.debug(&format!("  {}", path.display()));
    }
    Ok(report)
}

/// Runs `stackbake check`'s rules before anything is built: an error
/// finding stops the build (exit 2) before a minute is spent on it;
/// warnings are shown and the build goes on.
fn preflight(s: &Settings, ui: &Ui) -> Result<(), Error> {
    let files = crate::check::ProjectFiles {
        dir: s.dir.clone(),
        dockerfile: s.dockerfile.clone(),
        taskdef: s.taskdef.clone(),
        appspec: s.appspec.clone(),
        buildspec: s.dir.join("buildspec.yml"),
    };
    let mut findings = crate::check::check_with(&files, &s.targets, s.registry.as_deref());
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
    if crate::check::has_errors(&findings) {
        ui.always(crate::check::render_human(&findings).trim_end());
        return Err(Error::Findings(
            "the checks above found errors, so nothing was built; fix them (or run `stackbake check`)".to_string(),
        ));
    }
    ui.info(crate::check::render_human(&findings).trim_end());
    Ok(())
}

/// Gives `repo:from` the extra tag `to`: a manifest copy in the registry
/// (the digest stays the same), or a local tag when there is no registry.
async fn retag(
    dest: Option<&Destination>,
    engine: &Engine,
    repo: &str,
    from: &str,
    to: &str,
) -> Result<(), Error> {
    match dest {
        Some(d) => d
            .registry
            .copy_tag(repo, from, to)
            .await
            .map(|_| ())
            .map_err(|e| Error::Environment(e.to_string())),
        None => engine
            .tag(&format!("{repo}:{from}"), repo, to)
            .await
            .map_err(|e| Error::Environment(e.to_string())),
    }
}

/// The report's file name in `--out`.
const REPORT_FILE: &str = "stackbake-report.json";
/// CodePipeline's ECS (standard) deploy input.
const IMAGE_DEFINITIONS_FILE: &str = "imagedefinitions.json";
/// CodePipeline's ECS blue/green image input.
const IMAGE_DETAIL_FILE: &str = "imageDetail.json";

/// The files stackbake generates (the taskdef and appspec it writes carry
/// the inputs' names).
const GENERATED: [&str; 3] = [REPORT_FILE, IMAGE_DEFINITIONS_FILE, IMAGE_DETAIL_FILE];

/// What of stackbake's own output lies inside the build context (`--dir`), as
/// paths relative to it. Left in the context, the report (it holds timings)
/// would change the fingerprint of any stage that copies the whole context on
/// every run, and last run's artifact would ship inside the image.
/// - `--out` below `--dir` (as `--local`'s default `stackbake-out`): all of it;
/// - `--out` being the taskdef's own directory (in place): only the files
///   stackbake generates there, never the user's taskdef, appspec or others.
fn own_output(dir: &Path, out: &Path, taskdef: &Path) -> Vec<String> {
    let (Some(dir), Some(out)) = (resolved(dir), resolved(out)) else {
        return Vec::new();
    };
    let Some(rel) = out.strip_prefix(&dir).ok().and_then(Path::to_str) else {
        return Vec::new();
    };
    let in_place = taskdef
        .parent()
        .and_then(resolved)
        .is_some_and(|t| t == out);
    if in_place || rel.is_empty() {
        GENERATED
            .iter()
            .map(|f| {
                if rel.is_empty() {
                    f.to_string()
                } else {
                    format!("{rel}/{f}")
                }
            })
            .collect()
    } else {
        vec![rel.to_string()]
    }
}

/// `p` absolute with symlinks resolved, also when its last components do not
/// exist yet (an `--out` directory the run will create).
fn resolved(p: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(p).ok()?;
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(mut c) = base.canonicalize() {
            c.extend(rest.iter().rev());
            return Some(c);
        }
        rest.push(base.file_name()?);
        base = base.parent()?;
    }
}

/// Every file of the artifact, in memory, in taskdef order.
fn artifact_files(
    s: &Settings,
    inputs: &Inputs,
    pins: &BTreeMap<String, String>,
    report: &Report,
) -> Result<Vec<OutFile>, Error> {
    let taskdef = td::rewrite::pin_images(&inputs.taskdef, pins).map_err(|e| Error::Input {
        path: s.taskdef.clone(),
        message: e.to_string(),
    })?;
    let definitions: Vec<(String, String)> = inputs
        .mappings
        .iter()
        .filter_map(|m| {
            let c = m.container();
            pins.get(c).map(|i| (c.to_string(), i.clone()))
        })
        .collect();
    let mut files = vec![
        OutFile {
            name: REPORT_FILE.to_string(),
            content: report.to_json().into_bytes(),
        },
        OutFile {
            name: IMAGE_DEFINITIONS_FILE.to_string(),
            content: td::image_definitions_json(&definitions).into_bytes(),
        },
    ];
    if let Some(lb) = &inputs.appspec.lb_container {
        let uri = pins.get(lb).cloned().or_else(|| {
            inputs
                .taskdef
                .containers()
                .into_iter()
                .find(|c| &c.name == lb)
                .map(|c| c.image)
        });
        if let Some(uri) = uri {
            files.push(OutFile {
                name: IMAGE_DETAIL_FILE.to_string(),
                content: td::image_detail_json(&uri).into_bytes(),
            });
        }
    }
    // The appspec and taskdef keep their names (`--appspec`, `--taskdef`): the
    // pipeline's deploy action names them. The appspec is copied only when
    // the out dir is not where it already is.
    let appspec_name = file_name(&s.appspec)?;
    if !same_file(&s.out.join(&appspec_name), &s.appspec) {
        files.push(OutFile {
            name: appspec_name,
            content: inputs.appspec_text.clone().into_bytes(),
        });
    }
    // Last, so that whoever sees the new taskdef sees the rest with it.
    files.push(OutFile {
        name: file_name(&s.taskdef)?,
        content: taskdef.into_bytes(),
    });
    Ok(files)
}

fn file_name(path: &Path) -> Result<String, Error> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| Error::Input {
            path: path.to_path_buf(),
            message: "not a file name stackbake can write (it must end in a UTF-8 file name)"
                .to_string(),
        })
}

/// Whether `a` and `b` name the same file (`a` may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    match (resolved(a), resolved(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// The part of the context that the stages `keep` read: what their
/// `COPY`/`ADD` sources select, the directories above it, and the
/// `.dockerignore`. Sending only this makes a build's upload proportional
/// to what it uses, not to the repository; the engine's cache keys (the
/// checksums of the copied files) are unchanged. Falls back to the whole
/// context if a source cannot be resolved (the build will then report it).
fn narrow_context(
    inputs: &Inputs,
    keep: &[usize],
    build_args: &BTreeMap<String, String>,
    entries: &[Entry],
) -> Vec<Entry> {
    let mut wanted: std::collections::BTreeSet<String> = std::collections::BTreeSet::new();
    wanted.insert(".dockerignore".to_string());
    for &stage in keep {
        let Ok(sources) = inputs.dockerfile.context_sources(stage, build_args) else {
            return entries.to_vec();
        };
        let mut per_line: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        for src in sources {
            if let crate::dockerfile::ContextSource::Local { path, line } = src {
                per_line.entry(line).or_default().push(path);
            }
        }
        for sources in per_line.values() {
            match crate::context::hash::selected_paths(entries, sources) {
                Ok(paths) => wanted.extend(paths),
                Err(_) => return entries.to_vec(),
            }
        }
    }
    if wanted.contains("") {
        return entries.to_vec();
    }
    let ancestors: Vec<String> = wanted
        .iter()
        .flat_map(|p| {
            p.match_indices('/')
                .map(|(i, _)| p[..i].to_string())
                .collect::<Vec<_>>()
        })
        .collect();
    wanted.extend(ancestors);
    entries
        .iter()
        .filter(|e| wanted.contains(&e.rel))
        .cloned()
        .collect()
}

/// Appends one `LABEL` instruction with every label to the (pruned)
/// Dockerfile, whose last stage is the one being built. One instruction is
/// one build step; the engine's `labels` parameter would add a step per
/// label. Labels whose value could need escaping are left out (ours are
/// digests, stage names and validated tags).
fn with_labels(dockerfile: &str, labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .filter(|(k, v)| !format!("{k}{v}").contains(['"', '\\', '`', '\n', '$']))
        .map(|(k, v)| format!("\"{k}\"=\"{v}\""))
        .collect();
    let mut out = dockerfile.trim_end().to_string();
    if !pairs.is_empty() {
        out.push_str("\nLABEL ");
        out.push_str(&pairs.join(" "));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn each_build_is_sent_only_the_files_its_stages_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let args = BTreeMap::new();
        let inputs = inputs::load(
            &root.join("Dockerfile"),
            &root.join("taskdef.json"),
            &root.join("appspec.yaml"),
            root,
            &[],
            &args,
            None,
        )
        .expect("example stack loads");
        let entries = walk::list(root, &inputs.ignore, &[".dockerignore"]).expect("walk");
        let api = inputs.dockerfile.stage_index("api").expect("api");
        let sent: Vec<String> = narrow_context(&inputs, &inputs.graph.needed(api), &args, &entries)
            .into_iter()
            .map(|e| e.rel)
            .collect();
        assert!(sent.contains(&".dockerignore".to_string()));
        assert!(sent.contains(&"app/api/index.json".to_string()), "{sent:?}");
        assert!(
            sent.contains(&"app/shared/config.txt".to_string()),
            "{sent:?}"
        );
        assert!(
            sent.contains(&"app".to_string()),
            "parents are kept: {sent:?}"
        );
        assert!(
            !sent
                .iter()
                .any(|p| p.starts_with("app/nginx") || p.starts_with("app/sidecar")),
            "{sent:?}"
        );
        assert!(sent.len() < entries.len());
    }

    #[test]
    fn a_reused_target_built_as_a_shared_base_is_not_pushed() {
        // 0 base; 1 api FROM base; 2 worker FROM api; 3 migrate FROM api.
        let needed = vec![vec![0], vec![0, 1], vec![0, 1, 2], vec![0, 1, 3]];
        let decision = |stage: usize, name: &str, reused: bool| Decision {
            target: inputs::Target {
                stage,
                name: name.to_string(),
                repositories: vec![format!("bash-dog-{name}")],
            },
            fingerprint: crate::fingerprint::Fingerprint::from_bytes([stage as u8; 32]),
            reuse: reused.then(BTreeMap::new),
            reason: if reused { "unchanged" } else { "changed" },
        };
        let repos = |units: &[Unit], decisions: &[Decision]| -> Vec<(usize, Option<String>)> {
            units
                .iter()
                .map(|u| {
                    let d = unit_decision(u, decisions);
                    (u.stage, d.map(|d| d.target.repositories.join(",")))
                })
                .collect()
        };

        // api unchanged (reused), worker and migrate changed: api is built
        // once as their base, but gets no repository, so nothing pushes it.
        let decisions = vec![
            decision(1, "api", true),
            decision(2, "worker", false),
            decision(3, "migrate", false),
        ];
        let units = crate::plan::schedule(&needed, &BTreeSet::from([2, 3]));
        assert_eq!(
            repos(&units, &decisions),
            vec![
                (1, None),
                (2, Some("bash-dog-worker".to_string())),
                (3, Some("bash-dog-migrate".to_string())),
            ]
        );

        // api changed too: now its unit is the target and is pushed (and
        // base, needed by all three, is a shared unit of its own).
        let decisions = vec![
            decision(1, "api", false),
            decision(2, "worker", false),
            decision(3, "migrate", false),
        ];
        let units = crate::plan::schedule(&needed, &BTreeSet::from([1, 2, 3]));
        assert_eq!(
            repos(&units, &decisions),
            vec![
                (0, None),
                (1, Some("bash-dog-api".to_string())),
                (2, Some("bash-dog-worker".to_string())),
                (3, Some("bash-dog-migrate".to_string())),
            ]
        );
    }

    #[test]
    fn own_output_inside_the_context_is_found() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("project");
        std::fs::create_dir_all(dir.join("existing")).expect("mkdir");
        std::fs::create_dir_all(dir.join("deploy")).expect("mkdir");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        let taskdef = dir.join("taskdef.json");
        let rel = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // In place at the root: the generated files only.
        assert_eq!(
            own_output(&dir, &dir, &taskdef),
            rel(&[
                "stackbake-report.json",
                "imagedefinitions.json",
                "imageDetail.json"
            ])
        );
        // In place next to a taskdef in deploy/: deploy's other files stay in.
        assert_eq!(
            own_output(
                &dir,
                &dir.join("deploy"),
                &dir.join("deploy/taskdef.prod.json")
            ),
            rel(&[
                "deploy/stackbake-report.json",
                "deploy/imagedefinitions.json",
                "deploy/imageDetail.json"
            ])
        );
        // An out dir of its own below --dir: all of it.
        assert_eq!(
            own_output(&dir, &dir.join("stackbake-out"), &taskdef),
            rel(&["stackbake-out"])
        );
        assert_eq!(
            own_output(&dir, &dir.join("existing"), &taskdef),
            rel(&["existing"])
        );
        assert_eq!(
            own_output(&dir, &dir.join("a/./b"), &taskdef),
            rel(&["a/b"])
        );
        assert_eq!(
            own_output(&link, &dir.join("out"), &taskdef),
            rel(&["out"]),
            "through a symlink"
        );
        assert!(own_output(&dir, &t.path().join("elsewhere"), &taskdef).is_empty());
        assert!(
            own_output(&dir, t.path(), &taskdef).is_empty(),
            "a parent of --dir"
        );
    }

    #[test]
    fn labels_are_one_instruction_at_the_end_of_the_built_stage() {
        let df = "ARG B=x\nFROM $B AS base\nRUN a\nFROM base AS t\nRUN b\n\n";
        let labels = BTreeMap::from([
            (
                "dev.stackbake.fingerprint".to_string(),
                "sha256:ab".to_string(),
            ),
            (
                "org.opencontainers.image.revision".to_string(),
                "abc1234".to_string(),
            ),
            ("bad".to_string(), "x\"y".to_string()),
        ]);
        let out = with_labels(df, &labels);
        let parsed = crate::dockerfile::parse(&out).expect("still parses");
        let last = parsed
            .stages
            .last()
            .and_then(|s| s.instructions.last())
            .expect("last");
        assert_eq!(last.keyword, "LABEL");
        assert_eq!(
            last.raw,
            "LABEL \"dev.stackbake.fingerprint\"=\"sha256:ab\" \"org.opencontainers.image.revision\"=\"abc1234\""
        );
        assert_eq!(
            parsed.stages[0].instructions.len(),
            1,
            "other stages untouched"
        );
    }
}

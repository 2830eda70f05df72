//! The `build` pipeline, SPEC steps 1–9: load inputs, resolve the registry,
//! pull caches, build the schedule's units in parallel, push, move
//! `latest`, verify, and write the artifact — the last two only when every
//! target succeeded.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bollard::auth::DockerCredentials;
use tokio::task::JoinSet;

use crate::artifact::{self, OutFile};
use crate::config::{self, Settings};
use crate::context::walk::{self, Entry};
use crate::engine::{BuildRequest, Engine, EngineError};
use crate::error::{Error, TargetFailure};
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
/// Engine request timeout (headers; streams are not cut).
const ENGINE_TIMEOUT: Duration = Duration::from_secs(600);

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
        self.creds.as_ref().map(|c| DockerCredentials {
            username: Some(c.username.clone()),
            password: Some(c.password.expose().to_string()),
            serveraddress: Some(self.host.clone()),
            ..Default::default()
        })
    }
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

/// Runs `stackbake build`.
pub async fn build(s: &Settings, ui: Arc<Ui>) -> Result<Report, Error> {
    let inputs = inputs::load(
        &s.dockerfile,
        &s.taskdef,
        &s.appspec,
        &s.dir,
        &s.targets,
        &s.build_args,
        s.registry.as_deref(),
    )?;
    let commit = config::commit_tag(s)?;
    let dest = resolve_destination(s, &inputs, &ui).await?;
    let engine = Engine::connect(ENGINE_TIMEOUT)
        .await
        .map_err(|e| Error::Environment(e.to_string()))?;
    if let Some(d) = &dest {
        d.registry
            .ping()
            .await
            .map_err(|e| Error::Environment(e.to_string()))?;
    }
    let entries =
        walk::list(&s.dir, &inputs.ignore, &[".dockerignore"]).map_err(|e| Error::Input {
            path: s.dir.clone(),
            message: format!("cannot read the build context: {e}"),
        })?;
    ui.debug(&format!("build context: {} entries", entries.len()));

    let cache_from = pull_latest(&engine, dest.as_ref(), &inputs, &ui).await;
    let units = plan::schedule(&inputs.needed(), &inputs.target_stages());
    let outcomes = run_units(
        s,
        &inputs,
        &units,
        &engine,
        dest.as_ref(),
        &commit,
        entries,
        cache_from,
        ui.clone(),
    )
    .await;

    let failures: Vec<TargetFailure> = outcomes
        .iter()
        .filter_map(|o| o.1.failure.as_ref())
        .map(|f| TargetFailure {
            target: f.target.clone(),
            step: f.step,
            message: f.message.clone(),
            log_tail: f.log_tail.clone(),
            hint: f.hint.clone(),
        })
        .collect();
    if !failures.is_empty() {
        return Err(Error::Targets {
            failures,
            total: units.len(),
        });
    }

    let report = finish(
        s,
        &inputs,
        &engine,
        dest.as_ref(),
        &commit,
        &units,
        &outcomes,
        &ui,
    )
    .await?;
    Ok(report)
}

async fn resolve_destination(
    s: &Settings,
    inputs: &Inputs,
    ui: &Ui,
) -> Result<Option<Destination>, Error> {
    let env = |e: crate::registry::RegistryError| Error::Environment(e.to_string());
    if s.local {
        let Some(host) = &s.registry else {
            ui.info("--local without --registry: images are only tagged in the local engine");
            return Ok(None);
        };
        let registry = Registry::new(host, s.registry_credentials.clone(), RetryPolicy::default())
            .map_err(env)?;
        return Ok(Some(Destination {
            host: host.clone(),
            registry,
            creds: s.registry_credentials.clone(),
        }));
    }
    let session = crate::registry::ecr::connect(inputs.taskdef.region_hint())
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
    let created = session
        .ensure_repositories(&repos, s.create_repos)
        .await
        .map_err(|e| match e {
            crate::registry::ecr::AwsError::RepositoryMissing { .. } => Error::Usage(e.to_string()),
            other => Error::Environment(other.to_string()),
        })?;
    for r in created {
        ui.info(&format!("created ECR repository {r}"));
    }
    let host = s
        .registry
        .clone()
        .unwrap_or_else(|| session.registry_host.clone());
    let creds = Some(session.credentials.clone());
    let registry = Registry::new(&host, creds.clone(), RetryPolicy::default()).map_err(env)?;
    Ok(Some(Destination {
        host,
        registry,
        creds,
    }))
}

/// Pulls every target's `latest` (in parallel; a missing one is normal) and
/// returns the cache sources for the builds.
async fn pull_latest(
    engine: &Engine,
    dest: Option<&Destination>,
    inputs: &Inputs,
    ui: &Ui,
) -> Vec<String> {
    let refs: Vec<String> = inputs
        .targets
        .iter()
        .filter_map(|t| t.repositories.first())
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

#[allow(clippy::too_many_arguments)]
async fn run_units(
    s: &Settings,
    inputs: &Inputs,
    units: &[Unit],
    engine: &Engine,
    dest: Option<&Destination>,
    commit: &str,
    entries: Vec<Entry>,
    cache_from: Vec<String>,
    ui: Arc<Ui>,
) -> Vec<(usize, UnitOutcome)> {
    let entries = Arc::new(entries);
    let mut outcomes: Vec<Option<UnitOutcome>> = (0..units.len()).map(|_| None).collect();
    let mut started = vec![false; units.len()];
    let mut set: JoinSet<(usize, UnitOutcome)> = JoinSet::new();
    let build_args: HashMap<String, String> = s.build_args.clone().into_iter().collect();
    let registry_auth: Option<HashMap<String, DockerCredentials>> = dest.and_then(|d| {
        d.docker_creds()
            .map(|c| HashMap::from([(d.host.clone(), c)]))
    });
    loop {
        for i in 0..units.len() {
            if started[i] || set.len() >= s.jobs {
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
                    failure: Some(TargetFailure {
                        target: label,
                        step: "build",
                        message: format!("not built: the stage {dep:?} it needs failed"),
                        log_tail: Vec::new(),
                        hint: String::new(),
                    }),
                    ..Default::default()
                });
                continue;
            }
            // Cache sources: every image this run built so far, plus the pulled `latest`s.
            let mut cache = cache_from.clone();
            cache.extend(outcomes.iter().flatten().filter_map(|o| o.image_id.clone()));
            let target = inputs
                .targets
                .iter()
                .find(|t| t.stage == units[i].stage)
                .cloned();
            let job = UnitJob {
                index: i,
                label,
                dockerfile: inputs.dockerfile.pruned(&units[i].keep),
                root: s.dir.clone(),
                entries: entries.clone(),
                request_args: build_args.clone(),
                cache,
                registry_auth: registry_auth.clone(),
                repositories: target.map(|t| t.repositories).unwrap_or_default(),
                dest_host: dest.map(|d| d.host.clone()),
                docker_creds: dest.and_then(Destination::docker_creds),
                commit: commit.to_string(),
                engine: engine.clone(),
                ui: ui.clone(),
            };
            set.spawn(job.run());
        }
        match set.join_next().await {
            Some(Ok((i, outcome))) => outcomes[i] = Some(outcome),
            Some(Err(e)) => {
                // A panicking task is a bug; report it as that unit's failure.
                ui.always(&format!("internal error in a build task: {e}"));
                if let Some(i) = (0..units.len()).find(|i| started[*i] && outcomes[*i].is_none()) {
                    outcomes[i] = Some(UnitOutcome {
                        failure: Some(TargetFailure {
                            target: inputs.stage_label(units[i].stage),
                            step: "build",
                            message: format!("internal error: {e}"),
                            log_tail: Vec::new(),
                            hint: "please report this as a stackbake bug".into(),
                        }),
                        ..Default::default()
                    });
                }
            }
            None => {
                if started.iter().all(|s| *s) {
                    break;
                }
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
    registry_auth: Option<HashMap<String, DockerCredentials>>,
    repositories: Vec<String>,
    dest_host: Option<String>,
    docker_creds: Option<DockerCredentials>,
    commit: String,
    engine: Engine,
    ui: Arc<Ui>,
}

impl UnitJob {
    async fn run(self) -> (usize, UnitOutcome) {
        let started = Instant::now();
        let tail: Arc<Mutex<Vec<String>>> = Arc::default();
        let mut outcome = UnitOutcome::default();
        let log = |ui: &Ui, label: &str, tail: &Mutex<Vec<String>>, line: &str| {
            ui.log(label, line);
            let mut t = tail.lock().unwrap_or_else(|p| p.into_inner());
            t.push(line.to_string());
            if t.len() > LOG_TAIL {
                t.remove(0);
            }
        };
        self.ui.status(&self.label, "building");
        let context = crate::context::tarball::tar_stream(
            self.root.clone(),
            self.entries.as_ref().clone(),
            Some((
                DOCKERFILE_IN_CONTEXT.to_string(),
                self.dockerfile.clone().into_bytes(),
            )),
        );
        let mut labels = HashMap::new();
        labels.insert(
            "org.opencontainers.image.revision".to_string(),
            self.commit.clone(),
        );
        labels.insert("dev.stackbake.stage".to_string(), self.label.clone());
        let req = BuildRequest {
            dockerfile: DOCKERFILE_IN_CONTEXT.to_string(),
            build_args: self.request_args.clone(),
            cache_from: self.cache.clone(),
            labels,
            tag: None,
            registry_auth: self.registry_auth.clone(),
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
            if self.dest_host.is_none() {
                outcome.pushed.insert(repo.clone(), (None, 0));
                continue;
            }
            self.ui
                .status(&self.label, &format!("pushing {full_repo}:{}", self.commit));
            match self
                .engine
                .push(&full_repo, &self.commit, self.docker_creds.clone(), |l| {
                    log(&self.ui, &self.label, &tail, l);
                })
                .await
            {
                Ok(p) => {
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
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn finish(
    s: &Settings,
    inputs: &Inputs,
    engine: &Engine,
    dest: Option<&Destination>,
    commit: &str,
    units: &[Unit],
    outcomes: &[(usize, UnitOutcome)],
    ui: &Ui,
) -> Result<Report, Error> {
    let env = |e: crate::registry::RegistryError| Error::Environment(e.to_string());
    let outcome_of = |stage: usize| {
        units
            .iter()
            .position(|u| u.stage == stage)
            .and_then(|i| outcomes.get(i))
            .map(|o| &o.1)
    };
    // Move `latest` only now that every target is fully pushed.
    let mut tags = vec![commit.to_string()];
    if !s.no_latest {
        tags.push("latest".to_string());
        for t in &inputs.targets {
            let Some(o) = outcome_of(t.stage) else {
                continue;
            };
            for repo in &t.repositories {
                match dest {
                    Some(d) => {
                        d.registry
                            .copy_tag(repo, commit, "latest")
                            .await
                            .map_err(env)?;
                    }
                    None => {
                        if let Some(id) = &o.image_id {
                            engine
                                .tag(id, repo, "latest")
                                .await
                                .map_err(|e| Error::Environment(e.to_string()))?;
                        }
                    }
                }
            }
        }
    }
    // Every pinned digest must exist in the registry before the taskdef names it.
    let mut pins: BTreeMap<String, String> = BTreeMap::new();
    let mut targets = Vec::new();
    let mut external = Vec::new();
    for m in &inputs.mappings {
        match m {
            Mapping::External { container, image } => external.push(ExternalReport {
                container: container.clone(),
                image: image.clone(),
            }),
            Mapping::Target {
                container,
                stage,
                repository,
                ..
            } => {
                let idx = inputs.dockerfile.stage_index(stage).unwrap_or(usize::MAX);
                let o = outcome_of(idx);
                let (digest, bytes) = o
                    .and_then(|o| o.pushed.get(repository).cloned())
                    .unwrap_or((None, 0));
                let image = match (dest, &digest) {
                    (Some(d), Some(dg)) => {
                        if d.registry
                            .manifest_digest(repository, dg)
                            .await
                            .map_err(env)?
                            .is_none()
                        {
                            return Err(Error::Environment(format!(
                                "{}/{repository}@{dg} is missing from the registry right after the push; not writing an artifact that names it",
                                d.host
                            )));
                        }
                        format!("{}/{repository}@{dg}", d.host)
                    }
                    _ => format!("{repository}:{commit}"),
                };
                pins.insert(container.clone(), image.clone());
                targets.push(TargetReport {
                    container: container.clone(),
                    target: stage.clone(),
                    repository: repository.clone(),
                    action: "built".into(),
                    reason: None,
                    fingerprint: None,
                    image: Some(image),
                    digest,
                    tags: tags.clone(),
                    seconds: o.map_or(0.0, |o| (o.seconds * 10.0).round() / 10.0),
                    bytes_pushed: bytes,
                });
            }
        }
    }
    let report = Report {
        schema_version: crate::report::SCHEMA_VERSION,
        commit_tag: commit.to_string(),
        registry: dest.map(|d| d.host.clone()),
        targets,
        external,
    };
    write_artifact(s, inputs, &pins, &report, ui)?;
    Ok(report)
}

fn write_artifact(
    s: &Settings,
    inputs: &Inputs,
    pins: &BTreeMap<String, String>,
    report: &Report,
    ui: &Ui,
) -> Result<(), Error> {
    let taskdef = td::rewrite::pin_images(&inputs.taskdef, pins).map_err(|e| Error::Input {
        path: s.taskdef.clone(),
        message: e.to_string(),
    })?;
    let mut files = vec![
        OutFile {
            name: "stackbake-report.json",
            content: report.to_json().into_bytes(),
        },
        OutFile {
            name: "imagedefinitions.json",
            content: td::image_definitions_json(
                &pins
                    .iter()
                    .map(|(c, i)| (c.clone(), i.clone()))
                    .collect::<Vec<_>>(),
            )
            .into_bytes(),
        },
        OutFile {
            name: "taskdef.json",
            content: taskdef.into_bytes(),
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
                name: "imageDetail.json",
                content: td::image_detail_json(&uri).into_bytes(),
            });
        }
    }
    if !same_dir(&s.out, &s.dir) {
        files.push(OutFile {
            name: "appspec.yaml",
            content: inputs.appspec_text.clone().into_bytes(),
        });
    }
    let written = artifact::write_all(&s.out, files)?;
    ui.info(&format!("artifact written to {}", s.out.display()));
    for p in written {
        ui.debug(&format!("  {}", p.display()));
    }
    Ok(())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

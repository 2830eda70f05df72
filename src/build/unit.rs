//! SPEC steps 6–7 for one unit: build it from its pruned Dockerfile and the
//! context files it reads (with the previous images as cache), then give
//! each of its repositories the commit tag and push it, and only after a
//! complete push, the fingerprint tag.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use tracing::Instrument;

use crate::build::decide::Decision;
use crate::build::deliver;
use crate::build::destination::Destination;
use crate::build::inputs::Inputs;
use crate::build::mirror::{self, Mirror};
use crate::build::schedule::Unit;
use crate::context::walk::Entry;
use crate::dockerfile::Rewrites;
use crate::engine::{BuildJob, Builder, Engine};
use crate::error::{Cause, Step, TargetFailure};
use crate::events::{Event, Events, Reason, UnitEvents};
use crate::fingerprint::{self, Fingerprint};
use crate::outside::{self, Outside};
use crate::registry::RetryPolicy;

/// Label set on every deployable image stackbake builds.
pub(crate) const BUILD_LABEL: &str = "dev.stackbake.build";

/// What every unit of a run shares.
pub(crate) struct Shared {
    /// Runs the builds.
    pub(crate) builder: Arc<dyn Builder>,
    /// Tags and pushes.
    pub(crate) engine: Arc<dyn Engine>,
    /// Where images go (`None`: only tagged in the local engine).
    pub(crate) dest: Option<Destination>,
    /// The commit tag.
    pub(crate) commit: String,
    /// Retries of a push.
    pub(crate) push_retries: RetryPolicy,
    /// Where the run reports.
    pub(crate) events: Events,
}

/// The image a unit produces, when the unit is a target being built: its
/// repositories and fingerprint. A stage built only as a base of others
/// (even one that is also a target, when that target is reused) gets none,
/// so it is neither tagged nor pushed.
#[derive(Debug, Clone)]
pub(crate) struct Product {
    /// Repositories, without host.
    pub(crate) repositories: Vec<String>,
    /// The fingerprint.
    pub(crate) fingerprint: Fingerprint,
}

/// One unit's build and push.
pub(crate) struct UnitJob {
    /// The unit's stage name.
    pub(crate) label: String,
    /// What the builder runs.
    pub(crate) build: BuildJob,
    /// What is pushed, if anything.
    pub(crate) product: Option<Product>,
}

/// What a finished unit left behind.
#[derive(Debug, Default)]
pub(crate) struct UnitOutcome {
    /// The built image's id.
    pub(crate) image_id: Option<String>,
    /// Wall time of build and push.
    pub(crate) seconds: f64,
    /// repository → (digest, or None when only tagged locally; bytes pushed)
    pub(crate) pushed: BTreeMap<String, (Option<String>, u64)>,
    /// Why it failed, if it did.
    pub(crate) failure: Option<TargetFailure>,
}

impl UnitOutcome {
    /// A unit that failed before doing anything.
    pub(crate) fn failed(failure: TargetFailure) -> UnitOutcome {
        UnitOutcome {
            failure: Some(failure),
            ..Default::default()
        }
    }
}

/// What every unit's job is made from.
pub(crate) struct Sources<'a> {
    /// The project's inputs.
    pub(crate) inputs: &'a Inputs,
    /// Build or reuse, per target.
    pub(crate) decisions: &'a [Decision],
    /// The build context's root.
    pub(crate) root: &'a Path,
    /// The context's entries (after `.dockerignore`).
    pub(crate) entries: &'a [Entry],
    /// `--build-arg`s.
    pub(crate) build_args: &'a BTreeMap<String, String>,
    /// The commit tag.
    pub(crate) commit: &'a str,
    /// `--mirror`s.
    pub(crate) mirrors: &'a [Mirror],
    /// What the inputs from outside the context resolved to.
    pub(crate) outside: &'a Outside,
    /// Where images go (`None`: only tagged in the local engine).
    pub(crate) dest: Option<&'a Destination>,
    /// `--secret` values.
    pub(crate) secrets: &'a Arc<std::collections::HashMap<String, crate::registry::Secret>>,
}

/// The repositories (with host) whose registry cache `unit` reads: those of
/// every target being built that needs its stage (for a target, its own
/// first), and the one it writes to (a target's first repository). None
/// without a registry.
fn cache_repos(src: &Sources<'_>, unit: &Unit) -> (Vec<String>, Option<String>) {
    let Some(dest) = src.dest else {
        return (Vec::new(), None);
    };
    let needed = src.inputs.needed();
    let own = product(unit, src.decisions)
        .and_then(|p| p.repositories.first().map(|r| dest.repository(r)));
    let mut repos: Vec<String> = own.iter().cloned().collect();
    for d in src.decisions.iter().filter(|d| d.reuse.is_none()) {
        let uses = needed
            .get(d.target.stage)
            .is_some_and(|n| n.contains(&unit.stage));
        if let (true, Some(r)) = (uses, d.target.repositories.first()) {
            let r = dest.repository(r);
            if !repos.contains(&r) {
                repos.push(r);
            }
        }
    }
    (repos, own)
}

/// The job for `unit`: its pruned Dockerfile (external images pinned to
/// the digests they resolved to, the platform ARGs the classic builder
/// lacks declared, and the fingerprint label if it is a target being
/// built), the context files its stages read, and the cache sources. A
/// unit that an expired target (`--max-age`) needs is built without cache.
pub(crate) fn job(src: &Sources<'_>, unit: &Unit, cache_from: Vec<String>) -> UnitJob {
    let Sources {
        inputs,
        decisions,
        root,
        entries,
        build_args,
        commit,
        mirrors,
        outside,
        dest,
        secrets,
    } = *src;
    let (cache_repos, cache_to) = cache_repos(src, unit);
    let label = inputs.stage_label(unit.stage);
    let product = product(unit, decisions);
    // The engine is sent each outside image pinned to the digest it was
    // resolved to (through the mirror, when one serves it); an image that
    // is not pinned (engine-only, or unresolved) still goes through the mirror.
    let image = |r: &str| outside.pin(r).or_else(|| mirror::rewrite(r, mirrors));
    let rewrites = Rewrites {
        prelude: inputs.dockerfile.platform_prelude(build_args),
        build_args: Some(build_args),
        image: Some(&image),
    };
    let pruned = inputs.dockerfile.pruned_with(&unit.keep, &rewrites);
    let dockerfile = match &product {
        Some(p) => labelled(src, unit, p, &label, &pruned),
        None => pruned,
    };
    let no_cache = without_cache(src, unit);
    let names = export_names(product.as_ref(), dest, commit);
    UnitJob {
        build: BuildJob {
            dockerfile,
            root: PathBuf::from(root),
            entries: narrow_context(inputs, &unit.keep, build_args, entries),
            build_args: build_args.clone(),
            cache_from,
            auth: None,
            base_images: base_images(inputs, &unit.keep, &image),
            no_cache,
            secrets: Arc::clone(secrets),
            names,
            cache_repos,
            cache_to,
        },
        label,
        product,
    }
}

/// `pruned` with the LABEL step a deployable image carries: its
/// fingerprint and provenance (shared stages get none, so they stay
/// cache-identical).
fn labelled(src: &Sources<'_>, unit: &Unit, p: &Product, label: &str, pruned: &str) -> String {
    let (inputs, outside) = (src.inputs, src.outside);
    let mut labels = BTreeMap::from([
        (fingerprint::LABEL.to_string(), p.fingerprint.as_digest()),
        ("dev.stackbake.stage".to_string(), label.to_string()),
        (BUILD_LABEL.to_string(), "1".to_string()),
        (
            "org.opencontainers.image.revision".to_string(),
            src.commit.to_string(),
        ),
    ]);
    let images = outside::images_of(&inputs.graph, &inputs.graph.needed(unit.stage));
    let recorded = outside.images_label(&images);
    if !recorded.is_empty() {
        labels.insert(outside::IMAGES_LABEL.to_string(), recorded);
    }
    with_labels(pruned, &labels)
}

/// Whether `unit` is built without cache: an expired target (`--max-age`)
/// needs it.
fn without_cache(src: &Sources<'_>, unit: &Unit) -> bool {
    src.decisions
        .iter()
        .filter(|d| d.reason == Reason::Expired)
        .any(|d| {
            src.inputs
                .graph
                .needed(d.target.stage)
                .contains(&unit.stage)
        })
}

/// The names the image is exported under: what it is tagged as first.
fn export_names(
    product: Option<&Product>,
    dest: Option<&Destination>,
    commit: &str,
) -> Vec<String> {
    product.map_or_else(Vec::new, |p| {
        p.repositories
            .iter()
            .map(|r| match dest {
                Some(d) => format!("{}:{commit}", d.repository(r)),
                None => format!("{r}:{commit}"),
            })
            .collect()
    })
}

/// The external images the stages `keep` are built on, as the engine is
/// sent them (`image` gives what an image is sent as, if not as written).
fn base_images(
    inputs: &Inputs,
    keep: &[usize],
    image: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut out: Vec<String> = keep
        .iter()
        .filter_map(|&s| match inputs.graph.bases.get(s) {
            Some(crate::dockerfile::BaseRef::Image(img)) => {
                Some(image(img).unwrap_or_else(|| img.clone()))
            }
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// What `unit` produces: only a target being built has a product.
pub(crate) fn product(unit: &Unit, decisions: &[Decision]) -> Option<Product> {
    if !unit.is_target {
        return None;
    }
    decisions
        .iter()
        .find(|d| d.target.stage == unit.stage && d.reuse.is_none())
        .map(|d| Product {
            repositories: d.target.repositories.clone(),
            fingerprint: d.fingerprint.clone(),
        })
}

/// Builds and pushes one unit. Never fails: a failure is in the outcome.
pub(crate) async fn run(shared: Arc<Shared>, job: UnitJob) -> UnitOutcome {
    let span = tracing::info_span!("unit", target = %job.label);
    run_unit(shared, job).instrument(span).await
}

async fn run_unit(shared: Arc<Shared>, job: UnitJob) -> UnitOutcome {
    let started = Instant::now();
    let events = shared.events.unit(&job.label);
    events.send(Event::UnitStarted {
        unit: job.label.clone(),
    });
    let mut outcome = work(&shared, job, &events).await;
    outcome.seconds = started.elapsed().as_secs_f64();
    if let Some(f) = &mut outcome.failure {
        // A failed BuildKit step carries its own last lines (other steps'
        // output may be interleaved with them in the unit's log).
        f.log_tail = match &mut f.cause {
            Cause::Engine(crate::engine::EngineError::BuildStep { log, .. }) if !log.is_empty() => {
                std::mem::take(log)
            }
            _ => events.tail(),
        };
    }
    tracing::debug!(
        seconds = outcome.seconds,
        ok = outcome.failure.is_none(),
        "unit finished"
    );
    events.send(Event::UnitFinished {
        unit: events.unit().to_string(),
        seconds: outcome.seconds,
        ok: outcome.failure.is_none(),
    });
    outcome
}

async fn work(shared: &Shared, mut job: UnitJob, events: &UnitEvents) -> UnitOutcome {
    let label = job.label.clone();
    let fail =
        |step: Step, cause: Cause| UnitOutcome::failed(TargetFailure::new(&label, step, cause));
    job.build.auth = shared.dest.as_ref().and_then(Destination::auth);
    let built = match shared
        .builder
        .build(job.build, events)
        .instrument(tracing::debug_span!("build"))
        .await
    {
        Ok(b) => b,
        Err(e) => return fail(Step::Build, Cause::Engine(e)),
    };
    let mut outcome = UnitOutcome {
        image_id: Some(built.id.clone()),
        ..Default::default()
    };
    let Some(product) = job.product else {
        return outcome;
    };
    for repo in &product.repositories {
        let full_repo = match &shared.dest {
            Some(d) => d.repository(repo),
            None => repo.clone(),
        };
        if let Err(e) = shared
            .engine
            .tag(&built.id, &full_repo, &shared.commit)
            .await
        {
            outcome.failure = Some(TargetFailure::new(&label, Step::Tag, Cause::Engine(e)));
            return outcome;
        }
        let Some(dest) = &shared.dest else {
            // Local only: the fingerprint tag marks the image for reuse.
            if let Err(e) = shared
                .engine
                .tag(&built.id, &full_repo, &product.fingerprint.tag())
                .await
            {
                outcome.failure = Some(TargetFailure::new(&label, Step::Tag, Cause::Engine(e)));
                return outcome;
            }
            outcome.pushed.insert(repo.clone(), (None, 0));
            continue;
        };
        let fp_tag = product.fingerprint.tag();
        let pushed = match deliver::deliver(shared, dest, repo, &built, &fp_tag, events).await {
            Ok(p) => p,
            Err((step, cause)) => {
                outcome.failure = Some(TargetFailure::new(&label, step, cause));
                return outcome;
            }
        };
        outcome
            .pushed
            .insert(repo.clone(), (Some(pushed.digest), pushed.bytes_pushed));
    }
    outcome
}

/// The part of the context that the stages `keep` read: what their
/// `COPY`/`ADD` sources select, the directories above it, and the
/// `.dockerignore`. Sending only this makes a build's upload proportional
/// to what it uses, not to the repository; the engine's cache keys (the
/// checksums of the copied files) are unchanged. Falls back to the whole
/// context if a source cannot be resolved (the build will then report it).
pub(crate) fn narrow_context(
    inputs: &Inputs,
    keep: &[usize],
    build_args: &BTreeMap<String, String>,
    entries: &[Entry],
) -> Vec<Entry> {
    let mut wanted: BTreeSet<String> = BTreeSet::new();
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
pub(crate) fn with_labels(dockerfile: &str, labels: &BTreeMap<String, String>) -> String {
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
    use crate::context::walk;

    #[test]
    fn each_build_is_sent_only_the_files_its_stages_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let args = BTreeMap::new();
        let inputs = crate::build::inputs::load(
            &root.join("Dockerfile"),
            &[root.join("taskdef.json")],
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

    #[test]
    fn a_reused_target_built_as_a_shared_base_is_not_pushed() {
        // 0 base; 1 api FROM base; 2 worker FROM api; 3 migrate FROM api.
        let needed = vec![vec![0], vec![0, 1], vec![0, 1, 2], vec![0, 1, 3]];
        let decision = |stage: usize, name: &str, reused: bool| Decision {
            target: crate::build::inputs::Target {
                stage,
                name: name.to_string(),
                repositories: vec![format!("bash-dog-{name}")],
            },
            fingerprint: crate::fingerprint::Fingerprint::from_bytes([stage as u8; 32]),
            reuse: reused.then(BTreeMap::new),
            reason: if reused {
                crate::events::Reason::Unchanged
            } else {
                crate::events::Reason::Changed
            },
        };
        let repos = |units: &[Unit], decisions: &[Decision]| -> Vec<(usize, Option<String>)> {
            units
                .iter()
                .map(|u| {
                    let p = product(u, decisions);
                    (u.stage, p.map(|p| p.repositories.join(",")))
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
        let units = crate::build::schedule::schedule(&needed, &BTreeSet::from([2, 3]));
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
        let units = crate::build::schedule::schedule(&needed, &BTreeSet::from([1, 2, 3]));
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
}

//! The words of human output: each [`Event`] as the lines a person reads,
//! and how loud it is. Every renderer (plain, quiet, the live view) takes
//! its text from here, so the wording lives in one place.

use crate::events::{Action, CachePull, Event, Notice, TagReason};
use crate::report::Report;

/// How loud an event is: which renderers show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Loudness {
    /// A line of a build or push log: `plain` only.
    Log,
    /// What stackbake is doing: every mode but `quiet`.
    Status,
    /// Errors, interrupts and the final summary: every mode.
    Always,
}

/// The lines for `event`, and how loud they are; `None` for events that have
/// no line of their own (a live view may still show them).
pub(crate) fn lines(event: &Event) -> Option<(Loudness, Vec<String>)> {
    use Loudness::{Always, Status};
    match event {
        Event::Notice(n) => one(Status, format!("stackbake: {}", notice(n))),
        Event::Findings { text, errors: true } => one(Always, text.trim_end().to_string()),
        Event::Findings {
            text,
            errors: false,
        } => one(Status, format!("stackbake: {}", text.trim_end())),
        Event::Decided { .. } | Event::Unresolved { .. } | Event::BaseMoved { .. } => {
            decisions(event)
        }
        Event::CachePulled { .. } | Event::CacheSkipped { .. } | Event::CacheNotWritten { .. } => {
            cache(event)
        }
        Event::UnitStarted { .. }
        | Event::Step { .. }
        | Event::Log { .. }
        | Event::Pushing { .. }
        | Event::Retry { .. }
        | Event::UnitFinished { .. }
        | Event::Reused { .. } => progress(event),
        Event::TagNotMoved { .. } => tag_not_moved(event),
        Event::Internal(_)
        | Event::Interrupted
        | Event::ContainerRemoved(_)
        | Event::CleanupFailed(_)
        | Event::ArtifactWritten(_) => run_state(event),
        Event::Sharded { .. }
        | Event::ShardEmpty { .. }
        | Event::EnvFileWritten { .. }
        | Event::ReportWritten(_) => outputs(event),
        Event::Planned(report) => Some((Always, plan_table(report))),
        Event::Built(report) => Some((Always, summary(report))),
        Event::Diagnostic(line) => one(Always, line.trim_end().to_string()),
    }
}

/// One line at loudness `l`.
fn one(l: Loudness, s: String) -> Option<(Loudness, Vec<String>)> {
    Some((l, vec![s]))
}

/// What the plan decided per target: build or reuse, unresolved inputs,
/// moved bases.
fn decisions(event: &Event) -> Option<(Loudness, Vec<String>)> {
    use Loudness::{Always, Status};
    match event {
        Event::Decided {
            target,
            action,
            reason,
            fingerprint,
        } => one(
            Status,
            format!(
                "[{target}] {} ({}) {fingerprint}",
                match action {
                    Action::Build => "build",
                    Action::Reuse => "reuse",
                },
                reason.as_str()
            ),
        ),
        Event::Unresolved { input, error } => one(
            Always,
            format!(
                "stackbake: warning: {input} could not be resolved ({error}); \
                 --allow-unresolved: fingerprinted by its reference text, so a change behind it is not seen"
            ),
        ),
        Event::BaseMoved {
            target,
            image,
            from,
            to,
        } => one(
            Status,
            format!(
                "[{target}] base {image} moved: {} → {}",
                short(from),
                short(to)
            ),
        ),
        _ => None,
    }
}

/// Pulling, skipping and writing the build cache.
fn cache(event: &Event) -> Option<(Loudness, Vec<String>)> {
    use Loudness::Status;
    match event {
        Event::CachePulled { image, outcome } => one(
            Status,
            match outcome {
                CachePull::Found => format!("stackbake: pulled {image} as build cache"),
                CachePull::Missing => {
                    format!("stackbake: no {image} yet (first build): building without its cache")
                }
                CachePull::Failed(e) => {
                    format!("stackbake: could not pull {image} as cache, building without it: {e}")
                }
            },
        ),
        Event::CacheSkipped { unit, source, .. } if is_missing(event) => one(
            Status,
            format!("[{unit}] no cache at {source} yet (a first build): building without it"),
        ),
        Event::CacheSkipped {
            unit,
            source,
            reason,
        } => one(
            Status,
            format!("[{unit}] cache source {source} skipped (building without it): {reason}"),
        ),
        Event::CacheNotWritten { unit, reason } => one(
            Status,
            format!("[{unit}] build cache not written (the build itself succeeded): {reason}"),
        ),
        _ => None,
    }
}

/// A unit's progress: started, log lines, pushing, retries, done, reused.
fn progress(event: &Event) -> Option<(Loudness, Vec<String>)> {
    use Loudness::{Log, Status};
    match event {
        Event::UnitStarted { unit } => one(Status, format!("[{unit}] building")),
        Event::Step { .. } => None,
        Event::Log { unit, line } => one(Log, format!("[{unit}] {line}")),
        Event::Pushing { unit, image } => one(Status, format!("[{unit}] pushing {image}")),
        Event::Retry {
            unit,
            what,
            error,
            wait,
        } => one(
            Status,
            format!(
                "[{unit}] {what} failed ({error}); retrying in {:.1}s",
                wait.as_secs_f64()
            ),
        ),
        Event::UnitFinished {
            unit,
            seconds,
            ok: true,
        } => one(Status, format!("[{unit}] done in {seconds:.1}s")),
        Event::UnitFinished { ok: false, .. } => None,
        Event::Reused { target, image, tag } => {
            one(Status, format!("[{target}] reused {image} as :{tag}"))
        }
        _ => None,
    }
}

/// A tag that stays where it was.
fn tag_not_moved(event: &Event) -> Option<(Loudness, Vec<String>)> {
    use Loudness::Status;
    match event {
        Event::TagNotMoved {
            repository,
            tag,
            reason: TagReason::Immutable { existing },
        } => one(
            Status,
            format!(
                "stackbake: {repository}:{tag} stays at {existing}: the repository's tags are immutable"
            ),
        ),
        Event::TagNotMoved {
            repository,
            tag,
            reason: TagReason::Limit,
        } => one(
            Status,
            format!(
                "stackbake: {repository}:{tag} not added: the image already carries as many tags as the registry allows (ECR: 1,000); its digest is pinned all the same"
            ),
        ),
        _ => None,
    }
}

/// Internal errors, interrupts, cleanup and the artifact written.
fn run_state(event: &Event) -> Option<(Loudness, Vec<String>)> {
    use Loudness::{Always, Status};
    match event {
        Event::Internal(e) => one(Always, format!("internal error in a build task: {e}")),
        Event::Interrupted => one(
            Always,
            "stackbake: interrupted: stopping builds and pushes (interrupt again to exit at once)"
                .to_string(),
        ),
        Event::ContainerRemoved(id) => {
            one(Always, format!("stackbake: removed build container {id}"))
        }
        Event::CleanupFailed(e) => one(Always, format!("stackbake: {e}")),
        Event::ArtifactWritten(dir) => one(
            Status,
            format!("stackbake: artifact written to {}", dir.display()),
        ),
        _ => None,
    }
}

/// `sha256:` and the first 12 hex digits of a digest or image id.
fn short(digest: &str) -> String {
    match digest.split_once(':') {
        Some((algo, hex)) if hex.len() > 12 => format!("{algo}:{}…", &hex[..12]),
        _ => digest.to_string(),
    }
}

/// The lines of a shard's selection and of the outputs besides the artifact.
fn outputs(event: &Event) -> Option<(Loudness, Vec<String>)> {
    use Loudness::{Always, Status};
    match event {
        Event::Sharded {
            shard,
            targets,
            elsewhere,
            unchanged,
        } => one(
            Status,
            format!(
                "stackbake: shard {shard} builds {}{}",
                targets.join(", "),
                others(*elsewhere, *unchanged)
            ),
        ),
        Event::ShardEmpty {
            shard,
            elsewhere,
            unchanged,
        } => one(
            Always,
            format!(
                "stackbake: shard {shard} has nothing to build{}; it pushes nothing and its report lists no target",
                others(*elsewhere, *unchanged)
            ),
        ),
        Event::EnvFileWritten {
            path,
            variables,
            bytes,
            over_limit: None,
        } => one(
            Status,
            format!(
                "stackbake: {variables} variables ({bytes} bytes) written to {}",
                path.display()
            ),
        ),
        Event::EnvFileWritten {
            path,
            variables,
            bytes,
            over_limit: Some(limit),
        } => one(
            Always,
            format!(
                "stackbake: warning: {variables} variables ({bytes} bytes) written to {}: more than CodePipeline keeps for one action ({limit} bytes); list only the ones the pipeline needs under exported-variables",
                path.display()
            ),
        ),
        Event::ReportWritten(dir) => one(
            Status,
            format!(
                "stackbake: shard report written to {} (no task definition: the assemble step writes it)",
                dir.display()
            ),
        ),
        _ => None,
    }
}

/// ` (N to build on other shards; M unchanged, left to the assemble step)`.
fn others(elsewhere: usize, unchanged: usize) -> String {
    let mut parts = Vec::new();
    if elsewhere > 0 {
        parts.push(format!(
            "{elsewhere} target{} to build on other shards",
            if elsewhere == 1 { "" } else { "s" }
        ));
    }
    if unchanged > 0 {
        parts.push(format!("{unchanged} unchanged, left to the assemble step"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

/// Whether a skipped cache source simply does not exist yet.
fn is_missing(event: &Event) -> bool {
    matches!(event, Event::CacheSkipped { reason, .. }
        if reason.ends_with(": not found") || reason.contains("manifest unknown"))
}

fn notice(n: &Notice) -> String {
    match n {
        Notice::LocalOnly => {
            "--local without --registry: images are only tagged in the local engine".to_string()
        }
        Notice::Aws {
            account,
            region,
            registry,
        } => format!("AWS account {account}, region {region}, registry {registry}"),
        Notice::RepositoryCreated {
            repository,
            mutable: false,
        } => format!(
            "created ECR repository {repository} (scan on push; tags immutable except latest and buildcache)"
        ),
        Notice::RepositoryCreated {
            repository,
            mutable: true,
        } => format!(
            "created ECR repository {repository} (scan on push; mutable tags: this ECR does not offer IMMUTABLE_WITH_EXCLUSION)"
        ),
        Notice::Builder {
            description,
            fallback: None,
        } => format!("builder: {description}"),
        Notice::Builder {
            description,
            fallback: Some(why),
        } => format!("builder: {description} ({why})"),
    }
}

/// `stackbake plan`'s table: a row per container, external ones last. The
/// columns are as wide as their longest value.
pub(crate) fn plan_table(report: &Report) -> Vec<String> {
    let mut rows: Vec<[String; 5]> = vec![[
        "CONTAINER".into(),
        "TARGET".into(),
        "ACTION".into(),
        "REASON".into(),
        "FINGERPRINT".into(),
    ]];
    for t in &report.targets {
        rows.push([
            t.container.clone(),
            t.target.clone(),
            t.action.clone(),
            t.reason.clone().unwrap_or_else(|| "-".into()),
            t.fingerprint.clone().unwrap_or_else(|| "-".into()),
        ]);
    }
    for e in &report.external {
        rows.push([
            e.container.clone(),
            "-".into(),
            "none".into(),
            "external".into(),
            e.image.clone(),
        ]);
    }
    // Today's minimum widths, widened to fit (a long name must not run into
    // the next column).
    let mut widths = [20, 12, 7, 10];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    rows.iter()
        .map(|r| {
            format!(
                "{:<w0$} {:<w1$} {:<w2$} {:<w3$} {}",
                r[0],
                r[1],
                r[2],
                r[3],
                r[4],
                w0 = widths[0],
                w1 = widths[1],
                w2 = widths[2],
                w3 = widths[3]
            )
        })
        .collect()
}

/// `build`'s closing summary: what each container got. Shown in every mode.
pub(crate) fn summary(report: &Report) -> Vec<String> {
    let mut out = Vec::new();
    for t in &report.targets {
        out.push(format!(
            "{:<10} {:<20} {} {}",
            t.action,
            t.container,
            t.image.as_deref().unwrap_or("-"),
            if t.bytes_pushed > 0 {
                format!("({} bytes pushed, {:.1}s)", t.bytes_pushed, t.seconds)
            } else {
                format!("({:.1}s)", t.seconds)
            }
        ));
    }
    for e in &report.external {
        out.push(format!(
            "{:<10} {:<20} {}",
            "external", e.container, e.image
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ExternalReport, TargetReport};

    fn report(target: &str) -> Report {
        Report {
            schema_version: 1,
            commit_tag: "abc1234".into(),
            registry: None,
            targets: vec![TargetReport {
                container: "bash-dog-api".into(),
                target: target.into(),
                repository: "bash-dog-api".into(),
                action: "build".into(),
                reason: Some("new".into()),
                fingerprint: Some(format!("sha256:{}", "a".repeat(64))),
                image: None,
                digest: None,
                tags: vec!["abc1234".into()],
                seconds: 0.0,
                bytes_pushed: 0,
            }],
            external: vec![ExternalReport {
                container: "log-router".into(),
                image: "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable".into(),
            }],
            shard: None,
        }
    }

    #[test]
    fn the_plan_table_keeps_its_columns_apart_for_long_names() {
        let short = plan_table(&report("api"));
        assert!(
            short[1].starts_with("bash-dog-api         api          build   new        sha256:")
        );
        let long = plan_table(&report("a-rather-long-target-name"));
        // Every FINGERPRINT cell starts at the same column as its header.
        let col = long[0].find("FINGERPRINT").expect("header");
        assert_eq!(long[1].find("sha256:"), Some(col), "{long:#?}");
        assert_eq!(long[2].find("public.ecr.aws"), Some(col), "{long:#?}");
        assert!(
            long[1].contains("a-rather-long-target-name build"),
            "{long:#?}"
        );
    }
}

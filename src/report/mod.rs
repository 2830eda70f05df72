//! The report: `stackbake-report.json` and what `build --json` / `plan
//! --json` print. Its shape is a stable contract (SPEC.md), versioned by
//! `schema_version`.

pub(crate) mod reporter;
mod text;
mod tty;

use serde::Serialize;

/// The current schema version.
pub(crate) const SCHEMA_VERSION: u32 = 1;

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    /// Always [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The commit tag pushed with every image.
    pub commit_tag: String,
    /// The registry host, or null when images were only tagged locally.
    pub registry: Option<String>,
    /// One entry per mapped container.
    pub targets: Vec<TargetReport>,
    /// Containers whose images are in another registry, left untouched.
    pub external: Vec<ExternalReport>,
    /// `--shard K/N`: which shard wrote this report (it lists only that
    /// shard's targets). Absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shard: Option<ShardReport>,
}

/// Which shard of a batch a report comes from.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct ShardReport {
    /// K, from 1.
    pub index: u32,
    /// N.
    pub count: u32,
}

/// One mapped container.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct TargetReport {
    /// Container name in taskdef.json.
    pub container: String,
    /// Dockerfile stage.
    pub target: String,
    /// Repository (no host, no tag).
    pub repository: String,
    /// `built` / `reused` (build), `build` / `reuse` (plan).
    pub action: String,
    /// Why (plan only): `new`, `changed`, `unchanged`, `forced`, `expired`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `sha256:<hex>` over the target's inputs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// The reference pinned into taskdef.json.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Manifest digest in the registry (absent when not pushed or not built yet).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Tags this image carries after the run.
    pub tags: Vec<String>,
    /// Wall time spent on this target (build and push).
    pub seconds: f64,
    /// Layer bytes uploaded for this target.
    pub bytes_pushed: u64,
}

/// One external container.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ExternalReport {
    /// Container name.
    pub container: String,
    /// Its image, unchanged.
    pub image: String,
}

impl Report {
    /// Pretty JSON with a trailing newline.
    pub(crate) fn to_json(&self) -> String {
        // Serializing plain strings and numbers cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|_| String::from("{}"));
        s.push('\n');
        s
    }
}

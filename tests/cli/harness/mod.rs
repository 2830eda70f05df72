//! Test harness for the `cli` integration tests: throw-away registries and moto
//! servers, cache-cold base images, temp copies of the example stack, a
//! builder that runs the real `stackbake` binary, independent registry reads
//! (curl, never our own code) and cleanup of every image a test creates.
//!
//! Everything a test starts is stopped or removed when its guard drops, also
//! when the test panics. Its parts, by job:
//! - `servers.rs`: free ports, `docker-registry` ([`Registry`]), moto
//!   ([`Moto`]), curl reads of a registry and a scripted in-process HTTP
//!   server ([`FakeServer`]); the library's unit tests include the same
//!   file (`src/testing.rs`);
//! - `engine.rs`: the docker CLI, fresh base images ([`BaseImage`]) and
//!   cleanup of local images ([`LocalImages`]);
//! - `project.rs`: temp copies of the example stack ([`Project`]) and
//!   everything one build test owns ([`Fixture`]);
//! - `run.rs`: runs of the real binary ([`Sb`], [`Outcome`], [`Running`]);
//! - `engine26.rs`: the Docker 26 side engine of `scripts/docker26` ([`Engine26`]).
//!
//! Every test module reaches all of it as `crate::harness::*`.

// Each issue's tests use a different subset of these helpers.
#![allow(dead_code)]

mod engine;
mod engine26;
mod project;
mod run;
mod servers;

pub(crate) use engine::*;
pub(crate) use engine26::*;
pub(crate) use project::*;
pub(crate) use run::*;
// `pub(crate)`: the library's unit tests include servers.rs too.
pub(crate) use servers::*;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// Root of the repository: the example stack and `scripts/test` live here.
pub(crate) const REPO_ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A string unique to this test (process id, clock, counter), usable as a
/// Docker tag, a directory name and a commit tag (`--tag`).
pub(crate) fn unique_id() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "sbt{:x}{:x}n{}",
        std::process::id(),
        nanos % 0xffff_ffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Whether `s` is `sha256:<64 hex>`.
pub(crate) fn is_sha256(s: &str) -> bool {
    s.strip_prefix("sha256:")
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The report entry of `container`.
pub(crate) fn report_target<'a>(report: &'a Value, container: &str) -> &'a Value {
    report["targets"]
        .as_array()
        .and_then(|ts| ts.iter().find(|t| t["container"] == container))
        .unwrap_or_else(|| panic!("no report target for {container}: {report:#}"))
}

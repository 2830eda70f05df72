//! Stopping a run: the cancellation token every task watches (`--fail-fast`
//! and signals), and the build containers the engine is running for us, so
//! that an interrupted run can remove them.
//!
//! The classic builder runs each `RUN` in an intermediate container and
//! names it in the log (` ---> Running in <id>`, later `Removing
//! intermediate container <id>`); those lines are how we know which
//! containers are ours, even when other builds share the engine.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Label set on every deployable image stackbake builds.
pub const BUILD_LABEL: &str = "dev.stackbake.build";

/// Why a run stopped early; the order is the severity (a later reason
/// replaces an earlier one, never the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CancelReason {
    /// `--fail-fast` and a target failed.
    TargetFailed,
    /// SIGINT or SIGTERM.
    Interrupted,
}

/// Shared by every task of one run. Cheap to clone.
#[derive(Clone, Default)]
pub struct RunState {
    token: CancellationToken,
    reason: Arc<Mutex<Option<CancelReason>>>,
    containers: Arc<Mutex<BTreeSet<String>>>,
}

impl RunState {
    /// A fresh run.
    pub fn new() -> RunState {
        RunState::default()
    }

    /// Asks every task to stop, recording the most severe reason.
    pub fn cancel(&self, reason: CancelReason) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none_or(|old| reason > old) {
            *r = Some(reason);
        }
        self.token.cancel();
    }

    /// Why the run was cancelled, if it was.
    pub fn reason(&self) -> Option<CancelReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when the run is cancelled.
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// Whether the run is cancelled.
    pub fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Notes a build log line, tracking the intermediate containers it names.
    pub fn observe_build_line(&self, line: &str) {
        let line = line.trim();
        let mut c = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(id) = line.strip_prefix("---> Running in ") {
            c.insert(id.trim().to_string());
        } else if let Some(id) = line
            .strip_prefix("Removing intermediate container ")
            // Docker 23+ prints the past tense.
            .or_else(|| line.strip_prefix("---> Removed intermediate container "))
        {
            c.remove(id.trim());
        }
    }

    /// Build containers that were started and not yet removed.
    pub fn live_containers(&self) -> Vec<String> {
        self.containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_containers_from_the_build_log() {
        let s = RunState::new();
        s.observe_build_line(" ---> Running in 3f2a1b");
        s.observe_build_line(" ---> Running in 99aa");
        s.observe_build_line("Removing intermediate container 3f2a1b");
        assert_eq!(s.live_containers(), ["99aa"]);
        // Newer engines: " ---> Removed intermediate container <id>".
        s.observe_build_line(" ---> Running in 77bb");
        s.observe_build_line(" ---> Removed intermediate container 99aa");
        assert_eq!(s.live_containers(), ["77bb"]);
    }

    #[test]
    fn the_most_severe_reason_wins() {
        let s = RunState::new();
        assert!(!s.is_cancelled());
        s.cancel(CancelReason::Interrupted);
        s.cancel(CancelReason::TargetFailed);
        assert_eq!(s.reason(), Some(CancelReason::Interrupted));
        assert!(s.is_cancelled());
    }
}

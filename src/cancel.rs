//! Stopping a run: the cancellation token every task watches (`--fail-fast`
//! and signals), with the most severe reason it was cancelled for.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Why a run stopped early; the order is the severity (a later reason
/// replaces an earlier one, never the reverse).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum CancelReason {
    /// `--fail-fast` and a target failed.
    TargetFailed,
    /// SIGINT or SIGTERM.
    Interrupted,
}

/// Shared by every task of one run. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct RunState {
    token: CancellationToken,
    reason: Arc<Mutex<Option<CancelReason>>>,
}

impl RunState {
    /// A fresh run.
    pub(crate) fn new() -> RunState {
        RunState::default()
    }

    /// Asks every task to stop, recording the most severe reason.
    pub(crate) fn cancel(&self, reason: CancelReason) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none_or(|old| reason > old) {
            *r = Some(reason);
        }
        self.token.cancel();
    }

    /// Why the run was cancelled, if it was.
    pub(crate) fn reason(&self) -> Option<CancelReason> {
        *self.reason.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Resolves when the run is cancelled.
    pub(crate) fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.token.cancelled()
    }

    /// Whether the run is cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.token.is_cancelled()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

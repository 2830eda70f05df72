//! SPEC step 6: runs the schedule's units, at most `--jobs` at once, each as
//! soon as the units it needs have succeeded. A unit whose need failed is
//! not built; with `--fail-fast` the first failure stops the others; a
//! cancelled run (a signal) starts nothing more and stops what runs. Which
//! unit may start is [`Tracker`]'s decision; this file only drives tasks.

use futures_util::future::BoxFuture;
use tokio::task::JoinSet;

use crate::build::schedule::{Next, Tracker, Unit};
use crate::build::unit::UnitOutcome;
use crate::cancel::{CancelReason, RunState};
use crate::error::{Cause, Step, TargetFailure};
use crate::events::{Event, Events};

/// How units run.
pub(crate) struct Limits {
    /// Units built at once (`--jobs`).
    pub(crate) jobs: usize,
    /// Stop everything on the first failure (`--fail-fast`).
    pub(crate) fail_fast: bool,
}

/// Runs every unit; `start(i, built)` gives unit `i`'s work, `built` being
/// the image ids this run has built so far (cache sources). Returns one
/// outcome per unit, in schedule order.
pub(crate) async fn execute(
    units: &[Unit],
    labels: &[String],
    limits: &Limits,
    state: &RunState,
    events: &Events,
    mut start: impl FnMut(usize, Vec<String>) -> BoxFuture<'static, UnitOutcome>,
) -> Vec<UnitOutcome> {
    let mut outcomes: Vec<Option<UnitOutcome>> = (0..units.len()).map(|_| None).collect();
    let mut tracker = Tracker::new(units);
    let mut set: JoinSet<(usize, UnitOutcome)> = JoinSet::new();
    let mut task_unit = std::collections::HashMap::new();
    let label = |i: usize| labels.get(i).cloned().unwrap_or_default();
    let stopped = |i: usize, cause: Cause| {
        Some(UnitOutcome::failed(TargetFailure::new(
            label(i),
            Step::Build,
            cause,
        )))
    };
    loop {
        while !state.is_cancelled() && set.len() < limits.jobs.max(1) {
            match tracker.next() {
                Some(Next::Start(i)) => {
                    let built: Vec<String> = outcomes
                        .iter()
                        .flatten()
                        .filter_map(|o| o.image_id.clone())
                        .collect();
                    let work = start(i, built);
                    let state = state.clone();
                    let unit = label(i);
                    let handle = set.spawn(async move {
                        tokio::select! {
                            biased;
                            () = state.cancelled() => (i, UnitOutcome::failed(
                                TargetFailure::new(unit, Step::Build, Cause::Cancelled))),
                            outcome = work => (i, outcome),
                        }
                    });
                    task_unit.insert(handle.id(), i);
                }
                Some(Next::Skip(i, failed)) => {
                    outcomes[i] = stopped(i, Cause::DependencyFailed(label(failed)));
                }
                None => break,
            }
        }
        match set.join_next_with_id().await {
            Some(Ok((_, (i, outcome)))) => {
                let ok = outcome.failure.is_none();
                tracker.finish(i, ok);
                if !ok && limits.fail_fast {
                    state.cancel(CancelReason::TargetFailed);
                }
                outcomes[i] = Some(outcome);
            }
            Some(Err(e)) => {
                // A panicking task is a bug; report it as that unit's failure.
                events.send(Event::Internal(e.to_string()));
                if let Some(&i) = task_unit.get(&e.id()) {
                    tracker.finish(i, false);
                    outcomes[i] = stopped(i, Cause::Panicked(e.to_string()));
                }
            }
            None => {
                // Nothing runs and nothing more can start.
                let cause = if state.is_cancelled() {
                    || Cause::NotStarted
                } else {
                    || Cause::Unfinished
                };
                for i in tracker.abandon_pending() {
                    outcomes[i] = stopped(i, cause());
                }
                break;
            }
        }
    }
    outcomes
        .into_iter()
        .enumerate()
        .map(|(i, o)| {
            o.unwrap_or_else(|| {
                UnitOutcome::failed(TargetFailure::new(label(i), Step::Build, Cause::Unfinished))
            })
        })
        .collect()
}

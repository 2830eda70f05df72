//! SPEC step 6: runs the schedule's units, at most `--jobs` at once, each as
//! soon as the units it needs have succeeded. A unit whose need failed is
//! not built; with `--fail-fast` the first failure stops the others; a
//! cancelled run (a signal) starts nothing more and stops what runs. Which
//! unit may start is [`Tracker`]'s decision; this file only drives tasks.

use std::collections::HashMap;

use futures_util::future::BoxFuture;
use tokio::task::{Id, JoinSet};

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
    let mut run = Running {
        labels,
        limits,
        state,
        events,
        outcomes: (0..units.len()).map(|_| None).collect(),
        tracker: Tracker::new(units),
        set: JoinSet::new(),
        task_unit: HashMap::new(),
    };
    loop {
        run.start_ready(&mut start);
        if !run.join_next().await {
            break;
        }
    }
    run.into_outcomes()
}

/// The units while they run: which may start, what runs, what ended.
struct Running<'a> {
    /// Each unit's label (its target).
    labels: &'a [String],
    /// How units run.
    limits: &'a Limits,
    /// The run's cancellation.
    state: &'a RunState,
    /// Where events go.
    events: &'a Events,
    /// Each unit's outcome, once it has one.
    outcomes: Vec<Option<UnitOutcome>>,
    /// Which unit may start.
    tracker: Tracker<'a>,
    /// The running units' tasks.
    set: JoinSet<(usize, UnitOutcome)>,
    /// Which unit each task runs.
    task_unit: HashMap<Id, usize>,
}

impl Running<'_> {
    /// Unit `i`'s label.
    fn label(&self, i: usize) -> String {
        self.labels.get(i).cloned().unwrap_or_default()
    }

    /// The outcome of unit `i`, stopped (or never started) for `cause`.
    fn stopped(&self, i: usize, cause: Cause) -> Option<UnitOutcome> {
        Some(UnitOutcome::failed(TargetFailure::new(
            self.label(i),
            Step::Build,
            cause,
        )))
    }

    /// Starts units while the run is not cancelled and `--jobs` allows,
    /// recording the units skipped because a need failed.
    fn start_ready(
        &mut self,
        start: &mut impl FnMut(usize, Vec<String>) -> BoxFuture<'static, UnitOutcome>,
    ) {
        while !self.state.is_cancelled() && self.set.len() < self.limits.jobs.max(1) {
            match self.tracker.next() {
                Some(Next::Start(i)) => {
                    let built: Vec<String> = self
                        .outcomes
                        .iter()
                        .flatten()
                        .filter_map(|o| o.image_id.clone())
                        .collect();
                    let work = start(i, built);
                    self.spawn(i, work);
                }
                Some(Next::Skip(i, failed)) => {
                    self.outcomes[i] = self.stopped(i, Cause::DependencyFailed(self.label(failed)));
                }
                None => break,
            }
        }
    }

    /// Runs unit `i`'s `work` as a task that a cancellation stops.
    fn spawn(&mut self, i: usize, work: BoxFuture<'static, UnitOutcome>) {
        let state = self.state.clone();
        let unit = self.label(i);
        let handle = self.set.spawn(async move {
            tokio::select! {
                biased;
                () = state.cancelled() => (i, UnitOutcome::failed(
                    TargetFailure::new(unit, Step::Build, Cause::Cancelled))),
                outcome = work => (i, outcome),
            }
        });
        self.task_unit.insert(handle.id(), i);
    }

    /// Waits for the next unit to end and records its outcome; `false` once
    /// nothing runs and nothing more can start.
    async fn join_next(&mut self) -> bool {
        match self.set.join_next_with_id().await {
            Some(Ok((_, (i, outcome)))) => {
                let ok = outcome.failure.is_none();
                self.tracker.finish(i, ok);
                if !ok && self.limits.fail_fast {
                    self.state.cancel(CancelReason::TargetFailed);
                }
                self.outcomes[i] = Some(outcome);
            }
            Some(Err(e)) => {
                // A panicking task is a bug; report it as that unit's failure.
                self.events.send(Event::Internal(e.to_string()));
                if let Some(&i) = self.task_unit.get(&e.id()) {
                    self.tracker.finish(i, false);
                    self.outcomes[i] = self.stopped(i, Cause::Panicked(e.to_string()));
                }
            }
            None => {
                // Nothing runs and nothing more can start.
                let cause = if self.state.is_cancelled() {
                    || Cause::NotStarted
                } else {
                    || Cause::Unfinished
                };
                for i in self.tracker.abandon_pending() {
                    self.outcomes[i] = self.stopped(i, cause());
                }
                return false;
            }
        }
        true
    }

    /// One outcome per unit, in schedule order; a unit without one is
    /// unfinished.
    fn into_outcomes(self) -> Vec<UnitOutcome> {
        let labels = self.labels;
        self.outcomes
            .into_iter()
            .enumerate()
            .map(|(i, o)| {
                o.unwrap_or_else(|| {
                    UnitOutcome::failed(TargetFailure::new(
                        labels.get(i).cloned().unwrap_or_default(),
                        Step::Build,
                        Cause::Unfinished,
                    ))
                })
            })
            .collect()
    }
}

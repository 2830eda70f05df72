//! The build schedule (SPEC steps 5–6): which stages are built as their own
//! unit, and in what order, so that a stage several targets need is
//! executed once; and [`Tracker`], which says which unit may start next.
//!
//! The classic builder executes every stage of the Dockerfile it is sent
//! (FIELD-NOTES), and two builds that start together both execute a shared
//! stage. So each unit is sent a Dockerfile pruned to the stages it needs,
//! and a stage needed by two or more targets becomes a unit of its own that
//! is built first; the targets then find its layers in the cache.
//! BuildKit runs a step once for all the builds in flight that share it,
//! so with it every target is one unit and all start at once
//! ([`together`]): each build's context is sent while the shared stages
//! run. Pure: no engine, no network.

use std::collections::BTreeSet;

/// One build the engine runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    /// The stage it builds (the last stage of its pruned Dockerfile).
    pub(crate) stage: usize,
    /// Stages its pruned Dockerfile keeps (sorted, includes `stage`).
    pub(crate) keep: Vec<usize>,
    /// Units (indices into the schedule) that must finish first.
    pub(crate) after: Vec<usize>,
    /// Whether this unit is a deployable target (else a shared stage).
    pub(crate) is_target: bool,
}

/// Computes the units for `targets` (stage indices) given, for every stage,
/// the sorted set of stages it needs (itself included).
pub(crate) fn schedule(needed: &[Vec<usize>], targets: &BTreeSet<usize>) -> Vec<Unit> {
    let users = |s: usize| -> BTreeSet<usize> {
        targets
            .iter()
            .copied()
            .filter(|t| needed.get(*t).is_some_and(|n| n.contains(&s)))
            .collect()
    };
    let mut shared: BTreeSet<usize> = BTreeSet::new();
    for s in 0..needed.len() {
        if !targets.contains(&s) && users(s).len() >= 2 {
            shared.insert(s);
        }
    }
    // A shared stage that every one of its users reaches through a later
    // shared stage is built as part of that one: drop it.
    let redundant: BTreeSet<usize> = shared
        .iter()
        .copied()
        .filter(|&s| {
            let us = users(s);
            shared
                .iter()
                .any(|&o| o != s && needed[o].contains(&s) && users(o) == us)
        })
        .collect();
    let stages: Vec<usize> = targets
        .iter()
        .chain(shared.difference(&redundant))
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .filter(|s| *s < needed.len())
        .collect();
    stages
        .iter()
        .map(|&s| Unit {
            stage: s,
            keep: needed[s].clone(),
            after: stages
                .iter()
                .enumerate()
                .filter(|&(_, &o)| o != s && needed[s].contains(&o))
                .map(|(i, _)| i)
                .collect(),
            is_target: targets.contains(&s),
        })
        .collect()
}

/// Every target as one unit, all startable at once: for BuildKit, which
/// runs a step that concurrent builds share once (it merges equal steps of
/// builds in flight) and transfers each build's context while the shared
/// stages run.
pub(crate) fn together(needed: &[Vec<usize>], targets: &BTreeSet<usize>) -> Vec<Unit> {
    targets
        .iter()
        .filter_map(|&t| {
            needed.get(t).map(|keep| Unit {
                stage: t,
                keep: keep.clone(),
                after: Vec::new(),
                is_target: true,
            })
        })
        .collect()
}

/// What the executor may do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Next {
    /// Start this unit: everything it needs has been built.
    Start(usize),
    /// This unit cannot be built: the unit it needs (the second index) failed.
    Skip(usize, usize),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Pending,
    Running,
    Done { ok: bool },
}

/// Which units have started and finished, and which may start next. Pure:
/// the executor asks and reports, this decides.
#[derive(Debug)]
pub(crate) struct Tracker<'a> {
    units: &'a [Unit],
    state: Vec<State>,
}

impl<'a> Tracker<'a> {
    /// Nothing started yet.
    pub(crate) fn new(units: &'a [Unit]) -> Self {
        Tracker {
            units,
            state: vec![State::Pending; units.len()],
        }
    }

    /// The first pending unit whose needs have all finished, in schedule
    /// order: `Start` when they all succeeded, `Skip` when one failed (the
    /// unit is then done, failed).
    pub(crate) fn next(&mut self) -> Option<Next> {
        for (i, unit) in self.units.iter().enumerate() {
            if self.state[i] != State::Pending {
                continue;
            }
            let mut ready = true;
            for &d in &unit.after {
                match self.state.get(d) {
                    Some(State::Done { ok: false }) => {
                        self.state[i] = State::Done { ok: false };
                        return Some(Next::Skip(i, d));
                    }
                    Some(State::Done { ok: true }) => {}
                    _ => ready = false,
                }
            }
            if ready {
                self.state[i] = State::Running;
                return Some(Next::Start(i));
            }
        }
        None
    }

    /// Unit `i` finished.
    pub(crate) fn finish(&mut self, i: usize, ok: bool) {
        if let Some(s) = self.state.get_mut(i) {
            *s = State::Done { ok };
        }
    }

    /// Units that never started, in schedule order; marks them done, failed.
    pub(crate) fn abandon_pending(&mut self) -> Vec<usize> {
        let mut out = Vec::new();
        for (i, s) in self.state.iter_mut().enumerate() {
            if *s == State::Pending {
                *s = State::Done { ok: false };
                out.push(i);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn together_every_target_starts_at_once_with_all_it_needs() {
        // 0 base, 1 assets (FROM base), 2 api, 3 sidecar, 4 nginx (+ COPY --from=assets)
        let needed = vec![vec![0], vec![0, 1], vec![0, 2], vec![0, 3], vec![0, 1, 4]];
        let units = together(&needed, &set(&[2, 3, 4]));
        let stages: Vec<_> = units.iter().map(|u| u.stage).collect();
        assert_eq!(stages, [2, 3, 4]);
        assert!(units.iter().all(|u| u.is_target && u.after.is_empty()));
        assert_eq!(units[2].keep, [0, 1, 4]);
    }

    fn set(v: &[usize]) -> BTreeSet<usize> {
        v.iter().copied().collect()
    }

    #[test]
    fn the_example_stack_builds_base_once_then_three_targets() {
        // 0 base, 1 assets (FROM base), 2 api, 3 sidecar, 4 nginx (+ COPY --from=assets)
        let needed = vec![vec![0], vec![0, 1], vec![0, 2], vec![0, 3], vec![0, 1, 4]];
        let units = schedule(&needed, &set(&[2, 3, 4]));
        let stages: Vec<_> = units.iter().map(|u| u.stage).collect();
        assert_eq!(stages, [0, 2, 3, 4]);
        assert!(!units[0].is_target);
        assert!(units[1..].iter().all(|u| u.is_target && u.after == [0]));
        assert_eq!(units[3].keep, [0, 1, 4]);
    }

    #[test]
    fn a_chain_of_shared_stages_is_one_unit() {
        // 0 base, 1 deps (FROM base), 2 a, 3 b (both FROM deps)
        let needed = vec![vec![0], vec![0, 1], vec![0, 1, 2], vec![0, 1, 3]];
        let units = schedule(&needed, &set(&[2, 3]));
        let stages: Vec<_> = units.iter().map(|u| u.stage).collect();
        assert_eq!(stages, [1, 2, 3]);
    }

    #[test]
    fn a_target_built_from_another_target_waits_for_it() {
        // 0 api, 1 api-debug (FROM api)
        let needed = vec![vec![0], vec![0, 1]];
        let units = schedule(&needed, &set(&[0, 1]));
        assert_eq!(units.len(), 2);
        assert_eq!(units[1].after, [0]);
        assert!(units.iter().all(|u| u.is_target));
    }

    #[test]
    fn independent_targets_share_nothing() {
        let needed = vec![vec![0], vec![1]];
        let units = schedule(&needed, &set(&[0, 1]));
        assert!(units.iter().all(|u| u.after.is_empty()));
    }

    #[test]
    fn a_stage_shared_by_different_sets_stays_its_own_unit() {
        // 0 base; 1 mid (FROM base); 2 a (FROM mid); 3 b (FROM mid); 4 c (FROM base)
        let needed = vec![
            vec![0],
            vec![0, 1],
            vec![0, 1, 2],
            vec![0, 1, 3],
            vec![0, 4],
        ];
        let units = schedule(&needed, &set(&[2, 3, 4]));
        let stages: Vec<_> = units.iter().map(|u| u.stage).collect();
        assert_eq!(stages, [0, 1, 2, 3, 4]);
        assert_eq!(units[1].after, [0]);
    }

    #[test]
    fn the_tracker_starts_units_once_their_needs_succeeded() {
        // 0 base; 1 api, 2 nginx (both need base).
        let needed = vec![vec![0], vec![0, 1], vec![0, 2]];
        let units = schedule(&needed, &set(&[1, 2]));
        let mut t = Tracker::new(&units);
        assert_eq!(t.next(), Some(Next::Start(0)));
        assert_eq!(t.next(), None, "api and nginx wait for base");
        t.finish(0, true);
        assert_eq!(t.next(), Some(Next::Start(1)));
        assert_eq!(t.next(), Some(Next::Start(2)));
        assert_eq!(t.next(), None);
        t.finish(1, true);
        t.finish(2, false);
        assert_eq!(t.next(), None);
        assert!(t.abandon_pending().is_empty());
    }

    #[test]
    fn the_tracker_skips_what_a_failed_unit_was_needed_for() {
        let needed = vec![vec![0], vec![0, 1], vec![0, 2]];
        let units = schedule(&needed, &set(&[1, 2]));
        let mut t = Tracker::new(&units);
        assert_eq!(t.next(), Some(Next::Start(0)));
        t.finish(0, false);
        assert_eq!(t.next(), Some(Next::Skip(1, 0)));
        assert_eq!(t.next(), Some(Next::Skip(2, 0)));
        assert_eq!(t.next(), None);
    }

    #[test]
    fn abandoned_units_are_the_ones_that_never_started() {
        // 0 base; 1 api, 2 nginx (both need base); 3 worker (alone).
        let needed = vec![vec![0], vec![0, 1], vec![0, 2], vec![3]];
        let units = schedule(&needed, &set(&[1, 2, 3]));
        let mut t = Tracker::new(&units);
        assert_eq!(t.next(), Some(Next::Start(0)));
        assert_eq!(t.next(), Some(Next::Start(3)));
        assert_eq!(t.abandon_pending(), [1, 2]);
        assert_eq!(t.next(), None);
    }
}

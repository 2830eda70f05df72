//! Which targets shard K of N builds (`build --shard K/N`): pure, so every
//! host of a CodeBuild batch computes the same assignment from the same
//! checkout, with no coordination.
//!
//! **Cost.** A stage costs [`STEP`] per instruction after its `FROM` (a classic-builder step
//! is a container run and a layer commit), [`RUN_STEPS`] steps per `RUN`,
//! and one step per [`BYTES_PER_STEP`] of build context its `COPY`/`ADD`
//! read. The cost comes from the Dockerfile and the checkout only, never
//! from the registry (a last-build-seconds label): shards start minutes
//! apart, and a cost that changed in between would give two hosts two
//! assignments. A shard's load is the cost of every stage its targets need,
//! each counted once: a stage two of its targets share is built once there.
//!
//! **Rule.** Targets are placed in order of their own total cost (largest
//! first, then by name). Each goes to the shard where it adds the least
//! cost among the shards it fits in: those whose load stays within the
//! bound, the largest of the ideal load (every stage once, spread evenly),
//! the costliest single target and the heaviest shard so far. So a target
//! joins the shard that already builds its expensive stages unless that
//! would unbalance the shards; when it fits nowhere it goes to the shard
//! left least loaded. Ties go to the less loaded, then the lower shard. No
//! shard is left idle while there is work for it: once the targets left to
//! place are no more than the empty shards, each goes to an empty one.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use crate::context::walk::{Entry, Kind};
use crate::dockerfile::{ContextSource, Dockerfile};

/// The cost of one build step.
pub(crate) const STEP: u64 = 1000;
/// Steps a `RUN` counts for: it runs a command, the others mostly copy.
pub(crate) const RUN_STEPS: u64 = 4;
/// Build-context bytes that count as one step.
pub(crate) const BYTES_PER_STEP: u64 = 32 * 1024 * 1024;

/// Shard `index` of `count` (both from 1), as `--shard K/N` gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Shard {
    /// K, from 1.
    pub(crate) index: u32,
    /// N.
    pub(crate) count: u32,
}

/// A `--shard` value that is not `K/N` with 1 ≤ K ≤ N.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?}: {problem}; write K/N with 1 <= K <= N, e.g. --shard 2/4")]
pub(crate) struct ShardError {
    value: String,
    problem: &'static str,
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(value: &str) -> Result<Shard, ShardError> {
        let fail = |problem| ShardError {
            value: value.to_string(),
            problem,
        };
        let (k, n) = value
            .trim()
            .split_once('/')
            .ok_or_else(|| fail("not of the form K/N"))?;
        let number = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| fail("K and N must be whole numbers"))
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 || index == 0 {
            return Err(fail("shards are numbered from 1"));
        }
        if index > count {
            return Err(fail("K is larger than N"));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// One target to place: its name (unique) and every stage it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Work<'a> {
    /// Stage name.
    pub(crate) name: &'a str,
    /// Stage indices it needs, itself included.
    pub(crate) needs: &'a [usize],
}

/// The cost of each stage of `df` (see the module docs); `entries` is the
/// build context after `.dockerignore`.
pub(crate) fn stage_costs(
    df: &Dockerfile,
    build_args: &BTreeMap<String, String>,
    entries: &[Entry],
) -> Vec<u64> {
    df.stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let steps: u64 = stage
                .instructions
                .iter()
                .map(|ins| if ins.keyword == "RUN" { RUN_STEPS } else { 1 })
                .sum();
            steps * STEP + context_bytes(df, i, build_args, entries) * STEP / BYTES_PER_STEP
        })
        .collect()
}

/// Bytes of the files stage `i`'s `COPY`/`ADD` read from the context (0
/// when a source cannot be resolved: the build will say why).
fn context_bytes(
    df: &Dockerfile,
    i: usize,
    build_args: &BTreeMap<String, String>,
    entries: &[Entry],
) -> u64 {
    let Ok(sources) = df.context_sources(i, build_args) else {
        return 0;
    };
    let paths: Vec<String> = sources
        .into_iter()
        .filter_map(|s| match s {
            ContextSource::Local { path, .. } => Some(path),
            _ => None,
        })
        .collect();
    if paths.is_empty() {
        return 0;
    }
    let Ok(selected) = crate::context::hash::selected_paths(entries, &paths) else {
        return 0;
    };
    entries
        .iter()
        .filter(|e| matches!(e.kind, Kind::File) && selected.contains(&e.rel))
        .map(|e| e.size)
        .sum()
}

/// The cost of the stages in `stages`.
fn cost(stages: &BTreeSet<usize>, stage_cost: &[u64]) -> u64 {
    stages
        .iter()
        .map(|&s| stage_cost.get(s).copied().unwrap_or(0))
        .sum()
}

/// The shard (from 0) of each of `work`, in `work`'s order, for `count`
/// shards (see the module docs for the rule).
pub(crate) fn assign(work: &[Work<'_>], stage_cost: &[u64], count: u32) -> Vec<usize> {
    let count = count.max(1) as usize;
    let needs: Vec<BTreeSet<usize>> = work
        .iter()
        .map(|w| w.needs.iter().copied().collect())
        .collect();
    let own: Vec<u64> = needs.iter().map(|n| cost(n, stage_cost)).collect();
    let every_stage: BTreeSet<usize> = needs.iter().flatten().copied().collect();
    let ideal = cost(&every_stage, stage_cost).div_ceil(count as u64);
    let mut bound = own.iter().copied().max().unwrap_or(0).max(ideal);
    let mut order: Vec<usize> = (0..work.len()).collect();
    order.sort_by(|&a, &b| own[b].cmp(&own[a]).then(work[a].name.cmp(work[b].name)));
    let mut stages: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); count];
    let mut loads = vec![0u64; count];
    let mut shard_of = vec![0usize; work.len()];
    for (placed, t) in order.into_iter().enumerate() {
        let added: Vec<u64> = stages
            .iter()
            .map(|on| cost(&needs[t].difference(on).copied().collect(), stage_cost))
            .collect();
        // No shard stays idle while there is work for it: once the targets
        // left are no more than the empty shards, each opens one.
        let empty: Vec<usize> = (0..count).filter(|&s| stages[s].is_empty()).collect();
        let open = work.len() - placed <= empty.len();
        let candidates: Vec<usize> = if open { empty } else { (0..count).collect() };
        let fits = |s: &&usize| loads[**s] + added[**s] <= bound;
        let best = candidates
            .iter()
            .filter(fits)
            .min_by_key(|&&s| (added[s], loads[s] + added[s], s))
            .or_else(|| {
                candidates
                    .iter()
                    .min_by_key(|&&s| (loads[s] + added[s], added[s], s))
            })
            .copied()
            .unwrap_or(0);
        stages[best].extend(needs[t].iter().copied());
        loads[best] += added[best];
        bound = bound.max(loads[best]);
        shard_of[t] = best;
    }
    shard_of
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work<'a>(names: &'a [String], needs: &'a [Vec<usize>]) -> Vec<Work<'a>> {
        names
            .iter()
            .zip(needs)
            .map(|(name, needs)| Work { name, needs })
            .collect()
    }

    /// The bench stack: base (2 RUN), deps (1 RUN) and 12 targets on deps.
    fn bench_stack() -> (Vec<String>, Vec<Vec<usize>>, Vec<u64>) {
        let names: Vec<String> = (1..=12).map(|i| format!("t{i:02}")).collect();
        let needs: Vec<Vec<usize>> = (0..12).map(|i| vec![0, 1, 2 + i]).collect();
        let mut costs = vec![3000, 5000];
        costs.extend([6000; 12]);
        (names, needs, costs)
    }

    /// Each shard's load (the cost of every stage its targets need, once) for
    /// an assignment `shard_of` of `work` to `count` shards.
    fn loads(work: &[Work<'_>], shard_of: &[usize], stage_cost: &[u64], count: u32) -> Vec<u64> {
        let mut stages: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); count.max(1) as usize];
        for (w, &s) in work.iter().zip(shard_of) {
            if let Some(on) = stages.get_mut(s) {
                on.extend(w.needs.iter().copied());
            }
        }
        stages.iter().map(|on| cost(on, stage_cost)).collect()
    }

    fn per_shard(shard_of: &[usize], count: usize) -> Vec<usize> {
        let mut n = vec![0; count];
        for &s in shard_of {
            n[s] += 1;
        }
        n
    }

    #[test]
    fn shard_values_parse_as_k_of_n() {
        assert_eq!("2/4".parse(), Ok(Shard { index: 2, count: 4 }));
        assert_eq!(
            " 1/1 ".parse::<Shard>().map(|s| s.to_string()),
            Ok("1/1".into())
        );
        for bad in ["", "2", "0/3", "4/3", "1/0", "a/b", "-1/2", "1/2/3"] {
            let e = bad.parse::<Shard>().expect_err(bad);
            assert!(e.to_string().contains("K/N"), "{e}");
        }
    }

    #[test]
    fn equal_targets_spread_evenly() {
        let (names, needs, costs) = bench_stack();
        let w = work(&names, &needs);
        for (count, expected) in [
            (1, vec![12]),
            (2, vec![6, 6]),
            (4, vec![3; 4]),
            (8, vec![2, 2, 2, 2, 1, 1, 1, 1]),
        ] {
            let mut got = per_shard(&assign(&w, &costs, count), count as usize);
            got.sort_by(|a, b| b.cmp(a));
            assert_eq!(got, expected, "{count} shards");
        }
    }

    #[test]
    fn the_assignment_does_not_depend_on_the_input_order() {
        let (names, needs, costs) = bench_stack();
        let w = work(&names, &needs);
        let a = assign(&w, &costs, 5);
        let mut reversed = w.clone();
        reversed.reverse();
        let b = assign(&reversed, &costs, 5);
        for (i, t) in w.iter().enumerate() {
            let j = reversed
                .iter()
                .position(|r| r.name == t.name)
                .expect("same targets");
            assert_eq!(a[i], b[j], "{}", t.name);
        }
        assert_eq!(a, assign(&w, &costs, 5), "same input, same answer");
    }

    #[test]
    fn targets_sharing_an_expensive_stage_stay_together_when_it_balances() {
        // 0 heavy-a (shared by a1, a2), 1 heavy-b (shared by b1, b2); the
        // targets themselves are cheap. Names interleave the families.
        let names: Vec<String> = ["a1", "b1", "a2", "b2"].map(String::from).to_vec();
        let needs = vec![vec![0, 2], vec![1, 3], vec![0, 4], vec![1, 5]];
        let costs = vec![10_000, 10_000, 1000, 1000, 1000, 1000];
        let w = work(&names, &needs);
        let shard_of = assign(&w, &costs, 2);
        assert_eq!(shard_of[0], shard_of[2], "a1 and a2 together");
        assert_eq!(shard_of[1], shard_of[3], "b1 and b2 together");
        assert_ne!(shard_of[0], shard_of[1]);
        assert_eq!(loads(&w, &shard_of, &costs, 2), vec![12_000, 12_000]);
    }

    #[test]
    fn a_shared_stage_does_not_leave_a_shard_idle() {
        // The example stack: base shared by api, sidecar and nginx (nginx
        // also needs assets). Two shards both get work.
        let names: Vec<String> = ["api", "sidecar", "nginx"].map(String::from).to_vec();
        let needs = vec![vec![0, 2], vec![0, 3], vec![0, 1, 4]];
        let costs = vec![7000, 6000, 7000, 3000, 4000];
        let w = work(&names, &needs);
        let shard_of = assign(&w, &costs, 2);
        assert_eq!(
            per_shard(&shard_of, 2).iter().filter(|&&n| n > 0).count(),
            2
        );
        // One shard per target when there are as many shards as targets.
        let mut one_each = assign(&w, &costs, 3);
        one_each.sort_unstable();
        assert_eq!(one_each, vec![0, 1, 2]);
        // More shards than targets: the extra shards are empty.
        assert_eq!(
            per_shard(&assign(&w, &costs, 5), 5)
                .iter()
                .filter(|&&n| n == 0)
                .count(),
            2
        );
    }

    #[test]
    fn the_heaviest_targets_are_spread_first() {
        // Independent targets of cost 5, 4, 3, 2: two shards of 7.
        let names: Vec<String> = ["e", "d", "c", "b"].map(String::from).to_vec();
        let needs = vec![vec![0], vec![1], vec![2], vec![3]];
        let costs = vec![5000, 4000, 3000, 2000];
        let w = work(&names, &needs);
        let shard_of = assign(&w, &costs, 2);
        assert_eq!(loads(&w, &shard_of, &costs, 2), vec![7000, 7000]);
    }

    #[test]
    fn costs_count_steps_runs_and_context_bytes() {
        let df = crate::dockerfile::parse(
            "FROM scratch AS base\nRUN a\nRUN b\nFROM base AS api\nCOPY big/ /srv/\nENV X=1\n",
        )
        .expect("parses");
        let entry = |rel: &str, kind, size| Entry {
            rel: rel.to_string(),
            kind,
            mode: 0o644,
            size,
        };
        let entries = vec![
            entry("big", Kind::Dir, 0),
            entry("big/a", Kind::File, BYTES_PER_STEP),
            entry("big/b", Kind::File, BYTES_PER_STEP),
            entry("other", Kind::File, 10 * BYTES_PER_STEP),
        ];
        let costs = stage_costs(&df, &BTreeMap::new(), &entries);
        // base: 2 RUNs of 4 steps; api: COPY, ENV and 2 steps of bytes.
        assert_eq!(costs, vec![8 * STEP, 4 * STEP]);
    }
}

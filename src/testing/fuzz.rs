//! Property tests ("fuzzing" with proptest) of the parsers that read user
//! files: the runner they share and their corpus. The targets live next to
//! the code they test: the Dockerfile parser with its stage graph and pruned
//! re-parse (`dockerfile/fuzz_tests.rs`), the `.dockerignore` matcher
//! (`context/dockerignore/fuzz_tests.rs`), and the task definition parser
//! with its image-pinning rewriter (`taskdef/fuzz_tests.rs`). Inputs come
//! from generators biased toward each syntax (keywords, `\`, heredocs,
//! `--from=`, `$`, `{`, quotes, brackets, `**`, `!`, JSON escapes) mixed
//! with arbitrary strings. Every input must give `Ok` or `Err`, never a
//! panic, and each target's invariants must hold.
//!
//! Bounded for CI: 2000 cases per target (`PROPTEST_CASES` overrides) and
//! at most `FUZZ_SECONDS` (default 60) per target. Inputs that ever broke
//! something are kept in `tests/fuzz-corpus/{dockerfile,dockerignore,taskdef}/`
//! and replayed by each target's `corpus_replays_without_panics`.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, TestCaseError, TestRunner};

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000)
}

fn time_cap() -> Duration {
    Duration::from_secs(
        std::env::var("FUZZ_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(60),
    )
}

thread_local! {
    /// Inputs that got past parsing into the invariant checks (each test
    /// runs its cases on its own thread).
    static DEEP: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Counts one input that parsed and reached the invariants.
pub(crate) fn deep() {
    DEEP.with(|d| d.set(d.get() + 1));
}

/// Runs `check` on `cases()` inputs from `strategy` (fewer if the time cap
/// is hit), shrinks any failure to a minimal input and panics with it.
pub(crate) fn fuzz<S: Strategy>(
    name: &str,
    strategy: S,
    check: impl Fn(&S::Value) -> Result<(), TestCaseError>,
) where
    S::Value: std::fmt::Debug,
{
    let config = Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 20_000,
        ..Config::default()
    };
    let executed = AtomicU64::new(0);
    let deep_before = DEEP.with(std::cell::Cell::get);
    let started = Instant::now();
    let deadline = started + time_cap();
    let mut runner = TestRunner::new(config);
    let result = runner.run(&strategy, |input| {
        if Instant::now() > deadline {
            return Ok(());
        }
        executed.fetch_add(1, Ordering::Relaxed);
        check(&input)
    });
    let (runs, parsed) = (
        executed.load(Ordering::Relaxed),
        DEEP.with(std::cell::Cell::get) - deep_before,
    );
    eprintln!(
        "fuzz {name}: {runs} executions in {:.1?}, {parsed} parsed and checked",
        started.elapsed()
    );
    if let Err(e) = result {
        panic!("fuzz {name} found a failing input (save it under tests/fuzz-corpus/): {e}");
    }
    // Generators that rarely produce valid input would test only the error paths.
    assert!(
        parsed * 5 >= runs,
        "fuzz {name}: only {parsed} of {runs} inputs parsed; the generator is too far off the syntax"
    );
}

/// `f()` must not panic; returns its value or fails the case with the panic message.
pub(crate) fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|p| {
        let msg = p
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        TestCaseError::fail(format!("{what} panicked: {msg}"))
    })
}

// ------------------------------------------------------------------ corpus

/// The files in `tests/fuzz-corpus/<kind>/`, sorted.
fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz-corpus")
        .join(kind);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn is_known_bug(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("known-bug-"))
}

/// Runs `check` on the text of `path` (lossy UTF-8).
fn run_corpus_file(
    path: &Path,
    check: &impl Fn(&str) -> Result<(), TestCaseError>,
) -> Result<(), TestCaseError> {
    let bytes =
        fs::read(path).map_err(|e| TestCaseError::fail(format!("{}: {e}", path.display())))?;
    check(&String::from_utf8_lossy(&bytes))
}

/// Every file in `tests/fuzz-corpus/<kind>/` (seeds and anything a fuzz
/// run ever found) passes `check`, the same checks as the generated inputs.
/// Files named `known-bug-*` are inputs that still fail: they are checked by
/// [`replay_known_bugs`] instead, so this stays green.
pub(crate) fn replay_corpus(kind: &str, check: impl Fn(&str) -> Result<(), TestCaseError>) {
    let mut failures = Vec::new();
    let mut count = 0;
    for path in corpus(kind) {
        if is_known_bug(&path) {
            continue;
        }
        count += 1;
        if let Err(e) = run_corpus_file(&path, &check) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(count >= 1, "the {kind} corpus is missing: no files");
    assert!(
        failures.is_empty(),
        "corpus failures:\n{}",
        failures.join("\n")
    );
}

/// Inputs that broke stackbake and are not fixed yet (`known-bug-*` in
/// `tests/fuzz-corpus/<kind>/`): FAILS while any of them still fails,
/// naming each. The tests calling it are ignored so the suite stays green;
/// run them with `cargo test --lib -- --ignored known_bugs` after a fix,
/// then rename the file (drop the `known-bug-` prefix) so the corpus keeps it.
pub(crate) fn replay_known_bugs(kind: &str, check: impl Fn(&str) -> Result<(), TestCaseError>) {
    let mut failures = Vec::new();
    for path in corpus(kind).into_iter().filter(|p| is_known_bug(p)) {
        if let Err(e) = run_corpus_file(&path, &check) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(
        failures.is_empty(),
        "known bugs still failing:\n{}",
        failures.join("\n")
    );
}

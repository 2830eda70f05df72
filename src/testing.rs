//! Helpers for the library's unit tests (`#[cfg(test)]` only).
//!
//! The servers (free ports, `docker-registry`, moto, the scripted HTTP
//! server) are the `cli` integration tests' own harness file, included here,
//! so both suites share one implementation; `fuzz` runs property tests
//! under a case count and a time cap.

#[path = "../tests/cli/harness/servers.rs"]
mod servers;

pub(crate) mod fuzz;

pub(crate) use servers::*;

/// Whether this process should run the test `path` (crate-relative:
/// `context::tarball::tests::…`) itself. The first call runs that one test
/// alone in a child process of this test binary and asserts it passed; the
/// child then gets `true`. For measurements (memory, time) that the tests
/// running in parallel in this process would disturb.
pub(crate) fn alone(path: &str) -> bool {
    const FLAG: &str = "STACKBAKE_TEST_ALONE";
    if std::env::var(FLAG).as_deref() == Ok(path) {
        return true;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = std::process::Command::new(exe)
        .args([path, "--exact", "--nocapture", "--test-threads=1"])
        .env(FLAG, path)
        .output()
        .expect("run the test in a process of its own");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && text.contains("1 passed"),
        "{path}, alone in its own process, failed:\n{text}"
    );
    false
}

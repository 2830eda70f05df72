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

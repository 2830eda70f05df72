//! The `cli` integration test binary: drives the real `stackbake` binary
//! against the real Docker engine, a throw-away `docker-registry` and moto.
//!
//! Run through `scripts/test`, which prepares the machine (engine, registry,
//! moto, busybox base image). Every test owns its registry, base image and
//! project copy, so tests run in parallel and leave no image behind.

mod build;
mod buildkit;
mod check;
mod ecr;
mod faults;
mod fingerprint;
mod harness;
mod harness_selftest;
mod proxy;

//! The `cli` integration test binary: drives the real `stackbake` binary
//! against the real Docker engine, a throw-away `docker-registry` and moto.
//!
//! Run through `scripts/test`, which prepares the machine (engine, registry,
//! moto, busybox base image). Every test owns its registry, base image and
//! project copy, so tests run in parallel and leave no image behind.
//! `static_binary` also proves the release binary is fully static.
//!
//! This is the package's only integration test binary: component tests of
//! the library's internals (registry client, ECR, property tests of the
//! parsers) are its unit tests, which share `harness/servers.rs`.

mod build;
mod buildkit;
mod check;
mod ecr;
mod ecr_front;
mod ecr_rules;
mod faults;
mod fingerprint;
mod harness;
mod harness_selftest;
mod outside_inputs;
mod progress;
mod proxy;
mod shards;
mod static_binary;

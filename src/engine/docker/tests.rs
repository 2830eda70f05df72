//! The engine driver's parsing and error classification, and its container tracking.

use super::*;
use crate::engine::error::is_transient;

#[test]
fn push_digest_is_read_from_the_status_line() {
    let hex = "a".repeat(64);
    let line = format!("abc1234: digest: sha256:{hex} size: 527");
    assert_eq!(parse_push_digest(&line), Some(format!("sha256:{hex}")));
    assert_eq!(parse_push_digest("Pushed"), None);
    assert_eq!(parse_push_digest("x: digest: sha256:abc size: 1"), None);
}

#[test]
fn a_missing_image_is_not_found_but_a_refused_pull_is_an_error() {
    assert!(is_not_found(
        "manifest for 127.0.0.1:5000/bash-dog-api:latest not found: manifest unknown: manifest unknown"
    ));
    assert!(is_not_found(
        "repository 127.0.0.1:5000/x not found: name unknown"
    ));
    assert!(!is_not_found(
        "pull access denied for bash-dog-api, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
    ));
    assert!(!is_not_found(
        "Head \"https://x/v2/a/manifests/latest\": no basic auth credentials: unauthorized"
    ));
}

#[test]
fn refusals_are_not_retried_but_hiccups_are() {
    let push = |m: &str| EngineError::Push {
        image: "x".into(),
        message: m.into(),
    };
    assert!(is_transient(&push(
        "Patch http://r/v2/x/blobs/uploads/1: EOF"
    )));
    assert!(is_transient(&push(
        "received unexpected HTTP status: 503 Service Unavailable"
    )));
    assert!(is_transient(&push(
        "read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"
    )));
    assert!(!is_transient(&push(
        "unauthorized: authentication required"
    )));
    assert!(!is_transient(&push(
        "denied: requested access to the resource is denied"
    )));
    assert!(!is_transient(&EngineError::Build {
        message: "returned a non-zero code: 1".into()
    }));
}

#[tokio::test]
async fn tracks_containers_from_the_build_log() {
    // A client that is never used to connect: only the log parsing runs.
    let Ok(docker) =
        bollard::Docker::connect_with_http("http://127.0.0.1:1", 1, bollard::API_DEFAULT_VERSION)
    else {
        panic!("a client for an unused address");
    };
    let e = DockerEngine {
        docker,
        idle: Duration::from_secs(1),
        containers: Arc::default(),
        facts: Arc::default(),
    };
    e.observe_build_line(" ---> Running in 3f2a1b");
    e.observe_build_line(" ---> Running in 99aa");
    e.observe_build_line("Removing intermediate container 3f2a1b");
    assert_eq!(e.live_containers(), ["99aa"]);
    // Newer engines: " ---> Removed intermediate container <id>".
    e.observe_build_line(" ---> Running in 77bb");
    e.observe_build_line(" ---> Removed intermediate container 99aa");
    assert_eq!(e.live_containers(), ["77bb"]);
}

#[test]
fn line_buffer_joins_chunks_and_skips_blank_lines() {
    let mut b = LineBuffer::default();
    let mut got = Vec::new();
    b.push("Step 1/2 : FR", &mut |l| got.push(l.to_string()));
    b.push("OM x\n\n ---> abc\nlast", &mut |l| got.push(l.to_string()));
    b.flush(&mut |l| got.push(l.to_string()));
    assert_eq!(got, ["Step 1/2 : FROM x", " ---> abc", "last"]);
}

#[test]
fn a_from_step_names_the_base_it_pulls() {
    assert_eq!(
        from_step_image("Step 1/2 : FROM busybox:9.9.9").as_deref(),
        Some("busybox:9.9.9")
    );
    assert_eq!(
        from_step_image("Step 2/4 : FROM --platform=linux/amd64 ${BASE} AS base").as_deref(),
        Some("${BASE}")
    );
    assert_eq!(from_step_image("Step 3/4 : RUN echo FROM x"), None);
    let bases = vec!["stackbake-test/busybox:1".to_string()];
    assert_eq!(base_named("${BASE}", &bases), "stackbake-test/busybox:1");
    assert_eq!(base_named("node:20", &bases), "node:20");
    assert_eq!(registry_of("node:20"), "Docker Hub (registry-1.docker.io)");
    assert_eq!(registry_of("127.0.0.1:1/x/busybox:1"), "127.0.0.1:1");
}

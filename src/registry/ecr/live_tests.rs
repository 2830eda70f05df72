//! The AWS side against a real `moto_server` on loopback, configured the
//! standard SDK way (AWS_ENDPOINT_URL, dummy keys, AWS_REGION).
//!
//! The SDK reads the process environment, and edition 2024 makes
//! `set_var` unsafe (forbidden here), so each scenario runs as a child
//! process: the parent test starts the servers (`crate::testing`), then
//! re-runs this test binary (the library's unit tests) on one `child_*`
//! test with the environment it needs. A `child_*` test run without
//! `SB_ECR_CHILD` set does nothing.

use std::ffi::OsStr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::registry::{AwsError, Client, RetryPolicy, ecr};
use crate::testing::{ECR_PASSWORD, ECR_USER, Moto, Registry, aws_env, free_port};

const CHILD: &str = "SB_ECR_CHILD";

/// Per-attempt timeout of AWS calls in these tests.
const T: Duration = Duration::from_secs(30);

/// How long one child scenario may take before it is killed.
const CHILD_DEADLINE: Duration = Duration::from_secs(120);

/// Runs `child_test` (a test of this module) in a fresh process with `env`
/// (and no AWS settings inherited from this one); returns its output when
/// it passed.
fn run_child(child_test: &str, env: &[(impl AsRef<OsStr>, String)]) -> String {
    let exe = std::env::current_exe().expect("current test binary");
    let home = tempfile::tempdir().expect("tempdir");
    // Test names are paths without the crate: `registry::ecr::live_tests::…`.
    let module = module_path!().split_once("::").map_or("", |(_, m)| m);
    let mut cmd = Command::new(exe);
    cmd.args([
        &format!("{module}::{child_test}"),
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ]);
    for (k, _) in std::env::vars() {
        if k.starts_with("AWS_") || k.starts_with("SB_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("HOME", home.path())
        .env("AWS_CONFIG_FILE", home.path().join("none"))
        .env("AWS_SHARED_CREDENTIALS_FILE", home.path().join("none"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env(CHILD, "1");
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A child that hangs (an AWS call without a timeout) is killed after
    // CHILD_DEADLINE, so the test fails instead of hanging the suite.
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run child test");
    let pid = child.id().to_string();
    let (done, wait) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = wait.recv_timeout(CHILD_DEADLINE) {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
    });
    let out = child.wait_with_output().expect("wait for child test");
    drop(done);
    let _ = watchdog.join();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child {child_test} failed:\n{text}");
    assert!(
        text.contains("1 passed"),
        "child {child_test} did not run:\n{text}"
    );
    text
}

fn is_child() -> bool {
    std::env::var_os(CHILD).is_some()
}

#[test]
fn connect_reads_account_token_and_host_from_moto() {
    let moto = Moto::start();
    let reg = Registry::start_with_auth(ECR_USER, ECR_PASSWORD);
    let mut env = moto.env();
    env.push(("SB_REGISTRY".to_owned(), reg.addr().to_owned()));
    let out = run_child("child_connect", &env);
    assert!(
        !out.contains(ECR_PASSWORD),
        "the token leaked into output:\n{out}"
    );
}

#[tokio::test]
async fn child_connect() {
    if !is_child() {
        return;
    }
    let s = ecr::connect(None, T)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.account, "123456789012");
    assert_eq!(s.region, "us-east-2");
    assert_eq!(
        s.registry_host,
        "123456789012.dkr.ecr.us-east-2.amazonaws.com"
    );
    assert_eq!(s.credentials.username, "AWS");
    let dbg = format!("{s:?}");
    assert!(
        !dbg.contains(ECR_PASSWORD) && dbg.contains("<redacted>"),
        "{dbg}"
    );
    // The token is the password of the test registry: the whole ECR path.
    let host = std::env::var("SB_REGISTRY").expect("SB_REGISTRY");
    let r = Client::new(&host, Some(s.credentials.clone()), RetryPolicy::default()).unwrap();
    r.ping().await.unwrap_or_else(|e| panic!("{e}"));
    println!("connected: {dbg}");
}

#[test]
fn service_specific_endpoint_variables_are_honoured() {
    let moto = Moto::start();
    let url = moto.endpoint().to_owned();
    let env = vec![
        // The generic endpoint points nowhere; the service ones win.
        (
            "AWS_ENDPOINT_URL",
            format!("http://127.0.0.1:{}", free_port()),
        ),
        ("AWS_ENDPOINT_URL_ECR", url.clone()),
        ("AWS_ENDPOINT_URL_STS", url),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ("AWS_DEFAULT_REGION", "eu-west-1".to_owned()),
    ];
    run_child("child_connect_service_endpoints", &env);
}

#[tokio::test]
async fn child_connect_service_endpoints() {
    if !is_child() {
        return;
    }
    let s = ecr::connect(None, T)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.account, "123456789012");
    assert_eq!(s.region, "eu-west-1");
}

#[test]
fn missing_region_is_a_clear_error_and_the_hint_is_used() {
    let moto = Moto::start();
    let mut env = moto.env();
    env.retain(|(k, _)| k != "AWS_REGION");
    run_child("child_no_region", &env);
}

#[tokio::test]
async fn child_no_region() {
    if !is_child() {
        return;
    }
    let err = ecr::connect(None, T).await.unwrap_err();
    assert!(matches!(err, AwsError::NoRegion), "{err:?}");
    assert!(err.to_string().contains("AWS_REGION"), "{err}");
    // A region read from the taskdef's image URIs is enough.
    let s = ecr::connect(Some("ap-south-1".into()), T)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.region, "ap-south-1");
}

#[test]
fn an_aws_endpoint_that_never_answers_fails_within_the_timeout() {
    // Accepts connections and reads, never answers (a black-holed proxy).
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming().flatten() {
            held.push(conn);
        }
    });
    run_child(
        "child_silent_endpoint",
        &aws_env(&format!("http://127.0.0.1:{port}")),
    );
}

#[tokio::test]
async fn child_silent_endpoint() {
    if !is_child() {
        return;
    }
    let started = Instant::now();
    let Err(err) = ecr::connect(None, Duration::from_secs(2)).await else {
        panic!("a silent endpoint cannot succeed");
    };
    let took = started.elapsed();
    // 3 attempts of 2 s plus backoff; without a timeout this never returns.
    assert!(took < Duration::from_secs(30), "took {took:?}: {err}");
    assert!(matches!(err, AwsError::Sts { .. }), "{err:?}");
    assert!(err.to_string().contains("AWS_ENDPOINT_URL"), "{err}");
}

#[test]
fn missing_credentials_are_a_credentials_error() {
    let moto = Moto::start();
    let mut env = moto.env();
    env.retain(|(k, _)| !k.starts_with("AWS_ACCESS") && !k.starts_with("AWS_SECRET"));
    run_child("child_no_credentials", &env);
}

#[tokio::test]
async fn child_no_credentials() {
    if !is_child() {
        return;
    }
    let err = ecr::connect(None, T).await.unwrap_err();
    assert!(matches!(err, AwsError::Credentials { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("AWS_ACCESS_KEY_ID") && msg.contains("CodeBuild"),
        "{msg}"
    );
}

#[test]
fn repositories_are_checked_and_created_on_request() {
    let moto = Moto::start();
    run_child("child_repositories", &moto.env());
}

#[tokio::test]
async fn child_repositories() {
    if !is_child() {
        return;
    }
    let s = ecr::connect(None, T)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let repos = vec![
        "bash-dog-api".to_owned(),
        "bash-dog-nginx".to_owned(),
        "bash-dog-api".to_owned(),
    ];
    let err = s.ensure_repositories(&repos, false).await.unwrap_err();
    match &err {
        AwsError::RepositoryMissing { repos, .. } => {
            assert_eq!(repos, &["bash-dog-api", "bash-dog-nginx"])
        }
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("--create-repos"), "{err}");

    let found = s
        .ensure_repositories(&repos, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(found.created, ["bash-dog-api", "bash-dog-nginx"]);
    assert!(
        found.created_mutable.is_empty(),
        "moto takes IMMUTABLE_WITH_EXCLUSION"
    );

    // Checked independently: DescribeRepositories now lists them.
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-2"))
        .load()
        .await;
    let ecr_client = aws_sdk_ecr::Client::new(&config);
    let out = ecr_client
        .describe_repositories()
        .repository_names("bash-dog-api")
        .repository_names("bash-dog-nginx")
        .send()
        .await
        .unwrap();
    assert_eq!(out.repositories().len(), 2);
    for repo in out.repositories() {
        assert_eq!(
            repo.image_tag_mutability(),
            Some(&aws_sdk_ecr::types::ImageTagMutability::ImmutableWithExclusion)
        );
        let filters: Vec<&str> = repo
            .image_tag_mutability_exclusion_filters()
            .iter()
            .map(|f| f.filter())
            .collect();
        assert_eq!(filters, ["latest", "buildcache"]);
        assert_eq!(
            repo.image_scanning_configuration()
                .map(|c| c.scan_on_push()),
            Some(true)
        );
    }

    // Now everything exists: nothing to create, no error, and the
    // mutability is read back.
    for create in [false, true] {
        let found = s.ensure_repositories(&repos, create).await.unwrap();
        assert!(found.created.is_empty());
        assert_eq!(found.mutability.len(), 2);
        let api = &found.mutability["bash-dog-api"];
        assert!(api.is_fixed("abc1234"));
        assert!(!api.is_fixed("latest"));
        assert!(!api.is_fixed("buildcache"));
    }
}

//! The registry client against a real `docker-registry` on loopback (with
//! and without htpasswd auth), and against a scripted server for the bearer
//! token flow, retries and broken responses. The servers are the `cli`
//! integration tests' own (`crate::testing`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::fingerprint::LABEL;
use crate::registry::client::{DOCKER_MANIFEST_V2, Manifest};
use crate::registry::{Client, Credentials, RegistryError, RetryPolicy};
use crate::testing::{ECR_PASSWORD, ECR_USER, FakeServer, Registry, Reply, free_port, sha256};

fn creds(password: &str) -> Option<Credentials> {
    Some(Credentials::new(ECR_USER, password))
}

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        attempts: 3,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        total: Duration::from_secs(10),
        request_timeout: Duration::from_secs(5),
    }
}

#[tokio::test]
async fn ping_accepts_good_credentials_and_rejects_bad_ones() {
    let reg = Registry::start_with_auth(ECR_USER, ECR_PASSWORD);
    let host = reg.addr().to_owned();

    let good = Client::new(&host, creds(ECR_PASSWORD), fast_policy()).unwrap();
    good.ping().await.unwrap();

    let bad = Client::new(&host, creds("wrong-password-xyz"), fast_policy()).unwrap();
    let err = bad.ping().await.unwrap_err();
    assert!(
        matches!(&err, RegistryError::Unauthorized { host: h, anonymous: false } if *h == host),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("refused the credentials"), "{msg}");
    assert!(!msg.contains("wrong-password-xyz") && !format!("{err:?}").contains("wrong-password"));

    let anon = Client::new(&host, None, fast_policy()).unwrap();
    let err = anon.ping().await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized {
                anonymous: true,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn manifests_head_get_put_and_copy_keep_the_exact_digest() {
    let reg = Registry::start_with_auth(ECR_USER, ECR_PASSWORD);
    let host = reg.addr().to_owned();
    let client = Client::new(&host, creds(ECR_PASSWORD), fast_policy()).unwrap();
    let (digest, bytes) = reg.push_image("bash-dog-api", "abcdef1").await;

    head_gives_the_digest_or_none(&client, &digest).await;
    get_gives_the_exact_bytes(&client, &digest, &bytes).await;
    copy_tag_keeps_the_digest(&reg, &client, &digest).await;
    put_manifest_moves_the_tag(&reg, &client).await;
}

/// HEAD of `bash-dog-api:abcdef1` (pushed as `digest`) and of missing ones.
async fn head_gives_the_digest_or_none(client: &Client, digest: &str) {
    // HEAD: missing tag and missing repository are None, present is its digest.
    assert_eq!(
        client
            .manifest_digest("bash-dog-api", "nope")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .manifest_digest("no-such-repo", "latest")
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        client
            .manifest_digest("bash-dog-api", "abcdef1")
            .await
            .unwrap()
            .as_deref(),
        Some(digest)
    );
}

/// GET of `bash-dog-api:abcdef1` (pushed as `digest` and `bytes`).
async fn get_gives_the_exact_bytes(client: &Client, digest: &str, bytes: &[u8]) {
    // GET returns the exact bytes, media type and verified digest, by tag and by digest.
    let m = client
        .get_manifest("bash-dog-api", "abcdef1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.bytes.as_ref(), bytes);
    assert_eq!(m.media_type, DOCKER_MANIFEST_V2);
    assert_eq!(m.digest, digest);
    let by_digest = client
        .get_manifest("bash-dog-api", digest)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_digest, m);
    assert_eq!(
        client.get_manifest("bash-dog-api", "nope").await.unwrap(),
        None
    );
}

/// `copy_tag` from `abcdef1` (pushed as `digest`) and from a missing tag.
async fn copy_tag_keeps_the_digest(reg: &Registry, client: &Client, digest: &str) {
    // copy_tag moves `latest` with the same digest, checked with a raw HEAD.
    assert_eq!(reg.digest("bash-dog-api", "latest"), None);
    let copied = client
        .copy_tag("bash-dog-api", "abcdef1", "latest")
        .await
        .unwrap();
    assert_eq!(copied, digest);
    assert_eq!(
        reg.digest("bash-dog-api", "latest").as_deref(),
        Some(digest)
    );

    // Copying from a missing tag says so and names it.
    let err = client
        .copy_tag("bash-dog-api", "missing", "latest")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::ManifestMissing { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("bash-dog-api:missing"), "{err}");
}

/// `put_manifest` of another image's bytes onto `latest`.
async fn put_manifest_moves_the_tag(reg: &Registry, client: &Client) {
    // put_manifest of other bytes moves the tag to their digest.
    let (other, other_bytes) = reg.push_image("bash-dog-api", "other").await;
    let put = client
        .put_manifest(
            "bash-dog-api",
            "latest",
            &Manifest::new(DOCKER_MANIFEST_V2, other_bytes),
        )
        .await
        .unwrap();
    assert_eq!(put, other);
    assert_eq!(
        reg.digest("bash-dog-api", "latest").as_deref(),
        Some(other.as_str())
    );
}

#[tokio::test]
async fn invalid_names_are_rejected_before_any_request() {
    let client = Client::new("127.0.0.1:1", None, RetryPolicy::no_retry()).unwrap();
    let err = client
        .manifest_digest("Bad Repo", "latest")
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::InvalidRepository { .. }),
        "{err:?}"
    );
    let err = client.get_manifest("app", "../../etc").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::InvalidReference { .. }),
        "{err:?}"
    );
    let err = client.copy_tag("app", "latest", "a:b").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::InvalidReference { .. }),
        "{err:?}"
    );
}

/// `--max-age` and "base … moved" read an image's config from the registry.
#[tokio::test]
async fn image_config_reads_the_config_blob_behind_a_tag_or_an_index() {
    let reg = Registry::start_with_auth(ECR_USER, ECR_PASSWORD);
    let host = reg.addr().to_owned();
    let client = Client::new(&host, creds(ECR_PASSWORD), fast_policy()).unwrap();
    let fp = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    let (digest, _) = reg
        .push_labelled_image("bash-dog-api", "fp-tag", &[(LABEL, fp), ("other", "x")])
        .await;
    let config = client
        .image_config("bash-dog-api", "fp-tag")
        .await
        .unwrap()
        .expect("the image exists");
    assert_eq!(config.labels.get(LABEL).map(String::as_str), Some(fp));
    assert_eq!(config.labels.len(), 2);
    assert_eq!(config.created, None, "this test image has no `created`");
    // An index is followed to its linux/amd64 image.
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                       "digest": digest, "size": 1,
                       "platform": {"os": "linux", "architecture": "amd64"}}]}))
    .unwrap();
    let m = Manifest::new("application/vnd.oci.image.index.v1+json", index);
    client
        .put_manifest("bash-dog-api", "multi", &m)
        .await
        .unwrap();
    let via_index = client.image_config("bash-dog-api", "multi").await.unwrap();
    assert_eq!(via_index, Some(config));
    assert_eq!(
        client.image_config("bash-dog-api", "no-tag").await.unwrap(),
        None
    );
}

#[tokio::test]
async fn bearer_challenge_gets_a_token_once_per_scope_and_retries() {
    let token_calls = Arc::new(AtomicUsize::new(0));
    let port = free_port();
    let realm = format!("http://127.0.0.1:{port}/token");
    let manifest = br#"{"schemaVersion":2}"#.to_vec();
    let digest = sha256(&manifest);
    let (tc, d) = (token_calls.clone(), digest.clone());
    let srv = FakeServer::start_on(port, move |r| {
        let auth = r.headers.get("authorization").cloned().unwrap_or_default();
        if r.path.starts_with("/token") {
            tc.fetch_add(1, Ordering::SeqCst);
            // The token service gets the Basic credentials and the scope.
            if !auth.starts_with("Basic ") || !r.path.contains("scope=repository%3Aapp%3Apull") {
                return Reply::new(401);
            }
            return Reply::new(200).body(r#"{"token":"tok-123","expires_in":300}"#);
        }
        if auth != "Bearer tok-123" {
            return Reply::new(401).header(
                "www-authenticate",
                &format!(r#"Bearer realm="{realm}",service="fake",scope="repository:app:pull""#),
            );
        }
        Reply::new(200)
            .header("docker-content-digest", &d)
            .header("content-type", DOCKER_MANIFEST_V2)
    })
    .await;
    let client = Client::new(&srv.host(), creds("pw"), fast_policy()).unwrap();
    for _ in 0..3 {
        assert_eq!(
            client
                .manifest_digest("app", "latest")
                .await
                .unwrap()
                .as_deref(),
            Some(digest.as_str())
        );
    }
    assert_eq!(
        token_calls.load(Ordering::SeqCst),
        1,
        "token is cached per scope"
    );
    // Only the first request went without the token.
    let unauth = srv
        .requests()
        .iter()
        .filter(|r| {
            r.path.starts_with("/v2/")
                && !r
                    .headers
                    .get("authorization")
                    .is_some_and(|a| a.starts_with("Bearer"))
        })
        .count();
    assert_eq!(unauth, 1);
}

#[tokio::test]
async fn refused_token_is_unauthorized() {
    let port = free_port();
    let realm = format!("http://127.0.0.1:{port}/token");
    let srv = FakeServer::start_on(port, move |r| {
        if r.path.starts_with("/token") {
            return Reply::new(401);
        }
        Reply::new(401).header(
            "www-authenticate",
            &format!(r#"Bearer realm="{realm}",service="s""#),
        )
    })
    .await;
    let client = Client::new(&srv.host(), creds("pw-secret"), fast_policy()).unwrap();
    let err = client.ping().await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Unauthorized {
                anonymous: false,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("pw-secret"));
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let srv = FakeServer::start(move |_| {
        if n2.fetch_add(1, Ordering::SeqCst) < 2 {
            Reply::new(503)
        } else {
            Reply::new(200)
        }
    })
    .await;
    let client = Client::new(&srv.host(), None, fast_policy()).unwrap();
    client.ping().await.unwrap();
    assert_eq!(n.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn persistent_server_errors_become_unavailable_after_all_attempts() {
    let srv = FakeServer::start(|_| {
        Reply::new(500).body(r#"{"errors":[{"code":"UNKNOWN","message":"disk full"}]}"#)
    })
    .await;
    let client = Client::new(&srv.host(), None, fast_policy()).unwrap();
    // GET, since a HEAD answer carries no error body.
    let err = client.get_manifest("app", "latest").await.unwrap_err();
    match &err {
        RegistryError::Unavailable {
            status, attempts, ..
        } => assert_eq!((*status, *attempts), (500, 3)),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("disk full"), "{err}");
    assert_eq!(srv.requests().len(), 3);
}

#[tokio::test]
async fn too_many_requests_honours_retry_after() {
    let n = Arc::new(AtomicUsize::new(0));
    let n2 = n.clone();
    let srv = FakeServer::start(move |_| {
        if n2.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::new(429).header("retry-after", "1")
        } else {
            Reply::new(200)
        }
    })
    .await;
    let client = Client::new(&srv.host(), None, fast_policy()).unwrap();
    let t = Instant::now();
    client.ping().await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_millis(950),
        "{:?}",
        t.elapsed()
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let srv = FakeServer::start(|_| Reply::new(400).body("bad request")).await;
    let client = Client::new(&srv.host(), None, fast_policy()).unwrap();
    let err = client.get_manifest("app", "latest").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 400, .. }),
        "{err:?}"
    );
    assert_eq!(srv.requests().len(), 1);
    let srv = FakeServer::start(|_| Reply::new(403)).await;
    let client = Client::new(&srv.host(), creds("x"), fast_policy()).unwrap();
    let m = Manifest::new(DOCKER_MANIFEST_V2, b"{}".to_vec());
    let err = client.put_manifest("app", "latest", &m).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Denied { action: "push", .. }),
        "{err:?}"
    );
    assert_eq!(srv.requests().len(), 1);
}

#[tokio::test]
async fn unreachable_registry_is_reported_after_retries() {
    let port = free_port();
    let client = Client::new(&format!("127.0.0.1:{port}"), None, fast_policy()).unwrap();
    let err = client.ping().await.unwrap_err();
    match &err {
        RegistryError::Unreachable { attempts, .. } => assert_eq!(*attempts, 3),
        other => panic!("{other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("127.0.0.1:{port}")),
        "{err}"
    );
}

#[tokio::test]
async fn tampered_manifest_is_refused() {
    let body =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec();
    let wrong = sha256(b"something else");
    let w = wrong.clone();
    let srv = FakeServer::start(move |_| {
        Reply::new(200)
            .header("docker-content-digest", &w)
            .body(body.clone())
    })
    .await;
    let client = Client::new(&srv.host(), None, fast_policy()).unwrap();
    let err = client.get_manifest("app", "latest").await.unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    // Asked by digest, bytes that hash differently are refused too.
    let err = client.get_manifest("app", &wrong).await.unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn media_type_falls_back_to_the_manifest_field() {
    let body =
        br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#.to_vec();
    let srv = FakeServer::start(move |_| Reply::new(200).body(body.clone())).await;
    let client = Client::new(&srv.host(), None, fast_policy()).unwrap();
    let m = client.get_manifest("app", "latest").await.unwrap().unwrap();
    assert_eq!(m.media_type, "application/vnd.oci.image.manifest.v1+json");
}

#[tokio::test]
async fn slow_registry_times_out_per_request() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let host = listener.local_addr().unwrap().to_string();
    // Accepts connections (backlog) but never answers.
    let policy = RetryPolicy {
        attempts: 2,
        request_timeout: Duration::from_millis(300),
        ..fast_policy()
    };
    let client = Client::new(&host, None, policy).unwrap();
    let t = Instant::now();
    let err = client.ping().await.unwrap_err();
    assert!(
        matches!(err, RegistryError::Unreachable { attempts: 2, .. }),
        "{err:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    drop(listener);
}

//! Unit tests of the registry client's parsing and redaction.

use super::auth::*;
use super::transport::*;
use super::*;

#[test]
fn loopback_hosts_use_http_and_others_https() {
    let scheme = |h: &str| {
        Client::new(h, None, RetryPolicy::default())
            .map(|r| r.inner.base.clone())
            .unwrap_or_else(|e| panic!("{h}: {e}"))
    };
    assert_eq!(scheme("127.0.0.1:5000"), "http://127.0.0.1:5000");
    assert_eq!(scheme("127.8.9.1"), "http://127.8.9.1");
    assert_eq!(scheme("localhost:5000"), "http://localhost:5000");
    assert_eq!(scheme("LOCALHOST"), "http://LOCALHOST");
    assert_eq!(scheme("[::1]:5000"), "http://[::1]:5000");
    assert_eq!(scheme("::1"), "http://[::1]");
    assert_eq!(
        scheme("123456789012.dkr.ecr.us-east-2.amazonaws.com"),
        "https://123456789012.dkr.ecr.us-east-2.amazonaws.com"
    );
    assert_eq!(scheme("10.0.0.1:5000"), "https://10.0.0.1:5000");
    assert_eq!(scheme("128.0.0.1"), "https://128.0.0.1");
    assert_eq!(
        scheme("localhost.example.com"),
        "https://localhost.example.com"
    );
}

#[test]
fn malformed_hosts_are_rejected() {
    for h in [
        "",
        "https://x",
        "x/y",
        "x:",
        "x:0",
        "x:99999",
        "x:ab",
        "user@x",
        "[::1",
        "[zz]:1",
        "[::1]x",
        ":5000",
        "a b",
        "x\u{0}",
        "é.com",
    ] {
        assert!(
            Client::new(h, None, RetryPolicy::default()).is_err(),
            "{h:?} accepted"
        );
    }
}

#[test]
fn bearer_challenge_with_quoted_commas_is_parsed() {
    let c = parse_bearer_challenge(
        r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:samalba/my-app:pull,push""#,
    )
    .unwrap();
    assert_eq!(c.realm, "https://auth.docker.io/token");
    assert_eq!(c.service.as_deref(), Some("registry.docker.io"));
    assert_eq!(
        c.scope.as_deref(),
        Some("repository:samalba/my-app:pull,push")
    );
}

#[test]
fn bearer_challenge_variants() {
    let c = parse_bearer_challenge(
        r#"bearer  realm=http://127.0.0.1:1/t , error="insufficient_scope""#,
    )
    .unwrap();
    assert_eq!(c.realm, "http://127.0.0.1:1/t");
    assert_eq!(c.service, None);
    assert_eq!(c.scope, None);
    let c = parse_bearer_challenge(r#"Bearer realm="a\"b""#).unwrap();
    assert_eq!(c.realm, "a\"b");
    assert_eq!(parse_bearer_challenge(r#"Basic realm="x""#), None);
    assert_eq!(parse_bearer_challenge("Bearer"), None);
    assert_eq!(parse_bearer_challenge(r#"Bearer service="x""#), None);
    assert_eq!(parse_bearer_challenge(r#"Bearer realm="""#), None);
    for junk in [
        "",
        "Bearer ,,,",
        "Bearer =",
        "Bearer realm",
        "Bearer realm=\"unterminated",
        "Bearer a,b=c,=d",
    ] {
        let _ = parse_bearer_challenge(junk);
    }
}

#[test]
fn credentials_go_to_realms_over_https_or_loopback_only() {
    let ok = |u: &str| realm_may_get_credentials(&reqwest::Url::parse(u).unwrap());
    assert!(ok("https://auth.docker.io/token"));
    assert!(ok("http://127.0.0.1:5001/token"));
    assert!(ok("http://[::1]:5001/token"));
    assert!(ok("http://localhost/token"));
    assert!(!ok("http://auth.example.com/token"));
    assert!(!ok("ftp://auth.example.com/token"));
}

/// A cheap deterministic generator of awkward strings.
fn junk_strings() -> Vec<String> {
    let alphabet: Vec<char> = "<>\";=, \t:/@[]?#aZ0-._éß\u{0}\u{202e}🦀".chars().collect();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..3000)
        .map(|i| {
            let len = i % 40;
            (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    alphabet[(state % alphabet.len() as u64) as usize]
                })
                .collect()
        })
        .collect()
}

#[test]
fn parsers_never_panic_on_junk() {
    for s in junk_strings() {
        let _ = parse_bearer_challenge(&s);
        let _ = parse_bearer_challenge(&format!("Bearer {s}"));
        let _ = error_body_detail(s.as_bytes());
        let _ = parse_token_response(s.as_bytes());
        let _ = media_type_from_json(s.as_bytes());
    }
}

#[test]
fn manifest_digest_is_the_sha256_of_its_bytes() {
    let m = Manifest::new(OCI_MANIFEST, Bytes::from_static(b""));
    assert_eq!(m.digest, Digest::sha256_of(b"").to_string());
}

#[test]
fn error_body_detail_summarises_registry_errors() {
    let body =
        br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
    assert_eq!(
        error_body_detail(body),
        ": MANIFEST_UNKNOWN: manifest unknown"
    );
    assert_eq!(error_body_detail(b""), "");
    assert_eq!(
        error_body_detail(b"<html>\n oops </html>"),
        ": <html> oops </html>"
    );
    assert!(error_body_detail(&[b'x'; 1000]).chars().count() < 210);
    assert_eq!(error_body_detail(&[0xff, 0xfe]), ": \u{fffd}\u{fffd}");
}

#[test]
fn token_responses_accept_token_or_access_token() {
    let (t, ttl) = parse_token_response(br#"{"token":"abc","expires_in":300}"#).unwrap();
    assert_eq!((t.expose(), ttl), ("abc", 300));
    let (t, ttl) = parse_token_response(br#"{"token":"","access_token":"xyz"}"#).unwrap();
    assert_eq!((t.expose(), ttl), ("xyz", 60));
    assert!(parse_token_response(br#"{"token":""}"#).is_none());
    assert!(parse_token_response(b"nope").is_none());
}

#[test]
fn unauthorized_messages_say_what_to_do_and_hold_no_secret() {
    let e = RegistryError::Unauthorized {
        host: "r.example".into(),
        anonymous: false,
    };
    let s = e.to_string();
    assert!(
        s.contains("r.example") && s.contains("refused the credentials"),
        "{s}"
    );
    let e = RegistryError::Unauthorized {
        host: "r.example".into(),
        anonymous: true,
    };
    assert!(e.to_string().contains("requires credentials"));
}

#[test]
fn registry_debug_redacts_the_password() {
    let r = Client::new(
        "127.0.0.1:5000",
        Some(Credentials::new("AWS", "sekrit-token")),
        RetryPolicy::default(),
    )
    .unwrap();
    let dbg = format!("{r:?}");
    assert!(!dbg.contains("sekrit"), "{dbg}");
    assert!(dbg.contains("127.0.0.1:5000"), "{dbg}");
}

#[test]
fn registry_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Client>();
}

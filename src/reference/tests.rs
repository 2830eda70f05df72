//! Tables for the edge cases of hosts, repositories, tags, digests and
//! image references; the property tests against the grammar are in
//! `grammar_tests`.

use super::*;

const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn r(s: &str) -> ImageRef {
    ImageRef::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn host_str(r: &ImageRef) -> Option<&str> {
    r.host().map(Host::as_str)
}

// ------------------------------------------------------- image refs

#[test]
fn docker_hub_short_names_have_no_host() {
    let x = r("nginx:1.25");
    assert_eq!(x.host(), None);
    assert_eq!(x.repository().as_str(), "nginx");
    assert_eq!(x.tag().map(Tag::as_str), Some("1.25"));
    let y = r("library/nginx");
    assert_eq!(
        (host_str(&y), y.repository().as_str(), y.tag()),
        (None, "library/nginx", None)
    );
}

#[test]
fn ecr_reference_splits_into_parts() {
    let x = r("123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest");
    assert_eq!(
        host_str(&x),
        Some("123456789012.dkr.ecr.us-east-2.amazonaws.com")
    );
    assert_eq!(x.repository().as_str(), "bash-dog-api");
    assert_eq!(x.tag().map(Tag::as_str), Some("latest"));
    assert_eq!(x.digest(), None);
}

#[test]
fn host_detection_follows_dot_colon_localhost_rule() {
    assert_eq!(host_str(&r("localhost/foo")), Some("localhost"));
    assert_eq!(host_str(&r("localhost:5000/foo")), Some("localhost:5000"));
    assert_eq!(host_str(&r("registry:5000/foo")), Some("registry:5000"));
    assert_eq!(host_str(&r("ghcr.io/org/app")), Some("ghcr.io"));
    // No dot, no colon, not localhost: a Docker Hub namespace.
    let hub = r("myorg/app");
    assert_eq!(hub.host(), None);
    assert_eq!(hub.repository().as_str(), "myorg/app");
    assert_eq!(host_str(&r("[::1]:5000/foo")), Some("[::1]:5000"));
    // The familiar-name rule decides; the other reading is not tried.
    assert!(ImageRef::parse("Foo/app").is_err());
    assert!(ImageRef::parse("a_b.c/app").is_err());
    // A bare IPv6 address needs brackets in a reference.
    assert!(ImageRef::parse("::1/app").is_err());
}

#[test]
fn port_is_not_mistaken_for_tag() {
    let x = r("127.0.0.1:5000/team/app");
    assert_eq!(host_str(&x), Some("127.0.0.1:5000"));
    assert_eq!(x.repository().as_str(), "team/app");
    assert_eq!(x.tag(), None);
    let y = r("127.0.0.1:5000/team/app:v1.2-rc_3");
    assert_eq!(y.tag().map(Tag::as_str), Some("v1.2-rc_3"));
    // Without a `/`, the `:` is a tag's.
    let z = r("localhost:5000");
    assert_eq!((z.host(), z.repository().as_str()), (None, "localhost"));
    assert_eq!(z.tag().map(Tag::as_str), Some("5000"));
}

#[test]
fn digest_with_and_without_tag() {
    let x = r(&format!("ghcr.io/a/b@{D}"));
    assert_eq!(x.digest().map(Digest::as_str), Some(D));
    assert_eq!(x.tag(), None);
    let y = r(&format!("localhost:5000/a:v1@{D}"));
    assert_eq!(y.tag().map(Tag::as_str), Some("v1"));
    assert_eq!(y.digest().map(Digest::as_str), Some(D));
    assert_eq!(y.repository().as_str(), "a");
}

#[test]
fn display_round_trips() {
    for s in [
        "nginx",
        "nginx:1.25",
        "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable",
        "localhost:5000/a/b_c__d--e.f:tag",
        &format!("123456789012.dkr.ecr.eu-west-1.amazonaws.com/x@{D}"),
        &format!("[::1]:5000/x:t@{D}"),
    ] {
        assert_eq!(r(s).to_string(), s);
    }
}

#[test]
fn invalid_references_are_rejected_with_reason() {
    fn kind(e: &ImageRefError) -> &'static str {
        match e {
            ImageRefError::Empty => "empty",
            ImageRefError::Repository(RepositoryError::TooLong { .. }) => "long",
            ImageRefError::Host { .. } => "host",
            ImageRefError::Repository(_) => "path",
            ImageRefError::Tag(_) => "tag",
            ImageRefError::Digest(_) => "digest",
        }
    }
    let cases = [
        ("", "empty"),
        ("Nginx", "path"),
        ("ghcr.io/Org/app", "path"),
        ("a//b", "path"),
        ("a/", "path"),
        ("a..b", "path"),
        ("a___b", "path"),
        ("-a", "path"),
        ("app:", "tag"),
        ("app:.x", "tag"),
        ("app:a b", "tag"),
        ("app@sha256:abc", "digest"),
        ("app@md5:0123456789abcdef0123456789abcdef", "digest"),
        (
            "app@sha256:0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
            "digest",
        ),
        ("bad_host.io/app", "host"),
        ("host.io:port/app", "host"),
        ("[::1/app", "host"),
        ("-x.io/app", "host"),
    ];
    for (input, expected) in cases {
        match ImageRef::parse(input) {
            Ok(v) => panic!("{input:?} parsed as {v:?}"),
            Err(e) => assert_eq!(kind(&e), expected, "{input:?}: {e}"),
        }
    }
    let long = "a".repeat(256);
    assert_eq!(
        ImageRef::parse(&long),
        Err(ImageRefError::Repository(RepositoryError::TooLong {
            len: 256
        }))
    );
    assert!(ImageRef::parse(&"a".repeat(255)).is_ok());
}

#[test]
fn error_messages_say_what_is_wrong() {
    let e = ImageRef::parse("app:").err().map(|e| e.to_string());
    assert!(e.is_some_and(|m| m.contains("tag ``") && m.contains("128")));
    let e = ImageRef::parse("x:0/app").map_err(|e| e.to_string());
    assert!(e.is_err_and(|m| m.contains("`x:0`") && m.contains("1 to 65535")));
    let e = ImageRef::parse("bad_host.io/app").map_err(|e| e.to_string());
    assert!(e.is_err_and(|m| m.contains("`bad_host.io`") && m.contains("no `_`")));
    let e = Repository::parse("a___b").map_err(|e| e.to_string());
    assert!(e.is_err_and(|m| m.contains("`a___b`") && m.contains("two `__`")));
    let e = Digest::parse("md5:00").map_err(|e| e.to_string());
    assert!(e.is_err_and(|m| m.contains("sha256, sha384 or sha512")));
    let e = Digest::parse("sha384:00").map_err(|e| e.to_string());
    assert!(e.is_err_and(|m| m.contains("96 lowercase hex")));
}

#[test]
fn never_panics_on_odd_input() {
    for s in [
        "@", ":", "/", "//", "a@", "@sha256:", "[", "]", "[]/a", "é", "a:é", "é/a", "<", ">",
        "<é>", "a/b:c/d", "host:/a", ":5000/a", "[:", "[]:", "a:]",
    ] {
        let _ = ImageRef::parse(s);
        let _ = Host::parse(s).map(|h| (h.ecr(), h.is_loopback(), h.port()));
        let _ = Reference::parse(s);
    }
}

// ------------------------------------------------------------ hosts

#[test]
fn ecr_hosts_give_account_and_region() {
    let ecr = |h: &str| {
        Host::parse(h)
            .ok()
            .and_then(|h| h.ecr())
            .map(|e| (e.account, e.region))
    };
    assert_eq!(
        ecr("123456789012.dkr.ecr.us-east-2.amazonaws.com"),
        Some(("123456789012".into(), "us-east-2".into()))
    );
    assert_eq!(
        ecr("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
        Some(("123456789012".into(), "cn-north-1".into()))
    );
    assert_eq!(
        ecr("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
        Some(("123456789012".into(), "us-gov-west-1".into()))
    );
    assert_eq!(
        ecr("123456789012.dkr-ecr.eu-west-1.on.aws"),
        Some(("123456789012".into(), "eu-west-1".into()))
    );
    assert_eq!(
        ecr("123456789012.DKR.ECR.us-east-2.amazonaws.com:443"),
        Some(("123456789012".into(), "us-east-2".into()))
    );
    for not_ecr in [
        "public.ecr.aws",
        "ghcr.io",
        "localhost:5000",
        "12345678901.dkr.ecr.us-east-1.amazonaws.com",
        "1234567890123.dkr.ecr.us-east-1.amazonaws.com",
        "abcdefghijkl.dkr.ecr.us-east-1.amazonaws.com",
        "123456789012.dkr.ecr..amazonaws.com",
        "123456789012.dkr.ecr.us-east-1.amazonaws.com.evil.io",
        "123456789012.dkr.ecr.us-east-1.example.com",
        "123456789012.dkr.ecr.us-east-1.on.aws",
        "123456789012.dkr-ecr.us-east-1.amazonaws.com",
        "",
    ] {
        assert_eq!(ecr(not_ecr), None, "{not_ecr}");
    }
}

#[test]
fn region_is_read_from_ecr_image_uris() {
    let region = |uri: &str| {
        ImageRef::parse(uri)
            .ok()
            .and_then(|r| r.ecr())
            .map(|e| e.region)
    };
    assert_eq!(
        region("123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest").as_deref(),
        Some("us-east-2")
    );
    assert_eq!(
        region("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/x").as_deref(),
        Some("cn-north-1")
    );
    for other in [
        "public.ecr.aws/nginx/nginx:1",
        "nginx:latest",
        "",
        "123.dkr.ecr",
        "abc.dkr.ecr.us-east-1.amazonaws.com/x",
        "1.dkr.ecr.US_EAST.amazonaws.com/x",
        "1.dkr.ecr.us-east-1.example.com/x",
    ] {
        assert_eq!(region(other), None, "{other}");
    }
}

#[test]
fn loopback_hosts() {
    let loopback = |h: &str| Host::parse(h).is_ok_and(|h| h.is_loopback());
    for yes in [
        "127.0.0.1",
        "127.0.0.1:5000",
        "127.3.2.1:80",
        "localhost",
        "LOCALHOST:5000",
        "[::1]",
        "[::1]:5000",
        "::1",
    ] {
        assert!(loopback(yes), "{yes}");
    }
    for no in [
        "128.0.0.1",
        "10.0.0.1:5000",
        "localhost.example.com",
        "[::2]:5000",
        "127.0.0.1:abc",
        "[::1",
        "ghcr.io",
        "",
    ] {
        assert!(!loopback(no), "{no}");
    }
}

#[test]
fn scheme_port_and_authority() {
    let h = |s: &str| Host::parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
    assert_eq!(h("127.0.0.1:5000").scheme(), "http");
    assert_eq!(h("ghcr.io").scheme(), "https");
    assert_eq!(h("::1").authority(), "[::1]");
    assert_eq!(h("::1").scheme(), "http");
    assert_eq!(h("[::1]:5000").authority(), "[::1]:5000");
    assert_eq!(h("[::1]:5000").port(), Some(5000));
    assert_eq!(h("[::1]:5000").name(), "[::1]");
    assert_eq!(h("::1").port(), None);
    assert_eq!(h("ghcr.io:65535").port(), Some(65535));
    assert_eq!(h("ghcr.io").port(), None);
    assert_eq!(h("ghcr.io:443").name(), "ghcr.io");
}

#[test]
fn host_edge_cases() {
    for ok in [
        "a",
        "a-b.c--d.e",
        "A.B",
        "1.2.3.4",
        "x:1",
        "x:65535",
        "x:05000",
        "[::1]",
        "[FE80::1]:8",
        "[2001:db8::1]:443",
        "::1",
        "2001:db8::1",
    ] {
        assert!(Host::parse(ok).is_ok(), "{ok}");
    }
    for (bad, why) in [
        ("", "empty"),
        ("https://x", "scheme"),
        ("x/y", "path"),
        (
            "bad_host.io",
            "`_` is not in the grammar's domain components",
        ),
        ("x_y:5000", "`_`"),
        ("-a.io", "leading `-`"),
        ("a-.io", "trailing `-`"),
        ("a..io", "empty label"),
        ("a.", "empty label"),
        ("x:0", "port 0"),
        ("x:65536", "port past 65535"),
        ("x:99999", "port past 65535"),
        ("x:", "empty port"),
        ("x:+1", "sign"),
        ("x:1:2", "two ports"),
        ("[::1", "unclosed bracket"),
        ("[::1]x", "junk after bracket"),
        ("[zz]:1", "not hex"),
        ("[]", "empty brackets"),
        ("[1:2]", "not an address"),
        (
            "[::ffff:1.2.3.4]",
            "dotted tail: not in the grammar's IPv6 characters",
        ),
        ("[fe80::1%eth0]", "zone"),
        ("::ffff:1.2.3.4", "bare with dotted tail"),
        ("é.com", "non-ASCII"),
        ("a b", "space"),
        ("user@x", "user"),
    ] {
        assert!(Host::parse(bad).is_err(), "{bad:?} accepted ({why})");
    }
}

// ------------------------------------------------------ repositories

#[test]
fn repository_names_follow_the_distribution_grammar() {
    for ok in [
        "bash-dog-api",
        "a",
        "team/app",
        "a.b_c-d",
        "a__b",
        "a--b/c9",
        "a---------b",
        "a.b.c_d__e-f",
    ] {
        assert_eq!(
            Repository::parse(ok).map(|r| r.to_string()),
            Ok(ok.to_owned())
        );
    }
    for bad in [
        "", "Api", "a//b", "/a", "a/", "-a", "a-", "a..b", "a b", "a:b", "../x", "a?b", "a___b",
        "a_-b", "a-_b", "a._b", "a.-b", "_a", "a_", "a/.b", "é",
    ] {
        assert!(Repository::parse(bad).is_err(), "{bad:?} accepted");
    }
    assert!(Repository::parse(&"a".repeat(256)).is_err());
    assert!(Repository::parse(&"a".repeat(255)).is_ok());
    let long = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    assert_eq!(long.len(), 255);
    assert!(Repository::parse(&long).is_ok());
    assert_eq!(
        Repository::parse(&format!("{long}c")),
        Err(RepositoryError::TooLong { len: 256 })
    );
    // The limit counts the repository only, not the host.
    assert!(ImageRef::parse(&format!("ghcr.io/{long}")).is_ok());
}

#[test]
fn last_component_is_the_name_after_the_last_slash() {
    let last = |s: &str| Repository::parse(s).map(|r| r.last_component().to_owned());
    assert_eq!(last("team/bash-dog-api"), Ok("bash-dog-api".to_owned()));
    assert_eq!(last("app"), Ok("app".to_owned()));
}

// ------------------------------------------------- tags and digests

#[test]
fn tags_and_digests_follow_the_distribution_grammar() {
    for ok in ["latest", "abcdef1", "_x", "v1.2-3", "A", &"a".repeat(128)] {
        assert!(Tag::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", ".x", "-x", "a/b", "a:b", "a b", "é", &"a".repeat(129)] {
        assert!(Tag::parse(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        Tag::parse(&"a".repeat(129)),
        Err(TagError::TooLong { len: 129 })
    );
    let d = Digest::sha256_of(b"x");
    assert!(Digest::parse(&d).is_ok());
    assert!(Digest::parse("sha256:ABC").is_err());
    assert!(Digest::parse(&d.to_uppercase()).is_err());
    assert!(Digest::parse("md5:0123").is_err());
    assert!(Digest::parse("sha256").is_err());
}

#[test]
fn sha384_and_sha512_digests_are_supported() {
    for alg in DigestAlgorithm::ALL {
        let d = alg.digest(b"abc");
        assert_eq!(d.algorithm(), alg);
        assert_eq!(d.hex().len(), alg.hex_len());
        assert_eq!(Digest::parse(&d), Ok(d.clone()));
        assert_eq!(d.verify(b"abc"), Ok(()));
        let wrong = d.verify(b"abd");
        assert!(wrong.is_err_and(|m| m.expected == d && m.actual == alg.digest(b"abd")));
    }
    let short = format!("sha384:{}", "a".repeat(64));
    assert!(Digest::parse(&short).is_err());
    let upper = format!("sha512:{}", "A".repeat(128));
    assert!(Digest::parse(&upper).is_err());
    assert!(Digest::parse(&format!("SHA256:{}", "a".repeat(64))).is_err());
    assert!(Digest::parse(&format!("sha256+b64:{}", "a".repeat(64))).is_err());
}

#[test]
fn sha256_digest_matches_known_value() {
    assert_eq!(
        Digest::sha256_of(b"").as_str(),
        "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert!(Digest::parse("md5:x").is_err());
}

#[test]
fn references_are_tags_or_digests() {
    assert_eq!(
        Reference::parse("latest"),
        Ok(Reference::Tag(Tag("latest".into())))
    );
    assert_eq!(Reference::parse(D), Ok(Reference::Digest(Digest(D.into()))));
    assert_eq!(Reference::parse(D).map(|r| r.to_string()), Ok(D.to_owned()));
    for bad in ["", "../../etc", "a:b", "a b", "sha256:abc"] {
        assert!(Reference::parse(bad).is_err(), "{bad:?}");
    }
}

// ------------------------------------------------------------- serde

#[test]
fn serde_reads_and_writes_the_text_and_validates() {
    let image = format!("[::1]:5000/x:t@{D}");
    let json = serde_json::to_string(&r(&image)).unwrap_or_default();
    assert_eq!(json, serde_json::to_string(&image).unwrap_or_default());
    let back: Result<ImageRef, _> = serde_json::from_str(&json);
    assert_eq!(back.ok(), Some(r(&image)));
    let bad: Result<Tag, _> = serde_json::from_str(r#"".x""#);
    assert!(bad.is_err_and(|e| e.to_string().contains("not starting with `.`")));
    let host: Result<Host, _> = serde_json::from_str(r#""127.0.0.1:5000""#);
    assert_eq!(
        host.map(|h| h.to_string()).ok().as_deref(),
        Some("127.0.0.1:5000")
    );
    assert!(serde_json::from_str::<Digest>(r#""sha256:00""#).is_err());
    assert!(serde_json::from_str::<Repository>(r#""Up""#).is_err());
    assert!(serde_json::from_str::<Reference>(r#""v1""#).is_ok());
    assert!(serde_json::from_str::<Host>("5000").is_err());
}

//! Tables for the edge cases, and property tests against an oracle built
//! from the distribution/reference `regexp.go` patterns.

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::string::string_regex;
use regex_lite::Regex;

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

// ------------------------------------------- the grammar as an oracle

// Transcribed from distribution/reference `regexp.go`. Go's `\w` and
// `[[:xdigit:]]` are ASCII classes: spelled out, so that proptest's
// generator (Unicode-aware by default) stays ASCII too.
const ALPHANUMERIC: &str = "[a-z0-9]+";
const SEPARATOR: &str = "(?:[._]|__|[-]+)";
const DOMAIN_NAME_COMPONENT: &str = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
const OPTIONAL_PORT: &str = "(?::[0-9]+)?";
const TAG: &str = "[0-9A-Za-z_][0-9A-Za-z_.-]{0,127}";
const DIGEST_PAT: &str = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9A-Fa-f]{32,}";
const IPV6_ADDRESS: &str = r"\[(?:[a-fA-F0-9:]+)\]";

fn domain_name() -> String {
    format!(r"{DOMAIN_NAME_COMPONENT}(?:\.{DOMAIN_NAME_COMPONENT})*")
}

fn domain_and_port() -> String {
    format!("(?:{}|{IPV6_ADDRESS}){OPTIONAL_PORT}", domain_name())
}

fn path_component() -> String {
    format!("{ALPHANUMERIC}(?:{SEPARATOR}{ALPHANUMERIC})*")
}

fn remote_name() -> String {
    let p = path_component();
    format!("{p}(?:/{p})*")
}

fn anchored(pattern: &str) -> Regex {
    Regex::new(&format!("^(?:{pattern})$")).unwrap_or_else(|e| panic!("{pattern}: {e}"))
}

/// `referencePat`: name, tag and digest captured.
static REFERENCE: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        "((?:{}/)?{})(?::({TAG}))?(?:@({DIGEST_PAT}))?",
        domain_and_port(),
        remote_name()
    ))
});
/// `domainAndPort`, with the IPv6 inside and the port captured.
static DOMAIN_AND_PORT: LazyLock<Regex> = LazyLock::new(|| {
    anchored(&format!(
        r"(?:{}|\[([a-fA-F0-9:]+)\])(?::([0-9]+))?",
        domain_name()
    ))
});
static REMOTE_NAME: LazyLock<Regex> = LazyLock::new(|| anchored(&remote_name()));
static TAG_RE: LazyLock<Regex> = LazyLock::new(|| anchored(TAG));
static DIGEST_RE: LazyLock<Regex> = LazyLock::new(|| anchored(DIGEST_PAT));

/// go-digest's `Validate`: a registered algorithm with exactly its number of
/// lowercase hex digits (`anchoredEncodedRegexps`).
fn go_digest(d: &str) -> bool {
    let Some((alg, hex)) = d.split_once(':') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha384" => 96,
        "sha512" => 128,
        _ => return false,
    };
    DIGEST_RE.is_match(d) && anchored(&format!("[a-f0-9]{{{len}}}")).is_match(hex)
}

/// Our documented deviation: a port is 1 to 65535.
fn port_in_range(port: &str) -> bool {
    let digits = port.trim_start_matches('0');
    digits.len() <= 5
        && digits
            .parse::<u32>()
            .is_ok_and(|p| (1..=65535).contains(&p))
}

/// `domainAndPort` plus the deviations: a real IPv6 address in brackets, a
/// port in range, and (for [`Host`] alone) a bare IPv6 address.
fn oracle_host(h: &str, bare_ipv6: bool) -> bool {
    if bare_ipv6
        && h.bytes().all(|b| b.is_ascii_hexdigit() || b == b':')
        && h.parse::<Ipv6Addr>().is_ok()
    {
        return true;
    }
    let Some(c) = DOMAIN_AND_PORT.captures(h) else {
        return false;
    };
    c.get(1)
        .is_none_or(|v6| v6.as_str().parse::<Ipv6Addr>().is_ok())
        && c.get(2).is_none_or(|p| port_in_range(p.as_str()))
}

/// Our documented deviation: Docker's familiar-name rule picks the host.
fn familiar_host(first: &str) -> bool {
    first.contains(['.', ':']) || first == "localhost"
}

/// `reference.Parse` (regex, name length, go-digest) with the deviations:
/// the host and repository it reads, or `None` when it rejects `s`.
fn oracle_image(s: &str) -> Option<(Option<&str>, &str)> {
    let c = REFERENCE.captures(s)?;
    let name = c.get(1).map_or("", |m| m.as_str());
    let (host, path) = match name.split_once('/') {
        Some((first, path)) if familiar_host(first) => (Some(first), path),
        _ => (None, name),
    };
    let ok = host.is_none_or(|h| oracle_host(h, false))
        && REMOTE_NAME.is_match(path)
        && path.len() <= REPOSITORY_MAX_LEN
        && c.get(3).is_none_or(|d| go_digest(d.as_str()));
    ok.then_some((host, path))
}

/// The pattern with its unbounded repetitions capped, for generating:
/// proptest would otherwise draw names far past the length limit.
fn bounded(pattern: &str) -> String {
    pattern
        .replace("]+", "]{1,4}")
        .replace("]*", "]{0,4}")
        .replace(")*", "){0,3}")
}

fn gen_regex(pattern: &str) -> BoxedStrategy<String> {
    string_regex(pattern)
        .unwrap_or_else(|e| panic!("{pattern}: {e}"))
        .boxed()
}

/// Hosts from the grammar that our rules keep: domain names (with a port
/// from the grammar's digits, in range) and real IPv6 addresses.
fn grammar_host() -> BoxedStrategy<String> {
    let port =
        proptest::option::of(gen_regex("[0-9]{1,5}").prop_filter("1-65535", |p| port_in_range(p)));
    let name = prop_oneof![
        gen_regex(&bounded(&domain_name())),
        any::<Ipv6Addr>()
            .prop_map(|ip| format!("[{ip}]"))
            .prop_filter("no dotted IPv4 tail", |s| !s.contains('.')),
    ];
    (name, port)
        .prop_map(|(n, p)| match p {
            Some(p) => format!("{n}:{p}"),
            None => n,
        })
        .boxed()
}

fn grammar_repository() -> BoxedStrategy<String> {
    gen_regex(&bounded(&remote_name()))
        .prop_filter("at most 255", |r| r.len() <= REPOSITORY_MAX_LEN)
        .boxed()
}

fn grammar_digest() -> BoxedStrategy<String> {
    prop_oneof![
        gen_regex("sha256:[a-f0-9]{64}"),
        gen_regex("sha384:[a-f0-9]{96}"),
        gen_regex("sha512:[a-f0-9]{128}"),
    ]
    .boxed()
}

/// Digest-like text near the boundary: right and wrong algorithms, lengths
/// and letter case.
fn digest_like() -> BoxedStrategy<String> {
    prop_oneof![
        grammar_digest(),
        gen_regex("(?:sha256|sha384|sha512|md5|SHA256|sha256\\+b64|a-b):[0-9a-fA-F]{30,130}"),
        gen_regex("(?:sha256|sha384|sha512):[0-9a-f]{63,65}"),
        gen_regex("sha256:[0-9a-fA-F]{64}"),
        gen_regex("[a-z0-9:]{0,10}"),
    ]
    .boxed()
}

/// Reference-like text: the grammar's parts and near misses, joined.
fn image_like() -> BoxedStrategy<String> {
    let host = prop_oneof![
        4 => grammar_host(),
        2 => host_like(),
        1 => proptest::sample::select(vec!["localhost", "localhost:5000", "LOCALHOST", "::1", "[::1]"])
            .prop_map(str::to_owned),
    ];
    let path = prop_oneof![
        3 => grammar_repository(),
        1 => near_miss_repository(),
    ];
    let tag = prop_oneof![
        3 => gen_regex(TAG),
        1 => gen_regex("[a-zA-Z0-9_.:-]{0,8}"),
    ];
    prop_oneof![
        1 => gen_regex(r"[ab0A._:/@\[\]-]{0,14}"),
        4 => (
            proptest::option::of(host),
            path,
            proptest::option::of(tag),
            proptest::option::of(digest_like()),
        )
            .prop_map(|(h, p, t, d)| {
                let mut s = h.map(|h| format!("{h}/")).unwrap_or_default();
                s.push_str(&p);
                if let Some(t) = t {
                    s.push(':');
                    s.push_str(&t);
                }
                if let Some(d) = d {
                    s.push('@');
                    s.push_str(&d);
                }
                s
            }),
    ]
    .boxed()
}

/// Repository-like text: alphanumeric runs joined by valid and invalid
/// separators (each invalid one alone in a string often enough), sometimes
/// with a stray character at either end.
fn near_miss_repository() -> BoxedStrategy<String> {
    let sep = proptest::sample::select(vec![
        ".", "_", "__", "-", "---", "/", ".", "_", "-", "/", "___", "..", "._", "_.", "-_", "_-",
        ".-", "-.", "//", "/.", "./",
    ]);
    let stray = || prop_oneof![6 => Just(String::new()), 1 => gen_regex("[._/A-]")];
    let run = || gen_regex("[a-z0-9]{1,3}");
    (
        stray(),
        run(),
        proptest::collection::vec((sep, run()), 0..4),
        stray(),
    )
        .prop_map(|(pre, first, rest, post)| {
            let mut s = pre + &first;
            for (sep, run) in rest {
                s.push_str(sep);
                s.push_str(&run);
            }
            s + &post
        })
        .boxed()
}

/// Host-like text: the grammar's hosts, and names and ports near misses.
fn host_like() -> BoxedStrategy<String> {
    let name = prop_oneof![
        gen_regex(&bounded(&domain_name())),
        gen_regex(r"[a-zA-Z0-9]{1,3}(?:[._-]{1,2}[a-zA-Z0-9]{1,3}){0,3}"),
        gen_regex(r"\[?[0-9a-fA-F:.%]{0,12}\]?"),
        proptest::sample::select(vec![
            "localhost",
            "LOCALHOST",
            "::1",
            "[::1]",
            "1:2",
            "[1:2]",
            "[::ffff:1.2.3.4]",
            "a_b",
            "",
        ])
        .prop_map(str::to_owned),
    ];
    let port = proptest::sample::select(vec![
        "", ":", ":0", ":00", ":1", ":80", ":05000", ":65535", ":65536", ":99999", ":+1", ":1:2",
    ]);
    prop_oneof![
        grammar_host(),
        (name, port).prop_map(|(n, p)| n + p),
        gen_regex(r"[a-zA-Z0-9_.:\[\]/-]{0,12}"),
    ]
    .boxed()
}

proptest! {
    #[test]
    fn grammar_tags_parse_and_round_trip(t in gen_regex(TAG)) {
        prop_assert_eq!(Tag::parse(&t).map(|t| t.to_string()), Ok(t));
    }

    #[test]
    fn grammar_repositories_parse_and_round_trip(p in grammar_repository()) {
        prop_assert_eq!(Repository::parse(&p).map(|r| r.to_string()), Ok(p));
    }

    #[test]
    fn grammar_hosts_parse_and_round_trip(h in grammar_host()) {
        prop_assert_eq!(Host::parse(&h).map(|h| h.to_string()), Ok(h));
    }

    #[test]
    fn grammar_digests_parse_and_verify(d in grammar_digest(), bytes in any::<Vec<u8>>()) {
        let parsed = Digest::parse(&d);
        prop_assert_eq!(parsed.as_ref().map(ToString::to_string), Ok(d.clone()));
        if let Ok(parsed) = parsed {
            let actual = parsed.algorithm().digest(&bytes);
            prop_assert_eq!(parsed.verify(&bytes).is_ok(), actual == parsed);
            prop_assert_eq!(actual.verify(&bytes), Ok(()));
        }
    }

    #[test]
    fn grammar_references_parse_and_round_trip(
        host in proptest::option::of(grammar_host().prop_filter("a host by Docker's rule", |h| familiar_host(h))),
        repo in grammar_repository(),
        tag in proptest::option::of(gen_regex(TAG)),
        digest in proptest::option::of(grammar_digest()),
    ) {
        // Without a host, a first component with a `.` would be read as one.
        prop_assume!(host.is_some() || !repo.split_once('/').is_some_and(|(f, _)| familiar_host(f)));
        let mut text = host.clone().map(|h| format!("{h}/")).unwrap_or_default();
        text.push_str(&repo);
        if let Some(t) = &tag {
            text.push(':');
            text.push_str(t);
        }
        if let Some(d) = &digest {
            text.push('@');
            text.push_str(d);
        }
        let parsed = ImageRef::parse(&text);
        prop_assert!(parsed.is_ok(), "{}: {:?}", text, parsed);
        if let Ok(p) = parsed {
            prop_assert_eq!(p.to_string(), text.clone());
            prop_assert_eq!(p.host().map(|h| h.to_string()), host);
            prop_assert_eq!(p.repository().as_str(), repo.as_str());
            prop_assert_eq!(p.tag().map(|t| t.to_string()), tag);
            prop_assert_eq!(p.digest().map(|d| d.to_string()), digest);
            prop_assert!(oracle_image(&text).is_some());
        }
    }

    #[test]
    fn image_refs_parse_iff_the_oracle_matches(s in image_like()) {
        let parsed = ImageRef::parse(&s);
        let split = parsed
            .as_ref()
            .ok()
            .map(|p| (p.host().map(Host::as_str), p.repository().as_str()));
        prop_assert_eq!(split, oracle_image(&s), "{:?} → {:?}", s, parsed);
        if let Ok(p) = &parsed {
            prop_assert_eq!(p.to_string(), s);
        }
    }

    #[test]
    fn hosts_parse_iff_the_oracle_matches(s in host_like()) {
        prop_assert_eq!(Host::parse(&s).is_ok(), oracle_host(&s, true), "{:?}", s);
    }

    #[test]
    fn repositories_parse_iff_the_oracle_matches(
        s in prop_oneof![
            near_miss_repository(),
            gen_regex("[a-z0-9._/A-]{0,16}"),
            gen_regex("[a-z]{120,130}/[a-z]{120,130}"),
        ]
    ) {
        let expected = REMOTE_NAME.is_match(&s) && s.len() <= REPOSITORY_MAX_LEN;
        prop_assert_eq!(Repository::parse(&s).is_ok(), expected, "{:?}", s);
    }

    #[test]
    fn tags_parse_iff_the_oracle_matches(
        s in prop_oneof![
            gen_regex("[a-zA-Z0-9_.:/ é-]{0,12}"),
            gen_regex("[a-zA-Z0-9_.-]{125,131}"),
        ]
    ) {
        prop_assert_eq!(Tag::parse(&s).is_ok(), TAG_RE.is_match(&s), "{:?}", s);
    }

    #[test]
    fn digests_parse_iff_the_oracle_matches(s in digest_like()) {
        prop_assert_eq!(Digest::parse(&s).is_ok(), go_digest(&s), "{:?}", s);
    }

    #[test]
    fn parsers_never_panic(s in any::<String>()) {
        let _ = ImageRef::parse(&s);
        let _ = Reference::parse(&s);
        if let Ok(h) = Host::parse(&s) {
            let _ = (h.ecr(), h.is_loopback(), h.port(), h.authority());
        }
    }
}

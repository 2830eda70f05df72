//! Property tests against an oracle built from the distribution/reference
//! `regexp.go` patterns.

use std::net::Ipv6Addr;
use std::sync::LazyLock;

use proptest::prelude::*;
use proptest::string::string_regex;
use regex_lite::Regex;

use super::*;

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

//! Image references as they appear in a task definition's `image` field: the
//! docker/distribution `reference` grammar (`[host[:port]/]path[:tag][@digest]`),
//! CodeDeploy-style placeholders (`<IMAGE1_NAME>`), and the host classifications
//! stackbake needs (private ECR hosts, loopback registries). Pure string logic.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest name (host and path, without tag or digest) the reference grammar allows.
pub const NAME_MAX_LEN: usize = 255;

/// A parsed Docker image reference, e.g.
/// `123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest`.
///
/// No normalisation happens: `nginx` keeps `host: None` and `repository: "nginx"`
/// (not `docker.io/library/nginx`), so `Display` gives back the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host with optional port (`localhost:5000`, `[::1]:5000`), if the
    /// first path component is a host (it contains `.` or `:` or is `localhost`).
    pub host: Option<String>,
    /// The repository path without host, tag or digest (`team/bash-dog-api`).
    pub repository: String,
    /// The tag without `:` (`latest`).
    pub tag: Option<String>,
    /// The digest with its algorithm (`sha256:<64 hex>`).
    pub digest: Option<String>,
}

/// What a task definition's `image` field holds: a real reference, or a
/// placeholder such as `<IMAGE1_NAME>` that CodePipeline substitutes later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Image {
    /// A docker/distribution image reference.
    Ref(ImageRef),
    /// A CodeDeploy/CodePipeline placeholder; holds the name between `<` and `>`.
    Placeholder(String),
}

/// Why a string is not a valid image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    /// The reference is empty.
    #[error("the image reference is empty")]
    Empty,
    /// Host plus path is longer than [`NAME_MAX_LEN`].
    #[error("the image name is {len} characters long; the limit is {NAME_MAX_LEN}")]
    NameTooLong {
        /// Length of the name part.
        len: usize,
    },
    /// The registry host is malformed.
    #[error(
        "`{host}` is not a valid registry host: expected HOST[:PORT] with letters, digits, `-` and `.` (or [IPv6]:PORT)"
    )]
    InvalidHost {
        /// The offending host.
        host: String,
    },
    /// A repository path component is malformed.
    #[error(
        "repository path component `{component}` is invalid: use lowercase letters and digits, separated by `.`, `_`, `__` or dashes"
    )]
    InvalidPathComponent {
        /// The offending component (may be empty).
        component: String,
    },
    /// The tag is malformed.
    #[error(
        "tag `{tag}` is invalid: a tag is 1-128 characters of letters, digits, `_`, `.` and `-`, not starting with `.` or `-`"
    )]
    InvalidTag {
        /// The offending tag.
        tag: String,
    },
    /// The digest is malformed or uses an unknown algorithm.
    #[error(
        "digest `{digest}` is invalid: expected sha256:<64 lowercase hex> (or sha384/sha512 with 96/128 hex)"
    )]
    InvalidDigest {
        /// The offending digest.
        digest: String,
    },
    /// Something between `<` and `>` that is not a placeholder name.
    #[error(
        "placeholder `{text}` is invalid: a placeholder is `<NAME>` with letters, digits, `_`, `-` or `.`"
    )]
    InvalidPlaceholder {
        /// The whole placeholder text.
        text: String,
    },
}

impl Image {
    /// Parses a task definition `image` value: `<NAME>` is a placeholder, anything
    /// else must follow the reference grammar.
    pub fn parse(text: &str) -> Result<Self, ImageRefError> {
        if let Some(inner) = text.strip_prefix('<') {
            let name = inner.strip_suffix('>').unwrap_or("");
            let valid = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
            return if valid {
                Ok(Self::Placeholder(name.to_owned()))
            } else {
                Err(ImageRefError::InvalidPlaceholder {
                    text: text.to_owned(),
                })
            };
        }
        ImageRef::parse(text).map(Self::Ref)
    }
}

impl ImageRef {
    /// Parses `[host[:port]/]path[:tag][@digest]` per the docker/distribution
    /// `reference` grammar, without normalising (no implicit `docker.io`).
    pub fn parse(text: &str) -> Result<Self, ImageRefError> {
        if text.is_empty() {
            return Err(ImageRefError::Empty);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => {
                validate_digest(digest)?;
                (rest, Some(digest.to_owned()))
            }
            None => (text, None),
        };
        // A tag's `:` comes after the last `/`; an earlier `:` belongs to a port.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let colon = last_slash + i;
                let tag = &rest[colon + 1..];
                validate_tag(tag)?;
                (&rest[..colon], Some(tag.to_owned()))
            }
            None => (rest, None),
        };
        if name.len() > NAME_MAX_LEN {
            return Err(ImageRefError::NameTooLong { len: name.len() });
        }
        let (host, repository) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                validate_host(first)?;
                (Some(first.to_owned()), path)
            }
            _ => (None, name),
        };
        for component in repository.split('/') {
            validate_path_component(component)?;
        }
        Ok(Self {
            host,
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// The last path component of the repository (`team/bash-dog-api` → `bash-dog-api`).
    pub fn repository_name(&self) -> &str {
        self.repository
            .rsplit('/')
            .next()
            .unwrap_or(self.repository.as_str())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(host) = &self.host {
            write!(f, "{host}/")?;
        }
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Display for Image {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ref(r) => r.fmt(f),
            Self::Placeholder(name) => write!(f, "<{name}>"),
        }
    }
}

/// Checks a registry host: `domain-component('.'domain-component)*[:port]` or
/// `[IPv6][:port]`. Used for image hosts and for the `--registry` flag.
pub fn validate_host(host: &str) -> Result<(), ImageRefError> {
    let bad = || ImageRefError::InvalidHost {
        host: host.to_owned(),
    };
    let (name, port) = split_port(host).ok_or_else(bad)?;
    if let Some(port) = port
        && (port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(bad());
    }
    if let Some(inner) = name.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or_else(bad)?;
        return inner.parse::<Ipv6Addr>().map(|_| ()).map_err(|_| bad());
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    if name.split('.').all(component_ok) {
        Ok(())
    } else {
        Err(bad())
    }
}

/// Splits `host[:port]` / `[v6][:port]`; `None` when brackets are unbalanced.
fn split_port(host: &str) -> Option<(&str, Option<&str>)> {
    if host.starts_with('[') {
        let close = host.find(']')?;
        let (name, rest) = host.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((name, Some(port))),
            None if rest.is_empty() => Some((name, None)),
            None => None,
        };
    }
    Some(match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    })
}

fn validate_path_component(component: &str) -> Result<(), ImageRefError> {
    let bad = || ImageRefError::InvalidPathComponent {
        component: component.to_owned(),
    };
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(bad());
    }
    // Every run of non-alphanumerics must be one separator: `.`, `_`, `__` or `-+`.
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(bad());
        }
    }
    Ok(())
}

fn validate_tag(tag: &str) -> Result<(), ImageRefError> {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let ok = matches!(tag.as_bytes().first(), Some(&b) if word(b))
        && tag.len() <= 128
        && tag.bytes().all(|b| word(b) || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ImageRefError::InvalidTag {
            tag: tag.to_owned(),
        })
    }
}

fn validate_digest(digest: &str) -> Result<(), ImageRefError> {
    let hex_len = match digest.split_once(':') {
        Some(("sha256", hex)) => (hex, 64),
        Some(("sha384", hex)) => (hex, 96),
        Some(("sha512", hex)) => (hex, 128),
        _ => ("", 1),
    };
    let (hex, len) = hex_len;
    if hex.len() == len
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        Ok(())
    } else {
        Err(ImageRefError::InvalidDigest {
            digest: digest.to_owned(),
        })
    }
}

/// For a private ECR registry host `<12 digits>.dkr.ecr.<region>.amazonaws.com`
/// (also `.amazonaws.com.cn` and the `dkr.ecr-fips` form; an optional `:port` is
/// ignored), returns `(account, region)`. Any other host gives `None`
/// (`public.ecr.aws` included: it is not a private registry).
pub fn ecr_host_parts(host: &str) -> Option<(String, String)> {
    let (name, _port) = split_port(host)?;
    let name = name.to_ascii_lowercase();
    let rest = name
        .strip_suffix(".amazonaws.com")
        .or_else(|| name.strip_suffix(".amazonaws.com.cn"))?;
    let (account, rest) = rest.split_once('.')?;
    let region = rest
        .strip_prefix("dkr.ecr.")
        .or_else(|| rest.strip_prefix("dkr.ecr-fips."))?;
    let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
    let region_ok = region.contains('-')
        && !region.starts_with('-')
        && !region.ends_with('-')
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (account_ok && region_ok).then(|| (account.to_owned(), region.to_owned()))
}

/// Whether a registry host (with optional port) is a loopback address: any of
/// 127.0.0.0/8, `localhost`, or `[::1]`. Such registries are spoken to over
/// plain HTTP, as the Docker engine does.
pub fn is_loopback_host(host: &str) -> bool {
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return v6.is_loopback();
    }
    let Some((name, port)) = split_port(host) else {
        return false;
    };
    if let Some(port) = port
        && (port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    if let Some(inner) = name.strip_prefix('[') {
        return inner
            .strip_suffix(']')
            .and_then(|v6| v6.parse::<Ipv6Addr>().ok())
            .is_some_and(|v6| v6.is_loopback());
    }
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<Ipv4Addr>().is_ok_and(|v4| v4.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn r(s: &str) -> ImageRef {
        match ImageRef::parse(s) {
            Ok(r) => r,
            Err(e) => panic!("{s}: {e}"),
        }
    }

    #[test]
    fn docker_hub_short_names_have_no_host() {
        let x = r("nginx:1.25");
        assert_eq!(x.host, None);
        assert_eq!(x.repository, "nginx");
        assert_eq!(x.tag.as_deref(), Some("1.25"));
        let y = r("library/nginx");
        assert_eq!(
            (y.host, y.repository.as_str(), y.tag),
            (None, "library/nginx", None)
        );
    }

    #[test]
    fn ecr_reference_splits_into_parts() {
        let x = r("123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest");
        assert_eq!(
            x.host.as_deref(),
            Some("123456789012.dkr.ecr.us-east-2.amazonaws.com")
        );
        assert_eq!(x.repository, "bash-dog-api");
        assert_eq!(x.tag.as_deref(), Some("latest"));
        assert_eq!(x.digest, None);
    }

    #[test]
    fn host_detection_follows_dot_colon_localhost_rule() {
        assert_eq!(r("localhost/foo").host.as_deref(), Some("localhost"));
        assert_eq!(
            r("localhost:5000/foo").host.as_deref(),
            Some("localhost:5000")
        );
        assert_eq!(
            r("registry:5000/foo").host.as_deref(),
            Some("registry:5000")
        );
        assert_eq!(r("ghcr.io/org/app").host.as_deref(), Some("ghcr.io"));
        // No dot, no colon, not localhost: a Docker Hub namespace.
        let hub = r("myorg/app");
        assert_eq!(hub.host, None);
        assert_eq!(hub.repository, "myorg/app");
        assert_eq!(r("[::1]:5000/foo").host.as_deref(), Some("[::1]:5000"));
    }

    #[test]
    fn port_is_not_mistaken_for_tag() {
        let x = r("127.0.0.1:5000/team/app");
        assert_eq!(x.host.as_deref(), Some("127.0.0.1:5000"));
        assert_eq!(x.repository, "team/app");
        assert_eq!(x.tag, None);
        let y = r("127.0.0.1:5000/team/app:v1.2-rc_3");
        assert_eq!(y.tag.as_deref(), Some("v1.2-rc_3"));
    }

    #[test]
    fn digest_with_and_without_tag() {
        let x = r(&format!("ghcr.io/a/b@{D}"));
        assert_eq!(x.digest.as_deref(), Some(D));
        assert_eq!(x.tag, None);
        let y = r(&format!("localhost:5000/a:v1@{D}"));
        assert_eq!(y.tag.as_deref(), Some("v1"));
        assert_eq!(y.digest.as_deref(), Some(D));
        assert_eq!(y.repository, "a");
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
                ImageRefError::NameTooLong { .. } => "long",
                ImageRefError::InvalidHost { .. } => "host",
                ImageRefError::InvalidPathComponent { .. } => "path",
                ImageRefError::InvalidTag { .. } => "tag",
                ImageRefError::InvalidDigest { .. } => "digest",
                ImageRefError::InvalidPlaceholder { .. } => "placeholder",
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
            ("<>", "placeholder"),
            ("<A B>", "placeholder"),
        ];
        for (input, expected) in cases {
            match Image::parse(input) {
                Ok(v) => panic!("{input:?} parsed as {v:?}"),
                Err(e) => assert_eq!(kind(&e), expected, "{input:?}: {e}"),
            }
        }
        let long = "a".repeat(256);
        assert_eq!(
            ImageRef::parse(&long),
            Err(ImageRefError::NameTooLong { len: 256 })
        );
        assert!(ImageRef::parse(&"a".repeat(255)).is_ok());
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        let e = ImageRef::parse("app:").err().map(|e| e.to_string());
        assert!(e.is_some_and(|m| m.contains("tag ``") && m.contains("128")));
    }

    #[test]
    fn placeholders_are_recognised() {
        assert_eq!(
            Image::parse("<IMAGE1_NAME>"),
            Ok(Image::Placeholder("IMAGE1_NAME".into()))
        );
        assert_eq!(
            Image::parse("<IMAGE1_NAME>").map(|i| i.to_string()),
            Ok("<IMAGE1_NAME>".to_owned())
        );
        assert!(matches!(Image::parse("nginx"), Ok(Image::Ref(_))));
        assert!(ImageRef::parse("<IMAGE1_NAME>").is_err());
    }

    #[test]
    fn ecr_hosts_give_account_and_region() {
        assert_eq!(
            ecr_host_parts("123456789012.dkr.ecr.us-east-2.amazonaws.com"),
            Some(("123456789012".into(), "us-east-2".into()))
        );
        assert_eq!(
            ecr_host_parts("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"),
            Some(("123456789012".into(), "cn-north-1".into()))
        );
        assert_eq!(
            ecr_host_parts("123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com"),
            Some(("123456789012".into(), "us-gov-west-1".into()))
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
            "",
        ] {
            assert_eq!(ecr_host_parts(not_ecr), None, "{not_ecr}");
        }
    }

    #[test]
    fn loopback_hosts() {
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
            assert!(is_loopback_host(yes), "{yes}");
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
            assert!(!is_loopback_host(no), "{no}");
        }
    }

    #[test]
    fn never_panics_on_odd_input() {
        for s in [
            "@", ":", "/", "//", "a@", "@sha256:", "[", "]", "[]/a", "é", "a:é", "é/a", "<", ">",
            "<é>", "a/b:c/d", "host:/a", ":5000/a",
        ] {
            let _ = Image::parse(s);
            let _ = ecr_host_parts(s);
            let _ = is_loopback_host(s);
            let _ = validate_host(s);
        }
    }
}

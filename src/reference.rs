//! Image references: the one implementation of the docker/distribution
//! `reference` grammar (`[HOST[:PORT]/]REPOSITORY[:TAG][@DIGEST]`) and of the
//! OCI digest format. It owns the validated newtypes [`Host`],
//! [`Repository`], [`Tag`], [`Digest`], [`Reference`] (a tag or a digest) and
//! [`ImageRef`], and the questions stackbake asks of a host (is it loopback,
//! which URL scheme, is it a private ECR registry). Every type keeps the text
//! it was parsed from: nothing is normalised (`nginx` stays `nginx`, not
//! `docker.io/library/nginx`), so `Display` gives back the input, and serde
//! reads and writes the same string (validating on the way in).
//!
//! Where the accepted set differs from the grammar, on purpose:
//! - The familiar-name rule decides the host: the first `/`-component is a
//!   host when it contains `.` or `:` or is `localhost`, otherwise it is part
//!   of the repository, and the other reading is not tried. So `Foo/app`
//!   (an upper-case Docker Hub namespace) and `a_b.c/app` (a `.` that makes
//!   it a host, which `_` then spoils) are rejected, though the bare regex
//!   would match them.
//! - Host names follow the grammar's domain components: ASCII letters,
//!   digits and inner `-`; no `_` (Docker refuses such registries too).
//! - A port is 1 to 65535 (the grammar allows any digits; no URL can use
//!   the others), and a bracketed IPv6 address must be a real address (the
//!   grammar only checks the characters).
//! - [`Host`] alone (the `--registry` flag) also takes a bare IPv6 address
//!   without port (`::1`); an [`ImageRef`] needs the brackets.
//! - A digest must use an algorithm that go-digest registers (sha256,
//!   sha384, sha512) with exactly its number of lowercase hex digits, as
//!   `reference.Parse` checks after the regex (`digestPat` alone is looser).
//! - The repository is at most [`REPOSITORY_MAX_LEN`] characters, counted
//!   without the host, as distribution/reference does.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use sha2::Digest as _;

/// Longest repository (remote name, without host) the grammar allows.
pub(crate) const REPOSITORY_MAX_LEN: usize = 255;

/// Longest tag the grammar allows.
pub(crate) const TAG_MAX_LEN: usize = 128;

/// What a tag may be, for error messages.
const TAG_RULE: &str =
    "a tag is 1 to 128 ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`";

/// What a repository component may be, for error messages.
const COMPONENT_RULE: &str = "a component is lowercase letters and digits, joined by one `.`, one `_`, two `__` or any number of `-`";

/// What a host may be, for error messages.
const HOST_RULE: &str = "a registry host is HOST[:PORT]: dot-separated names of ASCII letters, digits and inner `-` (no `_`), or an IPv6 address in brackets, and a port from 1 to 65535";

/// `as_str`, `Display`, `AsRef<str>`, `Deref<Target = str>`, `FromStr` and
/// serde as a validated string, for a type with `parse` and a text field.
macro_rules! text_type {
    ($ty:ident, $err:ty, |$v:ident| $text:expr) => {
        impl $ty {
            /// The text as parsed.
            pub(crate) fn as_str(&self) -> &str {
                let $v = self;
                $text
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl std::ops::Deref for $ty {
            type Target = str;
            fn deref(&self) -> &str {
                self.as_str()
            }
        }

        impl FromStr for $ty {
            type Err = $err;
            fn from_str(text: &str) -> Result<Self, $err> {
                Self::parse(text)
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

// ---------------------------------------------------------------- host

/// A registry host: `HOST[:PORT]`, with an IPv6 address in brackets
/// (`[::1]:5000`), or a bare IPv6 address without port (`::1`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct Host(String);

/// Why a string is not a registry host. The messages leave the text out:
/// whoever shows one names the flag or reference it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostError {
    /// Nothing was given.
    #[error("it is empty; {HOST_RULE}")]
    Empty,
    /// A URL was given instead of a host.
    #[error("it has a scheme; {HOST_RULE}, without scheme or path")]
    Scheme,
    /// A host with a path was given.
    #[error("it has a path; {HOST_RULE}, without scheme or path")]
    Path,
    /// The name part is not a domain name.
    #[error("it is not a valid host name; {HOST_RULE}")]
    Name,
    /// The part in brackets is not an IPv6 address.
    #[error("the part in brackets is not an IPv6 address; {HOST_RULE}")]
    Ipv6,
    /// The port is not a number from 1 to 65535.
    #[error("the port is not a number from 1 to 65535")]
    Port,
}

/// The account and region of a private ECR registry host.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct EcrHost {
    /// The 12-digit AWS account id.
    pub account: String,
    /// The AWS region (`us-east-2`).
    pub region: String,
}

impl Host {
    /// Parses `HOST[:PORT]`, `[IPv6][:PORT]` or a bare IPv6 address.
    pub(crate) fn parse(text: &str) -> Result<Self, HostError> {
        Self::parse_as(text, true)
    }

    /// Parses a host; `bare_ipv6` allows an IPv6 address without brackets.
    fn parse_as(text: &str, bare_ipv6: bool) -> Result<Self, HostError> {
        if text.is_empty() {
            return Err(HostError::Empty);
        }
        if text.contains("://") {
            return Err(HostError::Scheme);
        }
        if text.contains('/') {
            return Err(HostError::Path);
        }
        if bare_ipv6 && is_ipv6_text(text) {
            return Ok(Self(text.to_owned()));
        }
        let (name, port) = split_port(text).ok_or(HostError::Ipv6)?;
        if let Some(inner) = name.strip_prefix('[') {
            let inner = inner.strip_suffix(']').unwrap_or(inner);
            if !is_ipv6_text(inner) {
                return Err(HostError::Ipv6);
            }
        } else if !name.split('.').all(is_domain_component) {
            return Err(HostError::Name);
        }
        match port {
            Some(port) if parse_port(port).is_none() => Err(HostError::Port),
            _ => Ok(Self(text.to_owned())),
        }
    }

    /// The host without its port: a name, an IPv4 address, `[IPv6]`, or the
    /// bare IPv6 address as given.
    pub(crate) fn name(&self) -> &str {
        if is_ipv6_text(&self.0) {
            return &self.0;
        }
        split_port(&self.0).map_or(self.0.as_str(), |(name, _)| name)
    }

    /// The port, if one is given.
    #[cfg(test)]
    pub(crate) fn port(&self) -> Option<u16> {
        if is_ipv6_text(&self.0) {
            return None;
        }
        split_port(&self.0)
            .and_then(|(_, port)| port)
            .and_then(parse_port)
    }

    /// Whether this is a loopback host: `localhost`, 127.0.0.0/8 or `::1`.
    pub(crate) fn is_loopback(&self) -> bool {
        let name = self.name();
        let unbracketed = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        name.eq_ignore_ascii_case("localhost")
            || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
            || unbracketed
                .parse::<Ipv6Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The URL scheme to speak to this registry with: plain `http` on
    /// loopback (as the Docker engine does), `https` everywhere else.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.is_loopback() { "http" } else { "https" }
    }

    /// The URL authority: the host as given, with brackets added around a
    /// bare IPv6 address.
    pub(crate) fn authority(&self) -> Cow<'_, str> {
        if is_ipv6_text(&self.0) {
            Cow::Owned(format!("[{}]", self.0))
        } else {
            Cow::Borrowed(&self.0)
        }
    }

    /// For a private ECR registry, its account and region. Recognised
    /// (case-insensitive, any port ignored):
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com`, the same under
    /// `.amazonaws.com.cn`, the FIPS form `ACCOUNT.dkr.ecr-fips.REGION…`, and
    /// the dual-stack form `ACCOUNT.dkr-ecr.REGION.on.aws`. `public.ecr.aws`
    /// and every other host give `None`.
    pub(crate) fn ecr(&self) -> Option<EcrHost> {
        let name = self.name().to_ascii_lowercase();
        let (account, region) = if let Some(rest) = name
            .strip_suffix(".amazonaws.com")
            .or_else(|| name.strip_suffix(".amazonaws.com.cn"))
        {
            let (account, rest) = rest.split_once('.')?;
            let region = rest
                .strip_prefix("dkr.ecr.")
                .or_else(|| rest.strip_prefix("dkr.ecr-fips."))?;
            (account, region)
        } else {
            let rest = name.strip_suffix(".on.aws")?;
            let (account, rest) = rest.split_once('.')?;
            (account, rest.strip_prefix("dkr-ecr.")?)
        };
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let region_ok = region.contains('-')
            && !region.starts_with('-')
            && !region.ends_with('-')
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (account_ok && region_ok).then(|| EcrHost {
            account: account.to_owned(),
            region: region.to_owned(),
        })
    }
}

text_type!(Host, HostError, |h| &h.0);

/// Whether `text` is an IPv6 address written with hex digits and `:` only
/// (no zone, no dotted IPv4 tail: the grammar's character set).
fn is_ipv6_text(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') && text.parse::<Ipv6Addr>().is_ok()
}

/// Splits `name[:port]` / `[v6][:port]`; `None` when brackets are unbalanced
/// or something other than `:port` follows the `]`.
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

/// A port of ASCII digits with a value from 1 to 65535.
fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|&p| p != 0)
}

/// The grammar's `domainNameComponent`: letters and digits, inner `-`.
fn is_domain_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !c.starts_with('-')
        && !c.ends_with('-')
}

// ---------------------------------------------------------- repository

/// A repository (the grammar's remote name): `/`-separated path components
/// without host, tag or digest (`team/bash-dog-api`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct Repository(String);

/// Why a string is not a repository name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RepositoryError {
    /// Nothing was given.
    #[error("the repository name is empty; expected path components such as `team/app`")]
    Empty,
    /// Longer than [`REPOSITORY_MAX_LEN`].
    #[error("the repository name is {len} characters long; the limit is {REPOSITORY_MAX_LEN}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A `/`-separated component is malformed.
    #[error(
        "repository path component `{component}` is invalid (in `{repository}`); {COMPONENT_RULE}"
    )]
    Component {
        /// The whole name.
        repository: String,
        /// The offending component (may be empty).
        component: String,
    },
}

impl Repository {
    /// Parses a remote name: components of `[a-z0-9]+` joined by `.`, `_`,
    /// `__` or `-+`, separated by `/`, at most [`REPOSITORY_MAX_LEN`] long.
    pub(crate) fn parse(text: &str) -> Result<Self, RepositoryError> {
        if text.is_empty() {
            return Err(RepositoryError::Empty);
        }
        if text.len() > REPOSITORY_MAX_LEN {
            return Err(RepositoryError::TooLong { len: text.len() });
        }
        match text.split('/').find(|c| !is_path_component(c)) {
            Some(bad) => Err(RepositoryError::Component {
                repository: text.to_owned(),
                component: bad.to_owned(),
            }),
            None => Ok(Self(text.to_owned())),
        }
    }

    /// The last path component (`team/bash-dog-api` → `bash-dog-api`).
    pub(crate) fn last_component(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }
}

text_type!(Repository, RepositoryError, |r| &r.0);

/// The grammar's `pathComponent`: `[a-z0-9]+` runs joined by one separator
/// each, a separator being `.`, `_`, `__` or any number of `-`.
fn is_path_component(component: &str) -> bool {
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = component.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(&first), Some(&last)) if alnum(first) && alnum(last) => {}
        _ => return false,
    }
    component
        .split(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        .filter(|sep| !sep.is_empty())
        .all(|sep| matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-'))
}

// ----------------------------------------------------------------- tag

/// An image tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct Tag(String);

/// Why a string is not a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TagError {
    /// Nothing was given.
    #[error("tag `` is empty; {TAG_RULE}")]
    Empty,
    /// Longer than [`TAG_MAX_LEN`].
    #[error("the tag is {len} characters long; {TAG_RULE}")]
    TooLong {
        /// Its length.
        len: usize,
    },
    /// A character that a tag cannot have, or a leading `.` or `-`.
    #[error("tag `{tag}` is invalid; {TAG_RULE}")]
    Invalid {
        /// The text given.
        tag: String,
    },
}

impl Tag {
    /// Parses a tag.
    pub(crate) fn parse(text: &str) -> Result<Self, TagError> {
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        match text.as_bytes().first() {
            None => Err(TagError::Empty),
            Some(_) if text.len() > TAG_MAX_LEN => Err(TagError::TooLong { len: text.len() }),
            Some(&first)
                if word(first) && text.bytes().all(|b| word(b) || b == b'.' || b == b'-') =>
            {
                Ok(Self(text.to_owned()))
            }
            Some(_) => Err(TagError::Invalid {
                tag: text.to_owned(),
            }),
        }
    }
}

text_type!(Tag, TagError, |t| &t.0);

// -------------------------------------------------------------- digest

/// A digest algorithm that go-digest registers (all hex-encoded, lowercase).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) enum DigestAlgorithm {
    /// `sha256`, 64 hex digits.
    Sha256,
    /// `sha384`, 96 hex digits.
    Sha384,
    /// `sha512`, 128 hex digits.
    Sha512,
}

impl DigestAlgorithm {
    /// Every supported algorithm.
    pub(crate) const ALL: [Self; 3] = [Self::Sha256, Self::Sha384, Self::Sha512];

    /// The name before the `:`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Sha256 => "sha256",
            Self::Sha384 => "sha384",
            Self::Sha512 => "sha512",
        }
    }

    /// How many hex digits its digests have.
    pub(crate) fn hex_len(self) -> usize {
        match self {
            Self::Sha256 => 64,
            Self::Sha384 => 96,
            Self::Sha512 => 128,
        }
    }

    /// The digest of `bytes` in this algorithm.
    pub(crate) fn digest(self, bytes: &[u8]) -> Digest {
        let hex = match self {
            Self::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Self::Sha384 => hex::encode(sha2::Sha384::digest(bytes)),
            Self::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        Digest(format!("{}:{hex}", self.as_str()))
    }
}

impl fmt::Display for DigestAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A content digest, `ALGORITHM:HEX` (`sha256:<64 lowercase hex>`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct Digest(String);

/// Why a string is not a supported digest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DigestError {
    /// No `:` between algorithm and hex.
    #[error("digest `{digest}` has no algorithm; expected sha256:<64 lowercase hex digits>")]
    NoAlgorithm {
        /// The text given.
        digest: String,
    },
    /// An algorithm other than sha256, sha384 and sha512.
    #[error(
        "digest `{digest}`: algorithm `{algorithm}` is not supported; use sha256, sha384 or sha512"
    )]
    Algorithm {
        /// The text given.
        digest: String,
        /// The part before the `:`.
        algorithm: String,
    },
    /// The hex part has the wrong length or characters.
    #[error(
        "digest `{digest}` is invalid: a {algorithm} digest has exactly {len} lowercase hex digits (0-9, a-f)"
    )]
    Hex {
        /// The text given.
        digest: String,
        /// Its algorithm.
        algorithm: DigestAlgorithm,
        /// The number of hex digits it needs.
        len: usize,
    },
}

/// Content whose digest is not the expected one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the content hashes to {actual}, not {expected}")]
pub(crate) struct DigestMismatch {
    /// The digest checked against.
    pub expected: Digest,
    /// The digest of the content, in the same algorithm.
    pub actual: Digest,
}

impl Digest {
    /// Parses `ALGORITHM:HEX` for a supported algorithm.
    pub(crate) fn parse(text: &str) -> Result<Self, DigestError> {
        let Some((algorithm, hex)) = text.split_once(':') else {
            return Err(DigestError::NoAlgorithm {
                digest: text.to_owned(),
            });
        };
        let Some(alg) = DigestAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == algorithm)
        else {
            return Err(DigestError::Algorithm {
                digest: text.to_owned(),
                algorithm: algorithm.to_owned(),
            });
        };
        let lower_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if hex.len() == alg.hex_len() && hex.bytes().all(lower_hex) {
            Ok(Self(text.to_owned()))
        } else {
            Err(DigestError::Hex {
                digest: text.to_owned(),
                algorithm: alg,
                len: alg.hex_len(),
            })
        }
    }

    /// The sha256 digest of `bytes`.
    pub(crate) fn sha256_of(bytes: &[u8]) -> Self {
        DigestAlgorithm::Sha256.digest(bytes)
    }

    /// Its algorithm.
    pub(crate) fn algorithm(&self) -> DigestAlgorithm {
        let name = self.0.split_once(':').map_or("", |(a, _)| a);
        DigestAlgorithm::ALL
            .into_iter()
            .find(|a| a.as_str() == name)
            .unwrap_or(DigestAlgorithm::Sha256)
    }

    /// The hex part, after the `:`.
    #[cfg(test)]
    pub(crate) fn hex(&self) -> &str {
        self.0.split_once(':').map_or("", |(_, hex)| hex)
    }

    /// Checks that `bytes` hash to this digest.
    pub(crate) fn verify(&self, bytes: &[u8]) -> Result<(), DigestMismatch> {
        let actual = self.algorithm().digest(bytes);
        if actual == *self {
            Ok(())
        } else {
            Err(DigestMismatch {
                expected: self.clone(),
                actual,
            })
        }
    }
}

text_type!(Digest, DigestError, |d| &d.0);

// ----------------------------------------------------------- reference

/// What a manifest is addressed by: a tag or a digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) enum Reference {
    /// A tag (`latest`).
    Tag(Tag),
    /// A digest (`sha256:…`).
    Digest(Digest),
}

/// Why a string is neither a tag nor a digest. A string with a `:` is read
/// as a digest (a tag has no `:`), any other as a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReferenceError {
    /// Not a tag.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// Not a digest.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

impl Reference {
    /// Parses a tag, or a digest when the text has a `:`.
    pub(crate) fn parse(text: &str) -> Result<Self, ReferenceError> {
        if text.contains(':') {
            Ok(Self::Digest(Digest::parse(text)?))
        } else {
            Ok(Self::Tag(Tag::parse(text)?))
        }
    }
}

text_type!(Reference, ReferenceError, |r| match r {
    Reference::Tag(t) => t.as_str(),
    Reference::Digest(d) => d.as_str(),
});

// ----------------------------------------------------------- image ref

/// An image reference, `[HOST[:PORT]/]REPOSITORY[:TAG][@DIGEST]`, e.g.
/// `123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct ImageRef {
    text: String,
    host: Option<Host>,
    repository: Repository,
    tag: Option<Tag>,
    digest: Option<Digest>,
}

/// Why a string is not an image reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ImageRefError {
    /// Nothing was given.
    #[error(
        "the image reference is empty; expected [HOST[:PORT]/]REPOSITORY[:TAG][@DIGEST], e.g. ghcr.io/team/app:1.0"
    )]
    Empty,
    /// The registry host is malformed.
    #[error("registry host `{host}`: {source}")]
    Host {
        /// The host part of the reference.
        host: String,
        /// What is wrong with it.
        source: HostError,
    },
    /// The repository is malformed.
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// The tag is malformed.
    #[error(transparent)]
    Tag(#[from] TagError),
    /// The digest is malformed or uses an unsupported algorithm.
    #[error(transparent)]
    Digest(#[from] DigestError),
}

impl ImageRef {
    /// Parses a reference. The first `/`-component is the host when it
    /// contains `.` or `:` or is `localhost` (Docker's rule), else the name
    /// has no host (a Docker Hub name, kept as written).
    pub(crate) fn parse(text: &str) -> Result<Self, ImageRefError> {
        if text.is_empty() {
            return Err(ImageRefError::Empty);
        }
        let (rest, digest) = match text.split_once('@') {
            Some((rest, digest)) => (rest, Some(Digest::parse(digest)?)),
            None => (text, None),
        };
        // A tag's `:` comes after the last `/`; an earlier `:` is a port's.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let colon = last_slash + i;
                (&rest[..colon], Some(Tag::parse(&rest[colon + 1..])?))
            }
            None => (rest, None),
        };
        let (host, path) = match name.split_once('/') {
            Some((first, path)) if first.contains(['.', ':']) || first == "localhost" => {
                let host = Host::parse_as(first, false).map_err(|source| ImageRefError::Host {
                    host: first.to_owned(),
                    source,
                })?;
                (Some(host), path)
            }
            _ => (None, name),
        };
        Ok(Self {
            text: text.to_owned(),
            host,
            repository: Repository::parse(path)?,
            tag,
            digest,
        })
    }

    /// The registry host, if the reference names one.
    pub(crate) fn host(&self) -> Option<&Host> {
        self.host.as_ref()
    }

    /// The repository, without host, tag or digest.
    pub(crate) fn repository(&self) -> &Repository {
        &self.repository
    }

    /// The tag, if any.
    pub(crate) fn tag(&self) -> Option<&Tag> {
        self.tag.as_ref()
    }

    /// The digest, if any.
    pub(crate) fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The account and region when the host is a private ECR registry.
    pub(crate) fn ecr(&self) -> Option<EcrHost> {
        self.host.as_ref().and_then(Host::ecr)
    }
}

text_type!(ImageRef, ImageRefError, |r| &r.text);

#[cfg(test)]
mod tests;

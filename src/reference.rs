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

use std::fmt;
use std::str::FromStr;

/// Longest repository (remote name, without host) the grammar allows.
pub(crate) const REPOSITORY_MAX_LEN: usize = 255;

/// Longest tag the grammar allows.
pub(crate) const TAG_MAX_LEN: usize = 128;

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

mod digest;
mod host;
mod name;

pub(crate) use digest::{Digest, DigestAlgorithm, DigestError};
pub(crate) use host::{EcrHost, Host, HostError};
pub(crate) use name::{Repository, RepositoryError, Tag, TagError};

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
mod grammar_tests;
#[cfg(test)]
mod tests;

//! Repository names and tags: [`Repository`] and [`Tag`] with their errors.

use std::fmt;
use std::str::FromStr;

use super::{REPOSITORY_MAX_LEN, TAG_MAX_LEN};

const TAG_RULE: &str =
    "a tag is 1 to 128 ASCII letters, digits, `_`, `.` and `-`, not starting with `.` or `-`";

const COMPONENT_RULE: &str = "a component is lowercase letters and digits, joined by one `.`, one `_`, two `__` or any number of `-`";

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
pub(crate) struct Tag(pub(super) String);

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

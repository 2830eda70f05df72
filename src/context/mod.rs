//! The build context: what the Docker engine receives and what COPY/ADD can read.
//!
//! This module owns `.dockerignore` parsing and matching with Docker's exact semantics
//! ([`dockerignore`]), the listing of the context directory after `.dockerignore`
//! ([`walk`]), streaming that listing as an uncompressed tar body for the engine
//! ([`tarball`]), and hashing the files that COPY/ADD sources select, for fingerprints
//! ([`hash`]). Everything here except the tar stream is synchronous and free of tokio.

pub(crate) mod dockerignore;
pub(crate) mod hash;
pub(crate) mod tarball;
pub(crate) mod walk;

use std::path::PathBuf;

pub(crate) use dockerignore::DockerIgnore;

/// Everything that can go wrong while reading a build context.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContextError {
    /// `.dockerignore` exists but could not be read.
    #[error("cannot read {}: {source}; check that the file is readable", path.display())]
    DockerignoreRead {
        /// Path of the `.dockerignore` file.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A `.dockerignore` line is not a valid pattern (Docker rejects it too).
    #[error(
        ".dockerignore line {line}: invalid pattern `{pattern}`: {reason}; fix or remove the line"
    )]
    DockerignorePattern {
        /// 1-based line number (0 for patterns added by stackbake itself).
        line: usize,
        /// The pattern as written.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The context root is missing or not a directory.
    #[error("build context {} is not a directory; pass the project root with --dir", path.display())]
    NotADirectory {
        /// The context root that was given.
        path: PathBuf,
    },
    /// A filesystem operation on a context path failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done (`read directory`, `stat`, `open`, `read`, `read link`).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A file name (or symlink target) in the context is not valid UTF-8.
    #[error(
        "path {} in the build context is not valid UTF-8; rename it or exclude it in .dockerignore",
        path.display()
    )]
    NonUtf8Path {
        /// The offending path (lossily displayed).
        path: PathBuf,
    },
    /// A COPY/ADD source (without wildcards) matches nothing in the context.
    #[error(
        "COPY/ADD source `{path}` was not found in the build context (or is excluded by .dockerignore); \
         check the path in the Dockerfile and .dockerignore"
    )]
    SourceNotFound {
        /// The source as written in the Dockerfile.
        path: String,
    },
    /// Every source of a COPY/ADD is a wildcard and none matched (Docker: "no source files were specified").
    #[error(
        "COPY/ADD sources {sources} match no file in the build context (Docker fails with \"no source files \
         were specified\"); check the patterns and .dockerignore"
    )]
    NoSourceFiles {
        /// The sources, comma separated, as written.
        sources: String,
    },
    /// A COPY/ADD source points outside the build context.
    #[error(
        "COPY/ADD source `{path}` is outside the build context; sources must stay inside --dir"
    )]
    SourceOutsideContext {
        /// The source as written.
        path: String,
    },
}

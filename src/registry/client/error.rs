//! What can go wrong talking to a registry: one error enum whose messages
//! name the registry, repository and reference and say what to do, never
//! holding a credential.

use crate::reference::{HostError, RepositoryError};

/// Errors of the registry client. Messages name the registry, repository and
/// reference involved and say what to do; they never contain credentials.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RegistryError {
    /// The `--registry` value is not `HOST[:PORT]`.
    #[error(
        "invalid registry host {host:?}: {source} (e.g. 123456789012.dkr.ecr.us-east-2.amazonaws.com or 127.0.0.1:5000)"
    )]
    InvalidHost {
        /// The value given.
        host: String,
        /// What is wrong with it.
        source: HostError,
    },
    /// A repository name that the distribution spec does not allow.
    #[error("invalid repository name {repo:?} for registry {host}: {source} (e.g. bash-dog-api)")]
    InvalidRepository {
        /// Registry host.
        host: String,
        /// The name given.
        repo: String,
        /// What is wrong with it.
        source: RepositoryError,
    },
    /// A tag or digest that the distribution spec does not allow.
    #[error(
        "invalid reference {reference:?} for {host}/{repo}: expected a tag \
         ([A-Za-z0-9_][A-Za-z0-9._-], at most 128 characters) or a digest \
         (sha256:<64 hex>, sha384:<96 hex> or sha512:<128 hex>)"
    )]
    InvalidReference {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// The reference given.
        reference: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("could not set up the HTTP client for registry {host}: {detail}")]
    ClientSetup {
        /// Registry host.
        host: String,
        /// Cause.
        detail: String,
    },
    /// Connection errors or timeouts on every attempt.
    #[error(
        "registry {host} is unreachable after {attempts} attempt(s): {detail}; check the host name and \
         port, the network, and that the registry is running"
    )]
    Unreachable {
        /// Registry host (or token service).
        host: String,
        /// Attempts made.
        attempts: u32,
        /// Transport error chain.
        detail: String,
    },
    /// HTTP 401 after authenticating (or with no credentials to offer).
    #[error("{}", unauthorized_message(host, *anonymous))]
    Unauthorized {
        /// Registry host.
        host: String,
        /// True when no credentials were configured.
        anonymous: bool,
    },
    /// HTTP 403: authenticated, but not allowed.
    #[error(
        "the registry {host} denied {action} on repository {repo}: the credentials lack permission; \
         grant it (for ECR the role needs ecr:BatchGetImage, ecr:GetDownloadUrlForLayer, ecr:PutImage \
         and the layer upload actions on the repository) or use other credentials"
    )]
    Denied {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// `pull` or `push`.
        action: &'static str,
    },
    /// 5xx or 429 on every attempt.
    #[error(
        "registry {host} kept answering HTTP {status} to {method} {path} after {attempts} attempt(s){detail}; \
         the registry is overloaded or failing, try again later"
    )]
    Unavailable {
        /// Registry host.
        host: String,
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// Last status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// The registry's error message, prefixed with ": ", or empty.
        detail: String,
    },
    /// The registry refused to move an existing tag: the repository's tags
    /// are immutable (ECR's `TAG_INVALID`).
    #[error(
        "registry {host} refused to overwrite the existing tag {repo}:{tag}: the repository's tags are immutable"
    )]
    TagImmutable {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// The tag.
        tag: String,
    },
    /// The registry refused one more tag on an image (ECR: 1,000 tags per image).
    #[error(
        "registry {host} refused the tag {repo}:{tag}: the image has as many tags as the registry allows{detail}"
    )]
    TagLimit {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// The tag.
        tag: String,
        /// The registry's error message, prefixed with ": ", or empty.
        detail: String,
    },
    /// Any other unexpected status.
    #[error("registry {host} answered HTTP {status} to {method} {path}{detail}")]
    Status {
        /// Registry host.
        host: String,
        /// HTTP method.
        method: String,
        /// Request path.
        path: String,
        /// Status.
        status: u16,
        /// The registry's error message, prefixed with ": ", or empty.
        detail: String,
    },
    /// Content whose sha256 does not match the digest it was served under.
    #[error(
        "{what} {repo}@{reference} from registry {host} hashes to {actual} but {expected} was expected; \
         the registry or a proxy altered it, so it is not used"
    )]
    DigestMismatch {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// Tag or digest requested.
        reference: String,
        /// Manifest or blob.
        what: ContentKind,
        /// Digest announced or requested.
        expected: String,
        /// Digest of the bytes received.
        actual: String,
    },
    /// `copy_tag` from a reference that does not exist.
    #[error(
        "no manifest {repo}:{reference} in registry {host}, so there is nothing to copy; push the image first"
    )]
    ManifestMissing {
        /// Registry host.
        host: String,
        /// Repository.
        repo: String,
        /// Source reference.
        reference: String,
    },
    /// A response that could not be understood.
    #[error("registry {host} sent an unusable response for {what}: {detail}")]
    InvalidResponse {
        /// Registry host.
        host: String,
        /// What was requested.
        what: String,
        /// What is wrong.
        detail: String,
    },
    /// The bearer-token service refused or failed.
    #[error(
        "could not get a bearer token for registry {host} from {realm}: {detail}; check the credentials \
         and that the token service is reachable"
    )]
    Token {
        /// Registry host.
        host: String,
        /// Token realm URL (no credentials in it).
        realm: String,
        /// What went wrong.
        detail: String,
    },
}

/// What kind of content failed a digest check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ContentKind {
    /// An image manifest or index.
    Manifest,
    /// A blob (image config or layer).
    Blob,
}

impl std::fmt::Display for ContentKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ContentKind::Manifest => "manifest",
            ContentKind::Blob => "blob",
        })
    }
}

fn unauthorized_message(host: &str, anonymous: bool) -> String {
    if anonymous {
        format!(
            "the registry {host} requires credentials and none were given: for ECR check the AWS \
             credentials and region; for another registry pass --registry-user and set \
             STACKBAKE_REGISTRY_PASSWORD"
        )
    } else {
        format!(
            "the registry {host} refused the credentials (HTTP 401): check the user name and password \
             (for ECR: that the AWS account and region match the registry host and the token is fresh; \
             for another registry: --registry-user and STACKBAKE_REGISTRY_PASSWORD)"
        )
    }
}

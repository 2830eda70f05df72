//! What can go wrong with the engine, its builders and its image store:
//! one error type for both builders and every engine call, typed by what
//! a person would do about it (start the daemon, fix the instruction, check
//! the registry).

/// What can go wrong talking to the engine.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EngineError {
    /// The daemon does not answer.
    #[error(
        "cannot reach the Docker daemon ({detail}). Start it (`dockerd`, `systemctl start docker`), \
         check DOCKER_HOST, and in CodeBuild enable \"privileged\" mode on the project's environment \
         (it is needed to run Docker inside the build container)"
    )]
    Unreachable {
        /// What bollard said.
        detail: String,
    },
    /// A build stream reported an error.
    #[error("{message}")]
    Build {
        /// The engine's message.
        message: String,
    },
    /// A BuildKit build step failed.
    #[error("step `{step}` failed: {message}")]
    BuildStep {
        /// The step as BuildKit names it (`[api 3/4] RUN make`).
        step: String,
        /// BuildKit's message.
        message: String,
        /// The step's last log lines.
        log: Vec<String>,
    },
    /// `--builder buildkit` on an engine whose BuildKit cannot be reached.
    #[error(
        "BuildKit is not available on this engine ({detail}); use `--builder classic` (or `auto`), \
         or point DOCKER_HOST at a local unix socket of Docker 18.09 or newer"
    )]
    NoBuildKit {
        /// Why.
        detail: String,
    },
    /// A base image of the build could not be pulled (unreachable registry,
    /// rate limit, refused pull, unknown image).
    #[error("cannot pull the base image {image} from {registry}: {message}")]
    BasePull {
        /// The image, as the build names it.
        image: String,
        /// Its registry (Docker Hub for a host-less name).
        registry: String,
        /// The engine's message.
        message: String,
    },
    /// A build or push stream stayed silent longer than `--timeout`.
    #[error(
        "{action} made no progress for {seconds} s (--timeout); the engine or the registry looks hung"
    )]
    Stalled {
        /// What we were doing.
        action: String,
        /// The idle limit.
        seconds: u64,
    },
    /// The build finished without reporting an image id.
    #[error("the engine finished the build without reporting an image id")]
    NoImageId,
    /// A push stream reported an error.
    #[error("push of {image} failed: {message}")]
    Push {
        /// The image reference.
        image: String,
        /// The engine's message.
        message: String,
    },
    /// The push finished without reporting a digest.
    #[error("push of {image} finished without reporting a digest")]
    NoDigest {
        /// The image reference.
        image: String,
    },
    /// Any other engine call failed.
    #[error("{action} failed: {message}")]
    Call {
        /// What we asked for.
        action: String,
        /// What the engine said.
        message: String,
    },
}

impl EngineError {
    /// The registry of the image a push was about, if it names one.
    pub(crate) fn registry_host(&self) -> Option<&str> {
        match self {
            EngineError::Push { image, .. } | EngineError::NoDigest { image } => image
                .split_once('/')
                .map(|(first, _)| first)
                .filter(|h| h.contains(['.', ':']) || *h == "localhost"),
            _ => None,
        }
    }
}

/// Whether a failed push is worth another attempt: the network or the
/// registry hiccuped, as opposed to a refusal (auth, missing repository).
pub(crate) fn is_transient(e: &EngineError) -> bool {
    let m = match e {
        EngineError::Push { message, .. } | EngineError::Call { message, .. } => {
            message.to_ascii_lowercase()
        }
        EngineError::Stalled { .. } => return true,
        _ => return false,
    };
    if is_refusal(&m) || m.contains("name unknown") || m.contains("not found") {
        return false;
    }
    let transient = [
        "connection reset",
        "connection refused",
        "broken pipe",
        "eof",
        "timeout",
        "timed out",
        "502",
        "503",
        "504",
        "500 internal",
        "toomanyrequests",
        "too many requests",
        "service unavailable",
        "bad gateway",
        "i/o",
    ];
    transient.iter().any(|t| m.contains(t))
}

/// Whether a failed push was answered "authentication required" (401: the
/// request came without valid credentials), as opposed to "denied" (403).
pub(crate) fn is_push_unauthenticated(e: &EngineError) -> bool {
    match e {
        EngineError::Push { message, .. } => message
            .to_ascii_lowercase()
            .contains("authentication required"),
        _ => false,
    }
}

/// Whether a push was refused because its tag exists in a repository whose
/// tags are immutable (ECR: `tag invalid: The image tag '…' already exists in
/// the '…' repository and cannot be overwritten because the repository is
/// immutable.`).
pub(crate) fn is_tag_immutable(e: &EngineError) -> bool {
    let EngineError::Push { message, .. } = e else {
        return false;
    };
    let m = message.to_ascii_lowercase();
    m.contains("already exists") && (m.contains("immutable") || m.contains("tag invalid"))
}

/// Whether a pull failed because the image is not there. A refusal is not
/// that, although Docker words it "pull access denied for X, repository does
/// not exist or may require 'docker login'".
pub(crate) fn is_not_found(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    !is_refusal(&m)
        && (m.contains("not found")
            || m.contains("manifest unknown")
            || m.contains("does not exist"))
}

/// Whether a lowercased engine message says the registry refused us (auth).
fn is_refusal(m: &str) -> bool {
    ["unauthorized", "denied", "authentication required"]
        .iter()
        .any(|r| m.contains(r))
}

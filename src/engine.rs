//! The Docker engine driver: everything stackbake asks of the local daemon
//! (pull, build, tag, push, inspect) through bollard, and nothing else.
//!
//! A bollard stream has succeeded only when it was drained with no `Err`:
//! an `errorDetail` arrives as `Err(DockerStreamError)` after HTTP 200
//! (FIELD-NOTES). Every function here drains its stream to the end.

use std::collections::HashMap;
use std::time::Duration;

use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::query_parameters::{
    BuildImageOptionsBuilder, CreateImageOptionsBuilder, PushImageOptionsBuilder,
    TagImageOptionsBuilder,
};
use futures_util::{Stream, StreamExt};

use crate::reference::{Digest, DigestAlgorithm};

/// What can go wrong talking to the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
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

/// How long a silent build waits for the engine to answer a ping.
const PING_TIMEOUT: Duration = Duration::from_secs(30);

/// Result of a successful push.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// `sha256:<hex>` of the pushed manifest.
    pub digest: String,
    /// Bytes of layers actually uploaded (layers the registry already had count 0).
    pub bytes_pushed: u64,
}

/// One build the engine should run.
pub struct BuildRequest {
    /// Name of the Dockerfile entry inside the context tar.
    pub dockerfile: String,
    /// Build args passed to the engine.
    pub build_args: HashMap<String, String>,
    /// Images the engine may take layers from.
    pub cache_from: Vec<String>,
    /// Credentials for private registries referenced by `FROM`, keyed by host.
    pub registry_auth: Option<HashMap<String, DockerCredentials>>,
}

/// A connected engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    docker: Docker,
    /// How long a pull or push stream may stay silent before we give up; a
    /// silent build is checked with a ping this often.
    idle: Duration,
}

impl Engine {
    /// Connects (honouring DOCKER_HOST), negotiates the API version and pings.
    pub async fn connect(timeout: Duration, idle: Duration) -> Result<Engine, EngineError> {
        let unreachable = |e: bollard::errors::Error| EngineError::Unreachable {
            detail: e.to_string(),
        };
        let docker = Docker::connect_with_defaults()
            .map_err(unreachable)?
            .with_timeout(timeout);
        // bollard defaults to an API version newer than Docker 20.10 speaks.
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker.ping().await.map_err(unreachable)?;
        Ok(Engine { docker, idle })
    }

    /// Pulls `image`; `Ok(false)` when the registry does not have it (normal on a first build).
    pub async fn pull(
        &self,
        image: &str,
        creds: Option<DockerCredentials>,
    ) -> Result<bool, EngineError> {
        let opts = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut stream = self.docker.create_image(Some(opts), None, creds);
        let action = format!("the pull of {image}");
        while let Some(item) = self.next_or_stall(&mut stream, &action).await? {
            if let Err(e) = item {
                let message = error_message(&e);
                if is_not_found(&message) {
                    return Ok(false);
                }
                return Err(EngineError::Call {
                    action: format!("pull of {image}"),
                    message,
                });
            }
        }
        Ok(true)
    }

    /// Runs a build, calling `on_line` with every complete log line; returns the image id.
    pub async fn build<S>(
        &self,
        req: BuildRequest,
        context: S,
        mut on_line: impl FnMut(&str),
    ) -> Result<String, EngineError>
    where
        S: Stream<Item = Result<bytes::Bytes, std::io::Error>> + Send + 'static,
    {
        let builder = BuildImageOptionsBuilder::default()
            .dockerfile(&req.dockerfile)
            .rm(true)
            .forcerm(true)
            .buildargs(&req.build_args)
            .cachefrom(&req.cache_from);
        let opts = builder.build();
        let body = bollard::body_try_stream(context);
        let mut stream = self.docker.build_image(opts, req.registry_auth, Some(body));
        let mut lines = LineBuffer::default();
        let mut image_id = None;
        loop {
            // A RUN step may print nothing for long (`go build`, `cargo build
            // -q`): during a build, silence is a hang only when the engine
            // itself stops answering.
            let item = match tokio::time::timeout(self.idle, stream.next()).await {
                Ok(Some(item)) => item,
                Ok(None) => break,
                Err(_) => match tokio::time::timeout(PING_TIMEOUT, self.docker.ping()).await {
                    Ok(Ok(_)) => continue,
                    _ => {
                        return Err(EngineError::Unreachable {
                            detail: format!(
                                "the build printed nothing for {} s (--timeout) and the engine no longer answers",
                                self.idle.as_secs()
                            ),
                        });
                    }
                },
            };
            match item {
                Ok(info) => {
                    if let Some(text) = &info.stream {
                        lines.push(text, &mut on_line);
                    }
                    if let Some(status) = &info.status {
                        lines.push(&format!("{status}\n"), &mut on_line);
                    }
                    if let Some(id) = info.aux.as_ref().and_then(|a| a.id.clone()) {
                        image_id = Some(id);
                    }
                }
                Err(e) => {
                    lines.flush(&mut on_line);
                    // A dropped connection is the daemon's fault only if it no longer answers.
                    if lost_connection(&e) && self.docker.ping().await.is_err() {
                        return Err(EngineError::Unreachable {
                            detail: format!("lost the connection during the build: {e}"),
                        });
                    }
                    let message = error_message(&e);
                    on_line(&message);
                    return Err(EngineError::Build { message });
                }
            }
        }
        lines.flush(&mut on_line);
        image_id.ok_or(EngineError::NoImageId)
    }

    /// The next stream item, or [`EngineError::Stalled`] after `idle` of silence.
    async fn next_or_stall<S: Stream + Unpin>(
        &self,
        stream: &mut S,
        action: &str,
    ) -> Result<Option<S::Item>, EngineError> {
        tokio::time::timeout(self.idle, stream.next())
            .await
            .map_err(|_| EngineError::Stalled {
                action: action.to_string(),
                seconds: self.idle.as_secs(),
            })
    }

    /// Force-removes a container (a build container left by an interrupted run).
    pub async fn remove_container(&self, id: &str) -> Result<(), EngineError> {
        let opts = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
            .force(true)
            .build();
        self.docker
            .remove_container(id, Some(opts))
            .await
            .map_err(|e| EngineError::Call {
                action: format!("removing build container {id}"),
                message: error_message(&e),
            })
    }

    /// Gives `image` (id or reference) the name `repo:tag`.
    pub async fn tag(&self, image: &str, repo: &str, tag: &str) -> Result<(), EngineError> {
        let opts = TagImageOptionsBuilder::default()
            .repo(repo)
            .tag(tag)
            .build();
        self.docker
            .tag_image(image, Some(opts))
            .await
            .map_err(|e| EngineError::Call {
                action: format!("tagging {image} as {repo}:{tag}"),
                message: error_message(&e),
            })
    }

    /// Pushes `repo:tag` and returns the manifest digest the registry stored.
    pub async fn push(
        &self,
        repo: &str,
        tag: &str,
        creds: Option<DockerCredentials>,
        mut on_line: impl FnMut(&str),
    ) -> Result<Pushed, EngineError> {
        let image = format!("{repo}:{tag}");
        let opts = PushImageOptionsBuilder::default().tag(tag).build();
        let mut stream = self.docker.push_image(repo, Some(opts), creds);
        let action = format!("the push of {image}");
        let mut digest = None;
        // bollard's PushImageInfo has no layer id, so layers are told apart by
        // their total size: an approximation that only merges equal-sized layers.
        let mut layer_totals: std::collections::BTreeSet<u64> = Default::default();
        while let Some(item) = self.next_or_stall(&mut stream, &action).await? {
            match item {
                Ok(info) => {
                    let status = info.status.unwrap_or_default();
                    // bollard drops the `aux` record; the digest is in the status line
                    // "<tag>: digest: sha256:<hex> size: <n>" (FIELD-NOTES).
                    if let Some(d) = parse_push_digest(&status) {
                        digest = Some(d);
                    }
                    if status.starts_with("Pushing")
                        && let Some(total) = info.progress_detail.as_ref().and_then(|p| p.total)
                    {
                        layer_totals.insert(u64::try_from(total).unwrap_or(0));
                    }
                    if status == "Pushed" || status.starts_with("Pushing") {
                        // progress lines; not logged one by one
                    } else if !status.is_empty() {
                        on_line(&status);
                    }
                }
                Err(e) => {
                    return Err(EngineError::Push {
                        image,
                        message: error_message(&e),
                    });
                }
            }
        }
        let bytes_pushed = layer_totals.iter().sum::<u64>();
        let digest = digest.ok_or(EngineError::NoDigest { image })?;
        Ok(Pushed {
            digest,
            bytes_pushed,
        })
    }

    /// Whether the engine holds `reference`; an engine failure is an error,
    /// not a "no".
    pub async fn image_exists(&self, reference: &str) -> Result<bool, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(_) => Ok(true),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(false),
            Err(e) => Err(EngineError::Call {
                action: format!("looking up {reference}"),
                message: error_message(&e),
            }),
        }
    }
}

/// Whether a bollard error means the daemon went away (as opposed to the
/// daemon reporting a failure, which arrives as a stream or server error).
fn lost_connection(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    !matches!(
        e,
        E::DockerStreamError { .. } | E::DockerResponseServerError { .. }
    )
}

/// Turns a bollard error into the engine's own words.
fn error_message(e: &bollard::errors::Error) -> String {
    use bollard::errors::Error as E;
    match e {
        E::DockerStreamError { error } => error.trim().to_string(),
        E::DockerResponseServerError { message, .. } => message.trim().to_string(),
        other => other.to_string(),
    }
}

/// Whether a failed push is worth another attempt: the network or the
/// registry hiccuped, as opposed to a refusal (auth, missing repository).
pub fn is_transient(e: &EngineError) -> bool {
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

/// Whether a pull failed because the image is not there. A refusal is not
/// that, although Docker words it "pull access denied for X, repository does
/// not exist or may require 'docker login'".
fn is_not_found(message: &str) -> bool {
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

/// Parses `"<tag>: digest: sha256:<hex> size: <n>"`.
pub fn parse_push_digest(status: &str) -> Option<String> {
    let rest = status.split(": digest: ").nth(1)?;
    let digest = Digest::parse(rest.split_whitespace().next()?).ok()?;
    (digest.algorithm() == DigestAlgorithm::Sha256).then(|| digest.to_string())
}

/// Splits the engine's text chunks into complete lines.
#[derive(Default)]
struct LineBuffer {
    partial: String,
}

impl LineBuffer {
    fn push(&mut self, text: &str, on_line: &mut impl FnMut(&str)) {
        self.partial.push_str(text);
        while let Some(pos) = self.partial.find('\n') {
            let line: String = self.partial.drain(..=pos).collect();
            let line = line.trim_end_matches(['\n', '\r']);
            if !line.trim().is_empty() {
                on_line(line);
            }
        }
    }

    fn flush(&mut self, on_line: &mut impl FnMut(&str)) {
        let rest = std::mem::take(&mut self.partial);
        if !rest.trim().is_empty() {
            on_line(rest.trim_end());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_digest_is_read_from_the_status_line() {
        let hex = "a".repeat(64);
        let line = format!("abc1234: digest: sha256:{hex} size: 527");
        assert_eq!(parse_push_digest(&line), Some(format!("sha256:{hex}")));
        assert_eq!(parse_push_digest("Pushed"), None);
        assert_eq!(parse_push_digest("x: digest: sha256:abc size: 1"), None);
    }

    #[test]
    fn a_missing_image_is_not_found_but_a_refused_pull_is_an_error() {
        assert!(is_not_found(
            "manifest for 127.0.0.1:5000/bash-dog-api:latest not found: manifest unknown: manifest unknown"
        ));
        assert!(is_not_found(
            "repository 127.0.0.1:5000/x not found: name unknown"
        ));
        assert!(!is_not_found(
            "pull access denied for bash-dog-api, repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
        ));
        assert!(!is_not_found(
            "Head \"https://x/v2/a/manifests/latest\": no basic auth credentials: unauthorized"
        ));
    }

    #[test]
    fn refusals_are_not_retried_but_hiccups_are() {
        let push = |m: &str| EngineError::Push {
            image: "x".into(),
            message: m.into(),
        };
        assert!(is_transient(&push(
            "Patch http://r/v2/x/blobs/uploads/1: EOF"
        )));
        assert!(is_transient(&push(
            "received unexpected HTTP status: 503 Service Unavailable"
        )));
        assert!(is_transient(&push(
            "read tcp 127.0.0.1:1->127.0.0.1:2: read: connection reset by peer"
        )));
        assert!(!is_transient(&push(
            "unauthorized: authentication required"
        )));
        assert!(!is_transient(&push(
            "denied: requested access to the resource is denied"
        )));
        assert!(!is_transient(&EngineError::Build {
            message: "returned a non-zero code: 1".into()
        }));
    }

    #[test]
    fn line_buffer_joins_chunks_and_skips_blank_lines() {
        let mut b = LineBuffer::default();
        let mut got = Vec::new();
        b.push("Step 1/2 : FR", &mut |l| got.push(l.to_string()));
        b.push("OM x\n\n ---> abc\nlast", &mut |l| got.push(l.to_string()));
        b.flush(&mut |l| got.push(l.to_string()));
        assert_eq!(got, ["Step 1/2 : FROM x", " ---> abc", "last"]);
    }
}

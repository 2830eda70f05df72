//! The BuildKit builder: builds through the engine's own BuildKit, as
//! `docker buildx` does with its `docker` driver. `Control.Solve` goes over
//! a hijacked `/grpc` stream; the build reads its context, Dockerfile,
//! secrets and registry credentials from our own session over a hijacked
//! `/session` stream (see the research memo behind this design: bollard's
//! `buildkit` feature sends the context as a tar body, which the containerd
//! image store cannot read, and serves neither secrets nor file sync).
//!
//! | file | part |
//! |---|---|
//! | `hijack.rs` | the HTTP/1.1 → HTTP/2 upgrades, the `Control` channel |
//! | `session.rs` | our session: Health, Auth, Secrets, FileSync wiring |
//! | `filesync.rs` | the context and the Dockerfile (fsutil's protocol) |
//! | `solve.rs` | the `Solve` request, cache plan, `# syntax=` stripping |
//! | `status.rs` | status stream → steps and log lines |

mod filesync;
mod hijack;
mod session;
pub(crate) mod solve;
mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard_buildkit_proto::moby::buildkit::v1::control_client::ControlClient;
use bollard_buildkit_proto::moby::buildkit::v1::{ListWorkersRequest, StatusRequest};
use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tonic::transport::Channel;

use super::{BuildJob, Builder, BuiltImage, EngineError};
use crate::events::{Event, Events, UnitEvents};
use hijack::Door;
use status::{Said, Tracker};

pub(crate) use hijack::socket_from_env;

/// Why BuildKit cannot be reached.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildKitError {
    /// An upgrade to HTTP/2 failed.
    #[error("cannot open the engine's {route} stream: {detail}")]
    Hijack {
        /// The route.
        route: String,
        /// What failed.
        detail: String,
    },
    /// The engine's BuildKit did not answer.
    #[error("the engine's BuildKit does not answer: {0}")]
    Probe(String),
}

/// The engine's BuildKit, connected.
pub(crate) struct BuildKit {
    door: Door,
    control: ControlClient<Channel>,
    /// For telling a dropped connection from a failed build.
    docker: bollard::Docker,
    /// Whether the engine can export registry cache (containerd image store).
    registry_cache: bool,
    /// Which build of the run first reported each step (steps that
    /// concurrent builds share run once).
    owners: status::Owners,
    /// How long a build may stay silent while it waits on anything but a
    /// `RUN` step (a registry that stalls a cache import or a pull).
    idle: Duration,
}

/// When the build last said anything, and what it was waiting on then.
type Watch = Arc<Mutex<(Instant, Option<String>)>>;

/// Aborts a spawned task when dropped (a cancelled build).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl BuildKit {
    /// Opens the `/grpc` channel on `socket` (API `/v{major}.{minor}`) and
    /// asks for the workers: a worker with a snapshotter label means the
    /// containerd image store, which can export registry cache.
    pub(crate) async fn connect(
        docker: bollard::Docker,
        socket: std::path::PathBuf,
        api: &bollard::ClientVersion,
        idle: Duration,
    ) -> Result<BuildKit, BuildKitError> {
        let door = Door {
            socket,
            prefix: format!("/v{}.{}", api.major_version, api.minor_version),
        };
        let channel = hijack::control_channel(&door).await?;
        let mut control = ControlClient::new(channel);
        let workers = tokio::time::timeout(
            std::time::Duration::from_secs(30),
            control.list_workers(ListWorkersRequest::default()),
        )
        .await
        .map_err(|_| BuildKitError::Probe("no answer within 30 s".to_string()))?
        .map_err(|e| BuildKitError::Probe(e.message().to_string()))?
        .into_inner();
        let registry_cache = workers.record.iter().any(|w| {
            w.labels
                .contains_key("org.mobyproject.buildkit.worker.snapshotter")
        });
        Ok(BuildKit {
            door,
            control,
            docker,
            registry_cache,
            idle,
            owners: status::Owners::default(),
        })
    }

    /// Whether builds write and read registry cache (`<repo>:buildcache`).
    pub(crate) fn registry_cache(&self) -> bool {
        self.registry_cache
    }

    /// Follows the status of build `reference`, saying what happens through
    /// `events`; returns what it saw when the build ends.
    fn follow(&self, reference: String, events: UnitEvents, watch: Watch) -> AbortOnDrop<Tracker> {
        let mut control = self.control.clone();
        let mut tracker = Tracker::for_unit(events.unit(), Arc::clone(&self.owners));
        AbortOnDrop(tokio::spawn(async move {
            // BuildKit waits for the build to appear, so this may start first.
            let Ok(stream) = control.status(StatusRequest { r#ref: reference }).await else {
                return tracker;
            };
            let mut stream = stream.into_inner();
            while let Some(Ok(msg)) = stream.next().await {
                for said in tracker.update(&msg) {
                    tell(&events, said);
                }
                let mut w = watch.lock().unwrap_or_else(|p| p.into_inner());
                *w = (Instant::now(), tracker.waiting_on());
            }
            tracker
        }))
    }

    /// [`EngineError::Stalled`] when the build said nothing for `idle`
    /// while waiting on something other than a `RUN` step. Returning it
    /// drops the `Solve` call, which makes BuildKit cancel the build.
    fn stalled(&self, watch: &Watch) -> Option<EngineError> {
        let w = watch.lock().unwrap_or_else(|p| p.into_inner());
        let on = w.1.as_ref()?;
        (w.0.elapsed() > self.idle).then(|| EngineError::Stalled {
            action: format!("the build (waiting on {on})"),
            seconds: self.idle.as_secs(),
        })
    }

    /// The engine error for a failed `Solve`.
    async fn failure(
        &self,
        status: &tonic::Status,
        tracker: Option<&Tracker>,
        bases: &[String],
    ) -> EngineError {
        let message = status.message().trim().to_string();
        if let Some((step, log)) = tracker.and_then(Tracker::failed_step) {
            if let Some(image) = pulled_base(&step, bases) {
                return EngineError::BasePull {
                    registry: super::docker::registry_of(&image),
                    image,
                    message,
                };
            }
            return EngineError::BuildStep { step, message, log };
        }
        let transport = matches!(
            status.code(),
            tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Internal
        ) && (message.contains("transport")
            || message.contains("connection")
            || message.contains("broken pipe")
            || message.contains("h2 protocol")
            || message.is_empty());
        if transport && self.docker.ping().await.is_err() {
            return EngineError::Unreachable {
                detail: format!("lost the connection during the build: {message}"),
            };
        }
        EngineError::Build { message }
    }
}

/// The base image a failed step was fetching, as the build names it, when
/// the step is BuildKit's look-up of a base (`[internal] load metadata for
/// docker.io/library/alpine:3.20`) or its `FROM` (`[base 1/3] FROM
/// docker.io/library/alpine:3.20@sha256:…`). BuildKit names the image in
/// full; `bases` are the job's bases as written, matched in full form.
fn pulled_base(step: &str, bases: &[String]) -> Option<String> {
    let image = match step.strip_prefix("[internal] load metadata for ") {
        Some(image) => image,
        None => {
            let (_, instruction) = step.split_once("] ")?;
            let rest = instruction.strip_prefix("FROM ")?;
            rest.split_whitespace().next()?
        }
    };
    let written = bases.iter().find(|b| {
        let full = full_name(b);
        image == full || image.starts_with(&format!("{full}@"))
    });
    Some(match written {
        Some(b) => b.clone(),
        None => image
            .strip_prefix("docker.io/library/")
            .or_else(|| image.strip_prefix("docker.io/"))
            .unwrap_or(image)
            .to_string(),
    })
}

/// `alpine` → `docker.io/library/alpine:latest`, as BuildKit names it.
fn full_name(image: &str) -> String {
    let (host, path) = match image.split_once('/') {
        Some((h, p)) if h.contains(['.', ':']) || h == "localhost" => {
            (h.to_string(), p.to_string())
        }
        _ if image.contains('/') => ("docker.io".to_string(), image.to_string()),
        _ => ("docker.io".to_string(), format!("library/{image}")),
    };
    let last = path.rsplit('/').next().unwrap_or(&path);
    let tagged = last.contains(':') || path.contains('@');
    let tag = if tagged { "" } else { ":latest" };
    format!("{host}/{path}{tag}")
}

/// Sends what the status tracker says.
fn tell(events: &UnitEvents, said: Said) {
    match said {
        Said::Step(name) => events.step(&name),
        Said::Line(line) => events.log(&line),
        Said::CacheSkipped { source, reason } => events.send(Event::CacheSkipped {
            unit: events.unit().to_string(),
            source,
            reason,
        }),
        Said::CacheNotWritten(reason) => events.send(Event::CacheNotWritten {
            unit: events.unit().to_string(),
            reason,
        }),
    }
}

/// A stable key for BuildKit's transfer cache of this context directory.
fn shared_key(root: &std::path::Path) -> String {
    let digest = Sha256::digest(root.to_string_lossy().as_bytes());
    format!("stackbake-{}", hex::encode(&digest[..16]))
}

#[async_trait]
impl Builder for BuildKit {
    async fn build(&self, job: BuildJob, events: &UnitEvents) -> Result<BuiltImage, EngineError> {
        let credentials: HashMap<String, (String, crate::registry::Secret)> = job
            .auth
            .iter()
            .map(|a| {
                let c = &a.credentials;
                (a.host.clone(), (c.username.clone(), c.password.clone()))
            })
            .collect();
        let provided = session::Provided {
            files: filesync::FileSyncService::new(
                job.root.clone(),
                job.entries.clone(),
                solve::strip_syntax(&job.dockerfile),
            ),
            secrets: Arc::clone(&job.secrets),
            credentials,
        };
        let session = session::start(
            &self.door,
            session::new_id(),
            shared_key(&job.root),
            provided,
        )
        .await
        .map_err(|e| EngineError::Unreachable {
            detail: e.to_string(),
        })?;
        let reference = session::new_id();
        let cache = solve::cache_plan(&job, self.registry_cache);
        let request = solve::request(&job, &session.id, &reference, &cache);
        let start = Some("the start of the build".to_string());
        let watch: Watch = Arc::new(Mutex::new((Instant::now(), start)));
        let status = self.follow(reference, events.clone(), Arc::clone(&watch));
        let mut control = self.control.clone();
        let solve = control.solve(request);
        tokio::pin!(solve);
        let solved = loop {
            tokio::select! {
                r = &mut solve => break r,
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    if let Some(e) = self.stalled(&watch) {
                        return Err(e);
                    }
                }
            }
        };
        // The status stream ends with the build; give it a moment to drain.
        let mut status = status;
        let tracker = tokio::time::timeout(std::time::Duration::from_secs(5), &mut status.0)
            .await
            .ok()
            .and_then(Result::ok);
        drop(session);
        match solved {
            Ok(response) => {
                let response = response.into_inner().exporter_response;
                if job.names.is_empty() {
                    return Ok(BuiltImage { id: String::new() });
                }
                solve::image_id(&response)
                    .map(|id| BuiltImage { id })
                    .ok_or(EngineError::NoImageId)
            }
            Err(status) => Err(self
                .failure(&status, tracker.as_ref(), &job.base_images)
                .await),
        }
    }

    async fn remove_leftovers(&self, _events: &Events) {
        // A stopped build is cancelled by BuildKit when its Solve call is
        // dropped; it leaves no container behind.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_base_lookup_or_from_names_the_base_as_written() {
        let bases = vec!["alpine".to_string(), "r:5000/team/app:1".to_string()];
        assert_eq!(
            pulled_base(
                "[internal] load metadata for docker.io/library/alpine:latest",
                &bases
            ),
            Some("alpine".to_string())
        );
        assert_eq!(
            pulled_base("[base 1/3] FROM r:5000/team/app:1@sha256:abc", &bases),
            Some("r:5000/team/app:1".to_string())
        );
        assert_eq!(
            pulled_base(
                "[internal] load metadata for docker.io/library/nginx:1.27",
                &bases
            ),
            Some("nginx:1.27".to_string())
        );
        assert_eq!(pulled_base("[api 2/2] RUN make", &bases), None);
        assert_eq!(pulled_base("[internal] load build context", &bases), None);
    }
}

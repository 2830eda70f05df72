//! Inputs from outside the build context (SPEC v0.2): every external image
//! a target's stages use (`FROM`, `COPY --from=<image>`,
//! `RUN --mount=from=<image>`), `ADD <http(s) url>` and `ADD <git url>`.
//! A fingerprint covers what each one *points to* ([`Identity`]), not its
//! text, so a base that moved under the same tag, a changed file at a URL
//! or a branch that moved rebuilds exactly the targets that read it.
//!
//! Each distinct input is resolved once per run, all of them in parallel:
//! images as `image.rs` says (registry manifest digest, or the engine's
//! image id for an image that exists only in the engine), URLs by a
//! checksum of their content (`url.rs`), git refs to their commit
//! (`git.rs`). An input that cannot be resolved stops the run (exit 3,
//! naming it and where it was asked): a fingerprint is never computed on
//! what might be stale. Only with `--allow-unresolved` is such an input
//! fingerprinted by its reference text instead, with a warning.

mod git;
pub(crate) mod image;
mod url;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use crate::dockerfile::{BaseRef, ContextSource, Dockerfile, DockerfileError, StageGraph};
use crate::engine::{Engine, EngineError};
use crate::error::{Error, input};
use crate::events::{Event, Events};
use crate::registry::{Credentials, RegistryError, RetryPolicy};
use crate::services::Services;

pub(crate) use image::Routes;

/// One input from outside the context.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Input {
    /// An image, by its reference with variables expanded.
    Image(String),
    /// `ADD <http(s) url>`, with its `--checksum` if given.
    Url {
        /// The URL.
        url: String,
        /// `ADD --checksum=` as written.
        checksum: Option<String>,
    },
    /// `ADD <git url>[#ref[:subdir]]`.
    Git(String),
}

impl Input {
    /// The reference, URL or git URL as written (variables expanded).
    pub(crate) fn text(&self) -> &str {
        match self {
            Input::Image(t) | Input::Git(t) | Input::Url { url: t, .. } => t,
        }
    }
}

/// What an input points to: what a fingerprint covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Identity {
    /// A registry manifest (or multi-platform index) digest.
    Digest(String),
    /// The id of an image that exists only in the engine.
    ImageId(String),
    /// `sha256:` of a URL's content, or its `ADD --checksum` as given.
    Content(String),
    /// The commit a git ref resolved to.
    Commit(String),
    /// Not resolved (`--allow-unresolved`): the reference text stands in.
    Unresolved(String),
}

impl Identity {
    /// The field name and value a fingerprint hashes.
    pub(crate) fn hashed(&self) -> (&'static str, &str) {
        match self {
            Identity::Digest(v) => ("digest", v),
            Identity::ImageId(v) => ("image-id", v),
            Identity::Content(v) => ("content", v),
            Identity::Commit(v) => ("commit", v),
            Identity::Unresolved(v) => ("unresolved", v),
        }
    }
}

/// A resolved input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resolved {
    /// What it points to.
    pub(crate) identity: Identity,
    /// For a registry image: the reference the engine is sent instead
    /// (`name@sha256:…`), so that it builds on exactly this digest.
    pub(crate) pin: Option<String>,
}

/// Every input of a run, resolved.
#[derive(Debug, Clone, Default)]
pub(crate) struct Outside {
    resolved: BTreeMap<Input, Resolved>,
}

impl Outside {
    /// Every input fingerprinted by its text (what fingerprints covered
    /// before inputs were resolved): for tests of the hashing itself.
    #[cfg(test)]
    pub(crate) fn by_name(inputs: impl IntoIterator<Item = Input>) -> Outside {
        let resolved = inputs
            .into_iter()
            .map(|i| {
                let id = Identity::Unresolved(i.text().to_string());
                (
                    i,
                    Resolved {
                        identity: id,
                        pin: None,
                    },
                )
            })
            .collect();
        Outside { resolved }
    }

    /// `self` with `input` resolved to `identity` (tests).
    #[cfg(test)]
    pub(crate) fn with(mut self, input: Input, identity: Identity) -> Outside {
        let resolved = Resolved {
            identity,
            pin: None,
        };
        self.resolved.insert(input, resolved);
        self
    }

    /// An input's resolution.
    pub(crate) fn get(&self, input: &Input) -> Option<&Resolved> {
        self.resolved.get(input)
    }

    /// What the engine is sent for image `reference`, when not as written.
    pub(crate) fn pin(&self, reference: &str) -> Option<String> {
        self.get(&Input::Image(reference.to_string()))
            .and_then(|r| r.pin.clone())
    }

    /// The label value recording the resolved images among `images`:
    /// `REFERENCE=DIGEST_OR_ID` pairs, comma-separated (references hold no
    /// `,` or `=`); unresolved ones are left out.
    pub(crate) fn images_label(&self, images: &BTreeSet<String>) -> String {
        images
            .iter()
            .filter_map(|r| match &self.get(&Input::Image(r.clone()))?.identity {
                Identity::Digest(d) | Identity::ImageId(d) => Some(format!("{r}={d}")),
                _ => None,
            })
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// Reads a label written by [`Outside::images_label`].
pub(crate) fn parse_images_label(value: &str) -> BTreeMap<String, String> {
    value
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(r, d)| (r.to_string(), d.to_string()))
        .collect()
}

/// The label that records a built image's resolved images.
pub(crate) const IMAGES_LABEL: &str = "dev.stackbake.images";

/// The external images stages `stages` use (their bases and `--from` images).
pub(crate) fn images_of(graph: &StageGraph, stages: &[usize]) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = graph.images_of(stages).into_iter().collect();
    for &s in stages {
        if let Some(BaseRef::Image(r)) = graph.bases.get(s) {
            out.insert(r.clone());
        }
    }
    out
}

/// The inputs from outside the context that stages `stages` read.
pub(crate) fn inputs_of(
    df: &Dockerfile,
    graph: &StageGraph,
    stages: &[usize],
    build_args: &BTreeMap<String, String>,
) -> Result<BTreeSet<Input>, DockerfileError> {
    let mut out: BTreeSet<Input> = images_of(graph, stages)
        .into_iter()
        .map(Input::Image)
        .collect();
    for &s in stages {
        for src in df.context_sources(s, build_args)? {
            if let ContextSource::Remote { url, checksum, .. } = src {
                out.insert(if crate::dockerfile::is_git_url(&url) {
                    Input::Git(url)
                } else {
                    Input::Url { url, checksum }
                });
            }
        }
    }
    Ok(out)
}

/// Where resolution may look, and how.
pub(crate) struct Sources<'a> {
    /// The engine, when connected: images that exist only there.
    pub(crate) engine: Option<&'a dyn Engine>,
    /// Registry clients.
    pub(crate) services: &'a dyn Services,
    /// The registry images go to, with its in-memory credentials (ECR's
    /// token, or `--registry-user`): used for bases on that host.
    pub(crate) ours: Option<(String, Option<Credentials>)>,
    /// Where each registry is asked (a mirror would be set here).
    pub(crate) routes: Routes,
    /// Retries of a registry request.
    pub(crate) policy: RetryPolicy,
    /// Longest wait for a URL or git server.
    pub(crate) timeout: Duration,
    /// `--allow-unresolved`.
    pub(crate) allow_unresolved: bool,
}

/// Why an input could not be resolved.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// The registry has no such image.
    #[error("image {image} is not in registry {registry} (repository {repository}, {reference})")]
    NotFound {
        /// The reference as written.
        image: String,
        /// The registry asked.
        registry: String,
        /// Its repository there.
        repository: String,
        /// The tag or digest.
        reference: String,
    },
    /// The registry could not be asked.
    #[error("image {image}: registry {registry} did not answer: {source}")]
    Registry {
        /// The reference as written.
        image: String,
        /// The registry asked.
        registry: String,
        /// What went wrong.
        #[source]
        source: Box<RegistryError>,
    },
    /// The engine could not be asked.
    #[error("image {image}: {source}")]
    Engine {
        /// The reference as written.
        image: String,
        /// What went wrong.
        #[source]
        source: EngineError,
    },
    /// Not an image reference (`collect` checks them first).
    #[error("image {image}: {detail}")]
    Invalid {
        /// The text.
        image: String,
        /// What is wrong with it.
        detail: String,
    },
    /// A URL could not be read.
    #[error("ADD {url}: {detail}")]
    Url {
        /// The URL.
        url: String,
        /// What went wrong.
        detail: String,
    },
    /// A git ref could not be resolved.
    #[error("ADD {url}: cannot resolve the git ref: {detail}")]
    Git {
        /// The git URL as written.
        url: String,
        /// What went wrong.
        detail: String,
    },
}

/// Every input of the targets' stages, checked (a malformed image
/// reference is bad input, exit 2, before anything is asked).
pub(crate) fn collect(
    df: &Dockerfile,
    graph: &StageGraph,
    targets: &[usize],
    build_args: &BTreeMap<String, String>,
    dockerfile: &Path,
) -> Result<BTreeSet<Input>, Error> {
    let mut all = BTreeSet::new();
    for &t in targets {
        let found = inputs_of(df, graph, &graph.needed(t), build_args)
            .map_err(|e| input(dockerfile, e.to_string()))?;
        all.extend(found);
    }
    for i in &all {
        if let Input::Image(r) = i {
            crate::reference::ImageRef::parse(r).map_err(|e| {
                input(
                    dockerfile,
                    format!("the image `{r}` is not a valid reference: {e}"),
                )
            })?;
        }
    }
    Ok(all)
}

/// Resolves every input, all at once. Any failure stops the run
/// ([`Error::Unresolved`]), unless `--allow-unresolved` makes it a warning.
pub(crate) async fn resolve(
    inputs: BTreeSet<Input>,
    src: &Sources<'_>,
    events: &Events,
) -> Result<Outside, Error> {
    let started = Instant::now();
    let clients = image::Clients::new(&inputs, src)?;
    let http = url::client(src.timeout);
    let each = inputs.iter().map(|i| {
        let (clients, http) = (&clients, &http);
        async move {
            let r = match i {
                Input::Image(r) => image::resolve(r, src, clients).await,
                Input::Url { url, checksum } => url::resolve(http, url, checksum.as_deref()).await,
                Input::Git(u) => git::resolve(u, src.timeout).await,
            };
            (i.clone(), r)
        }
    });
    let results = futures_util::future::join_all(each).await;
    let mut out = Outside::default();
    let mut failures = Vec::new();
    for (i, r) in results {
        match r {
            Ok(resolved) => {
                out.resolved.insert(i, resolved);
            }
            Err(e) if src.allow_unresolved => {
                events.send(Event::Unresolved {
                    input: url::redact(i.text()),
                    error: e.to_string(),
                });
                let identity = Identity::Unresolved(i.text().to_string());
                out.resolved.insert(
                    i,
                    Resolved {
                        identity,
                        pin: None,
                    },
                );
            }
            Err(e) => failures.push(e),
        }
    }
    tracing::debug!(
        inputs = out.resolved.len() + failures.len(),
        seconds = started.elapsed().as_secs_f64(),
        "outside inputs resolved"
    );
    if failures.is_empty() {
        Ok(out)
    } else {
        Err(Error::Unresolved(failures))
    }
}

#[cfg(test)]
mod tests;

//! Fingerprints: a SHA-256 over exactly what can change a target's image
//! (SPEC "Fingerprints"), so a build can be skipped when the registry
//! already holds an image with the same fingerprint.
//!
//! Covered, for the target's stage and every stage it needs (transitively):
//! the instructions' exact text (so comments inside an instruction count, a
//! comment line between instructions does not), what each external image
//! the stages use points to (a base, a `COPY --from`/`RUN --mount from`
//! image: its registry digest or local image id, see `outside`), or which
//! needed stage a stage builds on, the values of the build args the stages
//! declare (BuildKit's platform ARGs included), the `# syntax=` and
//! `# escape=` directives (they change how the file is built), what each
//! `ADD <url>` / `ADD <git url>` points to (content checksum, commit), and,
//! for every `COPY`/`ADD` that reads the build context, the selected files
//! after `.dockerignore` (path, kind, exec bit, symlink target, content:
//! see `context::hash`). Not covered: other stages, files nothing reads,
//! build args the stages do not declare, mtimes, the `# check=` directive,
//! and anything a `RUN` step fetches from the network (`--max-age` is the
//! answer to that).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::context::hash::hash_sources;
use crate::context::walk::Entry;
use crate::dockerfile::{BaseRef, ContextSource, Dockerfile, StageGraph, is_git_url};
use crate::outside::{Input, Outside};

/// Version of the recipe below; bump it when what is hashed changes.
/// v2: images by what they point to, `ADD <url>` content, directives.
const RECIPE: &str = "stackbake-fingerprint/v2";
/// Prefix of the registry tag that stores a fingerprint.
pub(crate) const TAG_PREFIX: &str = "fp-";
/// Image label that stores the full fingerprint.
pub(crate) const LABEL: &str = "dev.stackbake.fingerprint";

/// A target's fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Fingerprint([u8; 32]);

impl Fingerprint {
    /// A fingerprint with the given bytes, for tests of code that carries one.
    #[cfg(test)]
    pub(crate) fn from_bytes(bytes: [u8; 32]) -> Fingerprint {
        Fingerprint(bytes)
    }

    /// `sha256:<64 hex>`.
    pub(crate) fn as_digest(&self) -> String {
        format!("sha256:{}", hex::encode(self.0))
    }

    /// The registry tag that marks an image built from these inputs.
    pub(crate) fn tag(&self) -> String {
        format!("{TAG_PREFIX}{}", hex::encode(self.0))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_digest())
    }
}

/// Why a fingerprint could not be computed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FingerprintError {
    /// A variable in the Dockerfile could not be expanded.
    #[error(transparent)]
    Dockerfile(#[from] crate::dockerfile::DockerfileError),
    /// An input from outside the context was not resolved before (a bug:
    /// `outside::collect` lists every input fingerprints read).
    #[error("{0} was not resolved before fingerprinting")]
    Unresolved(String),
    /// A COPY/ADD source is missing from the context, or unreadable.
    #[error("Dockerfile line {line}: {source}")]
    Source {
        /// The instruction's line.
        line: usize,
        /// What the context said.
        source: crate::context::ContextError,
    },
}

/// Feeds length-prefixed fields into a hasher, so that field boundaries
/// can never be confused.
struct Feed(Sha256);

impl Feed {
    fn field(&mut self, tag: &str, value: &[u8]) {
        self.0.update((tag.len() as u64).to_le_bytes());
        self.0.update(tag.as_bytes());
        self.0.update((value.len() as u64).to_le_bytes());
        self.0.update(value);
    }

    /// What `input` points to, under `tag`.
    fn input(
        &mut self,
        tag: &str,
        input: &Input,
        outside: &Outside,
    ) -> Result<(), FingerprintError> {
        let resolved = outside
            .get(input)
            .ok_or_else(|| FingerprintError::Unresolved(input.text().to_string()))?;
        let (kind, value) = resolved.identity.hashed();
        self.field(tag, kind.as_bytes());
        self.field(tag, value.as_bytes());
        Ok(())
    }
}

/// Remembers the digest of each COPY/ADD source set, so that a stage shared
/// by many targets has its files hashed once per run, not once per target.
#[derive(Default)]
pub(crate) struct SourceCache(std::collections::HashMap<Vec<String>, [u8; 32]>);

/// Computes the fingerprint of stage `target` (tests; runs share a cache).
///
/// `entries` is the `.dockerignore`-filtered context listed with no
/// always-included files (the Dockerfile itself is not an input here: its
/// relevant instructions are).
#[cfg(test)]
pub(crate) fn fingerprint(
    df: &Dockerfile,
    graph: &StageGraph,
    target: usize,
    build_args: &BTreeMap<String, String>,
    root: &Path,
    entries: &[Entry],
) -> Result<Fingerprint, FingerprintError> {
    let inputs = crate::outside::inputs_of(df, graph, &graph.needed(target), build_args)?;
    let outside = Outside::by_name(inputs);
    let sources = Sources {
        df,
        graph,
        build_args,
        outside: &outside,
    };
    fingerprint_cached(&sources, target, root, entries, &mut SourceCache::default())
}

/// What fingerprints are computed from, besides the context's files.
pub(crate) struct Sources<'a> {
    /// The Dockerfile.
    pub df: &'a Dockerfile,
    /// Its stage graph.
    pub graph: &'a StageGraph,
    /// `--build-arg`s.
    pub build_args: &'a BTreeMap<String, String>,
    /// What the inputs from outside the context point to.
    pub(crate) outside: &'a Outside,
}

/// `fingerprint` (the tests' entry), reusing (and filling) `cache` across the targets of one run.
pub(crate) fn fingerprint_cached(
    src: &Sources<'_>,
    target: usize,
    root: &Path,
    entries: &[Entry],
    cache: &mut SourceCache,
) -> Result<Fingerprint, FingerprintError> {
    let Sources {
        df,
        graph,
        build_args,
        outside,
    } = *src;
    let needed = graph.needed(target);
    let position: BTreeMap<usize, usize> =
        needed.iter().enumerate().map(|(p, s)| (*s, p)).collect();
    let globals = df.global_vars(build_args)?;
    let mut h = Feed(Sha256::new());
    h.field("recipe", RECIPE.as_bytes());
    for d in df.directives.iter().filter(|d| d.name != "check") {
        h.field("directive", d.name.as_bytes());
        h.field("directive-value", d.value.as_bytes());
    }
    for &s in &needed {
        let Some(stage) = df.stages.get(s) else {
            continue;
        };
        h.field("stage", &(position[&s] as u64).to_le_bytes());
        h.field("from", stage.opening_instruction().raw.as_bytes());
        match graph.bases.get(s) {
            Some(BaseRef::Stage(j)) => {
                h.field(
                    "base-stage",
                    &(position.get(j).copied().unwrap_or(usize::MAX) as u64).to_le_bytes(),
                );
            }
            Some(BaseRef::Image(r)) => h.input("base-image", &Input::Image(r.clone()), outside)?,
            Some(BaseRef::Scratch) | None => h.field("base-scratch", b""),
        }
        for arg in df.stage_args(s) {
            let value = build_args.get(&arg.name).cloned().or_else(|| {
                arg.default
                    .is_none()
                    .then(|| globals.get(&arg.name).cloned())
                    .flatten()
            });
            h.field("arg-name", arg.name.as_bytes());
            match value {
                Some(v) => h.field("arg-value", v.as_bytes()),
                None => h.field("arg-default", b""),
            }
        }
        for image in graph.images.get(s).into_iter().flatten() {
            h.input("copy-from-image", &Input::Image(image.clone()), outside)?;
        }
        for ins in &stage.instructions {
            h.field("instruction", ins.raw.as_bytes());
        }
        context_reads(&mut h, src, s, root, entries, cache)?;
    }
    Ok(Fingerprint(h.0.finalize().into()))
}

/// Feeds what stage `s` reads through `COPY`/`ADD`: context files, grouped
/// per instruction (Docker resolves each COPY as a whole), and remote sources.
fn context_reads(
    h: &mut Feed,
    src: &Sources<'_>,
    s: usize,
    root: &Path,
    entries: &[Entry],
    cache: &mut SourceCache,
) -> Result<(), FingerprintError> {
    let mut per_line: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut remote: BTreeSet<Input> = BTreeSet::new();
    for source in src.df.context_sources(s, src.build_args)? {
        match source {
            ContextSource::Local { path, line } => per_line.entry(line).or_default().push(path),
            ContextSource::Remote { url, checksum, .. } => {
                remote.insert(if is_git_url(&url) {
                    Input::Git(url)
                } else {
                    Input::Url { url, checksum }
                });
            }
        }
    }
    for (line, sources) in per_line {
        let digest = match cache.0.get(&sources) {
            Some(d) => *d,
            None => {
                let d = hash_sources(root, entries, &sources)
                    .map_err(|source| FingerprintError::Source { line, source })?
                    .digest;
                cache.0.insert(sources, d);
                d
            }
        };
        h.field("context", &digest);
    }
    for input in &remote {
        h.field("remote", input.text().as_bytes());
        h.input("remote-content", input, src.outside)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;

//! Hashing what COPY/ADD sources read from the context, for fingerprints.
//!
//! Sources are resolved as the classic builder does (moby `builder/dockerfile/copy.go`):
//! a leading `/` and then `./` are dropped; a source with `*`, `?` or `[` is a Go
//! `filepath.Match` pattern tested against every path of the context; any other source
//! is a path whose symlinks are followed inside the context (`FollowSymlinkInScope`).
//! A matched directory means everything under it; symlinks inside it are not followed.
//! The digest covers, per matched path in sorted order: the path, the kind, the
//! executable bit of files (not the whole mode: umasks differ between checkouts), the
//! symlink target and the content. Every field is length-prefixed so that two different
//! file sets cannot produce the same byte stream. File contents are hashed in parallel
//! and combined in path order, so the result is deterministic.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use super::ContextError;
use super::dockerignore::{clean, go_match};
use super::walk::{Entry, Kind};

/// Read size for file contents.
const READ_CHUNK: usize = 256 * 1024;
/// Symlink hops allowed while resolving one source (as the Linux kernel's limit).
const MAX_HOPS: usize = 255;

/// The result of [`hash_sources`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HashedSources {
    /// SHA-256 over the matched paths (see the module docs for what is covered).
    pub digest: [u8; 32],
    /// Number of distinct matched paths (files, directories and symlinks).
    pub paths: usize,
    /// Total size in bytes of the matched files' contents.
    pub bytes: u64,
}

impl HashedSources {
    /// The digest as 64 lowercase hex characters.
    #[cfg(test)]
    pub(crate) fn hex(&self) -> String {
        hex::encode(self.digest)
    }
}

/// Hashes the context paths that the sources of one COPY/ADD instruction select.
///
/// `entries` must come from [`super::walk::list`] (already `.dockerignore`-filtered;
/// list with `always_include = &[]`). `sources` are as written in the Dockerfile after
/// variable expansion. A non-wildcard source that matches nothing fails with
/// [`ContextError::SourceNotFound`]; wildcards that match nothing are fine as long as
/// the instruction matches something, else [`ContextError::NoSourceFiles`] (Docker's
/// "no source files were specified").
pub(crate) fn hash_sources(
    root: &Path,
    entries: &[Entry],
    sources: &[String],
) -> Result<HashedSources, ContextError> {
    let index: BTreeMap<&str, &Entry> = entries.iter().map(|e| (e.rel.as_str(), e)).collect();
    let selected = select_all(&index, entries, sources)?;
    let items: Vec<&Entry> = selected
        .iter()
        .filter_map(|rel| index.get(rel).copied())
        .collect();
    let contents = hash_contents(root, &items)?;

    let mut h = Sha256::new();
    h.update(b"stackbake/context-sources/v1\0");
    h.update((items.len() as u64).to_le_bytes());
    let mut bytes = 0u64;
    for (item, content) in items.iter().zip(&contents) {
        frame(&mut h, item.rel.as_bytes());
        match &item.kind {
            Kind::File => {
                let (digest, len) = content.unwrap_or(([0; 32], 0));
                h.update([b'f', u8::from(item.mode & 0o111 != 0)]);
                h.update(len.to_le_bytes());
                h.update(digest);
                bytes += len;
            }
            Kind::Dir => h.update([b'd']),
            Kind::Symlink(target) => {
                h.update([b'l']);
                frame(&mut h, target.as_bytes());
            }
        }
    }
    Ok(HashedSources {
        digest: h.finalize().into(),
        paths: items.len(),
        bytes,
    })
}

/// The context paths that the sources of one COPY/ADD instruction select
/// (matched paths, everything under matched directories, and symlinks
/// crossed on the way), with the same rules and errors as [`hash_sources`].
/// Used to send each build only the files its instructions read.
pub(crate) fn selected_paths(
    entries: &[Entry],
    sources: &[String],
) -> Result<BTreeSet<String>, ContextError> {
    let index: BTreeMap<&str, &Entry> = entries.iter().map(|e| (e.rel.as_str(), e)).collect();
    Ok(select_all(&index, entries, sources)?
        .into_iter()
        .map(String::from)
        .collect())
}

fn select_all<'a>(
    index: &BTreeMap<&'a str, &'a Entry>,
    entries: &'a [Entry],
    sources: &[String],
) -> Result<BTreeSet<&'a str>, ContextError> {
    let mut selected: BTreeSet<&str> = BTreeSet::new();
    for source in sources {
        let mut orig = source.as_str();
        if orig.len() > 1 && orig.starts_with('/') {
            orig = &orig[1..];
        }
        orig = orig.strip_prefix("./").unwrap_or(orig);
        if contains_wildcards(orig) {
            for e in entries {
                if go_match(orig, &e.rel).unwrap_or(false) {
                    select(index, &e.rel, source, &mut selected)?;
                }
            }
        } else {
            let p = clean(orig);
            if p == ".." || p.starts_with("../") {
                return Err(ContextError::SourceOutsideContext {
                    path: source.clone(),
                });
            }
            let p = if p == "." || p == "/" { "" } else { p.as_str() };
            select(index, p, source, &mut selected)?;
        }
    }
    if selected.is_empty() {
        return Err(ContextError::NoSourceFiles {
            sources: sources.join(", "),
        });
    }
    Ok(selected)
}

fn frame(h: &mut Sha256, field: &[u8]) {
    h.update((field.len() as u64).to_le_bytes());
    h.update(field);
}

/// moby `containsWildcards`: `*`, `?` or `[` not preceded by `\`.
fn contains_wildcards(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'*' | b'?' | b'[' => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

/// Resolves `path` inside the context following symlinks (never leaving the root) and
/// adds it, everything under it and the symlinks crossed on the way to `selected`.
fn select<'a>(
    index: &BTreeMap<&'a str, &'a Entry>,
    path: &str,
    source: &str,
    selected: &mut BTreeSet<&'a str>,
) -> Result<(), ContextError> {
    let not_found = || ContextError::SourceNotFound {
        path: source.to_string(),
    };
    let mut crossed: Vec<&'a str> = Vec::new();
    let mut pending: Vec<String> = path
        .split('/')
        .rev()
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect();
    let mut cur = String::new();
    let mut hops = 0;
    while let Some(comp) = pending.pop() {
        match comp.as_str() {
            "." => continue,
            ".." => {
                cur = cur
                    .rsplit_once('/')
                    .map(|(p, _)| p.to_string())
                    .unwrap_or_default();
                continue;
            }
            _ => {}
        }
        let cand = if cur.is_empty() {
            comp
        } else {
            format!("{cur}/{comp}")
        };
        let (&key, entry) = index.get_key_value(cand.as_str()).ok_or_else(not_found)?;
        match &entry.kind {
            Kind::Symlink(target) => {
                hops += 1;
                if hops > MAX_HOPS {
                    return Err(not_found());
                }
                crossed.push(key);
                if target.starts_with('/') {
                    cur.clear();
                }
                pending.extend(
                    target
                        .split('/')
                        .rev()
                        .filter(|c| !c.is_empty())
                        .map(String::from),
                );
            }
            _ => cur = cand,
        }
    }
    selected.extend(crossed);
    if cur.is_empty() {
        selected.extend(index.keys().copied());
        return Ok(());
    }
    let (&key, entry) = index.get_key_value(cur.as_str()).ok_or_else(not_found)?;
    selected.insert(key);
    if entry.kind == Kind::Dir {
        let prefix = format!("{cur}/");
        selected.extend(
            index
                .range::<str, _>((
                    std::ops::Bound::Included(prefix.as_str()),
                    std::ops::Bound::Unbounded,
                ))
                .map(|(k, _)| *k)
                .take_while(|k| k.starts_with(&prefix)),
        );
    }
    Ok(())
}

type ContentHash = Option<([u8; 32], u64)>;
type WorkerResults = Vec<(usize, Result<([u8; 32], u64), ContextError>)>;

/// Files a worker takes at a time: neighbours in path order, so that they mostly
/// share a directory and one [`Opener`] directory handle.
const BATCH: usize = 32;

/// SHA-256 and length of each file's content (`None` for non-files), in item order.
fn hash_contents(root: &Path, items: &[&Entry]) -> Result<Vec<ContentHash>, ContextError> {
    let files: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].kind == Kind::File)
        .collect();
    let mut out: Vec<ContentHash> = vec![None; items.len()];
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len().div_ceil(BATCH));
    if workers <= 1 {
        let mut buf = vec![0u8; READ_CHUNK];
        let mut opener = Opener::new(root);
        for &i in &files {
            out[i] = Some(hash_file(&mut opener, items[i], &mut buf)?);
        }
        return Ok(out);
    }
    let next = AtomicUsize::new(0);
    let results: Vec<WorkerResults> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    // One read buffer per worker: zero-filling a fresh one per
                    // file cost more than hashing small files.
                    let mut buf = vec![0u8; READ_CHUNK];
                    let mut opener = Opener::new(root);
                    loop {
                        let k = next.fetch_add(BATCH, Ordering::Relaxed);
                        let Some(batch) = files.get(k..(k + BATCH).min(files.len())) else {
                            break;
                        };
                        for &i in batch {
                            mine.push((i, hash_file(&mut opener, items[i], &mut buf)));
                        }
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut first_err: Option<(usize, ContextError)> = None;
    let mut done = 0;
    for (i, r) in results.into_iter().flatten() {
        match r {
            Ok(v) => {
                out[i] = Some(v);
                done += 1;
            }
            Err(e) => {
                if first_err.as_ref().is_none_or(|(j, _)| i < *j) {
                    first_err = Some((i, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_err {
        return Err(e);
    }
    if done != files.len() {
        return Err(ContextError::Io {
            op: "hash",
            path: root.to_path_buf(),
            source: std::io::Error::other("a hashing thread stopped unexpectedly"),
        });
    }
    Ok(out)
}

/// Opens context files relative to a handle on their directory, kept while the
/// following files live in the same one. Resolving the whole path for each of
/// 100k files was a tenth of the kernel's share of hashing (std has no `openat`,
/// hence rustix, already linked through tempfile).
struct Opener<'a> {
    root: &'a Path,
    dir: Option<(String, rustix::fd::OwnedFd)>,
}

impl<'a> Opener<'a> {
    fn new(root: &'a Path) -> Self {
        Opener { root, dir: None }
    }

    fn open(&mut self, rel: &str) -> std::io::Result<std::fs::File> {
        use rustix::fs::{Mode, OFlags};
        let (parent, name) = rel.rsplit_once('/').unwrap_or(("", rel));
        let cached = match self.dir.take() {
            Some((d, fd)) if d == parent => (d, fd),
            _ => (
                parent.to_string(),
                rustix::fs::open(
                    self.root.join(parent),
                    OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                    Mode::empty(),
                )?,
            ),
        };
        let dir = &self.dir.insert(cached).1;
        let fd = rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(std::fs::File::from(fd))
    }
}

/// SHA-256 and length of one file. `entry.size` (from the walk) saves the read that
/// would only confirm the end of the file: a short read that brings the total to the
/// size the walk saw ends the file (a regular file returns fewer bytes than asked
/// only at its end). A file that grew or shrank since the walk is read to its real
/// end, so the digest is always of what the file holds now.
fn hash_file(
    opener: &mut Opener<'_>,
    entry: &Entry,
    buf: &mut [u8],
) -> Result<([u8; 32], u64), ContextError> {
    let io = |op: &'static str, source: std::io::Error| ContextError::Io {
        op,
        path: opener.root.join(&entry.rel),
        source,
    };
    let mut f = opener.open(&entry.rel).map_err(|e| io("open", e))?;
    let mut h = Sha256::new();
    let mut len = 0u64;
    loop {
        let n = match f.read(buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io("read", e)),
        };
        h.update(&buf[..n]);
        len += n as u64;
        if n < buf.len() && len == entry.size {
            break;
        }
    }
    Ok((h.finalize().into(), len))
}

#[cfg(test)]
mod tests;

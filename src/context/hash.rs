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
mod tests {
    use super::*;
    use crate::context::{DockerIgnore, walk::list};
    use std::fs;
    use std::os::unix::fs::PermissionsExt;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(p, content).expect("write");
    }

    fn fixture() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, ".dockerignore", "app/**/*.md\n");
        write(r, "app/api/index.html", "api");
        write(r, "app/api/NOTES.md", "ignored");
        write(r, "app/api/run.sh", "#!/bin/sh");
        write(r, "app/other/x.txt", "other");
        write(r, "app/a.txt", "a");
        write(r, "app/b.txt", "b");
        write(r, "README", "readme");
        std::os::unix::fs::symlink("index.html", r.join("app/api/link")).expect("symlink");
        t
    }

    fn hash(root: &Path, sources: &[&str]) -> Result<HashedSources, ContextError> {
        let ig = DockerIgnore::load(root).expect("load");
        let entries = list(root, &ig, &[]).expect("list");
        let sources: Vec<String> = sources.iter().map(|s| s.to_string()).collect();
        hash_sources(root, &entries, &sources)
    }

    fn ok(root: &Path, sources: &[&str]) -> HashedSources {
        hash(root, sources).expect("hash")
    }

    #[test]
    fn content_change_changes_digest() {
        let t = fixture();
        let before = ok(t.path(), &["app/api/"]);
        write(t.path(), "app/api/index.html", "api v2");
        assert_ne!(before.digest, ok(t.path(), &["app/api/"]).digest);
    }

    #[test]
    fn exec_bit_counts_but_mtime_and_other_mode_bits_do_not() {
        let t = fixture();
        let p = t.path().join("app/api/run.sh");
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        let base = ok(t.path(), &["app/api"]);
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(
            base.digest,
            ok(t.path(), &["app/api"]).digest,
            "group/other bits ignored"
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).expect("chmod");
        assert_ne!(
            base.digest,
            ok(t.path(), &["app/api"]).digest,
            "exec bit counts"
        );
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).expect("chmod");
        let f = fs::File::options().write(true).open(&p).expect("open");
        f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000))
            .expect("mtime");
        assert_eq!(
            base.digest,
            ok(t.path(), &["app/api"]).digest,
            "mtime ignored"
        );
    }

    #[test]
    fn unrelated_and_ignored_files_do_not_count() {
        let t = fixture();
        let base = ok(t.path(), &["app/api/"]);
        write(t.path(), "app/other/x.txt", "changed");
        write(t.path(), "README", "changed");
        write(t.path(), "app/api/NOTES.md", "changed too");
        assert_eq!(base.digest, ok(t.path(), &["app/api/"]).digest);
    }

    #[test]
    fn symlink_target_change_changes_digest() {
        let t = fixture();
        let base = ok(t.path(), &["app/api"]);
        fs::remove_file(t.path().join("app/api/link")).expect("rm");
        std::os::unix::fs::symlink("run.sh", t.path().join("app/api/link")).expect("symlink");
        assert_ne!(base.digest, ok(t.path(), &["app/api"]).digest);
    }

    #[test]
    fn dir_source_vs_wildcard_source() {
        let t = fixture();
        let dir = ok(t.path(), &["app"]);
        let txt = ok(t.path(), &["app/*.txt"]);
        assert_eq!(txt.paths, 2);
        assert_eq!(txt.bytes, 2);
        assert!(dir.paths > txt.paths);
        assert_ne!(dir.digest, txt.digest);
        // A change outside the wildcard does not count; inside it does.
        write(t.path(), "app/api/index.html", "x");
        assert_eq!(txt.digest, ok(t.path(), &["app/*.txt"]).digest);
        write(t.path(), "app/a.txt", "A");
        assert_ne!(txt.digest, ok(t.path(), &["app/*.txt"]).digest);
        // A wildcard that matches a directory takes the whole directory.
        let wild_dir = ok(t.path(), &["app/ap?"]);
        assert_eq!(wild_dir.digest, ok(t.path(), &["app/api"]).digest);
    }

    #[test]
    fn spellings_of_the_same_source_agree() {
        let t = fixture();
        let a = ok(t.path(), &["app/api"]);
        for s in [
            "./app/api",
            "/app/api",
            "app/api/",
            "app//api",
            "app/other/../api",
        ] {
            assert_eq!(a, ok(t.path(), &[s]), "{s}");
        }
        let all = ok(t.path(), &["."]);
        assert_eq!(all, ok(t.path(), &["/"]));
        assert_eq!(all, ok(t.path(), &["./"]));
        let dup = ok(t.path(), &["app/api", "app/api/index.html"]);
        assert_eq!(a, dup, "duplicates are counted once");
    }

    #[test]
    fn missing_sources_are_errors() {
        let t = fixture();
        assert!(matches!(
            hash(t.path(), &["app/nope"]),
            Err(ContextError::SourceNotFound { path }) if path == "app/nope"
        ));
        assert!(matches!(
            hash(t.path(), &["app/api/NOTES.md"]),
            Err(ContextError::SourceNotFound { .. })
        ));
        assert!(matches!(
            hash(t.path(), &["*.nothing"]),
            Err(ContextError::NoSourceFiles { .. })
        ));
        assert!(matches!(
            hash(t.path(), &[]),
            Err(ContextError::NoSourceFiles { .. })
        ));
        assert!(matches!(
            hash(t.path(), &["../etc"]),
            Err(ContextError::SourceOutsideContext { .. })
        ));
        // A wildcard without match next to a real source is fine, as in the classic builder.
        assert_eq!(
            ok(t.path(), &["app/a.txt", "*.nothing"]),
            ok(t.path(), &["app/a.txt"])
        );
        // Broken patterns never panic.
        assert!(hash(t.path(), &["app/[", "\\", "[z-a]"]).is_err());
    }

    #[test]
    fn symlinked_source_is_followed_in_scope() {
        let t = fixture();
        std::os::unix::fs::symlink("app/api", t.path().join("api-link")).expect("symlink");
        std::os::unix::fs::symlink("/app/b.txt", t.path().join("abs-link")).expect("symlink");
        std::os::unix::fs::symlink("loop", t.path().join("loop")).expect("symlink");
        let via = ok(t.path(), &["api-link"]);
        assert!(via.paths > ok(t.path(), &["app/api"]).paths);
        let before = ok(t.path(), &["api-link/index.html"]);
        write(t.path(), "app/api/index.html", "new");
        assert_ne!(before.digest, ok(t.path(), &["api-link/index.html"]).digest);
        assert_eq!(ok(t.path(), &["abs-link"]).bytes, 1);
        assert!(matches!(
            hash(t.path(), &["loop"]),
            Err(ContextError::SourceNotFound { .. })
        ));
    }

    #[test]
    fn many_files_hash_in_parallel_deterministically() {
        let t = tempfile::tempdir().expect("tempdir");
        for i in 0..200 {
            write(t.path(), &format!("src/f{i:03}"), &format!("content {i}"));
        }
        let a = ok(t.path(), &["src"]);
        let b = ok(t.path(), &["src"]);
        assert_eq!(a, b);
        assert_eq!(a.paths, 201);
        write(t.path(), "src/f150", "other");
        assert_ne!(a.digest, ok(t.path(), &["src"]).digest);
        assert_eq!(a.hex().len(), 64);
    }

    #[test]
    fn framing_separates_paths_and_contents() {
        // "ab" + "c" vs "a" + "bc": different files, same concatenation.
        let t1 = tempfile::tempdir().expect("tempdir");
        write(t1.path(), "d/ab", "c");
        let t2 = tempfile::tempdir().expect("tempdir");
        write(t2.path(), "d/a", "bc");
        assert_ne!(ok(t1.path(), &["d"]).digest, ok(t2.path(), &["d"]).digest);
    }
    #[test]
    fn each_file_digest_is_of_its_own_content_across_directories() {
        // Files of several sizes (one spans several reads) spread over directories,
        // so that workers switch directory handles inside a batch.
        let t = tempfile::tempdir().expect("tempdir");
        let mut rels = Vec::new();
        for i in 0..150usize {
            let rel = format!("d{}/e{}/f{i:03}", i % 3, i / 40);
            let size = if i == 77 { READ_CHUNK * 2 + 5 } else { i * 37 };
            let content: Vec<u8> = (0..size).map(|b| (b * 31 + i) as u8).collect();
            let p = t.path().join(&rel);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, &content).expect("write");
            rels.push(rel);
        }
        let entries = list(t.path(), &DockerIgnore::default(), &[]).expect("list");
        let items: Vec<&Entry> = entries.iter().collect();
        let hashed = hash_contents(t.path(), &items).expect("hash");
        let mut files = 0;
        for (entry, got) in items.iter().zip(&hashed) {
            if entry.kind != Kind::File {
                assert_eq!(*got, None, "{}", entry.rel);
                continue;
            }
            let content = fs::read(t.path().join(&entry.rel)).expect("read");
            let want: [u8; 32] = Sha256::digest(&content).into();
            assert_eq!(*got, Some((want, content.len() as u64)), "{}", entry.rel);
            files += 1;
        }
        assert_eq!(files, rels.len());
    }

    #[test]
    fn files_changed_since_the_walk_are_hashed_as_they_are_now() {
        let t = tempfile::tempdir().expect("tempdir");
        write(t.path(), "src/grows", "0123456789");
        write(t.path(), "src/shrinks", "0123456789");
        write(t.path(), "src/big", &"x".repeat(READ_CHUNK + 10));
        let ig = DockerIgnore::load(t.path()).expect("load");
        let stale = list(t.path(), &ig, &[]).expect("list");
        let sources = vec!["src".to_string()];
        let before = hash_sources(t.path(), &stale, &sources).expect("hash");

        write(t.path(), "src/grows", "0123456789 and more");
        write(t.path(), "src/shrinks", "01234");
        write(t.path(), "src/big", &"x".repeat(READ_CHUNK + 20));
        let now = hash_sources(t.path(), &stale, &sources).expect("hash");
        let fresh = list(t.path(), &ig, &[]).expect("list");
        assert_eq!(now, hash_sources(t.path(), &fresh, &sources).expect("hash"));
        assert_ne!(now.digest, before.digest);
        assert_eq!(now.bytes, 19 + 5 + (READ_CHUNK as u64 + 20));
    }
}

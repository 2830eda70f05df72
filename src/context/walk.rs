//! Listing the build context: every file, directory and symlink Docker would send.
//!
//! The walk mirrors go-archive's `TarWithOptions` as the Docker CLI drives it: paths
//! are judged with `.dockerignore` carrying each directory's per-pattern results to its
//! children, excluded directories are skipped unless an exception could re-include
//! something inside ([`DockerIgnore::descend`]), and symlinks are never followed.
//! Sockets, FIFOs and device nodes are left out (reading a FIFO would hang the build).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{ContextError, DockerIgnore};

/// What a context entry is.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link, with its target exactly as stored (never followed).
    Symlink(String),
}

/// One path of the build context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Path relative to the context root, `/`-separated, no leading `./`.
    pub rel: String,
    /// File, directory or symlink.
    pub kind: Kind,
    /// Permission bits including setuid/setgid/sticky (`st_mode & 0o7777`).
    pub mode: u32,
    /// Size in bytes for files; 0 otherwise.
    pub size: u64,
}

/// Lists the context under `root` that `.dockerignore` leaves in, sorted by path bytes.
///
/// `always_include` names paths (relative to `root`) that are kept even when excluded,
/// as the Docker CLI does for the Dockerfile and `.dockerignore` (the daemon removes
/// them again). Pass `&[]` when listing for fingerprints.
pub(crate) fn list(
    root: &Path,
    ignore: &DockerIgnore,
    always_include: &[&str],
) -> Result<Vec<Entry>, ContextError> {
    check_root(root)?;
    let ignore = if always_include.is_empty() {
        ignore.clone()
    } else {
        ignore.with_exceptions(always_include)?
    };
    let mut walk = Walk {
        ignore,
        stack: vec![Pending {
            abs: root.to_path_buf(),
            rel: String::new(),
            info: None,
        }],
        out: Vec::new(),
    };
    while let Some(dir) = walk.stack.pop() {
        walk.directory(&dir)?;
    }
    let mut out = walk.out;
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    Ok(out)
}

/// Checks that the context root is an existing directory.
fn check_root(root: &Path) -> Result<(), ContextError> {
    match std::fs::metadata(root) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(ContextError::NotADirectory {
            path: root.to_path_buf(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ContextError::NotADirectory {
            path: root.to_path_buf(),
        }),
        Err(source) => Err(ContextError::Io {
            op: "stat",
            path: root.to_path_buf(),
            source,
        }),
    }
}

/// A directory still to read.
struct Pending {
    /// Absolute path.
    abs: PathBuf,
    /// Path relative to the context root (empty for the root).
    rel: String,
    /// The directory's per-pattern `.dockerignore` results (`None` for the root).
    info: Option<Vec<bool>>,
}

/// The state of one listing: the matcher, the directories still to read and
/// the entries found so far.
struct Walk {
    ignore: DockerIgnore,
    stack: Vec<Pending>,
    out: Vec<Entry>,
}

impl Walk {
    /// Reads one directory: lists its kept entries and queues its subdirectories.
    fn directory(&mut self, dir: &Pending) -> Result<(), ContextError> {
        let rd = std::fs::read_dir(&dir.abs).map_err(|source| ContextError::Io {
            op: "read directory",
            path: dir.abs.clone(),
            source,
        })?;
        for item in rd {
            let item = item.map_err(|source| ContextError::Io {
                op: "read directory",
                path: dir.abs.clone(),
                source,
            })?;
            self.item(dir, &item)?;
        }
        Ok(())
    }

    /// Judges one directory item against `.dockerignore` and records it.
    fn item(&mut self, dir: &Pending, item: &std::fs::DirEntry) -> Result<(), ContextError> {
        let abs = item.path();
        let name = item
            .file_name()
            .into_string()
            .map_err(|_| ContextError::NonUtf8Path { path: abs.clone() })?;
        let rel = if dir.rel.is_empty() {
            name
        } else {
            format!("{}/{name}", dir.rel)
        };
        // `DirEntry::metadata` is an `lstat` relative to the open directory
        // (statx with the directory's fd), cheaper than resolving `abs` again.
        let meta = item.metadata().map_err(|source| ContextError::Io {
            op: "stat",
            path: abs.clone(),
            source,
        })?;
        let ft = meta.file_type();
        let (skip, child_info) = self.ignore.evaluate(&rel, dir.info.as_deref());
        if skip {
            if ft.is_dir() && self.ignore.descend(&rel) {
                self.stack.push(Pending {
                    abs,
                    rel,
                    info: Some(child_info),
                });
            }
            return Ok(());
        }
        let mode = meta.permissions().mode() & 0o7777;
        let kind = if ft.is_dir() {
            self.stack.push(Pending {
                abs: abs.clone(),
                rel: rel.clone(),
                info: Some(child_info),
            });
            Kind::Dir
        } else if ft.is_symlink() {
            Kind::Symlink(link_target(&abs)?)
        } else if ft.is_file() {
            Kind::File
        } else {
            return Ok(());
        };
        let size = if kind == Kind::File { meta.size() } else { 0 };
        self.out.push(Entry {
            rel,
            kind,
            mode,
            size,
        });
        Ok(())
    }
}

/// A symlink's target exactly as stored.
fn link_target(abs: &Path) -> Result<String, ContextError> {
    let target = std::fs::read_link(abs).map_err(|source| ContextError::Io {
        op: "read link",
        path: abs.to_path_buf(),
        source,
    })?;
    target
        .into_os_string()
        .into_string()
        .map_err(|_| ContextError::NonUtf8Path {
            path: abs.to_path_buf(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::ffi::OsStrExt;

    fn write(root: &Path, rel: &str, content: &str) {
        let p = root.join(rel);
        if let Some(parent) = p.parent() {
            fs::create_dir_all(parent).expect("mkdir");
        }
        fs::write(p, content).expect("write");
    }

    fn rels(entries: &[Entry]) -> Vec<&str> {
        entries.iter().map(|e| e.rel.as_str()).collect()
    }

    #[test]
    fn nested_excludes_and_exceptions() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, ".dockerignore", "*\n!app\napp/**/*.md\n");
        write(r, "Dockerfile", "FROM x");
        write(r, "README.md", "r");
        write(r, "app/api/index.html", "i");
        write(r, "app/api/NOTES.md", "n");
        write(r, "app/shared/lib.sh", "l");
        write(r, "target/big", "b");
        let ig = DockerIgnore::load(r).expect("load");
        let e = list(r, &ig, &[]).expect("list");
        assert_eq!(
            rels(&e),
            [
                "app",
                "app/api",
                "app/api/index.html",
                "app/shared",
                "app/shared/lib.sh"
            ]
        );
        let e = list(r, &ig, &["Dockerfile", ".dockerignore"]).expect("list");
        assert_eq!(rels(&e)[..3], [".dockerignore", "Dockerfile", "app"]);
        let f = e.iter().find(|e| e.rel == "Dockerfile").expect("present");
        assert_eq!((f.kind.clone(), f.size), (Kind::File, 6));
    }

    #[test]
    fn excluded_dir_walked_only_for_literal_exception() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, "docs/keep.txt", "k");
        write(r, "docs/drop.txt", "d");
        write(r, "src/x.go", "g");
        write(r, "y.go", "g");
        let ig = DockerIgnore::parse("docs\n!docs/keep.txt\nsrc\n!**/*.go\n").expect("parse");
        let e = list(r, &ig, &[]).expect("list");
        assert_eq!(rels(&e), ["docs/keep.txt", "y.go"]);
        for entry in &e {
            assert!(ig.in_context(&entry.rel));
        }
    }

    #[test]
    fn symlinks_are_listed_not_followed() {
        let outside = tempfile::tempdir().expect("tempdir");
        write(outside.path(), "secret/file", "s");
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, "a.txt", "a");
        std::os::unix::fs::symlink(outside.path().join("secret"), r.join("out")).expect("symlink");
        std::os::unix::fs::symlink("a.txt", r.join("rel-link")).expect("symlink");
        let e = list(r, &DockerIgnore::default(), &[]).expect("list");
        assert_eq!(rels(&e), ["a.txt", "out", "rel-link"]);
        assert_eq!(
            e[1].kind,
            Kind::Symlink(outside.path().join("secret").to_string_lossy().into_owned())
        );
        assert_eq!(e[2].kind, Kind::Symlink("a.txt".into()));
    }

    #[test]
    fn sorted_by_bytes_and_modes_recorded() {
        let t = tempfile::tempdir().expect("tempdir");
        let r = t.path();
        write(r, "a/b", "");
        write(r, "a.txt", "");
        write(r, "run.sh", "#!/bin/sh");
        fs::set_permissions(r.join("run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
        let e = list(r, &DockerIgnore::default(), &[]).expect("list");
        assert_eq!(rels(&e), ["a", "a.txt", "a/b", "run.sh"]);
        assert_eq!(e[3].mode, 0o755);
        assert_eq!(e[0].kind, Kind::Dir);
    }

    #[test]
    fn non_utf8_name_is_a_clear_error() {
        let t = tempfile::tempdir().expect("tempdir");
        let bad = t.path().join(std::ffi::OsStr::from_bytes(b"bad\xff"));
        fs::write(&bad, "x").expect("write");
        match list(t.path(), &DockerIgnore::default(), &[]) {
            Err(ContextError::NonUtf8Path { path }) => assert_eq!(path, bad),
            other => panic!("expected NonUtf8Path, got {other:?}"),
        }
    }

    #[test]
    fn missing_root_is_an_error() {
        let t = tempfile::tempdir().expect("tempdir");
        let err = list(&t.path().join("nope"), &DockerIgnore::default(), &[]).unwrap_err();
        assert!(matches!(err, ContextError::NotADirectory { .. }));
    }
}

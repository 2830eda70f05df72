//! The artifact writer: every output file is first written to a temporary
//! file in the destination directory ([`stage`]), then all are renamed over
//! their targets ([`Staged::commit`]), so a reader never sees half a file, a
//! full disk fails before anything is replaced, and nothing at all is written
//! unless the whole run succeeded (the caller only commits then).

use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::error::Error;

/// One file of the artifact.
pub struct OutFile {
    /// File name inside the out dir.
    pub name: String,
    /// Its content.
    pub content: Vec<u8>,
}

/// Files written and synced under temporary names, not yet in place.
/// Dropping it removes the temporaries and leaves the out dir as it was.
pub struct Staged {
    files: Vec<(NamedTempFile, PathBuf)>,
}

fn fail(what: String, e: std::io::Error) -> Error {
    Error::Environment(format!(
        "cannot write the artifact: {what}: {e}. Check that the out directory is writable and the disk is not full"
    ))
}

/// Writes `files` into temporaries in `dir` (created if missing). They are
/// renamed into place by [`Staged::commit`] in the given order, so put the
/// taskdef last: a reader that sees the new taskdef also sees the files that
/// go with it.
pub fn stage(dir: &Path, files: Vec<OutFile>) -> Result<Staged, Error> {
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("creating {}", dir.display()), e))?;
    let mut staged = Vec::new();
    for f in files {
        let path = dir.join(&f.name);
        let mut tmp = tempfile::Builder::new()
            .prefix(".stackbake-")
            .tempfile_in(dir)
            .map_err(|e| fail(format!("creating a temporary file in {}", dir.display()), e))?;
        tmp.write_all(&f.content)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| fail(format!("writing {}", path.display()), e))?;
        staged.push((tmp, path));
    }
    Ok(Staged { files: staged })
}

impl Staged {
    /// Renames every staged file into place; returns their paths.
    pub fn commit(self) -> Result<Vec<PathBuf>, Error> {
        let mut written = Vec::new();
        for (tmp, path) in self.files {
            tmp.persist(&path)
                .map_err(|e| fail(format!("renaming into {}", path.display()), e.error))?;
            written.push(path);
        }
        Ok(written)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        names
    }

    fn files() -> Vec<OutFile> {
        vec![
            OutFile {
                name: "imageDetail.json".to_string(),
                content: b"{\"ImageURI\":\"x\"}".to_vec(),
            },
            OutFile {
                name: "taskdef.prod.json".to_string(),
                content: b"{}".to_vec(),
            },
        ]
    }

    #[test]
    fn writes_every_file_in_order_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let staged = stage(&out, files()).expect("stage");
        assert_eq!(names(&out).len(), 2, "temporaries only");
        assert!(names(&out).iter().all(|n| n.starts_with(".stackbake-")));
        let written = staged.commit().expect("commit");
        assert_eq!(
            written.last().map(|p| p.ends_with("taskdef.prod.json")),
            Some(true)
        );
        assert_eq!(names(&out), ["imageDetail.json", "taskdef.prod.json"]);
        assert_eq!(
            std::fs::read(out.join("taskdef.prod.json")).expect("read"),
            b"{}"
        );
    }

    #[test]
    fn dropping_a_staged_artifact_changes_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("taskdef.prod.json"), "old").expect("write");
        drop(stage(dir.path(), files()).expect("stage"));
        assert_eq!(names(dir.path()), ["taskdef.prod.json"]);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("taskdef.prod.json")).expect("read"),
            "old"
        );
    }
}

//! The artifact writer: every output file is written to a temporary file in
//! the destination directory and renamed over the target, so a reader never
//! sees half a file, and nothing at all is written unless the whole run
//! succeeded (the caller only calls [`write_all`] then).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::Error;

/// One file of the artifact.
pub struct OutFile {
    /// File name inside the out dir.
    pub name: &'static str,
    /// Its content.
    pub content: Vec<u8>,
}

/// Writes `files` into `dir` (created if missing), each atomically.
/// `taskdef.json` is written last, so that a reader that sees the new
/// taskdef also sees the files that go with it.
pub fn write_all(dir: &Path, mut files: Vec<OutFile>) -> Result<Vec<PathBuf>, Error> {
    let fail = |what: String, e: std::io::Error| {
        Error::Environment(format!(
            "cannot write the artifact: {what}: {e}. Check that the out directory is writable and the disk is not full"
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(format!("creating {}", dir.display()), e))?;
    files.sort_by_key(|f| f.name == "taskdef.json");
    // Every file is written and synced before the first rename, so a full
    // disk or a write error leaves the old artifact whole.
    let mut staged = Vec::new();
    for f in files {
        let path = dir.join(f.name);
        let mut tmp = tempfile::Builder::new()
            .prefix(".stackbake-")
            .tempfile_in(dir)
            .map_err(|e| fail(format!("creating a temporary file in {}", dir.display()), e))?;
        tmp.write_all(&f.content)
            .and_then(|()| tmp.as_file().sync_all())
            .map_err(|e| fail(format!("writing {}", path.display()), e))?;
        staged.push((tmp, path));
    }
    let mut written = Vec::new();
    for (tmp, path) in staged {
        tmp.persist(&path)
            .map_err(|e| fail(format!("renaming into {}", path.display()), e.error))?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_file_and_leaves_no_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().join("out");
        let files = vec![
            OutFile {
                name: "taskdef.json",
                content: b"{}".to_vec(),
            },
            OutFile {
                name: "imageDetail.json",
                content: b"{\"ImageURI\":\"x\"}".to_vec(),
            },
        ];
        let written = write_all(&out, files).expect("write");
        assert_eq!(
            written.last().map(|p| p.ends_with("taskdef.json")),
            Some(true)
        );
        let mut names: Vec<_> = std::fs::read_dir(&out)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf8"))
            .collect();
        names.sort();
        assert_eq!(names, ["imageDetail.json", "taskdef.json"]);
        assert_eq!(
            std::fs::read(out.join("taskdef.json")).expect("read"),
            b"{}"
        );
    }
}

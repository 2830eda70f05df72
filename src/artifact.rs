//! The artifact writer: which files the artifact holds ([`files`]), where
//! stackbake's own output lies inside the build context ([`own_output`]),
//! and writing them atomically: every file is first written to a temporary
//! file in the destination directory ([`stage`]), then all are renamed over
//! their targets ([`Staged::commit`]), so a reader never sees half a file, a
//! full disk fails before anything is replaced, and nothing at all is written
//! unless the whole run succeeded (the caller only commits then).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use tempfile::NamedTempFile;

use crate::build::inputs::Inputs;
use crate::error::{Error, input};
use crate::report::Report;
use crate::taskdef as td;

/// The report's file name in `--out`.
pub(crate) const REPORT_FILE: &str = "stackbake-report.json";
/// CodePipeline's ECS (standard) deploy input.
pub(crate) const IMAGE_DEFINITIONS_FILE: &str = "imagedefinitions.json";
/// CodePipeline's ECS blue/green image input.
pub(crate) const IMAGE_DETAIL_FILE: &str = "imageDetail.json";

/// The files stackbake generates (the taskdef and appspec it writes carry
/// the inputs' names).
const GENERATED: [&str; 3] = [REPORT_FILE, IMAGE_DEFINITIONS_FILE, IMAGE_DETAIL_FILE];

/// The artifact could not be written.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot write the artifact: {what}: {source}. Check that the out directory is writable and the disk is not full"
)]
pub(crate) struct ArtifactError {
    /// What was being done (`writing out/taskdef.json`).
    what: String,
    /// The file system's error.
    source: std::io::Error,
}

/// One file of the artifact.
pub(crate) struct OutFile {
    /// File name inside the out dir.
    pub(crate) name: String,
    /// Its content.
    pub(crate) content: Vec<u8>,
}

/// Files written and synced under temporary names, not yet in place.
/// Dropping it removes the temporaries and leaves the out dir as it was.
pub(crate) struct Staged {
    files: Vec<(NamedTempFile, PathBuf)>,
}

fn fail(what: String, source: std::io::Error) -> ArtifactError {
    ArtifactError { what, source }
}

/// Where the artifact's files come from (the task definitions' paths are
/// in the inputs).
pub(crate) struct Paths<'a> {
    /// `--appspec`.
    pub(crate) appspec: &'a Path,
    /// `--out`.
    pub(crate) out: &'a Path,
}

/// Every file of the artifact, in memory, in write order: the report,
/// `imagedefinitions.json` (every mapped container of every task
/// definition, once), `imageDetail.json` (for the appspec's load-balanced
/// container), the appspec (when `--out` is not its directory), and last
/// every task definition with `pins` (container → image), each under its
/// own file name, the appspec's last of all.
pub(crate) fn files(
    paths: &Paths<'_>,
    inputs: &Inputs,
    pins: &BTreeMap<String, String>,
    report: &Report,
) -> Result<Vec<OutFile>, Error> {
    let mut taskdefs = Vec::new();
    for (path, taskdef) in inputs.taskdefs.iter().rev() {
        let names = taskdef.container_names();
        let own: BTreeMap<String, String> = pins
            .iter()
            .filter(|(c, _)| names.contains(c))
            .map(|(c, i)| (c.clone(), i.clone()))
            .collect();
        let pinned =
            td::rewrite::pin_images(taskdef, &own).map_err(|e| input(path, e.to_string()))?;
        taskdefs.push(OutFile {
            name: file_name(path)?,
            content: pinned.into_bytes(),
        });
    }
    let definitions: Vec<(String, String)> = inputs
        .mappings
        .iter()
        .filter_map(|m| {
            let c = m.container();
            pins.get(c).map(|i| (c.to_string(), i.clone()))
        })
        .collect();
    let mut files = vec![
        OutFile {
            name: REPORT_FILE.to_string(),
            content: report.to_json().into_bytes(),
        },
        OutFile {
            name: IMAGE_DEFINITIONS_FILE.to_string(),
            content: td::image_definitions_json(&definitions).into_bytes(),
        },
    ];
    if let Some(lb) = &inputs.appspec.lb_container {
        let uri = pins.get(lb).cloned().or_else(|| {
            inputs
                .taskdef
                .containers()
                .into_iter()
                .find(|c| &c.name == lb)
                .map(|c| c.image)
        });
        if let Some(uri) = uri {
            files.push(OutFile {
                name: IMAGE_DETAIL_FILE.to_string(),
                content: td::image_detail_json(&uri).into_bytes(),
            });
        }
    }
    // The appspec and taskdef keep their names (`--appspec`, `--taskdef`): the
    // pipeline's deploy action names them. The appspec is copied only when
    // the out dir is not where it already is.
    let appspec_name = file_name(paths.appspec)?;
    if !same_file(&paths.out.join(&appspec_name), paths.appspec) {
        files.push(OutFile {
            name: appspec_name,
            content: inputs.appspec_text.clone().into_bytes(),
        });
    }
    // Last, so that whoever sees a new taskdef sees the rest with it.
    files.extend(taskdefs);
    Ok(files)
}

fn file_name(path: &Path) -> Result<String, Error> {
    path.file_name()
        .and_then(|n| n.to_str())
        .map(str::to_string)
        .ok_or_else(|| {
            input(
                path,
                "not a file name stackbake can write (it must end in a UTF-8 file name)",
            )
        })
}

/// Whether `a` and `b` name the same file (`a` may not exist yet).
fn same_file(a: &Path, b: &Path) -> bool {
    match (resolved(a), resolved(b)) {
        (Some(a), Some(b)) => a == b,
        _ => a == b,
    }
}

/// What of stackbake's own output lies inside the build context (`--dir`), as
/// paths relative to it. Left in the context, the report (it holds timings)
/// would change the fingerprint of any stage that copies the whole context on
/// every run, and last run's artifact would ship inside the image.
/// - `--out` below `--dir` (as `--local`'s default `stackbake-out`): all of it;
/// - `--out` being the taskdef's own directory (in place): only the files
///   stackbake generates there, never the user's taskdef, appspec or others.
pub(crate) fn own_output(dir: &Path, out: &Path, taskdef: &Path) -> Vec<String> {
    let (Some(dir), Some(out)) = (resolved(dir), resolved(out)) else {
        return Vec::new();
    };
    let Some(rel) = out.strip_prefix(&dir).ok().and_then(Path::to_str) else {
        return Vec::new();
    };
    let in_place = taskdef
        .parent()
        .and_then(resolved)
        .is_some_and(|t| t == out);
    if in_place || rel.is_empty() {
        GENERATED
            .iter()
            .map(|f| {
                if rel.is_empty() {
                    f.to_string()
                } else {
                    format!("{rel}/{f}")
                }
            })
            .collect()
    } else {
        vec![rel.to_string()]
    }
}

/// `path` relative to `dir` when it lies inside it (it may not exist yet).
pub(crate) fn inside(dir: &Path, path: &Path) -> Option<String> {
    let (dir, path) = (resolved(dir)?, resolved(path)?);
    let rel = path.strip_prefix(&dir).ok()?.to_str()?;
    (!rel.is_empty()).then(|| rel.to_string())
}

/// `p` absolute with symlinks resolved, also when its last components do not
/// exist yet (an `--out` directory the run will create).
fn resolved(p: &Path) -> Option<PathBuf> {
    let abs = std::path::absolute(p).ok()?;
    let mut base = abs.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(mut c) = base.canonicalize() {
            c.extend(rest.iter().rev());
            return Some(c);
        }
        rest.push(base.file_name()?);
        base = base.parent()?;
    }
}

/// Writes `files` into temporaries in `dir` (created if missing). They are
/// renamed into place by [`Staged::commit`] in the given order, so put the
/// taskdef last: a reader that sees the new taskdef also sees the files that
/// go with it.
pub(crate) fn stage(dir: &Path, files: Vec<OutFile>) -> Result<Staged, ArtifactError> {
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
    pub(crate) fn commit(self) -> Result<Vec<PathBuf>, ArtifactError> {
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

    #[test]
    fn a_path_inside_a_directory_is_found_relative_to_it() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("project");
        std::fs::create_dir_all(&dir).expect("mkdir");
        assert_eq!(
            inside(&dir, &dir.join("out/x.env")),
            Some("out/x.env".to_string())
        );
        assert_eq!(inside(&dir, &t.path().join("x.env")), None);
        assert_eq!(inside(&dir, &dir), None);
    }

    #[test]
    fn own_output_inside_the_context_is_found() {
        let t = tempfile::tempdir().expect("tempdir");
        let dir = t.path().join("project");
        std::fs::create_dir_all(dir.join("existing")).expect("mkdir");
        std::fs::create_dir_all(dir.join("deploy")).expect("mkdir");
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        let taskdef = dir.join("taskdef.json");
        let rel = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // In place at the root: the generated files only.
        assert_eq!(
            own_output(&dir, &dir, &taskdef),
            rel(&[
                "stackbake-report.json",
                "imagedefinitions.json",
                "imageDetail.json"
            ])
        );
        // In place next to a taskdef in deploy/: deploy's other files stay in.
        assert_eq!(
            own_output(
                &dir,
                &dir.join("deploy"),
                &dir.join("deploy/taskdef.prod.json")
            ),
            rel(&[
                "deploy/stackbake-report.json",
                "deploy/imagedefinitions.json",
                "deploy/imageDetail.json"
            ])
        );
        // An out dir of its own below --dir: all of it.
        assert_eq!(
            own_output(&dir, &dir.join("stackbake-out"), &taskdef),
            rel(&["stackbake-out"])
        );
        assert_eq!(
            own_output(&dir, &dir.join("existing"), &taskdef),
            rel(&["existing"])
        );
        assert_eq!(
            own_output(&dir, &dir.join("a/./b"), &taskdef),
            rel(&["a/b"])
        );
        assert_eq!(
            own_output(&link, &dir.join("out"), &taskdef),
            rel(&["out"]),
            "through a symlink"
        );
        assert!(own_output(&dir, &t.path().join("elsewhere"), &taskdef).is_empty());
        assert!(
            own_output(&dir, t.path(), &taskdef).is_empty(),
            "a parent of --dir"
        );
    }
}

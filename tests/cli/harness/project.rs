//! Projects: a temp copy of the example stack ([`Project`]) and everything
//! one build test owns ([`Fixture`]: images, project, registry, base image,
//! commit tag), with the `stackbake build` command line for it.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::Value;
use tempfile::TempDir;

use super::{BaseImage, LocalImages, REPO_ROOT, Registry, Sb, require_docker, unique_id};

/// Files of the example stack copied by [`Project::example`] (if present).
const EXAMPLE_FILES: &[&str] = &[
    "Dockerfile",
    ".dockerignore",
    "taskdef.json",
    "appspec.yaml",
    "buildspec.yml",
];

// ----------------------------------------------------------------- project

/// A temp copy of the example stack: `root()` is the project (`--dir`),
/// `out()` a sibling directory that does not exist yet (`--out`).
pub(crate) struct Project {
    dir: TempDir,
    root: PathBuf,
    out: PathBuf,
}

impl Project {
    /// Copies Dockerfile, .dockerignore, taskdef.json, appspec.yaml,
    /// buildspec.yml (if present) and app/ from the repository root.
    pub(crate) fn example() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("stackbake-project-")
            .tempdir()
            .expect("temp dir for the project");
        let root = dir.path().join("stack");
        let out = dir.path().join("out");
        fs::create_dir(&root).expect("create project dir");
        let repo = Path::new(REPO_ROOT);
        for name in EXAMPLE_FILES {
            let src = repo.join(name);
            if src.exists() {
                fs::copy(&src, root.join(name))
                    .unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
            }
        }
        copy_tree(&repo.join("app"), &root.join("app"));
        Project { dir, root, out }
    }

    /// The project directory (`--dir`).
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// The artifact directory for `--out` (absolute; not created).
    pub(crate) fn out(&self) -> &Path {
        &self.out
    }

    /// `root()/rel`.
    pub(crate) fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    /// Contents of `root()/rel`.
    pub(crate) fn read(&self, rel: &str) -> String {
        fs::read_to_string(self.path(rel)).unwrap_or_else(|e| panic!("read {rel}: {e}"))
    }

    /// Writes `root()/rel`, creating parent directories.
    pub(crate) fn write(&self, rel: &str, contents: &str) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).expect("create parent dir");
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {rel}: {e}"));
    }

    /// Rewrites `root()/rel` through `edit`.
    pub(crate) fn edit(&self, rel: &str, edit: impl FnOnce(String) -> String) {
        let new = edit(self.read(rel));
        self.write(rel, &new);
    }

    /// Adds the Dockerfile instruction `step` right after the line `after`
    /// (which must be there).
    pub(crate) fn add_step_after(&self, after: &str, step: &str) {
        let old = self.read("Dockerfile");
        let new = old.replacen(&format!("{after}\n"), &format!("{after}\n{step}\n"), 1);
        assert_ne!(old, new, "no line {after:?} in the Dockerfile");
        self.write("Dockerfile", &new);
    }

    /// Deletes the file `root()/rel`.
    pub(crate) fn remove(&self, rel: &str) {
        fs::remove_file(self.path(rel)).unwrap_or_else(|e| panic!("remove {rel}: {e}"));
    }

    /// Names of the files in `dir` (empty if it does not exist).
    pub(crate) fn files_in(dir: &Path) -> Vec<String> {
        let Ok(entries) = fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Parses `dir/name` as JSON.
    pub(crate) fn json_in(dir: &Path, name: &str) -> Value {
        let path = dir.join(name);
        let text =
            fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e}):\n{text}", path.display()))
    }

    /// The temp dir holding `root()` and `out()`.
    pub(crate) fn temp(&self) -> &Path {
        self.dir.path()
    }
}

fn copy_tree(src: &Path, dst: &Path) {
    fs::create_dir_all(dst).unwrap_or_else(|e| panic!("create {}: {e}", dst.display()));
    let entries = fs::read_dir(src).unwrap_or_else(|e| panic!("read {}: {e}", src.display()));
    for entry in entries {
        let entry = entry.expect("directory entry");
        let (from, to) = (entry.path(), dst.join(entry.file_name()));
        let kind = entry.file_type().expect("file type");
        if kind.is_dir() {
            copy_tree(&from, &to);
        } else if kind.is_symlink() {
            let target = fs::read_link(&from).expect("read symlink");
            std::os::unix::fs::symlink(target, &to).expect("create symlink");
        } else {
            fs::copy(&from, &to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        }
    }
}

// ----------------------------------------------------------------- fixture

/// Everything one build test owns. Fields drop in order: local images
/// first, then the project, the registry and last the base image.
pub(crate) struct Fixture {
    /// Cleanup of the images this test makes.
    pub images: LocalImages,
    /// The temp copy of the example stack.
    pub project: Project,
    /// The test's own registry, if any.
    pub registry: Option<Registry>,
    /// The base image passed as `--build-arg BASE=`.
    pub base: Option<BaseImage>,
    /// Unique commit tag (`--tag`).
    pub tag: String,
}

impl Fixture {
    /// Fresh base image, fresh anonymous registry, example project.
    pub(crate) fn with_registry() -> Fixture {
        Fixture::new(true, true)
    }

    /// Fresh base image, no registry (images only tagged locally).
    pub(crate) fn local_only() -> Fixture {
        Fixture::new(false, true)
    }

    /// Inputs only: no registry, no base image (`BASE` names an image that
    /// does not exist), for runs that must stop before building.
    pub(crate) fn inputs_only() -> Fixture {
        Fixture::new(false, false)
    }

    pub(crate) fn new(registry: bool, base: bool) -> Fixture {
        require_docker();
        let tag = unique_id();
        let mut images = LocalImages::new(&tag);
        let registry = registry.then(Registry::start);
        if let Some(r) = &registry {
            images.watch_registry(r.addr());
        }
        Fixture {
            images,
            project: Project::example(),
            registry,
            base: base.then(BaseImage::fresh),
            tag,
        }
    }

    /// The registry; panics for fixtures without one.
    pub(crate) fn registry(&self) -> &Registry {
        self.registry
            .as_ref()
            .expect("this fixture has no registry")
    }

    /// The `BASE` build arg value.
    pub(crate) fn base_ref(&self) -> String {
        match &self.base {
            Some(b) => b.reference().to_owned(),
            None => format!("stackbake-test/busybox:absent-{}", self.tag),
        }
    }

    /// `stackbake build --local --dir ROOT --out OUT --build-arg BASE=…
    /// --tag TAG --progress plain [--registry ADDR]`.
    pub(crate) fn build(&self) -> Sb {
        self.build_with(Some(self.project.out()), "plain")
    }

    /// Like [`Fixture::build`] with no `--out` (the `--local` default
    /// `ROOT/stackbake-out`) or another `--progress`.
    pub(crate) fn build_with(&self, out: Option<&Path>, progress: &str) -> Sb {
        let mut sb = Sb::new()
            .args(["build", "--local", "--dir"])
            .arg(self.project.root());
        if let Some(out) = out {
            sb = sb.arg("--out").arg(out);
        }
        sb = sb
            .arg("--build-arg")
            .arg(format!("BASE={}", self.base_ref()))
            .args(["--tag", &self.tag, "--progress", progress]);
        if let Some(r) = &self.registry {
            sb = sb.args(["--registry", r.addr()]);
        }
        sb
    }

    /// Fresh base image, fresh registry demanding basic auth `user`/`pass`
    /// (e.g. moto's ECR token), example project.
    pub(crate) fn with_auth_registry(user: &str, pass: &str) -> Fixture {
        require_docker();
        let tag = unique_id();
        let mut images = LocalImages::new(&tag);
        let registry = Registry::start_with_auth(user, pass);
        images.watch_registry(registry.addr());
        Fixture {
            images,
            project: Project::example(),
            registry: Some(registry),
            base: Some(BaseImage::fresh()),
            tag,
        }
    }
}

/// Every regular file under `dir` (recursively, symlinks not followed), as
/// absolute paths; empty if `dir` does not exist.
pub(crate) fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(d) = pending.pop() {
        let Ok(entries) = fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.filter_map(Result::ok) {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => pending.push(entry.path()),
                Ok(kind) if kind.is_file() => found.push(entry.path()),
                _ => {}
            }
        }
    }
    found.sort();
    found
}

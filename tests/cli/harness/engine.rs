//! The Docker engine side of the harness: the docker CLI, a fresh
//! cache-cold base image per test ([`BaseImage`]) and the cleanup of every
//! local image a test causes ([`LocalImages`]).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use super::{REPO_ROOT, unique_id};

/// Panics with a hint unless the Docker engine answers (checked once).
pub(crate) fn require_docker() {
    static UP: OnceLock<bool> = OnceLock::new();
    let up = *UP.get_or_init(|| {
        Command::new("docker")
            .args(["info", "--format", "{{.ServerVersion}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    assert!(
        up,
        "the Docker engine does not answer `docker info`: run `scripts/test setup` first"
    );
}

/// Runs the docker CLI; returns (success, stdout, stderr).
pub(crate) fn docker(args: &[&str]) -> (bool, String, String) {
    let out = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run the docker CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the docker CLI and returns its trimmed stdout; panics on failure.
pub(crate) fn docker_ok(args: &[&str]) -> String {
    let (ok, stdout, stderr) = docker(args);
    assert!(ok, "docker {} failed:\n{stderr}", args.join(" "));
    stdout.trim().to_owned()
}

/// `docker run --rm --network none IMAGE CMD...`, trimmed stdout.
pub(crate) fn docker_run(image: &str, cmd: &[&str]) -> String {
    let mut args = vec!["run", "--rm", "--network", "none", image];
    args.extend_from_slice(cmd);
    docker_ok(&args)
}

/// True if the engine has `reference` (tag or digest reference) locally.
pub(crate) fn local_image_exists(reference: &str) -> bool {
    docker(&["image", "inspect", reference]).0
}

// -------------------------------------------------------------- base image

/// A fresh import of the busybox test base image as
/// `stackbake-test/busybox:<unique>`: a new image id, so the engine's layer
/// cache is cold for the test that uses it. `docker rmi -f` of that tag on drop.
pub(crate) struct BaseImage {
    reference: String,
}

impl BaseImage {
    /// Imports a new copy (through `scripts/test import-base`).
    pub(crate) fn fresh() -> BaseImage {
        require_docker();
        let reference = format!("stackbake-test/busybox:{}", unique_id());
        let out = Command::new(Path::new(REPO_ROOT).join("scripts/test"))
            .args(["import-base", &reference])
            .stdin(Stdio::null())
            .output()
            .expect("cannot run scripts/test import-base");
        assert!(
            out.status.success(),
            "scripts/test import-base {reference} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        BaseImage { reference }
    }

    /// `stackbake-test/busybox:<unique>`, for `--build-arg BASE=`.
    pub(crate) fn reference(&self) -> &str {
        &self.reference
    }
}

impl Drop for BaseImage {
    /// Removes what the test's builds left on top of this base (stopped
    /// build containers, untagged intermediate and stage images: all
    /// descendants of this unique image, so nobody else's), then the base.
    fn drop(&mut self) {
        let (found, root, _) =
            docker(&["image", "inspect", "--format", "{{.Id}}", &self.reference]);
        if found {
            remove_descendants(root.trim(), &self.reference);
        }
        let _ = docker(&["rmi", "-f", &self.reference]);
    }
}

/// Removes the containers and images descending from image `root`.
fn remove_descendants(root: &str, reference: &str) {
    let ancestor = format!("ancestor={reference}");
    let (_, containers, _) = docker(&["ps", "-aq", "--no-trunc", "--filter", &ancestor]);
    let containers: Vec<&str> = containers.split_whitespace().collect();
    if !containers.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(containers);
        let _ = docker(&args);
    }
    // Leaves first: removing a leaf also removes its untagged parents.
    for _round in 0..10 {
        let (_, all, _) = docker(&["images", "-aq", "--no-trunc"]);
        let all: BTreeSet<&str> = all.split_whitespace().collect();
        if all.is_empty() {
            return;
        }
        let mut args = vec!["image", "inspect", "--format", "{{.Id}} {{.Parent}}"];
        args.extend(all.iter().copied());
        let (_, edges, _) = docker(&args);
        let edges: Vec<(&str, &str)> = edges.lines().filter_map(|l| l.split_once(' ')).collect();
        let mut descendants = BTreeSet::from([root]);
        loop {
            let before = descendants.len();
            for (id, parent) in &edges {
                if descendants.contains(parent) {
                    descendants.insert(id);
                }
            }
            if descendants.len() == before {
                break;
            }
        }
        descendants.remove(root);
        let leaves: Vec<&str> = descendants
            .iter()
            .copied()
            .filter(|d| {
                !edges
                    .iter()
                    .any(|(id, p)| p == d && descendants.contains(id))
            })
            .collect();
        if leaves.is_empty() {
            return;
        }
        let mut args = vec!["rmi", "-f"];
        args.extend(leaves);
        let _ = docker(&args);
    }
}

// ----------------------------------------------------------------- cleanup

/// Removes, on drop, every local image reference a test caused: repository
/// names under one of `prefixes` (e.g. `127.0.0.1:PORT/`), any reference
/// tagged `tag`, and any other tag of those same images. Never prunes.
pub(crate) struct LocalImages {
    prefixes: Vec<String>,
    tag: String,
}

impl LocalImages {
    /// Watches references tagged `tag` (unique to the test).
    pub(crate) fn new(tag: &str) -> LocalImages {
        LocalImages {
            prefixes: Vec::new(),
            tag: tag.to_owned(),
        }
    }

    /// Also watches every repository named `HOST:PORT/...`.
    pub(crate) fn watch_registry(&mut self, addr: &str) {
        self.prefixes.push(format!("{addr}/"));
    }

    /// The local references this guard would remove now.
    pub(crate) fn references(&self) -> Vec<String> {
        let (ok, listing, _) = docker(&[
            "images",
            "--digests",
            "--no-trunc",
            "--format",
            "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}",
        ]);
        if !ok {
            return Vec::new();
        }
        let rows: Vec<Vec<&str>> = listing
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .filter(|r| r.len() == 4)
            .collect();
        let ours = |r: &[&str]| {
            r[1] == self.tag || self.prefixes.iter().any(|p| r[0].starts_with(p.as_str()))
        };
        let ids: BTreeSet<&str> = rows.iter().filter(|r| ours(r)).map(|r| r[3]).collect();
        let mut refs = BTreeSet::new();
        for r in rows.iter().filter(|r| ours(r) || ids.contains(r[3])) {
            if r[0] == "<none>" {
                continue;
            }
            if r[1] != "<none>" {
                refs.insert(format!("{}:{}", r[0], r[1]));
            }
            if r[2] != "<none>" {
                refs.insert(format!("{}@{}", r[0], r[2]));
            }
        }
        refs.into_iter().collect()
    }
}

impl Drop for LocalImages {
    fn drop(&mut self) {
        let refs = self.references();
        if !refs.is_empty() {
            let mut args = vec!["rmi"];
            args.extend(refs.iter().map(String::as_str));
            let _ = docker(&args);
        }
    }
}

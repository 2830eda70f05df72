//! `--env-file PATH`: the run's result as `KEY=VALUE` lines, for CodeBuild
//! `exported-variables` (the buildspec sources the file) and GitHub's
//! `$GITHUB_OUTPUT`.
//!
//! - **Names.** `SB_COMMIT_TAG`, `SB_REGISTRY`, and per container
//!   `SB_<NAME>_IMAGE`, `SB_<NAME>_DIGEST`, `SB_<NAME>_ACTION`, where
//!   `<NAME>` is the container name upper-cased with every character but
//!   ASCII letters and digits as `_`. Containers whose names give the same
//!   `<NAME>` (`api-x`, `api_x`, `API-X`) each get `_` and the first hex
//!   digits of the SHA-256 of their exact name appended, as many as make
//!   every name distinct: deterministic, whatever order they come in. The
//!   `SB_` prefix keeps names off CodeBuild's reserved `CODEBUILD_` and
//!   unexportable `AWS_` prefixes, and gives names starting with a digit a
//!   letter first.
//! - **Values.** Image references, digests, tags and actions are written as
//!   they are when they hold only `A-Z a-z 0-9 _ . : / @ + -`, which the
//!   shell takes literally and `$GITHUB_OUTPUT` reads verbatim; anything
//!   else is single-quoted for the shell. No comment lines (the GitHub
//!   parser takes every line as an output).
//! - **Limits.** CodePipeline keeps at most [`PIPELINE_VARIABLES_LIMIT`]
//!   bytes of output variables per action (names and values together,
//!   "Variable quotas", CodePipeline quotas). A file larger than that is
//!   written, with a warning: the buildspec exports the variables it names,
//!   which may be fewer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use crate::artifact::{self, OutFile, Staged};
use crate::error::Error;
use crate::events::Event;
use crate::report::Report;

/// The prefix of every variable.
pub(crate) const PREFIX: &str = "SB_";

/// CodePipeline's limit on one action's output variables, names and values
/// together (bytes).
pub(crate) const PIPELINE_VARIABLES_LIMIT: usize = 122_880;

/// The file's text and its size as CodePipeline counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EnvFile {
    /// `KEY=VALUE` lines.
    pub(crate) text: String,
    /// Number of variables.
    pub(crate) variables: usize,
    /// Bytes of names and values together.
    pub(crate) bytes: usize,
}

/// The variables for `report`, in report order.
pub(crate) fn render(report: &Report) -> EnvFile {
    let mut vars: Vec<(String, String)> =
        vec![(format!("{PREFIX}COMMIT_TAG"), report.commit_tag.clone())];
    if let Some(registry) = &report.registry {
        vars.push((format!("{PREFIX}REGISTRY"), registry.clone()));
    }
    let containers: Vec<&str> = report
        .targets
        .iter()
        .map(|t| t.container.as_str())
        .chain(report.external.iter().map(|e| e.container.as_str()))
        .collect();
    let names = names(&containers);
    let mut per = |container: &str, image: &str, digest: &str, action: &str| {
        let base = names.get(container).cloned().unwrap_or_default();
        vars.push((format!("{base}_IMAGE"), image.to_string()));
        vars.push((format!("{base}_DIGEST"), digest.to_string()));
        vars.push((format!("{base}_ACTION"), action.to_string()));
    };
    for t in &report.targets {
        per(
            &t.container,
            t.image.as_deref().unwrap_or_default(),
            t.digest.as_deref().unwrap_or_default(),
            &t.action,
        );
    }
    for e in &report.external {
        per(&e.container, &e.image, "", "external");
    }
    let mut text = String::new();
    let mut bytes = 0;
    for (name, value) in &vars {
        bytes += name.len() + value.len();
        text.push_str(&format!("{name}={}\n", quote(value)));
    }
    EnvFile {
        text,
        variables: vars.len(),
        bytes,
    }
}

/// `--env-file` for `report`, if asked: staged under a temporary name,
/// with the event to send once [`Staged::commit`] put it in place.
pub(crate) fn prepare(
    path: Option<&Path>,
    report: &Report,
) -> Result<Option<(Staged, Event)>, Error> {
    let Some(path) = path else {
        return Ok(None);
    };
    let file = render(report);
    let staged = stage(path, &file)?;
    let event = Event::EnvFileWritten {
        path: path.to_path_buf(),
        variables: file.variables,
        bytes: file.bytes,
        over_limit: (file.bytes > PIPELINE_VARIABLES_LIMIT).then_some(PIPELINE_VARIABLES_LIMIT),
    };
    Ok(Some((staged, event)))
}

/// Writes `file` to `path` under a temporary name (in its directory,
/// created if missing); [`Staged::commit`] renames it into place.
pub(crate) fn stage(path: &Path, file: &EnvFile) -> Result<Staged, Error> {
    let (dir, name) = split(path)?;
    let out = OutFile {
        name,
        content: file.text.clone().into_bytes(),
    };
    Ok(artifact::stage(&dir, vec![out])?)
}

/// `path`'s directory (`.` when it has none) and file name.
fn split(path: &Path) -> Result<(PathBuf, String), Error> {
    let name = path.file_name().and_then(|n| n.to_str()).ok_or_else(|| {
        Error::Usage(format!(
            "--env-file {}: not a file name stackbake can write",
            path.display()
        ))
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((dir, name.to_string()))
}

/// The variable base (`SB_<NAME>`) of each container (see the module docs).
pub(crate) fn names(containers: &[&str]) -> BTreeMap<String, String> {
    let plain = |c: &str| -> String {
        let upper: String = c
            .chars()
            .map(|ch| {
                if ch.is_ascii_alphanumeric() {
                    ch.to_ascii_uppercase()
                } else {
                    '_'
                }
            })
            .collect();
        format!("{PREFIX}{upper}")
    };
    let mut unique: Vec<&str> = containers.to_vec();
    unique.sort_unstable();
    unique.dedup();
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    let mut digits = 0;
    loop {
        let mut by_base: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        for c in &unique {
            by_base.entry(plain(c)).or_default().push(c);
        }
        out.clear();
        for (base, members) in &by_base {
            for c in members {
                let name = if members.len() == 1 || digits == 0 {
                    base.clone()
                } else {
                    let hash = hex::encode(Sha256::digest(c.as_bytes())).to_ascii_uppercase();
                    format!("{base}_{}", &hash[..digits])
                };
                out.insert((*c).to_string(), name);
            }
        }
        let mut taken: Vec<&String> = out.values().collect();
        taken.sort_unstable();
        taken.dedup();
        if taken.len() == out.len() || digits >= 64 {
            return out;
        }
        digits = if digits == 0 { 8 } else { (digits * 2).min(64) };
    }
}

/// `value` as the shell reads it literally (see the module docs).
pub(crate) fn quote(value: &str) -> String {
    let literal = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_.:/@+-".contains(c));
    if literal {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{ExternalReport, TargetReport};

    fn target(container: &str, n: u8) -> TargetReport {
        let digest = format!("sha256:{}", hex::encode([n; 32]));
        TargetReport {
            container: container.to_string(),
            target: "api".to_string(),
            repository: "shop-api".to_string(),
            action: "built".to_string(),
            reason: None,
            fingerprint: None,
            image: Some(format!("127.0.0.1:5000/shop-api@{digest}")),
            digest: Some(digest),
            tags: vec!["abc1234".to_string()],
            seconds: 1.0,
            bytes_pushed: 0,
        }
    }

    fn report(containers: &[&str]) -> Report {
        Report {
            schema_version: 1,
            commit_tag: "abc1234".to_string(),
            registry: Some("127.0.0.1:5000".to_string()),
            targets: containers
                .iter()
                .enumerate()
                .map(|(i, c)| target(c, i as u8))
                .collect(),
            external: vec![ExternalReport {
                container: "log-router".to_string(),
                image: "public.ecr.aws/aws-observability/aws-for-fluent-bit:stable".to_string(),
            }],
            shard: None,
        }
    }

    /// `bash -c 'source FILE; printf ...'` for every variable of `file`.
    fn sourced(file: &EnvFile) -> BTreeMap<String, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("env");
        std::fs::write(&path, &file.text).expect("write");
        let names: Vec<&str> = file
            .text
            .lines()
            .filter_map(|l| l.split_once('=').map(|(n, _)| n))
            .collect();
        let script = format!(
            "set -eu; source {}; for n in {}; do printf '%s=%s\\0' \"$n\" \"${{!n}}\"; done",
            path.display(),
            names.join(" ")
        );
        let out = std::process::Command::new("bash")
            .args(["-c", &script])
            .output()
            .expect("bash");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("utf8")
            .split('\0')
            .filter_map(|kv| {
                kv.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect()
    }

    #[test]
    fn every_container_gets_its_image_digest_and_action() {
        let r = report(&["bash-dog-api", "nginx"]);
        let file = render(&r);
        let vars = sourced(&file);
        assert_eq!(vars["SB_COMMIT_TAG"], "abc1234");
        assert_eq!(vars["SB_REGISTRY"], "127.0.0.1:5000");
        assert_eq!(
            Some(&vars["SB_BASH_DOG_API_IMAGE"]),
            r.targets[0].image.as_ref()
        );
        assert_eq!(Some(&vars["SB_NGINX_DIGEST"]), r.targets[1].digest.as_ref());
        assert_eq!(vars["SB_NGINX_ACTION"], "built");
        assert_eq!(vars["SB_LOG_ROUTER_ACTION"], "external");
        assert_eq!(vars["SB_LOG_ROUTER_DIGEST"], "");
        assert_eq!(file.variables, vars.len());
        assert!(
            file.text
                .lines()
                .all(|l| !l.starts_with('#') && l.contains('='))
        );
        // Image references need no quotes: the lines are $GITHUB_OUTPUT's too.
        assert!(!file.text.contains('\''), "{}", file.text);
    }

    #[test]
    fn names_that_clash_are_told_apart_the_same_way_every_time() {
        let containers = ["api-x", "api_x", "API-X", "web", "9lives", "weird$name"];
        let a = names(&containers);
        let mut reversed = containers;
        reversed.reverse();
        assert_eq!(a, names(&reversed), "order does not matter");
        let mut values: Vec<&String> = a.values().collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), containers.len(), "{a:?}");
        assert_eq!(a["web"], "SB_WEB", "a name that clashes with none is plain");
        assert_eq!(a["9lives"], "SB_9LIVES");
        assert_eq!(a["weird$name"], "SB_WEIRD_NAME");
        for c in ["api-x", "api_x", "API-X"] {
            assert!(
                a[c].starts_with("SB_API_X_") && a[c].len() == "SB_API_X_".len() + 8,
                "{}",
                a[c]
            );
        }
        // A name that looks like a disambiguated one does not collide.
        let tricky = format!("api_x_{}", &a["api-x"]["SB_API_X_".len()..]);
        let b = names(&["api-x", "api_x", tricky.as_str()]);
        let mut values: Vec<&String> = b.values().collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values.len(), 3, "{b:?}");
        let vars = sourced(&render(&report(&containers)));
        assert_eq!(vars.len(), 2 + 3 * (containers.len() + 1));
    }

    #[test]
    fn values_the_shell_would_read_are_quoted() {
        for v in [
            "",
            "plain-1.2_3:x/y@z+w",
            "it's",
            "$(rm -rf /)",
            "a b",
            "`x`",
            "x\"y",
        ] {
            let file = EnvFile {
                text: format!("V={}\n", quote(v)),
                variables: 1,
                bytes: 0,
            };
            assert_eq!(sourced(&file)["V"], v, "{v:?}");
        }
    }

    #[test]
    fn a_hundred_services_fit_codepipelines_limit() {
        let containers: Vec<String> = (0..100).map(|i| format!("service-number-{i:03}")).collect();
        let refs: Vec<&str> = containers.iter().map(String::as_str).collect();
        let file = render(&report(&refs));
        assert!(file.bytes < PIPELINE_VARIABLES_LIMIT, "{}", file.bytes);
    }
}

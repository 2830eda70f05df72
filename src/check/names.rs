//! File-name rules (`names/…`): files in the project directory whose names
//! are near-misses of the exact names CodeBuild (`buildspec.yml`) and
//! CodePipeline's ECS blue/green action (`taskdef.json`, `appspec.yaml`)
//! read by default — `appspec.yml`, `AppSpec.yaml`, `appsec.yml`,
//! `buildspec.yaml`, `taskDef.json`, `task-definition.json`.

use std::path::Path;

use super::finding::{Finding, Severity};

/// A name the pipeline reads by default, with the extensions a near-miss may use.
struct Canonical {
    name: &'static str,
    stem: &'static str,
    exts: &'static [&'static str],
    aliases: &'static [&'static str],
    reader: &'static str,
}

const CANONICAL: [Canonical; 3] = [
    Canonical {
        name: "appspec.yaml",
        stem: "appspec",
        exts: &["yaml", "yml"],
        aliases: &["app-spec", "app_spec"],
        reader: "CodePipeline's ECS blue/green deploy action",
    },
    Canonical {
        name: "buildspec.yml",
        stem: "buildspec",
        exts: &["yaml", "yml"],
        aliases: &["build-spec", "build_spec"],
        reader: "CodeBuild",
    },
    Canonical {
        name: "taskdef.json",
        stem: "taskdef",
        exts: &["json"],
        aliases: &[
            "task-def",
            "task_def",
            "taskdefinition",
            "task-definition",
            "task_definition",
        ],
        reader: "CodePipeline's ECS blue/green deploy action",
    },
];

/// Edit distance between two short strings.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The canonical name `file` is a near-miss of, if any.
fn near_miss(file: &str) -> Option<&'static Canonical> {
    let lower = file.to_lowercase();
    let (stem, ext) = lower.rsplit_once('.')?;
    CANONICAL.iter().find(|c| {
        file != c.name
            && c.exts.contains(&ext)
            && (stem == c.stem || c.aliases.contains(&stem) || distance(stem, c.stem) <= 2)
    })
}

/// Reports near-miss names in `dir`. `configured` are the file names the
/// user pointed stackbake at (not flagged). Returns the canonical names that
/// have a near-miss, so the caller can skip a redundant "missing" finding.
pub(crate) fn rules(dir: &Path, configured: &[&str], out: &mut Vec<Finding>) -> Vec<&'static str> {
    let mut hit = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hit;
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    for file in &names {
        if configured.contains(&file.as_str()) {
            continue;
        }
        let Some(c) = near_miss(file) else { continue };
        let present = names.iter().any(|n| n == c.name);
        let (severity, message) = if present {
            (
                Severity::Warning,
                format!(
                    "`{file}` sits next to `{}`: a near-miss of the name {} reads, so one of them is ignored",
                    c.name, c.reader
                ),
            )
        } else {
            hit.push(c.name);
            (
                Severity::Error,
                format!(
                    "`{file}` is not `{}`: {} reads `{}` by default and will not find this file",
                    c.name, c.reader, c.name
                ),
            )
        };
        out.push(Finding::new(
            file,
            (1, 1),
            severity,
            "names/near-miss",
            message,
            if present {
                format!("delete `{file}` or merge it into `{}`", c.name)
            } else {
                format!("rename it: mv {file} {}", c.name)
            },
        ));
    }
    hit
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_are_recognised() {
        for (f, c) in [
            ("appspec.yml", "appspec.yaml"),
            ("AppSpec.yaml", "appspec.yaml"),
            ("appsec.yml", "appspec.yaml"),
            ("buildspec.yaml", "buildspec.yml"),
            ("BuildSpec.yml", "buildspec.yml"),
            ("taskDef.json", "taskdef.json"),
            ("task-definition.json", "taskdef.json"),
            ("taskdefs.json", "taskdef.json"),
        ] {
            assert_eq!(near_miss(f).map(|c| c.name), Some(c), "{f}");
        }
        for f in [
            "appspec.yaml",
            "buildspec.yml",
            "taskdef.json",
            "Dockerfile",
            "imageDetail.json",
            "package.json",
            "docker-compose.yml",
            "README.md",
        ] {
            assert!(near_miss(f).is_none(), "{f}");
        }
    }
}

//! Rules on CodeBuild's `buildspec.yml` (`buildspec/…`): `version: 0.2`, a
//! command that runs `stackbake build`, and artifacts that include the task
//! definition, the appspec and (for a load-balanced blue/green deployment)
//! `imageDetail.json`.

use serde_yaml::Value;

use super::finding::{Finding, Severity};
use super::locate::YamlLocator;
use crate::taskdef::appspec::yaml_syntax;

/// What the artifact must contain.
pub(crate) struct Expected<'a> {
    /// File names of the task definitions (`taskdef.json`).
    pub taskdefs: &'a [&'a str],
    /// File name of the appspec (`appspec.yaml`).
    pub appspec: &'a str,
    /// Whether `imageDetail.json` is expected too.
    pub image_detail: bool,
}

/// `*` and `?` glob match of a whole name (`**/` prefixes match any directory).
fn glob(pattern: &str, name: &str) -> bool {
    let mut pattern = pattern.trim().trim_start_matches("./");
    while let Some(rest) = pattern.strip_prefix("**/") {
        pattern = rest;
    }
    if pattern == "**" {
        return true;
    }
    crate::policies::wildcard_matches(pattern, name)
}

/// Every command string under `phases.<phase>.commands` (and `finally`).
fn commands(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let Some(phases) = doc.get("phases").and_then(Value::as_mapping) else {
        return out;
    };
    for (_, phase) in phases {
        for key in ["commands", "finally"] {
            if let Some(list) = phase.get(key).and_then(Value::as_sequence) {
                out.extend(list.iter().filter_map(Value::as_str).map(str::to_owned));
            }
        }
    }
    out
}

/// Whether a shell command runs `stackbake build` (any path to the binary).
fn runs_build(command: &str) -> bool {
    let words: Vec<&str> = command.split_whitespace().collect();
    words
        .windows(2)
        .any(|w| (w[0] == "stackbake" || w[0].ends_with("/stackbake")) && w[1] == "build")
}

/// What the other rules need to know of the buildspec.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Facts {
    /// A command runs `stackbake build`.
    pub(crate) runs_build: bool,
    /// That build pulls through a mirror (`--mirror`, or `STACKBAKE_MIRROR`
    /// among the buildspec's environment).
    pub(crate) mirror: bool,
    /// That build creates missing repositories (`--create-repos`, or
    /// `STACKBAKE_CREATE_REPOS`).
    pub(crate) create_repos: bool,
}

/// Whether the buildspec gives the build the setting `--<flag>` (on a
/// `stackbake build` command) or `STACKBAKE_<FLAG>` (in `env`).
fn has_setting(doc: &Value, flag: &str) -> bool {
    let var = format!("STACKBAKE_{}", flag.to_ascii_uppercase().replace('-', "_"));
    let in_env = [
        "variables",
        "parameter-store",
        "secrets-manager",
        "exported-variables",
    ]
    .iter()
    .filter_map(|k| doc.get("env").and_then(|e| e.get(*k)))
    .any(|section| match section {
        Value::Mapping(m) => m.keys().any(|k| k.as_str() == Some(var.as_str())),
        Value::Sequence(l) => l.iter().any(|v| v.as_str() == Some(var.as_str())),
        _ => false,
    });
    let option = format!("--{flag}");
    in_env
        || commands(doc)
            .iter()
            .flat_map(|c| c.lines().map(str::to_owned).collect::<Vec<_>>())
            .any(|l| runs_build(&l) && l.split_whitespace().any(|w| w.starts_with(&option)))
}

/// Runs the buildspec rules.
pub(crate) fn rules(
    file: &str,
    text: &str,
    expected: &Expected<'_>,
    out: &mut Vec<Finding>,
) -> Facts {
    let Some(doc) = mapping(file, text, out) else {
        return Facts::default();
    };
    let loc = YamlLocator::new(text);
    version(file, &doc, &loc, out);
    super::batch_rules::rules(file, &doc, &loc, out);
    let facts = Facts {
        runs_build: commands(&doc).iter().any(|c| c.lines().any(runs_build)),
        mirror: has_setting(&doc, "mirror"),
        create_repos: has_setting(&doc, "create-repos"),
    };
    if !facts.runs_build {
        out.push(Finding::new(
            file,
            position(&loc, "phases"),
            Severity::Error,
            "buildspec/no-stackbake-build",
            "no command of the buildspec runs `stackbake build`",
            "add `- stackbake build` to `phases.build.commands`",
        ));
    }
    missing_artifacts(file, &doc, &loc, expected, out);
    facts
}

/// Where `path` is, or the top of the file when it is absent.
fn position(loc: &YamlLocator, path: &str) -> (usize, usize) {
    if loc.has(path) { loc.at(path) } else { (1, 1) }
}

/// The buildspec as YAML, when it is a mapping (`buildspec/invalid-yaml`,
/// `buildspec/structure` otherwise).
fn mapping(file: &str, text: &str, out: &mut Vec<Finding>) -> Option<Value> {
    let doc: Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (location, message) = yaml_syntax(&e);
            out.push(Finding::invalid_yaml(
                file,
                "buildspec/invalid-yaml",
                "buildspec",
                location,
                &message,
            ));
            return None;
        }
    };
    if !doc.is_mapping() {
        out.push(Finding::new(
            file,
            (1, 1),
            Severity::Error,
            "buildspec/structure",
            "the buildspec is not a mapping",
            "start from `version: 0.2`, `phases:` and `artifacts:`",
        ));
        return None;
    }
    Some(doc)
}

/// `buildspec/version`: the version is 0.2.
fn version(file: &str, doc: &Value, loc: &YamlLocator, out: &mut Vec<Finding>) {
    let version_ok = match doc.get("version") {
        Some(Value::Number(n)) => n.as_f64() == Some(0.2),
        Some(Value::String(s)) => s == "0.2",
        _ => false,
    };
    if !version_ok {
        out.push(Finding::new(
            file,
            position(loc, "version"),
            Severity::Error,
            "buildspec/version",
            match doc.get("version") {
                None => "buildspec `version` is missing".to_owned(),
                Some(v) => format!(
                    "buildspec `version` is {}, expected 0.2",
                    serde_yaml::to_string(v).unwrap_or_default().trim()
                ),
            },
            "write `version: 0.2` (0.1 runs each command in a separate shell)",
        ));
    }
}

/// `buildspec/missing-artifact`: every task definition, the appspec and
/// (when load-balanced) `imageDetail.json` are under `artifacts.files`.
fn missing_artifacts(
    file: &str,
    doc: &Value,
    loc: &YamlLocator,
    expected: &Expected<'_>,
    out: &mut Vec<Finding>,
) {
    let files: Vec<&str> = doc
        .get("artifacts")
        .and_then(|a| a.get("files"))
        .and_then(Value::as_sequence)
        .map(|l| l.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let at = if loc.has("artifacts.files") {
        loc.at("artifacts.files")
    } else {
        position(loc, "artifacts")
    };
    let mut wanted: Vec<(&str, Severity)> = expected
        .taskdefs
        .iter()
        .map(|t| (*t, Severity::Error))
        .collect();
    wanted.push((expected.appspec, Severity::Error));
    if expected.image_detail {
        wanted.push(("imageDetail.json", Severity::Warning));
    }
    for (name, severity) in wanted {
        if !files.iter().any(|p| glob(p, name)) {
            out.push(Finding::new(
                file,
                at,
                severity,
                "buildspec/missing-artifact",
                format!("the build artifact does not include `{name}`"),
                format!("list `{name}` under `artifacts.files`; the deploy stage reads it from the artifact"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matching() {
        assert!(glob("taskdef.json", "taskdef.json"));
        assert!(glob("**/*", "taskdef.json"));
        assert!(glob("*.json", "taskdef.json"));
        assert!(glob("./task?ef.json", "taskdef.json"));
        assert!(!glob("*.yaml", "taskdef.json"));
        assert!(!glob("taskdef.jso", "taskdef.json"));
    }

    #[test]
    fn a_mirror_is_found_on_the_command_or_in_env() {
        let has_mirror = |d: &Value| has_setting(d, "mirror");
        let doc = |t: &str| serde_yaml::from_str::<Value>(t).expect("yaml");
        assert!(!has_mirror(&doc(
            "phases:\n  build:\n    commands:\n      - stackbake build\n"
        )));
        assert!(has_mirror(&doc(
            "phases:\n  build:\n    commands:\n      - ./stackbake build --mirror docker.io=r/p\n"
        )));
        assert!(has_mirror(&doc(
            "env:\n  variables:\n    STACKBAKE_MIRROR: docker.io=r/p\nphases: {}\n"
        )));
        assert!(has_mirror(&doc(
            "env:\n  parameter-store:\n    STACKBAKE_MIRROR: /ci/mirror\nphases: {}\n"
        )));
        let creates =
            doc("phases:\n  build:\n    commands:\n      - stackbake build --create-repos\n");
        assert!(has_setting(&creates, "create-repos"));
        assert!(!has_setting(&creates, "mirror"));
    }

    #[test]
    fn build_command_detection() {
        assert!(runs_build("stackbake build"));
        assert!(runs_build("./bin/stackbake build --jobs 2"));
        assert!(!runs_build("stackbake plan"));
        assert!(!runs_build("echo stackbake"));
    }
}

//! `stackbake check`: an offline lint of the four hand-edited files of an ECS
//! blue/green pipeline (Dockerfile, taskdef.json, appspec.yaml,
//! buildspec.yml) that finds in milliseconds what would otherwise fail a
//! ten-minute build or a deployment. Each rule has a stable kebab-case id
//! grouped by prefix (`names/`, `appspec/`, `taskdef/`, `network/`,
//! `secrets/`, `placeholder/`, `stages/`, `buildspec/`, and `engine/` when
//! a Docker engine answers); findings carry
//! `file:line:col`, a severity, a one-line message and a `help:` line.
//! `build` runs the same checks first and refuses to start on any error.
//!
//! Rule ids: see `RULES` (the list the tests check every rule against).

mod appspec_rules;
mod batch_rules;
mod buildspec_rules;
mod dialect_rules;
mod dockerfile_rules;
mod finding;
mod limits_rules;
mod locate;
mod names;
mod network_rules;
mod placeholder_rules;
mod policy_rules;
mod secrets_rules;
mod taskdef_rules;

#[cfg(test)]
mod batch_tests;
#[cfg(test)]
mod secrets_tests;
#[cfg(test)]
mod stages_tests;
#[cfg(test)]
mod taskdef_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use taskdef_rules::Td;

pub(crate) use finding::{Finding, Severity, render_human, render_json};

/// Every rule id `check` can report, with its default severity.
#[cfg(test)]
pub(crate) const RULES: &[(&str, Severity)] = &[
    ("names/missing-file", Severity::Error),
    ("names/unreadable", Severity::Error),
    ("names/near-miss", Severity::Error),
    ("appspec/invalid-yaml", Severity::Error),
    ("appspec/structure", Severity::Error),
    ("appspec/version", Severity::Error),
    ("appspec/one-ecs-service", Severity::Error),
    ("appspec/task-definition-placeholder", Severity::Error),
    ("appspec/lb-container", Severity::Error),
    ("appspec/lb-port", Severity::Error),
    ("taskdef/invalid-json", Severity::Error),
    ("taskdef/structure", Severity::Error),
    ("taskdef/describe-output", Severity::Error),
    ("taskdef/duplicate-container-name", Severity::Error),
    ("taskdef/output-only-field", Severity::Error),
    ("taskdef/fargate-network-mode", Severity::Error),
    ("taskdef/fargate-cpu-memory", Severity::Error),
    ("taskdef/execution-role-required", Severity::Error),
    ("taskdef/unknown-container-ref", Severity::Error),
    ("taskdef/no-essential-container", Severity::Error),
    ("taskdef/too-many-image-placeholders", Severity::Error),
    ("taskdef/invalid-image", Severity::Error),
    ("taskdef/too-many-containers", Severity::Error),
    ("network/duplicate-port", Severity::Error),
    ("network/host-port-mismatch", Severity::Error),
    ("network/links-awsvpc", Severity::Error),
    ("network/container-hostname", Severity::Warning),
    ("secrets/malformed-arn", Severity::Error),
    ("secrets/json-key-colons", Severity::Error),
    ("secrets/missing-suffix", Severity::Warning),
    ("secrets/json-key-mismatch", Severity::Warning),
    ("secrets/other-region-or-account", Severity::Warning),
    ("placeholder/example-account", Severity::Warning),
    ("placeholder/example-value", Severity::Warning),
    ("placeholder/inconsistent-account-region", Severity::Warning),
    ("placeholder/todo", Severity::Warning),
    ("stages/invalid-dockerfile", Severity::Error),
    ("stages/duplicate-name", Severity::Error),
    ("stages/unmapped-container", Severity::Error),
    ("stages/repository-pattern", Severity::Warning),
    ("stages/docker-hub-without-mirror", Severity::Warning),
    ("policies/invalid-json", Severity::Error),
    ("policies/structure", Severity::Error),
    ("policies/iam-missing-action", Severity::Warning),
    ("policies/iam-too-broad", Severity::Warning),
    ("policies/lifecycle-structure", Severity::Error),
    ("policies/lifecycle-expires-fingerprints", Severity::Warning),
    ("stages/variable-in-from", Severity::Warning),
    ("stages/needs-newer-engine", Severity::Warning),
    ("buildspec/invalid-yaml", Severity::Error),
    ("buildspec/structure", Severity::Error),
    ("buildspec/version", Severity::Error),
    ("buildspec/no-stackbake-build", Severity::Error),
    ("buildspec/missing-artifact", Severity::Error),
    ("buildspec/batch-identifier", Severity::Error),
    ("buildspec/batch-depend-on", Severity::Error),
    ("buildspec/batch-shards", Severity::Error),
    ("buildspec/batch-assemble", Severity::Error),
    ("buildspec/batch-ignore-failure", Severity::Warning),
    ("engine/unsupported", Severity::Error),
];

/// The files `check` reads, all resolved (joined to `dir` already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProjectFiles {
    /// The project root.
    pub dir: PathBuf,
    /// The Dockerfile.
    pub dockerfile: PathBuf,
    /// The ECS task definition (the first `--taskdef`, the appspec's).
    pub taskdef: PathBuf,
    /// Further task definitions (`--taskdef` repeated), pinned from the
    /// same build.
    pub extra_taskdefs: Vec<PathBuf>,
    /// The CodeDeploy appspec.
    pub appspec: PathBuf,
    /// CodeBuild's buildspec (optional: a missing one is not a finding).
    pub buildspec: PathBuf,
}

impl ProjectFiles {
    /// The files named by the common flags, resolved against `--dir`;
    /// the buildspec is always `DIR/buildspec.yml`.
    pub(crate) fn from_args(args: &crate::cli::CommonArgs) -> Self {
        let mut taskdefs = args.taskdef.iter().map(|t| args.dir.join(t));
        Self {
            dir: args.dir.clone(),
            dockerfile: args.dir.join(&args.dockerfile),
            taskdef: taskdefs
                .next()
                .unwrap_or_else(|| args.dir.join("taskdef.json")),
            extra_taskdefs: taskdefs.collect(),
            appspec: args.dir.join(&args.appspec),
            buildspec: args.dir.join("buildspec.yml"),
        }
    }
}

/// What the engine in reach cannot run (`engine/unsupported`): the same
/// rules `build` applies before building, over every stage. Required
/// secrets are not checked here (`check` is not given them).
pub(crate) fn engine_findings(
    files: &ProjectFiles,
    caps: &crate::build::capabilities::Capabilities,
) -> Vec<Finding> {
    let Ok(text) = std::fs::read_to_string(&files.dockerfile) else {
        return Vec::new();
    };
    let Ok(df) = crate::dockerfile::parse(&text) else {
        return Vec::new();
    };
    let stages: Vec<usize> = (0..df.stages.len()).collect();
    let all_secrets = df
        .stages
        .iter()
        .flat_map(|s| &s.instructions)
        .flat_map(crate::build::capabilities::secret_mounts)
        .map(|(id, _)| id)
        .collect();
    let file = shown(&files.dir, &files.dockerfile);
    crate::build::capabilities::refusals(&df, &stages, caps, &all_secrets)
        .into_iter()
        .map(|r| {
            Finding::new(
                &file,
                (r.line, 1),
                Severity::Error,
                "engine/unsupported",
                format!("`{}`: {}", r.instruction, r.problem),
                r.fix,
            )
        })
        .collect()
}

/// Whether any finding is an error (`check` exits 2, `build` refuses to start).
pub(crate) fn has_errors(findings: &[Finding]) -> bool {
    findings.iter().any(|f| f.severity == Severity::Error)
}

/// `path` as shown in findings: relative to `dir` when inside it.
fn shown(dir: &Path, path: &Path) -> String {
    path.strip_prefix(dir)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// Reads one file. `Ok(None)` when it does not exist.
fn read(shown: &str, path: &Path, out: &mut Vec<Finding>) -> Option<String> {
    match std::fs::read(path) {
        Ok(bytes) => match String::from_utf8(bytes) {
            Ok(text) => Some(text),
            Err(_) => {
                out.push(Finding::new(
                    shown,
                    (1, 1),
                    Severity::Error,
                    "names/unreadable",
                    format!("`{shown}` is not UTF-8 text"),
                    "save it as UTF-8",
                ));
                None
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            out.push(Finding::new(
                shown,
                (1, 1),
                Severity::Error,
                "names/unreadable",
                format!("cannot read `{shown}`: {e}"),
                "check the path and its permissions",
            ));
            None
        }
    }
}

fn missing(shown: &str, what: &str, out: &mut Vec<Finding>) {
    out.push(Finding::new(
        shown,
        (1, 1),
        Severity::Error,
        "names/missing-file",
        format!("{what} `{shown}` does not exist"),
        "create it (`stackbake init` writes starters) or point at it with --dockerfile/--taskdef/--appspec/--dir",
    ));
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

/// Runs every rule over the project's files. Never panics; missing,
/// unreadable or malformed files are findings.
pub(crate) fn check(files: &ProjectFiles) -> Vec<Finding> {
    check_with(files, &[], None, &std::collections::BTreeMap::new())
}

/// [`check`] as `build`/`plan` run it: `targets` are the parsed
/// `--target CONTAINER=STAGE` flags, `registry` the `--registry` override
/// and `build_args` the `--build-arg`s, so the rules map containers and
/// expand the Dockerfile exactly as the build will.
pub(crate) fn check_with(
    files: &ProjectFiles,
    targets: &[(String, String)],
    registry: Option<&str>,
    build_args: &std::collections::BTreeMap<String, String>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    let reader = Reader::new(files, &mut out);
    let dockerfile = reader.dockerfile(build_args, &mut out);
    let tds = reader.taskdefs(&mut out);
    let stages = Stages {
        dockerfile: dockerfile.as_ref(),
        targets,
        registry,
    };
    taskdefs(&tds, &stages, &mut out);
    let mut repositories: Vec<String> = tds.iter().flatten().flat_map(ecr_repositories).collect();
    repositories.sort();
    repositories.dedup();
    let td = tds.into_iter().next().flatten();
    let info = reader.appspec(td.as_ref(), &mut out);
    let facts = reader.buildspec(info, dockerfile.as_ref(), &mut out);
    policy_files(files, &repositories, facts.create_repos, &mut out);
    out
}

/// Reads the project's files, reporting the missing ones that have no
/// near-miss name.
struct Reader<'a> {
    /// The files.
    files: &'a ProjectFiles,
    /// The configured names a near-miss file was found for.
    near: Vec<&'static str>,
}

impl<'a> Reader<'a> {
    /// Runs the `names/` rules first.
    fn new(files: &'a ProjectFiles, out: &mut Vec<Finding>) -> Self {
        let mut configured = vec![file_name(&files.appspec), file_name(&files.buildspec)];
        configured.extend(files.taskdefs().map(|p| file_name(p)));
        let near = names::rules(&files.dir, &configured, out);
        Self { files, near }
    }

    /// Whether `p` is missing with no near-miss name reported for it.
    fn is_missing(&self, p: &Path) -> bool {
        !p.exists() && !self.near.contains(&file_name(p))
    }

    /// The Dockerfile, parsed, with its syntax and dialect rules run.
    fn dockerfile(
        &self,
        build_args: &std::collections::BTreeMap<String, String>,
        out: &mut Vec<Finding>,
    ) -> Option<crate::dockerfile::Dockerfile> {
        let files = self.files;
        let df_name = shown(&files.dir, &files.dockerfile);
        match read(&df_name, &files.dockerfile, out) {
            Some(text) => {
                let df = dockerfile_rules::parse(&df_name, &text, out);
                if let Some(df) = &df {
                    dialect_rules::rules(&df_name, df, build_args, out);
                }
                df
            }
            None => {
                if self.is_missing(&files.dockerfile) {
                    missing(&df_name, "the Dockerfile", out);
                }
                None
            }
        }
    }

    /// Every task definition, parsed (`None` for one missing or not JSON).
    fn taskdefs(&self, out: &mut Vec<Finding>) -> Vec<Option<Td>> {
        let mut tds = Vec::new();
        for path in self.files.taskdefs() {
            let name = shown(&self.files.dir, path);
            match read(&name, path, out) {
                Some(text) => tds.push(taskdef_rules::parse(&name, &text, out)),
                None => {
                    if self.is_missing(path) {
                        missing(&name, "the task definition", out);
                    }
                    tds.push(None);
                }
            }
        }
        tds
    }

    /// The appspec rules (against the first task definition `td`).
    fn appspec(
        &self,
        td: Option<&Td>,
        out: &mut Vec<Finding>,
    ) -> Option<appspec_rules::AppspecInfo> {
        let files = self.files;
        let as_name = shown(&files.dir, &files.appspec);
        match read(&as_name, &files.appspec, out) {
            Some(text) => {
                let info = appspec_rules::rules(&as_name, &text, td, out);
                placeholder_rules::yaml(&as_name, &text, out);
                Some(info)
            }
            None => {
                if self.is_missing(&files.appspec) {
                    missing(&as_name, "the appspec", out);
                }
                None
            }
        }
    }

    /// The buildspec rules, when there is one, and what they learnt.
    fn buildspec(
        &self,
        info: Option<appspec_rules::AppspecInfo>,
        dockerfile: Option<&crate::dockerfile::Dockerfile>,
        out: &mut Vec<Finding>,
    ) -> buildspec_rules::Facts {
        let files = self.files;
        let bs_name = shown(&files.dir, &files.buildspec);
        let mut facts = buildspec_rules::Facts::default();
        if let Some(text) = read(&bs_name, &files.buildspec, out) {
            let taskdefs: Vec<&str> = files.taskdefs().map(|p| file_name(p)).collect();
            let expected = buildspec_rules::Expected {
                taskdefs: &taskdefs,
                appspec: file_name(&files.appspec),
                image_detail: info.is_some_and(|i| i.load_balanced),
            };
            facts = buildspec_rules::rules(&bs_name, &text, &expected, out);
            placeholder_rules::yaml(&bs_name, &text, out);
            if facts.runs_build
                && !facts.mirror
                && let Some(df) = dockerfile
            {
                let df_name = shown(&files.dir, &files.dockerfile);
                dockerfile_rules::docker_hub_without_mirror(&df_name, df, out);
            }
        }
        facts
    }
}

/// What maps a task definition's containers to the Dockerfile's stages.
struct Stages<'a> {
    /// The Dockerfile, when it parsed.
    dockerfile: Option<&'a crate::dockerfile::Dockerfile>,
    /// The `--target CONTAINER=STAGE` flags.
    targets: &'a [(String, String)],
    /// The `--registry` override.
    registry: Option<&'a str>,
}

/// The rules on every parsed task definition, each with the `--target`
/// flags that apply to it.
fn taskdefs(tds: &[Option<Td>], stages: &Stages<'_>, out: &mut Vec<Finding>) {
    let everywhere: Vec<String> = tds.iter().flatten().flat_map(Td::names).collect();
    for (i, td) in tds.iter().enumerate() {
        let Some(td) = td else { continue };
        // A --target applies to the task definitions with that container; one
        // naming a container of none is reported with the first.
        let names = td.names();
        let mine: Vec<(String, String)> = stages
            .targets
            .iter()
            .filter(|(c, _)| names.contains(c) || (i == 0 && !everywhere.contains(c)))
            .cloned()
            .collect();
        taskdef(td, stages.dockerfile, &mine, stages.registry, out);
    }
}

/// The IAM and lifecycle policy rules, on the files that exist.
fn policy_files(
    files: &ProjectFiles,
    repositories: &[String],
    create_repos: bool,
    out: &mut Vec<Finding>,
) {
    let iam = files.dir.join(crate::policies::IAM_POLICY_FILE);
    if let Some(text) = read(crate::policies::IAM_POLICY_FILE, &iam, out) {
        policy_rules::iam(
            crate::policies::IAM_POLICY_FILE,
            &text,
            repositories,
            create_repos,
            out,
        );
    }
    let lifecycle = files.dir.join(crate::policies::LIFECYCLE_POLICY_FILE);
    if let Some(text) = read(crate::policies::LIFECYCLE_POLICY_FILE, &lifecycle, out) {
        policy_rules::lifecycle(crate::policies::LIFECYCLE_POLICY_FILE, &text, out);
    }
}

/// The task definition's ECR repositories, as ARNs.
fn ecr_repositories(td: &taskdef_rules::Td) -> Vec<String> {
    let mut out: Vec<String> = td
        .containers()
        .iter()
        .filter_map(|c| {
            let r = crate::reference::ImageRef::parse(c.image()?).ok()?;
            let ecr = r.ecr()?;
            Some(format!(
                "arn:aws:ecr:{}:{}:repository/{}",
                ecr.region,
                ecr.account,
                r.repository()
            ))
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

impl ProjectFiles {
    /// Every task definition, the appspec's first.
    fn taskdefs(&self) -> impl Iterator<Item = &PathBuf> {
        std::iter::once(&self.taskdef).chain(&self.extra_taskdefs)
    }
}

/// The rules on one parsed task definition, and the Dockerfile's stages
/// for its containers (`targets`: the `--target` flags that apply to it).
fn taskdef(
    td: &Td,
    dockerfile: Option<&crate::dockerfile::Dockerfile>,
    targets: &[(String, String)],
    registry: Option<&str>,
    out: &mut Vec<Finding>,
) {
    taskdef_rules::rules(td, out);
    limits_rules::rules(td, out);
    secrets_rules::rules(td, out);
    placeholder_rules::taskdef(td, out);
    if let Some(df) = dockerfile {
        dockerfile_rules::rules(df, td, targets, registry, out);
    }
}

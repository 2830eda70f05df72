//! `stackbake init`: writes starter `taskdef.json`, `appspec.yaml` and
//! `buildspec.yml` for a Dockerfile's deployable stages, never overwriting
//! anything, and the CodeBuild role's IAM policy and an ECR lifecycle
//! policy (see `crate::policies`). Deployable stages are the named stages no
//! other stage builds `FROM`, copies or mounts from, and that are not one
//! platform's variant of a `FROM binary-$TARGETOS` pattern (or those given
//! with `--stage`); each gets
//! one Fargate container named like the stage, with image
//! `<account>.dkr.ecr.<region>.amazonaws.com/<project>-<stage>:latest`, the
//! ports its stage `EXPOSE`s, and `awslogs` logging. What the user must fill
//! in (roles, secrets, ports without `EXPOSE`, how CodeBuild gets the
//! binary) is marked `TODO`, which `stackbake check` reports as
//! `placeholder/todo` warnings; the files pass `check` with nothing else.

pub(crate) mod batch;
mod files;
mod plan;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::build::mirror::Mirror;
use crate::cli::InitArgs;
use crate::dockerfile;
use crate::error::{Error, input};
use crate::policies;

/// Writes the starter files; returns the paths written, in order
/// taskdef, appspec, buildspec. Fails with [`Error::Usage`] (exit 2) naming
/// every target file that already exists, before writing anything.
pub(crate) fn init(args: &InitArgs) -> Result<Vec<PathBuf>, Error> {
    init_with_env(args, &|k| std::env::var(k).ok())
}

/// What goes into the starter files.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) project: String,
    pub(super) account: String,
    pub(super) region: String,
    /// (stage, ports) in Dockerfile order.
    pub(super) containers: Vec<(String, Vec<u16>)>,
    /// Containers with no `EXPOSE`d port, that were given a guessed one.
    pub(super) guessed: BTreeSet<String>,
    pub(super) lb: String,
    pub(super) lb_port: u16,
}

/// [`init`] with the environment passed in (for tests).
pub(crate) fn init_with_env(
    args: &InitArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, Error> {
    let taskdef = taskdef_path(args)?;
    check_batch(args)?;
    let targets = target_paths(args, &taskdef);
    refuse_existing(&targets)?;
    let df_path = args.common.dir.join(&args.common.dockerfile);
    let df = read_dockerfile(&df_path)?;
    let plan = plan::plan(args, &df, &df_path, env)?;
    let iam = iam_policy(args, &plan)?;
    let bodies = bodies(args, &plan, &targets, iam);
    write_all(&targets, bodies)
}

/// The one `--taskdef` (default `taskdef.json`); several are a usage error.
fn taskdef_path(args: &InitArgs) -> Result<PathBuf, Error> {
    match args.common.taskdef.as_slice() {
        [] => Ok(PathBuf::from("taskdef.json")),
        [one] => Ok(one.clone()),
        _ => Err(Error::Usage(
            "stackbake init writes one task definition: pass one --taskdef (copy it for staging and prod afterwards)".to_string(),
        )),
    }
}

/// `--batch N` is within 1..=[`batch::MAX_SHARDS`].
fn check_batch(args: &InitArgs) -> Result<(), Error> {
    if let Some(n) = args.batch
        && !(1..=batch::MAX_SHARDS).contains(&n)
    {
        return Err(Error::Usage(format!(
            "--batch {n}: write 1 to {} shards (more than a batch build can usefully run at once)",
            batch::MAX_SHARDS
        )));
    }
    Ok(())
}

/// The files `init` writes, in order: taskdef, appspec, buildspec, IAM
/// policy, lifecycle policy.
fn target_paths(args: &InitArgs, taskdef: &Path) -> [PathBuf; 5] {
    let dir = &args.common.dir;
    [
        dir.join(taskdef),
        dir.join(&args.common.appspec),
        dir.join("buildspec.yml"),
        dir.join(policies::IAM_POLICY_FILE),
        dir.join(policies::LIFECYCLE_POLICY_FILE),
    ]
}

/// A usage error naming every target that already exists.
fn refuse_existing(targets: &[PathBuf]) -> Result<(), Error> {
    let existing: Vec<String> = targets
        .iter()
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    if !existing.is_empty() {
        return Err(Error::Usage(format!(
            "stackbake init never overwrites: {} already exist{}; nothing was written. Move {} aside, or run `stackbake check` on what you have",
            existing.join(", "),
            if existing.len() == 1 { "s" } else { "" },
            if existing.len() == 1 { "it" } else { "them" },
        )));
    }
    Ok(())
}

/// Reads and parses the Dockerfile at `df_path`.
fn read_dockerfile(df_path: &Path) -> Result<dockerfile::Dockerfile, Error> {
    let text = std::fs::read_to_string(df_path).map_err(|e| {
        input(
            df_path,
            format!("cannot read the Dockerfile ({e}); init writes starters for an existing Dockerfile's stages, pass --dockerfile or --dir"),
        )
    })?;
    dockerfile::parse(&text).map_err(|e| input(df_path, e.to_string()))
}

/// The CodeBuild role's IAM policy, allowing the `--mirror` repositories.
fn iam_policy(args: &InitArgs, plan: &Plan) -> Result<String, Error> {
    let mirrors = args
        .mirrors
        .iter()
        .filter(|m| !m.trim().is_empty())
        .map(|m| Mirror::parse(m).map_err(|e| Error::Usage(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(policies::iam_policy(&policies::IamScope {
        account: &plan.account,
        region: &plan.region,
        project: &plan.project,
        create_repos: args.create_repos,
        mirror_repositories: mirrors
            .iter()
            .filter_map(Mirror::ecr_repositories)
            .collect(),
    }))
}

/// The file name of `path`, as the buildspec lists it.
fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
}

/// The texts of the files, in the order of [`target_paths`].
fn bodies(args: &InitArgs, plan: &Plan, targets: &[PathBuf; 5], iam: String) -> [String; 5] {
    let settings = build_settings(args);
    let (taskdef, appspec) = (file_name(&targets[0]), file_name(&targets[1]));
    let buildspec = match args.batch {
        Some(n) => batch::buildspec_yaml(&taskdef, &appspec, n, &settings),
        None => files::buildspec_yaml(&taskdef, &appspec, &settings),
    };
    [
        files::taskdef_json(plan),
        files::appspec_yaml(plan),
        buildspec,
        iam,
        policies::lifecycle_policy(),
    ]
}

/// Writes each new file; on any failure removes the ones written and fails.
fn write_all(targets: &[PathBuf; 5], bodies: [String; 5]) -> Result<Vec<PathBuf>, Error> {
    let mut written = Vec::new();
    for (path, body) in targets.iter().zip(bodies) {
        if let Err(e) = write_new(path, &body) {
            for w in &written {
                let _ = std::fs::remove_file(w);
            }
            return Err(if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::Usage(format!(
                    "stackbake init never overwrites: {} appeared while writing; nothing was kept",
                    path.display()
                ))
            } else {
                input(path, format!("cannot write it: {e}; nothing was kept"))
            });
        }
        written.push(path.clone());
    }
    Ok(written)
}

/// The buildspec's optional `env.variables`: what `init` was told builds
/// will use (and what the IAM policy allows for).
fn build_settings(args: &InitArgs) -> String {
    let mut out = String::new();
    if args.create_repos {
        out.push_str("    STACKBAKE_CREATE_REPOS: \"true\"\n");
    }
    let mirrors: Vec<&str> = args
        .mirrors
        .iter()
        .map(|m| m.trim())
        .filter(|m| !m.is_empty())
        .collect();
    if !mirrors.is_empty() {
        out.push_str(&format!(
            "    # Base images pulled through this mirror (an ECR pull-through cache).\n    STACKBAKE_MIRROR: \"{}\"\n",
            mirrors.join(",")
        ));
    }
    out
}

/// Creates `path` (failing if it exists) and writes `body`.
fn write_new(path: &Path, body: &str) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    f.write_all(body.as_bytes())
}

//! What goes into the starter files: the deployable stages, the project,
//! account and region, each container's ports and the load-balanced one.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::Plan;
use crate::cli::InitArgs;
use crate::dockerfile::{Args, BaseRef, Dockerfile, StageGraph};
use crate::error::{Error, input};

/// A lowercase ECR-safe project name from a directory name.
fn project_from_dir(dir: &Path) -> Option<String> {
    let abs = std::fs::canonicalize(dir).ok()?;
    let name = abs.file_name()?.to_string_lossy().to_lowercase();
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let cleaned = cleaned
        .trim_matches(|c: char| c == '-' || c == '_')
        .to_owned();
    (!cleaned.is_empty()).then_some(cleaned)
}

fn valid_project(p: &str) -> bool {
    !p.is_empty()
        && p.len() <= 200
        && p.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && p.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn valid_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Numeric ports a stage `EXPOSE`s, its own first, then its base stages'.
fn exposed(df: &Dockerfile, bases: &[BaseRef], stage: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    let mut cur = Some(stage);
    let mut hops = 0;
    while let Some(i) = cur {
        let Some(s) = df.stages.get(i) else { break };
        for ins in s.instructions.iter().filter(|ins| ins.keyword == "EXPOSE") {
            let words: Vec<String> = match &ins.args {
                Args::Shell(s) => s.split_whitespace().map(str::to_owned).collect(),
                Args::Exec(v) => v.clone(),
            };
            for w in words {
                let (port, proto) = w.split_once('/').unwrap_or((&w, "tcp"));
                if proto.eq_ignore_ascii_case("tcp")
                    && let Ok(p) = port.parse::<u16>()
                    && p > 0
                    && !ports.contains(&p)
                {
                    ports.push(p);
                }
            }
        }
        cur = match bases.get(i) {
            Some(BaseRef::Stage(j)) if *j < i => Some(*j),
            _ => None,
        };
        hops += 1;
        if hops > df.stages.len() {
            break;
        }
    }
    ports
}

/// The whole plan: the stages to deploy, the project, account and region,
/// the load-balanced container and each container's ports. The first
/// problem is the error, in that order.
pub(super) fn plan(
    args: &InitArgs,
    df: &Dockerfile,
    df_path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, Error> {
    let graph = df
        .graph(&BTreeMap::new())
        .map_err(|e| input(df_path, e.to_string()))?;
    let chosen = chosen_stages(args, df, &graph, df_path)?;
    let project = project_name(args)?;
    let account = account_id(args)?;
    let region = region_name(args, env)?;
    let lb = lb_container(args, df, &graph.bases, &chosen)?;
    let ports = assign_ports(df, &graph.bases, &chosen, &lb);
    Ok(Plan {
        project,
        account,
        region,
        containers: ports.containers,
        guessed: ports.guessed,
        lb,
        lb_port: ports.lb_port,
    })
}

/// The Dockerfile's named stages, `(index, name)`.
fn named_stages(df: &Dockerfile) -> Vec<(usize, String)> {
    df.stages
        .iter()
        .filter_map(|s| s.name.clone().map(|n| (s.index, n)))
        .collect()
}

/// The names of `stages`, comma-separated.
fn joined_names(stages: &[(usize, String)]) -> String {
    stages
        .iter()
        .map(|(_, n)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The stages to deploy: the `--stage` flags, or else every named stage no
/// other stage builds on (platform variants aside). Never empty.
fn chosen_stages(
    args: &InitArgs,
    df: &Dockerfile,
    graph: &StageGraph,
    df_path: &Path,
) -> Result<Vec<(usize, String)>, Error> {
    let named = named_stages(df);
    let chosen = if args.stages.is_empty() {
        final_stages(df, graph, &named)
    } else {
        flagged_stages(&args.stages, &named)?
    };
    if chosen.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no deployable stage: name the stages to deploy (`FROM ... AS api`) or pass --stage; named stages: {}",
            df_path.display(),
            if named.is_empty() {
                "(none)".to_owned()
            } else {
                joined_names(&named)
            }
        )));
    }
    Ok(chosen)
}

/// The named stages no other stage depends on, without platform variants.
fn final_stages(
    df: &Dockerfile,
    graph: &StageGraph,
    named: &[(usize, String)],
) -> Vec<(usize, String)> {
    let variants = df.platform_variants();
    named
        .iter()
        .filter(|(i, _)| {
            !variants.contains(i)
                && !graph
                    .deps
                    .iter()
                    .enumerate()
                    .any(|(j, d)| j != *i && d.contains(i))
        })
        .cloned()
        .collect()
}

/// The stages named by `--stage` (case-insensitive), once each, in
/// Dockerfile order; an unknown name is a usage error.
fn flagged_stages(
    flags: &[String],
    named: &[(usize, String)],
) -> Result<Vec<(usize, String)>, Error> {
    let mut v = Vec::new();
    for s in flags {
        let lower = s.to_lowercase();
        match named.iter().find(|(_, n)| *n == lower) {
            Some(found) if !v.contains(found) => v.push(found.clone()),
            Some(_) => {}
            None => {
                return Err(Error::Usage(format!(
                    "--stage {s}: the Dockerfile has no stage `{s}`; its named stages are: {}",
                    joined_names(named)
                )));
            }
        }
    }
    v.sort();
    Ok(v)
}

/// `--project`, or the name derived from `--dir`; checked.
fn project_name(args: &InitArgs) -> Result<String, Error> {
    let project = match &args.project {
        Some(p) => p.clone(),
        None => project_from_dir(&args.common.dir).ok_or_else(|| {
            Error::Usage("cannot derive a project name from --dir; pass --project NAME".to_owned())
        })?,
    };
    if !valid_project(&project) {
        return Err(Error::Usage(format!(
            "--project `{project}`: use lowercase letters, digits, `-` and `_` (it prefixes ECR repository names `<project>-<stage>`)"
        )));
    }
    Ok(project)
}

/// `--account`, required and 12 digits.
fn account_id(args: &InitArgs) -> Result<String, Error> {
    let account = args.account.clone().ok_or_else(|| {
        Error::Usage(
            "pass --account ACCOUNT_ID (or set STACKBAKE_ACCOUNT): the image URIs and role ARNs need your 12-digit AWS account id".to_owned(),
        )
    })?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Error::Usage(format!(
            "--account `{account}`: an AWS account id is 12 digits"
        )));
    }
    Ok(account)
}

/// `--region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`; required and checked.
fn region_name(args: &InitArgs, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let region = args
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            Error::Usage(
                "pass --region REGION (or set AWS_REGION): the ECR image URIs need it".to_owned(),
            )
        })?;
    if !valid_region(&region) {
        return Err(Error::Usage(format!(
            "--region `{region}` is not an AWS region (e.g. us-east-2)"
        )));
    }
    Ok(region)
}

/// The load-balanced container: `--lb-container` (one of `chosen`), else
/// the first exposing port 80 or 443, else the first exposing any port,
/// else the first.
fn lb_container(
    args: &InitArgs,
    df: &Dockerfile,
    bases: &[BaseRef],
    chosen: &[(usize, String)],
) -> Result<String, Error> {
    if let Some(lb) = &args.lb_container {
        let lower = lb.to_lowercase();
        if !chosen.iter().any(|(_, n)| *n == lower) {
            return Err(Error::Usage(format!(
                "--lb-container {lb}: not one of the stages being written: {}",
                joined_names(chosen)
            )));
        }
        return Ok(lower);
    }
    Ok(chosen
        .iter()
        .find(|(i, _)| exposed(df, bases, *i).iter().any(|p| [80, 443].contains(p)))
        .or_else(|| {
            chosen
                .iter()
                .find(|(i, _)| !exposed(df, bases, *i).is_empty())
        })
        .or_else(|| chosen.first())
        .map(|(_, n)| n.clone())
        .unwrap_or_default())
}

/// Each container's ports, the ones guessed and the load balancer's.
struct Ports {
    containers: Vec<(String, Vec<u16>)>,
    guessed: BTreeSet<String>,
    lb_port: u16,
}

/// Ports: each container keeps the EXPOSEd ports no earlier container took;
/// the load-balanced one without any gets a free common port (guessed), and
/// the others without any are marked guessed.
fn assign_ports(df: &Dockerfile, bases: &[BaseRef], chosen: &[(usize, String)], lb: &str) -> Ports {
    let mut used = BTreeSet::new();
    let mut containers = Vec::new();
    let mut guessed = BTreeSet::new();
    for (i, name) in chosen {
        let ports: Vec<u16> = exposed(df, bases, *i)
            .into_iter()
            .filter(|p| used.insert(*p))
            .collect();
        containers.push((name.clone(), ports));
    }
    let mut lb_port = 0;
    for (name, ports) in &mut containers {
        if *name == lb {
            if ports.is_empty() {
                let free = [80u16, 8080, 8000, 3000, 5000]
                    .into_iter()
                    .find(|p| !used.contains(p))
                    .unwrap_or(80);
                used.insert(free);
                ports.push(free);
                guessed.insert(name.clone());
            }
            lb_port = ports[0];
        } else if ports.is_empty() {
            guessed.insert(name.clone());
        }
    }
    Ports {
        containers,
        guessed,
        lb_port,
    }
}

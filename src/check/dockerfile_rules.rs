//! Dockerfile ↔ taskdef rules (`stages/…`): the Dockerfile parses, no stage
//! name is used twice, every container whose image is in our ECR registry
//! maps to a stage (SPEC step 2, through `taskdef::map_containers`), and
//! repositories follow the `<project>-<target>` pattern the others follow.

use std::collections::BTreeMap;

use super::finding::{Finding, Severity};
use super::taskdef_rules::{Td, ecr_parts};
use crate::dockerfile::{self, Dockerfile};
use crate::taskdef::{Mapping, TaskdefError, map_containers};

/// Parses the Dockerfile, reporting syntax errors and duplicate stage names.
pub(crate) fn parse(file: &str, text: &str, out: &mut Vec<Finding>) -> Option<Dockerfile> {
    match dockerfile::parse(text) {
        Ok(df) => Some(df),
        Err(e) => {
            let duplicate = e.message.starts_with("duplicate stage name");
            out.push(Finding::new(
                file,
                (e.line.max(1), 1),
                Severity::Error,
                if duplicate {
                    "stages/duplicate-name"
                } else {
                    "stages/invalid-dockerfile"
                },
                e.message.clone(),
                if duplicate {
                    "stage names must be unique: rename one of the stages (and its references)"
                } else {
                    "fix the Dockerfile at this line; `docker build` would reject it too"
                },
            ));
            None
        }
    }
}

/// The Dockerfile's stage names, lowercase, in file order.
pub(crate) fn stage_names(df: &Dockerfile) -> Vec<String> {
    df.stages.iter().filter_map(|s| s.name.clone()).collect()
}

/// Maps containers to stages; reports unmapped containers and repositories
/// that break the `<project>-<target>` pattern.
pub(crate) fn rules(
    df: &Dockerfile,
    td: &Td,
    targets: &[(String, String)],
    registry: Option<&str>,
    out: &mut Vec<Finding>,
) {
    let Some(parsed) = &td.taskdef else {
        // The structure rules have reported why.
        return;
    };
    let stages = stage_names(df);
    let mut skip: Vec<(String, String)> = targets.to_vec();
    let mut unmapped: Vec<String> = Vec::new();
    let mappings = loop {
        match map_containers(parsed, &stages, &skip, registry) {
            Ok(m) => break m,
            Err(TaskdefError::Unmapped {
                container,
                repository,
                ..
            }) => {
                out.push(unmapped_finding(td, &container, &repository, &stages));
                unmapped.push(container.clone());
                match stages.first() {
                    Some(any) if unmapped.len() <= parsed.container_names().len() => {
                        skip.push((container, any.clone()));
                    }
                    _ => {
                        report_rest(td, &unmapped, out);
                        return;
                    }
                }
            }
            Err(TaskdefError::InvalidImage {
                container,
                image,
                source,
            }) => {
                out.push(invalid_image_finding(td, &container, &image, &source));
                return;
            }
            Err(e) => {
                out.push(Finding::new(
                    &td.file,
                    (1, 1),
                    Severity::Error,
                    "stages/unmapped-container",
                    e.to_string(),
                    "fix the container-to-stage mapping",
                ));
                return;
            }
        }
    };
    repository_pattern(td, &mappings, &unmapped, &|c| image_at(td, c), out);
}

/// Where the image of container `container` is (the first container's
/// when there is none of that name).
fn image_at(td: &Td, container: &str) -> (usize, usize) {
    let index = td
        .containers()
        .iter()
        .find(|c| c.name == Some(container))
        .map_or(0, |c| c.index);
    td.loc
        .value(&format!("containerDefinitions[{index}].image"))
}

/// `stages/unmapped-container`: `container` maps to none of `stages`.
fn unmapped_finding(td: &Td, container: &str, repository: &str, stages: &[String]) -> Finding {
    Finding::new(
        &td.file,
        image_at(td, container),
        Severity::Error,
        "stages/unmapped-container",
        format!(
            "container `{container}` (repository `{repository}`) matches no Dockerfile stage; stages: {}",
            if stages.is_empty() {
                "(none named)".to_owned()
            } else {
                stages.join(", ")
            }
        ),
        format!(
            "name a stage `{container}` or like the repository's `-`-suffix, or pass --target {container}=STAGE to build"
        ),
    )
}

/// `taskdef/invalid-image`: `container`'s image is not a reference.
fn invalid_image_finding(
    td: &Td,
    container: &str,
    image: &str,
    source: &impl std::fmt::Display,
) -> Finding {
    Finding::new(
        &td.file,
        image_at(td, container),
        Severity::Error,
        "taskdef/invalid-image",
        format!("container `{container}` has image `{image}`: {source}"),
        "write a valid image reference: REGISTRY/REPOSITORY[:TAG][@DIGEST]",
    )
}

/// Without named stages the mapping loop cannot continue: report every other
/// private-ECR container as unmapped too.
fn report_rest(td: &Td, done: &[String], out: &mut Vec<Finding>) {
    for c in td.containers() {
        let (Some(name), Some(image)) = (c.name, c.image()) else {
            continue;
        };
        if done.iter().any(|d| d == name) || ecr_parts(image).is_none() {
            continue;
        }
        out.push(Finding::new(
            &td.file,
            td.loc.value(&c.path("image")),
            Severity::Error,
            "stages/unmapped-container",
            format!(
                "container `{name}` matches no Dockerfile stage (the Dockerfile has no named stage)"
            ),
            "name the deployable stages: `FROM ... AS <target>`",
        ));
    }
}

fn repository_pattern(
    td: &Td,
    mappings: &[Mapping],
    unmapped: &[String],
    image_at: &dyn Fn(&str) -> (usize, usize),
    out: &mut Vec<Finding>,
) {
    let targets: Vec<(&str, &str, &str)> = mappings
        .iter()
        .filter_map(|m| match m {
            Mapping::Target {
                container,
                stage,
                repository,
                ..
            } if !unmapped.contains(container) => Some((
                container.as_str(),
                stage.as_str(),
                repository.rsplit('/').next().unwrap_or(repository),
            )),
            _ => None,
        })
        .collect();
    let mut projects: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, stage, repo) in &targets {
        if let Some(project) = repo.strip_suffix(stage).and_then(|p| p.strip_suffix('-'))
            && !project.is_empty()
        {
            *projects.entry(project).or_default() += 1;
        }
    }
    let Some((project, count)) = projects.into_iter().max_by_key(|(_, n)| *n) else {
        return;
    };
    if count < 2 {
        return;
    }
    for (container, stage, repo) in targets {
        let want = format!("{project}-{stage}");
        if repo != want {
            out.push(Finding::new(
                &td.file,
                image_at(container),
                Severity::Warning,
                "stages/repository-pattern",
                format!("repository `{repo}` of container `{container}` breaks the `<project>-<target>` pattern the others follow (`{want}`)"),
                format!("push stage `{stage}` to `{want}`, or rename the others to match"),
            ));
        }
    }
}

/// `stages/docker-hub-without-mirror` (warning): a CodeBuild build pulls
/// these base images from Docker Hub, whose anonymous pull limit CodeBuild's
/// shared addresses hit; an ECR pull-through cache and `--mirror` avoid it.
pub(crate) fn docker_hub_without_mirror(file: &str, df: &Dockerfile, out: &mut Vec<Finding>) {
    let Ok(graph) = df.graph(&std::collections::BTreeMap::new()) else {
        return;
    };
    for (stage, base) in df.stages.iter().zip(&graph.bases) {
        let crate::dockerfile::BaseRef::Image(image) = base else {
            continue;
        };
        if !crate::build::mirror::is_docker_hub(image) {
            continue;
        }
        out.push(Finding::new(
            file,
            (stage.line, 1),
            Severity::Warning,
            "stages/docker-hub-without-mirror",
            format!(
                "the base image `{image}` comes from Docker Hub, and the buildspec runs `stackbake build` without a mirror: CodeBuild's shared addresses hit Docker Hub's anonymous pull limit"
            ),
            "pull it through an ECR pull-through cache: `stackbake build --mirror docker.io=ACCOUNT.dkr.ecr.REGION.amazonaws.com/docker-hub` (or STACKBAKE_MIRROR in the buildspec's env)",
        ));
    }
}

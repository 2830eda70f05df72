//! Loading the project's input files (Dockerfile, taskdef.json,
//! appspec.yaml, .dockerignore) and mapping containers to targets; every
//! problem here is bad input (exit 2) that names the file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::context::dockerignore::DockerIgnore;
use crate::dockerfile::{self, Dockerfile, StageGraph};
use crate::error::{Error, input};
use crate::taskdef::TaskDef;
use crate::taskdef::appspec::AppSpec;
use crate::taskdef::mapping::{self, Mapping};

/// One deployable target: a stage and the repositories its image goes to.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Stage index in the Dockerfile.
    pub stage: usize,
    /// Stage name.
    pub name: String,
    /// Distinct repositories mapped to this stage, in taskdef order.
    pub repositories: Vec<String>,
}

/// Everything read from the project, validated.
pub(crate) struct Inputs {
    /// The parsed Dockerfile.
    pub dockerfile: Dockerfile,
    /// Its stage graph under the given build args.
    pub graph: StageGraph,
    /// taskdef.json: the first `--taskdef`, the appspec's.
    pub taskdef: TaskDef,
    /// Every `--taskdef` (path and content), the first one first.
    pub taskdefs: Vec<(PathBuf, TaskDef)>,
    /// appspec.yaml.
    pub appspec: AppSpec,
    /// appspec.yaml as read (copied verbatim into the out dir).
    pub appspec_text: String,
    /// Container → target or external, over every task definition: each
    /// container name once (it has one image), an external once per image.
    pub mappings: Vec<Mapping>,
    /// The distinct targets, in stage order.
    pub targets: Vec<Target>,
    /// The build context's .dockerignore.
    pub ignore: DockerIgnore,
}

/// The largest input file read (a real taskdef is a few KiB; ECS caps it at 64 KiB).
pub(crate) const MAX_INPUT_BYTES: u64 = 8 * 1024 * 1024;

fn read(path: &Path, what: &str, hint: &str) -> Result<String, Error> {
    if let Ok(meta) = std::fs::metadata(path)
        && meta.len() > MAX_INPUT_BYTES
    {
        return Err(input(
            path,
            format!(
                "{what} is too large ({} bytes; the limit is {MAX_INPUT_BYTES}). Is this the right file?",
                meta.len()
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            input(path, format!("{what} not found. {hint}"))
        } else {
            input(path, format!("cannot read {what}: {e}"))
        }
    })?;
    String::from_utf8(bytes).map_err(|e| {
        input(
            path,
            format!(
                "{what} is not valid UTF-8 (first bad byte at offset {}); save it as UTF-8",
                e.utf8_error().valid_up_to()
            ),
        )
    })
}

/// Reads and validates every input; `taskdef_paths` are the `--taskdef`
/// files, the appspec's first.
pub(crate) fn load(
    dockerfile_path: &Path,
    taskdef_paths: &[PathBuf],
    appspec_path: &Path,
    context_dir: &Path,
    explicit: &[(String, String)],
    build_args: &BTreeMap<String, String>,
    registry: Option<&str>,
) -> Result<Inputs, Error> {
    let df_text = read(
        dockerfile_path,
        "the Dockerfile",
        "Pass --dockerfile PATH (relative to --dir) or run stackbake from the project root",
    )?;
    let dockerfile =
        dockerfile::parse(&df_text).map_err(|e| input(dockerfile_path, e.to_string()))?;
    let graph = dockerfile
        .graph(build_args)
        .map_err(|e| input(dockerfile_path, e.to_string()))?;
    let mut taskdefs = Vec::new();
    for path in taskdef_paths {
        let text = read(
            path,
            "the task definition",
            "Pass --taskdef PATH, or create one with `stackbake init`",
        )?;
        let td = TaskDef::parse(&text).map_err(|e| input(path, e.to_string()))?;
        taskdefs.push((path.clone(), td));
    }
    let Some((primary_path, primary)) = taskdefs.first().cloned() else {
        return Err(Error::Usage("no --taskdef given".to_string()));
    };
    let appspec_text = read(
        appspec_path,
        "the appspec",
        "CodeDeploy needs appspec.yaml next to taskdef.json; pass --appspec PATH or create one with `stackbake init`",
    )?;
    let appspec = AppSpec::parse(&appspec_text).map_err(|e| input(appspec_path, e.to_string()))?;
    appspec
        .check_against(&primary)
        .map_err(|e| input(appspec_path, e.to_string()))?;
    let stage_names: Vec<String> = dockerfile
        .stages
        .iter()
        .map(|s| s.name.clone().unwrap_or_default())
        .collect();
    let mappings = map_all(&taskdefs, &stage_names, explicit, registry)?;
    let targets = targets(&mappings, &dockerfile, dockerfile_path, &primary_path)?;
    let ignore = DockerIgnore::load(context_dir)
        .map_err(|e| input(context_dir.join(".dockerignore"), e.to_string()))?;
    Ok(Inputs {
        dockerfile,
        graph,
        taskdef: primary,
        taskdefs,
        appspec,
        appspec_text,
        mappings,
        targets,
        ignore,
    })
}

/// Maps the containers of every task definition. A `--target` applies to
/// the task definitions that have that container (and must name one of
/// some task definition). A container name met again must have the same
/// stage and repository: one build gives a container name one image.
fn map_all(
    taskdefs: &[(PathBuf, TaskDef)],
    stage_names: &[String],
    explicit: &[(String, String)],
    registry: Option<&str>,
) -> Result<Vec<Mapping>, Error> {
    let mut out: Vec<Mapping> = Vec::new();
    let mut seen: BTreeMap<String, (&Path, String, String)> = BTreeMap::new();
    for (path, td) in taskdefs {
        let names = td.container_names();
        let mine: Vec<(String, String)> = explicit
            .iter()
            .filter(|(c, _)| names.contains(c))
            .cloned()
            .collect();
        let mappings = mapping::map_containers(td, stage_names, &mine, registry)
            .map_err(|e| input(path, e.to_string()))?;
        for m in mappings {
            let Mapping::Target {
                container,
                stage,
                repository,
                ..
            } = &m
            else {
                if !out.contains(&m) {
                    out.push(m);
                }
                continue;
            };
            match seen.get(container) {
                Some((first, s0, r0)) if (s0, r0) != (stage, repository) => {
                    return Err(input(
                        path,
                        format!(
                            "container {container:?} is built from stage {stage:?} into repository {repository:?} here, but from stage {s0:?} into {r0:?} in {}. One build gives a container name one image (imagedefinitions.json and the report key containers by name): map both to one stage and repository, or rename one container",
                            first.display()
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    seen.insert(container.clone(), (path, stage.clone(), repository.clone()));
                    out.push(m);
                }
            }
        }
    }
    if let Some((container, stage)) = explicit.iter().find(|(c, _)| {
        !taskdefs
            .iter()
            .any(|(_, td)| td.container_names().contains(c))
    }) && let Some((path, td)) = taskdefs.first()
    {
        let flag = [(container.clone(), stage.clone())];
        mapping::map_containers(td, stage_names, &flag, registry)
            .map_err(|e| input(path, e.to_string()))?;
    }
    Ok(out)
}

/// The distinct targets of `mappings`, in stage order, each with its
/// repositories.
fn targets(
    mappings: &[Mapping],
    dockerfile: &Dockerfile,
    dockerfile_path: &Path,
    taskdef_path: &Path,
) -> Result<Vec<Target>, Error> {
    let mut by_stage: BTreeMap<usize, Target> = BTreeMap::new();
    // Each target's image is tagged `<repository>:<commit>` and pinned from
    // there: two stages in one repository would overwrite each other's tag.
    let mut repo_user: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for m in mappings {
        if let Mapping::Target {
            container,
            stage,
            repository,
            ..
        } = m
        {
            match repo_user.get(repository.as_str()) {
                Some((other, other_stage)) if !other_stage.eq_ignore_ascii_case(stage) => {
                    return Err(input(
                        taskdef_path,
                        format!(
                            "the repository {repository:?} holds two targets: container {other:?} \
                             (stage {other_stage:?}) and container {container:?} (stage {stage:?}). \
                             stackbake tags each target's image <repository>:<commit>, so each stage \
                             needs its own repository (e.g. {repository}-{other_stage} and \
                             {repository}-{stage}), or map both containers to one stage with --target"
                        ),
                    ));
                }
                Some(_) => {}
                None => {
                    repo_user.insert(repository, (container, stage));
                }
            }
            let idx = dockerfile
                .stage_index(stage)
                .ok_or_else(|| input(dockerfile_path, format!("no stage named {stage:?}")))?;
            let t = by_stage.entry(idx).or_insert_with(|| Target {
                stage: idx,
                name: stage.clone(),
                repositories: Vec::new(),
            });
            if !t.repositories.contains(repository) {
                t.repositories.push(repository.clone());
            }
        }
    }
    Ok(by_stage.into_values().collect())
}

impl Inputs {
    /// For each stage, the sorted stages it needs (itself included).
    pub(crate) fn needed(&self) -> Vec<Vec<usize>> {
        (0..self.dockerfile.stages.len())
            .map(|i| self.graph.needed(i))
            .collect()
    }

    /// A display name for stage `i`: its name, else `stage-<i>`.
    pub(crate) fn stage_label(&self, i: usize) -> String {
        self.dockerfile
            .stages
            .get(i)
            .and_then(|s| s.name.clone())
            .unwrap_or_else(|| format!("stage-{i}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deeply_nested_json_is_an_error_not_a_crash() {
        let deep = format!("{}{}", "[".repeat(200_000), "]".repeat(200_000));
        let text = format!("{{\"family\":\"x\",\"containerDefinitions\":[],\"junk\":{deep}}}");
        assert!(TaskDef::parse(&text).is_err());
        let deep_obj = format!("{}1{}", "{\"a\":".repeat(100_000), "}".repeat(100_000));
        assert!(TaskDef::parse(&deep_obj).is_err());
    }

    #[test]
    fn oversized_and_non_utf8_inputs_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("taskdef.json");
        let f = std::fs::File::create(&big).expect("create");
        f.set_len(MAX_INPUT_BYTES + 1).expect("grow");
        let err = read(&big, "the task definition", "").expect_err("too big");
        assert!(err.to_string().contains("too large"), "{err}");
        let bad = dir.path().join("Dockerfile");
        std::fs::write(&bad, b"FROM x\n\xff\xfe").expect("write");
        let err = read(&bad, "the Dockerfile", "").expect_err("not utf8");
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }

    fn load_project(taskdef: &str) -> Result<Inputs, Error> {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::write(
            d.join("Dockerfile"),
            "FROM scratch AS api\nFROM scratch AS worker\n",
        )
        .expect("write");
        std::fs::write(d.join("taskdef.json"), taskdef).expect("write");
        std::fs::write(
            d.join("appspec.yaml"),
            "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\n      Properties:\n        TaskDefinition: <TASK_DEFINITION>\n",
        )
        .expect("write");
        load(
            &d.join("Dockerfile"),
            &[d.join("taskdef.json")],
            &d.join("appspec.yaml"),
            d,
            &[],
            &BTreeMap::new(),
            None,
        )
    }

    #[test]
    fn two_stages_cannot_share_a_repository() {
        let ecr = "123456789012.dkr.ecr.us-east-2.amazonaws.com";
        let shared = format!(
            r#"{{"family": "bash-dog", "containerDefinitions": [
                {{"name": "api", "image": "{ecr}/bash-dog:api"}},
                {{"name": "worker", "image": "{ecr}/bash-dog:worker"}}]}}"#
        );
        let err = load_project(&shared)
            .err()
            .expect("one repository, two stages");
        let msg = err.to_string();
        assert!(msg.contains("\"bash-dog\" holds two targets"), "{msg}");
        assert!(
            msg.contains("\"api\"") && msg.contains("\"worker\""),
            "{msg}"
        );
        assert_eq!(err.exit_code(), crate::error::exit_code::BAD_INPUT);

        // Two containers of one stage in one repository are fine.
        let same_stage = format!(
            r#"{{"family": "bash-dog", "containerDefinitions": [
                {{"name": "api", "image": "{ecr}/bash-dog-api:latest"}},
                {{"name": "api-canary", "image": "{ecr}/bash-dog-api:latest"}},
                {{"name": "worker", "image": "{ecr}/bash-dog-worker:latest"}}]}}"#
        );
        let inputs = load_project(&same_stage).expect("loads");
        assert_eq!(inputs.targets.len(), 2);
    }

    #[test]
    fn a_long_yaml_bomb_does_not_hang() {
        let bomb = "a: &a [\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\",\"x\"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\ng: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\nh: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]\n";
        assert!(AppSpec::parse(bomb).is_err());
    }
}

//! `stackbake init`: writes starter `taskdef.json`, `appspec.yaml` and
//! `buildspec.yml` for a Dockerfile's deployable stages, never overwriting
//! anything. Deployable stages are the named stages no other stage builds
//! `FROM`, copies or mounts from (or those given with `--stage`); each gets
//! one Fargate container named like the stage, with image
//! `<account>.dkr.ecr.<region>.amazonaws.com/<project>-<stage>:latest`, the
//! ports its stage `EXPOSE`s, and `awslogs` logging. What the user must fill
//! in (roles, secrets, ports without `EXPOSE`, how CodeBuild gets the
//! binary) is marked `TODO`, which `stackbake check` reports as
//! `placeholder/todo` warnings; the files pass `check` with nothing else.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cli::InitArgs;
use crate::dockerfile::{self, Args, BaseRef, Dockerfile};
use crate::error::{Error, input};

/// Writes the starter files; returns the paths written, in order
/// taskdef, appspec, buildspec. Fails with [`Error::Usage`] (exit 2) naming
/// every target file that already exists, before writing anything.
pub fn init(args: &InitArgs) -> Result<Vec<PathBuf>, Error> {
    init_with_env(args, &|k| std::env::var(k).ok())
}

/// What goes into the starter files.
#[derive(Debug)]
struct Plan {
    project: String,
    account: String,
    region: String,
    /// (stage, ports) in Dockerfile order.
    containers: Vec<(String, Vec<u16>)>,
    /// Containers with no `EXPOSE`d port, that were given a guessed one.
    guessed: BTreeSet<String>,
    lb: String,
    lb_port: u16,
}

/// [`init`] with the environment passed in (for tests).
pub(crate) fn init_with_env(
    args: &InitArgs,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PathBuf>, Error> {
    let dir = &args.common.dir;
    let taskdef = match args.common.taskdef.as_slice() {
        [] => PathBuf::from("taskdef.json"),
        [one] => one.clone(),
        _ => {
            return Err(Error::Usage(
                "stackbake init writes one task definition: pass one --taskdef (copy it for staging and prod afterwards)".to_string(),
            ));
        }
    };
    let targets = [
        dir.join(&taskdef),
        dir.join(&args.common.appspec),
        dir.join("buildspec.yml"),
    ];
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
    let df_path = dir.join(&args.common.dockerfile);
    let text = std::fs::read_to_string(&df_path).map_err(|e| {
        input(
            &df_path,
            format!("cannot read the Dockerfile ({e}); init writes starters for an existing Dockerfile's stages, pass --dockerfile or --dir"),
        )
    })?;
    let df = dockerfile::parse(&text).map_err(|e| input(&df_path, e.to_string()))?;
    let plan = plan(args, &df, &df_path, env)?;

    let taskdef = taskdef_json(&plan);
    let appspec = appspec_yaml(&plan);
    let rel = |p: &Path| {
        p.file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
    };
    let buildspec = buildspec_yaml(&rel(&targets[0]), &rel(&targets[1]));
    let mut written = Vec::new();
    for (path, body) in targets.iter().zip([taskdef, appspec, buildspec]) {
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

fn plan(
    args: &InitArgs,
    df: &Dockerfile,
    df_path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Plan, Error> {
    let graph = df
        .graph(&BTreeMap::new())
        .map_err(|e| input(df_path, e.to_string()))?;
    let named: Vec<(usize, String)> = df
        .stages
        .iter()
        .filter_map(|s| s.name.clone().map(|n| (s.index, n)))
        .collect();
    let all_names = || {
        named
            .iter()
            .map(|(_, n)| n.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let chosen: Vec<(usize, String)> = if args.stages.is_empty() {
        named
            .iter()
            .filter(|(i, _)| {
                !graph
                    .deps
                    .iter()
                    .enumerate()
                    .any(|(j, d)| j != *i && d.contains(i))
            })
            .cloned()
            .collect()
    } else {
        let mut v = Vec::new();
        for s in &args.stages {
            let lower = s.to_lowercase();
            match named.iter().find(|(_, n)| *n == lower) {
                Some(found) if !v.contains(found) => v.push(found.clone()),
                Some(_) => {}
                None => {
                    return Err(Error::Usage(format!(
                        "--stage {s}: the Dockerfile has no stage `{s}`; its named stages are: {}",
                        all_names()
                    )));
                }
            }
        }
        v.sort();
        v
    };
    if chosen.is_empty() {
        return Err(Error::Usage(format!(
            "{}: no deployable stage: name the stages to deploy (`FROM ... AS api`) or pass --stage; named stages: {}",
            df_path.display(),
            if named.is_empty() {
                "(none)".to_owned()
            } else {
                all_names()
            }
        )));
    }

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
    let lb = match &args.lb_container {
        Some(lb) => {
            let lower = lb.to_lowercase();
            if !chosen.iter().any(|(_, n)| *n == lower) {
                return Err(Error::Usage(format!(
                    "--lb-container {lb}: not one of the stages being written: {}",
                    chosen
                        .iter()
                        .map(|(_, n)| n.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            lower
        }
        None => chosen
            .iter()
            .find(|(i, _)| {
                exposed(df, &graph.bases, *i)
                    .iter()
                    .any(|p| [80, 443].contains(p))
            })
            .or_else(|| {
                chosen
                    .iter()
                    .find(|(i, _)| !exposed(df, &graph.bases, *i).is_empty())
            })
            .or_else(|| chosen.first())
            .map(|(_, n)| n.clone())
            .unwrap_or_default(),
    };

    // Ports: each container keeps the EXPOSEd ports no earlier container took.
    let mut used = BTreeSet::new();
    let mut containers = Vec::new();
    let mut guessed = BTreeSet::new();
    for (i, name) in &chosen {
        let ports: Vec<u16> = exposed(df, &graph.bases, *i)
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
    Ok(Plan {
        project,
        account,
        region,
        containers,
        guessed,
        lb,
        lb_port,
    })
}

fn taskdef_json(p: &Plan) -> String {
    let defs: Vec<Value> = p
        .containers
        .iter()
        .enumerate()
        .map(|(index, (name, ports))| {
            let mut todo = Vec::new();
            if index == 0 {
                todo.push(format!(
                "TODO: add secrets as \"secrets\": [{{\"name\": \"VAR\", \"valueFrom\": \"arn:aws:secretsmanager:{}:{}:secret:NAME-AbCdEf\"}}] and plain settings as \"environment\", then delete this label",
                p.region, p.account
                ));
            }
            if p.guessed.contains(name) {
                todo.push(if ports.is_empty() {
                    "TODO: stage has no EXPOSE; add portMappings if this container listens on a port".to_owned()
                } else {
                    format!(
                        "TODO: stage has no EXPOSE; set portMappings (and ContainerPort in the appspec) to the port it listens on instead of {}",
                        ports[0]
                    )
                });
            }
            let mut labels = serde_json::Map::new();
            let todo_count = todo.len();
            for (i, t) in todo.into_iter().enumerate() {
                labels.insert(format!("stackbake.todo.{}", i + 1), Value::String(t));
            }
            let mut c = json!({
                "name": name,
                "image": format!("{}.dkr.ecr.{}.amazonaws.com/{}-{}:latest", p.account, p.region, p.project, name),
                "essential": true,
            });
            if let Value::Object(obj) = &mut c {
                if !ports.is_empty() {
                    obj.insert(
                        "portMappings".to_owned(),
                        ports
                            .iter()
                            .map(|port| json!({"containerPort": port, "hostPort": port, "protocol": "tcp"}))
                            .collect(),
                    );
                }
                obj.insert("environment".to_owned(), json!([]));
                if todo_count > 0 {
                    obj.insert("dockerLabels".to_owned(), Value::Object(labels));
                }
                obj.insert(
                    "logConfiguration".to_owned(),
                    json!({
                        "logDriver": "awslogs",
                        "options": {
                            "awslogs-group": format!("/ecs/{}", p.project),
                            "awslogs-region": p.region,
                            "awslogs-stream-prefix": name,
                        }
                    }),
                );
            }
            c
        })
        .collect();
    let doc = json!({
        "family": p.project,
        "networkMode": "awsvpc",
        "requiresCompatibilities": ["FARGATE"],
        "cpu": "256",
        "memory": "512",
        "executionRoleArn": format!("arn:aws:iam::{}:role/TODO-{}-execution-role", p.account, p.project),
        "taskRoleArn": format!("arn:aws:iam::{}:role/TODO-{}-task-role", p.account, p.project),
        "containerDefinitions": defs,
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| doc.to_string());
    text.push('\n');
    text
}

fn appspec_yaml(p: &Plan) -> String {
    let port_note = if p.guessed.contains(&p.lb) {
        "  # TODO: the port this container listens on (its stage has no EXPOSE)"
    } else {
        ""
    };
    let name = serde_json::to_string(&p.lb).unwrap_or_else(|_| format!("\"{}\"", p.lb));
    format!(
        "# CodeDeploy ECS blue/green appspec, written by `stackbake init`.\n\
         # CodePipeline replaces <TASK_DEFINITION> with the task definition it registers.\n\
         version: 0.0\n\
         Resources:\n\
         \x20 - TargetService:\n\
         \x20     Type: AWS::ECS::Service\n\
         \x20     Properties:\n\
         \x20       TaskDefinition: <TASK_DEFINITION>\n\
         \x20       LoadBalancerInfo:\n\
         \x20         ContainerName: {name}\n\
         \x20         ContainerPort: {}{port_note}\n",
        p.lb_port
    )
}

fn buildspec_yaml(taskdef: &str, appspec: &str) -> String {
    format!(
        "# CodeBuild buildspec, written by `stackbake init`. The CodeBuild project\n\
         # needs privileged mode ON: stackbake drives the image's Docker daemon.\n\
         version: 0.2\n\
         \n\
         env:\n\
         \x20 variables:\n\
         \x20   # Where the stackbake {version} release binary (stackbake-x86_64-linux)\n\
         \x20   # is published (GitHub release or your S3 mirror), and its sha256.\n\
         \x20   STACKBAKE_URL: \"TODO-https-url-of-stackbake-x86_64-linux\"\n\
         \x20   STACKBAKE_SHA256: \"TODO-sha256-of-stackbake-x86_64-linux\"\n\
         \n\
         phases:\n\
         \x20 install:\n\
         \x20   commands:\n\
         \x20     - curl -fsSL --retry 3 -o stackbake \"${{STACKBAKE_URL}}\"\n\
         \x20     - echo \"${{STACKBAKE_SHA256}}  stackbake\" | sha256sum -c -\n\
         \x20     - chmod +x stackbake\n\
         \x20     - ./stackbake --version\n\
         \x20 build:\n\
         \x20   commands:\n\
         \x20     - ./stackbake build\n\
         \n\
         artifacts:\n\
         \x20 files:\n\
         \x20   - {taskdef}\n\
         \x20   - {appspec}\n\
         \x20   - imageDetail.json\n\
         \x20   - imagedefinitions.json\n\
         \x20   - stackbake-report.json\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::{self, ProjectFiles, Severity};
    use crate::cli::CommonArgs;

    fn args(dir: &Path) -> InitArgs {
        InitArgs {
            common: CommonArgs {
                dir: dir.to_path_buf(),
                dockerfile: "Dockerfile".into(),
                taskdef: vec!["taskdef.json".into()],
                appspec: "appspec.yaml".into(),
                json: false,
                verbose: false,
            },
            project: Some("bash-dog".into()),
            account: Some("210987654321".into()),
            region: Some("eu-west-1".into()),
            stages: Vec::new(),
            lb_container: None,
        }
    }

    const EXAMPLE_DOCKERFILE: &str = include_str!("../Dockerfile");

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn files(dir: &Path) -> ProjectFiles {
        ProjectFiles {
            dir: dir.to_path_buf(),
            dockerfile: dir.join("Dockerfile"),
            taskdef: dir.join("taskdef.json"),
            extra_taskdefs: Vec::new(),
            appspec: dir.join("appspec.yaml"),
            buildspec: dir.join("buildspec.yml"),
        }
    }

    fn only_todos(dir: &Path) {
        let findings = check::check(&files(dir));
        let other: Vec<_> = findings
            .iter()
            .filter(|f| f.rule != "placeholder/todo")
            .collect();
        assert!(other.is_empty(), "{}", check::render_human(&findings));
        assert!(findings.iter().all(|f| f.severity == Severity::Warning));
        assert!(findings.iter().any(|f| f.file == "taskdef.json"));
    }

    #[test]
    fn example_dockerfile_gives_three_containers_that_pass_check()
    -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
        let written = init_with_env(&args(tmp.path()), &no_env)?;
        assert_eq!(written.len(), 3);
        let td: Value =
            serde_json::from_str(&std::fs::read_to_string(tmp.path().join("taskdef.json"))?)?;
        let names: Vec<&str> = td["containerDefinitions"]
            .as_array()
            .map(|a| a.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        assert_eq!(names, ["api", "sidecar", "nginx"]);
        assert_eq!(
            td["containerDefinitions"][0]["image"],
            "210987654321.dkr.ecr.eu-west-1.amazonaws.com/bash-dog-api:latest"
        );
        assert_eq!(
            td["containerDefinitions"][0]["portMappings"][0]["containerPort"],
            8080
        );
        assert_eq!(td["networkMode"], "awsvpc");
        let appspec = std::fs::read_to_string(tmp.path().join("appspec.yaml"))?;
        // the stage that EXPOSEs 80 is the load-balanced one
        assert!(appspec.contains("ContainerName: \"nginx\""), "{appspec}");
        assert!(appspec.contains("ContainerPort: 80\n"), "{appspec}");
        let buildspec = std::fs::read_to_string(tmp.path().join("buildspec.yml"))?;
        assert!(buildspec.contains("- ./stackbake build\n"), "{buildspec}");
        for a in ["taskdef.json", "appspec.yaml", "imageDetail.json"] {
            assert!(buildspec.contains(&format!("    - {a}\n")), "{buildspec}");
        }
        only_todos(tmp.path());
        Ok(())
    }

    #[test]
    fn stage_and_lb_flags_choose_containers() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
        let mut a = args(tmp.path());
        a.stages = vec!["nginx".into(), "sidecar".into()];
        a.lb_container = Some("nginx".into());
        init_with_env(&a, &no_env)?;
        let td = std::fs::read_to_string(tmp.path().join("taskdef.json"))?;
        assert!(td.contains("bash-dog-sidecar") && td.contains("bash-dog-nginx"));
        assert!(!td.contains("bash-dog-api"));
        let appspec = std::fs::read_to_string(tmp.path().join("appspec.yaml"))?;
        assert!(
            appspec.contains("ContainerName: \"nginx\"") && appspec.contains("ContainerPort: 80\n")
        );
        only_todos(tmp.path());
        Ok(())
    }

    #[test]
    fn stages_without_expose_get_todo_ports_and_still_pass()
    -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        std::fs::write(
            tmp.path().join("Dockerfile"),
            "FROM alpine AS base\nEXPOSE 80\nFROM base AS web\nFROM base AS admin\nFROM alpine AS worker\n",
        )?;
        let mut a = args(tmp.path());
        a.lb_container = Some("worker".into());
        a.region = None;
        init_with_env(&a, &|k| {
            (k == "AWS_DEFAULT_REGION").then(|| "ap-south-1".to_owned())
        })?;
        let td = std::fs::read_to_string(tmp.path().join("taskdef.json"))?;
        assert!(td.contains("ap-south-1"));
        let appspec = std::fs::read_to_string(tmp.path().join("appspec.yaml"))?;
        assert!(appspec.contains("ContainerPort: 8080  # TODO"), "{appspec}");
        only_todos(tmp.path());
        Ok(())
    }

    #[test]
    fn refuses_to_overwrite_and_writes_nothing() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
        std::fs::write(tmp.path().join("appspec.yaml"), "mine")?;
        let e = init_with_env(&args(tmp.path()), &no_env)
            .err()
            .ok_or("init succeeded")?;
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("appspec.yaml"), "{e}");
        assert!(!tmp.path().join("taskdef.json").exists());
        assert!(!tmp.path().join("buildspec.yml").exists());
        assert_eq!(
            std::fs::read_to_string(tmp.path().join("appspec.yaml"))?,
            "mine"
        );
        Ok(())
    }

    #[test]
    fn bad_input_is_a_usage_error() -> Result<(), Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        // no Dockerfile
        let e = init_with_env(&args(tmp.path()), &no_env)
            .err()
            .ok_or("ok")?;
        assert_eq!(e.exit_code(), 2);
        std::fs::write(tmp.path().join("Dockerfile"), EXAMPLE_DOCKERFILE)?;
        for change in [
            |a: &mut InitArgs| a.account = None,
            |a: &mut InitArgs| a.account = Some("12345".into()),
            |a: &mut InitArgs| a.region = None,
            |a: &mut InitArgs| a.project = Some("Bad Name".into()),
            |a: &mut InitArgs| a.stages = vec!["nope".into()],
            |a: &mut InitArgs| a.lb_container = Some("base".into()),
        ] {
            let mut a = args(tmp.path());
            change(&mut a);
            let e = init_with_env(&a, &no_env).err().ok_or("ok")?;
            assert_eq!(e.exit_code(), 2, "{e}");
        }
        assert!(!tmp.path().join("taskdef.json").exists());
        // unnamed stages only
        let tmp2 = tempfile::tempdir()?;
        std::fs::write(tmp2.path().join("Dockerfile"), "FROM alpine\nRUN true\n")?;
        let e = init_with_env(&args(tmp2.path()), &no_env)
            .err()
            .ok_or("ok")?;
        assert!(e.to_string().contains("no deployable stage"), "{e}");
        Ok(())
    }
}

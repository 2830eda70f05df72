//! The starter files' text: taskdef.json, appspec.yaml and buildspec.yml.

use serde_json::{Value, json};

use super::Plan;

pub(super) fn taskdef_json(p: &Plan) -> String {
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

pub(super) fn appspec_yaml(p: &Plan) -> String {
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

/// The `env` and `phases.install` sections every buildspec `init` writes:
/// where the release binary comes from, its checksum check, and `settings`
/// (further `env.variables` lines, see `super::build_settings`).
pub(super) fn env_and_install(settings: &str) -> String {
    format!(
        "env:\n\
         \x20 variables:\n\
         \x20   # Where the stackbake {version} release binary (stackbake-x86_64-linux)\n\
         \x20   # is published (GitHub release or your S3 mirror), and its sha256.\n\
         \x20   STACKBAKE_URL: \"TODO-https-url-of-stackbake-x86_64-linux\"\n\
         \x20   STACKBAKE_SHA256: \"TODO-sha256-of-stackbake-x86_64-linux\"\n\
         {settings}\
         \n\
         phases:\n\
         \x20 install:\n\
         \x20   commands:\n\
         \x20     - curl -fsSL --retry 3 -o stackbake \"${{STACKBAKE_URL}}\"\n\
         \x20     - echo \"${{STACKBAKE_SHA256}}  stackbake\" | sha256sum -c -\n\
         \x20     - chmod +x stackbake\n\
         \x20     - ./stackbake --version\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// `settings`: further `env.variables` lines (see `super::build_settings`).
pub(super) fn buildspec_yaml(taskdef: &str, appspec: &str, settings: &str) -> String {
    format!(
        "# CodeBuild buildspec, written by `stackbake init`. The CodeBuild project\n\
         # needs privileged mode ON: stackbake drives the image's Docker daemon.\n\
         version: 0.2\n\
         \n\
         {env_and_install}\
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
        env_and_install = env_and_install(settings),
    )
}

//! `check`'s `taskdef/` and `network/` rules, each on a small broken
//! fixture at the right line.

use super::tests::{DOCKERFILE, fired, replace, run, stack_with};
use super::*;

// ---- taskdef/ ----

#[test]
fn taskdef_invalid_json_at_position() {
    let f = stack_with(
        "taskdef.json",
        replace("\"cpu\": \"512\",", "\"cpu\": \"512\",,"),
    );
    fired(
        &f,
        "taskdef/invalid-json",
        "taskdef.json",
        5,
        Severity::Error,
    );
}

#[test]
fn taskdef_structure_and_describe_output() {
    let f = run(&[("taskdef.json", "[1, 2]")]);
    fired(&f, "taskdef/structure", "taskdef.json", 1, Severity::Error);
    let f = run(&[(
        "taskdef.json",
        "{\n  \"taskDefinition\": {\"containerDefinitions\": []}\n}",
    )]);
    fired(
        &f,
        "taskdef/describe-output",
        "taskdef.json",
        2,
        Severity::Error,
    );
    let f = stack_with(
        "taskdef.json",
        replace("\"name\": \"worker\",", "\"name\": 7,"),
    );
    fired(&f, "taskdef/structure", "taskdef.json", 27, Severity::Error);
}

/// `check` reads the task definition with the reader `build` uses, so a
/// repeated `image` key (which `build` refuses) is a finding too.
#[test]
fn taskdef_duplicate_key() {
    let f = stack_with(
        "taskdef.json",
        replace(
            "\"essential\": false,",
            "\"essential\": false, \"image\": \"210987654321.dkr.ecr.eu-west-1.amazonaws.com/shop-worker:v2\",",
        ),
    );
    fired(&f, "taskdef/structure", "taskdef.json", 29, Severity::Error);
    assert!(
        f.iter()
            .any(|f| f.message == "key `image` appears twice in the same object"),
        "{}",
        render_human(&f)
    );
}

#[test]
fn taskdef_empty_container_definitions() {
    let f = run(&[(
        "taskdef.json",
        "{\n  \"family\": \"x\",\n  \"containerDefinitions\": []\n}",
    )]);
    fired(&f, "taskdef/structure", "taskdef.json", 3, Severity::Error);
}

#[test]
fn taskdef_duplicate_container_name() {
    let f = stack_with(
        "taskdef.json",
        replace("\"name\": \"worker\",", "\"name\": \"api\","),
    );
    fired(
        &f,
        "taskdef/duplicate-container-name",
        "taskdef.json",
        27,
        Severity::Error,
    );
}

#[test]
fn taskdef_output_only_fields() {
    let f = stack_with(
        "taskdef.json",
        replace(
            "  \"family\": \"shop\",",
            "  \"family\": \"shop\",\n  \"revision\": 7,\n  \"status\": \"ACTIVE\",",
        ),
    );
    fired(
        &f,
        "taskdef/output-only-field",
        "taskdef.json",
        3,
        Severity::Error,
    );
    fired(
        &f,
        "taskdef/output-only-field",
        "taskdef.json",
        4,
        Severity::Error,
    );
}

#[test]
fn taskdef_fargate_network_mode() {
    let f = stack_with(
        "taskdef.json",
        replace("\"networkMode\": \"awsvpc\"", "\"networkMode\": \"bridge\""),
    );
    fired(
        &f,
        "taskdef/fargate-network-mode",
        "taskdef.json",
        3,
        Severity::Error,
    );
}

#[test]
fn taskdef_fargate_cpu_memory() {
    let f = stack_with(
        "taskdef.json",
        replace("\"memory\": \"1024\"", "\"memory\": \"512\""),
    );
    fired(
        &f,
        "taskdef/fargate-cpu-memory",
        "taskdef.json",
        6,
        Severity::Error,
    );
    let f = stack_with(
        "taskdef.json",
        replace("\"cpu\": \"512\"", "\"cpu\": \"300\""),
    );
    fired(
        &f,
        "taskdef/fargate-cpu-memory",
        "taskdef.json",
        5,
        Severity::Error,
    );
    let f = stack_with("taskdef.json", replace("  \"memory\": \"1024\",\n", ""));
    assert!(
        f.iter().any(|f| f.rule == "taskdef/fargate-cpu-memory"),
        "{}",
        render_human(&f)
    );
    // the unit spellings AWS accepts are fine
    let f = stack_with(
        "taskdef.json",
        replace(
            "\"cpu\": \"512\",\n  \"memory\": \"1024\"",
            "\"cpu\": \"0.5 vCPU\",\n  \"memory\": \"2 GB\"",
        ),
    );
    assert!(f.is_empty(), "{}", render_human(&f));
}

#[test]
fn taskdef_execution_role_required() {
    let f = stack_with(
        "taskdef.json",
        replace(
            "  \"executionRoleArn\": \"arn:aws:iam::210987654321:role/shop-execution\",\n",
            "",
        ),
    );
    fired(
        &f,
        "taskdef/execution-role-required",
        "taskdef.json",
        15,
        Severity::Error,
    );
}

#[test]
fn taskdef_unknown_container_refs() {
    let f = stack_with(
        "taskdef.json",
        replace(
            "\"containerName\": \"worker\"",
            "\"containerName\": \"wrker\"",
        ),
    );
    fired(
        &f,
        "taskdef/unknown-container-ref",
        "taskdef.json",
        20,
        Severity::Error,
    );
    let f = stack_with(
        "taskdef.json",
        replace(
            "\"essential\": false,",
            "\"essential\": false, \"links\": [\"nope\"],",
        ),
    );
    fired(
        &f,
        "taskdef/unknown-container-ref",
        "taskdef.json",
        29,
        Severity::Error,
    );
}

#[test]
fn taskdef_no_essential_container() {
    let f = stack_with(
        "taskdef.json",
        replace("\"essential\": true", "\"essential\": false"),
    );
    fired(
        &f,
        "taskdef/no-essential-container",
        "taskdef.json",
        9,
        Severity::Error,
    );
}

#[test]
fn taskdef_too_many_image_placeholders() {
    let mut defs = Vec::new();
    for i in 1..=5 {
        defs.push(format!(
            "    {{\"name\": \"c{i}\", \"image\": \"<IMAGE{i}_NAME>\"}}"
        ));
    }
    let td = format!(
        "{{\n  \"containerDefinitions\": [\n{}\n  ]\n}}\n",
        defs.join(",\n")
    );
    let f = run(&[("Dockerfile", DOCKERFILE), ("taskdef.json", &td)]);
    fired(
        &f,
        "taskdef/too-many-image-placeholders",
        "taskdef.json",
        7,
        Severity::Error,
    );
}

// ---- network/ ----

#[test]
fn network_duplicate_port() {
    let f = stack_with(
        "taskdef.json",
        replace("\"containerPort\": 9000", "\"containerPort\": 8080"),
    );
    fired(
        &f,
        "network/duplicate-port",
        "taskdef.json",
        30,
        Severity::Error,
    );
}

#[test]
fn network_host_port_mismatch() {
    let f = stack_with(
        "taskdef.json",
        replace("\"hostPort\": 8080", "\"hostPort\": 80"),
    );
    fired(
        &f,
        "network/host-port-mismatch",
        "taskdef.json",
        14,
        Severity::Error,
    );
}

#[test]
fn network_container_hostname() {
    let f = stack_with(
        "taskdef.json",
        replace("http://localhost:9000", "http://worker:9000"),
    );
    fired(
        &f,
        "network/container-hostname",
        "taskdef.json",
        15,
        Severity::Warning,
    );
}

#[test]
fn network_links_on_awsvpc() {
    let f = stack_with(
        "taskdef.json",
        replace(
            "\"essential\": true,",
            "\"essential\": true, \"links\": [\"worker\"],",
        ),
    );
    fired(
        &f,
        "network/links-awsvpc",
        "taskdef.json",
        13,
        Severity::Error,
    );
}

//! `check`'s `secrets/` and `placeholder/` rules, each on a small broken
//! fixture at the right line.

use super::tests::{fired, replace, stack_with};
use super::*;

// ---- secrets/ ----

#[test]
fn secrets_malformed_arn() {
    let f = stack_with(
        "taskdef.json",
        replace(
            "arn:aws:ssm:eu-west-1:210987654321:parameter/",
            "arn:aws:ssm:eu-west-1:2109876:parameter/",
        ),
    );
    fired(
        &f,
        "secrets/malformed-arn",
        "taskdef.json",
        18,
        Severity::Error,
    );
    let f = stack_with(
        "taskdef.json",
        replace(":parameter/shop/api-key", ":param/shop/api-key"),
    );
    fired(
        &f,
        "secrets/malformed-arn",
        "taskdef.json",
        18,
        Severity::Error,
    );
}

#[test]
fn secrets_missing_suffix() {
    let f = stack_with("taskdef.json", replace("shop/db-AbC123", "shop/db"));
    fired(
        &f,
        "secrets/missing-suffix",
        "taskdef.json",
        17,
        Severity::Warning,
    );
}

#[test]
fn secrets_json_key_colons() {
    let f = stack_with("taskdef.json", replace(":password::", ":password"));
    fired(
        &f,
        "secrets/json-key-colons",
        "taskdef.json",
        17,
        Severity::Error,
    );
    let f = stack_with("taskdef.json", replace(":password::", ":password:"));
    fired(
        &f,
        "secrets/json-key-colons",
        "taskdef.json",
        17,
        Severity::Error,
    );
}

#[test]
fn secrets_json_key_mismatch() {
    // the key is another variable's name
    let f = stack_with("taskdef.json", replace(":password::", ":API_KEY::"));
    fired(
        &f,
        "secrets/json-key-mismatch",
        "taskdef.json",
        17,
        Severity::Warning,
    );
    // an env-var-style key that is not this variable's
    let f = stack_with("taskdef.json", replace(":password::", ":DB_USER::"));
    fired(
        &f,
        "secrets/json-key-mismatch",
        "taskdef.json",
        17,
        Severity::Warning,
    );
    // two variables read the same key of the same secret
    let f = stack_with(
        "taskdef.json",
        replace(
            "        { \"name\": \"API_KEY\", \"valueFrom\": \"arn:aws:ssm:eu-west-1:210987654321:parameter/shop/api-key\" }",
            "        { \"name\": \"DB_USER\", \"valueFrom\": \"arn:aws:secretsmanager:eu-west-1:210987654321:secret:shop/db-AbC123:password::\" }",
        ),
    );
    fired(
        &f,
        "secrets/json-key-mismatch",
        "taskdef.json",
        18,
        Severity::Warning,
    );
    // a lowercase key that names a part of the variable is fine (DB_PASSWORD ← password): the valid corpus
}

#[test]
fn secrets_other_region_or_account() {
    let f = stack_with(
        "taskdef.json",
        replace(
            "secretsmanager:eu-west-1:210987654321",
            "secretsmanager:us-east-1:210987654321",
        ),
    );
    fired(
        &f,
        "secrets/other-region-or-account",
        "taskdef.json",
        17,
        Severity::Warning,
    );
}

// ---- placeholder/ ----

#[test]
fn placeholder_example_account() {
    let f = stack_with(
        "taskdef.json",
        replace("role/shop-task", "role/shop-task-123456789012"),
    );
    fired(
        &f,
        "placeholder/example-account",
        "taskdef.json",
        8,
        Severity::Warning,
    );
}

#[test]
fn placeholder_example_value() {
    let f = stack_with(
        "taskdef.json",
        replace("role/shop-task", "role/<task-role>"),
    );
    fired(
        &f,
        "placeholder/example-value",
        "taskdef.json",
        8,
        Severity::Warning,
    );
}

#[test]
fn placeholder_inconsistent_account_region() {
    let f = stack_with(
        "taskdef.json",
        replace(
            "\"awslogs-region\": \"eu-west-1\"",
            "\"awslogs-region\": \"us-east-1\"",
        ),
    );
    fired(
        &f,
        "placeholder/inconsistent-account-region",
        "taskdef.json",
        23,
        Severity::Warning,
    );
    let f = stack_with(
        "taskdef.json",
        replace(
            "iam::210987654321:role/shop-task",
            "iam::999999999999:role/shop-task",
        ),
    );
    fired(
        &f,
        "placeholder/inconsistent-account-region",
        "taskdef.json",
        8,
        Severity::Warning,
    );
}

#[test]
fn placeholder_example_value_in_yaml() {
    let f = stack_with(
        "buildspec.yml",
        replace(
            "      - stackbake build --mirror",
            "      - curl -o sb https://<bucket>/sb  # fetch <it>\n      - stackbake build --mirror",
        ),
    );
    fired(
        &f,
        "placeholder/example-value",
        "buildspec.yml",
        5,
        Severity::Warning,
    );
    assert_eq!(f.len(), 1, "{}", render_human(&f));
    let f = stack_with("buildspec.yml", |t| {
        format!("# <org> in a comment is fine\n{t}")
    });
    assert!(f.is_empty(), "{}", render_human(&f));
}

#[test]
fn placeholder_todo() {
    let f = stack_with(
        "appspec.yaml",
        replace("ContainerPort: 8080", "ContainerPort: 8080 # TODO check"),
    );
    fired(&f, "placeholder/todo", "appspec.yaml", 9, Severity::Warning);
    let f = stack_with(
        "taskdef.json",
        replace("\"family\": \"shop\"", "\"family\": \"TODO\""),
    );
    fired(&f, "placeholder/todo", "taskdef.json", 2, Severity::Warning);
}

use super::*;

/// The example stack's task definition; the path works from the scratch
/// crate and from the main crate (both keep it at the crate root).
pub(crate) const EXAMPLE_TASKDEF: &str = include_str!("../../taskdef.json");

fn err(text: &str) -> TaskdefError {
    match TaskDef::parse(text) {
        Ok(td) => panic!("parsed: {td:?}"),
        Err(e) => e,
    }
}

#[test]
fn example_taskdef_lists_containers_in_order() -> Result<(), TaskdefError> {
    let td = TaskDef::parse(EXAMPLE_TASKDEF)?;
    assert_eq!(
        td.container_names(),
        ["nginx", "bash-dog-api", "sidecar", "log-router"]
    );
    assert_eq!(
        td.containers()[1].image,
        "123456789012.dkr.ecr.us-east-2.amazonaws.com/bash-dog-api:latest"
    );
    assert_eq!(td.region_hint().as_deref(), Some("us-east-2"));
    assert_eq!(td.family(), Some("bash-dog"));
    assert_eq!(td.raw(), EXAMPLE_TASKDEF);
    Ok(())
}

#[test]
fn invalid_json_reports_line_and_column() {
    let e = err("{\n  \"containerDefinitions\": [\n    {\"name\": \"a\",, }\n  ]\n}");
    let TaskdefError::Json { line, column, .. } = &e else {
        panic!("{e:?}");
    };
    assert_eq!((*line, *column), (3, 18));
    let msg = e.to_string();
    assert!(msg.starts_with("taskdef.json:3:18: invalid JSON"), "{msg}");
    assert_eq!(msg.matches("line").count(), 0, "{msg}");
}

#[test]
fn empty_and_truncated_input_are_errors() {
    assert!(matches!(err(""), TaskdefError::Json { .. }));
    assert!(matches!(
        err("{\"containerDefinitions\": ["),
        TaskdefError::Json { .. }
    ));
    assert!(matches!(
        err("[]"),
        TaskdefError::NotAnObject { found: "an array" }
    ));
}

#[test]
fn container_definitions_must_be_an_array() {
    assert!(matches!(
        err("{\"family\": \"x\"}"),
        TaskdefError::MissingContainerDefinitions { .. }
    ));
    assert!(matches!(
        err("{\"containerDefinitions\": {}}"),
        TaskdefError::ContainerDefinitionsNotArray { found: "an object" }
    ));
    assert!(matches!(
        err("{\"containerDefinitions\": [1]}"),
        TaskdefError::ContainerNotObject { index: 0, .. }
    ));
    let e = err("{\"taskDefinition\": {\"containerDefinitions\": []}}").to_string();
    assert!(e.contains("describe-task-definition"), "{e}");
}

#[test]
fn containers_need_string_name_and_image() {
    let e = err(r#"{"containerDefinitions": [{"image": "nginx"}]}"#);
    assert_eq!(
        e.to_string(),
        "taskdef.json: containerDefinitions[0]: `name` is missing; every container needs a non-empty string `name`"
    );
    let e = err(r#"{"containerDefinitions": [{"name": "web", "image": 5}]}"#);
    assert_eq!(
        e.to_string(),
        "taskdef.json: containerDefinitions[0] (web): `image` is a number; every container needs a non-empty string `image`"
    );
    let e = err(r#"{"containerDefinitions": [{"name": "web", "image": ""}]}"#);
    assert!(e.to_string().contains("`image` is empty"), "{e}");
}

#[test]
fn duplicate_container_names_are_rejected() {
    let e = err(
        r#"{"containerDefinitions": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}, {"name": "a", "image": "z"}]}"#,
    );
    assert_eq!(
        e,
        TaskdefError::DuplicateContainer {
            name: "a".into(),
            first: 0,
            second: 2
        }
    );
    assert!(e.to_string().contains("both named `a`"));
}

#[test]
fn duplicate_image_key_is_rejected_with_position() {
    let e = err(
        "{\"containerDefinitions\": [{\"name\": \"a\", \"image\": \"x\",\n \"image\": \"y\"}]}",
    );
    assert_eq!(
        e,
        TaskdefError::DuplicateKey {
            key: "image".into(),
            line: 2,
            column: 2
        }
    );
}

/// `read` reports every problem, each at its key path and line;
/// `parse` fails with the first, as it did when it stopped there.
#[test]
fn read_reports_every_problem_with_path_and_line() {
    let text = "{\"containerDefinitions\": [\n  {\"name\": \"a\", \"image\": 5},\n  7,\n  {\"name\": \"a\", \"image\": \"x\",\n   \"image\": \"y\"},\n  {\"image\": \"z\"}\n]}";
    let reading = TaskDef::read(text);
    let found: Vec<(&str, usize, usize)> = reading
        .problems()
        .iter()
        .map(|p| (p.path.as_str(), p.line, p.column))
        .collect();
    assert_eq!(
        found,
        [
            ("containerDefinitions[0].image", 2, 17),
            ("containerDefinitions[1]", 3, 3),
            ("containerDefinitions[2].name", 4, 4),
            ("containerDefinitions[3].name", 6, 3),
            ("containerDefinitions[2].image", 5, 4),
        ]
    );
    assert!(matches!(
        reading.problems()[2].error,
        TaskdefError::DuplicateContainer {
            first: 0,
            second: 2,
            ..
        }
    ));
    assert_eq!(
        err(text).to_string(),
        "taskdef.json: containerDefinitions[0] (a): `image` is a number; every container needs a non-empty string `image`"
    );
    assert!(reading.taskdef().is_none());
    assert!(reading.into_document().is_some());
    let clean = TaskDef::read(EXAMPLE_TASKDEF);
    assert!(clean.problems().is_empty());
    assert!(clean.taskdef().is_some());
}

/// Columns count characters: a key after multi-byte text is placed right.
#[test]
fn problem_columns_count_characters() {
    let reading = TaskDef::read("{\"description\": \"été 😀\", \"containerDefinitions\": {}}");
    let p = &reading.problems()[0];
    assert_eq!(
        (p.path.as_str(), p.line, p.column),
        ("containerDefinitions", 1, 26)
    );
}

/// `check` reported an empty `containerDefinitions` and `build` took
/// it; RegisterTaskDefinition rejects it, so both refuse it now.
#[test]
fn empty_container_definitions_is_an_error() {
    let e = err(r#"{"family": "x", "containerDefinitions": []}"#);
    assert_eq!(e, TaskdefError::NoContainers);
    assert!(
        e.to_string().contains("`containerDefinitions` is empty"),
        "{e}"
    );
}

#[test]
fn bom_is_accepted() -> Result<(), TaskdefError> {
    let td = TaskDef::parse(
        "\u{feff}{\"containerDefinitions\": [{\"name\": \"a\", \"image\": \"x\"}]}",
    )?;
    assert_eq!(td.container_names(), ["a"]);
    Ok(())
}

#[test]
fn region_hint_skips_non_ecr_images() -> Result<(), TaskdefError> {
    let td = TaskDef::parse(
        r#"{"containerDefinitions": [
                {"name": "a", "image": "public.ecr.aws/x/y"},
                {"name": "b", "image": "<IMAGE1_NAME>"},
                {"name": "c", "image": "999999999999.dkr.ecr.eu-central-1.amazonaws.com/p-c"}]}"#,
    )?;
    assert_eq!(td.region_hint().as_deref(), Some("eu-central-1"));
    let none = TaskDef::parse(r#"{"containerDefinitions": [{"name": "a", "image": "nginx"}]}"#)?;
    assert_eq!(none.region_hint(), None);
    Ok(())
}

#[test]
fn never_panics_on_garbage() {
    for s in [
        "",
        "{",
        "}",
        "[",
        "\"",
        "{\"containerDefinitions\"",
        "nul",
        "{\"a\":1}",
        "\u{feff}",
        "{\"containerDefinitions\": [{\"name\": \"\\ud800\", \"image\": \"x\"}]}",
        "{\"containerDefinitions\": [null, {}]}",
    ] {
        let _ = TaskDef::parse(s);
    }
}

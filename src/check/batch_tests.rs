//! The batch rules on `init --batch 3`'s buildspec and broken variants of
//! it: each mistake is caught, at its line, and the valid graph gives
//! nothing.

use super::buildspec_rules::{self, Expected};
use super::finding::{Finding, Severity, render_human};

fn valid() -> String {
    crate::init::batch::buildspec_yaml("taskdef.json", "appspec.yaml", 3, "")
}

fn findings(text: &str) -> Vec<Finding> {
    let mut out = Vec::new();
    let expected = Expected {
        taskdefs: &["taskdef.json"],
        appspec: "appspec.yaml",
        image_detail: true,
    };
    buildspec_rules::rules("buildspec.yml", text, &expected, &mut out);
    out
}

/// The findings of `rule`, after checking there is one at least.
#[track_caller]
fn fired(text: &str, rule: &str) -> Vec<Finding> {
    let f: Vec<Finding> = findings(text)
        .into_iter()
        .filter(|f| f.rule == rule)
        .collect();
    assert!(
        !f.is_empty(),
        "no {rule} in:\n{}\n{text}",
        render_human(&findings(text))
    );
    f
}

fn edit(from: &str, to: &str) -> String {
    let v = valid();
    let new = v.replacen(from, to, 1);
    assert_ne!(v, new, "{from:?} not in the buildspec");
    new
}

#[test]
fn the_graph_init_writes_passes() {
    let f = findings(&valid());
    assert!(f.is_empty(), "{}", render_human(&f));
}

#[test]
fn a_dangling_depend_on_is_caught() {
    let text = edit("        - shard_2\n", "        - shard_7\n");
    let f = fired(&text, "buildspec/batch-depend-on");
    assert!(f[0].message.contains("shard_7"), "{}", f[0].message);
    let line = text
        .lines()
        .position(|l| l.contains("depend-on:"))
        .map(|i| i + 1);
    assert_eq!(Some(f[0].line), line, "at the depend-on key");
    // …and the assemble build no longer waits for shard 2.
    let f = fired(&text, "buildspec/batch-assemble");
    assert!(f[0].message.contains("shard_2"), "{}", f[0].message);
}

#[test]
fn a_missing_or_doubled_shard_is_caught() {
    let text = edit("STACKBAKE_SHARD: \"2/3\"", "STACKBAKE_SHARD: \"3/3\"");
    let f = fired(&text, "buildspec/batch-shards");
    let messages: Vec<&str> = f.iter().map(|f| f.message.as_str()).collect();
    assert!(
        messages.iter().any(|m| m.contains("shard 2/3 is missing")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("shard 3/3 is built by shard_2 and shard_3")),
        "{messages:?}"
    );
    let text = edit("STACKBAKE_SHARD: \"2/3\"", "STACKBAKE_SHARD: \"2/4\"");
    fired(&text, "buildspec/batch-shards");
    let text = edit("STACKBAKE_SHARD: \"2/3\"", "STACKBAKE_SHARD: \"two\"");
    fired(&text, "buildspec/batch-shards");
    let text = edit(
        "env:\n  variables:\n",
        "env:\n  variables:\n    STACKBAKE_SHARD: \"1/3\"\n",
    );
    fired(&text, "buildspec/batch-shards");
}

#[test]
fn two_artifact_nodes_or_none_are_caught() {
    // shard_3 loses its STACKBAKE_SHARD: it would build everything too.
    let text = edit(
        "\n        variables:\n          STACKBAKE_SHARD: \"3/3\"",
        "",
    );
    let f = fired(&text, "buildspec/batch-assemble");
    assert!(
        f[0].message
            .contains("2 builds assemble the artifact (shard_3, assemble)"),
        "{}",
        f[0].message
    );
    assert_eq!(f[0].severity, Severity::Error);
    // The assemble build becomes a shard: nobody writes the artifact.
    let text = edit(
        "      depend-on:\n",
        "        variables:\n          STACKBAKE_SHARD: \"3/3\"\n      depend-on:\n",
    );
    fired(&text, "buildspec/batch-assemble");
}

#[test]
fn identifiers_and_cycles_are_checked() {
    let text = edit("identifier: shard_1", "identifier: shard-1");
    let f = fired(&text, "buildspec/batch-identifier");
    assert!(f[0].message.contains("shard-1"), "{}", f[0].message);
    let text = edit("identifier: shard_2", "identifier: shard_1");
    fired(&text, "buildspec/batch-identifier");
    let text = edit(
        "    - identifier: shard_1\n",
        "    - identifier: shard_1\n      depend-on:\n        - assemble\n",
    );
    let f = fired(&text, "buildspec/batch-depend-on");
    assert!(
        f.iter().any(|f| f.message.contains("cycle")),
        "{}",
        render_human(&f)
    );
}

#[test]
fn a_shard_without_ignore_failure_is_a_warning() {
    let text = edit(
        "    - identifier: shard_1\n      ignore-failure: true\n",
        "    - identifier: shard_1\n",
    );
    let f = fired(&text, "buildspec/batch-ignore-failure");
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Warning);
}

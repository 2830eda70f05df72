//! Rules on a batch buildspec's `batch: build-graph` (`buildspec/batch-…`),
//! the shape `stackbake init --batch N` writes: N shard builds, each with
//! `STACKBAKE_SHARD: "K/N"` in its `env.variables`, and one assemble build
//! (no `STACKBAKE_SHARD`) that `depend-on`s every shard and writes the
//! artifact.
//!
//! - `batch-identifier`: every build has an identifier of letters, digits
//!   and `_`, shorter than 128 characters (what CodeBuild accepts), unique.
//! - `batch-depend-on`: `depend-on` names builds of the graph, and the
//!   graph has no cycle.
//! - `batch-shards`: the `STACKBAKE_SHARD` values are `K/N` with one N, and
//!   cover 1..N once each; the buildspec-wide `env` sets none.
//! - `batch-assemble`: exactly one build runs this buildspec without a
//!   shard (the one whose artifact CodePipeline deploys), and it waits for
//!   every shard. Builds with their own `buildspec` are not counted.
//! - `batch-ignore-failure` (warning): a shard without `ignore-failure:
//!   true` stops the assemble build when it fails, though the assemble
//!   build would have rebuilt its targets.

use std::collections::{BTreeMap, BTreeSet};

use serde_yaml::Value;

use super::finding::{Finding, Severity};
use super::locate::YamlLocator;
use crate::build::shard::Shard;

/// The variable that makes a build a shard.
const SHARD_VAR: &str = "STACKBAKE_SHARD";

/// One build of the graph, as far as the rules care.
struct Node {
    /// Its identifier, as text (a non-string identifier is invalid).
    id: Option<String>,
    /// Its `depend-on` entries.
    depends: Vec<String>,
    /// Its `STACKBAKE_SHARD`, as written.
    shard: Option<String>,
    /// Whether it runs another buildspec file.
    own_buildspec: bool,
    /// `ignore-failure: true`.
    ignore_failure: bool,
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn node(v: &Value) -> Node {
    let shard = v
        .get("env")
        .and_then(|e| e.get("variables"))
        .and_then(|vars| vars.get(SHARD_VAR))
        .and_then(text);
    Node {
        id: v.get("identifier").and_then(text),
        depends: v
            .get("depend-on")
            .and_then(Value::as_sequence)
            .map(|l| l.iter().filter_map(text).collect())
            .unwrap_or_default(),
        shard,
        own_buildspec: v.get("buildspec").is_some(),
        ignore_failure: v.get("ignore-failure").and_then(Value::as_bool) == Some(true),
    }
}

/// Where findings go.
struct Out<'a> {
    file: &'a str,
    loc: &'a YamlLocator,
    out: &'a mut Vec<Finding>,
}

impl Out<'_> {
    fn push(
        &mut self,
        path: &str,
        severity: Severity,
        rule: &'static str,
        message: String,
        help: &str,
    ) {
        let at = if self.loc.has(path) {
            self.loc.at(path)
        } else {
            self.loc.at("batch")
        };
        self.out
            .push(Finding::new(self.file, at, severity, rule, message, help));
    }
}

/// Runs the batch rules when the buildspec has a `batch: build-graph`.
pub(crate) fn rules(file: &str, doc: &Value, loc: &YamlLocator, out: &mut Vec<Finding>) {
    let Some(graph) = doc
        .get("batch")
        .and_then(|b| b.get("build-graph"))
        .and_then(Value::as_sequence)
    else {
        return;
    };
    let nodes: Vec<Node> = graph.iter().map(node).collect();
    let mut out = Out { file, loc, out };
    identifiers(&nodes, &mut out);
    depend_on(&nodes, &mut out);
    shards(doc, &nodes, &mut out);
    assemble(&nodes, &mut out);
}

fn at(i: usize, key: &str) -> String {
    format!("batch.build-graph[{i}].{key}")
}

fn valid_identifier(id: &str) -> bool {
    !id.is_empty() && id.len() < 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn identifiers(nodes: &[Node], out: &mut Out<'_>) {
    const RULE: &str = "buildspec/batch-identifier";
    let mut seen: BTreeSet<&str> = BTreeSet::new();
    for (i, n) in nodes.iter().enumerate() {
        let Some(id) = &n.id else {
            out.push(
                &at(i, "identifier"),
                Severity::Error,
                RULE,
                format!("build {} of the build graph has no identifier", i + 1),
                "give every build an `identifier:` (letters, digits and `_`)",
            );
            continue;
        };
        if !valid_identifier(id) {
            out.push(&at(i, "identifier"), Severity::Error, RULE, format!("identifier `{id}` is not accepted by CodeBuild: only letters, digits and `_`, fewer than 128 characters"), "rename it, e.g. `shard_1` (no `-` or spaces)");
        }
        if !seen.insert(id) {
            out.push(
                &at(i, "identifier"),
                Severity::Error,
                RULE,
                format!("identifier `{id}` is used by two builds"),
                "give each build its own identifier",
            );
        }
    }
}

fn depend_on(nodes: &[Node], out: &mut Out<'_>) {
    const RULE: &str = "buildspec/batch-depend-on";
    let ids: Vec<&str> = nodes.iter().filter_map(|n| n.id.as_deref()).collect();
    for (i, n) in nodes.iter().enumerate() {
        for d in &n.depends {
            if !ids.contains(&d.as_str()) {
                out.push(
                    &at(i, "depend-on"),
                    Severity::Error,
                    RULE,
                    format!("`depend-on: {d}` names no build of the graph"),
                    &format!("use one of: {}", ids.join(", ")),
                );
            } else if n.id.as_deref() == Some(d.as_str()) {
                out.push(
                    &at(i, "depend-on"),
                    Severity::Error,
                    RULE,
                    format!("build `{d}` depends on itself"),
                    "remove it from its own depend-on",
                );
            }
        }
    }
    if let Some(cycle) = find_cycle(nodes) {
        out.push(
            "batch.build-graph",
            Severity::Error,
            RULE,
            format!(
                "the builds {} depend on each other in a cycle: none of them can start",
                cycle.join(" → ")
            ),
            "remove one depend-on of the cycle",
        );
    }
}

/// A dependency cycle (of two or more builds), if any.
fn find_cycle(nodes: &[Node]) -> Option<Vec<String>> {
    let edges: BTreeMap<&str, Vec<&str>> = nodes
        .iter()
        .filter_map(|n| {
            Some((
                n.id.as_deref()?,
                n.depends
                    .iter()
                    .map(String::as_str)
                    .filter(|d| Some(*d) != n.id.as_deref())
                    .collect(),
            ))
        })
        .collect();
    fn visit<'a>(
        v: &'a str,
        edges: &BTreeMap<&'a str, Vec<&'a str>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| *p == v) {
            let mut cycle: Vec<String> = path[start..].iter().map(|s| (*s).to_string()).collect();
            cycle.push(v.to_string());
            return Some(cycle);
        }
        if !done.insert(v) {
            return None;
        }
        path.push(v);
        for &next in edges.get(v).map(Vec::as_slice).unwrap_or_default() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|v| visit(v, &edges, &mut Vec::new(), &mut done))
}

fn shards(doc: &Value, nodes: &[Node], out: &mut Out<'_>) {
    const RULE: &str = "buildspec/batch-shards";
    if doc
        .get("env")
        .and_then(|e| e.get("variables"))
        .and_then(|v| v.get(SHARD_VAR))
        .is_some()
    {
        out.push(
            &format!("env.variables.{SHARD_VAR}"),
            Severity::Error,
            RULE,
            format!("`{SHARD_VAR}` is set for every build of the batch, the assemble build too"),
            "set it only in each shard's `env.variables` inside the build graph",
        );
    }
    let mut counts: BTreeSet<u32> = BTreeSet::new();
    let mut seen: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for (i, n) in nodes.iter().enumerate() {
        let Some(value) = &n.shard else { continue };
        match value.parse::<Shard>() {
            Ok(s) => {
                counts.insert(s.count);
                seen.entry(s.index)
                    .or_default()
                    .push(n.id.clone().unwrap_or_else(|| format!("#{}", i + 1)));
            }
            Err(e) => out.push(
                &at(i, "env.variables"),
                Severity::Error,
                RULE,
                format!("`{SHARD_VAR}: {e}`"),
                "write the shard as \"K/N\", e.g. \"2/3\"",
            ),
        }
    }
    if counts.len() > 1 {
        let listed: Vec<String> = counts.iter().map(u32::to_string).collect();
        out.push(
            "batch.build-graph",
            Severity::Error,
            RULE,
            format!(
                "the shards disagree on N ({}): each computes its share of a different split",
                listed.join(", ")
            ),
            "give every shard the same N, and one shard per K from 1 to N",
        );
        return;
    }
    let Some(&n) = counts.first() else { return };
    for k in 1..=n {
        match seen.get(&k).map(Vec::as_slice) {
            None | Some([]) => out.push("batch.build-graph", Severity::Error, RULE, format!("shard {k}/{n} is missing: no build sets `{SHARD_VAR}: \"{k}/{n}\"`, so its targets wait for the assemble build, which builds them alone"), &format!("add a build with `{SHARD_VAR}: \"{k}/{n}\"`, or lower N (`stackbake init --batch N` writes a complete graph)")),
            Some([_]) => {}
            Some(builds) => out.push("batch.build-graph", Severity::Error, RULE, format!("shard {k}/{n} is built by {}: they build the same targets", builds.join(" and ")), "give each shard build its own K"),
        }
    }
}

fn assemble(nodes: &[Node], out: &mut Out<'_>) {
    const RULE: &str = "buildspec/batch-assemble";
    let assemblers: Vec<usize> = (0..nodes.len())
        .filter(|&i| nodes[i].shard.is_none() && !nodes[i].own_buildspec)
        .collect();
    let name = |i: usize| nodes[i].id.clone().unwrap_or_else(|| format!("#{}", i + 1));
    match assemblers.as_slice() {
        [] => out.push("batch.build-graph", Severity::Error, RULE, "no build of the graph assembles the artifact: every build is a shard".to_owned(), "add a build without STACKBAKE_SHARD that depend-on's every shard; its artifact is the one to deploy"),
        [one] => {
            let deps = transitive(nodes, *one);
            for (i, n) in nodes.iter().enumerate() {
                if n.shard.is_some() && n.id.as_ref().is_some_and(|id| !deps.contains(id.as_str())) {
                    out.push(&at(*one, "depend-on"), Severity::Error, RULE, format!("the assemble build `{}` does not wait for shard `{}`: it may run first and build that shard's targets itself", name(*one), name(i)), &format!("add `{}` to its depend-on", name(i)));
                }
                if n.shard.is_some() && !n.ignore_failure {
                    out.push(&at(i, "identifier"), Severity::Warning, "buildspec/batch-ignore-failure", format!("shard `{}` has no `ignore-failure: true`: if it fails, `{}` does not run, though it would build what the shard left", name(i), name(*one)), "add `ignore-failure: true` to each shard build");
                }
            }
        }
        many => {
            let names: Vec<String> = many.iter().map(|&i| name(i)).collect();
            out.push("batch.build-graph", Severity::Error, RULE, format!("{} builds assemble the artifact ({}): each would build, move `latest` and write a task definition", many.len(), names.join(", ")), "keep one build without STACKBAKE_SHARD; make the others shards (env.variables STACKBAKE_SHARD: \"K/N\") or give them their own buildspec");
        }
    }
}

/// The identifiers `nodes[i]` waits for, directly or not.
fn transitive(nodes: &[Node], i: usize) -> BTreeSet<&str> {
    let by_id: BTreeMap<&str, &Node> = nodes
        .iter()
        .filter_map(|n| Some((n.id.as_deref()?, n)))
        .collect();
    let mut seen = BTreeSet::new();
    let mut todo: Vec<&str> = nodes[i].depends.iter().map(String::as_str).collect();
    while let Some(d) = todo.pop() {
        if seen.insert(d)
            && let Some(n) = by_id.get(d)
        {
            todo.extend(n.depends.iter().map(String::as_str));
        }
    }
    seen
}

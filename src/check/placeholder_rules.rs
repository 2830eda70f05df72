//! Leftover placeholders and unfinished find-and-replace (`placeholder/…`):
//! the documentation account `123456789012`, `<angle>` or `REPLACE_ME`
//! values, `TODO` markers (what `stackbake init` leaves for the user), and
//! accounts or regions that disagree between images, roles and log
//! configuration. Also computes the task's own account and region, which the
//! secrets rules compare against.

use std::collections::BTreeMap;

use serde_json::Value;

use super::finding::{Finding, Severity};
use super::taskdef_rules::{Td, ecr_parts};
use crate::reference::EcrHost;

/// The AWS documentation's example account.
pub(crate) const EXAMPLE_ACCOUNT: &str = "123456789012";

/// Placeholders that CodeDeploy/CodePipeline substitute, so they are not leftovers.
fn substituted(token: &str) -> bool {
    token == "<TASK_DEFINITION>"
        || token
            .strip_prefix("<IMAGE")
            .and_then(|r| r.strip_suffix("_NAME>"))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Every string of the document with its path.
fn strings<'v>(v: &'v Value, path: String, out: &mut Vec<(String, &'v str)>) {
    match v {
        Value::String(s) => out.push((path, s)),
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                strings(x, format!("{path}[{i}]"), out);
            }
        }
        Value::Object(o) => {
            for (k, x) in o {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                strings(x, p, out);
            }
        }
        _ => {}
    }
}

/// A parsed ARN: `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    pub resource: &'a str,
}

/// Splits an ARN into its fields; `None` when it has fewer than six.
pub(crate) fn parse_arn(s: &str) -> Option<Arn<'_>> {
    let mut it = s.splitn(6, ':');
    if it.next()? != "arn" {
        return None;
    }
    Some(Arn {
        partition: it.next()?,
        service: it.next()?,
        region: it.next()?,
        account: it.next()?,
        resource: it.next()?,
    })
}

/// Whether `r` looks like an AWS region (`us-east-2`, `us-gov-west-1`).
pub(crate) fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    parts.len() >= 3
        && parts[0].len() == 2
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts[1..parts.len() - 1]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts[parts.len() - 1]
            .parse::<u8>()
            .is_ok_and(|n| n > 0 && n < 20)
}

/// Whether `a` is a 12-digit account id.
pub(crate) fn is_account(a: &str) -> bool {
    a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
}

/// Where an account or region was read from.
struct Seen {
    path: String,
    what: &'static str,
    value: String,
}

/// Accounts and regions named by images, role and other ARNs, and log
/// configuration (secrets excluded: see `secrets_rules`).
fn identities(td: &Td) -> (Vec<Seen>, Vec<Seen>) {
    let mut all = Vec::new();
    strings(&td.value, String::new(), &mut all);
    let (mut accounts, mut regions) = (Vec::new(), Vec::new());
    for (path, s) in all {
        if path.ends_with(".valueFrom") {
            continue;
        }
        if path.ends_with(".image") {
            if let Some(EcrHost { account, region }) = ecr_parts(s) {
                accounts.push(Seen {
                    path: path.clone(),
                    what: "image",
                    value: account,
                });
                regions.push(Seen {
                    path,
                    what: "image",
                    value: region,
                });
            }
            continue;
        }
        if let Some(arn) = parse_arn(s) {
            let what = if path.ends_with("RoleArn") {
                "role"
            } else {
                "ARN"
            };
            if is_account(arn.account) {
                accounts.push(Seen {
                    path: path.clone(),
                    what,
                    value: arn.account.to_owned(),
                });
            }
            if is_region(arn.region) {
                regions.push(Seen {
                    path,
                    what,
                    value: arn.region.to_owned(),
                });
            }
            continue;
        }
        if path.contains("logConfiguration.options.")
            && (path.ends_with(".awslogs-region") || path.ends_with(".region"))
            && is_region(s)
        {
            regions.push(Seen {
                path,
                what: "log configuration",
                value: s.to_owned(),
            });
        }
    }
    (accounts, regions)
}

/// The most frequent value (the first one on ties).
fn majority(seen: &[Seen]) -> Option<&str> {
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, s) in seen.iter().enumerate() {
        counts.entry(&s.value).or_insert((0, i)).0 += 1;
    }
    counts
        .into_iter()
        .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.1.1.cmp(&a.1.1)))
        .map(|(v, _)| v)
}

/// The task's account and region, by majority of images, roles, ARNs and logs.
pub(crate) fn task_identity(td: &Td) -> (Option<String>, Option<String>) {
    let (accounts, regions) = identities(td);
    (
        majority(&accounts).map(str::to_owned),
        majority(&regions).map(str::to_owned),
    )
}

/// Placeholder rules on the task definition.
pub(crate) fn taskdef(td: &Td, out: &mut Vec<Finding>) {
    let mut all = Vec::new();
    strings(&td.value, String::new(), &mut all);
    let mut example: Vec<&str> = Vec::new();
    for (path, s) in &all {
        if s.contains("TODO") {
            out.push(Finding::new(
                &td.file,
                td.loc.value(path),
                Severity::Warning,
                "placeholder/todo",
                format!("TODO left in `{path}`: {s}"),
                "replace the TODO with the real value before deploying",
            ));
            continue;
        }
        if s.contains(EXAMPLE_ACCOUNT) {
            example.push(path);
            continue;
        }
        if let Some(token) = leftover_token(s) {
            out.push(Finding::new(
                &td.file,
                td.loc.value(path),
                Severity::Warning,
                "placeholder/example-value",
                format!("`{path}` still holds the placeholder `{token}`"),
                "replace it with the real value",
            ));
        }
    }
    if let Some(first) = example.first() {
        out.push(Finding::new(
            &td.file,
            td.loc.value(first),
            Severity::Warning,
            "placeholder/example-account",
            format!(
                "the AWS documentation's example account {EXAMPLE_ACCOUNT} is used ({} place{})",
                example.len(),
                if example.len() == 1 { "" } else { "s" }
            ),
            "replace it with your AWS account id everywhere (images, roles, secrets)",
        ));
    }
    let (accounts, regions) = identities(td);
    for (seen, kind) in [(&accounts, "account"), (&regions, "region")] {
        let Some(main) = majority(seen) else { continue };
        let Some(witness) = seen.iter().find(|s| s.value == main) else {
            continue;
        };
        for s in seen.iter().filter(|s| s.value != main) {
            out.push(Finding::new(
                &td.file,
                td.loc.value(&s.path),
                Severity::Warning,
                "placeholder/inconsistent-account-region",
                format!(
                    "{} `{}` names {kind} {}, but the {} `{}` and others use {main}",
                    s.what, s.path, s.value, witness.what, witness.path
                ),
                format!("an unfinished find-and-replace? use one {kind} throughout"),
            ));
        }
    }
}

/// A `<placeholder>` that nothing substitutes, or a `REPLACE_ME`-style word.
fn leftover_token(s: &str) -> Option<String> {
    let mut from = 0;
    while let Some(open) = s[from..].find('<') {
        let start = from + open;
        if let Some(len) = s[start..].find('>') {
            let token = &s[start..=start + len];
            let inner = &token[1..token.len() - 1];
            if !inner.is_empty()
                && inner.len() <= 40
                && inner.trim() == inner
                && inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | ' ' | '.'))
                && !substituted(token)
            {
                return Some(token.to_owned());
            }
        }
        from = start + 1;
    }
    let upper = s.to_ascii_uppercase();
    [
        "REPLACE_ME",
        "REPLACE-ME",
        "REPLACEME",
        "CHANGE_ME",
        "CHANGEME",
        "YOUR_ACCOUNT",
        "ACCOUNT_ID",
    ]
    .into_iter()
    .find(|w| upper.contains(w))
    .map(str::to_owned)
}

/// Placeholder rules on a YAML file (appspec, buildspec), line by line:
/// `TODO` and the example account (comments included), and `<placeholder>`
/// or `REPLACE_ME`-style values (comments excluded: they may explain them).
pub(crate) fn yaml(file: &str, text: &str, out: &mut Vec<Finding>) {
    for (n, line) in text.lines().enumerate() {
        let code = if line.trim_start().starts_with('#') {
            ""
        } else {
            line.find(" #").map_or(line, |i| &line[..i])
        };
        if !code.contains("TODO")
            && let Some(token) = leftover_token(code)
        {
            let at = code.find(&token).unwrap_or(0);
            out.push(Finding::new(
                file,
                (n + 1, code[..at].chars().count() + 1),
                Severity::Warning,
                "placeholder/example-value",
                format!("`{token}` is a placeholder left in: {}", code.trim()),
                "replace it with the real value",
            ));
        }
        if let Some(at) = line.find("TODO") {
            out.push(Finding::new(
                file,
                (n + 1, line[..at].chars().count() + 1),
                Severity::Warning,
                "placeholder/todo",
                format!("TODO left: {}", line.trim()),
                "replace the TODO with the real value before deploying",
            ));
        }
        if let Some(at) = line.find(EXAMPLE_ACCOUNT) {
            out.push(Finding::new(
                file,
                (n + 1, line[..at].chars().count() + 1),
                Severity::Warning,
                "placeholder/example-account",
                format!("the AWS documentation's example account {EXAMPLE_ACCOUNT} is used"),
                "replace it with your AWS account id",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_and_region_parsing() {
        let a = parse_arn("arn:aws:iam::123456789012:role/x");
        assert_eq!(
            a.map(|a| (a.service, a.region, a.account)),
            Some(("iam", "", "123456789012"))
        );
        assert!(parse_arn("arn:aws:iam").is_none());
        assert!(is_region("us-east-2"));
        assert!(is_region("us-gov-west-1"));
        assert!(!is_region("REGION"));
        assert!(!is_region("us-east"));
        assert!(is_account("999999999999"));
        assert!(!is_account("ACCOUNT_ID"));
    }

    #[test]
    fn leftover_tokens() {
        assert_eq!(
            leftover_token("arn:aws:iam::<account>:role/x").as_deref(),
            Some("<account>")
        );
        assert_eq!(leftover_token("<IMAGE1_NAME>"), None);
        assert_eq!(leftover_token("sh -c 'a < b > c'"), None);
        assert_eq!(
            leftover_token("x REPLACE_ME").as_deref(),
            Some("REPLACE_ME")
        );
        assert_eq!(leftover_token("http://localhost:8080"), None);
    }
}

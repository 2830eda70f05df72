//! Rules on the two policies `init` writes, when they are present
//! (`policies/…`): `iam-policy.json` must allow what a build calls on the
//! task definition's repositories, and not everything; in
//! `ecr-lifecycle-policy.json` no rule may expire fingerprint-tagged images
//! before one protects them (they are stackbake's reuse cache, and what is
//! deployed).

use serde_json::Value;

use super::finding::{Finding, Severity};
use crate::policies::{self, ACCOUNT_ACTIONS, REPOSITORY_ACTIONS};

/// Parses a policy file; a finding when it is not JSON.
fn parse(file: &str, text: &str, out: &mut Vec<Finding>) -> Option<Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(v) => Some(v),
        Err(e) => {
            out.push(Finding::new(
                file,
                (e.line(), e.column()),
                Severity::Error,
                "policies/invalid-json",
                format!("`{file}` is not valid JSON: {e}"),
                "fix the syntax, or delete it and run `stackbake init` in an empty directory to get a fresh one",
            ));
            None
        }
    }
}

/// `iam-policy.json`: `repositories` are the task definition's ECR
/// repositories as ARNs; `create_repos` whether builds create them.
pub(crate) fn iam(
    file: &str,
    text: &str,
    repositories: &[String],
    create_repos: bool,
    out: &mut Vec<Finding>,
) {
    let Some(policy) = parse(file, text, out) else {
        return;
    };
    if policy.get("Statement").is_none() || policy.get("Version").is_none() {
        out.push(Finding::new(
            file,
            (1, 1),
            Severity::Error,
            "policies/structure",
            format!("`{file}` is not an IAM policy document (no `Version` or `Statement`)"),
            "start from the one `stackbake init` writes",
        ));
        return;
    }
    let mut missing: Vec<String> = ACCOUNT_ACTIONS
        .iter()
        .filter(|a| !policies::allows(&policy, a, "*"))
        .map(|a| (*a).to_string())
        .collect();
    let mut repo_actions: Vec<&str> = REPOSITORY_ACTIONS.to_vec();
    if create_repos {
        repo_actions.push("ecr:CreateRepository");
    }
    for repo in repositories {
        for a in &repo_actions {
            if !policies::allows(&policy, a, repo) && !missing.iter().any(|m| m == a) {
                missing.push((*a).to_string());
            }
        }
    }
    if !missing.is_empty() {
        out.push(Finding::new(
            file,
            (1, 1),
            Severity::Warning,
            "policies/iam-missing-action",
            format!(
                "the policy does not allow {} that a build calls{}",
                missing.join(", "),
                if repositories.is_empty() {
                    String::new()
                } else {
                    format!(" on {}", repositories.join(", "))
                }
            ),
            "add them (GetAuthorizationToken and GetCallerIdentity on \"*\", the others on the project's repositories)",
        ));
    }
    let broad: Vec<String> = policies::allowed(&policy)
        .into_iter()
        .filter(|(a, _)| a == "*" || a.eq_ignore_ascii_case("ecr:*"))
        .map(|(a, r)| format!("{a} on {r}"))
        .collect();
    if !broad.is_empty() {
        out.push(Finding::new(
            file,
            (1, 1),
            Severity::Warning,
            "policies/iam-too-broad",
            format!("the policy allows {}", broad.join(", ")),
            "allow only the actions a build calls (`stackbake init` writes that list)",
        ));
    }
}

/// Whether a lifecycle rule's selection can pick an image tagged `fp-<hex>`.
fn selects_fingerprints(selection: &Value) -> bool {
    let strings = |key: &str| -> Vec<String> {
        selection
            .get(key)
            .and_then(Value::as_array)
            .map(|l| {
                l.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let sample = format!("fp-{}", "0".repeat(64));
    match selection.get("tagStatus").and_then(Value::as_str) {
        Some("any") => true,
        Some("tagged") => {
            strings("tagPatternList")
                .iter()
                .any(|p| policies::iam_matches(p, &sample))
                || strings("tagPrefixList")
                    .iter()
                    .any(|p| sample.starts_with(p))
        }
        _ => false,
    }
}

/// Whether a rule keeps fingerprint-tagged images by count (the protecting rule).
fn protects_fingerprints(rule: &Value) -> bool {
    let sel = &rule["selection"];
    sel["tagStatus"] == "tagged"
        && sel["countType"] == "imageCountMoreThan"
        && sel["tagPatternList"].as_array().is_some_and(|l| {
            l.iter()
                .all(|p| p.as_str().is_some_and(|p| p.starts_with("fp-")))
        })
}

/// `ecr-lifecycle-policy.json`.
pub(crate) fn lifecycle(file: &str, text: &str, out: &mut Vec<Finding>) {
    let Some(policy) = parse(file, text, out) else {
        return;
    };
    let mut structure = |message: String| {
        out.push(Finding::new(
            file,
            (1, 1),
            Severity::Error,
            "policies/lifecycle-structure",
            message,
            "ECR rejects this policy; start from the one `stackbake init` writes",
        ));
    };
    let Some(rules) = policy.get("rules").and_then(Value::as_array) else {
        structure(format!("`{file}` has no `rules` list"));
        return;
    };
    let mut rules: Vec<&Value> = rules.iter().collect();
    let mut priorities = std::collections::BTreeSet::new();
    for r in &rules {
        let priority = r.get("rulePriority").and_then(Value::as_u64);
        let sel = &r["selection"];
        let problem = if priority.is_none_or(|p| !priorities.insert(p)) {
            Some("a `rulePriority` is missing or used twice")
        } else if !matches!(
            sel["tagStatus"].as_str(),
            Some("tagged" | "untagged" | "any")
        ) {
            Some("`selection.tagStatus` must be tagged, untagged or any")
        } else if !matches!(
            sel["countType"].as_str(),
            Some("imageCountMoreThan" | "sinceImagePushed")
        ) {
            Some("`selection.countType` must be imageCountMoreThan or sinceImagePushed")
        } else if sel["countNumber"].as_u64().is_none_or(|n| n == 0) {
            Some("`selection.countNumber` must be a positive integer")
        } else if r["action"]["type"] != "expire" {
            Some("`action.type` must be expire")
        } else {
            None
        };
        if let Some(p) = problem {
            structure(format!("rule {}: {p}", priority.unwrap_or_default()));
            return;
        }
    }
    rules.sort_by_key(|r| r["rulePriority"].as_u64());
    for r in rules {
        if protects_fingerprints(r) {
            return;
        }
        if selects_fingerprints(&r["selection"]) {
            out.push(Finding::new(
                file,
                (1, 1),
                Severity::Warning,
                "policies/lifecycle-expires-fingerprints",
                format!(
                    "rule {} can expire images tagged fp-…: stackbake reuses them across builds, and they are what is deployed",
                    r["rulePriority"]
                ),
                "put a rule first that keeps the newest fp-* images by count (tagStatus tagged, tagPatternList [\"fp-*\"], imageCountMoreThan), as `stackbake init` writes",
            ));
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPO: &str = "arn:aws:ecr:us-east-2:123456789012:repository/bash-dog-api";

    fn ids(out: &[Finding]) -> Vec<&str> {
        out.iter().map(|f| f.rule).collect()
    }

    fn scope() -> policies::IamScope<'static> {
        policies::IamScope {
            account: "123456789012",
            region: "us-east-2",
            project: "bash-dog",
            create_repos: false,
            mirror_repositories: Vec::new(),
        }
    }

    #[test]
    fn what_init_writes_passes() {
        let mut out = Vec::new();
        iam(
            "iam-policy.json",
            &policies::iam_policy(&scope()),
            &[REPO.into()],
            false,
            &mut out,
        );
        lifecycle(
            "ecr-lifecycle-policy.json",
            &policies::lifecycle_policy(),
            &mut out,
        );
        assert!(out.is_empty(), "{out:?}");
    }

    #[test]
    fn a_policy_missing_actions_or_allowing_everything_is_reported() {
        let mut out = Vec::new();
        iam(
            "p.json",
            &policies::iam_policy(&scope()),
            &[REPO.into()],
            true,
            &mut out,
        );
        assert_eq!(ids(&out), ["policies/iam-missing-action"]);
        assert!(out[0].message.contains("ecr:CreateRepository"), "{out:?}");
        let mut out = Vec::new();
        let other = "arn:aws:ecr:us-east-2:123456789012:repository/other-api";
        iam(
            "p.json",
            &policies::iam_policy(&scope()),
            &[other.into()],
            false,
            &mut out,
        );
        assert!(out[0].message.contains("ecr:PutImage"), "{out:?}");
        let mut out = Vec::new();
        let broad = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecr:*","Resource":"*"},{"Effect":"Allow","Action":"sts:GetCallerIdentity","Resource":"*"}]}"#;
        iam("p.json", broad, &[REPO.into()], false, &mut out);
        assert_eq!(ids(&out), ["policies/iam-too-broad"]);
        let mut out = Vec::new();
        iam("p.json", "{not json", &[], false, &mut out);
        assert_eq!(ids(&out), ["policies/invalid-json"]);
    }

    #[test]
    fn a_rule_expiring_fingerprints_before_protecting_them_is_reported() {
        let rule = |p: u64, sel: &str| {
            format!(r#"{{"rulePriority":{p},"selection":{sel},"action":{{"type":"expire"}}}}"#)
        };
        let any = r#"{"tagStatus":"any","countType":"imageCountMoreThan","countNumber":50}"#;
        let fp = r#"{"tagStatus":"tagged","tagPatternList":["fp-*"],"countType":"imageCountMoreThan","countNumber":1000}"#;
        let check = |rules: &[String]| {
            let mut out = Vec::new();
            lifecycle(
                "l.json",
                &format!(r#"{{"rules":[{}]}}"#, rules.join(",")),
                &mut out,
            );
            out
        };
        assert_eq!(
            ids(&check(&[rule(1, any)])),
            ["policies/lifecycle-expires-fingerprints"]
        );
        assert!(check(&[rule(2, any), rule(1, fp)]).is_empty());
        let star = r#"{"tagStatus":"tagged","tagPatternList":["*"],"countType":"sinceImagePushed","countUnit":"days","countNumber":30}"#;
        assert_eq!(
            ids(&check(&[rule(1, star), rule(2, fp)])),
            ["policies/lifecycle-expires-fingerprints"]
        );
        assert_eq!(
            ids(&check(&[rule(1, fp), rule(1, any)])),
            ["policies/lifecycle-structure"]
        );
    }
}

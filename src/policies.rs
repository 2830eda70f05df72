//! The two AWS policies a stackbake pipeline needs, written by `init` and
//! validated by `check`: the CodeBuild service role's least-privilege IAM
//! policy (only the actions a build calls, scoped to the project's
//! repositories; `CreateRepository` only with `--create-repos`, the
//! pull-through cache's actions only with `--mirror`), and an ECR lifecycle
//! policy whose first rule protects fingerprint-tagged images (stackbake's
//! reuse cache, and every image it deployed) before later rules expire
//! untagged images and old build cache. Pure: text in, text out.

use serde_json::{Value, json};

/// File name of the IAM policy `init` writes.
pub(crate) const IAM_POLICY_FILE: &str = "iam-policy.json";
/// File name of the ECR lifecycle policy `init` writes.
pub(crate) const LIFECYCLE_POLICY_FILE: &str = "ecr-lifecycle-policy.json";

/// Actions that need `"Resource": "*"`: the registry token and the account.
pub(crate) const ACCOUNT_ACTIONS: [&str; 2] =
    ["ecr:GetAuthorizationToken", "sts:GetCallerIdentity"];

/// Actions on the project's repositories every build calls: check that they
/// exist (and read their tag mutability), push layers and manifests, move
/// tags, read manifests and pull `latest` as cache.
pub(crate) const REPOSITORY_ACTIONS: [&str; 8] = [
    "ecr:DescribeRepositories",
    "ecr:BatchCheckLayerAvailability",
    "ecr:InitiateLayerUpload",
    "ecr:UploadLayerPart",
    "ecr:CompleteLayerUpload",
    "ecr:PutImage",
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
];

/// Actions on a pull-through cache's repositories: pull, and let the first
/// pull of an image create its repository and import it.
pub(crate) const MIRROR_ACTIONS: [&str; 4] = [
    "ecr:BatchGetImage",
    "ecr:GetDownloadUrlForLayer",
    "ecr:BatchImportUpstreamImage",
    "ecr:CreateRepository",
];

/// Fingerprint-tagged images kept by the lifecycle policy's first rule.
pub(crate) const KEPT_FINGERPRINTS: u64 = 1000;

/// What the IAM policy is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct IamScope<'a> {
    /// AWS account id.
    pub(crate) account: &'a str,
    /// Region.
    pub(crate) region: &'a str,
    /// Repositories are `<project>-<target>`.
    pub(crate) project: &'a str,
    /// Builds run with `--create-repos`.
    pub(crate) create_repos: bool,
    /// ARN patterns of the pull-through caches' repositories (`--mirror`).
    pub(crate) mirror_repositories: Vec<String>,
}

/// The CodeBuild service role's policy for `scope`, pretty JSON.
pub(crate) fn iam_policy(scope: &IamScope<'_>) -> String {
    let arn = |path: &str| {
        format!(
            "arn:aws:ecr:{}:{}:repository/{path}",
            scope.region, scope.account
        )
    };
    let mut repo_actions: Vec<&str> = REPOSITORY_ACTIONS.to_vec();
    if scope.create_repos {
        repo_actions.push("ecr:CreateRepository");
    }
    let mut statements = vec![
        json!({
            "Sid": "StackbakeRegistryTokenAndAccount",
            "Effect": "Allow",
            "Action": ACCOUNT_ACTIONS,
            "Resource": "*"
        }),
        json!({
            "Sid": "StackbakeProjectRepositories",
            "Effect": "Allow",
            "Action": repo_actions,
            "Resource": arn(&format!("{}-*", scope.project))
        }),
    ];
    if !scope.mirror_repositories.is_empty() {
        statements.push(json!({
            "Sid": "StackbakePullThroughCache",
            "Effect": "Allow",
            "Action": MIRROR_ACTIONS,
            "Resource": scope.mirror_repositories
        }));
    }
    pretty(&json!({ "Version": "2012-10-17", "Statement": statements }))
}

/// The ECR lifecycle policy, pretty JSON.
pub(crate) fn lifecycle_policy() -> String {
    pretty(&json!({
        "rules": [
            {
                "rulePriority": 1,
                "description": format!(
                    "Keep the {KEPT_FINGERPRINTS} newest fingerprint-tagged images: stackbake's reuse cache, and every image it deployed. First, so that no later rule expires them."
                ),
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["fp-*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": KEPT_FINGERPRINTS
                },
                "action": { "type": "expire" }
            },
            {
                "rulePriority": 2,
                "description": "Expire untagged images (superseded build cache, interrupted pushes) 14 days after their push.",
                "selection": {
                    "tagStatus": "untagged",
                    "countType": "sinceImagePushed",
                    "countUnit": "days",
                    "countNumber": 14
                },
                "action": { "type": "expire" }
            },
            {
                "rulePriority": 3,
                "description": "Keep only the newest build cache.",
                "selection": {
                    "tagStatus": "tagged",
                    "tagPatternList": ["buildcache*"],
                    "countType": "imageCountMoreThan",
                    "countNumber": 1
                },
                "action": { "type": "expire" }
            }
        ]
    }))
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// The actions an IAM policy allows on each resource: `(action, resource)`
/// pairs of its `Allow` statements (strings or lists, as IAM allows both).
pub(crate) fn allowed(policy: &Value) -> Vec<(String, String)> {
    let strings = |v: Option<&Value>| -> Vec<String> {
        match v {
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let statements = match policy.get("Statement") {
        Some(Value::Array(a)) => a.clone(),
        Some(one @ Value::Object(_)) => vec![one.clone()],
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for st in statements {
        if st.get("Effect").and_then(Value::as_str) != Some("Allow") {
            continue;
        }
        for action in strings(st.get("Action")) {
            for resource in strings(st.get("Resource")) {
                out.push((action.clone(), resource));
            }
        }
    }
    out
}

/// Whether IAM's wildcard `pattern` (`*`, `?`) matches `text`, ignoring
/// case as IAM does for action names.
pub(crate) fn iam_matches(pattern: &str, text: &str) -> bool {
    wildcard_matches(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase())
}

/// Whether `pattern` matches the whole of `text`, where `*` stands for any
/// run of characters and `?` for one (case-sensitive; two-pointer matching
/// with backtracking to the last `*`, linear in practice).
pub(crate) fn wildcard_matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < t.len() {
        if i < p.len() && (p[i] == '?' || p[i] == t[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    while i < p.len() && p[i] == '*' {
        i += 1;
    }
    i == p.len()
}

/// Whether `policy` allows `action` on `resource`.
pub(crate) fn allows(policy: &Value, action: &str, resource: &str) -> bool {
    allowed(policy)
        .iter()
        .any(|(a, r)| iam_matches(a, action) && iam_matches(r, resource))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> IamScope<'static> {
        IamScope {
            account: "123456789012",
            region: "us-east-2",
            project: "bash-dog",
            create_repos: false,
            mirror_repositories: Vec::new(),
        }
    }

    fn parsed(text: &str) -> Value {
        serde_json::from_str(text).expect("valid JSON")
    }

    #[test]
    fn the_iam_policy_allows_what_a_build_calls_and_no_more() {
        let p = parsed(&iam_policy(&scope()));
        let repo = "arn:aws:ecr:us-east-2:123456789012:repository/bash-dog-api";
        for a in REPOSITORY_ACTIONS {
            assert!(allows(&p, a, repo), "{a}");
        }
        for a in ACCOUNT_ACTIONS {
            assert!(allows(&p, a, "*"), "{a}");
        }
        assert!(
            !allows(&p, "ecr:CreateRepository", repo),
            "only with --create-repos"
        );
        assert!(!allows(
            &p,
            "ecr:PutImage",
            "arn:aws:ecr:us-east-2:123456789012:repository/other-api"
        ));
        assert!(!allows(&p, "ecr:DeleteRepository", repo));
        let with = parsed(&iam_policy(&IamScope {
            create_repos: true,
            mirror_repositories: vec![
                "arn:aws:ecr:us-east-2:123456789012:repository/docker-hub/*".into(),
            ],
            ..scope()
        }));
        assert!(allows(&with, "ecr:CreateRepository", repo));
        let cached = "arn:aws:ecr:us-east-2:123456789012:repository/docker-hub/library/node";
        assert!(allows(&with, "ecr:BatchImportUpstreamImage", cached));
        assert!(!allows(&with, "ecr:PutImage", cached));
    }

    #[test]
    fn the_lifecycle_policy_protects_fingerprints_first() {
        let p = parsed(&lifecycle_policy());
        let rules = p["rules"].as_array().expect("rules");
        assert_eq!(rules[0]["rulePriority"], 1);
        assert_eq!(rules[0]["selection"]["tagPatternList"][0], "fp-*");
        assert_eq!(rules[1]["selection"]["tagStatus"], "untagged");
        assert!(rules.iter().all(|r| r["action"]["type"] == "expire"));
    }

    #[test]
    fn iam_wildcards_match_like_iam() {
        assert!(iam_matches("ecr:*", "ecr:PutImage"));
        assert!(iam_matches("ECR:putimage", "ecr:PutImage"));
        assert!(iam_matches("ecr:Batch*Image", "ecr:BatchGetImage"));
        assert!(!iam_matches("ecr:Get*", "ecr:PutImage"));
        assert!(iam_matches("*", "anything"));
    }
}

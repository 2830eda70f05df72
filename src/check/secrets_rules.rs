//! Secrets (`secrets/…`): every `valueFrom` of a container's `secrets` and of
//! `logConfiguration.secretOptions` must be a well-formed Secrets Manager
//! ARN, SSM parameter ARN or SSM parameter name; Secrets Manager ARNs should
//! carry the 6-character random suffix; a JSON-key reference needs its two
//! trailing colons (`:KEY::`); a JSON key that has nothing to do with the
//! variable's name is likely a copy-paste slip; and a secret in another
//! region or account than the task is flagged.

use serde_json::Value;

use super::finding::{Finding, Severity};
use super::placeholder_rules::{is_account, is_region, parse_arn, task_identity};
use super::taskdef_rules::Td;

/// Lowercase letters and digits only, for loose name comparison.
fn norm(s: &str) -> String {
    s.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Whether a Secrets Manager secret id ends in `-` and six random characters.
fn has_suffix(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() > 7 && b[b.len() - 7] == b'-' && b[b.len() - 6..].iter().all(u8::is_ascii_alphanumeric)
}

/// Why JSON key `key` read into variable `name` looks like a slip, if it
/// does: the key is another variable's name, an env-var-style name that is
/// not this one, or the same reference an earlier variable already reads.
/// `earlier` are the container's references before this one.
fn key_mismatch(key: &str, name: &str, value_from: &str, earlier: &[Ref<'_>]) -> Option<String> {
    let (k, n) = (norm(key), norm(name));
    if k == n {
        return None;
    }
    if let Some(other) = earlier
        .iter()
        .find(|o| o.value_from == value_from && o.name != Some(name))
    {
        return Some(format!(
            "the same reference as `{}`",
            other.name.unwrap_or("another variable")
        ));
    }
    let env_style =
        key.bytes().any(|b| b.is_ascii_uppercase()) && !key.bytes().any(|b| b.is_ascii_lowercase());
    if env_style {
        return Some("an env-var-style name that is not this variable's".to_owned());
    }
    None
}

/// One secret reference: its JSON path, the variable name and `valueFrom`.
struct Ref<'a> {
    path: String,
    name: Option<&'a str>,
    value_from: &'a str,
}

/// The secrets rules.
pub(crate) fn rules(td: &Td, out: &mut Vec<Finding>) {
    let (task_account, task_region) = task_identity(td);
    for c in td.containers() {
        let lists = [
            ("secrets", c.def.get("secrets")),
            (
                "logConfiguration.secretOptions",
                c.def
                    .get("logConfiguration")
                    .and_then(|l| l.get("secretOptions")),
            ),
        ];
        let mut refs = Vec::new();
        for (key, list) in lists {
            let Some(items) = list.and_then(Value::as_array) else {
                continue;
            };
            for (i, item) in items.iter().enumerate() {
                if let Some(value_from) = item.get("valueFrom").and_then(Value::as_str) {
                    refs.push(Ref {
                        path: c.path(&format!("{key}[{i}].valueFrom")),
                        name: item.get("name").and_then(Value::as_str),
                        value_from,
                    });
                }
            }
        }
        for (i, r) in refs.iter().enumerate() {
            one(
                td,
                r,
                &refs[..i],
                task_account.as_deref(),
                task_region.as_deref(),
                out,
            );
        }
    }
}

fn one(
    td: &Td,
    r: &Ref<'_>,
    siblings: &[Ref<'_>],
    task_account: Option<&str>,
    task_region: Option<&str>,
    out: &mut Vec<Finding>,
) {
    let at = td.loc.value(&r.path);
    let push = |out: &mut Vec<Finding>, sev, rule, msg: String, help: &str| {
        out.push(Finding::new(&td.file, at, sev, rule, msg, help));
    };
    let v = r.value_from;
    let malformed = |out: &mut Vec<Finding>, why: &str| {
        push(
            out,
            Severity::Error,
            "secrets/malformed-arn",
            format!("`{v}` is not a valid secret reference: {why}"),
            "use arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf[:KEY::] or arn:aws:ssm:REGION:ACCOUNT:parameter/NAME (or a bare SSM parameter name)",
        );
    };
    if !v.starts_with("arn:") {
        if v.is_empty() || v.chars().any(char::is_whitespace) {
            malformed(
                out,
                "an SSM parameter name cannot be empty or contain spaces",
            );
        }
        return;
    }
    let Some(arn) = parse_arn(v) else {
        malformed(out, "an ARN has at least six `:`-separated fields");
        return;
    };
    if !matches!(arn.partition, "aws" | "aws-cn" | "aws-us-gov") {
        malformed(out, &format!("unknown partition `{}`", arn.partition));
        return;
    }
    if !is_region(arn.region) {
        malformed(out, &format!("`{}` is not a region", arn.region));
        return;
    }
    if !is_account(arn.account) {
        malformed(
            out,
            &format!("`{}` is not a 12-digit account id", arn.account),
        );
        return;
    }
    match arn.service {
        "ssm" => {
            if !arn.resource.starts_with("parameter/") || arn.resource.len() <= "parameter/".len() {
                malformed(out, "an SSM ARN's resource is `parameter/NAME`");
                return;
            }
        }
        "secretsmanager" => {
            let parts: Vec<&str> = arn.resource.split(':').collect();
            if parts.first() != Some(&"secret") || parts.get(1).is_none_or(|n| n.is_empty()) {
                malformed(out, "a Secrets Manager ARN's resource is `secret:NAME`");
                return;
            }
            let secret = parts[1];
            match parts.len() - 2 {
                0 | 3 => {}
                1 | 2 => {
                    let key = parts[2];
                    push(
                        out,
                        Severity::Error,
                        "secrets/json-key-colons",
                        format!("the JSON-key reference `{v}` lacks its trailing colons"),
                        &format!(
                            "write `...:{secret}:{key}::` (KEY, then empty version stage and version id)"
                        ),
                    );
                    return;
                }
                _ => {
                    malformed(out, "too many `:` fields after the secret name");
                    return;
                }
            }
            if !has_suffix(secret) {
                push(
                    out,
                    Severity::Warning,
                    "secrets/missing-suffix",
                    format!(
                        "secret `{secret}` is referenced without the 6-character random suffix Secrets Manager adds to ARNs"
                    ),
                    "copy the full ARN from the Secrets Manager console (it ends in `-` and 6 characters, e.g. `-AbCdEf`)",
                );
            }
            if let (Some(key), Some(name)) = (parts.get(2).filter(|k| !k.is_empty()), r.name)
                && let Some(why) = key_mismatch(key, name, v, siblings)
            {
                push(
                    out,
                    Severity::Warning,
                    "secrets/json-key-mismatch",
                    format!("variable `{name}` reads JSON key `{key}`, {why} (copy-paste slip?)"),
                    &format!("check the key after the secret name: `:{secret}:KEY::`"),
                );
            }
        }
        other => {
            malformed(
                out,
                &format!("service `{other}` is neither `secretsmanager` nor `ssm`"),
            );
            return;
        }
    }
    let mut elsewhere = Vec::new();
    if let Some(region) = task_region
        && region != arn.region
    {
        elsewhere.push(format!("region {} (the task's is {region})", arn.region));
    }
    if let Some(account) = task_account
        && account != arn.account
    {
        elsewhere.push(format!("account {} (the task's is {account})", arn.account));
    }
    if !elsewhere.is_empty() {
        push(
            out,
            Severity::Warning,
            "secrets/other-region-or-account",
            format!("secret `{v}` is in {}", elsewhere.join(" and ")),
            "reference the secret of the task's own region and account, unless the cross-region/account access is deliberate",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_detection() {
        assert!(has_suffix("prod/db-AbC123"));
        assert!(!has_suffix("prod/db"));
        assert!(!has_suffix("-AbC12"));
    }
}

//! Secrets (`secrets/…`): every `valueFrom` of a container's `secrets` and of
//! `logConfiguration.secretOptions` must be a well-formed Secrets Manager
//! ARN, SSM parameter ARN or SSM parameter name; Secrets Manager ARNs should
//! carry the 6-character random suffix; a JSON-key reference needs its two
//! trailing colons (`:KEY::`); a JSON key that has nothing to do with the
//! variable's name is likely a copy-paste slip; and a secret in another
//! region or account than the task is flagged.

use serde_json::Value;

use super::finding::{Finding, Severity};
use super::placeholder_rules::{Arn, is_account, is_region, parse_arn, task_identity};
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
            let reference = Reference {
                td,
                r,
                siblings: &refs[..i],
                at: td.loc.value(&r.path),
                task_account: task_account.as_deref(),
                task_region: task_region.as_deref(),
            };
            reference.check(out);
        }
    }
}

/// One secret reference being checked, with what it is compared to.
struct Reference<'a> {
    /// The task definition it is in.
    td: &'a Td,
    /// The reference.
    r: &'a Ref<'a>,
    /// The container's references before this one.
    siblings: &'a [Ref<'a>],
    /// Where its `valueFrom` is.
    at: (usize, usize),
    /// The task's account, when its ARNs agree on one.
    task_account: Option<&'a str>,
    /// The task's region, when its ARNs agree on one.
    task_region: Option<&'a str>,
}

impl Reference<'_> {
    /// Every secrets rule on this reference.
    fn check(&self, out: &mut Vec<Finding>) {
        let Some(arn) = self.arn(out) else {
            return;
        };
        let valid = match arn.service {
            "ssm" => self.ssm(&arn, out),
            "secretsmanager" => self.secrets_manager(&arn, out),
            other => {
                self.malformed(
                    out,
                    &format!("service `{other}` is neither `secretsmanager` nor `ssm`"),
                );
                false
            }
        };
        if valid {
            self.elsewhere(&arn, out);
        }
    }

    /// A finding at this reference's `valueFrom`.
    fn push(
        &self,
        out: &mut Vec<Finding>,
        severity: Severity,
        rule: &'static str,
        message: String,
        help: &str,
    ) {
        out.push(Finding::new(
            &self.td.file,
            self.at,
            severity,
            rule,
            message,
            help,
        ));
    }

    /// `secrets/malformed-arn`, saying `why`.
    fn malformed(&self, out: &mut Vec<Finding>, why: &str) {
        let v = self.r.value_from;
        self.push(
            out,
            Severity::Error,
            "secrets/malformed-arn",
            format!("`{v}` is not a valid secret reference: {why}"),
            "use arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-AbCdEf[:KEY::] or arn:aws:ssm:REGION:ACCOUNT:parameter/NAME (or a bare SSM parameter name)",
        );
    }

    /// The ARN with a known partition, a region and an account; `None`
    /// (after any finding) for a bare SSM parameter name or a malformed ARN.
    fn arn(&self, out: &mut Vec<Finding>) -> Option<Arn<'_>> {
        let v = self.r.value_from;
        if !v.starts_with("arn:") {
            if v.is_empty() || v.chars().any(char::is_whitespace) {
                self.malformed(
                    out,
                    "an SSM parameter name cannot be empty or contain spaces",
                );
            }
            return None;
        }
        let Some(arn) = parse_arn(v) else {
            self.malformed(out, "an ARN has at least six `:`-separated fields");
            return None;
        };
        if !matches!(arn.partition, "aws" | "aws-cn" | "aws-us-gov") {
            self.malformed(out, &format!("unknown partition `{}`", arn.partition));
            return None;
        }
        if !is_region(arn.region) {
            self.malformed(out, &format!("`{}` is not a region", arn.region));
            return None;
        }
        if !is_account(arn.account) {
            self.malformed(
                out,
                &format!("`{}` is not a 12-digit account id", arn.account),
            );
            return None;
        }
        Some(arn)
    }

    /// An SSM parameter ARN's resource; whether it is well-formed.
    fn ssm(&self, arn: &Arn<'_>, out: &mut Vec<Finding>) -> bool {
        if !arn.resource.starts_with("parameter/") || arn.resource.len() <= "parameter/".len() {
            self.malformed(out, "an SSM ARN's resource is `parameter/NAME`");
            return false;
        }
        true
    }

    /// A Secrets Manager ARN's resource, suffix and JSON key; whether it is
    /// well-formed.
    fn secrets_manager(&self, arn: &Arn<'_>, out: &mut Vec<Finding>) -> bool {
        let v = self.r.value_from;
        let parts: Vec<&str> = arn.resource.split(':').collect();
        if parts.first() != Some(&"secret") || parts.get(1).is_none_or(|n| n.is_empty()) {
            self.malformed(out, "a Secrets Manager ARN's resource is `secret:NAME`");
            return false;
        }
        let secret = parts[1];
        match parts.len() - 2 {
            0 | 3 => {}
            1 | 2 => {
                let key = parts[2];
                self.push(
                    out,
                    Severity::Error,
                    "secrets/json-key-colons",
                    format!("the JSON-key reference `{v}` lacks its trailing colons"),
                    &format!(
                        "write `...:{secret}:{key}::` (KEY, then empty version stage and version id)"
                    ),
                );
                return false;
            }
            _ => {
                self.malformed(out, "too many `:` fields after the secret name");
                return false;
            }
        }
        self.suffix(secret, out);
        self.json_key(secret, parts.get(2).copied(), out);
        true
    }

    /// `secrets/missing-suffix`: a secret id without its random suffix.
    fn suffix(&self, secret: &str, out: &mut Vec<Finding>) {
        if !has_suffix(secret) {
            self.push(
                out,
                Severity::Warning,
                "secrets/missing-suffix",
                format!(
                    "secret `{secret}` is referenced without the 6-character random suffix Secrets Manager adds to ARNs"
                ),
                "copy the full ARN from the Secrets Manager console (it ends in `-` and 6 characters, e.g. `-AbCdEf`)",
            );
        }
    }

    /// `secrets/json-key-mismatch`: a JSON key that does not fit the variable.
    fn json_key(&self, secret: &str, key: Option<&str>, out: &mut Vec<Finding>) {
        if let (Some(key), Some(name)) = (key.filter(|k| !k.is_empty()), self.r.name)
            && let Some(why) = key_mismatch(key, name, self.r.value_from, self.siblings)
        {
            self.push(
                out,
                Severity::Warning,
                "secrets/json-key-mismatch",
                format!("variable `{name}` reads JSON key `{key}`, {why} (copy-paste slip?)"),
                &format!("check the key after the secret name: `:{secret}:KEY::`"),
            );
        }
    }

    /// `secrets/other-region-or-account`: a secret outside the task's
    /// region or account.
    fn elsewhere(&self, arn: &Arn<'_>, out: &mut Vec<Finding>) {
        let mut elsewhere = Vec::new();
        if let Some(region) = self.task_region
            && region != arn.region
        {
            elsewhere.push(format!("region {} (the task's is {region})", arn.region));
        }
        if let Some(account) = self.task_account
            && account != arn.account
        {
            elsewhere.push(format!("account {} (the task's is {account})", arn.account));
        }
        if !elsewhere.is_empty() {
            self.push(
                out,
                Severity::Warning,
                "secrets/other-region-or-account",
                format!("secret `{}` is in {}", self.r.value_from, elsewhere.join(" and ")),
                "reference the secret of the task's own region and account, unless the cross-region/account access is deliberate",
            );
        }
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

//! Rules on awsvpc networking between the containers of one task
//! definition (`network/…`): shared ports, host ports, and containers
//! reaching each other by name.

use std::collections::BTreeMap;

use serde_json::Value;

use super::finding::{Finding, Severity};
use super::taskdef_rules::{Container, Td};

/// A container's port mappings: (index, containerPort, protocol, hostPort).
fn ports(c: &Container<'_>) -> Vec<(usize, u64, String, Option<u64>)> {
    c.def
        .get("portMappings")
        .and_then(Value::as_array)
        .map(|pm| {
            pm.iter()
                .enumerate()
                .filter_map(|(i, p)| {
                    let port = p.get("containerPort").and_then(Value::as_u64)?;
                    let proto = p
                        .get("protocol")
                        .and_then(Value::as_str)
                        .unwrap_or("tcp")
                        .to_ascii_lowercase();
                    let host = p.get("hostPort").and_then(Value::as_u64);
                    Some((i, port, proto, host))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The `containerPort`s of container `name`.
pub(crate) fn container_ports(td: &Td, name: &str) -> Option<Vec<u64>> {
    td.containers()
        .into_iter()
        .find(|c| c.name == Some(name))
        .map(|c| ports(&c).into_iter().map(|(_, p, ..)| p).collect())
}

/// The awsvpc rules (`network/…`).
pub(crate) fn rules(td: &Td, out: &mut Vec<Finding>) {
    if !td.awsvpc() {
        return;
    }
    let cs = td.containers();
    ports_rules(td, &cs, out);
    container_hostnames(td, &cs, out);
}

/// `network/duplicate-port` and `network/host-port-mismatch`.
fn ports_rules(td: &Td, cs: &[Container<'_>], out: &mut Vec<Finding>) {
    let mut used: BTreeMap<(u64, String), String> = BTreeMap::new();
    for c in cs {
        for (i, port, proto, host) in ports(c) {
            let path = c.path(&format!("portMappings[{i}].containerPort"));
            if let Some(other) = used.get(&(port, proto.clone())) {
                out.push(td.at(
                    &path,
                    Severity::Error,
                    "network/duplicate-port",
                    format!("containers {other} and {} both use {proto} port {port}; with awsvpc they share one network namespace", c.label()),
                    "give each container its own port",
                ));
            } else {
                used.insert((port, proto), c.label());
            }
            if let Some(h) = host
                && h != port
            {
                out.push(td.at(
                    &c.path(&format!("portMappings[{i}].hostPort")),
                    Severity::Error,
                    "network/host-port-mismatch",
                    format!("hostPort {h} differs from containerPort {port}; with awsvpc they must be equal"),
                    format!("set \"hostPort\": {port} or remove hostPort"),
                ));
            }
        }
    }
}

/// `network/container-hostname`: an environment value that reaches another
/// container by its name.
fn container_hostnames(td: &Td, cs: &[Container<'_>], out: &mut Vec<Finding>) {
    let names: Vec<&str> = cs.iter().filter_map(|c| c.name).collect();
    for c in cs {
        let Some(env) = c.def.get("environment").and_then(Value::as_array) else {
            continue;
        };
        for (i, e) in env.iter().enumerate() {
            let Some(value) = e.get("value").and_then(Value::as_str) else {
                continue;
            };
            if let Some(target) = names.iter().find(|n| addresses_host(value, n)) {
                out.push(td.at(
                    &c.path(&format!("environment[{i}].value")),
                    Severity::Warning,
                    "network/container-hostname",
                    format!("`{value}` reaches container `{target}` by its name, which does not resolve with awsvpc"),
                    format!("use `localhost` instead of `{target}`: awsvpc containers share one network namespace"),
                ));
            }
        }
    }
}

/// Whether `value` uses `name` as a host: `scheme://name[:/]…` or `name:port`.
fn addresses_host(value: &str, name: &str) -> bool {
    let is_host_char = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_';
    if name.is_empty() {
        return false;
    }
    let mut from = 0;
    while let Some(pos) = value.get(from..).and_then(|rest| rest.find(name)) {
        let start = from + pos;
        let end = start + name.len();
        from = end;
        let before = value[..start].chars().next_back();
        let after = value[end..].chars().next();
        let prefixed = value[..start].ends_with("//") || value[..start].ends_with('@');
        let bounded_before = before.is_none_or(|c| !is_host_char(c));
        let bounded_after = after.is_none_or(|c| !is_host_char(c));
        if !(bounded_before && bounded_after) {
            continue;
        }
        let port_follows = value[end..]
            .strip_prefix(':')
            .and_then(|r| r.chars().next())
            .is_some_and(|c| c.is_ascii_digit());
        if (prefixed && (after.is_none() || matches!(after, Some(':' | '/' | '?')))) || port_follows
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_detection() {
        assert!(addresses_host("http://bash-dog-api:8080", "bash-dog-api"));
        assert!(addresses_host("bash-dog-api:8080", "bash-dog-api"));
        assert!(addresses_host("redis://redis", "redis"));
        assert!(!addresses_host("http://localhost:8080", "api"));
        assert!(!addresses_host("http://my-api:8080", "api"));
        assert!(!addresses_host("api", "api"));
        assert!(!addresses_host("the api is slow", "api"));
        assert!(!addresses_host("anything", ""));
        assert!(addresses_host("http://é:1", "é"));
        assert!(!addresses_host("ééé", "é"));
    }
}

//! Registry hosts: [`Host`], its errors, and the ECR account and region
//! read from a private ECR host name.

use std::borrow::Cow;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

const HOST_RULE: &str = "a registry host is HOST[:PORT]: dot-separated names of ASCII letters, digits and inner `-` (no `_`), or an IPv6 address in brackets, and a port from 1 to 65535";

/// A registry host: `HOST[:PORT]`, with an IPv6 address in brackets
/// (`[::1]:5000`), or a bare IPv6 address without port (`::1`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct Host(String);

/// Why a string is not a registry host. The messages leave the text out:
/// whoever shows one names the flag or reference it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostError {
    /// Nothing was given.
    #[error("it is empty; {HOST_RULE}")]
    Empty,
    /// A URL was given instead of a host.
    #[error("it has a scheme; {HOST_RULE}, without scheme or path")]
    Scheme,
    /// A host with a path was given.
    #[error("it has a path; {HOST_RULE}, without scheme or path")]
    Path,
    /// The name part is not a domain name.
    #[error("it is not a valid host name; {HOST_RULE}")]
    Name,
    /// The part in brackets is not an IPv6 address.
    #[error("the part in brackets is not an IPv6 address; {HOST_RULE}")]
    Ipv6,
    /// The port is not a number from 1 to 65535.
    #[error("the port is not a number from 1 to 65535")]
    Port,
}

/// The account and region of a private ECR registry host.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub(crate) struct EcrHost {
    /// The 12-digit AWS account id.
    pub account: String,
    /// The AWS region (`us-east-2`).
    pub region: String,
}

impl Host {
    /// Parses `HOST[:PORT]`, `[IPv6][:PORT]` or a bare IPv6 address.
    pub(crate) fn parse(text: &str) -> Result<Self, HostError> {
        Self::parse_as(text, true)
    }

    /// Parses a host; `bare_ipv6` allows an IPv6 address without brackets.
    pub(super) fn parse_as(text: &str, bare_ipv6: bool) -> Result<Self, HostError> {
        if text.is_empty() {
            return Err(HostError::Empty);
        }
        if text.contains("://") {
            return Err(HostError::Scheme);
        }
        if text.contains('/') {
            return Err(HostError::Path);
        }
        if bare_ipv6 && is_ipv6_text(text) {
            return Ok(Self(text.to_owned()));
        }
        let (name, port) = split_port(text).ok_or(HostError::Ipv6)?;
        if let Some(inner) = name.strip_prefix('[') {
            let inner = inner.strip_suffix(']').unwrap_or(inner);
            if !is_ipv6_text(inner) {
                return Err(HostError::Ipv6);
            }
        } else if !name.split('.').all(is_domain_component) {
            return Err(HostError::Name);
        }
        match port {
            Some(port) if parse_port(port).is_none() => Err(HostError::Port),
            _ => Ok(Self(text.to_owned())),
        }
    }

    /// The host without its port: a name, an IPv4 address, `[IPv6]`, or the
    /// bare IPv6 address as given.
    pub(crate) fn name(&self) -> &str {
        if is_ipv6_text(&self.0) {
            return &self.0;
        }
        split_port(&self.0).map_or(self.0.as_str(), |(name, _)| name)
    }

    /// The port, if one is given.
    #[cfg(test)]
    pub(crate) fn port(&self) -> Option<u16> {
        if is_ipv6_text(&self.0) {
            return None;
        }
        split_port(&self.0)
            .and_then(|(_, port)| port)
            .and_then(parse_port)
    }

    /// Whether this is a loopback host: `localhost`, 127.0.0.0/8 or `::1`.
    pub(crate) fn is_loopback(&self) -> bool {
        let name = self.name();
        let unbracketed = name
            .strip_prefix('[')
            .and_then(|n| n.strip_suffix(']'))
            .unwrap_or(name);
        name.eq_ignore_ascii_case("localhost")
            || name.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
            || unbracketed
                .parse::<Ipv6Addr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The URL scheme to speak to this registry with: plain `http` on
    /// loopback (as the Docker engine does), `https` everywhere else.
    pub(crate) fn scheme(&self) -> &'static str {
        if self.is_loopback() { "http" } else { "https" }
    }

    /// The URL authority: the host as given, with brackets added around a
    /// bare IPv6 address.
    pub(crate) fn authority(&self) -> Cow<'_, str> {
        if is_ipv6_text(&self.0) {
            Cow::Owned(format!("[{}]", self.0))
        } else {
            Cow::Borrowed(&self.0)
        }
    }

    /// For a private ECR registry, its account and region. Recognised
    /// (case-insensitive, any port ignored):
    /// `ACCOUNT.dkr.ecr.REGION.amazonaws.com`, the same under
    /// `.amazonaws.com.cn`, the FIPS form `ACCOUNT.dkr.ecr-fips.REGION…`, and
    /// the dual-stack form `ACCOUNT.dkr-ecr.REGION.on.aws`. `public.ecr.aws`
    /// and every other host give `None`.
    pub(crate) fn ecr(&self) -> Option<EcrHost> {
        let name = self.name().to_ascii_lowercase();
        let (account, region) = if let Some(rest) = name
            .strip_suffix(".amazonaws.com")
            .or_else(|| name.strip_suffix(".amazonaws.com.cn"))
        {
            let (account, rest) = rest.split_once('.')?;
            let region = rest
                .strip_prefix("dkr.ecr.")
                .or_else(|| rest.strip_prefix("dkr.ecr-fips."))?;
            (account, region)
        } else {
            let rest = name.strip_suffix(".on.aws")?;
            let (account, rest) = rest.split_once('.')?;
            (account, rest.strip_prefix("dkr-ecr.")?)
        };
        let account_ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
        let region_ok = region.contains('-')
            && !region.starts_with('-')
            && !region.ends_with('-')
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        (account_ok && region_ok).then(|| EcrHost {
            account: account.to_owned(),
            region: region.to_owned(),
        })
    }
}

text_type!(Host, HostError, |h| &h.0);

/// Whether `text` is an IPv6 address written with hex digits and `:` only
/// (no zone, no dotted IPv4 tail: the grammar's character set).
fn is_ipv6_text(text: &str) -> bool {
    text.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') && text.parse::<Ipv6Addr>().is_ok()
}

/// Splits `name[:port]` / `[v6][:port]`; `None` when brackets are unbalanced
/// or something other than `:port` follows the `]`.
fn split_port(host: &str) -> Option<(&str, Option<&str>)> {
    if host.starts_with('[') {
        let close = host.find(']')?;
        let (name, rest) = host.split_at(close + 1);
        return match rest.strip_prefix(':') {
            Some(port) => Some((name, Some(port))),
            None if rest.is_empty() => Some((name, None)),
            None => None,
        };
    }
    Some(match host.split_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    })
}

/// A port of ASCII digits with a value from 1 to 65535.
fn parse_port(port: &str) -> Option<u16> {
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    port.parse::<u16>().ok().filter(|&p| p != 0)
}

/// The grammar's `domainNameComponent`: letters and digits, inner `-`.
fn is_domain_component(c: &str) -> bool {
    !c.is_empty()
        && c.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        && !c.starts_with('-')
        && !c.ends_with('-')
}

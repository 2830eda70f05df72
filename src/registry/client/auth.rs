//! Registry authentication: the bearer challenge of a `401`, the token
//! fetched from its realm (with the Basic credentials only over HTTPS or on
//! loopback), and the tokens cached per scope until they expire.

use std::time::{Duration, Instant};

use reqwest::Method;

use super::transport::{Auth, Req, error_body_detail};
use super::{Client, RegistryError};
use crate::reference::Host;
use crate::registry::secret::Secret;

#[derive(Clone)]
pub(super) struct CachedToken {
    pub(super) token: Secret,
    pub(super) expires: Instant,
}

impl Client {
    pub(super) fn cached_token(&self, scope: &str) -> Option<Secret> {
        let map = self.inner.tokens.read().unwrap_or_else(|e| e.into_inner());
        map.get(scope)
            .filter(|t| t.expires > Instant::now())
            .map(|t| t.token.clone())
    }

    pub(super) fn store_token(&self, scope: &str, token: CachedToken) {
        let mut map = self.inner.tokens.write().unwrap_or_else(|e| e.into_inner());
        map.retain(|_, t| t.expires > Instant::now());
        map.insert(scope.to_owned(), token);
    }

    /// Gets a token from the challenge's realm, with the Basic credentials
    /// when the realm is HTTPS or loopback (never over plain HTTP to another
    /// host), else anonymously.
    pub(super) async fn fetch_token(
        &self,
        ch: &BearerChallenge,
        our_scope: &str,
    ) -> Result<CachedToken, RegistryError> {
        let host = &self.inner.host;
        let token_err = |detail: String| RegistryError::Token {
            host: host.clone(),
            realm: ch.realm.clone(),
            detail,
        };
        let mut url = reqwest::Url::parse(&ch.realm)
            .map_err(|e| token_err(format!("the realm is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(token_err("the realm is not an http(s) URL".to_owned()));
        }
        let secure = realm_may_get_credentials(&url);
        {
            let mut q = url.query_pairs_mut();
            if let Some(service) = &ch.service {
                q.append_pair("service", service);
            }
            let scope = ch.scope.as_deref().unwrap_or(our_scope);
            if !scope.is_empty() {
                q.append_pair("scope", scope);
            }
        }
        let auth = if secure && self.inner.creds.is_some() {
            Auth::Basic
        } else {
            Auth::None
        };
        let req = Req {
            method: Method::GET,
            path: String::new(),
            accept: "application/json",
            content_type: None,
            body: None,
            scope: String::new(),
            repo: "",
        };
        let reply = self.execute(&req, url.as_str(), &auth).await?;
        match reply.status {
            200..=299 => {}
            401 | 403 => {
                return Err(RegistryError::Unauthorized {
                    host: host.clone(),
                    anonymous: self.inner.creds.is_none(),
                });
            }
            s => {
                return Err(token_err(format!(
                    "HTTP {s}{}",
                    error_body_detail(&reply.body)
                )));
            }
        }
        let (token, expires_in) = parse_token_response(&reply.body)
            .ok_or_else(|| token_err("the answer holds no token".to_owned()))?;
        let ttl = Duration::from_secs(expires_in.clamp(10, 24 * 3600).saturating_sub(5));
        Ok(CachedToken {
            token,
            expires: Instant::now() + ttl,
        })
    }
}

/// Credentials go to a token realm only over HTTPS, or plain HTTP on loopback.
pub(super) fn realm_may_get_credentials(url: &reqwest::Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => url
            .host_str()
            .is_some_and(|h| Host::parse(h).is_ok_and(|h| h.is_loopback())),
        _ => false,
    }
}

/// A `WWW-Authenticate: Bearer ...` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BearerChallenge {
    /// Token service URL.
    pub realm: String,
    /// `service` parameter, if any.
    pub service: Option<String>,
    /// `scope` parameter, if any.
    pub scope: Option<String>,
}

/// Parses a `Bearer` challenge; `None` for other schemes or without realm.
pub(super) fn parse_bearer_challenge(header: &str) -> Option<BearerChallenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let params = parse_auth_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    Some(BearerChallenge {
        realm: get("realm").filter(|r| !r.is_empty())?,
        service: get("service"),
        scope: get("scope"),
    })
}

/// `key=value` / `key="quoted, value"` pairs separated by commas.
pub(super) fn parse_auth_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            key.push(c);
            chars.next();
        }
        if key.trim().is_empty() && chars.peek().is_none() {
            return out;
        }
        if chars.peek() != Some(&'=') {
            // A token without a value: skip it.
            chars.next();
            if chars.peek().is_none() {
                return out;
            }
            continue;
        }
        chars.next();
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            value.push(n);
                        }
                    }
                    '"' => break,
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' {
                    break;
                }
                value.push(c);
                chars.next();
            }
            value = value.trim().to_owned();
        }
        out.push((key.trim().to_owned(), value));
    }
}

/// The token of a token-service answer (`token` or `access_token`) and its
/// lifetime in seconds (60 when not given).
pub(super) fn parse_token_response(body: &[u8]) -> Option<(Secret, u64)> {
    #[derive(serde::Deserialize)]
    struct TokenReply {
        token: Option<String>,
        access_token: Option<String>,
        expires_in: Option<u64>,
    }
    let r: TokenReply = serde_json::from_slice(body).ok()?;
    let token = r.token.filter(|t| !t.is_empty()).or(r.access_token)?;
    if token.is_empty() {
        return None;
    }
    Some((Secret::new(token), r.expires_in.unwrap_or(60)))
}

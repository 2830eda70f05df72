//! `ADD <http(s) url>`: the input is the content at the URL, by its sha256,
//! read once per run (streamed, never held in memory). A checksum, not
//! BuildKit's validators (ETag / Last-Modified plus length), because it
//! changes exactly when the bytes do: many servers send no validator at
//! all, a CDN's ETags differ per node and a redeploy moves Last-Modified
//! with the same bytes (spurious rebuilds), and a weak ETag can stay while
//! the bytes change (a stale reuse). The price is one download per run of
//! each URL; files fetched this way are scripts and release tarballs.
//! `ADD --checksum=sha256:…` is used as given, with no download: the
//! builder checks the content against it.

use sha2::{Digest as _, Sha256};

use super::{Identity, ResolveError, Resolved};

/// The HTTP client for URLs: bounded by `timeout` per request.
pub(super) fn client(timeout: std::time::Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .user_agent(concat!("stackbake/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(timeout.min(std::time::Duration::from_secs(15)))
        .timeout(timeout)
        .build()
        .map_err(|e| e.to_string())
}

/// The content checksum of `url`, or `checksum` when given.
pub(super) async fn resolve(
    http: &Result<reqwest::Client, String>,
    url: &str,
    checksum: Option<&str>,
) -> Result<Resolved, ResolveError> {
    let fail = |detail: String| ResolveError::Url {
        url: redact(url),
        detail,
    };
    if let Some(sum) = checksum {
        return match crate::reference::Digest::parse(sum) {
            Ok(d) => Ok(Resolved {
                identity: Identity::Content(d.to_string()),
                pin: None,
            }),
            Err(e) => Err(fail(format!("--checksum={sum}: {e}"))),
        };
    }
    let http = http.as_ref().map_err(|e| fail(e.clone()))?;
    let mut resp = http
        .get(url)
        .send()
        .await
        .map_err(|e| fail(format!("cannot download it: {}", chain(&e.without_url()))))?;
    let status = resp.status();
    if !status.is_success() {
        return Err(fail(format!(
            "the server answered HTTP {}",
            status.as_u16()
        )));
    }
    let mut h = Sha256::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| {
        fail(format!(
            "the download broke off: {}",
            chain(&e.without_url())
        ))
    })? {
        h.update(&chunk);
    }
    Ok(Resolved {
        identity: Identity::Content(format!("sha256:{}", hex::encode(h.finalize()))),
        pin: None,
    })
}

/// `url` with any `user:password@` replaced by `***@`, for messages.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_string(),
    }
}

/// An error and its sources on one line (the URL left out: it may hold
/// credentials).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_urls_are_not_shown() {
        assert_eq!(
            redact("https://u:secret@example.com/f.tgz"),
            "https://***@example.com/f.tgz"
        );
        assert_eq!(redact("https://example.com/a@b"), "https://example.com/a@b");
        assert_eq!(redact("git@github.com:x/y.git"), "git@github.com:x/y.git");
    }

    #[tokio::test]
    async fn a_given_checksum_is_the_identity_and_nothing_is_fetched() {
        let sum = format!("sha256:{}", "b".repeat(64));
        let r = resolve(
            &client(std::time::Duration::from_secs(1)),
            "http://192.0.2.1/never",
            Some(&sum),
        )
        .await
        .expect("no download");
        assert_eq!(r.identity, Identity::Content(sum));
        let bad = resolve(
            &client(std::time::Duration::from_secs(1)),
            "http://192.0.2.1/x",
            Some("md5:1"),
        )
        .await;
        assert!(matches!(bad, Err(ResolveError::Url { .. })), "{bad:?}");
    }
}

//! `ADD <git url>[#ref[:subdir]]`: the input is the commit the ref names
//! now, asked with `git ls-remote` (no clone). A ref that is already a
//! full commit id is used as is. Only BuildKit runs `ADD <git url>`; on
//! the classic builder the build refuses it first (`build::refuse`).

use std::time::Duration;

use super::url::redact;
use super::{Identity, ResolveError, Resolved};

/// A git source split into the remote, the ref (default `HEAD`) and the subdirectory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct GitSource {
    pub(super) remote: String,
    pub(super) reference: String,
    pub(super) subdir: Option<String>,
}

impl GitSource {
    /// Splits `url#ref:subdir` as BuildKit does.
    pub(super) fn parse(url: &str) -> GitSource {
        let (remote, fragment) = url.split_once('#').unwrap_or((url, ""));
        let (reference, subdir) = match fragment.split_once(':') {
            Some((r, d)) => (r, Some(d.to_string())),
            None => (fragment, None),
        };
        GitSource {
            remote: remote.to_string(),
            reference: if reference.is_empty() {
                "HEAD"
            } else {
                reference
            }
            .to_string(),
            subdir,
        }
    }
}

/// The commit `url`'s ref names.
pub(super) async fn resolve(url: &str, timeout: Duration) -> Result<Resolved, ResolveError> {
    let src = GitSource::parse(url);
    let fail = |detail: String| ResolveError::Git {
        url: redact(url),
        detail,
    };
    if is_commit(&src.reference) {
        return Ok(commit(src.reference.to_ascii_lowercase()));
    }
    let mut cmd = tokio::process::Command::new("git");
    cmd.args(["ls-remote", "--", &src.remote, &src.reference])
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    if std::env::var_os("GIT_SSH_COMMAND").is_none() {
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .map_err(|_| {
            fail(format!(
                "git ls-remote gave no answer in {} s",
                timeout.as_secs()
            ))
        })?
        .map_err(|e| fail(format!("cannot run git: {e}")))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("failed");
        return Err(fail(first.replace(&src.remote, &redact(&src.remote))));
    }
    let listing = String::from_utf8_lossy(&out.stdout);
    pick(&listing)
        .map(commit)
        .ok_or_else(|| fail(format!("the repository has no ref `{}`", src.reference)))
}

/// From `git ls-remote` output: the peeled commit of an annotated tag
/// (`…^{}`) if listed, else the first line's object.
fn pick(listing: &str) -> Option<String> {
    let rows: Vec<(&str, &str)> = listing
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .filter(|(sha, _)| is_commit(sha))
        .collect();
    rows.iter()
        .find(|(_, name)| name.ends_with("^{}"))
        .or(rows.first())
        .map(|(sha, _)| sha.to_string())
}

fn is_commit(s: &str) -> bool {
    s.len() == 40 && s.chars().all(|c| c.is_ascii_hexdigit())
}

fn commit(sha: String) -> Resolved {
    Resolved {
        identity: Identity::Commit(sha),
        pin: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_remote_ref_and_subdir() {
        let s = GitSource::parse("https://github.com/moby/buildkit.git#v0.13.0:frontend");
        assert_eq!(s.remote, "https://github.com/moby/buildkit.git");
        assert_eq!(s.reference, "v0.13.0");
        assert_eq!(s.subdir.as_deref(), Some("frontend"));
        let s = GitSource::parse("git@github.com:x/y.git");
        assert_eq!(
            (s.remote.as_str(), s.reference.as_str()),
            ("git@github.com:x/y.git", "HEAD")
        );
    }

    #[test]
    fn annotated_tags_resolve_to_their_commit() {
        let a = "a".repeat(40);
        let b = "b".repeat(40);
        assert_eq!(
            pick(&format!("{a}\trefs/tags/v1\n{b}\trefs/tags/v1^{{}}\n")),
            Some(b)
        );
        assert_eq!(pick(&format!("{a}\trefs/heads/main\n")), Some(a));
        assert_eq!(pick(""), None);
    }

    /// A real repository on disk: the ref moves, the identity follows.
    #[tokio::test]
    async fn ls_remote_follows_the_branch() {
        let dir = tempfile::tempdir().expect("tempdir");
        let repo = dir.path().to_string_lossy().to_string();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .args(["-C", &repo, "-c", "user.name=t", "-c", "user.email=t@t"])
                .args(args)
                .output()
                .expect("git runs");
            assert!(
                out.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        };
        git(&["init", "-q", "-b", "main"]);
        git(&["commit", "-q", "--allow-empty", "-m", "one"]);
        let first = git(&["rev-parse", "HEAD"]);
        let url = format!("{repo}#main");
        let t = Duration::from_secs(30);
        let got = resolve(&url, t).await.expect("resolves");
        assert_eq!(got.identity, Identity::Commit(first.clone()));
        git(&["commit", "-q", "--allow-empty", "-m", "two"]);
        let moved = resolve(&url, t).await.expect("resolves");
        assert_ne!(moved.identity, Identity::Commit(first));
        let missing = resolve(&format!("{repo}#nope"), t).await;
        assert!(
            matches!(missing, Err(ResolveError::Git { .. })),
            "{missing:?}"
        );
    }
}

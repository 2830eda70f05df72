//! Tags as ECR really treats them: a repository may keep its tags
//! immutable (all, all but some, or only some: `IMMUTABLE`,
//! `IMMUTABLE_WITH_EXCLUSION`, `MUTABLE_WITH_EXCLUSION`), and an image may
//! carry at most 1,000 tags. [`put_tag`] gives a digest a tag without ever
//! sending a PUT the repository will refuse: where the tag is immutable it
//! looks first, and a tag that already names the digest is success. A
//! refusal the repository's settings did not predict (a registry that is
//! not ECR, or settings we could not read) is learnt for the rest of the run.

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::{Registry, RegistryError};

/// An ECR `WILDCARD` exclusion filter: `*` matches any run of characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Wildcard(String);

impl Wildcard {
    /// The filter as ECR stores it (`latest`, `dev-*`).
    pub(crate) fn new(pattern: impl Into<String>) -> Wildcard {
        Wildcard(pattern.into())
    }

    /// Whether `tag` matches.
    pub(crate) fn matches(&self, tag: &str) -> bool {
        let parts: Vec<&str> = self.0.split('*').collect();
        let [first, middle @ .., last] = parts.as_slice() else {
            return self.0 == tag;
        };
        if parts.len() == 1 {
            return self.0 == tag;
        }
        let Some(mut rest) = tag.strip_prefix(first) else {
            return false;
        };
        for part in middle {
            match rest.find(part) {
                Some(i) => rest = &rest[i + part.len()..],
                None => return false,
            }
        }
        rest.len() >= last.len() && rest.ends_with(last)
    }
}

/// Whether a repository lets an existing tag move.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) enum Mutability {
    /// Every tag can move (ECR `MUTABLE`; any registry we know nothing of).
    #[default]
    Mutable,
    /// No tag can move (`IMMUTABLE`), except those matching a filter
    /// (`IMMUTABLE_WITH_EXCLUSION`).
    Immutable {
        /// Tags that can move anyway.
        except: Vec<Wildcard>,
    },
    /// Every tag can move except those matching a filter
    /// (`MUTABLE_WITH_EXCLUSION`).
    MutableExcept {
        /// Tags that cannot move.
        fixed: Vec<Wildcard>,
    },
}

impl Mutability {
    /// Whether `tag`, once it exists, can never point elsewhere.
    pub(crate) fn is_fixed(&self, tag: &str) -> bool {
        match self {
            Mutability::Mutable => false,
            Mutability::Immutable { except } => !except.iter().any(|w| w.matches(tag)),
            Mutability::MutableExcept { fixed } => fixed.iter().any(|w| w.matches(tag)),
        }
    }
}

/// Each repository's mutability, as read from ECR and learnt from refusals.
#[derive(Debug, Default)]
pub(crate) struct TagPolicies(Mutex<BTreeMap<String, Mutability>>);

impl TagPolicies {
    /// Policies as read from the registry's settings.
    pub(crate) fn new(known: BTreeMap<String, Mutability>) -> TagPolicies {
        TagPolicies(Mutex::new(known))
    }

    /// `repo`'s mutability (mutable when unknown).
    pub(crate) fn of(&self, repo: &str) -> Mutability {
        self.lock().get(repo).cloned().unwrap_or_default()
    }

    /// The registry refused to move `tag` in `repo`: from now on it is fixed.
    pub(crate) fn learn(&self, repo: &str, tag: &str) {
        let mut map = self.lock();
        let m = map.entry(repo.to_string()).or_default();
        if m.is_fixed(tag) {
            return;
        }
        *m = match std::mem::take(m) {
            // We cannot know ECR's filters from a refusal: treat the whole
            // repository as immutable, which only costs a look before a PUT.
            Mutability::Mutable | Mutability::Immutable { .. } => {
                Mutability::Immutable { except: Vec::new() }
            }
            Mutability::MutableExcept { mut fixed } => {
                fixed.push(Wildcard::new(tag));
                Mutability::MutableExcept { fixed }
            }
        };
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Mutability>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// What giving a digest a tag did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TagWrite {
    /// The tag now names the digest.
    Written,
    /// The tag already named the digest; nothing was sent.
    AlreadyThere,
    /// The tag is immutable and names another digest; it stays there.
    Kept {
        /// What it names.
        existing: String,
    },
    /// The image already has as many tags as the registry allows.
    LimitReached,
}

/// Gives the manifest `digest` of `repo` the tag `to`, honouring the
/// repository's tag mutability: never a PUT of an existing immutable tag.
pub(crate) async fn put_tag(
    registry: &dyn Registry,
    policies: &TagPolicies,
    repo: &str,
    digest: &str,
    to: &str,
) -> Result<TagWrite, RegistryError> {
    if policies.of(repo).is_fixed(to)
        && let Some(existing) = registry.manifest_digest(repo, to).await?
    {
        return Ok(settled(digest, existing));
    }
    match registry.copy_tag(repo, digest, to).await {
        Ok(_) => Ok(TagWrite::Written),
        Err(refused @ RegistryError::TagImmutable { .. }) => {
            policies.learn(repo, to);
            match registry.manifest_digest(repo, to).await? {
                Some(existing) => Ok(settled(digest, existing)),
                // Refused, yet absent: not a state we can reason about.
                None => Err(refused),
            }
        }
        Err(RegistryError::TagLimit { .. }) => Ok(TagWrite::LimitReached),
        Err(e) => Err(e),
    }
}

fn settled(digest: &str, existing: String) -> TagWrite {
    if existing == digest {
        TagWrite::AlreadyThere
    } else {
        TagWrite::Kept { existing }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_ecr_filters_do() {
        let w = Wildcard::new;
        assert!(w("latest").matches("latest"));
        assert!(!w("latest").matches("latest2"));
        assert!(w("dev-*").matches("dev-"));
        assert!(w("dev-*").matches("dev-abc"));
        assert!(!w("dev-*").matches("prod-dev-1"));
        assert!(w("*-rc").matches("1.2-rc"));
        assert!(w("a*b*c").matches("aXbYc"));
        assert!(w("a*b*c").matches("abc"));
        assert!(!w("a*b*c").matches("acb"));
        assert!(w("*").matches("anything"));
        assert!(!w("ab*ba").matches("aba"), "the ends must not overlap");
    }

    #[test]
    fn mutability_says_which_tags_are_fixed() {
        let immutable = Mutability::Immutable {
            except: vec![Wildcard::new("latest"), Wildcard::new("buildcache")],
        };
        assert!(immutable.is_fixed("abc1234"));
        assert!(immutable.is_fixed("fp-00"));
        assert!(!immutable.is_fixed("latest"));
        assert!(!immutable.is_fixed("buildcache"));
        let fixed_releases = Mutability::MutableExcept {
            fixed: vec![Wildcard::new("v*")],
        };
        assert!(fixed_releases.is_fixed("v1.2"));
        assert!(!fixed_releases.is_fixed("latest"));
        assert!(!Mutability::Mutable.is_fixed("latest"));
    }

    #[test]
    fn a_refusal_makes_the_repository_immutable_for_the_run() {
        let p = TagPolicies::default();
        assert!(!p.of("r").is_fixed("latest"));
        p.learn("r", "latest");
        assert!(p.of("r").is_fixed("latest"));
        assert!(p.of("r").is_fixed("abc1234"));
        assert!(!p.of("other").is_fixed("latest"));
    }
}

//! SPEC step 7 for one built image and one of its repositories: the commit
//! tag, then the fingerprint tag — never a PUT the repository will refuse.
//! Where the commit tag is immutable and exists already (a retried build of
//! the same commit), it must name this very image: then nothing is pushed;
//! if it names another image, that is an error that says how to get out.
//! A push refused because the tag is immutable (a registry whose settings
//! we could not read) is learnt, and then handled the same way.

use tracing::Instrument;

use crate::build::destination::Destination;
use crate::build::unit::Shared;
use crate::engine::{self, BuiltImage, EngineError, Pushed};
use crate::error::{Cause, Step};
use crate::events::{Event, TagReason, UnitEvents};
use crate::registry::retry::{self, Attempt};
use crate::registry::tags::{self, TagWrite};

/// Delivers `image`, tagged `full_repo:commit` in the engine, to `repo`.
pub(crate) async fn deliver(
    shared: &Shared,
    dest: &Destination,
    repo: &str,
    image: &BuiltImage,
    fingerprint_tag: &str,
    events: &UnitEvents,
) -> Result<Pushed, (Step, Cause)> {
    let commit = &shared.commit;
    let registry = dest.registry.as_ref();
    let registry_err = |e| (Step::Push, Cause::Registry(Box::new(e)));
    let existing = if dest.policies.of(repo).is_fixed(commit) {
        registry
            .manifest_digest(repo, commit)
            .await
            .map_err(registry_err)?
    } else {
        None
    };
    let pushed = match existing {
        Some(existing) => already_pushed(dest, repo, commit, existing, image).await?,
        None => {
            events.send(Event::Pushing {
                unit: events.unit().to_string(),
                image: format!("{}:{commit}", dest.repository(repo)),
            });
            let full_repo = dest.repository(repo);
            match push(shared, dest, &full_repo, events)
                .instrument(tracing::debug_span!("push", repository = %full_repo))
                .await
            {
                Ok(p) => p,
                Err(e) if engine::is_tag_immutable(&e) => {
                    dest.policies.learn(repo, commit);
                    let existing = registry
                        .manifest_digest(repo, commit)
                        .await
                        .map_err(registry_err)?
                        .ok_or((Step::Push, Cause::Engine(e)))?;
                    already_pushed(dest, repo, commit, existing, image).await?
                }
                Err(e) => return Err((Step::Push, Cause::Engine(e))),
            }
        }
    };
    // The image is fully pushed: only now may its fingerprint tag point at
    // it. Copied from the pushed digest, not the commit tag, which another
    // build of the same commit could have moved meanwhile.
    let write = tags::put_tag(
        registry,
        &dest.policies,
        repo,
        &pushed.digest,
        fingerprint_tag,
    )
    .await
    .map_err(registry_err)?;
    if let Some(reason) = TagReason::of(&write) {
        events.send(Event::TagNotMoved {
            repository: dest.repository(repo),
            tag: fingerprint_tag.to_string(),
            reason,
        });
    }
    Ok(pushed)
}

/// The immutable `repo:commit` exists already as `existing`: success when it
/// is `image` (a retried build of the same commit), else a conflict.
async fn already_pushed(
    dest: &Destination,
    repo: &str,
    commit: &str,
    existing: String,
    image: &BuiltImage,
) -> Result<Pushed, (Step, Cause)> {
    let same = existing == image.id
        || dest
            .registry
            .config_digest(repo, &existing)
            .await
            .map_err(|e| (Step::Push, Cause::Registry(Box::new(e))))?
            .is_some_and(|config| config == image.id);
    if same {
        return Ok(Pushed {
            digest: existing,
            bytes_pushed: 0,
        });
    }
    Err((
        Step::Push,
        Cause::TagConflict {
            repository: dest.repository(repo),
            tag: commit.to_string(),
            existing,
        },
    ))
}

/// Pushes `full_repo:commit`, retrying transient failures with the run's
/// retry policy (the same backoff as registry requests).
async fn push(
    shared: &Shared,
    dest: &Destination,
    full_repo: &str,
    events: &UnitEvents,
) -> Result<Pushed, EngineError> {
    let auth = dest.auth();
    let (result, _) = retry::run_observed(
        &shared.push_retries,
        |attempt| {
            let auth = auth.clone();
            async move {
                match shared
                    .engine
                    .push(full_repo, &shared.commit, auth.as_ref(), events)
                    .await
                {
                    Err(e) if engine::is_transient(&e) => Attempt::Retry {
                        last: Err(e),
                        after: None,
                    },
                    // The registry accepted these credentials moments ago (the
                    // fingerprint lookups): a first "authentication required"
                    // is most likely the engine's auth handshake meeting a 5xx
                    // (it then goes on without credentials). A second one is
                    // the answer; "denied" is final at once.
                    Err(e) if attempt == 1 && engine::is_push_unauthenticated(&e) => {
                        Attempt::Retry {
                            last: Err(e),
                            after: None,
                        }
                    }
                    other => Attempt::Done(other),
                }
            }
        },
        |_, wait, last| {
            if let Err(e) = last {
                events.send(Event::Retry {
                    unit: events.unit().to_string(),
                    what: "push",
                    error: e.to_string(),
                    wait,
                });
            }
        },
    )
    .await;
    result
}

impl TagReason {
    /// Why a tag write left the tag where it was, if it did.
    pub(crate) fn of(write: &TagWrite) -> Option<TagReason> {
        match write {
            TagWrite::Written | TagWrite::AlreadyThere => None,
            TagWrite::Kept { existing } => Some(TagReason::Immutable {
                existing: existing.clone(),
            }),
            TagWrite::LimitReached => Some(TagReason::Limit),
        }
    }
}

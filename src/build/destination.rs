//! SPEC step 3: where images go. `--local` without `--registry`: the local
//! engine only. `--local --registry HOST`: that registry, with
//! `--registry-user` credentials. Otherwise ECR: account and region from
//! AWS, credentials from GetAuthorizationToken (kept in memory), the
//! repositories checked (or created with `--create-repos`), and the host
//! from the token unless `--registry` overrides it.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::build::inputs::Inputs;
use crate::config::Settings;
use crate::engine::RegistryAuth;
use crate::error::Error;
use crate::events::{Event, Events, Notice};
use crate::registry::tags::TagPolicies;
use crate::registry::{Credentials, Registry, RetryPolicy};
use crate::services::Services;

/// A registry images are pushed to.
#[derive(Clone)]
pub(crate) struct Destination {
    /// `host[:port]`.
    pub(crate) host: String,
    /// Its HTTP API.
    pub(crate) registry: Arc<dyn Registry>,
    /// Credentials, if any, for the engine's pulls and pushes.
    pub(crate) creds: Option<Credentials>,
    /// Each repository's tag mutability (read from ECR, learnt from refusals).
    pub(crate) policies: Arc<TagPolicies>,
}

impl Destination {
    /// The credentials in the form the engine takes them, per request.
    pub(crate) fn auth(&self) -> Option<RegistryAuth> {
        self.creds.clone().map(|credentials| RegistryAuth {
            host: self.host.clone(),
            credentials,
        })
    }

    /// `host/repo`.
    pub(crate) fn repository(&self, repo: &str) -> String {
        format!("{}/{repo}", self.host)
    }
}

/// Whether the caller may change anything (create repositories).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// `build`.
    Build,
    /// `plan`: reads only.
    Plan,
}

/// The registry client's retries: `--timeout` lowers the per-request
/// timeout (a manifest request never needs more than the default).
pub(crate) fn retry_policy(s: &Settings) -> RetryPolicy {
    let d = RetryPolicy::default();
    RetryPolicy {
        attempts: s.retries + 1,
        request_timeout: s.timeout.min(d.request_timeout),
        ..d
    }
}

/// Retries of an image push: as many attempts as a registry request gets,
/// a longer backoff (a push moves layers, not one manifest), and a budget
/// of 30 minutes for every attempt and wait of one push.
pub(crate) fn push_policy(s: &Settings) -> RetryPolicy {
    RetryPolicy {
        attempts: s.retries + 1,
        base_delay: std::time::Duration::from_secs(1),
        max_delay: std::time::Duration::from_secs(16),
        total: std::time::Duration::from_secs(30 * 60),
        request_timeout: s.timeout,
    }
}

/// Resolves where images go, and checks that the registry answers.
pub(crate) async fn resolve(
    s: &Settings,
    inputs: &Inputs,
    services: &dyn Services,
    events: &Events,
    intent: Intent,
) -> Result<Option<Destination>, Error> {
    let policy = retry_policy(s);
    let mut mutability = BTreeMap::new();
    let (host, creds) = if s.local {
        let Some(host) = &s.registry else {
            events.send(Event::Notice(Notice::LocalOnly));
            return Ok(None);
        };
        (host.clone(), s.registry_credentials.clone())
    } else {
        let aws = services
            .aws(inputs.taskdef.region_hint(), policy.request_timeout)
            .await?;
        events.send(Event::Notice(Notice::Aws {
            account: aws.account().to_string(),
            region: aws.region().to_string(),
            registry: aws.registry_host().to_string(),
        }));
        if intent == Intent::Build {
            let repos: Vec<String> = inputs
                .targets
                .iter()
                .flat_map(|t| t.repositories.iter().cloned())
                .collect();
            let found = aws.ensure_repositories(&repos, s.create_repos).await?;
            for r in found.created {
                let mutable = found.created_mutable.contains(&r);
                events.send(Event::Notice(Notice::RepositoryCreated {
                    repository: r,
                    mutable,
                }));
            }
            mutability = found.mutability;
        }
        let host = s
            .registry
            .clone()
            .unwrap_or_else(|| aws.registry_host().to_string());
        (host, Some(aws.credentials().clone()))
    };
    let registry = services.registry(&host, creds.clone(), policy)?;
    registry.ping().await?;
    Ok(Some(Destination {
        host,
        registry,
        creds,
        policies: Arc::new(TagPolicies::new(mutability)),
    }))
}

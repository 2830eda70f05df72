//! The AWS side of the registry: the region (environment, else a hint from
//! the taskdef's image URIs), the account (STS GetCallerIdentity), the
//! registry credentials (ECR GetAuthorizationToken, decoded into a
//! [`Credentials`] held in memory only) and host (the token's proxy
//! endpoint), and the repositories (DescribeRepositories, CreateRepository).
//! Configuration goes through the SDK's default chain, so credentials,
//! profiles and `AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_ECR` and
//! `AWS_ENDPOINT_URL_STS` work the standard way.

use aws_config::BehaviorVersion;
use std::collections::BTreeMap;

use aws_sdk_ecr::types::{
    ImageScanningConfiguration, ImageTagMutability, ImageTagMutabilityExclusionFilter,
    ImageTagMutabilityExclusionFilterType,
};
use aws_sdk_sts::config::ProvideCredentials;
use aws_smithy_types::error::display::DisplayErrorContext;
use base64::Engine as _;

use super::secret::{Credentials, Secret};
use super::tags::{Mutability, Wildcard};
use crate::reference::Host;

/// Errors of the AWS side; messages say what to set or grant.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AwsError {
    /// Neither the environment nor the image URIs name a region.
    #[error(
        "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), e.g. `export AWS_REGION=us-east-2`, \
         or use ECR image URIs (ACCOUNT.dkr.ecr.REGION.amazonaws.com/REPO) in taskdef.json"
    )]
    NoRegion,
    /// No credentials could be found, or AWS rejected them.
    #[error(
        "no usable AWS credentials (region {region}): {detail}; set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), or in CodeBuild give the project a service role"
    )]
    Credentials {
        /// Region in use.
        region: String,
        /// The SDK's explanation.
        detail: String,
    },
    /// STS GetCallerIdentity failed for another reason.
    #[error(
        "STS GetCallerIdentity failed in region {region}: {detail}; check network access to STS \
         (and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_STS if set)"
    )]
    Sts {
        /// Region in use.
        region: String,
        /// The SDK's explanation.
        detail: String,
    },
    /// An ECR call failed.
    #[error(
        "ECR {operation}{} failed in region {region}: {detail}; check the role's ecr:{operation} \
         permission and network access to ECR (and AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_ECR if set)",
        repository.as_deref().map(|r| format!(" for repository {r}")).unwrap_or_default()
    )]
    Ecr {
        /// The ECR API operation.
        operation: &'static str,
        /// Region in use.
        region: String,
        /// Repository concerned, if any.
        repository: Option<String>,
        /// The SDK's explanation.
        detail: String,
    },
    /// GetAuthorizationToken answered something that is not a usable token.
    #[error(
        "ECR GetAuthorizationToken in region {region} gave an unusable answer: {reason}; retry, and \
         check AWS_ENDPOINT_URL_ECR if set"
    )]
    BadAuthorizationToken {
        /// Region in use.
        region: String,
        /// What is wrong (never the token itself).
        reason: &'static str,
    },
    /// Repositories the taskdef maps to do not exist.
    #[error(
        "ECR repositories missing in region {region}: {}; create them, or pass --create-repos",
        repos.join(", ")
    )]
    RepositoryMissing {
        /// Region in use.
        region: String,
        /// The missing repositories.
        repos: Vec<String>,
    },
}

/// A connection to ECR: account, region, registry host and credentials.
pub(crate) struct EcrSession {
    /// AWS account id, from STS.
    pub account: String,
    /// Region in use.
    pub region: String,
    /// Registry host from the token's proxy endpoint (no scheme).
    pub registry_host: String,
    /// `AWS` and the authorization token (redacted in `Debug`).
    pub credentials: Credentials,
    client: aws_sdk_ecr::Client,
}

impl std::fmt::Debug for EcrSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcrSession")
            .field("account", &self.account)
            .field("region", &self.region)
            .field("registry_host", &self.registry_host)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// The region: `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `hint`
/// (empty values count as unset). `env` looks a variable up.
pub(crate) fn resolve_region(
    env: impl Fn(&str) -> Option<String>,
    hint: Option<String>,
) -> Result<String, AwsError> {
    ["AWS_REGION", "AWS_DEFAULT_REGION"]
        .iter()
        .filter_map(|k| env(k))
        .chain(hint)
        .map(|r| r.trim().to_owned())
        .find(|r| !r.is_empty())
        .ok_or(AwsError::NoRegion)
}

/// Connects to AWS: resolves the region, checks the credentials, reads the
/// account from STS and gets the registry credentials from ECR.
///
/// `attempt_timeout` bounds each attempt of every AWS call (the SDK sets only a
/// connect timeout, so an endpoint that accepts and never answers would hang
/// the run); the SDK's standard retry mode retries a timed-out attempt.
pub(crate) async fn connect(
    region_hint: Option<String>,
    attempt_timeout: std::time::Duration,
) -> Result<EcrSession, AwsError> {
    let region = resolve_region(|k| std::env::var(k).ok(), region_hint)?;
    let config = load_config(&region, attempt_timeout).await;
    check_credentials(&config, &region).await?;
    let account = caller_account(&config, &region).await?;
    let client = aws_sdk_ecr::Client::new(&config);
    let login = registry_login(&client, &region).await?;
    Ok(EcrSession {
        account,
        region,
        registry_host: login.registry_host,
        credentials: login.credentials,
        client,
    })
}

/// The SDK configuration from the default chain, for `region`, with each
/// attempt of every call bounded by `attempt_timeout`.
async fn load_config(region: &str, attempt_timeout: std::time::Duration) -> aws_config::SdkConfig {
    let timeouts = aws_config::timeout::TimeoutConfig::builder()
        .operation_attempt_timeout(attempt_timeout)
        .build();
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_owned()))
        .timeout_config(timeouts)
        .load()
        .await
}

/// The error for credentials that are missing or refused.
fn credentials_error(region: &str, detail: String) -> AwsError {
    AwsError::Credentials {
        region: region.to_owned(),
        detail,
    }
}

/// Checks that the configured credentials provider gives credentials.
async fn check_credentials(config: &aws_config::SdkConfig, region: &str) -> Result<(), AwsError> {
    let provider = config.credentials_provider().ok_or_else(|| {
        credentials_error(region, "no credentials provider is configured".to_owned())
    })?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| credentials_error(region, DisplayErrorContext(&e).to_string()))?;
    Ok(())
}

/// The account the credentials belong to, from STS GetCallerIdentity; a
/// refused identity is a credentials error, anything else an STS error.
async fn caller_account(config: &aws_config::SdkConfig, region: &str) -> Result<String, AwsError> {
    let sts = aws_sdk_sts::Client::new(config);
    let identity = match sts.get_caller_identity().send().await {
        Ok(out) => out,
        Err(e) => {
            let detail = DisplayErrorContext(&e).to_string();
            let code = e
                .as_service_error()
                .and_then(|s| aws_sdk_sts::error::ProvideErrorMetadata::code(s).map(str::to_owned));
            return Err(match code.as_deref() {
                Some(
                    "InvalidClientTokenId"
                    | "SignatureDoesNotMatch"
                    | "ExpiredToken"
                    | "AccessDenied"
                    | "UnrecognizedClientException",
                ) => credentials_error(region, detail),
                _ => AwsError::Sts {
                    region: region.to_owned(),
                    detail,
                },
            });
        }
    };
    Ok(identity
        .account()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| AwsError::Sts {
            region: region.to_owned(),
            detail: "the answer names no account".to_owned(),
        })?
        .to_owned())
}

/// The registry credentials and host from ECR GetAuthorizationToken.
struct RegistryLogin {
    /// `AWS` and the decoded token.
    credentials: Credentials,
    /// The host of the token's proxy endpoint.
    registry_host: String,
}

/// Gets and decodes the registry credentials and host from ECR.
async fn registry_login(
    client: &aws_sdk_ecr::Client,
    region: &str,
) -> Result<RegistryLogin, AwsError> {
    let token = client
        .get_authorization_token()
        .send()
        .await
        .map_err(|e| AwsError::Ecr {
            operation: "GetAuthorizationToken",
            region: region.to_owned(),
            repository: None,
            detail: DisplayErrorContext(&e).to_string(),
        })?;
    let bad = |reason| AwsError::BadAuthorizationToken {
        region: region.to_owned(),
        reason,
    };
    let data = token
        .authorization_data()
        .first()
        .ok_or_else(|| bad("no authorizationData"))?;
    // expiresAt is deliberately not checked: the token was just issued.
    let credentials = decode_authorization_token(
        data.authorization_token()
            .ok_or_else(|| bad("no authorizationToken"))?,
    )
    .map_err(bad)?;
    let registry_host = data
        .proxy_endpoint()
        .and_then(host_of_endpoint)
        .map(|host| host.to_string())
        .ok_or_else(|| bad("no usable proxyEndpoint"))?;
    Ok(RegistryLogin {
        credentials,
        registry_host,
    })
}

/// Decodes an ECR authorization token: base64 of `USER:PASSWORD`.
pub(crate) fn decode_authorization_token(token: &str) -> Result<Credentials, &'static str> {
    let raw = Secret::new(
        String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(token.trim())
                .map_err(|_| "the authorization token is not base64")?,
        )
        .map_err(|_| "the authorization token is not UTF-8")?,
    );
    let (user, password) = raw
        .expose()
        .split_once(':')
        .ok_or("the authorization token is not USER:PASSWORD")?;
    if user.is_empty() || password.is_empty() {
        return Err("the authorization token has an empty user or password");
    }
    Ok(Credentials::new(user, password))
}

/// `https://HOST[:PORT][/]` → `HOST[:PORT]`, if that is a valid host.
pub(crate) fn host_of_endpoint(endpoint: &str) -> Option<Host> {
    let rest = endpoint
        .trim()
        .strip_prefix("https://")
        .or_else(|| endpoint.trim().strip_prefix("http://"))
        .unwrap_or(endpoint.trim());
    Host::parse(rest.split('/').next()?).ok()
}

/// What [`EcrSession::ensure_repositories`] found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Repositories {
    /// Repositories created by this run.
    pub created: Vec<String>,
    /// Of those, the ones created with mutable tags because the API refused
    /// `IMMUTABLE_WITH_EXCLUSION`.
    pub created_mutable: Vec<String>,
    /// Every repository's tag mutability.
    pub mutability: BTreeMap<String, Mutability>,
}

/// Tags `--create-repos` leaves mutable in the repositories it creates:
/// `latest` moves with every deploy, `buildcache` with every build.
pub(crate) const MUTABLE_TAGS: [&str; 2] = ["latest", "buildcache"];

/// A repository's mutability as ECR describes it.
fn mutability_of(r: &aws_sdk_ecr::types::Repository) -> Mutability {
    let filters = || {
        r.image_tag_mutability_exclusion_filters()
            .iter()
            .map(|f| Wildcard::new(f.filter()))
            .collect::<Vec<_>>()
    };
    match r.image_tag_mutability() {
        Some(ImageTagMutability::Immutable) => Mutability::Immutable { except: Vec::new() },
        Some(ImageTagMutability::ImmutableWithExclusion) => {
            Mutability::Immutable { except: filters() }
        }
        Some(ImageTagMutability::MutableWithExclusion) => {
            Mutability::MutableExcept { fixed: filters() }
        }
        _ => Mutability::Mutable,
    }
}

impl EcrSession {
    /// Checks that every repository in `repos` exists and reads its tag
    /// mutability; with `create`, creates the missing ones (scan on push,
    /// tags immutable except `latest` and `buildcache`; mutable where the API
    /// refuses that), else fails with [`AwsError::RepositoryMissing`] naming
    /// them. Existing repositories are never changed.
    pub(crate) async fn ensure_repositories(
        &self,
        repos: &[String],
        create: bool,
    ) -> Result<Repositories, AwsError> {
        let mut found = Repositories::default();
        let mut missing: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for repo in repos.iter().filter(|r| seen.insert(r.as_str())) {
            match self
                .client
                .describe_repositories()
                .repository_names(repo)
                .send()
                .await
            {
                Ok(out) => {
                    let m = out
                        .repositories()
                        .first()
                        .map(mutability_of)
                        .unwrap_or_default();
                    found.mutability.insert(repo.clone(), m);
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_repository_not_found_exception()) =>
                {
                    missing.push(repo.clone());
                }
                Err(e) => return Err(self.ecr_error("DescribeRepositories", repo, &e)),
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        if !create {
            return Err(AwsError::RepositoryMissing {
                region: self.region.clone(),
                repos: missing,
            });
        }
        for repo in missing {
            match self.create_repository(&repo, true).await {
                Ok(()) => {
                    let except = MUTABLE_TAGS.iter().map(|t| Wildcard::new(*t)).collect();
                    found
                        .mutability
                        .insert(repo.clone(), Mutability::Immutable { except });
                    found.created.push(repo);
                }
                Err(e)
                    if e.as_service_error().is_some_and(|s| {
                        s.is_invalid_parameter_exception()
                            || aws_sdk_ecr::error::ProvideErrorMetadata::code(s)
                                == Some("ValidationException")
                    }) =>
                {
                    self.create_repository(&repo, false)
                        .await
                        .map_err(|e| self.ecr_error("CreateRepository", &repo, &e))?;
                    found.mutability.insert(repo.clone(), Mutability::Mutable);
                    found.created_mutable.push(repo.clone());
                    found.created.push(repo);
                }
                Err(e) => return Err(self.ecr_error("CreateRepository", &repo, &e)),
            }
        }
        Ok(found)
    }

    /// Creates `repo` with scan on push, and either tags immutable but for
    /// [`MUTABLE_TAGS`] or mutable tags. One that exists meanwhile is fine.
    async fn create_repository(
        &self,
        repo: &str,
        immutable: bool,
    ) -> Result<
        (),
        aws_sdk_ecr::error::SdkError<
            aws_sdk_ecr::operation::create_repository::CreateRepositoryError,
        >,
    > {
        let mut req = self
            .client
            .create_repository()
            .repository_name(repo)
            .image_scanning_configuration(
                ImageScanningConfiguration::builder()
                    .scan_on_push(true)
                    .build(),
            );
        req = if immutable {
            let mut r = req.image_tag_mutability(ImageTagMutability::ImmutableWithExclusion);
            for tag in MUTABLE_TAGS {
                if let Ok(f) = ImageTagMutabilityExclusionFilter::builder()
                    .filter_type(ImageTagMutabilityExclusionFilterType::Wildcard)
                    .filter(tag)
                    .build()
                {
                    r = r.image_tag_mutability_exclusion_filters(f);
                }
            }
            r
        } else {
            req.image_tag_mutability(ImageTagMutability::Mutable)
        };
        match req.send().await {
            Ok(_) => Ok(()),
            // Created meanwhile by someone else: it exists, which is the goal.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_repository_already_exists_exception()) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn ecr_error(
        &self,
        operation: &'static str,
        repo: &str,
        e: &(dyn std::error::Error + 'static),
    ) -> AwsError {
        AwsError::Ecr {
            operation,
            region: self.region.clone(),
            repository: Some(repo.to_owned()),
            detail: DisplayErrorContext(e).to_string(),
        }
    }
}

/// What a run asks of AWS once connected: who and where it is, the
/// registry credentials, and the repositories.
#[async_trait::async_trait]
pub(crate) trait Aws: Send + Sync {
    /// Account id.
    fn account(&self) -> &str;
    /// Region.
    fn region(&self) -> &str;
    /// Registry host (`ACCOUNT.dkr.ecr.REGION.amazonaws.com`).
    fn registry_host(&self) -> &str;
    /// `AWS` and the authorization token.
    fn credentials(&self) -> &Credentials;
    /// See [`EcrSession::ensure_repositories`].
    async fn ensure_repositories(
        &self,
        repos: &[String],
        create: bool,
    ) -> Result<Repositories, AwsError>;
}

#[async_trait::async_trait]
impl Aws for EcrSession {
    fn account(&self) -> &str {
        &self.account
    }
    fn region(&self) -> &str {
        &self.region
    }
    fn registry_host(&self) -> &str {
        &self.registry_host
    }
    fn credentials(&self) -> &Credentials {
        &self.credentials
    }
    async fn ensure_repositories(
        &self,
        repos: &[String],
        create: bool,
    ) -> Result<Repositories, AwsError> {
        EcrSession::ensure_repositories(self, repos, create).await
    }
}

#[cfg(test)]
mod live_tests;

#[cfg(test)]
mod tests;

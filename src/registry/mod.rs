//! The registry side of stackbake: a small OCI distribution (v2) HTTP client
//! ([`Registry`]) for manifest lookups, tag copies and labels, and the AWS
//! side ([`ecr`]): account from STS, ECR authorization token and
//! repositories. Secrets ([`Secret`], [`Credentials`]) stay in memory and
//! print as `<redacted>`; retries follow [`RetryPolicy`].

pub mod client;
pub mod ecr;
pub mod retry;
pub mod secret;

pub use client::{
    DOCKER_MANIFEST_LIST, DOCKER_MANIFEST_V2, Manifest, OCI_INDEX, OCI_MANIFEST, Registry,
    RegistryError,
};
pub use ecr::{AwsError, EcrSession, connect};
pub use retry::RetryPolicy;
pub use secret::{Credentials, Secret};

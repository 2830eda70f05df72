//! Our side of a BuildKit session (`POST /session`): the gRPC services the
//! engine calls back while it builds. Health (the engine polls it; one
//! missed answer on BuildKit v0.8 kills the session, so it does nothing but
//! answer), Auth (registry credentials from memory), Secrets (`--secret`
//! values, asked for only by a `RUN --mount=type=secret`) and FileSync (the
//! build context and the Dockerfile, see `filesync.rs`).
//!
//! One session per build, with its own id: BuildKit refuses a second
//! session under an id it already has. The session lives as long as the
//! [`Session`] value; dropping it closes the connection, which makes the
//! engine drop the session.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use bollard_buildkit_proto::health::health_check_response::ServingStatus;
use bollard_buildkit_proto::health::health_server::{Health, HealthServer};
use bollard_buildkit_proto::health::{
    HealthCheckRequest, HealthCheckResponse, HealthListRequest, HealthListResponse,
};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::secrets_server::{Secrets, SecretsServer};
use bollard_buildkit_proto::moby::buildkit::secrets::v1::{GetSecretRequest, GetSecretResponse};
use bollard_buildkit_proto::moby::filesync::v1::auth_server::{Auth, AuthServer};
use bollard_buildkit_proto::moby::filesync::v1::file_sync_server::FileSyncServer;
use bollard_buildkit_proto::moby::filesync::v1::{
    CredentialsRequest, CredentialsResponse, FetchTokenRequest, FetchTokenResponse,
    GetTokenAuthorityRequest, GetTokenAuthorityResponse, VerifyTokenAuthorityRequest,
    VerifyTokenAuthorityResponse,
};
use futures_util::Stream;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

use super::BuildKitError;
use super::filesync::FileSyncService;
use super::hijack::{Door, hijack};
use crate::registry::Secret;

/// The methods we serve, announced in the session's headers. FileSync must
/// be among them: BuildKit asks for it by name before it reads the context.
const METHODS: &[&str] = &[
    "/grpc.health.v1.Health/Check",
    "/moby.filesync.v1.FileSync/DiffCopy",
    "/moby.buildkit.secrets.v1.Secrets/GetSecret",
    "/moby.filesync.v1.Auth/Credentials",
    "/moby.filesync.v1.Auth/FetchToken",
    "/moby.filesync.v1.Auth/GetTokenAuthority",
    "/moby.filesync.v1.Auth/VerifyTokenAuthority",
];

/// What a session hands out.
pub(crate) struct Provided {
    /// The context and the Dockerfile.
    pub(crate) files: FileSyncService,
    /// Build secrets by id.
    pub(crate) secrets: Arc<HashMap<String, Secret>>,
    /// Registry host → (user, password).
    pub(crate) credentials: HashMap<String, (String, Secret)>,
}

/// A running session; dropping it ends it.
pub(crate) struct Session {
    /// The session id (`SolveRequest.session`).
    pub(crate) id: String,
    task: JoinHandle<()>,
}

impl Drop for Session {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens `/session` under `id` and serves `provided` on it until dropped.
/// `shared_key` names the context for BuildKit's transfer cache (the same
/// directory gives the same key, so unchanged files are not sent again).
pub(crate) async fn start(
    door: &Door,
    id: String,
    shared_key: String,
    provided: Provided,
) -> Result<Session, BuildKitError> {
    let mut headers = vec![
        ("X-Docker-Expose-Session-Uuid", id.clone()),
        ("X-Docker-Expose-Session-Name", "stackbake".to_string()),
        ("X-Docker-Expose-Session-Sharedkey", shared_key),
    ];
    for m in METHODS {
        headers.push(("X-Docker-Expose-Session-Grpc-Method", (*m).to_string()));
    }
    let io = hijack(door, "/session", &headers).await?;
    let routes = tonic::service::Routes::new(HealthServer::new(HealthService))
        .add_service(FileSyncServer::new(provided.files))
        .add_service(SecretsServer::new(SecretsService(provided.secrets)))
        .add_service(AuthServer::new(AuthService(provided.credentials)))
        .prepare();
    let service = hyper_util::service::TowerToHyperService::new(routes);
    let task = tokio::spawn(async move {
        let served = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .serve_connection(io, service)
            .await;
        if let Err(e) = served {
            tracing::debug!(error = %e, "buildkit session connection ended");
        }
    });
    Ok(Session { id, task })
}

/// A new session or build reference id: 25 base-36 characters, as
/// BuildKit's own, random enough never to meet another build's.
pub(crate) fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut out = String::with_capacity(25);
    let mut n: u128 = 0;
    for round in 0..2u8 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u8(round);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        h.write_u32(std::process::id());
        n = (n << 64) | u128::from(h.finish());
    }
    for _ in 0..25 {
        let digit = u32::try_from(n % 36).unwrap_or(0);
        out.push(char::from_digit(digit, 36).unwrap_or('0'));
        n /= 36;
    }
    out
}

struct HealthService;

#[tonic::async_trait]
impl Health for HealthService {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        Ok(Response::new(HealthCheckResponse {
            status: ServingStatus::Serving as i32,
        }))
    }

    async fn list(
        &self,
        _: Request<HealthListRequest>,
    ) -> Result<Response<HealthListResponse>, Status> {
        Err(Status::unimplemented("list"))
    }

    type WatchStream = Pin<Box<dyn Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("watch"))
    }
}

/// Registry credentials for the engine's pulls during the build (a `FROM`
/// on a private registry, a registry cache). An unknown host gets empty
/// credentials: anonymous. Token methods are unimplemented, so BuildKit
/// fetches tokens itself with these credentials.
struct AuthService(HashMap<String, (String, Secret)>);

#[tonic::async_trait]
impl Auth for AuthService {
    async fn credentials(
        &self,
        r: Request<CredentialsRequest>,
    ) -> Result<Response<CredentialsResponse>, Status> {
        let host = &r.get_ref().host;
        tracing::debug!(%host, known = self.0.contains_key(host), "buildkit asks for credentials");
        let (username, secret) = self
            .0
            .get(host)
            .map(|(u, p)| (u.clone(), p.expose().to_string()))
            .unwrap_or_default();
        Ok(Response::new(CredentialsResponse { username, secret }))
    }

    async fn fetch_token(
        &self,
        _: Request<FetchTokenRequest>,
    ) -> Result<Response<FetchTokenResponse>, Status> {
        Err(Status::unimplemented("fetch_token"))
    }

    async fn get_token_authority(
        &self,
        _: Request<GetTokenAuthorityRequest>,
    ) -> Result<Response<GetTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("get_token_authority"))
    }

    async fn verify_token_authority(
        &self,
        _: Request<VerifyTokenAuthorityRequest>,
    ) -> Result<Response<VerifyTokenAuthorityResponse>, Status> {
        Err(Status::unimplemented("verify_token_authority"))
    }
}

/// `--secret` values. An unknown id is `NotFound`: that is what lets a
/// mount without `required=true` go on without it.
struct SecretsService(Arc<HashMap<String, Secret>>);

#[tonic::async_trait]
impl Secrets for SecretsService {
    async fn get_secret(
        &self,
        r: Request<GetSecretRequest>,
    ) -> Result<Response<GetSecretResponse>, Status> {
        let id = &r.get_ref().id;
        tracing::debug!(%id, known = self.0.contains_key(id), "buildkit asks for a secret");
        match self.0.get(id) {
            Some(v) => Ok(Response::new(GetSecretResponse {
                data: v.expose().as_bytes().to_vec(),
            })),
            None => Err(Status::not_found(format!("secret {id} not found"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_base36() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 25);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
        );
        assert_ne!(a, b);
    }
}

//! The two doors into the engine's BuildKit: `POST /grpc` and `POST
//! /session`, each upgraded from HTTP/1.1 to prior-knowledge HTTP/2 (`Upgrade:
//! h2c`, answer `101`). On `/grpc` we are the HTTP/2 client (BuildKit's
//! `Control` service); on `/session` the engine is the client and we serve
//! the session's services. hyper keeps the bytes read past the `101` (the
//! engine's HTTP/2 preface follows at once), and the upgraded stream is what
//! tonic and hyper's HTTP/2 server take.

use std::path::{Path, PathBuf};

use http_body_util::Empty;
use hyper::upgrade::Upgraded;
use hyper_util::rt::TokioIo;
use tonic::transport::{Channel, Endpoint};

use super::BuildKitError;

/// Where the engine listens, and the API version prefix of its routes.
#[derive(Debug, Clone)]
pub(crate) struct Door {
    /// The engine's unix socket.
    pub(crate) socket: PathBuf,
    /// `/v1.NN` (the negotiated API version).
    pub(crate) prefix: String,
}

/// `POST {prefix}{path}` with `Upgrade: h2c` on the engine socket and the
/// given headers (a repeated name is sent as repeated header lines); the
/// raw upgraded stream.
pub(crate) async fn hijack(
    door: &Door,
    path: &str,
    headers: &[(&str, String)],
) -> Result<Upgraded, BuildKitError> {
    let route = format!("{}{path}", door.prefix);
    let fail = |detail: String| BuildKitError::Hijack {
        route: route.clone(),
        detail,
    };
    let stream = tokio::net::UnixStream::connect(&door.socket)
        .await
        .map_err(|e| fail(format!("{}: {e}", door.socket.display())))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| fail(e.to_string()))?;
    tokio::spawn(async move {
        // Ends when the upgraded stream is dropped; errors surface on it.
        let _ = conn.with_upgrades().await;
    });
    let mut req = hyper::Request::post(&route)
        .header("Host", "docker")
        .header("Connection", "Upgrade")
        .header("Upgrade", "h2c");
    for (name, value) in headers {
        req = req.header(*name, value.as_str());
    }
    let req = req
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| fail(e.to_string()))?;
    let res = sender
        .send_request(req)
        .await
        .map_err(|e| fail(e.to_string()))?;
    if res.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
        return Err(fail(format!("the engine answered HTTP {}", res.status())));
    }
    hyper::upgrade::on(res)
        .await
        .map_err(|e| fail(e.to_string()))
}

/// A gRPC channel to BuildKit's `Control` service over `/grpc`. One channel
/// serves every build of a run; if tonic ever reconnects, the connector
/// hijacks a new stream.
pub(crate) async fn control_channel(door: &Door) -> Result<Channel, BuildKitError> {
    let d = door.clone();
    Endpoint::from_static("http://docker.invalid")
        .connect_with_connector(tower::service_fn(move |_: http::Uri| {
            let d = d.clone();
            async move { hijack(&d, "/grpc", &[]).await }
        }))
        .await
        .map_err(|e| BuildKitError::Hijack {
            route: format!("{}/grpc", door.prefix),
            detail: e.to_string(),
        })
}

/// The engine's unix socket from `DOCKER_HOST` (`unix://PATH`), or the
/// default socket when it is unset. `None` for any other transport (tcp,
/// ssh, npipe): BuildKit's upgrades are then not reachable from here.
pub(crate) fn socket_from_env(docker_host: Option<&str>) -> Option<PathBuf> {
    match docker_host.map(str::trim) {
        None | Some("") => Some(Path::new("/var/run/docker.sock").to_path_buf()),
        Some(h) => h.strip_prefix("unix://").map(PathBuf::from),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_unix_sockets_are_reachable() {
        assert_eq!(
            socket_from_env(None),
            Some(PathBuf::from("/var/run/docker.sock"))
        );
        assert_eq!(
            socket_from_env(Some("unix:///run/x/docker.sock")),
            Some(PathBuf::from("/run/x/docker.sock"))
        );
        assert_eq!(socket_from_env(Some("tcp://127.0.0.1:2375")), None);
        assert_eq!(socket_from_env(Some("ssh://me@host")), None);
    }
}

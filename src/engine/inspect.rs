//! Reading an image of the engine's store: its id, the registry digests it
//! is known by, its creation time and labels (what base resolution,
//! `--max-age` and "base … moved" need of a local image).

use super::docker::{DockerEngine, error_message};
use super::{EngineError, LocalImage};

impl DockerEngine {
    /// The image `reference` names, or `None` when the engine has none.
    pub(crate) async fn inspect_local(
        &self,
        reference: &str,
    ) -> Result<Option<LocalImage>, EngineError> {
        match self.docker.inspect_image(reference).await {
            Ok(i) => Ok(Some(LocalImage {
                id: i.id.unwrap_or_default(),
                repo_digests: i.repo_digests.unwrap_or_default(),
                created: i.created.map(|c| c.to_string()),
                labels: i
                    .config
                    .and_then(|c| c.labels)
                    .map(|l| l.into_iter().collect())
                    .unwrap_or_default(),
            })),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(None),
            Err(e) => Err(EngineError::Call {
                action: format!("looking up {reference}"),
                message: error_message(&e),
            }),
        }
    }
}

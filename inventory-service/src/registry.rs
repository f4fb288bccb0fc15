//! The adapters of the core's [`DescriptorRegistry`] port: the descriptor
//! service in this process ([`InProcessRegistry`]) or over HTTP
//! ([`HttpRegistry`]).

use std::fmt;

use async_trait::async_trait;
use inventory_core::crafting::{DescriptorRegistry, RegistryError};
use protocol::{Descriptor, ErrorBody, ErrorCode, ItemId};

/// The in-process descriptor service (a node's embedded one, or one started
/// beside game-server code): its store, cache and invalidations.
#[derive(Clone, Debug)]
pub struct InProcessRegistry(pub descriptor_service::Descriptors);

fn registry_error(err: &descriptor_service::Error) -> RegistryError {
    RegistryError::new(err.code(), err.to_string())
}

#[async_trait]
impl DescriptorRegistry for InProcessRegistry {
    async fn create(&self, descriptor: &Descriptor) -> Result<(), RegistryError> {
        self.0
            .create(descriptor)
            .await
            .map_err(|e| registry_error(&e))?;
        Ok(())
    }

    async fn burn(&self, id: &ItemId) -> Result<(), RegistryError> {
        self.0.burn(id).await.map_err(|e| registry_error(&e))?;
        Ok(())
    }
}

/// A descriptor service over HTTP (`POST /v1/descriptors`,
/// `DELETE /v1/descriptors/{id}`), authenticated with a write token.
#[derive(Clone)]
pub struct HttpRegistry {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl fmt::Debug for HttpRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpRegistry")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl HttpRegistry {
    /// A registry at `base` (e.g. `http://127.0.0.1:8090`), presenting
    /// `token` as `Authorization: Bearer`.
    #[must_use]
    pub fn new(client: reqwest::Client, base: &str, token: impl Into<String>) -> Self {
        Self {
            client,
            base: base.trim_end_matches('/').to_owned(),
            token: token.into(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(), RegistryError> {
        let unavailable = |err: reqwest::Error| {
            RegistryError::new(
                ErrorCode::Unavailable,
                format!("descriptor service at {}: {err}", self.base),
            )
        };
        let response = request
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(unavailable)?;
        if response.status().is_success() {
            return Ok(());
        }
        let status = response.status();
        let body = response.bytes().await.map_err(unavailable)?;
        Err(match serde_json::from_slice::<ErrorBody>(&body) {
            Ok(error) => RegistryError::new(error.code, error.message),
            // Not the service's error body: a proxy or a crash answered, so
            // whether the write happened is unknown.
            Err(_) => RegistryError::new(
                ErrorCode::Unavailable,
                format!("descriptor service at {} answered {status}", self.base),
            ),
        })
    }
}

#[async_trait]
impl DescriptorRegistry for HttpRegistry {
    async fn create(&self, descriptor: &Descriptor) -> Result<(), RegistryError> {
        let url = format!("{}/v1/descriptors", self.base);
        self.send(self.client.post(url).json(descriptor)).await
    }

    async fn burn(&self, id: &ItemId) -> Result<(), RegistryError> {
        let url = format!("{}/v1/descriptors/{id}", self.base);
        self.send(self.client.delete(url)).await
    }
}

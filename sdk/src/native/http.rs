//! What the SDK's HTTP clients share: the retry policy, the base-URL check,
//! and how an answer becomes a value or an [`Error`].

use std::time::Duration;

use backon::ExponentialBuilder;
use protocol::ErrorBody;

use crate::Error;

/// How a client retries a request whose failure is retryable
/// ([`Error::is_retryable`]): bounded, exponential, jittered.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetryPolicy {
    pub(crate) max_retries: usize,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
}

impl RetryPolicy {
    pub(crate) fn backoff(&self) -> ExponentialBuilder {
        ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.max_retries)
            .with_jitter()
    }
}

/// `base_url` parsed, and a function making URLs under its path.
pub(crate) fn base_url(base_url: &str) -> Result<reqwest::Url, Error> {
    let invalid = |reason: String| Error::InvalidUrl {
        url: base_url.to_owned(),
        reason,
    };
    let base = reqwest::Url::parse(base_url).map_err(|e| invalid(e.to_string()))?;
    if base.cannot_be_a_base() {
        return Err(invalid("not a base URL".into()));
    }
    Ok(base)
}

/// `path` under `base`'s own path (`http://h/prefix` + `/v1/x` →
/// `http://h/prefix/v1/x`).
pub(crate) fn under(base: &reqwest::Url, path: &str) -> Result<reqwest::Url, Error> {
    base.join(&format!("{}{path}", base.path().trim_end_matches('/')))
        .map_err(|e| Error::InvalidUrl {
            url: base.to_string(),
            reason: e.to_string(),
        })
}

/// Sends `request`: the response when it succeeded, else its error body.
pub(crate) async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
    let response = request.send().await.map_err(Error::transport)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    // A 5xx keeps its body only when the body's code is a 5xx one too, so that
    // whatever the body says, a server failure stays retryable.
    match response.json::<ErrorBody>().await {
        Ok(body) if !status.is_server_error() || body.code.http_status() >= 500 => {
            Err(Error::Server(body))
        }
        _ => Err(Error::HttpStatus {
            status: status.as_u16(),
        }),
    }
}

/// A successful answer's body that could not be read.
pub(crate) fn unreadable(e: reqwest::Error) -> Error {
    if e.is_decode() {
        Error::Protocol(protocol::Error::MalformedMessage(e.to_string()))
    } else {
        Error::transport(e)
    }
}

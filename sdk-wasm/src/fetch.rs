//! One descriptor batch over the browser's `fetch`: `POST
//! /v1/descriptors/batch` with a [`BatchGetRequest`], answered by a
//! [`BatchGetResponse`] or an error body with a stable code.
//!
//! The global `fetch` is used (not `window.fetch`) so that the same code runs
//! in pages, workers and Node.

use protocol::{BatchGetRequest, BatchGetResponse, ErrorBody, ItemId};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{Headers, Request, RequestInit, Response};

use crate::error::transport;

/// The path of the batch-get endpoint under the service's base URL.
const BATCH_PATH: &str = "/v1/descriptors/batch";

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = fetch)]
    fn fetch_with_request(input: &Request) -> js_sys::Promise;
}

/// Where descriptor batches go, and the read token they carry, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescriptorSource {
    /// The batch endpoint.
    pub endpoint: String,
    /// Sent as `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
}

/// The batch endpoint under `base_url`: `"same-origin"` for the page's own
/// origin, else the service's base URL.
#[must_use]
pub fn batch_endpoint(base_url: &str) -> String {
    let base = if base_url == SAME_ORIGIN {
        ""
    } else {
        base_url
    };
    format!("{}{BATCH_PATH}", base.trim_end_matches('/'))
}

/// The `descriptorUrl` that names the page's own origin.
pub const SAME_ORIGIN: &str = "same-origin";

/// Posts one batch (at most `MAX_BATCH_IDS` ids) and reads the answer.
pub async fn post_batch(
    source: &DescriptorSource,
    ids: &[ItemId],
) -> Result<BatchGetResponse, sdk::Error> {
    let endpoint = source.endpoint.as_str();
    let body = serde_json::to_string(&BatchGetRequest { ids: ids.to_vec() })
        .map_err(|e| sdk::Error::Protocol(protocol::Error::Encoding(e.to_string())))?;
    let headers = Headers::new().map_err(|e| transport(&e))?;
    headers
        .set("content-type", "application/json")
        .map_err(|e| transport(&e))?;
    if let Some(token) = &source.token {
        headers
            .set("authorization", &format!("Bearer {token}"))
            .map_err(|e| transport(&e))?;
    }
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body));
    let request =
        Request::new_with_str_and_init(endpoint, &init).map_err(|e| sdk::Error::InvalidUrl {
            url: endpoint.to_owned(),
            reason: crate::Error::browser(&e).to_string(),
        })?;
    let response: Response = JsFuture::from(fetch_with_request(&request))
        .await
        .map_err(|e| transport(&e))?
        .unchecked_into();
    let text = JsFuture::from(response.text().map_err(|e| transport(&e))?)
        .await
        .map_err(|e| transport(&e))?
        .as_string()
        .unwrap_or_default();
    read_answer(response.status(), &text)
}

/// Interprets a status and body: a success must be a [`BatchGetResponse`];
/// a 5xx keeps its body only when the body's code is a 5xx one too, so that a
/// server failure stays retryable whatever the body says (as natively).
fn read_answer(status: u16, body: &str) -> Result<BatchGetResponse, sdk::Error> {
    if (200..300).contains(&status) {
        return serde_json::from_str(body)
            .map_err(|e| sdk::Error::Protocol(protocol::Error::MalformedMessage(e.to_string())));
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(body) if status < 500 || body.code.http_status() >= 500 => Err(sdk::Error::Server(body)),
        _ => Err(sdk::Error::HttpStatus { status }),
    }
}

#[cfg(test)]
mod tests {
    use protocol::ErrorCode;

    use super::*;

    #[test]
    fn the_endpoint_sits_under_the_base_url() {
        assert_eq!(batch_endpoint("same-origin"), "/v1/descriptors/batch");
        assert_eq!(
            batch_endpoint("http://d:7100/"),
            "http://d:7100/v1/descriptors/batch"
        );
    }

    #[test]
    fn answers_are_read_by_status_and_body() {
        let ok = read_answer(200, r#"{"descriptors":[],"missing":["x"],"burned":[]}"#).unwrap();
        assert_eq!(ok.missing.len(), 1);
        let refused = read_answer(
            400,
            r#"{"code":"malformed_request","message":"too many ids"}"#,
        )
        .unwrap_err();
        assert_eq!(refused.code(), ErrorCode::MalformedRequest);
        let hidden = read_answer(503, r#"{"code":"malformed_request","message":"?"}"#).unwrap_err();
        assert!(hidden.is_retryable());
        let garbage = read_answer(200, "<html>").unwrap_err();
        assert_eq!(garbage.code(), ErrorCode::MalformedRequest);
    }
}

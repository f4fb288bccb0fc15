//! The live inventory page: its own files are compiled into the binary
//! (`inventory-demo/web/`); the browser SDK it runs on is the web package
//! of `cargo xtask wasm`, served from a directory under `/pkg/`. Without that
//! package, `/` says how to build it.

use std::path::{Path, PathBuf};

use axum::Router;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use tower_http::services::ServeDir;

const INDEX_HTML: &str = include_str!("../web/index.html");
const APP_JS: &str = include_str!("../web/app.js");
const STYLE_CSS: &str = include_str!("../web/style.css");

/// The files of the web package the page imports; their presence is what
/// "the bundle is built" means.
const BUNDLE_FILES: &[&str] = &["sdk_wasm.js", "sdk_wasm_bg.wasm"];

/// The page's routes: `/`, its script and style, and `/pkg/*` from
/// `web_dir`.
pub(crate) fn routes(web_dir: Option<&Path>) -> Router {
    let index_dir = web_dir.map(Path::to_owned);
    let router = Router::new()
        .route("/", get(move || index(index_dir.clone())))
        .route(
            "/app.js",
            get(|| file("text/javascript; charset=utf-8", APP_JS)),
        )
        .route(
            "/style.css",
            get(|| file("text/css; charset=utf-8", STYLE_CSS)),
        );
    match web_dir {
        // ServeDir refuses `..` and absolute components, decodes
        // percent-escapes before checking, and sets the content type by
        // extension (`application/wasm` for the module browsers stream).
        Some(dir) => router.nest_service("/pkg", ServeDir::new(dir)),
        None => router,
    }
}

async fn file(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        body,
    )
        .into_response()
}

async fn index(web_dir: Option<PathBuf>) -> Response {
    let missing: Vec<PathBuf> = match &web_dir {
        Some(dir) => BUNDLE_FILES
            .iter()
            .map(|name| dir.join(name))
            .filter(|path| !path.is_file())
            .collect(),
        None => Vec::new(),
    };
    if web_dir.is_some() && missing.is_empty() {
        return file("text/html; charset=utf-8", INDEX_HTML).await;
    }
    let reason = match &web_dir {
        None => "This demo was started without <code>--web-dir</code>.".to_owned(),
        Some(dir) => format!(
            "<code>{}</code> has no browser SDK bundle (missing {}).",
            escape(&dir.display().to_string()),
            missing
                .iter()
                .filter_map(|path| path.file_name())
                .map(|name| format!("<code>{}</code>", escape(&name.to_string_lossy())))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Inventory: the page needs the browser SDK</title>\
         <link rel=\"stylesheet\" href=\"/style.css\"></head>\
         <body class=\"notice\"><h1>The live page needs the browser SDK</h1>\
         <p>{reason}</p>\
         <p>Run the demo with <code>cargo xtask node</code> (it builds the bundle and \
         passes it), or build it with <code>cargo xtask wasm</code> and start \
         <code>inventory-demo</code> with <code>--web-dir target/npm/web</code>.</p></body></html>"
    );
    (StatusCode::SERVICE_UNAVAILABLE, Html(body)).into_response()
}

/// Escapes text for HTML.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

//! The pages' stylesheet and script, compiled into the binary: no front-end build, nothing
//! to deploy beside the executable. Revalidated by ETag, so a new release is picked up at
//! once.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use sha2::{Digest, Sha256};

pub const CSS_PATH: &str = "/ui/assets/app.css";
pub const JS_PATH: &str = "/ui/assets/app.js";

const CSS: &str = include_str!("assets/app.css");
const JS: &str = include_str!("assets/app.js");

fn etag(content: &str) -> String {
    let digest = Sha256::digest(content.as_bytes());
    format!("\"{}\"", hex(&digest[..8]))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

static CSS_ETAG: LazyLock<String> = LazyLock::new(|| etag(CSS));
static JS_ETAG: LazyLock<String> = LazyLock::new(|| etag(JS));

fn serve(req: &HttpRequest, content: &'static str, tag: &str, mime: &str) -> HttpResponse {
    let fresh = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == tag));
    let mut response = if fresh {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, tag.to_owned()))
        .insert_header((header::CACHE_CONTROL, "no-cache"));
    if fresh {
        response.finish()
    } else {
        response.content_type(mime).body(content)
    }
}

async fn css(req: HttpRequest) -> HttpResponse {
    serve(&req, CSS, &CSS_ETAG, "text/css; charset=utf-8")
}

async fn js(req: HttpRequest) -> HttpResponse {
    serve(&req, JS, &JS_ETAG, "text/javascript; charset=utf-8")
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/assets/app.css", web::get().to(css))
        .route("/assets/app.js", web::get().to(js));
}

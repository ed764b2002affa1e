//! `/ui/`: the channels page is home.

use actix_web::http::header;
use actix_web::{HttpResponse, web};

async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/ui/channels"))
        .finish()
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("", web::get().to(home))
        .route("/", web::get().to(home));
}

//! The channel pages: the list, one channel, the SMTP form with provider presets, the
//! connection test, trusting a server's certificate, rotation and Connect Gmail.

mod activity;
mod checks;
mod detail;
mod dns;
mod form;
mod gmail;
mod list;
mod pacing;
mod pause;
mod presets;
mod rotate;
mod trust;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    list::routes(cfg);
    form::routes(cfg);
    checks::routes(cfg);
    rotate::routes(cfg);
    trust::routes(cfg);
    gmail::routes(cfg);
    dns::routes(cfg);
    pause::routes(cfg);
    pacing::routes(cfg);
    // Last: `/channels/{id}` would otherwise shadow `/channels/new`.
    detail::routes(cfg);
}

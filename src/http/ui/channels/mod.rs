//! The channel pages: the list, one channel, the SMTP form with provider presets, the
//! connection test, rotation and Connect Gmail.

mod checks;
mod detail;
mod form;
mod gmail;
mod list;
mod presets;
mod rotate;

use actix_web::web;

pub fn routes(cfg: &mut web::ServiceConfig) {
    list::routes(cfg);
    form::routes(cfg);
    checks::routes(cfg);
    rotate::routes(cfg);
    gmail::routes(cfg);
    // Last: `/channels/{id}` would otherwise shadow `/channels/new`.
    detail::routes(cfg);
}

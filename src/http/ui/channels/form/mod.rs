//! The SMTP channel form: add (`/ui/channels/new`, from a provider preset or by hand) and
//! edit (`/ui/channels/{id}/edit`). The form's field names are the API's JSON paths; a post
//! becomes the API's own request (`CreateChannelRequest`, `UpdateChannelRequest`) and goes
//! through the API's own create and update, so the form refuses what the API refuses, with
//! the same words, next to the field the API names.

mod page;
mod request;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use self::page::{FormPage, Mode, is_form_error, place, verification_errors};
use self::request::ChannelForm;
use crate::http::AppState;
use crate::http::channels::{
    self as api, CreateChannelRequest, UpdateChannelRequest, require_manage, visible_one,
};
use crate::http::error::{ApiError, body_error};
use crate::http::ui::UiError;
use crate::http::ui::channels::presets;
use crate::http::ui::forms::{FieldErrors, non_empty};
use crate::http::ui::labels::People;
use crate::http::ui::session::{self, UiPost, UiSession};

#[derive(Deserialize)]
struct NewQuery {
    preset: Option<String>,
}

async fn new_form(
    session: UiSession,
    state: web::Data<AppState>,
    query: web::Query<NewQuery>,
) -> Result<HttpResponse, UiError> {
    let preset = presets::find(non_empty(&query.preset));
    let values = ChannelForm::new_channel(preset, &session);
    let names = People::load(&session.caller, &state).await?;
    let page = FormPage {
        session: &session,
        mode: Mode::Create(preset),
        values: &values,
        errors: &FieldErrors::none(),
        names: &names,
        report: None,
    };
    Ok(page.render(StatusCode::OK))
}

async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    post: UiPost<ChannelForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let (errors, report) = match form.create_request() {
        Err(errors) => (errors, None),
        Ok(body) => match serde_json::from_value::<CreateChannelRequest>(body) {
            Err(e) => (FieldErrors::from_api(&body_error(&e)), None),
            Ok(request) => match api::create(&session.caller, &state, request, form.verify).await {
                Ok(channel) => {
                    let text = if form.verify {
                        "Channel created and tested"
                    } else {
                        "Channel created. It has not been tested yet: use Test connection below."
                    };
                    return Ok(session::redirect_with_flash(
                        &req,
                        &format!("/ui/channels/{}", channel.id),
                        text,
                    ));
                }
                Err(ApiError::VerificationFailed(report)) => {
                    (verification_errors(&report), Some(report))
                }
                Err(e) if is_form_error(&e) => (place(&e), None),
                Err(e) => return Err(e.into()),
            },
        },
    };
    let names = People::load(&session.caller, &state).await?;
    let page = FormPage {
        session: &session,
        mode: Mode::Create(presets::find(non_empty(&form.preset))),
        values: &form,
        errors: &errors,
        names: &names,
        report: report.as_ref(),
    };
    Ok(page.render(StatusCode::UNPROCESSABLE_ENTITY))
}

async fn edit_form(
    session: UiSession,
    state: web::Data<AppState>,
    id: web::Path<String>,
) -> Result<HttpResponse, UiError> {
    let channel = visible_one(&session.caller, &state, &id).await?;
    require_manage(&session.caller, channel.spec.owner)?;
    let values = ChannelForm::of(&channel);
    let names = People::load(&session.caller, &state).await?;
    let page = FormPage {
        session: &session,
        mode: Mode::Edit(&channel),
        values: &values,
        errors: &FieldErrors::none(),
        names: &names,
        report: None,
    };
    Ok(page.render(StatusCode::OK))
}

async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    id: web::Path<String>,
    post: UiPost<ChannelForm>,
) -> Result<HttpResponse, UiError> {
    let UiPost { session, form } = post;
    let channel = visible_one(&session.caller, &state, &id).await?;
    let names = People::load(&session.caller, &state).await?;
    let none = FieldErrors::none();
    let page = FormPage {
        session: &session,
        mode: Mode::Edit(&channel),
        values: &form,
        errors: &none,
        names: &names,
        report: None,
    };
    let errors = match form.update_request(&channel, page.may_choose_owner()) {
        Err(errors) => errors,
        Ok(body) => match serde_json::from_value::<UpdateChannelRequest>(body) {
            Err(e) => FieldErrors::from_api(&body_error(&e)),
            Ok(request) => match api::update(&session.caller, &state, &id, request).await {
                Ok(updated) => {
                    return Ok(session::redirect_with_flash(
                        &req,
                        &format!("/ui/channels/{}", updated.id),
                        "Changes saved",
                    ));
                }
                Err(e) if is_form_error(&e) => place(&e),
                Err(e) => return Err(e.into()),
            },
        },
    };
    Ok(FormPage {
        errors: &errors,
        ..page
    }
    .render(StatusCode::UNPROCESSABLE_ENTITY))
}

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/channels/new", web::get().to(new_form))
        .route("/channels", web::post().to(create))
        .route("/channels/{id}/edit", web::get().to(edit_form))
        .route("/channels/{id}", web::post().to(update));
}

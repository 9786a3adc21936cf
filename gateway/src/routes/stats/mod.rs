//! Statistics (docs/behaviour.md#external-rest-api): the overview and breakdowns of `/analytics`
//! and realtime ([`ours`]), Plausible's v1 (`/stats/*`, [`plausible_v1`]) and v2 (`/query`,
//! [`plausible_v2`]) inside our envelope, and the same without envelope under `/plausible` for
//! existing Plausible clients ([`dropin`]). Each request shape becomes analytics `Query` calls; only
//! the parsing and the result bodies differ.

pub mod dropin;
pub mod ours;
pub mod plausible_v1;
pub mod plausible_v2;

use common::Error;
use utoipa_axum::router::OpenApiRouter;

use crate::error::ApiError;
use crate::state::AppState;

/// The statistics operations of the envelope's mount.
pub fn routes() -> OpenApiRouter<AppState> {
    ours::routes().merge(plausible_v1::routes()).merge(plausible_v2::routes())
}

pub(crate) fn invalid(field: &str, message: impl std::fmt::Display) -> ApiError {
    Error::validation(format!("{field}: {message}")).into()
}

/// For a request built from parameters the caller's API names differently from analytics
/// (`names`: analytics' field, the caller's): a 400 names the field the caller sent.
fn renamed<'a>(names: &'a [(&'static str, &'static str)]) -> impl Fn(ApiError) -> ApiError + 'a {
    move |mut e| {
        if let Some(field) = &mut e.error.field
            && let Some((_, ours)) = names.iter().find(|(theirs, _)| theirs == field)
        {
            *field = (*ours).to_owned();
        }
        e
    }
}

/// The first value given twice, if any.
fn repeated<T: PartialEq>(values: &[T]) -> Option<&T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| v)
}

//! Statistics (docs/behaviour.md#external-rest-api): the overview and breakdowns of `/analytics`
//! and realtime ([`ours`]), Plausible's v1 (`/stats/*`, [`plausible_v1`]) and v2 (`/query`,
//! [`plausible_v2`]) inside our envelope, and the same without envelope under `/plausible` for
//! existing Plausible clients ([`dropin`]). Each request shape becomes analytics `Query` calls; only
//! the parsing and the result bodies differ.

pub mod dropin;
pub mod ours;
pub mod plausible_v1;
pub mod plausible_v2;

mod input;
pub(crate) mod v2_filters;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// The statistics operations of the envelope's mount.
pub fn routes() -> OpenApiRouter<AppState> {
    ours::routes().merge(plausible_v1::routes()).merge(plausible_v2::routes())
}

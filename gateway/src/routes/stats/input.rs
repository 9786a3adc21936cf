//! What the statistics faces share while reading a request: errors that name the caller's field.

use crate::error::ApiError;

/// For a request built from parameters the caller's API names differently from analytics
/// (`names`: analytics' field, the caller's): a 400 names the field the caller sent.
pub(super) fn renamed<'a>(names: &'a [(&'static str, &'static str)]) -> impl Fn(ApiError) -> ApiError + 'a {
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
pub(super) fn repeated<T: PartialEq>(values: &[T]) -> Option<&T> {
    values.iter().enumerate().find(|(i, v)| values[..*i].contains(v)).map(|(_, v)| v)
}

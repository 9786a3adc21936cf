//! Entry points of the fuzz targets under `fuzz/`: the parsers of outside input as plain
//! functions from text or bytes to a `Result`, with errors as their messages. Not part of the
//! gateway's interface; none of them may panic, whatever the input.

use crate::routes::{events, stats};

/// The v1 `filters` parameter: how many filters it holds.
pub fn v1_filters(text: &str) -> Result<usize, String> {
    let filters = crate::filters::v1_filters(text).map_err(|e| e.error.text())?;
    for filter in &filters {
        // What the parser promises the query engine.
        let dimension = filter.dimension.as_str();
        let known = crate::vocabulary::PROPERTIES.contains(&dimension) || crate::rules::is_custom_property(dimension);
        assert!(known, "{filter:?}");
        assert!((1..=crate::rules::FILTER_VALUES_MAX).contains(&filter.values.len()), "{filter:?}");
    }
    Ok(filters.len())
}

/// A whole v1 query string, as each of aggregate, timeseries and breakdown reads it: how many of
/// the three take it.
pub fn v1_query(query: &str) -> Result<usize, String> {
    stats::plausible_v1::v1_requests(query).map_err(|e| e.error.text())
}

/// A v2 query body (Plausible's `POST /api/v2/query`): the number of filters of the analytics
/// query it asks for.
pub fn v2_query(body: &[u8]) -> Result<usize, String> {
    let body: stats::plausible_v2::V2Body = crate::envelope::parse(body).map_err(|e| e.error.text())?;
    let (request, _) = stats::plausible_v2::v2_request(&body).map_err(|e| e.error.text())?;
    Ok(request.filters.len())
}

/// A tracker's event body: the domain it names.
pub fn event_body(body: &[u8]) -> Result<String, String> {
    let event = events::tracked_event(body).map_err(|e| e.error.text())?;
    assert!(!event.domain.is_empty() && !event.name.is_empty() && !event.url.is_empty(), "{event:?}");
    Ok(event.domain)
}

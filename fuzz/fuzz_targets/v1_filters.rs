//! The Stats API v1 `filters` grammar, and a whole v1 query string as each endpoint reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = gateway::fuzzing::v1_filters(text);
    let _ = gateway::fuzzing::v1_query(text);
});

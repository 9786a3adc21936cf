//! The Plausible v2 query body, up to the analytics query it asks for.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gateway::fuzzing::v2_query(data);
});

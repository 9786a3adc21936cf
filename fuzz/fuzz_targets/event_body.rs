//! The tracker's event body, in Plausible's long and abbreviated forms.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = gateway::fuzzing::event_body(data);
});

//! The API-key parser: any text is a key or not, never a panic; a key it accepts is the text
//! itself and has a hint and a digest.
#![no_main]

use gateway::apikey::ApiKeySecret;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Some(key) = ApiKeySecret::parse(text) {
        assert_eq!(key.expose(), text);
        assert!(!key.hint().is_empty());
        let _ = key.digest();
    }
});

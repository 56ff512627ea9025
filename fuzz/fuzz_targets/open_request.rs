//! Any bytes as the body of `POST /api/v1/integrations`: parsing never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) {
        let _ = golive::domain::parse_open_request(value);
    }
});

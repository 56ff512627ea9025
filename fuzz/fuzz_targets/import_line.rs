//! Any bytes as a line of `golive import`: an envelope parses or not, its hash is computed, its
//! payload decodes into a domain event or is refused; nothing panics.
#![no_main]

use golive::store::StoredEvent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else { return };
    let Ok(event) = serde_json::from_str::<StoredEvent>(line) else { return };
    let _ = event.compute_hash() == event.hash;
    let _ = golive::engine::decode(&event);
});

//! A webhook delivery as GitLab sends it: header lines, a blank line, then the body. Header
//! parsing, token and signature verification and fact extraction never panic.
#![no_main]

use golive::domain::TokenDigest;
use golive::gitlab::webhook::{delivery_facts, verify, DeliveryHeaders};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.windows(2).position(|w| w == b"\n\n").unwrap_or(data.len());
    let (head, body) = data.split_at(split);
    let body = body.get(2..).unwrap_or(&[]);
    let Ok(text) = std::str::from_utf8(head) else { return };
    let Ok(headers) = DeliveryHeaders::parse_text(text) else { return };
    let now = chrono::DateTime::from_timestamp(1_790_000_000, 0).unwrap();
    let digest: TokenDigest = golive::secrets::token_digest("glw_token");
    let _ = verify(&headers, body, Some(&digest), Some(b"0123456789abcdef0123456789abcdef".as_slice()), now);
    let _ = verify(&headers, body, Some(&digest), None, now);
    let _ = delivery_facts(&headers, body, now);
});

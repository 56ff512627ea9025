//! Any bytes as the customer intake form body: it parses into the three facts or a refusal
//! naming a field, never a panic.
#![no_main]

use golive::domain::{HttpUrl, ShortText};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let form = golive::http::intake_form_from_body(data);
    let name = ShortText::parse("Factory Integration").unwrap();
    let redirect = HttpUrl::parse("https://golive.example/oauth/gitlab/callback").unwrap();
    let _ = golive::engine::parse_intake(&form, &name, &redirect);
});

//! Any bytes as a query string for the list, history, as-of and audit routes: every parse is a
//! value or a 400, never a panic.
#![no_main]

use golive::http::queries;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let params = queries::parse_query_string(text);
    let _ = queries::list_filter(&params);
    let _ = queries::page(&params);
    let _ = queries::as_of(&params);
    let _ = queries::audit_query(&params);
});

//! Any bytes as a control-socket request line: parsing never panics, and a parsed request
//! serialises back to one that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portproxy::control::{Request, parse_request};

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = parse_request(data) {
        let line = serde_json::to_vec(&req).unwrap();
        let again: Request = parse_request(&line).expect("serialised request must parse");
        assert_eq!(again, req);
    }
});

//! Any bytes as Docker's credentials file: reading a login never panics, and a login written
//! with `with_login` is read back as written. The same bytes as an `X-Registry-Auth` header
//! (raw, and base64url-encoded so the JSON parser is reached) and as a reference's registry:
//! never a panic, and a header berth encodes is read back as encoded.
#![no_main]

use base64::Engine as _;
use engine::image::registry::credentials::{
    AuthConfig, Login, decode_header, encode_header, lookup, split_registry, with_login,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(c) = decode_header(text) {
            let _ = c.request_auth();
        }
        let (registry, rest) = split_registry(text);
        assert!(registry == "docker.io" || text.starts_with(registry));
        assert!(text.ends_with(rest));
    }
    let encoded = base64::engine::general_purpose::URL_SAFE.encode(data);
    if let Ok(c) = decode_header(&encoded) {
        let _ = c.request_auth();
        let again: AuthConfig = decode_header(&encode_header(&c)).expect("berth's own header");
        assert_eq!(again, c);
    }
    let Ok(config) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for registry in ["docker.io", "localhost:5000", "r.example"] {
        let _ = lookup(&config, registry, "config.json");
    }
    let login = Login {
        username: "u".into(),
        password: "p:w".into(),
    };
    let updated = with_login(config, "r.example", &login);
    assert_eq!(
        lookup(&updated, "r.example", "config.json").expect("just written"),
        Some(login)
    );
});

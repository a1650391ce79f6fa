//! Any bytes as Docker's credentials file: reading a login never panics, and a login written
//! with `with_login` is read back as written.
#![no_main]

use engine::image::registry::credentials::{Login, lookup, with_login};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
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

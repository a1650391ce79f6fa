//! Any bytes as what a Docker API client sends berthd: a container-create body, an update
//! body, a network-create body, a `filters` parameter, a versioned path. Nothing panics; a create body
//! reads back the same once written; a body that is accepted names an image; a versioned path
//! loses exactly its prefix.
#![no_main]

use berthd::api::{create, filters, network, update, version};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = create::parse(data) {
        // The typed model loses nothing it read: what berth sends reads back the same.
        let again = berth_api::container_create::parse(&serde_json::to_vec(&body).unwrap());
        assert_eq!(again.ok().as_ref(), Some(&body));
        if let Ok(opts) = create::to_options(body, Some("fuzz".into())) {
            assert!(!opts.image.is_empty());
        }
    }
    if let Ok(body) = update::parse(data) {
        let _ = update::to_options(body);
    }
    if let Ok(req) = network::parse_create(data) {
        assert!(!req.name.is_empty());
    }
    let text = String::from_utf8_lossy(data);
    let _ = filters::parse_container_filters(Some(&text));
    let (v, rest) = version::split_version(&text);
    if let Some(v) = v {
        assert!(text.len() >= rest.len() && text.starts_with("/v"));
        let _ = version::check(v);
    }
});

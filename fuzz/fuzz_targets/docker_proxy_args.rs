//! Any argument vector (NUL-separated) as a docker-proxy command line: parsing never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portproxy::compat::parse_docker_proxy_args;

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    if let Ok(parsed) = parse_docker_proxy_args(&args) {
        assert_ne!(parsed.mapping.container.port(), 0);
    }
});

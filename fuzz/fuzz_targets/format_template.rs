//! Any bytes as a `--format` template and the JSON it renders over: the bytes up to the first
//! NUL are the template, the rest the data (a fixed container-like object when it is not
//! JSON). Nothing panics, overflows the stack or runs out of memory; a template that parses
//! renders to output within its 64 MiB bound or to an error.
#![no_main]

use berth_cli::template::Template;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (text, json) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    let value = serde_json::from_slice(json).unwrap_or_else(
        |_| serde_json::json!({"ID": "abc", "Names": ["/x"], "Config": {"Cmd": ["sh"]}}),
    );
    let text = String::from_utf8_lossy(text);
    if let Ok(t) = Template::parse(&text) {
        let _ = t.fields();
        if let Ok(out) = t.render(&value) {
            assert!(out.len() <= 64 << 20);
        }
    }
});

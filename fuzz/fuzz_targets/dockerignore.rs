//! Any text as a `.dockerignore` and as `COPY` globs, matched against paths: Docker's pattern
//! rules never panic, and a literal pattern (no glob characters) matches exactly itself.
#![no_main]

use berth_common::pattern::{Ignore, Pattern};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (patterns, paths) = text.split_once('\u{0}').unwrap_or((text, "a/b/c.txt"));
    if let Ok(i) = Ignore::parse(patterns) {
        for p in paths.split('\n') {
            let _ = i.excludes(p);
        }
    }
    for line in patterns.lines() {
        for make in [Pattern::glob, Pattern::ignore] {
            if let Ok(p) = make(line) {
                for path in paths.split('\n') {
                    let _ = p.matches(path);
                }
                if !line.contains(['*', '?', '[', '\\']) {
                    assert!(p.matches(line));
                }
            }
        }
    }
});

//! Any text as a Dockerfile, and as `--change` lines: the parser, the word and substitution
//! rules, the stage planner and the metadata instructions never panic; every instruction read
//! has a known keyword and a line inside the text; what applies leaves the configuration a
//! JSON object; a plan's stages' bases are earlier stages.
#![no_main]

use engine::build::dockerfile::{KEYWORDS, parse};
use engine::build::metadata::{MetaState, apply};
use engine::build::words::{process_word, process_words, split_raw};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env = vec!["A=1".to_string(), "EMPTY=".to_string()];
    let _ = process_word(text, &env, '\\');
    let _ = process_words(text, &env, '`');
    let _ = split_raw(text, '\\');
    if let Ok(d) = parse(text) {
        let lines = text.lines().count().max(1);
        let mut config = serde_json::Map::new();
        config.insert("Env".into(), serde_json::json!(env));
        let mut st = MetaState::default();
        for i in &d.instructions {
            assert!(KEYWORDS.contains(&i.keyword.as_str()));
            assert!(i.line >= 1 && i.line <= lines);
            let _ = apply(&mut config, i, d.escape, &mut st);
        }
        assert!(serde_json::to_string(&config).is_ok());
        let args: std::collections::BTreeMap<String, Option<String>> =
            [("A".to_string(), Some("x".to_string()))].into();
        for target in [None, Some("a")] {
            if let Ok(p) = engine::build::stages::plan(&d, &args, target) {
                for (i, s) in p.stages.iter().enumerate() {
                    if let engine::build::stages::Base::Stage(j) = s.base {
                        assert!(j < i);
                    }
                }
                assert!(p.steps() >= p.stages.len());
            }
        }
    }
    let mut config = serde_json::Map::new();
    let _ = engine::container::commit::apply_changes(
        &mut config,
        &text.split('\u{0}').map(String::from).collect::<Vec<_>>(),
    );
});

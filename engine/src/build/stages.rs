//! A Dockerfile as the legacy builder runs it: the `ARG`s before the first `FROM` (usable in
//! `FROM` lines), then one stage per `FROM` (`AS name`, `--platform`, a base that is an image,
//! `scratch` or an earlier stage), up to `--target`. Build arguments and Docker's predefined
//! proxy arguments, and which of them a stage may read. Pure.

use std::collections::BTreeMap;

use super::dockerfile::{Dockerfile, Instruction, flags};
use super::words::process_word;

/// Why a Dockerfile cannot be built as asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An instruction other than `ARG` before the first `FROM`.
    #[error(
        "Dockerfile parse error line {line}: {keyword} before the first FROM: no build stage in current context"
    )]
    NoStage {
        /// 1-based.
        line: usize,
        /// The instruction.
        keyword: String,
    },
    /// No `FROM` at all.
    #[error("the Dockerfile has no FROM instruction: a build needs at least one stage")]
    Empty,
    /// `--target` names no stage.
    #[error("failed to reach build target {0} in Dockerfile")]
    Target(String),
    /// A bad `FROM` line.
    #[error("Dockerfile parse error line {line}: FROM {message}")]
    From {
        /// 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A bad `ARG` line.
    #[error("Dockerfile parse error line {line}: ARG {message}")]
    Arg {
        /// 1-based.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Docker's predefined build arguments: usable without an `ARG`, left out of the history.
pub const PREDEFINED: &[&str] = &[
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: nothing.
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image by reference.
    Image(String),
}

/// One stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// `AS name`, lower case.
    pub name: Option<String>,
    /// What it starts from.
    pub base: Base,
    /// `--platform`, substituted.
    pub platform: Option<String>,
    /// The `FROM` instruction itself.
    pub from: Instruction,
    /// Its instructions after the `FROM`.
    pub instructions: Vec<Instruction>,
}

/// A Dockerfile planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The escape character.
    pub escape: char,
    /// The `ARG`s before the first `FROM`, their values after `--build-arg`.
    pub meta_args: Vec<(String, Option<String>)>,
    /// The stages to build, in order, the last one the target.
    pub stages: Vec<Stage>,
}

impl Plan {
    /// Steps in all (each stage's `FROM` counts), for `Step N/M`.
    pub fn steps(&self) -> usize {
        self.stages.iter().map(|s| 1 + s.instructions.len()).sum()
    }

    /// The index of the stage `name` names (a stage name, case-insensitive, or an index),
    /// among the stages before `before`.
    pub fn stage_named(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        if let Some(i) = self.stages[..before]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < before)
    }
}

/// Splits an `ARG` line (`NAME` or `NAME=default`) as Docker does.
pub fn arg_decl(
    ins: &Instruction,
    env: &[String],
    escape: char,
) -> Result<(String, Option<String>), PlanError> {
    let err = |message: String| PlanError::Arg {
        line: ins.line,
        message,
    };
    let text = ins.args.trim();
    // Words split as Docker's parser splits them (`ARG OPTS="-a -b"` is one word).
    let words = super::words::split_raw(text, escape).map_err(|e| err(e.to_string()))?;
    if words.len() != 1 {
        return Err(err(format!(
            "requires exactly one argument (NAME or NAME=value), not {text:?}"
        )));
    }
    match text.split_once('=') {
        Some((k, v)) => {
            if k.is_empty() {
                return Err(err(format!("names no argument in {text:?}")));
            }
            let v = process_word(v, env, escape).map_err(|e| err(e.to_string()))?;
            Ok((k.to_string(), Some(v)))
        }
        None => Ok((text.to_string(), None)),
    }
}

/// The value an argument declared `name` (default `default`) takes: the build's
/// `--build-arg`, else its default.
pub fn arg_value(
    name: &str,
    default: Option<String>,
    build_args: &BTreeMap<String, Option<String>>,
) -> Option<String> {
    match build_args.get(name) {
        Some(Some(v)) => Some(v.clone()),
        _ => default,
    }
}

/// `NAME=value` lines of the arguments that have values (for substitution).
pub fn arg_env(args: &[(String, Option<String>)]) -> Vec<String> {
    args.iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect()
}

fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

/// Plans `df` for `build_args`, up to stage `target` (the last stage when `None`).
pub fn plan(
    df: &Dockerfile,
    build_args: &BTreeMap<String, Option<String>>,
    target: Option<&str>,
) -> Result<Plan, PlanError> {
    let mut meta_args: Vec<(String, Option<String>)> = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in &df.instructions {
        if ins.keyword != "FROM" {
            match stages.last_mut() {
                Some(s) => s.instructions.push(ins.clone()),
                None if ins.keyword == "ARG" => {
                    let env = arg_env(&meta_args);
                    let (k, default) = arg_decl(ins, &env, df.escape)?;
                    let v = arg_value(&k, default, build_args);
                    meta_args.retain(|(n, _)| *n != k);
                    meta_args.push((k, v));
                }
                None => {
                    return Err(PlanError::NoStage {
                        line: ins.line,
                        keyword: ins.keyword.clone(),
                    });
                }
            }
            continue;
        }
        // The target stage ends at the next FROM.
        if let (Some(t), Some(Some(n))) = (target, stages.last().map(|s| &s.name)) {
            if t.eq_ignore_ascii_case(n) {
                break;
            }
        }
        let err = |message: String| PlanError::From {
            line: ins.line,
            message,
        };
        let (fl, rest) = flags(&ins.args, df.escape).map_err(err)?;
        let mut env = arg_env(&meta_args);
        // Predefined arguments given to the build count in FROM lines too.
        for p in PREDEFINED {
            if let Some(Some(v)) = build_args.get(*p) {
                env.push(format!("{p}={v}"));
            }
        }
        let mut platform = None;
        for (k, v) in fl {
            match k.as_str() {
                "platform" => {
                    platform =
                        Some(process_word(&v, &env, df.escape).map_err(|e| err(e.to_string()))?)
                }
                other => return Err(err(format!("unknown flag: --{other} (valid: --platform)"))),
            }
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let (image, name) = match words.as_slice() {
            [image] => (*image, None),
            [image, as_, name] if as_.eq_ignore_ascii_case("as") => (*image, Some(*name)),
            _ => {
                return Err(err(format!(
                    "requires either one or three arguments (IMAGE [AS NAME]), not {rest:?}"
                )));
            }
        };
        let image = process_word(image, &env, df.escape).map_err(|e| err(e.to_string()))?;
        if image.is_empty() {
            return Err(err(format!("base name ({}) should not be blank", words[0])));
        }
        let name = match name {
            Some(n) => {
                let n = n.to_ascii_lowercase();
                if !valid_stage_name(&n) {
                    return Err(err(format!(
                        "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
                    )));
                }
                if stages.iter().any(|s| s.name.as_deref() == Some(n.as_str())) {
                    return Err(err(format!("duplicate name {n:?}")));
                }
                Some(n)
            }
            None => None,
        };
        let lower = image.to_ascii_lowercase();
        let base = if lower == "scratch" {
            Base::Scratch
        } else if let Some(i) = stages
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            Base::Stage(i)
        } else {
            Base::Image(image)
        };
        stages.push(Stage {
            name,
            base,
            platform,
            from: ins.clone(),
            instructions: Vec::new(),
        });
    }
    if stages.is_empty() {
        return Err(PlanError::Empty);
    }
    if let Some(t) = target {
        if stages.last().and_then(|s| s.name.as_deref()) != Some(t.to_ascii_lowercase().as_str()) {
            return Err(PlanError::Target(t.to_string()));
        }
    }
    Ok(Plan {
        escape: df.escape,
        meta_args,
        stages,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::dockerfile::parse;

    fn args(pairs: &[(&str, &str)]) -> BTreeMap<String, Option<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), Some(v.to_string())))
            .collect()
    }

    #[test]
    fn stages_bases_and_meta_args() {
        let df = parse(
            "ARG BASE=busybox\nARG TAG\nFROM ${BASE}:${TAG:-1} AS Builder\nRUN x\nFROM scratch\nCOPY --from=builder /a /a\nFROM builder AS last\nCMD y\n",
        )
        .unwrap();
        let p = plan(&df, &args(&[("TAG", "2")]), None).unwrap();
        assert_eq!(p.stages.len(), 3);
        assert_eq!(p.stages[0].base, Base::Image("busybox:2".into()));
        assert_eq!(p.stages[0].name.as_deref(), Some("builder"));
        assert_eq!(p.stages[1].base, Base::Scratch);
        assert_eq!(p.stages[2].base, Base::Stage(0));
        assert_eq!(p.steps(), 2 + 2 + 2);
        assert_eq!(p.stage_named("BUILDER", 2), Some(0));
        assert_eq!(p.stage_named("1", 2), Some(1));
        assert_eq!(p.stage_named("2", 2), None);
        let p = plan(&df, &BTreeMap::new(), None).unwrap();
        assert_eq!(p.stages[0].base, Base::Image("busybox:1".into()));
    }

    #[test]
    fn target_stops_the_plan() {
        let df = parse("FROM a AS one\nRUN x\nFROM b AS two\nRUN y\n").unwrap();
        let p = plan(&df, &BTreeMap::new(), Some("ONE")).unwrap();
        assert_eq!(p.stages.len(), 1);
        assert_eq!(
            p.stages[0].instructions.len(),
            1,
            "the target's own steps run"
        );
        assert_eq!(
            plan(&df, &BTreeMap::new(), Some("three")).unwrap_err(),
            PlanError::Target("three".into())
        );
    }

    #[test]
    fn errors_name_the_line() {
        let df = parse("RUN x\nFROM a\n").unwrap();
        assert!(matches!(
            plan(&df, &BTreeMap::new(), None),
            Err(PlanError::NoStage { line: 1, .. })
        ));
        let df = parse("FROM a AS b c\n").unwrap();
        assert!(matches!(
            plan(&df, &BTreeMap::new(), None),
            Err(PlanError::From { line: 1, .. })
        ));
        let df = parse("ARG OPTS=\"-a -b\"\nFROM a\n").unwrap();
        let p = plan(&df, &BTreeMap::new(), None).unwrap();
        assert_eq!(
            p.meta_args,
            [("OPTS".to_string(), Some("-a -b".to_string()))]
        );
        let df = parse("FROM a AS 1x\n").unwrap();
        assert!(plan(&df, &BTreeMap::new(), None).is_err());
        let df = parse("FROM a AS x\nFROM b AS x\n").unwrap();
        assert!(
            plan(&df, &BTreeMap::new(), None)
                .unwrap_err()
                .to_string()
                .contains("duplicate")
        );
        let df = parse("FROM --foo=1 a\n").unwrap();
        assert!(
            plan(&df, &BTreeMap::new(), None)
                .unwrap_err()
                .to_string()
                .contains("--foo")
        );
        assert_eq!(
            plan(&parse("").unwrap(), &BTreeMap::new(), None),
            Err(PlanError::Empty)
        );
    }
}

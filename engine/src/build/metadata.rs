//! The instructions that only change an image's run configuration (`CMD`, `ENTRYPOINT`,
//! `ENV`, `EXPOSE`, `HEALTHCHECK`, `LABEL`, `ONBUILD`, `SHELL`, `STOPSIGNAL`, `USER`,
//! `VOLUME`, `WORKDIR`) applied to that configuration (the `config` object of an image
//! config, Docker's field names), as Docker's builder applies them. Shared by `docker commit
//! --change` and `docker import --change`. Pure.

use serde_json::{Map, Value, json};

use super::dockerfile::{Form, Instruction, flags, form};
use super::words::{WordError, process_word, process_words, split_raw};

/// Why an instruction could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// Its arguments are wrong.
    #[error("{keyword} {message}")]
    Invalid {
        /// The instruction (`EXPOSE`).
        keyword: String,
        /// What is wrong, Docker's wording where clients match on it.
        message: String,
    },
    /// A word.
    #[error("{keyword}: {source}")]
    Word {
        /// The instruction.
        keyword: String,
        /// The word's error.
        source: WordError,
    },
    /// Not one of this module's instructions.
    #[error("{0} does not only change the image's configuration")]
    NotMetadata(String),
}

/// What one build (or one list of changes) remembers between instructions.
#[derive(Debug, Clone, Default)]
pub struct MetaState {
    /// A `CMD` was given: a later `ENTRYPOINT` keeps it (otherwise it clears it, as Docker).
    pub cmd_set: bool,
    /// Bytes the instructions have added so far (substitutions can multiply what they are
    /// given): at most [`MAX_CONFIG`].
    pub spent: usize,
}

/// Bytes of environment, labels, ports, volumes and triggers a list of instructions may add.
pub const MAX_CONFIG: usize = 8 << 20;

/// Ports one `EXPOSE` may name (every port of every protocol).
pub const MAX_PORTS: usize = 3 * 65536;

fn spend(state: &mut MetaState, keyword: &str, bytes: usize) -> Result<(), MetadataError> {
    state.spent = state.spent.saturating_add(bytes);
    if state.spent > MAX_CONFIG {
        return Err(invalid(
            keyword,
            format!("makes the image's configuration larger than {MAX_CONFIG} bytes"),
        ));
    }
    Ok(())
}

fn invalid(keyword: &str, message: impl Into<String>) -> MetadataError {
    MetadataError::Invalid {
        keyword: keyword.to_string(),
        message: message.into(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The configuration's `Env`.
pub fn env_of(config: &Map<String, Value>) -> Vec<String> {
    strings(config.get("Env"))
}

/// `KEY=VALUE` set in `env`, replacing an earlier entry of KEY.
pub fn set_env(env: &mut Vec<String>, key: &str, value: &str) {
    let entry = format!("{key}={value}");
    match env
        .iter_mut()
        .find(|e| e.split_once('=').map_or(e.as_str(), |(k, _)| k) == key)
    {
        Some(e) => *e = entry,
        None => env.push(entry),
    }
}

/// The `SHELL` of `config` (`/bin/sh -c` unless set).
pub fn shell_of(config: &Map<String, Value>) -> Vec<String> {
    let s = strings(config.get("Shell"));
    if s.is_empty() {
        vec!["/bin/sh".into(), "-c".into()]
    } else {
        s
    }
}

fn command(config: &Map<String, Value>, args: &str) -> Vec<String> {
    match form(args) {
        Form::Json(v) => v,
        Form::Shell(s) => {
            let mut v = shell_of(config);
            v.push(s);
            v
        }
    }
}

/// `ENV`/`LABEL` arguments as pairs: `k=v k2="v 2"` or the legacy `k v w` (one pair, the rest
/// of the line its value). Keys and values are processed with `env`.
pub fn name_values(
    keyword: &str,
    args: &str,
    env: &[String],
    escape: char,
) -> Result<Vec<(String, String)>, MetadataError> {
    let word = |s: &str| {
        process_word(s, env, escape).map_err(|source| MetadataError::Word {
            keyword: keyword.to_string(),
            source,
        })
    };
    let raw = split_raw(args, escape).map_err(|source| MetadataError::Word {
        keyword: keyword.to_string(),
        source,
    })?;
    let Some(first) = raw.first() else {
        return Err(invalid(keyword, "requires at least one argument"));
    };
    if !first.contains('=') {
        // Legacy form: one name, the rest of the line its value.
        let rest = args.trim_start()[first.len()..].trim();
        if rest.is_empty() {
            return Err(invalid(keyword, "must have two arguments"));
        }
        return Ok(vec![(word(first)?, word(rest)?)]);
    }
    let mut out = Vec::new();
    for w in &raw {
        let Some((k, v)) = w.split_once('=') else {
            return Err(invalid(
                keyword,
                format!("names can not be blank: {w:?} is not KEY=VALUE"),
            ));
        };
        let k = word(k)?;
        if k.is_empty() {
            return Err(invalid(keyword, "names can not be blank"));
        }
        out.push((k, word(v)?));
    }
    Ok(out)
}

/// `80`, `80/udp`, `8000-8002/tcp` as Docker's `ExposedPorts` keys.
pub fn exposed_ports(spec: &str) -> Result<Vec<String>, String> {
    let (lo, hi, proto) = port_range(spec)?;
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// `80`, `80/udp`, `8000-8002/tcp` as the first and last port and the protocol.
pub fn port_range(spec: &str) -> Result<(u16, u16, String), String> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let proto = proto.to_ascii_lowercase();
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!(
            "invalid proto {proto:?} in {spec:?}: valid are tcp, udp and sctp"
        ));
    }
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("invalid port {p:?} in {spec:?}: give a number 0-65535"))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (port(a)?, port(b)?),
        None => {
            let p = port(ports)?;
            (p, p)
        }
    };
    if hi < lo {
        return Err(format!("invalid range {ports:?} in {spec:?}"));
    }
    Ok((lo, hi, proto))
}

/// Docker's `WORKDIR` rule: an absolute directory as written; a relative one taken from the
/// current one, cleaned.
pub fn workdir(current: &str, requested: &str) -> String {
    if requested.starts_with('/') {
        return requested.to_string();
    }
    let joined = format!("/{current}/{requested}");
    let mut parts: Vec<&str> = Vec::new();
    for p in joined.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

fn duration_flag(keyword: &str, name: &str, v: &str) -> Result<i64, MetadataError> {
    let ns = berth_common::time::parse_go_duration(v).ok_or_else(|| {
        invalid(
            keyword,
            format!("--{name}: invalid duration {v:?} (valid: 30s, 1m30s, 500ms)"),
        )
    })?;
    if ns != 0 && ns < 1_000_000 {
        return Err(invalid(
            keyword,
            format!("--{name} {v:?} cannot be less than 1ms"),
        ));
    }
    if ns < 0 {
        return Err(invalid(
            keyword,
            format!("--{name} {v:?} cannot be negative"),
        ));
    }
    Ok(ns)
}

fn healthcheck(args: &str, escape: char) -> Result<Value, MetadataError> {
    const K: &str = "HEALTHCHECK";
    let (opts, rest) = flags(args, escape).map_err(|m| invalid(K, m))?;
    let (word, cmd) = rest
        .split_once(char::is_whitespace)
        .unwrap_or((rest.as_str(), ""));
    match word.to_ascii_uppercase().as_str() {
        "NONE" => {
            if !opts.is_empty() || !cmd.trim().is_empty() {
                return Err(invalid(K, "NONE takes no arguments"));
            }
            Ok(json!({"Test": ["NONE"]}))
        }
        "CMD" => {
            let test: Vec<String> = match form(cmd) {
                Form::Json(v) => std::iter::once("CMD".to_string()).chain(v).collect(),
                Form::Shell(s) => vec!["CMD-SHELL".into(), s],
            };
            if test.len() < 2 || test[1].is_empty() {
                return Err(invalid(K, "CMD requires a command"));
            }
            let mut hc = Map::new();
            hc.insert("Test".into(), json!(test));
            for (name, v) in opts {
                let (key, value) = match name.as_str() {
                    "interval" => ("Interval", json!(duration_flag(K, &name, &v)?)),
                    "timeout" => ("Timeout", json!(duration_flag(K, &name, &v)?)),
                    "start-period" => ("StartPeriod", json!(duration_flag(K, &name, &v)?)),
                    "start-interval" => ("StartInterval", json!(duration_flag(K, &name, &v)?)),
                    "retries" => {
                        let n: i64 = v
                            .parse()
                            .map_err(|_| invalid(K, format!("--retries: invalid number {v:?}")))?;
                        if n < 0 {
                            return Err(invalid(K, "--retries cannot be negative"));
                        }
                        ("Retries", json!(n))
                    }
                    other => {
                        return Err(invalid(
                            K,
                            format!(
                                "unknown flag: --{other} (valid: --interval, --timeout, --start-period, --start-interval, --retries)"
                            ),
                        ));
                    }
                };
                // Docker leaves zero values out.
                if value != json!(0) {
                    hc.insert(key.into(), value);
                }
            }
            Ok(Value::Object(hc))
        }
        _ => Err(invalid(K, format!("expects NONE or CMD, not {word:?}"))),
    }
}

/// Applies metadata instruction `ins` to `config`.
pub fn apply(
    config: &mut Map<String, Value>,
    ins: &Instruction,
    escape: char,
    state: &mut MetaState,
) -> Result<(), MetadataError> {
    apply_with(config, ins, escape, state, &[])
}

/// [`apply`] in a build, where the build's arguments (`args`, `K=V`) are substituted too,
/// below the configuration's own `Env` (an `ENV` of the same name wins, as Docker's).
pub fn apply_with(
    config: &mut Map<String, Value>,
    ins: &Instruction,
    escape: char,
    state: &mut MetaState,
    args: &[String],
) -> Result<(), MetadataError> {
    let k = ins.keyword.as_str();
    let env = env_of(config);
    let subst: Vec<String> = args.iter().chain(env.iter()).cloned().collect();
    let word = |s: &str| {
        process_word(s, &subst, escape).map_err(|source| MetadataError::Word {
            keyword: k.to_string(),
            source,
        })
    };
    let words = |s: &str| {
        process_words(s, &subst, escape).map_err(|source| MetadataError::Word {
            keyword: k.to_string(),
            source,
        })
    };
    match k {
        "CMD" => {
            let cmd = command(config, &ins.args);
            config.insert("Cmd".into(), json!(cmd));
            state.cmd_set = true;
        }
        "ENTRYPOINT" => {
            let ep = match form(&ins.args) {
                Form::Shell(s) if s.is_empty() => Value::Null,
                _ => json!(command(config, &ins.args)),
            };
            config.insert("Entrypoint".into(), ep);
            if !state.cmd_set {
                config.insert("Cmd".into(), Value::Null);
            }
        }
        "ENV" => {
            let pairs = name_values(k, &ins.args, &subst, escape)?;
            spend(
                state,
                k,
                pairs.iter().map(|(a, b)| a.len() + b.len() + 1).sum(),
            )?;
            let mut env2 = env.clone();
            // Where each name is, so many pairs cost no more than their number.
            let mut at: std::collections::HashMap<String, usize> = env2
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    (
                        e.split_once('=').map_or(e.as_str(), |(k, _)| k).to_string(),
                        i,
                    )
                })
                .collect();
            for (key, v) in pairs {
                let entry = format!("{key}={v}");
                match at.get(&key) {
                    Some(&i) => env2[i] = entry,
                    None => {
                        at.insert(key, env2.len());
                        env2.push(entry);
                    }
                }
            }
            config.insert("Env".into(), json!(env2));
        }
        "LABEL" => {
            let pairs = name_values(k, &ins.args, &subst, escape)?;
            spend(state, k, pairs.iter().map(|(a, b)| a.len() + b.len()).sum())?;
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            let m = labels.as_object_mut().expect("made an object");
            for (key, v) in pairs {
                m.insert(key, json!(v));
            }
        }
        "EXPOSE" => {
            let specs = words(&ins.args)?;
            if specs.is_empty() {
                return Err(invalid(k, "requires at least one argument"));
            }
            let mut keys = std::collections::BTreeSet::new();
            let mut named = 0usize;
            for s in specs {
                let (lo, hi, proto) = port_range(&s).map_err(|m| invalid(k, m))?;
                named += usize::from(hi - lo) + 1;
                if named > MAX_PORTS {
                    return Err(invalid(k, format!("names more than {MAX_PORTS} ports")));
                }
                keys.extend((lo..=hi).map(|p| format!("{p}/{proto}")));
            }
            spend(state, k, keys.iter().map(String::len).sum())?;
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            if !ports.is_object() {
                *ports = json!({});
            }
            let m = ports.as_object_mut().expect("made an object");
            for key in keys {
                m.insert(key, json!({}));
            }
        }
        "USER" => {
            let u = word(&ins.args)?;
            if u.is_empty() {
                return Err(invalid(k, "requires exactly one argument"));
            }
            config.insert("User".into(), json!(u));
        }
        "WORKDIR" => {
            let w = word(&ins.args)?;
            if w.is_empty() {
                return Err(invalid(k, "requires exactly one argument"));
            }
            let current = config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            config.insert("WorkingDir".into(), json!(workdir(&current, &w)));
        }
        "VOLUME" => {
            let list = match form(&ins.args) {
                Form::Json(v) => v,
                // Each word as written is one volume, its value never split.
                Form::Shell(s) => split_raw(&s, escape)
                    .map_err(|source| MetadataError::Word {
                        keyword: k.to_string(),
                        source,
                    })?
                    .iter()
                    .map(|w| word(w))
                    .collect::<Result<Vec<_>, _>>()?,
            };
            spend(state, k, list.iter().map(String::len).sum())?;
            if list.is_empty() {
                return Err(invalid(k, "requires at least one argument"));
            }
            let vols = config.entry("Volumes").or_insert_with(|| json!({}));
            if !vols.is_object() {
                *vols = json!({});
            }
            let m = vols.as_object_mut().expect("made an object");
            for v in list {
                let v = v.trim().to_string();
                if v.is_empty() {
                    return Err(invalid(k, "specified can not be an empty string"));
                }
                m.insert(v, json!({}));
            }
        }
        "STOPSIGNAL" => {
            let s = word(&ins.args)?;
            crate::container::signal_arg(&s).map_err(|_| {
                invalid(
                    k,
                    format!("invalid signal: {s} (expected a name such as SIGTERM or a number)"),
                )
            })?;
            config.insert("StopSignal".into(), json!(s));
        }
        "ONBUILD" => {
            let trigger = ins.args.trim();
            let first = trigger
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match first.as_str() {
                "" => return Err(invalid(k, "requires at least one argument")),
                "ONBUILD" => {
                    return Err(invalid(k, "chaining via `ONBUILD ONBUILD` isn't allowed"));
                }
                "FROM" | "MAINTAINER" => {
                    return Err(invalid(
                        k,
                        format!("{first} isn't allowed as an ONBUILD trigger"),
                    ));
                }
                _ => {}
            }
            spend(state, k, trigger.len())?;
            let list = config.entry("OnBuild").or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            list.as_array_mut()
                .expect("made an array")
                .push(json!(trigger));
        }
        "HEALTHCHECK" => {
            let hc = healthcheck(&ins.args, escape)?;
            config.insert("Healthcheck".into(), hc);
        }
        "SHELL" => match form(&ins.args) {
            Form::Json(v) if !v.is_empty() => {
                config.insert("Shell".into(), json!(v));
            }
            _ => return Err(invalid(k, "requires the arguments to be in JSON form")),
        },
        other => return Err(MetadataError::NotMetadata(other.to_string())),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::build::dockerfile::parse;

    fn run(config: Value, text: &str) -> Result<Value, MetadataError> {
        let d = parse(text).unwrap();
        let mut c = config.as_object().cloned().unwrap();
        let mut st = MetaState::default();
        for i in &d.instructions {
            apply(&mut c, i, d.escape, &mut st)?;
        }
        Ok(Value::Object(c))
    }

    #[test]
    fn applies_as_docker() {
        let base = json!({"Env": ["PATH=/bin", "A=1"], "Cmd": ["sh"], "WorkingDir": "/srv"});
        let c = run(
            base.clone(),
            "ENV A=2 B=\"x $A\" C=${NOPE:-d}\nENV D e f\nLABEL a=b \"c d\"=\"e f\"\nEXPOSE 80 53/udp 8000-8001\nUSER $A\nWORKDIR sub/../w\nVOLUME /data \"/other\"\nSTOPSIGNAL SIGINT\nONBUILD RUN echo hi\nCMD echo $A\n",
        )
        .unwrap();
        assert_eq!(
            c["Env"],
            json!(["PATH=/bin", "A=2", "B=x 1", "C=d", "D=e f"])
        );
        assert_eq!(c["Labels"], json!({"a": "b", "c d": "e f"}));
        assert_eq!(
            c["ExposedPorts"],
            json!({"80/tcp": {}, "53/udp": {}, "8000/tcp": {}, "8001/tcp": {}})
        );
        assert_eq!(c["User"], "2");
        assert_eq!(c["WorkingDir"], "/srv/w");
        assert_eq!(workdir("/srv", "/a/../b/"), "/a/../b/");
        assert_eq!(c["Volumes"], json!({"/data": {}, "/other": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
        assert_eq!(c["OnBuild"], json!(["RUN echo hi"]));
        // CMD in the shell form is not substituted.
        assert_eq!(c["Cmd"], json!(["/bin/sh", "-c", "echo $A"]));

        // ENTRYPOINT clears the command unless a CMD came with it.
        let c = run(base.clone(), "ENTRYPOINT [\"/bin/top\"]").unwrap();
        assert_eq!(c["Entrypoint"], json!(["/bin/top"]));
        assert_eq!(c["Cmd"], Value::Null);
        let c = run(base.clone(), "CMD [\"-b\"]\nENTRYPOINT [\"/bin/top\"]").unwrap();
        assert_eq!(c["Cmd"], json!(["-b"]));

        let c = run(
            base.clone(),
            "HEALTHCHECK --interval=5s --retries=3 CMD wget -q localhost",
        )
        .unwrap();
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "wget -q localhost"], "Interval": 5_000_000_000i64, "Retries": 3})
        );
        let c = run(base.clone(), "HEALTHCHECK NONE").unwrap();
        assert_eq!(c["Healthcheck"], json!({"Test": ["NONE"]}));
        let c = run(base.clone(), "SHELL [\"/bin/ash\", \"-e\", \"-c\"]\nCMD x").unwrap();
        assert_eq!(c["Cmd"], json!(["/bin/ash", "-e", "-c", "x"]));
    }

    #[test]
    fn refuses_bad_arguments() {
        let base = json!({});
        for bad in [
            "EXPOSE 80/icmp",
            "EXPOSE 99999",
            "EXPOSE 90-80",
            "ENV A",
            "ENV =x",
            "LABEL",
            "STOPSIGNAL NOPE",
            "ONBUILD ONBUILD RUN x",
            "ONBUILD FROM x",
            "HEALTHCHECK --interval=1ns CMD x",
            "HEALTHCHECK --nope=1 CMD x",
            "HEALTHCHECK RUN x",
            "SHELL /bin/sh -c",
            "VOLUME [\"\"]",
            "USER ${A:?needed}",
            // More ports than exist, and substitutions that multiply past the bound.
            &"EXPOSE 0-65535 ".repeat(4),
            &format!(
                "ENV A={}\nENV B=$A$A$A$A$A$A$A$A C=$A$A$A$A$A$A$A$A",
                "x".repeat(600_000)
            ),
        ] {
            assert!(run(base.clone(), bad).is_err(), "{bad} was accepted");
        }
        assert_eq!(
            run(base, "RUN x").unwrap_err(),
            MetadataError::NotMetadata("RUN".into())
        );
    }
}

//! The commands, grouped as the docker CLI's help groups them. Each turns its flags into API
//! calls and prints what the docker CLI would; the shaping of output is in the library.

pub mod build;
pub mod container;
pub mod cp;
pub mod filesystem;
pub mod image;
pub mod network;
pub mod system;

use std::time::{SystemTime, UNIX_EPOCH};

use berth_cli::client::ClientError;
use berth_cli::output::Format;
use serde_json::Value;

use crate::Exit;

/// Seconds since the epoch, for `... ago` columns.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `--filter a=b` (repeatable) as the API's JSON `filters` (`{"a":{"b":true}}`).
pub fn filters(list: &[String]) -> anyhow::Result<Option<String>> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut m = serde_json::Map::new();
    for f in list {
        let (k, v) = f.split_once('=').ok_or_else(|| Exit {
            code: 125,
            message: format!("invalid argument {f:?} for \"-f, --filter\" flag: bad format of filter (expected name=value)"),
        })?;
        m.entry(k.to_string())
            .or_insert_with(|| Value::Object(Default::default()))
            .as_object_mut()
            .expect("an object was inserted")
            .insert(v.to_string(), Value::Bool(true));
    }
    Ok(Some(Value::Object(m).to_string()))
}

/// Prints list rows: their IDs with `-q`, else as `--format` says over the command's default
/// `table` and `headers`.
pub fn print_rows(
    rows: &[Value],
    quiet: bool,
    format: Option<&str>,
    table: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<i32> {
    let f = if quiet {
        Format::quiet()
    } else {
        Format::parse(format, table)?
    };
    f.write(&mut std::io::stdout().lock(), rows, headers)?;
    Ok(0)
}

/// Runs `each` for every name, printing what it returns; errors are printed as they come and
/// the command fails at the end if any did (Docker's `rm a b c`, `stop a b`).
pub async fn for_each<F, Fut>(names: &[String], mut each: F) -> anyhow::Result<i32>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>, ClientError>>,
{
    let mut failed = false;
    for n in names {
        match each(n.clone()).await {
            Ok(Some(line)) => println!("{line}"),
            Ok(None) => {}
            Err(e) => {
                eprintln!("{e}");
                failed = true;
            }
        }
    }
    Ok(i32::from(failed))
}

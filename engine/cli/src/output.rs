//! `--format` as Docker reads it, and Docker's tables. A format is empty (the command's
//! default table), `table` (the same), `table TEMPLATE` (a header row, then a row per item),
//! `json` (`{{json .}}` per line) or a TEMPLATE (one rendering per item, no header). `\t` and
//! `\n` written literally in the format are a tab and a newline, as in Docker. Tables align
//! as Go's text/tabwriter does in the docker CLI (minimum width 10, padding 3).

use std::io::Write;

use serde_json::Value;

use crate::template::{Template, TemplateError};

/// A parsed `--format`.
#[derive(Debug, Clone)]
pub struct Format {
    template: Template,
    table: bool,
}

impl Format {
    /// `spec` (the user's `--format`, `None` or empty for the default) over `default_table`,
    /// the command's default table template (without the `table` word).
    pub fn parse(spec: Option<&str>, default_table: &str) -> Result<Format, TemplateError> {
        let spec = spec.map(str::trim).unwrap_or("");
        let (table, text) = match spec {
            "" | "table" => (true, default_table.to_string()),
            "json" => (false, "{{json .}}".to_string()),
            s if s.starts_with("table ") || s.starts_with("table\t") => {
                (true, s["table".len()..].trim_start().to_string())
            }
            s => (false, s.to_string()),
        };
        let text = text.replace("\\t", "\t").replace("\\n", "\n");
        Ok(Format {
            template: Template::parse(&text)?,
            table,
        })
    }

    /// `-q`: the IDs alone.
    pub fn quiet() -> Format {
        Format {
            template: Template::parse("{{.ID}}").expect("a fixed template parses"),
            table: false,
        }
    }

    /// Whether a header row comes first.
    pub fn is_table(&self) -> bool {
        self.table
    }

    /// Writes `rows` (one JSON object per item) to `out`; `headers` names the columns of the
    /// fields a table reads (`ID` -> `CONTAINER ID`); a field without one is headed by its
    /// name in capitals.
    pub fn write(
        &self,
        out: &mut dyn Write,
        rows: &[Value],
        headers: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let mut text = String::new();
        if self.table {
            let mut h = serde_json::Map::new();
            for f in self.template.fields() {
                let name = headers
                    .iter()
                    .find(|(k, _)| *k == f)
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_else(|| upper_words(&f));
                h.insert(f, Value::String(name));
            }
            text.push_str(&self.template.render(&Value::Object(h))?);
            text.push('\n');
        }
        for r in rows {
            text.push_str(&self.template.render(r)?);
            text.push('\n');
        }
        if self.table {
            write_table(out, &text)?;
        } else {
            out.write_all(text.as_bytes())?;
        }
        Ok(())
    }
}

/// Writes tab-separated `text` aligned as the docker CLI's tables: Go's text/tabwriter with
/// minimum width 10 and padding 3, i.e. a column is `max(10, widest + 3)` wide. (The Rust
/// port adds the padding after the minimum, hence 7 here.)
pub fn write_table(out: &mut dyn Write, text: &str) -> anyhow::Result<()> {
    let mut tw = tabwriter::TabWriter::new(Vec::new()).minwidth(7).padding(3);
    tw.write_all(text.as_bytes())?;
    tw.flush()?;
    out.write_all(&tw.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?)?;
    Ok(())
}

/// `RunningFor` -> `RUNNING FOR`: Docker's header for a field it has no name for.
fn upper_words(field: &str) -> String {
    let mut s = String::new();
    let mut prev_upper = true;
    for c in field.chars() {
        if c.is_uppercase() && !prev_upper {
            s.push(' ');
        }
        prev_upper = c.is_uppercase();
        s.extend(c.to_uppercase());
    }
    s
}

/// `inspect`'s output: the objects as an indented JSON array, or each rendered by `-f`.
pub fn inspect(out: &mut dyn Write, items: &[Value], format: Option<&str>) -> anyhow::Result<()> {
    match format.map(str::trim).filter(|f| !f.is_empty()) {
        None => {
            let mut text = serde_json::to_string_pretty(items)?;
            text.push('\n');
            out.write_all(text.as_bytes())?;
        }
        Some(f) => {
            let f = if f == "json" { "{{json .}}" } else { f };
            let t = Template::parse(&f.replace("\\t", "\t").replace("\\n", "\n"))?;
            for i in items {
                writeln!(out, "{}", t.render(i)?)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(spec: Option<&str>, rows: &[Value]) -> String {
        let f = Format::parse(spec, "{{.ID}}\t{{.Image}}\t{{.Names}}").unwrap();
        let mut out = Vec::new();
        f.write(
            &mut out,
            rows,
            &[
                ("ID", "CONTAINER ID"),
                ("Image", "IMAGE"),
                ("Names", "NAMES"),
            ],
        )
        .unwrap();
        String::from_utf8(out).unwrap()
    }

    fn rows() -> Vec<Value> {
        vec![
            json!({"ID": "0123456789ab", "Image": "busybox", "Names": "web", "Status": "Up 2 seconds"}),
            json!({"ID": "ba9876543210", "Image": "localhost:5000/a/b:v1", "Names": "db", "Status": "Created"}),
        ]
    }

    #[test]
    fn default_table_aligns_as_dockers_tabwriter() {
        let out = run(None, &rows());
        assert_eq!(
            out,
            "CONTAINER ID   IMAGE                   NAMES\n\
             0123456789ab   busybox                 web\n\
             ba9876543210   localhost:5000/a/b:v1   db\n"
        );
        // Columns narrower than 10 are widened to 10, as Docker's minwidth.
        let narrow = run(Some("table {{.Names}}\\t{{.ID}}"), &rows());
        assert_eq!(narrow.lines().next().unwrap(), "NAMES     CONTAINER ID");
    }

    #[test]
    fn custom_templates_and_json() {
        assert_eq!(
            run(Some("{{.Names}}:{{.Status}}"), &rows()),
            "web:Up 2 seconds\ndb:Created\n"
        );
        let j = run(Some("json"), &rows());
        let first: Value = serde_json::from_str(j.lines().next().unwrap()).unwrap();
        assert_eq!(first["Image"], "busybox");
        // A field the command has no header for is headed by its name in capitals.
        let t = run(Some("table {{.Status}}\t{{.RunningFor}}"), &[]);
        assert_eq!(t, "STATUS    RUNNING FOR\n");
        assert!(Format::parse(Some("{{.ID"), "").is_err());
    }

    #[test]
    fn quiet_is_ids() {
        let mut out = Vec::new();
        Format::quiet().write(&mut out, &rows(), &[]).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "0123456789ab\nba9876543210\n"
        );
    }

    #[test]
    fn inspect_formats() {
        let items = vec![
            json!({"Id": "abc", "State": {"Status": "running"}, "Config": {"Cmd": ["sh", "-c", "x"]}}),
        ];
        let mut out = Vec::new();
        inspect(
            &mut out,
            &items,
            Some("{{.State.Status}} {{json .Config.Cmd}}"),
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "running [\"sh\",\"-c\",\"x\"]\n"
        );
        let mut out = Vec::new();
        inspect(&mut out, &items, None).unwrap();
        let back: Vec<Value> = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, items);
    }
}

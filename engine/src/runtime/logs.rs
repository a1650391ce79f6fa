//! Docker's json-file log driver: one JSON object per line, `{"log":"...\n","stream":"stdout",
//! "time":"RFC 3339 with nanoseconds"}`, rotated at `max-size` into `NAME.1` .. `NAME.(max-file
//! - 1)`. The writer is used by the shim; reading (tail, since, follow) by the engine.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One log record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    /// The text, with its newline when it had one.
    pub log: String,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// RFC 3339 with nanoseconds.
    pub time: String,
}

/// Now, as Docker stamps log lines (`2026-11-23T16:43:20.123456789Z`).
pub fn now_rfc3339_nano() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = netcore::network::rfc3339(d.as_secs());
    format!("{}.{:09}Z", secs.trim_end_matches('Z'), d.subsec_nanos())
}

/// Rotation: `--log-opt max-size` (bytes, `None`: never) and `max-file` (files kept, ≥ 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate when the current file would pass this.
    pub max_size: Option<u64>,
    /// Files kept, the current one included.
    pub max_file: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: None,
            max_file: 1,
        }
    }
}

/// Appends log lines to a json-file log, rotating it.
#[derive(Debug)]
pub struct JsonFileWriter {
    path: PathBuf,
    file: File,
    size: u64,
    rotation: Rotation,
}

impl JsonFileWriter {
    /// Opens (appending to) the log at `path`.
    pub fn open(path: &Path, rotation: Rotation) -> io::Result<JsonFileWriter> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(JsonFileWriter {
            path: path.to_path_buf(),
            file,
            size,
            rotation,
        })
    }

    /// Writes the bytes of one read from `stream`, split into lines as Docker does (a partial
    /// last line is a record of its own, without newline).
    pub fn write(&mut self, stream: &str, bytes: &[u8], time: &str) -> io::Result<()> {
        for piece in bytes.split_inclusive(|b| *b == b'\n') {
            let line = LogLine {
                log: String::from_utf8_lossy(piece).into_owned(),
                stream: stream.to_string(),
                time: time.to_string(),
            };
            let mut rec = serde_json::to_vec(&line).expect("log lines serialise");
            rec.push(b'\n');
            if let Some(max) = self.rotation.max_size {
                if self.size > 0 && self.size + rec.len() as u64 > max {
                    self.rotate()?;
                }
            }
            self.file.write_all(&rec)?;
            self.size += rec.len() as u64;
        }
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.rotation.max_file.max(1);
        if keep == 1 {
            self.file.set_len(0)?;
        } else {
            let name = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
            let _ = fs::remove_file(name(keep - 1));
            for n in (1..keep - 1).rev() {
                let _ = fs::rename(name(n), name(n + 1));
            }
            fs::rename(&self.path, name(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// Every record of the log at `path`, oldest first (rotated files included); lines that are
/// not records (a torn last line after a crash) are skipped.
pub fn read_all(path: &Path, max_file: u32) -> io::Result<Vec<LogLine>> {
    let mut files: Vec<PathBuf> = (1..max_file.max(1))
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .collect();
    files.push(path.to_path_buf());
    let mut out = Vec::new();
    for f in files {
        let Ok(file) = File::open(&f) else { continue };
        for line in BufReader::new(file).lines() {
            if let Ok(rec) = serde_json::from_str::<LogLine>(&line?) {
                out.push(rec);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_dockers_json_and_rotate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = JsonFileWriter::open(
            &path,
            Rotation {
                max_size: Some(200),
                max_file: 3,
            },
        )
        .unwrap();
        let t = "2026-11-23T16:43:20.000000001Z";
        w.write("stdout", b"hello\nwor", t).unwrap();
        w.write("stderr", b"oops\n", t).unwrap();
        let first = fs::read_to_string(dir.path().join("c-json.log.1")).unwrap();
        assert_eq!(
            first.lines().next().unwrap(),
            r#"{"log":"hello\n","stream":"stdout","time":"2026-11-23T16:43:20.000000001Z"}"#
        );
        let early = read_all(&path, 3).unwrap();
        assert_eq!(
            early.iter().map(|l| l.log.as_str()).collect::<Vec<_>>(),
            ["hello\n", "wor", "oops\n"]
        );
        for i in 0..20 {
            w.write("stdout", format!("line {i}\n").as_bytes(), t)
                .unwrap();
        }
        assert!(fs::metadata(&path).unwrap().len() <= 200);
        assert!(dir.path().join("c-json.log.2").exists());
        assert!(
            !dir.path().join("c-json.log.3").exists(),
            "max-file 3 keeps 3 files"
        );
        let all = read_all(&path, 3).unwrap();
        assert_eq!(all.last().unwrap().log, "line 19\n");
        let logs: Vec<&str> = all.iter().map(|l| l.log.as_str()).collect();
        let start = logs.iter().position(|l| l.starts_with("line")).unwrap();
        let nums: Vec<usize> = logs[start..]
            .iter()
            .map(|l| l[5..l.len() - 1].parse().unwrap())
            .collect();
        assert!(
            nums.windows(2).all(|w| w[1] == w[0] + 1),
            "oldest first, none lost between kept files: {nums:?}"
        );
        assert!(now_rfc3339_nano().len() == 30 && now_rfc3339_nano().ends_with('Z'));
    }
}

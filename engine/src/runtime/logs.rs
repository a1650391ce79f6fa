//! Docker's json-file log driver: one JSON object per line, `{"log":"...\n","stream":"stdout",
//! "time":"RFC 3339 with nanoseconds"}`, rotated at `max-size` into `NAME.1` .. `NAME.(max-file
//! - 1)`. The writer is used by the shim; reading (tail, since, follow) by the engine.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
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
        // The container's output: root's alone (inside a state directory closed to others).
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        // A log from before logs were private keeps its file: close it too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
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
                .mode(0o600)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }
}

/// The longest record a reader accepts; a longer line (none the writer makes: the shim writes
/// reads of at most 32 KiB, a few times that once escaped) is skipped, so a corrupt or hostile
/// log cannot make a reader hold more than this.
pub const MAX_RECORD: usize = 1 << 20;

/// The files of the log at `path`, oldest first: `NAME.(max_file - 1)` .. `NAME.1`, `NAME`.
pub fn files(path: &Path, max_file: u32) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..max_file.max(1))
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", path.display())))
        .collect();
    files.push(path.to_path_buf());
    files
}

/// Reads one newline-ended line into `buf` (cleared first), holding at most [`MAX_RECORD`]
/// bytes: a longer line is consumed and skipped. `Ok(false)` at the end of what is there (a
/// partial last line stays in `buf` for the caller to keep).
pub fn read_record(r: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut skipping = false;
    loop {
        let chunk = r.fill_buf()?;
        if chunk.is_empty() {
            return Ok(false);
        }
        let (take, done) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (chunk.len(), false),
        };
        if !skipping {
            if buf.len() + take > MAX_RECORD + 1 {
                skipping = true;
                buf.clear();
            } else {
                buf.extend_from_slice(&chunk[..take]);
            }
        }
        r.consume(take);
        if done {
            if skipping {
                skipping = false;
                continue;
            }
            return Ok(true);
        }
    }
}

/// Where a follower took over a log: the file (by inode) and the offset it starts reading at.
/// A history read bounded by it stops there, so no record is shown twice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The inode of the file the follower reads.
    pub inode: u64,
    /// Its offset in that file.
    pub offset: u64,
}

/// The log's files oldest first, opened, with their inodes; with `mark`, cut after the marked
/// file (newer ones are the follower's) and with the byte count to read from each (`None`:
/// all). A mark no file matches (rotated away meanwhile) bounds nothing.
fn bounded_files(path: &Path, max_file: u32, mark: Option<Mark>) -> Vec<(File, Option<u64>)> {
    use std::os::unix::fs::MetadataExt;
    let opened: Vec<(File, u64)> = files(path, max_file)
        .into_iter()
        .filter_map(|f| File::open(f).ok())
        .map(|f| {
            let ino = f.metadata().map_or(0, |m| m.ino());
            (f, ino)
        })
        .collect();
    let cut = mark.and_then(|m| {
        opened
            .iter()
            .position(|(_, ino)| *ino == m.inode)
            .map(|i| (i, m.offset))
    });
    match cut {
        Some((i, offset)) => opened
            .into_iter()
            .take(i + 1)
            .enumerate()
            .map(|(j, (f, _))| (f, (j == i).then_some(offset)))
            .collect(),
        None => opened.into_iter().map(|(f, _)| (f, None)).collect(),
    }
}

/// Calls `each` with every record of the log, oldest first (rotated files included), until it
/// returns false, stopping at `mark` when given. Memory: one record. Lines that are not
/// records (a torn last line after a crash) are skipped.
pub fn for_each(
    path: &Path,
    max_file: u32,
    mark: Option<Mark>,
    mut each: impl FnMut(LogLine) -> bool,
) -> io::Result<()> {
    let mut buf = Vec::new();
    for (file, limit) in bounded_files(path, max_file, mark) {
        let mut r = BufReader::with_capacity(64 << 10, Read::take(file, limit.unwrap_or(u64::MAX)));
        while read_record(&mut r, &mut buf)? {
            if let Ok(rec) = serde_json::from_slice::<LogLine>(&buf) {
                if !each(rec) {
                    return Ok(());
                }
            }
            buf.clear();
        }
        buf.clear();
    }
    Ok(())
}

/// Calls `each` with the records of the log newest first (from `mark` back, when given),
/// reading the files backwards in blocks, until it returns false: `--tail N` of a log of any
/// size costs the N records and a block, not the log.
pub fn for_each_rev(
    path: &Path,
    max_file: u32,
    mark: Option<Mark>,
    mut each: impl FnMut(LogLine) -> bool,
) -> io::Result<()> {
    for (file, limit) in bounded_files(path, max_file, mark).into_iter().rev() {
        if !rev_file(&file, limit, &mut each)? {
            return Ok(());
        }
    }
    Ok(())
}

const BLOCK: u64 = 64 << 10;

fn rev_file(
    file: &File,
    limit: Option<u64>,
    each: &mut impl FnMut(LogLine) -> bool,
) -> io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    let mut pos = limit.map_or(len, |l| l.min(len));
    // The start of the line the blocks read so far end in (its end is known, its start not).
    let mut carry: Vec<u8> = Vec::new();
    // The line being read is longer than MAX_RECORD: drop it up to its start.
    let mut skipping = false;
    let mut emit = |line: &[u8], skipping: &mut bool| -> bool {
        if std::mem::take(skipping) {
            return true;
        }
        match serde_json::from_slice::<LogLine>(line) {
            Ok(rec) => each(rec),
            Err(_) => true,
        }
    };
    while pos > 0 {
        let n = BLOCK.min(pos);
        pos -= n;
        let mut buf = vec![0; n as usize];
        file.read_exact_at(&mut buf, pos)?;
        buf.extend_from_slice(&carry);
        let mut end = buf.len();
        while let Some(i) = buf[..end].iter().rposition(|b| *b == b'\n') {
            if !emit(&buf[i + 1..end], &mut skipping) {
                return Ok(false);
            }
            end = i;
        }
        carry = buf[..end].to_vec();
        if carry.len() > MAX_RECORD {
            carry.clear();
            skipping = true;
        }
    }
    Ok(carry.is_empty() || emit(&carry, &mut skipping))
}

/// Every record of the log at `path`, oldest first (for tests and small logs: it holds them
/// all; [`for_each`] streams).
pub fn read_all(path: &Path, max_file: u32) -> io::Result<Vec<LogLine>> {
    let mut out = Vec::new();
    for_each(path, max_file, None, |l| {
        out.push(l);
        true
    })?;
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
    }

    #[test]
    fn reading_backwards_sees_every_record_newest_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rot = Rotation {
            max_size: Some(300 << 10),
            max_file: 3,
        };
        let mut w = JsonFileWriter::open(&path, rot).unwrap();
        let t = "2026-11-23T16:43:20.000000001Z";
        // Records of many lengths, some across 64 KiB block edges, over two files.
        let mut want = Vec::new();
        for i in 0..3000 {
            let text = format!("{i} {}\n", "x".repeat(i % 300));
            w.write("stdout", text.as_bytes(), t).unwrap();
            want.push(text);
        }
        assert!(dir.path().join("c-json.log.1").exists());
        let mut got = Vec::new();
        for_each_rev(&path, 3, None, |l| {
            got.push(l.log);
            true
        })
        .unwrap();
        got.reverse();
        let kept = &want[want.len() - got.len()..];
        assert_eq!(got, kept);
        assert_eq!(read_all(&path, 3).unwrap().len(), got.len());
        // Stopping early reads no further.
        let mut n = 0;
        for_each_rev(&path, 3, None, |_| {
            n += 1;
            n < 5
        })
        .unwrap();
        assert_eq!(n, 5);
    }

    #[test]
    fn overlong_and_torn_lines_are_skipped_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rec = |s: &str| {
            let mut v = serde_json::to_vec(&LogLine {
                log: s.into(),
                stream: "stdout".into(),
                time: "2026-11-23T16:43:20.000000001Z".into(),
            })
            .unwrap();
            v.push(b'\n');
            v
        };
        let mut data = rec("first\n");
        data.extend(vec![b'z'; MAX_RECORD + 10]);
        data.push(b'\n');
        data.extend(rec("last\n"));
        data.extend(b"{\"log\":\"torn");
        fs::write(&path, &data).unwrap();
        let fwd: Vec<String> = read_all(&path, 1)
            .unwrap()
            .into_iter()
            .map(|l| l.log)
            .collect();
        assert_eq!(fwd, ["first\n", "last\n"]);
        let mut rev = Vec::new();
        for_each_rev(&path, 1, None, |l| {
            rev.push(l.log);
            true
        })
        .unwrap();
        assert_eq!(rev, ["last\n", "first\n"]);
    }
}

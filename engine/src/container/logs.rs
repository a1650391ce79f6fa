//! `docker logs`: `--tail` (read from the end), `--since`, `--until` over the json-file
//! records, and `--follow` by reading what the shim appends, across rotations, woken by
//! inotify rather than a timer.

use std::fs::File;
use std::io::{self, BufReader, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_common::time;

use crate::runtime::logs::{self, LogLine};

/// Which records to show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Only the last N (`--tail N`; `None`: all).
    pub tail: Option<usize>,
    /// Only records at or after this RFC 3339 time (`--since`).
    pub since: Option<String>,
    /// Only records before this RFC 3339 time (`--until`).
    pub until: Option<String>,
    /// `stdout` records.
    pub stdout: bool,
    /// `stderr` records.
    pub stderr: bool,
}

/// Reads the records of the json-file log at `path` (with `max_file` files) that `opts`
/// selects, oldest first, into `each` until it returns false. `--tail N` reads the files
/// backwards and holds the N records; everything else streams a record at a time. Records are
/// in time order, so a backward read stops at the first record before `--since` and a forward
/// one at the first at or after `--until`.
///
/// With `mark` (a follower's [`LogFollower::mark`]) the read ends where the follower begins.
pub fn read(
    path: &Path,
    max_file: u32,
    opts: &LogOptions,
    mark: Option<logs::Mark>,
    mut each: impl FnMut(LogLine) -> bool,
) -> io::Result<()> {
    let since = opts.since.as_deref().and_then(time::parse);
    let until = opts.until.as_deref().and_then(time::parse);
    let stream = |l: &LogLine| {
        (l.stream == "stdout" && opts.stdout) || (l.stream == "stderr" && opts.stderr)
    };
    match opts.tail {
        Some(0) => Ok(()),
        Some(n) => {
            let mut last = Vec::new();
            logs::for_each_rev(path, max_file, mark, |l| {
                let t = time::parse(&l.time);
                if since.is_some_and(|s| t.is_none_or(|t| t < s)) {
                    return false;
                }
                if stream(&l) && until.is_none_or(|u| t.is_some_and(|t| t < u)) {
                    last.push(l);
                }
                last.len() < n
            })?;
            for l in last.into_iter().rev() {
                if !each(l) {
                    break;
                }
            }
            Ok(())
        }
        None => logs::for_each(path, max_file, mark, |l| {
            let t = time::parse(&l.time);
            if until.is_some_and(|u| t.is_none_or(|t| t >= u)) {
                return false;
            }
            if !stream(&l) || since.is_some_and(|s| t.is_none_or(|t| t < s)) {
                return true;
            }
            each(l)
        }),
    }
}

/// Reads records appended to a json-file log after a point, following it through rotation
/// (a new file under the name starts over from its beginning) and truncation (`max-file=1`
/// rotates by emptying the file in place), a bounded batch at a time.
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    reader: Option<BufReader<File>>,
    inode: u64,
    partial: Vec<u8>,
    start: Option<logs::Mark>,
}

impl LogFollower {
    /// Follows `path` from its current end.
    pub fn from_end(path: &Path) -> LogFollower {
        let mut f = LogFollower {
            path: path.to_path_buf(),
            reader: None,
            inode: 0,
            partial: Vec::new(),
            start: None,
        };
        if let Ok(mut file) = File::open(path) {
            let offset = file.seek(SeekFrom::End(0)).unwrap_or(0);
            f.inode = file.metadata().map_or(0, |m| m.ino());
            f.start = Some(logs::Mark {
                inode: f.inode,
                offset,
            });
            f.reader = Some(BufReader::with_capacity(64 << 10, file));
        }
        f
    }

    /// Where this follower begins: what a history read must stop at (`None` when the log did
    /// not exist yet: the follower reads it whole).
    pub fn mark(&self) -> Option<logs::Mark> {
        self.start
    }

    /// Records appended since the last call, at most `max` of them (more wait for the next
    /// call), across rotations: the old file is drained before the new one is opened.
    pub fn poll(&mut self, max: usize) -> io::Result<Vec<LogLine>> {
        let mut out = Vec::new();
        loop {
            if let Some(r) = self.reader.as_mut() {
                if Self::read_lines(r, &mut self.partial, &mut out, max)? {
                    return Ok(out);
                }
            }
            // At the end of what the current file holds.
            let Ok(meta) = std::fs::metadata(&self.path) else {
                return Ok(out);
            };
            let current = meta.ino();
            if current == self.inode {
                let r = self.reader.as_mut().expect("a reader for the known inode");
                if meta.len() < r.stream_position()? {
                    // Emptied in place (max-file=1): start over from its beginning.
                    r.seek(SeekFrom::Start(0))?;
                    self.partial.clear();
                    continue;
                }
                return Ok(out);
            }
            // Rotated (or created). The writer may have appended to the old file between the
            // read above and its rename: drain it once more before leaving it.
            if let Some(r) = self.reader.as_mut() {
                if Self::read_lines(r, &mut self.partial, &mut out, max)? {
                    return Ok(out);
                }
            }
            self.partial.clear();
            // Rotated twice since the last look: the file in between is now `NAME.1`; read it
            // (in bounded batches, as any file) before the current one.
            let first = PathBuf::from(format!("{}.1", self.path.display()));
            if self.inode != 0 {
                if let Ok(file) = File::open(&first) {
                    let ino = file.metadata().map_or(0, |m| m.ino());
                    if ino != self.inode && ino != current {
                        self.inode = ino;
                        self.reader = Some(BufReader::with_capacity(64 << 10, file));
                        continue;
                    }
                }
            }
            let file = File::open(&self.path)?;
            self.inode = file.metadata()?.ino();
            self.reader = Some(BufReader::with_capacity(64 << 10, file));
        }
    }

    /// Reads complete records into `out` until the file's end (false) or `out` holds `max`
    /// (true). A partial last line is kept in `partial` for the next call.
    fn read_lines(
        r: &mut BufReader<File>,
        partial: &mut Vec<u8>,
        out: &mut Vec<LogLine>,
        max: usize,
    ) -> io::Result<bool> {
        loop {
            if out.len() >= max {
                return Ok(true);
            }
            let mut line = std::mem::take(partial);
            if !logs::read_record(r, &mut line)? {
                *partial = line;
                return Ok(false);
            }
            if let Ok(l) = serde_json::from_slice::<LogLine>(&line) {
                out.push(l);
            }
        }
    }
}

pub use super::log_watch::LogWatch;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::logs::{JsonFileWriter, Rotation};

    /// The texts of a batch of records.
    fn texts(lines: Vec<LogLine>) -> Vec<String> {
        lines.into_iter().map(|l| l.log).collect()
    }

    /// A json-file log in a new directory, rotated at `max_size` bytes into `max_file` files.
    fn log(max_size: u64, max_file: u32) -> (tempfile::TempDir, PathBuf, JsonFileWriter) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let rot = Rotation {
            max_size: Some(max_size),
            max_file,
        };
        let w = JsonFileWriter::open(&path, rot).unwrap();
        (dir, path, w)
    }

    #[test]
    fn tail_since_until_and_streams() {
        // Two files, so the tail and the forward read both cross a rotation.
        let (dir, path, mut w) = log(200, 2);
        for (t, s, text) in [
            ("2026-11-23T10:00:00.000000000Z", "stdout", "a\n"),
            ("2026-11-23T10:00:01.000000000Z", "stderr", "b\n"),
            ("2026-11-23T10:00:02.000000000Z", "stdout", "c\n"),
            ("2026-11-23T10:00:03.000000000Z", "stdout", "d\n"),
        ] {
            w.write(s, text.as_bytes(), t).unwrap();
        }
        assert!(dir.path().join("c-json.log.1").exists());
        let all = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        let texts = |o: &LogOptions| {
            let mut v = Vec::new();
            read(&path, 2, o, None, |l| {
                v.push(l.log);
                true
            })
            .unwrap();
            v.concat()
        };
        let with = |f: &dyn Fn(&mut LogOptions)| {
            let mut o = all.clone();
            f(&mut o);
            texts(&o)
        };
        assert_eq!(texts(&all), "a\nb\nc\nd\n");
        assert_eq!(with(&|o| o.tail = Some(2)), "c\nd\n");
        assert_eq!(with(&|o| o.tail = Some(9)), "a\nb\nc\nd\n");
        assert_eq!(with(&|o| o.tail = Some(0)), "");
        let since = Some("2026-11-23T10:00:01Z".to_string());
        assert_eq!(with(&|o| o.since = since.clone()), "b\nc\nd\n");
        let until = Some("2026-11-23T10:00:02Z".to_string());
        assert_eq!(with(&|o| o.until = until.clone()), "a\nb\n");
        assert_eq!(with(&|o| o.stderr = false), "a\nc\nd\n");
        // --tail counts the records the other filters keep.
        assert_eq!(
            with(&|o| {
                o.tail = Some(2);
                o.stdout = false;
            }),
            "b\n"
        );
        assert_eq!(
            with(&|o| {
                o.tail = Some(1);
                o.until = until.clone();
            }),
            "b\n"
        );
        assert_eq!(
            with(&|o| {
                o.tail = Some(3);
                o.since = since.clone();
                o.stderr = false;
            }),
            "c\nd\n"
        );
    }

    #[test]
    fn follow_sees_appends_and_rotation() {
        let (_dir, path, mut w) = log(160, 3);
        w.write("stdout", b"before\n", "2026-11-23T10:00:00.000000000Z")
            .unwrap();
        let mut f = LogFollower::from_end(&path);
        assert!(f.poll(usize::MAX).unwrap().is_empty());
        let mut want = Vec::new();
        for i in 0..10 {
            let t = format!("line {i}\n");
            w.write("stdout", t.as_bytes(), "2026-11-23T10:00:00.000000000Z")
                .unwrap();
            want.push(t);
            // Two records per file: two rotations between some polls.
            if i % 3 == 0 {
                let got = texts(f.poll(usize::MAX).unwrap());
                assert_eq!(got, want, "after line {i}");
                want.clear();
            }
        }
        let got = texts(f.poll(usize::MAX).unwrap());
        assert_eq!(got, want);
    }

    #[test]
    fn follow_survives_truncation_and_returns_bounded_batches() {
        // max-file=1: rotation empties the file in place (same inode).
        let (_dir, path, mut w) = log(400, 1);
        let t = "2026-11-23T10:00:00.000000000Z";
        let mut f = LogFollower::from_end(&path);
        let mut got = Vec::new();
        for i in 0..40 {
            w.write("stdout", format!("line {i}\n").as_bytes(), t)
                .unwrap();
            // A batch of at most 2 per call.
            loop {
                let batch = f.poll(2).unwrap();
                assert!(batch.len() <= 2);
                if batch.is_empty() {
                    break;
                }
                got.extend(texts(batch));
            }
        }
        assert!(std::fs::metadata(&path).unwrap().len() <= 400);
        let want: Vec<String> = (0..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn the_watch_wakes_on_writes_and_rotation() {
        let (dir, path, mut w) = log(100, 2);
        let mut watch = LogWatch::new(&path).unwrap();
        let mut f = LogFollower::from_end(&path);
        let t = "2026-11-23T10:00:00.000000000Z";
        let never = tokio::time::timeout(std::time::Duration::from_millis(50), watch.changed());
        assert!(never.await.is_err(), "no change, no wake-up");
        for i in 0..6 {
            w.write("stdout", format!("line {i}\n").as_bytes(), t)
                .unwrap();
            tokio::time::timeout(std::time::Duration::from_secs(5), watch.changed())
                .await
                .expect("woken by the write")
                .unwrap();
            let got: Vec<String> = f
                .poll(usize::MAX)
                .unwrap()
                .into_iter()
                .map(|l| l.log)
                .collect();
            assert_eq!(got, [format!("line {i}\n")]);
        }
        assert!(dir.path().join("c-json.log.1").exists(), "it rotated");
    }

    #[test]
    fn history_stops_where_the_follower_begins() {
        let (_dir, path, mut w) = log(300, 3);
        let t = "2026-11-23T10:00:00.000000000Z";
        for i in 0..3 {
            w.write("stdout", format!("old {i}\n").as_bytes(), t)
                .unwrap();
        }
        let mut f = LogFollower::from_end(&path);
        let mark = f.mark();
        assert!(mark.is_some());
        // Written after the follower began, before the history is read (and across a
        // rotation): the follower's, never the history's.
        for i in 0..6 {
            w.write("stdout", format!("new {i}\n").as_bytes(), t)
                .unwrap();
        }
        let all = LogOptions {
            stdout: true,
            stderr: true,
            ..Default::default()
        };
        for tail in [None, Some(2), Some(100)] {
            let mut past = Vec::new();
            read(
                &path,
                3,
                &LogOptions {
                    tail,
                    ..all.clone()
                },
                mark,
                |l| {
                    past.push(l.log);
                    true
                },
            )
            .unwrap();
            let want: Vec<String> = (0..3).map(|i| format!("old {i}\n")).collect();
            let skip = want.len().saturating_sub(tail.unwrap_or(usize::MAX));
            assert_eq!(past, want[skip..], "tail {tail:?}");
        }
        let followed = texts(f.poll(100).unwrap());
        let want: Vec<String> = (0..6).map(|i| format!("new {i}\n")).collect();
        assert_eq!(followed, want);
    }
}

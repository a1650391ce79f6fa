//! The client side of attach, exec and logs: output is raw bytes with a TTY, else Docker's
//! 8-byte framed stdout/stderr, split here onto this process's stdout and stderr; input goes
//! in raw, and the end of it half-closes the connection (so `StdinOnce` closes the container's
//! stdin). With `-t` on a terminal, the terminal is raw for the session and restored after,
//! and its size follows SIGWINCH.

use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};

use berth_api::stream::next_frame;
use nix::sys::termios::{self, SetArg, Termios};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Splits framed output onto stdout and stderr as it arrives; bytes of an unfinished frame
/// wait for the rest (a frame is at most what berthd read at once, so the buffer is bounded
/// by it).
#[derive(Debug, Default)]
pub struct Demux {
    buf: Vec<u8>,
}

impl Demux {
    /// Feeds `chunk`, writing whole frames to `out` and `err`.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        out: &mut dyn Write,
        err: &mut dyn Write,
    ) -> anyhow::Result<()> {
        self.buf.extend_from_slice(chunk);
        let mut start = 0;
        while let Some((stream, range)) =
            next_frame(&self.buf[start..]).map_err(|e| anyhow::anyhow!("berthd's stream: {e}"))?
        {
            let payload = &self.buf[start + range.start..start + range.end];
            if stream == 2 {
                err.write_all(payload)?;
                err.flush()?;
            } else {
                out.write_all(payload)?;
                out.flush()?;
            }
            start += range.end;
        }
        self.buf.drain(..start);
        Ok(())
    }
}

/// Copies `from` to stdout (raw when `tty`) or to stdout and stderr (framed).
pub async fn output(mut from: impl AsyncRead + Unpin, tty: bool) -> anyhow::Result<()> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut demux = Demux::default();
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        if tty {
            let mut out = std::io::stdout().lock();
            out.write_all(&buf[..n])?;
            out.flush()?;
        } else {
            demux.feed(
                &buf[..n],
                &mut std::io::stdout().lock(),
                &mut std::io::stderr().lock(),
            )?;
        }
    }
}

/// Copies this process's stdin into `to` and half-closes it at the end of input.
pub async fn input(mut to: impl AsyncWrite + Unpin) -> anyhow::Result<()> {
    let mut stdin = tokio::io::stdin();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        let n = stdin.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        to.write_all(&buf[..n]).await?;
        to.flush().await?;
    }
    to.shutdown().await?;
    Ok(())
}

/// A terminal put in raw mode; restored when dropped.
#[derive(Debug)]
pub struct RawTerminal {
    saved: Termios,
}

impl RawTerminal {
    /// Raw mode on stdin when it is a terminal; `None` otherwise.
    pub fn stdin() -> Option<RawTerminal> {
        let fd = std::io::stdin();
        let saved = termios::tcgetattr(fd.as_fd()).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd.as_fd(), SetArg::TCSANOW, &raw).ok()?;
        Some(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, &self.saved);
    }
}

nix::ioctl_read_bad!(tiocgwinsz, nix::libc::TIOCGWINSZ, nix::libc::winsize);

/// The size (rows, columns) of the terminal on `fd`, if it is one.
pub fn terminal_size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    use std::os::fd::AsRawFd;
    let mut ws = nix::libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into the struct we pass; fd is a live descriptor.
    unsafe { tiocgwinsz(fd.as_raw_fd(), &mut ws) }.ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_api::stream::frame_header;

    #[test]
    fn demux_splits_frames_across_chunks() {
        let mut wire = Vec::new();
        wire.extend_from_slice(&frame_header(1, 6));
        wire.extend_from_slice(b"hello\n");
        wire.extend_from_slice(&frame_header(2, 4));
        wire.extend_from_slice(b"err\n");
        wire.extend_from_slice(&frame_header(1, 3));
        wire.extend_from_slice(b"end");
        for cut in 0..wire.len() {
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let mut d = Demux::default();
            d.feed(&wire[..cut], &mut out, &mut err).unwrap();
            d.feed(&wire[cut..], &mut out, &mut err).unwrap();
            assert_eq!(out, b"hello\nend", "cut at {cut}");
            assert_eq!(err, b"err\n", "cut at {cut}");
        }
        let e = Demux::default()
            .feed(
                &[9, 0, 0, 0, 0, 0, 0, 1, b'x'],
                &mut Vec::new(),
                &mut Vec::new(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("stream"), "{e}");
    }
}

//! A container's terminal: the OCI runtime makes the pty and hands its master over a Unix
//! socket (`--console-socket`) as an SCM_RIGHTS message; the shim keeps it, reads the output
//! from it, writes the input to it and sets its size.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

/// Accepts the runtime's connection on `listener` and receives the pty master it sends
/// (waiting at most `timeout`).
pub fn receive_master(listener: &UnixListener, timeout: Duration) -> io::Result<OwnedFd> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut p = libc::pollfd {
        fd: listener.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the length of the call.
    let ready = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    if ready <= 0 {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the runtime sent no terminal",
        ));
    }
    let (conn, _) = listener.accept()?;
    let mut buf = [0u8; 4096];
    let mut iov = [io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(io::Error::from)?;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            let mut owned: Vec<OwnedFd> = fds
                .into_iter()
                // SAFETY: the kernel installed these descriptors in this process for us.
                .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
                .collect();
            if let Some(fd) = owned.pop() {
                return Ok(fd);
            }
        }
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidData,
        "the runtime's console message carried no descriptor",
    ))
}

/// Sets the terminal's size.
pub fn set_size(master: BorrowedFd<'_>, rows: u16, cols: u16) -> io::Result<()> {
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which lives for the call.
    let r = unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn a_descriptor_sent_over_the_socket_arrives_and_a_pty_takes_its_size() {
        use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.sock");
        let listener = UnixListener::bind(&path).unwrap();
        // A real pty, as the runtime would make.
        let pty = nix::pty::openpty(None, None).unwrap();
        let master = pty.master;
        let sender = std::thread::spawn({
            let path = path.clone();
            let fd = master.as_raw_fd();
            move || {
                let s = std::os::unix::net::UnixStream::connect(&path).unwrap();
                let iov = [io::IoSlice::new(b"/dev/pts/x")];
                let fds = [fd];
                sendmsg::<()>(
                    s.as_raw_fd(),
                    &iov,
                    &[ControlMessage::ScmRights(&fds)],
                    MsgFlags::empty(),
                    None,
                )
                .unwrap();
            }
        });
        let got = receive_master(&listener, Duration::from_secs(5)).unwrap();
        sender.join().unwrap();
        set_size(got.as_fd(), 40, 100).unwrap();
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes one winsize into ws, which lives for the call.
        let r = unsafe { libc::ioctl(pty.slave.as_raw_fd(), libc::TIOCGWINSZ, &mut ws) };
        assert_eq!(r, 0);
        assert_eq!((ws.ws_row, ws.ws_col), (40, 100));
        let quiet = UnixListener::bind(dir.path().join("quiet.sock")).unwrap();
        let e = receive_master(&quiet, Duration::from_millis(50)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}

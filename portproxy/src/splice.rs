//! Zero-copy TCP relay: socket -> pipe -> socket with splice(2).
//!
//! Pipes are borrowed from a small per-thread pool only while bytes are in flight, so an idle
//! connection holds two sockets and no pipe, and a busy one holds at most one pipe per direction:
//! memory per connection is bounded by the pipe size. Taking a pipe from a thread-local pool needs
//! no lock.

use std::cell::RefCell;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use nix::unistd::pipe2;
use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

use crate::stats::Counters;

/// Bytes requested per pipe and moved per splice call.
const PIPE_BYTES: usize = 256 * 1024;
/// Pipes kept for reuse per worker thread; more are closed when given back.
const POOL_MAX: usize = 64;

#[derive(Debug)]
struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // A larger pipe means fewer syscalls per byte; the kernel may refuse (pipe-user-pages
        // limits), in which case the default 64 KiB pipe still works.
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE_BYTES as i32));
        Ok(Pipe { read, write })
    }
}

thread_local! {
    static POOL: RefCell<Vec<Pipe>> = const { RefCell::new(Vec::new()) };
}

/// An empty pipe, from the pool when it has one.
fn take_pipe() -> io::Result<Pipe> {
    match POOL.with_borrow_mut(Vec::pop) {
        Some(p) => Ok(p),
        None => Pipe::new(),
    }
}

/// Returns an empty pipe to the pool. Never call it with bytes left in the pipe.
fn give_pipe(p: Pipe) {
    POOL.with_borrow_mut(|pool| {
        if pool.len() < POOL_MAX {
            pool.push(p);
        }
    });
}

fn splice_once(from: impl AsFd, to: impl AsFd, len: usize) -> io::Result<usize> {
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    Ok(splice(from, None, to, None, len, flags)?)
}

/// Moves bytes from `src` to `dst` until `src` reaches end of stream, then half-closes `dst`.
///
/// `peer_done` is set by the pump of the other direction when it has finished: then both sockets
/// are about to be closed with empty receive queues, and close() itself sends the FIN, so the
/// shutdown(2) is skipped.
async fn pump(
    src: &TcpStream,
    dst: &TcpStream,
    moved: &AtomicU64,
    done: &AtomicBool,
    peer_done: &AtomicBool,
) -> io::Result<()> {
    loop {
        src.readable().await?;
        let pipe = take_pipe()?;
        let n = match src.try_io(Interest::READABLE, || {
            splice_once(src, &pipe.write, PIPE_BYTES)
        }) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                give_pipe(pipe);
                continue;
            }
            Err(e) => return Err(e),
        };
        if n == 0 {
            give_pipe(pipe);
            done.store(true, Ordering::Relaxed);
            if peer_done.load(Ordering::Relaxed) {
                return Ok(());
            }
            // Propagate the half-close: the peer sees EOF but may keep sending the other way.
            return SockRef::from(dst).shutdown(std::net::Shutdown::Write);
        }
        let mut left = n;
        while left > 0 {
            // On error the pipe still holds bytes: it is dropped (closed), never pooled.
            left -= dst
                .async_io(Interest::WRITABLE, || splice_once(&pipe.read, dst, left))
                .await?;
        }
        give_pipe(pipe);
        Counters::add(moved, n as u64);
        // Readiness waits do not count against tokio's cooperative budget: without this, a
        // connection that always has data would never let the (single) runtime thread go.
        tokio::task::consume_budget().await;
    }
}

/// Relays both directions between `client` and `upstream` until both have closed.
///
/// A reset (or any error) on one side aborts both directions and resets the other side, so a client
/// or a container that aborts is seen as aborting on the far end too.
pub(crate) async fn relay(
    client: TcpStream,
    upstream: TcpStream,
    counters: &Counters,
) -> io::Result<()> {
    let (up_done, down_done) = (AtomicBool::new(false), AtomicBool::new(false));
    let res = tokio::try_join!(
        pump(
            &client,
            &upstream,
            &counters.bytes_to_container,
            &up_done,
            &down_done
        ),
        pump(
            &upstream,
            &client,
            &counters.bytes_from_container,
            &down_done,
            &up_done
        ),
    );
    if res.is_err() {
        for s in [&client, &upstream] {
            let _ = SockRef::from(s).set_linger(Some(Duration::ZERO));
        }
    }
    res.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A client <-> relay <-> server chain on loopback, returning (client, server) ends.
    async fn chain(counters: std::sync::Arc<Counters>) -> (TcpStream, TcpStream) {
        let front = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let back = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (fa, ba) = (front.local_addr().unwrap(), back.local_addr().unwrap());
        tokio::spawn(async move {
            let (c, _) = front.accept().await.unwrap();
            let u = TcpStream::connect(ba).await.unwrap();
            let _ = relay(c, u, &counters).await;
        });
        let client = TcpStream::connect(fa).await.unwrap();
        let (server, _) = back.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn relays_bytes_and_half_close_both_ways() {
        let counters = std::sync::Arc::new(Counters::default());
        let (mut client, mut server) = chain(counters.clone()).await;
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7) as u8).collect();
        let sent = payload.clone();
        let writer = tokio::spawn(async move {
            client.write_all(&sent).await.unwrap();
            client.shutdown().await.unwrap(); // half-close: still reads the reply
            let mut reply = Vec::new();
            client.read_to_end(&mut reply).await.unwrap();
            reply
        });
        let mut got = Vec::new();
        server.read_to_end(&mut got).await.unwrap(); // EOF arrives only through the half-close
        assert_eq!(got, payload);
        server.write_all(b"done").await.unwrap();
        server.shutdown().await.unwrap();
        assert_eq!(writer.await.unwrap(), b"done");
        let s = counters.snapshot();
        assert_eq!(s.bytes_to_container, 3_000_000);
        assert_eq!(s.bytes_from_container, 4);
    }

    #[tokio::test]
    async fn reset_is_propagated() {
        let counters = std::sync::Arc::new(Counters::default());
        let (client, mut server) = chain(counters).await;
        SockRef::from(&client)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(client); // RST
        let mut buf = [0u8; 16];
        let r = tokio::time::timeout(Duration::from_secs(5), server.read(&mut buf))
            .await
            .expect("server side was not closed");
        assert_eq!(
            r.map_err(|e| e.kind()),
            Err(io::ErrorKind::ConnectionReset),
            "the reset did not reach the server side"
        );
    }
}

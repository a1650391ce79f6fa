//! Datagrams in batches: one `recvmmsg` takes up to [`BATCH`] queued queries and one `sendmmsg`
//! sends their replies, so a busy resolver pays two system calls per batch instead of two per
//! query. Buffers and headers are allocated once per socket and reused.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::AsRawFd;

use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// Datagrams per system call.
pub const BATCH: usize = 16;
/// The largest query taken; longer ones are cut and so answered FORMERR. Queries are small:
/// one question and at most an OPT record.
pub const QUERY_MAX: usize = 2048;

/// One socket's receive and send state.
pub struct Batch {
    bufs: Box<[[u8; QUERY_MAX]; BATCH]>,
    lens: [usize; BATCH],
    peers: [Option<SockaddrStorage>; BATCH],
    count: usize,
    /// Separate headers for each direction: sendmmsg points the name fields at the caller's
    /// addresses, which recvmmsg would then write through.
    recv_headers: Headers,
    send_headers: Headers,
}

/// The mmsghdr array the system calls fill in.
struct Headers(MultiHeaders<SockaddrStorage>);

// SAFETY: the raw pointers inside point into the headers' own boxed storage and, during one
// recvmmsg/sendmmsg call, into buffers borrowed for that call; they are rewritten before every
// call and never dereferenced between calls, so moving the whole to another thread (a tokio
// task resuming elsewhere) shares nothing.
unsafe impl Send for Headers {}

impl Headers {
    /// The headers for one call (a method, so closures capture the Send wrapper, not the field).
    fn get(&mut self) -> &mut MultiHeaders<SockaddrStorage> {
        &mut self.0
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batch").field("count", &self.count).finish()
    }
}

impl Default for Batch {
    fn default() -> Self {
        Batch {
            bufs: Box::new([[0; QUERY_MAX]; BATCH]),
            lens: [0; BATCH],
            peers: [None; BATCH],
            count: 0,
            recv_headers: Headers(MultiHeaders::preallocate(BATCH, None)),
            send_headers: Headers(MultiHeaders::preallocate(BATCH, None)),
        }
    }
}

fn nix_io(e: nix::errno::Errno) -> io::Error {
    io::Error::from_raw_os_error(e as i32)
}

impl Batch {
    /// Waits for datagrams and takes as many as are queued, up to [`BATCH`].
    pub async fn recv(&mut self, sock: &UdpSocket) -> io::Result<usize> {
        let fd = sock.as_raw_fd();
        let Batch {
            bufs,
            lens,
            peers,
            recv_headers: headers,
            ..
        } = self;
        let n = sock
            .async_io(Interest::READABLE, || {
                let mut it = bufs.iter_mut();
                let mut slices: [[IoSliceMut<'_>; 1]; BATCH] =
                    std::array::from_fn(|_| [IoSliceMut::new(it.next().expect("BATCH buffers"))]);
                let got = recvmmsg(
                    fd,
                    headers.get(),
                    slices.iter_mut(),
                    MsgFlags::MSG_DONTWAIT,
                    None,
                )
                .map_err(nix_io)?;
                let mut n = 0;
                for msg in got {
                    lens[n] = if msg.flags.contains(MsgFlags::MSG_TRUNC) {
                        // Cut short: what is left is not the query the client sent.
                        msg.bytes.min(QUERY_MAX).min(11)
                    } else {
                        msg.bytes
                    };
                    peers[n] = msg.address;
                    n += 1;
                }
                Ok(n)
            })
            .await?;
        self.count = n;
        Ok(n)
    }

    /// Query `i` of the batch and who sent it.
    pub fn get(&self, i: usize) -> (&[u8], Option<SockaddrStorage>) {
        (&self.bufs[i][..self.lens[i]], self.peers[i])
    }

    /// Sends reply `i` of `outs` to `dest[i]` for every `i` that has a destination, in as few
    /// system calls as the socket allows, waiting for room when its buffer is full. A reply the
    /// kernel refuses (the client's address gone, say) is skipped.
    pub async fn send(
        &mut self,
        sock: &UdpSocket,
        outs: &[Vec<u8>],
        dest: &[Option<SockaddrStorage>; BATCH],
    ) {
        let fd = sock.as_raw_fd();
        let mut idx = [0usize; BATCH];
        let mut m = 0;
        for (i, d) in dest.iter().enumerate() {
            if d.is_some() {
                idx[m] = i;
                m += 1;
            }
        }
        let mut done = 0;
        while done < m {
            let pending = &idx[done..m];
            let headers = &mut self.send_headers;
            let sent = sock
                .async_io(Interest::WRITABLE, || {
                    let slices: [[IoSlice<'_>; 1]; BATCH] = std::array::from_fn(|j| {
                        [IoSlice::new(pending.get(j).map_or(&[][..], |&i| &outs[i]))]
                    });
                    let addrs: [Option<SockaddrStorage>; BATCH] =
                        std::array::from_fn(|j| pending.get(j).and_then(|&i| dest[i]));
                    let n = pending.len();
                    let r = sendmmsg(
                        fd,
                        headers.get(),
                        slices[..n].iter(),
                        &addrs[..n],
                        [],
                        MsgFlags::MSG_DONTWAIT,
                    )
                    .map_err(nix_io)?;
                    Ok(r.count())
                })
                .await;
            done += match sent {
                Ok(n) => n.max(1),
                Err(e) => {
                    tracing::debug!("DNS reply not sent: {e}");
                    1
                }
            };
        }
    }
}

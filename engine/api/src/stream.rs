//! Docker's stream framing, as the attach, logs and exec endpoints send a container's output
//! when it has no TTY: one byte for the stream, three zeros, a big-endian 32-bit length, the
//! bytes. Pure.

/// Stream numbers of the framing.
pub const STDIN: u8 = 0;
/// The container's stdout (and a TTY's output).
pub const STDOUT: u8 = 1;
/// The container's stderr.
pub const STDERR: u8 = 2;

/// The 8-byte header of a frame of `len` bytes on `stream`.
pub fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let n = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream, 0, 0, 0, n[0], n[1], n[2], n[3]]
}

/// The first whole frame at the start of `buf`: its stream, and the range of its payload.
/// `None` while more bytes are needed. A header with another stream number or non-zero
/// padding is an error naming it.
pub fn next_frame(buf: &[u8]) -> Result<Option<(u8, std::ops::Range<usize>)>, String> {
    if buf.len() < 8 {
        return Ok(None);
    }
    if buf[0] > STDERR || buf[1..4] != [0, 0, 0] {
        return Err(format!(
            "bad stream header {:02x?} (valid: stream 0, 1 or 2, three zero bytes, a length)",
            &buf[..8]
        ));
    }
    let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
    if buf.len() - 8 < len {
        return Ok(None);
    }
    Ok(Some((buf[0], 8..8 + len)))
}

/// Splits a whole framed stream into stdout and stderr (what an `exec` printed).
pub fn demux(mut buf: &[u8]) -> Result<(Vec<u8>, Vec<u8>), String> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while !buf.is_empty() {
        match next_frame(buf)? {
            Some((stream, range)) => {
                let end = range.end;
                if stream == STDERR {
                    err.extend_from_slice(&buf[range]);
                } else {
                    out.extend_from_slice(&buf[range]);
                }
                buf = &buf[end..];
            }
            None => return Err(format!("a truncated frame of {} bytes", buf.len())),
        }
    }
    Ok((out, err))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_as_docker_frames_them() {
        let mut buf = Vec::new();
        buf.extend_from_slice(&frame_header(STDOUT, 3));
        buf.extend_from_slice(b"out");
        buf.extend_from_slice(&frame_header(STDERR, 2));
        buf.extend_from_slice(b"er");
        assert_eq!(&buf[..8], &[1, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(demux(&buf).unwrap(), (b"out".to_vec(), b"er".to_vec()));
        assert_eq!(next_frame(&buf[..10]).unwrap(), None);
        assert!(demux(&buf[..10]).is_err());
        assert!(next_frame(&[7, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = demux(&bytes);
        }
    }
}

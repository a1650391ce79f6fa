//! Any bytes as a frame from a container on the userspace network stack: classifying never
//! panics, a UDP datagram the fast path would forward reads back the same once the stack writes
//! it toward the container (from an address the stack could answer from), a refused SYN's reset parses as a reset, and `slirp:` options
//! that parse print back to themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netcore::usernet::frame::{self, Frame};
use netcore::usernet::Options;

const C: frame::Mac = [2, 0, 0, 0, 0, 1];
const G: frame::Mac = [0x52, 0x55, 10, 0, 2, 2];

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Some(Ok(o)) = Options::from_mode(text) {
            assert_eq!(Options::from_mode(&o.to_string()), Some(Ok(o.clone())));
            let _ = o.layout();
        }
    }
    let Ok((_, f)) = frame::classify(data) else {
        return;
    };
    match f {
        Frame::Udp { src, dst, payload } => {
            let body = &data[payload];
            let off = frame::udp_payload_offset(&src);
            let mut buf = vec![0u8; off + body.len()];
            buf[off..].copy_from_slice(body);
            // The reply direction: from where it was sent to the container.
            if let Some(n) = frame::write_udp(&mut buf, (G, C), dst, src, body.len()) {
                let (_, back) = frame::classify(&buf[..n]).expect("the stack's own frame parses");
                // The stack never answers from such an address (the policy refuses them), and
                // frames from them are not taken back.
                if !frame::usable_source(dst.ip()) {
                    assert_eq!(back, Frame::Unsupported);
                    return;
                }
                let Frame::Udp { src: s, dst: d, payload } = back else {
                    panic!("wrote UDP, read {back:?}")
                };
                assert_eq!((s, d), (dst, src));
                assert_eq!(&buf[payload], body);
            }
        }
        Frame::Tcp(seg) if seg.syn => {
            let mut out = Vec::new();
            if frame::usable_source(seg.dst.ip()) && frame::write_rst(&mut out, (G, C), &seg) {
                let (_, back) = frame::classify(&out).expect("the stack's own reset parses");
                assert!(matches!(back, Frame::Tcp(r) if r.rst && r.src == seg.dst && r.dst == seg.src));
            }
        }
        Frame::Echo { src, dst, ident, seq, payload } => {
            let mut out = Vec::new();
            let _ = frame::write_echo_reply(&mut out, (G, C), dst, src, ident, seq, &data[payload]);
        }
        _ => {}
    }
});

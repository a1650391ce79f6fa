//! Helpers for the unprivileged loopback tests that drive the `berth-proxy` binary.

use std::io::{Read, Write};
use std::net::TcpListener;

/// A blocking TCP echo server on 127.0.0.1, a thread per connection; returns its port.
pub fn echo_backend() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for mut s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    let _ = s.write_all(&buf[..n]);
                }
            });
        }
    });
    port
}

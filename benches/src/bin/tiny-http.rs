//! A minimal HTTP/1.1 server for the comparison benchmarks: answers every request with a fixed
//! 200, honouring `Connection: close`, so wrk measures the path in front of it and not the server.
//!
//! Usage: tiny-http ADDR (e.g. `[::]:80`).

use anyhow::{Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const BODY: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain\r\n\r\nhello\n";
const BODY_CLOSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nhello\n";

async fn serve(mut s: TcpStream) -> std::io::Result<()> {
    let _ = s.set_nodelay(true);
    let mut buf = vec![0u8; 8192];
    let mut have = 0;
    loop {
        let n = s.read(&mut buf[have..]).await?;
        if n == 0 {
            return Ok(());
        }
        have += n;
        while let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = &buf[..end];
            let close = head
                .split(|&b| b == b'\n')
                .any(|l| l.to_ascii_lowercase().starts_with(b"connection: close"));
            s.write_all(if close { BODY_CLOSE } else { BODY }).await?;
            if close {
                return s.shutdown().await;
            }
            buf.copy_within(end + 4..have, 0);
            have -= end + 4;
        }
        if have == buf.len() {
            return Ok(()); // header too large: drop the client
        }
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let addr = std::env::args().nth(1).unwrap_or_else(|| "[::]:80".into());
    let l = TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    loop {
        let (s, _) = l.accept().await?;
        tokio::spawn(serve(s));
    }
}

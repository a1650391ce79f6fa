//! `api-load`: N concurrent Docker API clients on a Unix socket, each on its own keep-alive
//! connection, alternating `GET /containers/json` (ps) and `GET /containers/NAME/json`
//! (inspect) for a fixed time, at API version 1.41 (the newest Debian's dockerd 20.10 speaks). Prints JSON: requests per second, p50 and p99 latency, errors.
//! The same program loads berthd and dockerd in api-compare.sh.

use std::time::{Duration, Instant};

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

struct Args {
    socket: String,
    clients: usize,
    seconds: u64,
    container: String,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        socket: String::new(),
        clients: 100,
        seconds: 10,
        container: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it.next().with_context(|| format!("{k} needs a value"))?;
        match k.as_str() {
            "--socket" => a.socket = v,
            "--clients" => a.clients = v.parse().context("--clients: a number")?,
            "--seconds" => a.seconds = v.parse().context("--seconds: a number")?,
            "--container" => a.container = v,
            _ => anyhow::bail!(
                "unknown option {k} (valid: --socket --clients --seconds --container)"
            ),
        }
    }
    anyhow::ensure!(
        !a.socket.is_empty() && !a.container.is_empty(),
        "--socket and --container are required"
    );
    Ok(a)
}

async fn client(
    socket: String,
    container: String,
    until: Instant,
) -> anyhow::Result<(Vec<u32>, u64)> {
    let stream = tokio::net::UnixStream::connect(&socket)
        .await
        .with_context(|| format!("connecting to {socket}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let paths = [
        "/v1.41/containers/json".to_string(),
        format!("/v1.41/containers/{container}/json"),
    ];
    let mut lat = Vec::new();
    let mut errors = 0u64;
    let mut i = 0usize;
    while Instant::now() < until {
        let req = hyper::Request::get(&paths[i % 2])
            .header("Host", "docker")
            .body(Empty::<Bytes>::new())?;
        i += 1;
        let t0 = Instant::now();
        send.ready().await?;
        let resp = send.send_request(req).await?;
        let ok = resp.status().is_success();
        let _ = resp.into_body().collect().await?;
        lat.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if !ok {
            errors += 1;
        }
    }
    Ok((lat, errors))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let start = Instant::now();
    let until = start + Duration::from_secs(a.seconds);
    let mut tasks = Vec::new();
    for _ in 0..a.clients {
        tasks.push(tokio::spawn(client(
            a.socket.clone(),
            a.container.clone(),
            until,
        )));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        let (lat, e) = t.await??;
        all.extend(lat);
        errors += e;
    }
    let elapsed = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return f64::NAN;
        }
        all[((all.len() - 1) as f64 * p).round() as usize] as f64 / 1000.0
    };
    println!(
        "{{\"requests\": {}, \"errors\": {}, \"rps\": {:.1}, \"p50_ms\": {:.2}, \"p99_ms\": {:.2}}}",
        all.len(),
        errors,
        all.len() as f64 / elapsed,
        pct(0.50),
        pct(0.99)
    );
    Ok(())
}

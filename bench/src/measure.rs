//! Running the load generators and reading their figures: `wrk`,
//! `redis-benchmark` and `pgbench` are run as they are and their output is
//! parsed; RSS comes from `/proc/{pid}/status`.

use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;

/// Throughput and latency of one load run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Load {
    /// Completed requests per second.
    pub requests_per_sec: f64,
    /// Median latency, in ms.
    pub p50_ms: f64,
    /// 99th-percentile latency, in ms.
    pub p99_ms: f64,
    /// Responses that were not 2xx or 3xx, plus socket errors.
    pub errors: u64,
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The resident set size of `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .context("no VmRSS")?
        .parse()?;
    Ok(kib * 1024)
}

/// One HTTP/1.1 request; returns the status.
async fn request(method: &str, url: &str, body: &str) -> anyhow::Result<u16> {
    let uri: hyper::Uri = url.parse()?;
    let authority = uri.authority().context("no authority")?.to_string();
    let stream = tokio::net::TcpStream::connect(&authority).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header("host", authority)
        .body(Full::new(Bytes::from(body.to_owned())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    response.into_body().collect().await?;
    Ok(status)
}

/// Polls `GET url` until it answers `status`.
pub async fn wait_for_http(url: &str, status: u16, timeout: Duration) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let answer = tokio::time::timeout(Duration::from_secs(5), request("GET", url, "")).await;
        if matches!(answer, Ok(Ok(s)) if s == status) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!("{url} did not answer {status} within {timeout:?}: last {answer:?}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `POST url` with a JSON body; fails unless it answers 2xx.
pub async fn http_post(url: &str, body: &str) -> anyhow::Result<()> {
    let status = request("POST", url, body).await?;
    if !(200..300).contains(&status) {
        bail!("POST {url} answered {status}");
    }
    Ok(())
}

/// Runs `wrk` against `url` with `connections` connections for `duration`.
pub fn wrk(url: &str, connections: u32, duration: Duration) -> anyhow::Result<Load> {
    let threads = connections.clamp(1, 2);
    eprintln!("   wrk -c{connections} {url}");
    let out = Command::new("wrk")
        .args([
            "--latency",
            &format!("-t{threads}"),
            &format!("-c{connections}"),
            &format!("-d{}s", duration.as_secs().max(1)),
            url,
        ])
        .output()
        .context("running wrk (Debian: apt-get install wrk)")?;
    if !out.status.success() {
        bail!("wrk failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&String::from_utf8_lossy(&out.stdout))
}

/// Reads requests/s, the 50% and 99% latencies and the error counts from
/// `wrk --latency` output.
pub fn parse_wrk(text: &str) -> anyhow::Result<Load> {
    let mut load = Load {
        requests_per_sec: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        errors: 0,
    };
    for line in text.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("Requests/sec:") => {
                load.requests_per_sec = words.next().context("no figure")?.parse()?;
            }
            Some("50%") => load.p50_ms = latency_ms(words.next().context("no figure")?)?,
            Some("99%") => load.p99_ms = latency_ms(words.next().context("no figure")?)?,
            Some("Non-2xx") => {
                load.errors += line.rsplit(' ').next().unwrap_or("0").parse::<u64>()?;
            }
            Some("Socket") => {
                // Socket errors: connect 0, read 0, write 0, timeout 0
                load.errors += line
                    .split(',')
                    .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                    .sum::<u64>();
            }
            _ => {}
        }
    }
    if load.requests_per_sec == 0.0 {
        bail!("no Requests/sec in wrk output:\n{text}");
    }
    Ok(load)
}

fn latency_ms(figure: &str) -> anyhow::Result<f64> {
    let split = figure
        .find(|c: char| c.is_ascii_alphabetic())
        .context("latency without unit")?;
    let (number, unit) = figure.split_at(split);
    let value: f64 = number.parse()?;
    Ok(match unit {
        "us" => value / 1000.0,
        "ms" => value,
        "s" => value * 1000.0,
        "m" => value * 60_000.0,
        _ => bail!("unknown latency unit in {figure}"),
    })
}

/// `redis-benchmark -t incr` at `connections`; returns requests per second.
pub fn redis_benchmark(url: &str, connections: u32) -> anyhow::Result<f64> {
    let (host, port) = redis_host_port(url);
    eprintln!("   redis-benchmark -t incr -c {connections}");
    let out = Command::new("redis-benchmark")
        .args([
            "-h",
            &host,
            "-p",
            &port,
            "-t",
            "incr",
            "-c",
            &connections.to_string(),
            "-n",
            "200000",
            "-q",
        ])
        .output()
        .context("running redis-benchmark")?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "INCR: 98039.22 requests per second, p50=0.167 msec"; with -q the
    // progress goes to the same line after carriage returns.
    text.rsplit('\r')
        .filter_map(|part| part.trim().strip_prefix("INCR:"))
        .find_map(|rest| rest.split_whitespace().next()?.parse::<f64>().ok())
        .with_context(|| format!("no INCR figure in redis-benchmark output: {text}"))
}

fn redis_host_port(url: &str) -> (String, String) {
    let rest = url.trim_start_matches("redis://");
    let rest = rest.rsplit('@').next().unwrap_or(rest);
    let hostport = rest.split('/').next().unwrap_or("127.0.0.1:6379");
    match hostport.rsplit_once(':') {
        Some((h, p)) => (h.to_owned(), p.to_owned()),
        None => (hostport.to_owned(), "6379".to_owned()),
    }
}

/// Deletes `key` from the Redis at `url` (best effort).
pub fn redis_del(url: &str, key: &str) {
    let _ = Command::new("redis-cli")
        .args(["-u", url, "DEL", key])
        .output();
}

/// Drops and creates database `name` on the server of `url`; returns the
/// new database's URL.
pub fn recreate_database(url: &str, name: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .args([
            "-q",
            url,
            "-c",
            &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            "-c",
            &format!("CREATE DATABASE {name}"),
        ])
        .output()
        .context("running psql")?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let base = url.rsplit_once('/').map_or(url, |(b, _)| b);
    Ok(format!("{base}/{name}"))
}

/// `pgbench` running `script` at `connections` for `duration`; returns
/// transactions (here: selects) per second.
pub fn pgbench(
    url: &str,
    script: &std::path::Path,
    connections: u32,
    duration: Duration,
) -> anyhow::Result<f64> {
    eprintln!("   pgbench -c {connections}");
    let out = Command::new("pgbench")
        .args([
            "-n",
            "-c",
            &connections.to_string(),
            "-j",
            "2",
            "-T",
            &duration.as_secs().max(1).to_string(),
            "-f",
        ])
        .arg(script)
        .arg(url)
        .output()
        .context("running pgbench")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .with_context(|| {
            format!(
                "no tps in pgbench output: {text}{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn wrk_output_is_read_with_its_units() {
        let text = "Running 10s test @ http://127.0.0.1:8080/\n  2 threads and 32 connections\n  Latency Distribution\n     50%  95.00us\n     75%  1.20ms\n     90%    2.00ms\n     99%    4.30ms\n  149174 requests in 10.00s, 12.52MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 5\nRequests/sec:  14917.40\nTransfer/sec:      1.25MB\n";
        let load = parse_wrk(text).unwrap();
        assert!((load.requests_per_sec - 14917.40).abs() < 1e-6);
        assert!((load.p50_ms - 0.095).abs() < 1e-9);
        assert!((load.p99_ms - 4.3).abs() < 1e-9);
        assert_eq!(load.errors, 8);
    }

    #[test]
    fn wrk_output_without_a_rate_is_an_error() {
        assert!(parse_wrk("unable to connect to 127.0.0.1:1 Connection refused").is_err());
    }

    #[test]
    fn redis_urls_give_host_and_port() {
        assert_eq!(
            redis_host_port("redis://user:pw@10.0.0.1:6380/2"),
            ("10.0.0.1".to_owned(), "6380".to_owned())
        );
        assert_eq!(
            redis_host_port("redis://127.0.0.1"),
            ("127.0.0.1".to_owned(), "6379".to_owned())
        );
    }
}

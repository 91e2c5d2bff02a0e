//! The access log: one JSON line per request on stdout, with the fields the SPEC lists
//! (and one more when a WebSocket tunnel closes, with `tunnel` set).
//!
//! Written the way nginx's `access_log ... buffer=64k flush=...` is: a request formats its
//! line into a buffer of its worker's own (a shard: an uncontended lock, never shared
//! between workers on the request path) and goes on. A full buffer (64 KiB, a few hundred
//! lines) is handed to the writer thread; the writer also sweeps every shard each 100 ms,
//! so a line is on stdout within about that. No syscall and no thread wake-up per line.
//! Bounded: when the writer falls behind (a stdout nobody reads fast enough), a full
//! buffer is dropped and its lines counted in `warden_telemetry_dropped_total`.

use std::io::Write;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use serde::Serialize;

use warden_policy::refusal::Fault;

use crate::shards::Sharded;
use crate::telemetry::outcome::Outcome;

/// A buffer this full goes to the writer.
const BUFFER: usize = 64 << 10;
/// The longest a line waits in a buffer.
const INTERVAL: Duration = Duration::from_millis(100);
/// Full buffers waiting for the writer (4 MiB); past this they are dropped.
const QUEUE: usize = 64;

pub(super) struct Record {
    pub out: Outcome,
    pub status: StatusCode,
    pub latency: Duration,
    pub bytes: Option<u64>,
    pub at: SystemTime,
}

/// Lines formatted and not yet handed to the writer.
#[derive(Default)]
struct Lines {
    bytes: Vec<u8>,
    count: u64,
}

/// What the writer thread is handed.
enum Item {
    Full(Lines),
    /// Write out every shard, then answer (at shutdown).
    Flush(std::sync::mpsc::Sender<()>),
}

pub struct AccessLog {
    shards: Arc<Sharded<Lines>>,
    tx: SyncSender<Item>,
    dropped: Counter,
}

impl AccessLog {
    /// Starts the writer thread.
    pub(super) fn start(dropped: Counter, written: Counter) -> AccessLog {
        let shards: Arc<Sharded<Lines>> = Arc::default();
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let swept = shards.clone();
        // A thread, not a task: a blocked stdout must not stall a runtime worker.
        std::thread::Builder::new().name("access-log".into()).spawn(move || write_lines(&rx, &swept, &written)).ok();
        AccessLog { shards, tx, dropped }
    }

    /// Formats `r`'s line into this worker's buffer.
    pub(super) fn write(&self, r: &Record) {
        let mut lines = self.shards.mine();
        if serde_json::to_writer(&mut lines.bytes, &Line::of(r)).is_err() {
            return;
        }
        lines.bytes.push(b'\n');
        lines.count += 1;
        if lines.bytes.len() < BUFFER {
            return;
        }
        let full = std::mem::replace(&mut *lines, Lines { bytes: Vec::with_capacity(BUFFER + 1024), count: 0 });
        drop(lines);
        if let Err(TrySendError::Full(Item::Full(l)) | TrySendError::Disconnected(Item::Full(l))) =
            self.tx.try_send(Item::Full(full))
        {
            self.dropped.inc_by(l.count);
        }
    }

    /// Blocks until every line formatted so far is written, or `within` passes (at
    /// shutdown, so the last requests' and tunnels' lines are not lost).
    pub(super) fn flush(&self, within: Duration) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.tx.send(Item::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(within);
        }
    }
}

/// The writer thread: full buffers as they come, every shard each `INTERVAL`.
fn write_lines(rx: &Receiver<Item>, shards: &Sharded<Lines>, written: &Counter) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    loop {
        match rx.recv_timeout(INTERVAL) {
            Ok(Item::Full(lines)) => {
                put(&mut out, lines, written);
                let _ = out.flush();
            }
            Ok(Item::Flush(done)) => {
                sweep(&mut out, shards, written);
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => sweep(&mut out, shards, written),
            Err(RecvTimeoutError::Disconnected) => return sweep(&mut out, shards, written),
        }
    }
}

fn put(out: &mut impl Write, lines: Lines, written: &Counter) {
    if !lines.bytes.is_empty() {
        let _ = out.write_all(&lines.bytes);
        written.inc_by(lines.count);
    }
}

/// Writes out what every shard holds.
fn sweep(out: &mut impl Write, shards: &Sharded<Lines>, written: &Counter) {
    for mut lines in shards.each() {
        let taken = std::mem::take(&mut *lines);
        drop(lines);
        put(out, taken, written);
    }
    let _ = out.flush();
}

/// One line, serialized straight into the buffer (no intermediate JSON value).
#[derive(Serialize)]
struct Line<'a> {
    time: Rfc3339Millis,
    request_id: Option<&'a str>,
    request_id_from_client: bool,
    trace_id: Option<&'a str>,
    client_ip: Option<IpAddr>,
    client_id: Option<&'a str>,
    method: &'a str,
    host: &'a str,
    path: &'a str,
    route: Option<&'a str>,
    status: u16,
    grpc_status: Option<u8>,
    decision: &'static str,
    rule: Option<&'a str>,
    code: Option<&'static str>,
    fault: Option<&'static str>,
    bytes: Option<u64>,
    latency_ms: f64,
    upstream_ms: Option<f64>,
    attempts: u32,
    /// A tunnel's close: `latency_ms` is how long it was open, `bytes` what the client got.
    #[serde(skip_serializing_if = "Option::is_none")]
    tunnel: Option<Tunnel>,
    /// Where a rollout's candidate in shadow decided otherwise (`decision` is then
    /// `shadow_deny` or `shadow_allow`; `status`, `rule` and `code` are what was enforced).
    #[serde(skip_serializing_if = "Option::is_none")]
    shadow: Option<Shadow<'a>>,
}

#[derive(Serialize)]
struct Shadow<'a> {
    version: u64,
    /// The route the candidate took.
    route: Option<&'a str>,
    rule: &'a str,
    code: &'static str,
    /// What the candidate would have answered (`shadow_deny`).
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
}

#[derive(Serialize)]
struct Tunnel {
    closed: &'static str,
    bytes_to_app: u64,
    bytes_to_client: u64,
}

impl<'a> Line<'a> {
    fn of(r: &'a Record) -> Line<'a> {
        let o = &r.out;
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        Line {
            time: Rfc3339Millis(r.at),
            request_id: o.request_id.as_ref().and_then(|v| v.to_str().ok()),
            request_id_from_client: o.request_id_from_client,
            trace_id: o.trace_id.as_deref(),
            client_ip: o.client_ip,
            client_id: o.client.as_deref(),
            method: o.method.as_str(),
            host: &o.host,
            path: &o.path,
            route: o.route.as_deref(),
            status: r.status.as_u16(),
            grpc_status: o.grpc_status,
            decision: o.shadow.as_deref().map_or(o.decision.as_str(), |s| s.as_str()),
            rule: o.rule.as_deref(),
            code: o.code,
            fault: o.fault.map(Fault::as_str),
            bytes: r.bytes,
            latency_ms: ms(r.latency),
            upstream_ms: o.upstream_time.map(ms),
            attempts: o.attempts,
            tunnel: o.tunnel.map(|t| Tunnel {
                closed: t.closed.as_str(),
                bytes_to_app: t.bytes_to_app,
                bytes_to_client: t.bytes_to_client,
            }),
            shadow: o.shadow.as_deref().map(|s| Shadow {
                version: s.version,
                route: s.route.as_deref(),
                rule: &s.rule,
                code: s.code,
                status: s.denied.then_some(s.status),
            }),
        }
    }
}

/// A time as RFC 3339 UTC with milliseconds, written without an intermediate string.
struct Rfc3339Millis(SystemTime);

impl Serialize for Rfc3339Millis {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_millis(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_the_json_the_docs_show() {
        let out = Outcome { host: "api.example.com".into(), path: "/a\"b".into(), attempts: 1, ..Outcome::default() };
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_780_000_000_123);
        let r = Record { out, status: StatusCode::OK, latency: Duration::from_micros(1500), bytes: Some(5), at };
        let v: serde_json::Value = serde_json::to_value(Line::of(&r)).unwrap();
        assert_eq!(v["time"], "2026-05-28T20:26:40.123Z");
        assert_eq!(v["path"], "/a\"b");
        assert_eq!(v["latency_ms"], 1.5);
        assert_eq!(v["decision"], "forward");
        assert!(v.get("tunnel").is_none(), "only a tunnel's close has it");
        assert!(v["client_ip"].is_null() && v["upstream_ms"].is_null());
    }
}

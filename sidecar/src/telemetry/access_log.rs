//! The access log: one JSON line per request on stdout, with the fields the SPEC lists
//! (and one more when a WebSocket tunnel closes, with `tunnel` set).
//! Requests hand their record to a bounded channel and go on; a task of its own formats
//! and writes the lines (buffered, flushed when the channel runs dry). A full channel (a
//! stdout nobody reads fast enough) drops the record and counts it.

use std::io::Write;
use std::time::{Duration, SystemTime};

use http::StatusCode;
use prometheus_client::metrics::counter::Counter;
use tokio::sync::mpsc;

use warden_policy::refusal::Fault;

use crate::telemetry::outcome::Outcome;

/// Lines waiting to be written.
const QUEUE: usize = 8192;

pub(super) struct Record {
    pub out: Outcome,
    pub status: StatusCode,
    pub latency: Duration,
    pub bytes: Option<u64>,
    pub at: SystemTime,
}

/// What the writer thread is handed.
// Unboxed: a line is the common case, and boxing it would allocate once per request.
#[allow(clippy::large_enum_variant)]
enum Item {
    Line(Record),
    /// Write out everything before this, then answer (at shutdown).
    Flush(std::sync::mpsc::Sender<()>),
}

pub struct AccessLog {
    tx: mpsc::Sender<Item>,
    dropped: Counter,
}

impl AccessLog {
    /// Starts the writer thread.
    pub(super) fn start(dropped: Counter, written: Counter) -> AccessLog {
        let (tx, mut rx) = mpsc::channel::<Item>(QUEUE);
        // A thread, not a task: a blocked stdout must not stall a runtime worker.
        std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                let stdout = std::io::stdout();
                let mut w = std::io::BufWriter::new(stdout.lock());
                while let Some(item) = rx.blocking_recv() {
                    match item {
                        Item::Line(r) => {
                            let _ = serde_json::to_writer(&mut w, &line(&r));
                            let _ = w.write_all(b"\n");
                            written.inc();
                        }
                        Item::Flush(done) => {
                            let _ = w.flush();
                            let _ = done.send(());
                        }
                    }
                    if rx.is_empty() {
                        let _ = w.flush();
                    }
                }
            })
            .ok();
        AccessLog { tx, dropped }
    }

    pub(super) fn send(&self, r: Record) {
        if self.tx.try_send(Item::Line(r)).is_err() {
            self.dropped.inc();
        }
    }

    /// Blocks until every line queued so far is written, or `within` passes (at shutdown,
    /// so the last requests' and tunnels' lines are not lost).
    pub(super) fn flush(&self, within: Duration) {
        let (done, wait) = std::sync::mpsc::channel();
        if self.tx.blocking_send(Item::Flush(done)).is_ok() {
            let _ = wait.recv_timeout(within);
        }
    }
}

fn line(r: &Record) -> serde_json::Value {
    let o = &r.out;
    let mut line = serde_json::json!({
        "time": humantime::format_rfc3339_millis(r.at).to_string(),
        "request_id": o.request_id.as_ref().and_then(|v| v.to_str().ok()),
        "request_id_from_client": o.request_id_from_client,
        "trace_id": o.trace_id,
        "client_ip": o.client_ip.map(|ip| ip.to_string()),
        "client_id": o.client.as_deref(),
        "method": o.method.as_str(),
        "host": o.host,
        "path": o.path,
        "route": o.route.as_deref(),
        "status": r.status.as_u16(),
        "grpc_status": o.grpc_status,
        "decision": o.decision.as_str(),
        "rule": o.rule,
        "code": o.code,
        "fault": o.fault.map(Fault::as_str),
        "bytes": r.bytes,
        "latency_ms": (r.latency.as_secs_f64() * 1e6).round() / 1e3,
        "upstream_ms": o.upstream_time.map(|d| (d.as_secs_f64() * 1e6).round() / 1e3),
        "attempts": o.attempts,
    });
    // A tunnel's close: `latency_ms` is how long it was open, `bytes` what the client got.
    if let Some(t) = &o.tunnel {
        line["tunnel"] = serde_json::json!({
            "closed": t.closed.as_str(),
            "bytes_to_app": t.bytes_to_app,
            "bytes_to_client": t.bytes_to_client,
        });
    }
    line
}

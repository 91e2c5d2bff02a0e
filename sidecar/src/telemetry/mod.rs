//! What the sidecar tells about the requests it handles. Every request ends in one `Outcome` (filled in by `proxy.rs` as it decides),
//! which becomes:
//! - a metric update (`metrics.rs`, Prometheus text on the admin port's `/metrics`);
//! - an access log line (`access_log.rs`, JSON on stdout, buffered per worker and written
//!   by a thread of its own);
//! - for a refusal, a deny record queued for the control plane (`denials`, sent on the
//!   report stream by `report.rs`);
//! - for a request drawn for a decision sample, that sample (`samples.rs`, sent likewise);
//! - with an OTLP endpoint configured, a server span (`warden_telemetry::traces`).
//!
//! Nothing here blocks or slows a request: the log line and the deny record go into
//! bounded queues, and when a queue is full the record is dropped and counted
//! (`warden_telemetry_dropped_total`).

mod access_log;
pub mod metrics;
pub mod outcome;
mod request_counts;
pub mod route_stats;
pub mod samples;
pub mod shadow;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::StatusCode;
use warden_proto::v1 as pb;

pub use access_log::AccessLog;
pub use metrics::{EndpointLabels, EndpointSample, Metrics};
pub use outcome::{Closed, DecisionKind, Outcome, SampledHead, ShadowDecision, TunnelStats};
pub use route_stats::RouteStats;
pub use samples::Samples;
pub use shadow::ShadowTally;
use warden_policy::refusal::{Fault, Refusal};
pub use warden_telemetry::Traces;
use warden_telemetry::traces;

/// Deny records waiting for the next report; the oldest are dropped when full.
const MAX_QUEUED_DENIALS: usize = 10_000;

/// The sidecar's telemetry sinks.
pub struct Telemetry {
    pub metrics: Metrics,
    pub traces: Option<Traces>,
    /// Per-route windows for the report stream.
    pub routes: RouteStats,
    /// Decision samples for the report stream.
    pub samples: Samples,
    /// Where a candidate in shadow decided otherwise, for the report stream.
    pub shadow: ShadowTally,
    access: Option<AccessLog>,
    denials: Mutex<VecDeque<pb::DenyRecord>>,
    denials_dropped: AtomicU64,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Telemetry").field("access_log", &self.access.is_some()).finish()
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new(false, None)
    }
}

impl Telemetry {
    /// With `access_log`, one JSON line per request goes to stdout. Metrics carry
    /// `service` when there is one.
    pub fn new(access_log: bool, service: Option<&str>) -> Telemetry {
        let metrics = Metrics::for_service(service);
        let access =
            access_log.then(|| AccessLog::start(metrics.dropped("access_log"), metrics.access_log_lines.clone()));
        let samples = Samples::new(samples::DEFAULT_PER_ROUTE, 1, metrics.dropped("samples"));
        Telemetry {
            metrics,
            traces: None,
            routes: RouteStats::default(),
            samples,
            shadow: ShadowTally::default(),
            access,
            denials: Mutex::new(VecDeque::new()),
            denials_dropped: AtomicU64::new(0),
        }
    }

    /// Samples `per_route` requests per route per second whole (0: none), as many more
    /// drawn from the rest, over `workers` workers.
    pub fn with_sampling(mut self, per_route: u32, workers: usize) -> Self {
        self.samples = Samples::new(per_route, workers, self.metrics.dropped("samples"));
        self
    }

    /// Turns tracing on from the `OTEL_*` environment, if an endpoint is set there.
    pub fn with_traces_from_env(mut self, service_name: &str) -> anyhow::Result<Self> {
        self.traces =
            Traces::from_env(service_name, self.metrics.spans_exported.clone(), self.metrics.dropped("spans"))?;
        Ok(self)
    }

    /// Starts a request's span (tracing on), noting its trace id in the outcome.
    pub fn start_span(&self, headers: &http::HeaderMap, out: &mut Outcome) {
        if let Some(t) = &self.traces {
            let cx = t.start(headers, "warden.request");
            out.trace_id = traces::trace_id(&cx);
            out.trace = Some(cx);
        }
    }

    /// Records a finished request (its response head is ready).
    pub fn record(&self, out: Outcome, status: StatusCode, latency: Duration, bytes: Option<u64>) {
        self.metrics.request(&out, status, latency);
        let counted = route_stats::Counted {
            refused: (out.decision == DecisionKind::Deny).then(|| out.code.unwrap_or("")),
            server_error: status.is_server_error(),
        };
        self.routes.record(out.route.as_ref(), counted, latency);
        if let Some(cx) = &out.trace {
            // An unsampled span records nothing: skip building its attributes.
            let attributes = if traces::recording(cx) {
                self.metrics.spans_ended.inc();
                span_attributes(&out, status)
            } else {
                Vec::new()
            };
            traces::finish(cx, attributes);
        }
        // Read the wall clock only for what needs it: most requests, with the access log
        // off, neither log nor report.
        let reported = out.fault.is_some_and(Fault::reviewed)
            && matches!(out.decision, DecisionKind::Deny | DecisionKind::WouldDeny);
        // A candidate's refusal in shadow is a record of its own (capped), beside the
        // request's own record if it has one; its count is exact either way.
        let shadow_record = out.shadow.as_deref().is_some_and(|s| {
            let id = out.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default();
            self.shadow.add(s, out.client.as_ref(), id)
        });
        if !reported && !shadow_record && self.access.is_none() {
            return;
        }
        let now = SystemTime::now();
        if reported {
            self.queue_denial(&out, status, now, false);
        }
        if shadow_record {
            self.queue_denial(&out, status, now, true);
        }
        if let Some(log) = &self.access {
            log.write(&access_log::Record { out, status, latency, bytes, at: now });
        }
    }

    /// Records a WebSocket tunnel's close against its upgrade request: metrics, a span
    /// (a child of the request's) and an access log line with `tunnel` set.
    pub fn tunnel_closed(&self, mut out: Outcome, t: TunnelStats) {
        self.metrics.tunnel_closed(out.route.as_ref(), &t);
        if let (Some(traces), Some(cx)) = (&self.traces, &out.trace)
            && traces::recording(cx)
        {
            use opentelemetry::KeyValue;
            let span = traces.child(cx, "warden.tunnel", t.opened);
            traces::finish(
                &span,
                vec![
                    KeyValue::new("warden.tunnel.closed", t.closed.as_str()),
                    KeyValue::new("warden.tunnel.bytes_to_app", i64::try_from(t.bytes_to_app).unwrap_or(i64::MAX)),
                    KeyValue::new(
                        "warden.tunnel.bytes_to_client",
                        i64::try_from(t.bytes_to_client).unwrap_or(i64::MAX),
                    ),
                ],
            );
        }
        if let Some(log) = &self.access {
            let (latency, bytes) = (t.lasted, Some(t.bytes_to_client));
            out.tunnel = Some(t);
            let status = StatusCode::SWITCHING_PROTOCOLS;
            log.write(&access_log::Record { out, status, latency, bytes, at: SystemTime::now() });
        }
    }

    /// Writes out the access log lines queued so far (blocking; at shutdown).
    pub fn flush_access_log(&self, within: Duration) {
        if let Some(log) = &self.access {
            log.flush(within);
        }
    }

    /// Queues the request's deny record, or (`shadow`) its candidate's refusal in shadow.
    fn queue_denial(&self, out: &Outcome, status: StatusCode, at: SystemTime, shadow: bool) {
        let mut record = pb::DenyRecord {
            unix_ms: unix_ms(at),
            request_id: out.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
            trace_id: out.trace_id.clone().unwrap_or_default(),
            route: out.route.as_deref().unwrap_or_default().to_owned(),
            rule: out.rule.clone().unwrap_or_default(),
            code: out.code.unwrap_or_default().to_owned(),
            status: u32::from(status.as_u16()),
            client_id: out.client.as_deref().unwrap_or_default().to_owned(),
            client_ip: out.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            method: out.method.to_string(),
            host: out.host.clone(),
            path: out.path.clone(),
            dry_run: out.decision == DecisionKind::WouldDeny,
            request_id_from_client: out.request_id_from_client,
            policy_version: out.policy_version,
            headers: out.head.as_ref().map(|h| h.headers.clone()).unwrap_or_default(),
            auth_provider: out.auth_provider.as_deref().unwrap_or_default().to_owned(),
            key_id: out.key_id.as_deref().unwrap_or_default().to_owned(),
            shadow: false,
            shadow_allowed_by: 0,
        };
        match out.shadow.as_deref() {
            Some(s) if shadow => {
                record.shadow = true;
                record.policy_version = s.version;
                record.route = s.route.as_deref().unwrap_or_default().to_owned();
                record.rule.clone_from(&s.rule);
                s.code.clone_into(&mut record.code);
                record.status = u32::from(s.status);
                record.dry_run = false;
            }
            // An enforced refusal the candidate would have let through.
            Some(s) if !s.denied => record.shadow_allowed_by = s.version,
            _ => {}
        }
        let mut q = self.denials.lock().unwrap_or_else(PoisonError::into_inner);
        if q.len() >= MAX_QUEUED_DENIALS {
            q.pop_front();
            self.denials_dropped.fetch_add(1, Ordering::Relaxed);
            self.metrics.dropped("denials").inc();
        }
        q.push_back(record);
    }

    /// The deny records queued since the last call (at most `max`), and how many were
    /// dropped meanwhile.
    pub fn take_denials(&self, max: usize) -> (Vec<pb::DenyRecord>, u64) {
        let mut q = self.denials.lock().unwrap_or_else(PoisonError::into_inner);
        let n = q.len().min(max);
        (q.drain(..n).collect(), self.denials_dropped.swap(0, Ordering::Relaxed))
    }
}

fn unix_ms(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Telemetry {
    /// Keeps a drawn request's sample as decided (its weight is set when its second
    /// ends): `refusal` when it was refused, `preflight` when Warden answers it.
    pub fn keep_sample(
        &self,
        out: &Outcome,
        pick: samples::Pick,
        refusal: Option<&Refusal>,
        preflight: bool,
        head: &SampledHead,
    ) {
        let (decision, rule, code, status) = match (refusal, preflight) {
            (Some(r), _) => ("deny", r.rule(), r.code(), r.status().as_u16()),
            (None, true) => ("preflight", String::new(), "", 0),
            (None, false) => {
                (out.decision.as_str(), out.rule.clone().unwrap_or_default(), out.code.unwrap_or_default(), 0)
            }
        };
        let sample = pb::DecisionSample {
            rule,
            code: code.to_owned(),
            status: u32::from(status),
            decision: decision.to_owned(),
            ..decision_sample(out, head.clone(), unix_ms(SystemTime::now()))
        };
        self.samples.keep(out.route.as_ref(), pick, sample);
    }
}

/// A drawn request's head, for its sample.
fn decision_sample(out: &Outcome, head: SampledHead, unix_ms: i64) -> pb::DecisionSample {
    pb::DecisionSample {
        unix_ms,
        request_id: out.request_id.as_ref().and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned(),
        method: out.method.to_string(),
        host: out.host.clone(),
        path: out.path.clone(),
        client_ip: out.client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        client_id: out.client.as_deref().unwrap_or_default().to_owned(),
        auth_provider: out.auth_provider.as_deref().unwrap_or_default().to_owned(),
        key_id: out.key_id.as_deref().unwrap_or_default().to_owned(),
        headers: head.headers,
        credential_headers: head.credential_headers,
        route: out.route.as_deref().unwrap_or_default().to_owned(),
        policy_version: out.policy_version,
        weight: 0.0,
        plan: out.plan.as_deref().unwrap_or_default().to_owned(),
        ..Default::default()
    }
}

/// What a request's span carries (OpenTelemetry semantic conventions, plus Warden's own).
fn span_attributes(out: &Outcome, status: StatusCode) -> Vec<opentelemetry::KeyValue> {
    use opentelemetry::KeyValue;
    let mut a = vec![
        KeyValue::new("http.request.method", out.method.to_string()),
        KeyValue::new("url.path", out.path.clone()),
        KeyValue::new("server.address", out.host.clone()),
        KeyValue::new("http.response.status_code", i64::from(status.as_u16())),
        KeyValue::new("warden.decision", out.decision.as_str()),
    ];
    let mut opt = |k: &'static str, v: Option<String>| {
        if let Some(v) = v {
            a.push(KeyValue::new(k, v));
        }
    };
    opt("http.route", out.route.as_deref().map(str::to_owned));
    opt("warden.rule", out.rule.clone());
    opt("warden.code", out.code.map(str::to_owned));
    opt("warden.client_id", out.client.as_deref().map(str::to_owned));
    opt("client.address", out.client_ip.map(|ip| ip.to_string()));
    opt("warden.request_id", out.request_id.as_ref().and_then(|v| v.to_str().ok()).map(str::to_owned));
    if let Some(up) = out.upstream_time {
        a.push(KeyValue::new("warden.upstream_ms", up.as_secs_f64() * 1e3));
    }
    if out.attempts > 1 {
        a.push(KeyValue::new("warden.attempts", i64::from(out.attempts)));
    }
    a
}

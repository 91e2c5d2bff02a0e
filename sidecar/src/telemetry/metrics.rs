//! Prometheus metrics (the `prometheus-client` crate; OpenMetrics text on `/metrics`):
//! requests by route, status and decision and their latency (counted per worker,
//! `request_counts.rs`); refusals by rule and reason; active connections and WebSocket tunnels; the snapshot in
//! use and swaps; the control-plane connection; telemetry dropped.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use warden_policy::refusal::Fault;

use crate::telemetry::outcome::{DecisionKind, Outcome, ShadowDecision, TunnelStats};
use crate::telemetry::request_counts::{RequestCounts, RouteName};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenyLabels {
    rule: String,
    code: &'static str,
    /// `client`, `policy`, `upstream` or `local` (`Fault`).
    fault: &'static str,
    dry_run: bool,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    /// `shadow_deny` or `shadow_allow`.
    decision: &'static str,
    rule: String,
    code: &'static str,
    version: u64,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TunnelLabels {
    route: RouteName,
    /// `closed`, `broken`, `idle` or `shutdown`.
    closed: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TunnelBytesLabels {
    route: RouteName,
    /// `to_app` or `to_client`.
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpstreamLabels {
    upstream: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub upstream: String,
    pub endpoint: String,
}

/// One endpoint as `/metrics` shows it.
#[derive(Debug, Clone)]
pub struct EndpointSample {
    pub labels: EndpointLabels,
    pub outstanding: usize,
    pub ejected: bool,
}

/// The sidecar's metrics.
pub struct Metrics {
    registry: Registry,
    /// Requests and their latency by route: per worker, summed when scraped.
    requests: Arc<RequestCounts>,
    denials: Family<DenyLabels, Counter>,
    shadow: Family<ShadowLabels, Counter>,
    pub active_connections: Gauge,
    /// The runtime's worker threads (1: a current-thread runtime).
    pub worker_threads: Gauge,
    pub snapshot_version: Gauge,
    pub snapshot_swaps: Gauge,
    pub control_plane_connected: Gauge,
    /// Global quota decisions, and of them on the fallback share: set from the quotas'
    /// own counts when scraped (`sync_quota_decisions`).
    quota_decisions: Counter,
    quota_fallback_decisions: Counter,
    dropped: Family<KindLabels, Counter>,
    /// Sampled spans ended, and handed to the exporter: the difference, less the batch
    /// queue (2,048), is what the SDK's full queue dropped.
    pub spans_ended: Counter,
    pub spans_exported: Counter,
    /// Access log lines written (none with `--access-log off`).
    pub access_log_lines: Counter,
    retries: Family<UpstreamLabels, Counter>,
    budget_exhausted: Family<UpstreamLabels, Counter>,
    ejections: Family<EndpointLabels, Counter>,
    endpoint_outstanding: Family<EndpointLabels, Gauge>,
    endpoint_ejected: Family<EndpointLabels, Gauge>,
    tunnels_open: Gauge,
    tunnels_closed: Family<TunnelLabels, Counter>,
    tunnel_bytes: Family<TunnelBytesLabels, Counter>,
}

/// Counts something in a gauge for as long as it is open (a connection, a tunnel).
pub struct Open(Gauge);

impl Open {
    pub fn new(gauge: &Gauge) -> Open {
        gauge.inc();
        Open(gauge.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::for_service(None)
    }
}

impl Metrics {
    /// Every series carries `service` (the sidecar's `--service`, when it has one), so a
    /// fleet's dashboards and alerts group by it without relabelling.
    pub fn for_service(service: Option<&str>) -> Self {
        let labels = service.map(|s| (Cow::Borrowed("service"), Cow::Owned(s.to_owned())));
        let mut registry = Registry::with_prefix_and_labels("warden", labels.into_iter());
        let requests = Arc::new(RequestCounts::default());
        let denials = Family::<DenyLabels, Counter>::default();
        let shadow = Family::<ShadowLabels, Counter>::default();
        registry.register(
            "shadow_decisions",
            "Requests a rollout's candidate in shadow decides otherwise than the live version, by rule and reason (never enforced)",
            shadow.clone(),
        );
        let active_connections = Gauge::default();
        let worker_threads = Gauge::default();
        let snapshot_version = Gauge::default();
        let snapshot_swaps = Gauge::default();
        let control_plane_connected = Gauge::default();
        let dropped = Family::<KindLabels, Counter>::default();
        let spans_ended = Counter::default();
        let spans_exported = Counter::default();
        let access_log_lines = Counter::default();
        let retries = Family::<UpstreamLabels, Counter>::default();
        let budget_exhausted = Family::<UpstreamLabels, Counter>::default();
        let ejections = Family::<EndpointLabels, Counter>::default();
        let endpoint_outstanding = Family::<EndpointLabels, Gauge>::default();
        let endpoint_ejected = Family::<EndpointLabels, Gauge>::default();
        let tunnels_open = Gauge::default();
        let tunnels_closed = Family::<TunnelLabels, Counter>::default();
        let tunnel_bytes = Family::<TunnelBytesLabels, Counter>::default();
        let quota_decisions = Counter::default();
        let quota_fallback_decisions = Counter::default();
        registry.register("quota_decisions", "Requests decided under a global quota", quota_decisions.clone());
        registry.register(
            "quota_fallback_decisions",
            "Of them, decided on the 1/N fallback share (no share from the control plane)",
            quota_fallback_decisions.clone(),
        );
        registry.register("tunnels_open", "WebSocket tunnels open now", tunnels_open.clone());
        registry.register("tunnels_closed", "WebSocket tunnels closed, by route and why", tunnels_closed.clone());
        registry.register(
            "tunnel_bytes",
            "Bytes through WebSocket tunnels, by route and direction",
            tunnel_bytes.clone(),
        );
        registry.register("upstream_retries", "Tries made again, by upstream", retries.clone());
        registry.register(
            "upstream_retry_budget_exhausted",
            "Retries not made because the upstream's retry budget was spent",
            budget_exhausted.clone(),
        );
        registry.register("upstream_ejections", "Endpoints ejected by outlier detection", ejections.clone());
        registry.register(
            "upstream_endpoint_outstanding",
            "Requests outstanding on each endpoint now",
            endpoint_outstanding.clone(),
        );
        registry.register(
            "upstream_endpoint_ejected",
            "1 while an endpoint is out of rotation (outlier detection)",
            endpoint_ejected.clone(),
        );
        registry.register("access_log_lines", "Access log lines written to stdout", access_log_lines.clone());
        registry.register("spans_ended", "Sampled request spans ended", spans_ended.clone());
        registry.register(
            "spans_exported",
            "Spans handed to the OTLP exporter (sent or failed)",
            spans_exported.clone(),
        );
        registry.register_collector(Box::new(requests.clone()));
        registry.register(
            "denials",
            "Requests refused (or, in dry run, that would be) by rule and reason",
            denials.clone(),
        );
        registry.register("active_connections", "Downstream connections open", active_connections.clone());
        registry.register(
            "worker_threads",
            "Runtime worker threads: --threads, or the CPUs the process may use (cgroup quota, affinity)",
            worker_threads.clone(),
        );
        registry.register("snapshot_version", "Policy version in use (0: none)", snapshot_version.clone());
        registry.register("snapshot_swaps", "Snapshots made active since start", snapshot_swaps.clone());
        registry.register(
            "control_plane_connected",
            "1 while the policy stream is up",
            control_plane_connected.clone(),
        );
        registry.register(
            "telemetry_dropped",
            "Access log lines and deny records dropped (queue full)",
            dropped.clone(),
        );
        Metrics {
            registry,
            requests,
            denials,
            shadow,
            quota_decisions,
            quota_fallback_decisions,
            active_connections,
            worker_threads,
            snapshot_version,
            snapshot_swaps,
            control_plane_connected,
            dropped,
            spans_ended,
            spans_exported,
            access_log_lines,
            retries,
            budget_exhausted,
            ejections,
            endpoint_outstanding,
            endpoint_ejected,
            tunnels_open,
            tunnels_closed,
            tunnel_bytes,
        }
    }
}

impl Metrics {
    pub(super) fn request(&self, out: &Outcome, status: StatusCode, latency: Duration) {
        self.requests.record(out.route.as_ref(), status.as_u16(), out.decision.as_str(), latency, out.upstream_time);
        if matches!(out.decision, DecisionKind::Deny | DecisionKind::WouldDeny)
            && let Some(code) = out.code
        {
            let rule = out.rule.clone().unwrap_or_default();
            self.denials
                .get_or_create(&DenyLabels {
                    rule,
                    code,
                    fault: out.fault.map_or("", Fault::as_str),
                    dry_run: out.decision == DecisionKind::WouldDeny,
                })
                .inc();
        }
    }

    /// A request the candidate in shadow decided otherwise.
    pub fn shadow_decision(&self, d: &ShadowDecision) {
        let labels = ShadowLabels { decision: d.as_str(), rule: d.rule.clone(), code: d.code, version: d.version };
        self.shadow.get_or_create(&labels).inc();
    }

    /// What one exchange with `upstream` did besides answering: tries made again, retries
    /// the budget refused, endpoints it ejected.
    pub fn upstream_events(&self, upstream: &str, retried: u32, budget_refused: u32, ejected: &[String]) {
        if retried > 0 {
            self.retries.get_or_create(&UpstreamLabels { upstream: upstream.to_owned() }).inc_by(u64::from(retried));
        }
        if budget_refused > 0 {
            let labels = UpstreamLabels { upstream: upstream.to_owned() };
            self.budget_exhausted.get_or_create(&labels).inc_by(u64::from(budget_refused));
        }
        for endpoint in ejected {
            let labels = EndpointLabels { upstream: upstream.to_owned(), endpoint: endpoint.clone() };
            self.ejections.get_or_create(&labels).inc();
        }
    }

    /// A tunnel opened: counted open until the guard drops.
    pub fn tunnel_opened(&self) -> Open {
        Open::new(&self.tunnels_open)
    }

    pub(super) fn tunnel_closed(&self, route: Option<&Arc<str>>, t: &TunnelStats) {
        let route = RouteName(route.cloned());
        self.tunnels_closed.get_or_create(&TunnelLabels { route: route.clone(), closed: t.closed.as_str() }).inc();
        for (direction, n) in [("to_app", t.bytes_to_app), ("to_client", t.bytes_to_client)] {
            self.tunnel_bytes.get_or_create(&TunnelBytesLabels { route: route.clone(), direction }).inc_by(n);
        }
    }

    /// Sets the per-endpoint gauges to the endpoints there are now (and only those).
    pub fn endpoints(&self, samples: impl IntoIterator<Item = EndpointSample>) {
        self.endpoint_outstanding.clear();
        self.endpoint_ejected.clear();
        for s in samples {
            self.endpoint_outstanding.get_or_create(&s.labels).set(i64::try_from(s.outstanding).unwrap_or(i64::MAX));
            self.endpoint_ejected.get_or_create(&s.labels).set(i64::from(s.ejected));
        }
    }

    /// The counter of dropped telemetry of one kind.
    pub fn dropped(&self, kind: &'static str) -> Counter {
        self.dropped.get_or_create(&KindLabels { kind }).clone()
    }

    /// The text exposition.
    /// Brings the quota decision counters up to the quotas' own counts (`(all, fallback)`).
    pub fn sync_quota_decisions(&self, (all, fallback): (u64, u64)) {
        for (counter, total) in [(&self.quota_decisions, all), (&self.quota_fallback_decisions, fallback)] {
            counter.inc_by(total.saturating_sub(counter.get()));
        }
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

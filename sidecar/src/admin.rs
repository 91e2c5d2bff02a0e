//! The admin port: `/healthz` (the process is alive), `/readyz` (a snapshot is loaded and
//! the sidecar is not draining), `/config` (the active version and policy as JSON),
//! `/metrics` (Prometheus / OpenMetrics text),
//! `/limits/peek?limit=NAME&key=HEX[&plan=P]` (one key's budget, counting nothing: what
//! `wardenctl explain --sidecar` reads). It never proxies.
//!
//! In Kubernetes it listens on the pod address, since kubelet probes and Prometheus reach
//! it there, so it is hardened like the data port. Probes and metrics answer anyone;
//! `/config` (the policy) and `/limits/peek` (clients' budgets) answer loopback peers only,
//! which `kubectl port-forward` is, since it connects from inside the pod. A connection
//! must send a whole request head within `HEADER_READ_TIMEOUT` (also its keep-alive idle
//! limit), lives at most `MAX_CONNECTION_LIFE`, and at most `MAX_CONNECTIONS` are open:
//! past that the port stops accepting and new connections wait in the kernel's backlog,
//! so idle or slow clients cannot take the process's file descriptors.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::live::Live;
use crate::telemetry::{EndpointLabels, EndpointSample};
use warden_policy::ipset;
use warden_policy::limits::{Quotas, now_ns};

/// Open admin connections at most. Probes and a scraper need a handful.
pub const MAX_CONNECTIONS: usize = 64;
/// How long a connection may take to send a request head, counted from when it opens or
/// from its previous response: a client that sends nothing, one byte, or half a head is
/// closed after this. Probes send theirs at once.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a connection may stay open in all. Then it is closed after its current
/// response, so a client that keeps a connection busy (or reads a response slowly) frees
/// its slot; a scraper's keep-alive simply reconnects.
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(30);
/// After `MAX_CONNECTION_LIFE`, how long the response in flight may take before the
/// connection is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// The largest request head kept in memory (hyper's minimum); admin requests are tiny.
const MAX_HEAD_BYTES: usize = 8 << 10;

/// Who may read an admin path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Audience {
    /// Probes and scrapers, from wherever they connect.
    Anyone,
    /// The policy and clients' budgets: only from inside the pod.
    Loopback,
}

/// Named public paths; anything else (a new endpoint too) is loopback only until listed.
fn audience(path: &str) -> Audience {
    match path {
        "/healthz" | "/readyz" | "/metrics" => Audience::Anyone,
        _ => Audience::Loopback,
    }
}

/// Whether a peer at `peer` may read `path`: loopback-only paths need 127.0.0.0/8, ::1 or
/// an IPv4-mapped loopback address (a dual-stack socket's view of 127.0.0.1).
pub fn peer_may_read(path: &str, peer: IpAddr) -> bool {
    match audience(path) {
        Audience::Anyone => true,
        Audience::Loopback => ipset::canonical(peer).is_loopback(),
    }
}

/// Serves the admin endpoints until the task is dropped.
pub async fn serve(listener: TcpListener, live: Arc<Live>) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .keep_alive(true)
        .max_buf_size(MAX_HEAD_BYTES);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // At the cap, stop accepting: new connections wait in the backlog, as on the data port.
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (live, builder) = (live.clone(), builder.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let service = service_fn(move |req| {
                let live = live.clone();
                async move { Ok::<_, Infallible>(route(&live, &req, peer.ip())) }
            });
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let ended = match tokio::time::timeout(MAX_CONNECTION_LIFE, conn.as_mut()).await {
                Ok(ended) => ended,
                Err(_) => {
                    conn.as_mut().graceful_shutdown();
                    tokio::time::timeout(CLOSE_GRACE, conn).await.unwrap_or(Ok(()))
                }
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, %peer, "admin connection ended with an error");
            }
        });
    }
}

fn route(live: &Live, req: &Request<Incoming>, peer: IpAddr) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    let path = req.uri().path();
    if !peer_may_read(path, peer) {
        return text(StatusCode::FORBIDDEN, "this endpoint answers loopback only (try kubectl port-forward)\n");
    }
    match path {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if live.ready() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/config" => config(live),
        "/metrics" => metrics(live),
        "/limits/peek" => peek(live, req.uri().query().unwrap_or_default()),
        _ => text(StatusCode::NOT_FOUND, "try /healthz, /readyz, /config, /metrics or /limits/peek\n"),
    }
}

fn peek(live: &Live, query: &str) -> Response<Full<Bytes>> {
    let param = |name: &str| query.split('&').find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='));
    let (Some(name), Some(key)) = (param("limit"), param("key").and_then(|k| hex::decode(k).ok())) else {
        return text(StatusCode::BAD_REQUEST, "want ?limit=NAME&key=HEX[&plan=PLAN]\n");
    };
    let active = live.active();
    let Some(policy) = &active.policy else { return text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n") };
    let snapshot = &policy.snapshot;
    let Some(limit) = snapshot.limits.iter().find(|l| &*l.name == name) else {
        return text(StatusCode::NOT_FOUND, "no such limit in the active policy\n");
    };
    let Some(quota) = limit.rate_for(param("plan")) else {
        return json(&serde_json::json!({ "limit": name, "applies": false, "version": snapshot.version }));
    };
    // A global quota is enforced here at this sidecar's share.
    let (share, assigned) = match limit.global {
        true => live.quotas().share(name, &key, std::time::Instant::now()),
        false => (1.0, false),
    };
    let rate = if limit.global { Quotas::scaled(quota, share) } else { *quota };
    let v = policy.limits[limit.index].check(&key, &rate, now_ns(), false);
    json(&serde_json::json!({
        "limit": name,
        "applies": true,
        "version": snapshot.version,
        "rate": warden_policy::yaml::format_rate(quota.count, quota.period),
        "burst": rate.burst,
        // Global quotas: this sidecar's share, assigned by the control plane or the 1/N fallback.
        "share": limit.global.then_some(share),
        "share_from": limit.global.then_some(if assigned { "control_plane" } else { "fallback" }),
        "allowed": v.allowed,
        "remaining": v.remaining,
        "retry_after_ms": v.retry_after.as_millis(),
        "reset_ms": v.reset.as_millis(),
    }))
}

fn metrics(live: &Live) -> Response<Full<Bytes>> {
    let m = &live.telemetry().metrics;
    m.snapshot_version.set(i64::try_from(live.version()).unwrap_or(i64::MAX));
    m.snapshot_swaps.set(i64::try_from(live.swaps()).unwrap_or(i64::MAX));
    m.sync_quota_decisions(live.quotas().decisions());
    if let Some(policy) = &live.active().policy {
        let now = crate::upstream::health::now_ms();
        m.endpoints(policy.upstreams().iter().flat_map(|u| {
            u.set
                .current()
                .iter()
                .map(|e| EndpointSample {
                    labels: EndpointLabels { upstream: u.name.to_string(), endpoint: e.authority().to_string() },
                    outstanding: e.health.outstanding(),
                    ejected: e.health.ejected(now),
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut resp = Response::new(Full::new(Bytes::from(m.encode())));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

fn json(v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(serde_json::to_vec_pretty(v).unwrap_or_default())));
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}

fn config(live: &Live) -> Response<Full<Bytes>> {
    // Counts only: keys are hashes and secrets are secret; neither belongs in a dump.
    let active = live.active();
    let creds = &active.credentials;
    let credentials = serde_json::json!({ "revision": creds.revision, "keys": creds.key_count() });
    let body = match &active.policy {
        Some(policy) => {
            let s = &policy.snapshot;
            serde_json::json!({
                "service": &*s.service,
                "version": s.version,
                "content_hash": s.content_hash,
                "origin": live.origin(),
                "swaps": live.swaps(),
                "ready": live.ready(),
                // A rollout's candidate decided in shadow beside this version (0: none).
                "shadow_version": active.shadow.as_ref().map_or(0, |p| p.snapshot.version),
                "policy": s.source_yaml,
                "credentials": credentials,
                // Each endpoint's circuit breakers (limits, what is open and waiting, refusals)
                // and health (outstanding requests, failures in a row, ejection).
                "upstreams": policy.upstreams().iter().map(|u| serde_json::json!({
                    "name": &*u.name,
                    "protocol": u.protocol.as_str(),
                    "retry_budget_exhausted": u.budget.exhausted.load(std::sync::atomic::Ordering::Relaxed),
                    "endpoints": u.set.current().iter().map(|e| serde_json::json!({
                        "endpoint": e.authority().as_str(), "breakers": e.breaker_state(),
                        "health": e.health.state(crate::upstream::health::now_ms()),
                    })).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
                "in_flight": { "max": live.limits().max_in_flight, "now": live.limits().max_in_flight - live.in_flight().available_permits() },
                // Request bodies held to check their signature (--max-buffered-bytes), in KiB.
                "buffered_kib": {
                    "max": live.limits().max_buffered_bytes.div_ceil(1024),
                    "now": live.limits().max_buffered_bytes.div_ceil(1024).saturating_sub(live.buffer_budget().available_permits()),
                },
                // Keys each limit tracks, and active ones dropped to stay within --limit-keys.
                "limits": s.limits.iter().zip(&policy.limits).map(|(l, b)| serde_json::json!({
                    "name": &*l.name, "keys": b.len(), "evicted": b.evicted(), "global": l.global,
                })).collect::<Vec<_>>(),
            })
        }
        None => serde_json::json!({ "version": 0, "ready": false, "swaps": live.swaps() }),
    };
    let mut resp = Response::new(Full::new(Bytes::from(serde_json::to_vec_pretty(&body).unwrap_or_default())));
    resp.headers_mut().insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    resp
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_metrics_answer_anyone_the_rest_loopback_only() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let loopback = ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "::ffff:127.0.0.53"];
        let elsewhere = ["10.0.0.7", "192.168.1.2", "0.0.0.0", "2001:db8::1", "::ffff:10.0.0.7", "::", "fe80::1"];
        for path in ["/healthz", "/readyz", "/metrics"] {
            for peer in loopback.iter().chain(&elsewhere) {
                assert!(peer_may_read(path, ip(peer)), "{path} from {peer}");
            }
        }
        for path in ["/config", "/limits/peek", "/config/", "/nosuch"] {
            for peer in loopback {
                assert!(peer_may_read(path, ip(peer)), "{path} from {peer}");
            }
            for peer in elsewhere {
                assert!(!peer_may_read(path, ip(peer)), "{path} from {peer}");
            }
        }
    }
}

//! The admin port: `/healthz` (the process is alive), `/readyz` (a snapshot is loaded and
//! the sidecar is not draining), `/config` (the active version and policy as JSON),
//! `/metrics` (Prometheus / OpenMetrics text),
//! `/limits/peek?limit=NAME&key=HEX[&plan=P]` (one key's budget, counting nothing: what
//! `wardenctl explain --sidecar` reads).
//! Bound to loopback by default; it never proxies.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::limits::Quotas;
use crate::live::Live;

/// Serves the admin endpoints until the task is dropped.
pub async fn serve(listener: TcpListener, live: Arc<Live>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // Usually EMFILE: back off instead of spinning.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            continue;
        };
        let live = live.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let live = live.clone();
                async move { Ok::<_, Infallible>(route(&live, &req)) }
            });
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

fn route(live: &Live, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
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
    let Some(snapshot) = live.snapshot() else { return text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n") };
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
    let v = limit.peek(&key, &rate);
    json(&serde_json::json!({
        "limit": name,
        "applies": true,
        "version": snapshot.version,
        "rate": crate::policy::format_rate(quota.count, quota.period),
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
    let creds = live.credentials();
    let credentials = serde_json::json!({ "revision": creds.revision, "keys": creds.key_count() });
    let body = match live.snapshot() {
        Some(s) => serde_json::json!({
            "service": &*s.service,
            "version": s.version,
            "content_hash": s.content_hash,
            "origin": live.origin(),
            "swaps": live.swaps(),
            "ready": live.ready(),
            "policy": s.source_yaml,
            "credentials": credentials,
            // Each endpoint's circuit breakers: limits, what is open and waiting, refusals.
            "upstreams": s.upstreams.iter().map(|u| serde_json::json!({
                "name": &*u.name,
                "endpoints": u.endpoints.iter().map(|e| serde_json::json!({
                    "endpoint": e.authority().as_str(), "breakers": e.breaker_state(),
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
            "in_flight": { "max": live.limits().max_in_flight, "now": live.limits().max_in_flight - live.in_flight().available_permits() },
            // Keys each limit tracks, and active ones dropped to stay within --limit-keys.
            "limits": s.limits.iter().map(|l| serde_json::json!({
                "name": &*l.name, "keys": l.buckets.len(), "evicted": l.buckets.evicted(), "global": l.global,
            })).collect::<Vec<_>>(),
        }),
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

//! The report stream: every 250 ms, this sidecar's demand on global quotas, the
//! requests it refused and its decision samples go to the control plane (and every 2 s
//! each route's traffic and latency, for `wardenctl top`); each answer brings back this sidecar's quota shares
//! (`limits/global.rs`).
//! A batch with no demand is sent every second, to keep the peer counts fresh.
//! When the stream is down nothing waits on it: requests use the shares they have, then
//! the fallback share once those expire, and demand recorded meanwhile is dropped at the
//! next batch rather than piling up.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use warden_proto::v1::ReportBatch;

use crate::control::{ControlConfig, backoff, connect};
use crate::live::Live;
use warden_proto::{MAX_DENIALS, MAX_SAMPLES};

const EVERY: Duration = Duration::from_millis(250);
const IDLE_EVERY: Duration = Duration::from_secs(1);

/// How often per-route traffic and latency go out (for `wardenctl top`).
const ROUTES_EVERY: Duration = Duration::from_secs(2);

/// Runs forever: connect, report, reconnect with backoff.
pub async fn run(cfg: ControlConfig, live: Arc<Live>) {
    let mut failures: u32 = 0;
    loop {
        if let Err(e) = session(&cfg, &live, &mut failures).await {
            tracing::debug!(error = format!("{e:#}"), "report stream down; quotas use their local fallback shares");
        }
        // What piled up while disconnected is stale: the next batch starts fresh.
        live.quotas().take_usage();
        failures = failures.saturating_add(1);
        tokio::time::sleep(backoff(failures)).await;
    }
}

async fn session(cfg: &ControlConfig, live: &Live, failures: &mut u32) -> anyhow::Result<()> {
    let (mut client, _) = connect(cfg).await?;
    let (tx, rx) = mpsc::channel(4);
    let first = ReportBatch { service: cfg.service.clone(), instance: cfg.instance.clone(), ..Default::default() };
    tx.send(first).await?;
    let mut replies = client.report(ReceiverStream::new(rx)).await?.into_inner();
    *failures = 0;
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (mut last, mut last_sent, mut routes_sent) = (Instant::now(), Instant::now(), Instant::now());
    loop {
        tokio::select! {
            reply = replies.message() => {
                let Some(reply) = reply? else { return Ok(()) };
                live.quotas().apply(&reply, Instant::now());
            }
            _ = tick.tick() => {
                let usage = live.quotas().take_usage();
                let (denials, denials_dropped) = live.telemetry().take_denials(MAX_DENIALS);
                let (samples, samples_dropped) = live.telemetry().samples.take(MAX_SAMPLES);
                let (shadow_counts, shadow_dropped) = live.telemetry().shadow.take();
                if shadow_dropped > 0 {
                    tracing::warn!(shadow_dropped, "shadow differences in more groups than a report carries were not counted");
                }
                let now = Instant::now();
                let routes = if now.duration_since(routes_sent) >= ROUTES_EVERY {
                    routes_sent = now;
                    live.telemetry().routes.take(live.version())
                } else {
                    Vec::new()
                };
                if usage.is_empty() && denials.is_empty() && routes.is_empty() && samples.is_empty() && shadow_counts.is_empty() && now.duration_since(last_sent) < IDLE_EVERY {
                    last = now;
                    continue;
                }
                let interval_ms = u64::try_from(now.duration_since(last).as_millis()).unwrap_or(u64::MAX);
                let batch = ReportBatch {
                    service: cfg.service.clone(),
                    instance: cfg.instance.clone(),
                    interval_ms,
                    usage,
                    denials,
                    denials_dropped,
                    routes,
                    samples,
                    samples_dropped,
                    shadow_counts,
                };
                tx.send(batch).await?;
                (last, last_sent) = (now, now);
            }
        }
    }
}

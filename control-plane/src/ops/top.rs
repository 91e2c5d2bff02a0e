//! Live traffic for `wardenctl top`: each sidecar's latest per-route window, as its report
//! stream delivered it (`sidecars.rs` feeds the view). With several replicas each shares
//! the windows of its own sidecars through the store every `SHARE_EVERY`, and `top` on any
//! replica merges them with its own (the newer window of a sidecar's route wins).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::now_unix_ms;
use crate::ops::control_plane::ControlPlane;
use crate::store::TrafficRow;
use crate::traffic::{RouteTraffic, TopRow};

/// How often this replica shares its sidecars' windows: as often as sidecars send them.
const SHARE_EVERY: Duration = Duration::from_secs(2);
/// Windows older than this are not shown (as in the in-memory view).
const FRESH_MS: i64 = 30_000;

impl ControlPlane {
    /// Fresh per-route windows, of one service or ("") all, by service, route and instance.
    /// Those other replicas shared are left out while the store cannot be read.
    pub async fn top(&self, service: &str) -> Vec<TopRow> {
        let mut rows: BTreeMap<(String, String, String), TopRow> = BTreeMap::new();
        let shared = self.store.traffic(now_unix_ms() - FRESH_MS).await.unwrap_or_default();
        let shared = shared.into_iter().filter(|r| service.is_empty() || r.service == service).map(top_row);
        for row in shared.chain(self.traffic.rows(service)) {
            let key = (row.service.clone(), row.traffic.route.clone(), row.instance.clone());
            if rows.get(&key).is_none_or(|r| r.unix_ms <= row.unix_ms) {
                rows.insert(key, row);
            }
        }
        rows.into_values().collect()
    }

    /// Shares this replica's windows through the store every `SHARE_EVERY` until the
    /// control plane is dropped.
    pub(super) fn share_traffic(self: &Arc<Self>) {
        self.every(SHARE_EVERY, |cp| async move {
            let rows: Vec<TrafficRow> = cp.traffic.rows("").into_iter().map(traffic_row).collect();
            if !rows.is_empty()
                && let Err(e) = cp.store.save_traffic(rows).await
            {
                tracing::debug!(error = %e, "traffic for top not shared with the other replicas");
            }
        });
    }
}

fn traffic_row(r: TopRow) -> TrafficRow {
    let t = r.traffic;
    TrafficRow {
        service: r.service,
        instance: r.instance,
        route: t.route,
        unix_ms: r.unix_ms,
        interval_ms: t.interval_ms,
        requests: t.requests,
        denials: t.denials,
        latency_buckets: t.latency_buckets,
    }
}

fn top_row(r: TrafficRow) -> TopRow {
    TopRow {
        service: r.service,
        instance: r.instance,
        unix_ms: r.unix_ms,
        traffic: RouteTraffic {
            route: r.route,
            interval_ms: r.interval_ms,
            requests: r.requests,
            denials: r.denials,
            latency_buckets: r.latency_buckets,
            ..RouteTraffic::default()
        },
    }
}

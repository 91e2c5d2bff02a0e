//! What `wardenctl top` shows: the latest per-route traffic and latency window each
//! sidecar reported (every 2 s on the report stream). Kept in memory only; a sidecar not
//! heard from for `FRESH` drops out.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use crate::clock::now_unix_ms;

/// Windows older than this are not shown.
const FRESH_MS: i64 = 30_000;

/// One route's traffic over one reporting window of one sidecar.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteTraffic {
    /// "" = requests no route matched.
    pub route: String,
    pub interval_ms: u64,
    pub requests: u64,
    /// Of them, refused by Warden.
    pub denials: u64,
    /// Latency to the response head: bucket i counts requests up to 100 µs × 2^i.
    pub latency_buckets: Vec<u64>,
}

/// A route's latest window on one sidecar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopRow {
    pub service: String,
    pub instance: String,
    pub traffic: RouteTraffic,
    /// When it was reported.
    pub unix_ms: i64,
}

/// (service, instance) → when reported, and the windows.
type Latest = HashMap<(String, String), (i64, Vec<RouteTraffic>)>;

/// The latest window per sidecar.
#[derive(Default)]
pub struct Traffic {
    latest: Mutex<Latest>,
}

impl Traffic {
    /// A sidecar's new windows replace its previous ones.
    pub fn report(&self, service: &str, instance: &str, routes: Vec<RouteTraffic>) {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_unix_ms();
        latest.retain(|_, (at, _)| now - *at < FRESH_MS);
        latest.insert((service.to_owned(), instance.to_owned()), (now, routes));
    }

    /// Fresh windows, optionally of one service ("" = all), by service, route and instance.
    pub fn rows(&self, service: &str) -> Vec<TopRow> {
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_unix_ms();
        let mut rows: Vec<TopRow> = latest
            .iter()
            .filter(|((s, _), (at, _))| (service.is_empty() || s == service) && now - *at < FRESH_MS)
            .flat_map(|((s, i), (at, routes))| {
                routes.iter().map(move |r| TopRow {
                    service: s.clone(),
                    instance: i.clone(),
                    traffic: r.clone(),
                    unix_ms: *at,
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            (&a.service, &a.traffic.route, &a.instance).cmp(&(&b.service, &b.traffic.route, &b.instance))
        });
        rows
    }
}

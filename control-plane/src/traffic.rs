//! What `wardenctl top` shows: the latest per-route traffic and latency window each
//! sidecar reported (every 2 s on the report stream). Kept in memory only; a sidecar not
//! heard from for `FRESH` drops out.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use warden_proto::v1 as pb;

use crate::store::now_unix_ms;

/// Windows older than this are not shown.
const FRESH_MS: i64 = 30_000;

/// (service, instance) → when reported, and the windows.
type Latest = HashMap<(String, String), (i64, Vec<pb::RouteStats>)>;

/// The latest window per sidecar.
#[derive(Default)]
pub struct Traffic {
    latest: Mutex<Latest>,
}

impl Traffic {
    /// A sidecar's new windows replace its previous ones.
    pub fn report(&self, service: &str, instance: &str, routes: Vec<pb::RouteStats>) {
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_unix_ms();
        latest.retain(|_, (at, _)| now - *at < FRESH_MS);
        latest.insert((service.to_owned(), instance.to_owned()), (now, routes));
    }

    /// Fresh windows, optionally of one service, sorted.
    pub fn rows(&self, service: &str) -> Vec<pb::TopRow> {
        let latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let now = now_unix_ms();
        let mut rows: Vec<pb::TopRow> = latest
            .iter()
            .filter(|((s, _), (at, _))| (service.is_empty() || s == service) && now - *at < FRESH_MS)
            .flat_map(|((s, i), (at, routes))| {
                routes.iter().map(move |r| pb::TopRow {
                    service: s.clone(),
                    instance: i.clone(),
                    stats: Some(r.clone()),
                    unix_ms: *at,
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            let route = |r: &pb::TopRow| r.stats.as_ref().map(|s| s.route.clone()).unwrap_or_default();
            (&a.service, route(a), &a.instance).cmp(&(&b.service, route(b), &b.instance))
        });
        rows
    }
}

//! Global quotas on the sidecar: the share of each quota this sidecar may use, as the
//! control plane assigns it, and the demand it reports back (after RLQS and Doorman).
//! Nothing here is on the network: a request reads its share from memory and records its
//! demand in memory; `report.rs` ships demand out and shares in every 250 ms.
//!
//! Which share a request gets:
//! - an assigned one, while its TTL lasts (the control plane divides each quota by the
//!   demand every sidecar reports);
//! - otherwise (a key no sidecar reported yet, an expired share, the control plane down)
//!   1/N of the quota, N = the sidecars sharing the limit as last reported (1 before any
//!   report): a local share, never unlimited and never zero.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use warden_proto::v1 as pb;

use super::RateDef;

/// The smallest share ever applied: a sidecar is never cut to zero.
const MIN_FRACTION: f64 = 0.001;

struct Share {
    fraction: f64,
    until: Instant,
}

/// Demand on one key since the last report.
struct Demand {
    limit: String,
    key: Vec<u8>,
    plan: String,
    requests: u64,
    admitted: u64,
}

/// This sidecar's view of every global quota.
pub struct Quotas {
    hasher: RandomState,
    shares: Mutex<HashMap<u64, Share>>,
    peers: Mutex<HashMap<String, u32>>,
    demand: Mutex<HashMap<u64, Demand>>,
    /// Keys reported at most per batch; beyond it demand is dropped and counted.
    max_keys: usize,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas").field("dropped", &self.dropped.load(Ordering::Relaxed)).finish()
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas::new(100_000)
    }
}

impl Quotas {
    pub fn new(max_keys: usize) -> Self {
        Quotas {
            hasher: RandomState::new(),
            shares: Mutex::new(HashMap::new()),
            peers: Mutex::new(HashMap::new()),
            demand: Mutex::new(HashMap::new()),
            max_keys,
            dropped: AtomicU64::new(0),
        }
    }

    fn id(&self, limit: &str, key: &[u8]) -> u64 {
        self.hasher.hash_one((limit, key))
    }

    /// The share of the quota this sidecar may use for `key` now.
    pub fn fraction(&self, limit: &str, key: &[u8], now: Instant) -> f64 {
        let assigned = {
            let shares = self.shares.lock().unwrap_or_else(PoisonError::into_inner);
            shares.get(&self.id(limit, key)).filter(|s| s.until > now).map(|s| s.fraction)
        };
        assigned.unwrap_or_else(|| {
            let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
            1.0 / f64::from(peers.get(limit).copied().unwrap_or(1).max(1))
        })
    }

    /// A quota's rate scaled to a share: the same count over a longer period.
    pub fn scaled(rate: &RateDef, fraction: f64) -> RateDef {
        let f = fraction.clamp(MIN_FRACTION, 1.0);
        let burst = ((rate.burst as f64) * f).round().max(1.0) as u64;
        RateDef { count: rate.count, period: rate.period.div_f64(f), burst }
    }

    /// Counts one request for the next report.
    pub fn record(&self, limit: &str, key: &[u8], plan: Option<&str>, admitted: bool) {
        let id = self.id(limit, key);
        let mut demand = self.demand.lock().unwrap_or_else(PoisonError::into_inner);
        let len = demand.len();
        let d = match demand.get_mut(&id) {
            Some(d) => d,
            None if len >= self.max_keys => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            None => demand.entry(id).or_insert_with(|| Demand {
                limit: limit.to_owned(),
                key: key.to_vec(),
                plan: plan.unwrap_or_default().to_owned(),
                requests: 0,
                admitted: 0,
            }),
        };
        d.requests += 1;
        d.admitted += u64::from(admitted);
    }

    /// The demand since the last call, for a report.
    pub fn take_usage(&self) -> Vec<pb::QuotaUsage> {
        let drained = std::mem::take(&mut *self.demand.lock().unwrap_or_else(PoisonError::into_inner));
        drained
            .into_values()
            .map(|d| pb::QuotaUsage {
                limit: d.limit,
                key: d.key,
                plan: d.plan,
                requests: d.requests,
                admitted: d.admitted,
            })
            .collect()
    }

    /// Takes in the control plane's answer.
    pub fn apply(&self, reply: &pb::ReportReply, now: Instant) {
        {
            let mut shares = self.shares.lock().unwrap_or_else(PoisonError::into_inner);
            shares.retain(|_, s| s.until > now);
            for s in &reply.shares {
                let until = now + Duration::from_millis(s.ttl_ms);
                shares
                    .insert(self.id(&s.limit, &s.key), Share { fraction: s.fraction.clamp(MIN_FRACTION, 1.0), until });
            }
        }
        if !reply.peers.is_empty() {
            let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
            for p in &reply.peers {
                peers.insert(p.limit.clone(), p.sidecars.max(1));
            }
        }
    }

    /// Demand entries dropped because a batch was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_expire_into_the_fallback_and_never_reach_zero() {
        let q = Quotas::default();
        let now = Instant::now();
        assert_eq!(q.fraction("l", b"k", now), 1.0, "before any report: the whole quota, locally");
        let reply = pb::ReportReply {
            shares: vec![pb::QuotaShare { limit: "l".into(), key: b"k".to_vec(), fraction: 0.25, ttl_ms: 1000 }],
            peers: vec![pb::LimitPeers { limit: "l".into(), sidecars: 4 }],
        };
        q.apply(&reply, now);
        assert_eq!(q.fraction("l", b"k", now), 0.25);
        assert_eq!(q.fraction("l", b"other", now), 0.25, "an unassigned key: 1/4 sidecars");
        assert_eq!(q.fraction("l", b"k", now + Duration::from_secs(2)), 0.25, "expired: 1/4 again");
        let r = RateDef { count: 100, period: Duration::from_secs(60), burst: 10 };
        let s = Quotas::scaled(&r, 0.25);
        assert_eq!((s.count, s.period, s.burst), (100, Duration::from_secs(240), 3), "25/min, burst 2.5 -> 3");
        assert_eq!(Quotas::scaled(&r, 0.0).period, Duration::from_secs(60_000), "never zero: at least 0.1 %");
    }

    #[test]
    fn demand_is_counted_per_key_and_drained_by_each_report() {
        let q = Quotas::new(2);
        q.record("l", b"a", Some("pro"), true);
        q.record("l", b"a", Some("pro"), false);
        q.record("l", b"b", None, true);
        q.record("l", b"c", None, true);
        let mut usage = q.take_usage();
        usage.sort_by(|x, y| x.key.cmp(&y.key));
        assert_eq!(
            usage.iter().map(|u| (u.key.as_slice(), u.requests, u.admitted)).collect::<Vec<_>>(),
            [(b"a".as_slice(), 2, 1), (b"b".as_slice(), 1, 1)]
        );
        assert_eq!(usage[0].plan, "pro");
        assert_eq!(q.dropped(), 1, "a third key does not fit a batch of two");
        assert!(q.take_usage().is_empty());
    }
}

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
//!
//! Keys travel as a 16-byte SHA-256 prefix of the key (the same on every sidecar, and a
//! fixed size however long a header value is), at most `MAX_BATCH` per report. Shares and
//! demand sit in 16 shards each, so requests for different keys rarely share a lock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use warden_proto::v1 as pb;

use crate::limits::gcra::RateDef;

/// The smallest share ever applied: a sidecar is never cut to zero.
const MIN_FRACTION: f64 = 0.001;
/// Keys per report at most (a batch stays far below gRPC's 4 MiB message limit).
pub const MAX_BATCH: usize = 10_000;
const SHARDS: usize = 16;

/// A global quota key as sidecars and the control plane name it: the first 16 bytes of
/// SHA-256 over the limit's name and the key.
type KeyId = [u8; 16];

fn key_id(limit: &str, key: &[u8]) -> KeyId {
    let mut h = Sha256::new();
    h.update(limit.as_bytes());
    h.update([0]);
    h.update(key);
    let digest = h.finalize();
    let mut id = [0u8; 16];
    id.copy_from_slice(&digest[..16]);
    id
}

fn shard_of(id: &KeyId) -> usize {
    usize::from(id[0]) % SHARDS
}

struct Share {
    fraction: f64,
    until: Instant,
}

/// Demand on one key since the last report.
struct Demand {
    limit: String,
    plan: String,
    requests: u64,
    admitted: u64,
}

type Shards<T> = Box<[Mutex<HashMap<KeyId, T>>]>;

fn shards<T>() -> Shards<T> {
    (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect()
}

/// This sidecar's view of every global quota.
pub struct Quotas {
    shares: Shards<Share>,
    peers: Mutex<HashMap<String, u32>>,
    demand: Shards<Demand>,
    /// Keys with demand since the last report; past `max_keys` demand is dropped, counted.
    pending: AtomicU64,
    max_keys: usize,
    dropped: AtomicU64,
    /// Live decisions under a global quota, and of them those on the 1/N fallback share
    /// (no share from the control plane), for the sidecar's metrics.
    decided: AtomicU64,
    on_fallback: AtomicU64,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Quotas").field("dropped", &self.dropped.load(Ordering::Relaxed)).finish()
    }
}

impl Default for Quotas {
    fn default() -> Self {
        Quotas::new(MAX_BATCH)
    }
}

impl Quotas {
    pub fn new(max_keys: usize) -> Self {
        Quotas {
            shares: shards(),
            peers: Mutex::new(HashMap::new()),
            demand: shards(),
            pending: AtomicU64::new(0),
            max_keys,
            dropped: AtomicU64::new(0),
            decided: AtomicU64::new(0),
            on_fallback: AtomicU64::new(0),
        }
    }

    /// The share of the quota this sidecar may use for `key` now.
    pub fn fraction(&self, limit: &str, key: &[u8], now: Instant) -> f64 {
        self.share(limit, key, now).0
    }

    /// `fraction` for a live decision, counted (see `decisions`).
    pub fn decided_fraction(&self, limit: &str, key: &[u8], now: Instant) -> f64 {
        let (fraction, assigned) = self.share(limit, key, now);
        self.decided.fetch_add(1, Ordering::Relaxed);
        if !assigned {
            self.on_fallback.fetch_add(1, Ordering::Relaxed);
        }
        fraction
    }

    /// Live decisions under a global quota so far, and of them those on the fallback share.
    pub fn decisions(&self) -> (u64, u64) {
        (self.decided.load(Ordering::Relaxed), self.on_fallback.load(Ordering::Relaxed))
    }

    /// The share, and whether the control plane assigned it (else it is the fallback).
    pub fn share(&self, limit: &str, key: &[u8], now: Instant) -> (f64, bool) {
        let id = key_id(limit, key);
        let assigned = {
            let shares = self.shares[shard_of(&id)].lock().unwrap_or_else(PoisonError::into_inner);
            shares.get(&id).filter(|s| s.until > now).map(|s| s.fraction)
        };
        match assigned {
            Some(f) => (f, true),
            None => {
                let peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
                (1.0 / f64::from(peers.get(limit).copied().unwrap_or(1).max(1)), false)
            }
        }
    }

    /// A quota's rate scaled to a share: the same count over a longer period.
    pub fn scaled(rate: &RateDef, fraction: f64) -> RateDef {
        let f = fraction.clamp(MIN_FRACTION, 1.0);
        let burst = ((rate.burst as f64) * f).round().max(1.0) as u64;
        RateDef { count: rate.count, period: rate.period.div_f64(f), burst }
    }

    /// Counts one request for the next report.
    pub fn record(&self, limit: &str, key: &[u8], plan: Option<&str>, admitted: bool) {
        let id = key_id(limit, key);
        let mut demand = self.demand[shard_of(&id)].lock().unwrap_or_else(PoisonError::into_inner);
        let d = match demand.get_mut(&id) {
            Some(d) => d,
            None if self.pending.fetch_add(1, Ordering::Relaxed) >= self.max_keys as u64 => {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                self.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            None => demand.entry(id).or_insert_with(|| Demand {
                limit: limit.to_owned(),
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
        let mut out = Vec::new();
        for shard in &self.demand {
            let drained = std::mem::take(&mut *shard.lock().unwrap_or_else(PoisonError::into_inner));
            out.extend(drained.into_iter().map(|(id, d)| pb::QuotaUsage {
                limit: d.limit,
                key: id.to_vec(),
                plan: d.plan,
                requests: d.requests,
                admitted: d.admitted,
            }));
        }
        self.pending.fetch_sub(out.len() as u64, Ordering::Relaxed);
        out
    }

    /// Takes in the control plane's answer. Each shard's new entries are built before its
    /// lock is taken.
    pub fn apply(&self, reply: &pb::ReportReply, now: Instant) {
        let mut by_shard: Vec<Vec<(KeyId, Share)>> = (0..SHARDS).map(|_| Vec::new()).collect();
        for s in &reply.shares {
            // Shares come off the wire: nothing that is not a proper fraction is applied.
            let (Ok(id), true) = (KeyId::try_from(s.key.as_slice()), s.fraction.is_finite()) else { continue };
            let share =
                Share { fraction: s.fraction.clamp(MIN_FRACTION, 1.0), until: now + Duration::from_millis(s.ttl_ms) };
            by_shard[shard_of(&id)].push((id, share));
        }
        for (shard, new) in self.shares.iter().zip(by_shard) {
            let mut shares = shard.lock().unwrap_or_else(PoisonError::into_inner);
            shares.retain(|_, s| s.until > now);
            shares.extend(new);
        }
        if !reply.peers.is_empty() {
            let mut peers = self.peers.lock().unwrap_or_else(PoisonError::into_inner);
            for p in &reply.peers {
                let n = p.sidecars.max(1);
                if peers.insert(p.limit.clone(), n) != Some(n) {
                    tracing::info!(limit = %p.limit, sidecars = n, "global quota shared by {n} sidecars");
                }
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
        let share =
            |fraction| pb::QuotaShare { limit: "l".into(), key: key_id("l", b"k").to_vec(), fraction, ttl_ms: 1000 };
        let reply = pb::ReportReply {
            shares: vec![share(0.25)],
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
        q.apply(&pb::ReportReply { shares: vec![share(f64::NAN)], peers: vec![] }, now);
        assert_eq!(q.fraction("l", b"k", now), 0.25, "a share that is not a number is ignored");
    }

    #[test]
    fn demand_is_counted_per_key_and_drained_by_each_report() {
        let q = Quotas::new(2);
        q.record("l", b"a", Some("pro"), true);
        q.record("l", b"a", Some("pro"), false);
        q.record("l", b"b", None, true);
        q.record("l", b"c", None, true);
        let usage = q.take_usage();
        let find = |k: &[u8]| {
            usage.iter().find(|u| u.key == key_id("l", k)).map(|u| (u.requests, u.admitted, u.plan.as_str()))
        };
        assert_eq!(find(b"a"), Some((2, 1, "pro")));
        assert_eq!(find(b"b"), Some((1, 1, "")));
        assert_eq!(usage.len(), 2);
        assert_eq!(q.dropped(), 1, "a third key does not fit a batch of two");
        assert!(q.take_usage().is_empty());
    }
}

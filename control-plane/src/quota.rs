//! Global quotas, divided by demand (after RLQS and Doorman). Every sidecar reports, per
//! global limit and key, how many requests it saw in the last interval; the control plane
//! keeps each sidecar's recent demand (a moving average) and answers each report with the
//! sidecar's share: its demand over everyone's demand for that key. The shares of all
//! sidecars add up to the whole quota, each sidecar enforces its share locally with GCRA,
//! and no request ever waits on the network.
//!
//! Demand not refreshed for `STALE` counts as zero and is forgotten; a share is valid for
//! `TTL`, after which a sidecar falls back to 1/N of the quota (N = the sidecars sharing the
//! limit, sent with every answer).
//!
//! With several replicas, each sees only the sidecars connected to it: the others'
//! demand (and how many sidecars share each limit there) comes in through the store
//! (`ops/quotas.rs` exchanges it) and counts in every denominator here, so the shares of
//! all sidecars on all replicas still add up to the whole quota.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// One sidecar's requests on one key of a global limit over a report's interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub limit: String,
    pub key: Vec<u8>,
    pub requests: u64,
}

/// A sidecar's share of one key's quota.
#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    pub limit: String,
    pub key: Vec<u8>,
    /// Of the limit's rate and burst, in (0, 1].
    pub fraction: f64,
    /// Valid this long; then the sidecar's 1/N fallback applies again.
    pub ttl_ms: u64,
}

/// The answer to a report: shares, and how many sidecars share each of its global limits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reply {
    pub shares: Vec<Share>,
    /// (limit, sidecars sharing it).
    pub peers: Vec<(String, u32)>,
}

/// Demand older than this no longer counts.
const STALE: Duration = Duration::from_secs(2);
/// How long a share is valid at the sidecar.
const TTL: Duration = Duration::from_secs(2);
/// Weight of the newest interval in the moving average.
const ALPHA: f64 = 0.5;
/// How often the peer counts are recomputed and stale demand swept.
const HOUSEKEEPING: Duration = Duration::from_secs(1);

struct Demand {
    /// Requests per second, smoothed.
    rate: f64,
    at: Instant,
}

/// A report stream: which sidecar, and the global limits its service has.
struct Stream {
    limits: Vec<String>,
}

/// Keys per batch looked at (sidecars send at most this many).
const MAX_BATCH: usize = 10_000;

/// Per sidecar stream, for one key.
type ByStream = HashMap<u64, Demand>;

#[derive(Default)]
struct Board {
    /// By limit, then key (a 16-byte digest), then sidecar stream.
    demand: HashMap<String, HashMap<Vec<u8>, ByStream>>,
    streams: HashMap<u64, Stream>,
    peers: HashMap<String, u32>,
    housekept: Option<Instant>,
    /// Other replicas' demand (requests per second), by limit and key, as last exchanged.
    remote: HashMap<String, HashMap<Vec<u8>, f64>>,
    /// How many sidecars share each limit on other replicas.
    remote_peers: HashMap<String, u32>,
}

/// One replica's demand on one key of a global limit.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDemand {
    pub limit: String,
    pub key: Vec<u8>,
    /// Requests per second, smoothed.
    pub rate: f64,
}

/// Every sidecar's demand on every global quota key.
#[derive(Default)]
pub struct QuotaBoard {
    board: Mutex<Board>,
}

impl QuotaBoard {
    /// A report stream opened for a service with these global limits.
    pub fn open(&self, stream: u64, limits: Vec<String>) {
        let mut b = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        b.streams.insert(stream, Stream { limits });
        b.housekept = None;
    }

    /// Keeps a stream's list of global limits current (its policy may change).
    pub fn set_limits(&self, stream: u64, limits: Vec<String>) {
        let mut b = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(s) = b.streams.get_mut(&stream)
            && s.limits != limits
        {
            s.limits = limits;
            b.housekept = None;
        }
    }

    /// The stream ended: its demand no longer counts.
    pub fn close(&self, stream: u64) {
        let mut b = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        b.streams.remove(&stream);
        for keys in b.demand.values_mut() {
            for sidecars in keys.values_mut() {
                sidecars.remove(&stream);
            }
            keys.retain(|_, s| !s.is_empty());
        }
        b.demand.retain(|_, k| !k.is_empty());
        b.housekept = None;
    }

    /// Records a report of `usage` over `interval_ms` and answers it with this sidecar's shares.
    pub fn report(&self, stream: u64, interval_ms: u64, usage: &[Usage], now: Instant) -> Reply {
        let mut b = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        if b.housekept.is_none_or(|t| now.duration_since(t) >= HOUSEKEEPING) {
            b.housekeep(now);
        }
        let secs = (interval_ms.max(1) as f64) / 1000.0;
        let usage = &usage[..usage.len().min(MAX_BATCH)];
        let mut shares = Vec::with_capacity(usage.len());
        // A sidecar speaks only for the global limits its own service's policy has: its
        // token must not let it weigh on (or learn) another service's quotas.
        let own: Vec<String> = b.streams.get(&stream).map(|s| s.limits.clone()).unwrap_or_default();
        for u in usage.iter().filter(|u| own.contains(&u.limit)) {
            // Looked up before inserting: most keys are there already, and need no copy.
            if !b.demand.contains_key(&u.limit) {
                b.demand.insert(u.limit.clone(), HashMap::new());
            }
            let Some(keys) = b.demand.get_mut(&u.limit) else { continue };
            if !keys.contains_key(u.key.as_slice()) {
                keys.insert(u.key.clone(), HashMap::new());
            }
            let Some(sidecars) = keys.get_mut(u.key.as_slice()) else { continue };
            let observed = u.requests as f64 / secs;
            let d = sidecars.entry(stream).or_insert(Demand { rate: observed, at: now });
            if now.duration_since(d.at) < STALE {
                d.rate = ALPHA * observed + (1.0 - ALPHA) * d.rate;
            } else {
                d.rate = observed;
            }
            d.at = now;
            let own = d.rate;
            let local: f64 = sidecars.values().filter(|d| now.duration_since(d.at) < STALE).map(|d| d.rate).sum();
            let remote = b.remote.get(&u.limit).and_then(|k| k.get(u.key.as_slice())).copied().unwrap_or(0.0);
            let total = local + remote;
            let fraction = if total > 0.0 { own / total } else { 1.0 };
            shares.push(Share { limit: u.limit.clone(), key: u.key.clone(), fraction, ttl_ms: TTL.as_millis() as u64 });
        }
        let peers = match b.streams.get(&stream) {
            Some(s) => s
                .limits
                .iter()
                .map(|l| {
                    let here = b.peers.get(l).copied().unwrap_or(1);
                    (l.clone(), here + b.remote_peers.get(l).copied().unwrap_or(0))
                })
                .collect(),
            None => Vec::new(),
        };
        Reply { shares, peers }
    }

    /// This replica's fresh demand, summed over its sidecars, and how many of its
    /// sidecars share each global limit: what it tells the other replicas.
    pub fn local(&self, now: Instant) -> (Vec<KeyDemand>, Vec<(String, u32)>) {
        let mut b = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        if b.housekept.is_none_or(|t| now.duration_since(t) >= HOUSEKEEPING) {
            b.housekeep(now);
        }
        let mut demand = Vec::new();
        for (limit, keys) in &b.demand {
            for (key, sidecars) in keys {
                let rate: f64 = sidecars.values().filter(|d| now.duration_since(d.at) < STALE).map(|d| d.rate).sum();
                if rate > 0.0 {
                    demand.push(KeyDemand { limit: limit.clone(), key: key.clone(), rate });
                }
            }
        }
        (demand, b.peers.iter().map(|(l, n)| (l.clone(), *n)).collect())
    }

    /// What the other replicas' sidecars demand, and how many share each limit there.
    pub fn set_remote(&self, demand: Vec<KeyDemand>, peers: Vec<(String, u32)>) {
        let mut remote: HashMap<String, HashMap<Vec<u8>, f64>> = HashMap::new();
        for d in demand {
            *remote.entry(d.limit).or_default().entry(d.key).or_default() += d.rate;
        }
        let mut b = self.board.lock().unwrap_or_else(PoisonError::into_inner);
        b.remote = remote;
        b.remote_peers = peers.into_iter().collect();
    }

    /// Keys with fresh demand.
    pub fn active_keys(&self) -> usize {
        self.board.lock().unwrap_or_else(PoisonError::into_inner).demand.values().map(HashMap::len).sum()
    }
}

impl Board {
    fn housekeep(&mut self, now: Instant) {
        for keys in self.demand.values_mut() {
            for sidecars in keys.values_mut() {
                sidecars.retain(|_, d| now.duration_since(d.at) < STALE);
            }
            keys.retain(|_, s| !s.is_empty());
        }
        self.demand.retain(|_, k| !k.is_empty());
        self.peers.clear();
        for s in self.streams.values() {
            for l in &s.limits {
                *self.peers.entry(l.clone()).or_default() += 1;
            }
        }
        self.housekept = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(requests: u64) -> Vec<Usage> {
        vec![Usage { limit: "q".into(), key: b"acme".to_vec(), requests }]
    }

    #[test]
    fn a_sidecar_cannot_report_for_a_limit_its_service_does_not_have() {
        let board = QuotaBoard::default();
        board.open(1, vec!["theirs".into()]);
        board.open(2, vec!["mine".into()]);
        let mut foreign = batch(1000);
        foreign[0].limit = "theirs".into();
        assert!(board.report(2, 250, &foreign, Instant::now()).shares.is_empty());
        assert_eq!(board.active_keys(), 0, "nothing recorded");
    }

    #[test]
    fn shares_follow_demand_and_add_up_to_the_whole_quota() {
        let board = QuotaBoard::default();
        for s in 1..=3 {
            board.open(s, vec!["q".into()]);
        }
        let t0 = Instant::now();
        let mut fractions = [0.0; 3];
        // Demand 60 / 30 / 10 per interval, a few rounds to settle the averages.
        for round in 0..4 {
            let now = t0 + Duration::from_millis(250 * round);
            for (i, n) in [60, 30, 10].into_iter().enumerate() {
                let reply = board.report(i as u64 + 1, 250, &batch(n), now);
                fractions[i] = reply.shares[0].fraction;
                assert_eq!(reply.peers, [("q".to_owned(), 3)]);
            }
        }
        assert!((fractions[0] - 0.6).abs() < 0.01 && (fractions[2] - 0.1).abs() < 0.01, "{fractions:?}");
        assert!((fractions.iter().sum::<f64>() - 1.0).abs() < 0.01, "{fractions:?}");

        // Another replica's sidecars demanding as much again halve every share here, and
        // count among the peers.
        board.set_remote(
            vec![KeyDemand { limit: "q".into(), key: b"acme".to_vec(), rate: 400.0 }],
            vec![("q".into(), 2)],
        );
        let reply = board.report(1, 250, &batch(60), t0 + Duration::from_millis(1_000));
        assert!((reply.shares[0].fraction - 0.3).abs() < 0.01, "{reply:?}");
        assert_eq!(reply.peers, [("q".to_owned(), 5)]);
        let (local, peers) = board.local(t0 + Duration::from_millis(1_000));
        assert_eq!(local.len(), 1);
        assert!((local[0].rate - 400.0).abs() < 1.0, "60+30+10 per 250 ms: {local:?}");
        assert_eq!(peers, [("q".to_owned(), 3)]);
        board.set_remote(Vec::new(), Vec::new());

        // A sidecar that stops sending counts for nothing once its demand is stale.
        let later = t0 + Duration::from_secs(10);
        assert_eq!(board.report(1, 250, &batch(60), later).shares[0].fraction, 1.0);
        board.close(1);
        assert_eq!(board.report(2, 250, &batch(10), later).peers[0].1, 2);
    }
}

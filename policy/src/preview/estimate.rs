//! Local rate limits, estimated from the samples' recorded rate: one token bucket per
//! sidecar (local limits count per sidecar), limit definition and key, fed each forwarded
//! sample's weight (the requests it stands for) at its time, in time order. What a bucket
//! cannot admit of a sample's weight is the share of it the limit would refuse. An
//! estimate, and reported as one: a drawn sample's weight arrives at its one instant, so
//! within a second the estimate errs toward refusing more.

use std::collections::HashMap;
use std::sync::Arc;

use crate::limits::limit::Limit;
use crate::preview::replay::LimitUse;

/// One forwarded sample's sidecar, weight, time and limits.
pub struct Fed<'a> {
    /// Local limits count per sidecar.
    pub instance: &'a str,
    pub unix_ms: i64,
    pub weight: f64,
    pub limits: &'a [LimitUse],
}

/// A bucket: tokens held, as of when.
struct Bucket {
    tokens: f64,
    at_ms: i64,
}

/// For each of `fed` (any order), the share of its weight its limits would refuse and the
/// limit that would (None: all admitted). Dry-run limits refuse nothing; global limits
/// are the caller's to judge.
pub fn refused_shares(fed: &[Fed<'_>]) -> Vec<Option<(f64, Arc<Limit>)>> {
    let mut order: Vec<usize> = (0..fed.len()).collect();
    order.sort_by_key(|&i| fed[i].unix_ms);
    let mut buckets: HashMap<(&str, String, Vec<u8>), Bucket> = HashMap::new();
    let mut out = vec![None; fed.len()];
    for i in order {
        let f = &fed[i];
        if f.weight <= 0.0 {
            continue;
        }
        let enforced: Vec<&LimitUse> = f.limits.iter().filter(|u| !u.limit.dry_run && !u.limit.global).collect();
        // The share every limit has tokens for; the first tightest is the one that refuses.
        let mut admitted = 1.0f64;
        let mut tightest = None;
        for u in &enforced {
            let b = bucket(&mut buckets, f.instance, u, f.unix_ms);
            let share = (b.tokens / f.weight).min(1.0);
            if share < admitted {
                admitted = share;
                tightest = Some(u.limit.clone());
            }
        }
        for u in &enforced {
            bucket(&mut buckets, f.instance, u, f.unix_ms).tokens -= admitted * f.weight;
        }
        out[i] = tightest.map(|l| (1.0 - admitted, l));
    }
    out
}

/// The key's bucket on `instance`, refilled up to `at_ms`.
fn bucket<'b, 'i>(
    buckets: &'b mut HashMap<(&'i str, String, Vec<u8>), Bucket>,
    instance: &'i str,
    u: &LimitUse,
    at_ms: i64,
) -> &'b mut Bucket {
    let burst = u.rate.burst.max(1) as f64;
    let per_ms = u.rate.count as f64 / (u.rate.period.as_secs_f64() * 1000.0).max(f64::MIN_POSITIVE);
    let b = buckets
        .entry((instance, u.limit.fingerprint.clone(), u.key.clone()))
        .or_insert(Bucket { tokens: burst, at_ms });
    let elapsed = (at_ms - b.at_ms).max(0) as f64;
    b.tokens = (b.tokens + elapsed * per_ms).min(burst);
    b.at_ms = b.at_ms.max(at_ms);
    b
}

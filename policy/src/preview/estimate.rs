//! Local rate limits, estimated from the samples' recorded rate: one token bucket per
//! limit definition and key, fed each forwarded sample's weight (the requests it stands
//! for) at its time, in time order. What a bucket cannot admit of a sample's weight is
//! the share of it the limit would refuse. An estimate, and reported as one: samples are
//! a second's traffic at a time, not each request's instant.

use std::collections::HashMap;
use std::sync::Arc;

use crate::limits::limit::Limit;
use crate::preview::replay::LimitUse;

/// One forwarded sample's weight, time and limits.
pub struct Fed<'a> {
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
    let mut buckets: HashMap<(String, Vec<u8>), Bucket> = HashMap::new();
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
            let b = bucket(&mut buckets, u, f.unix_ms);
            let share = (b.tokens / f.weight).min(1.0);
            if share < admitted {
                admitted = share;
                tightest = Some(u.limit.clone());
            }
        }
        for u in &enforced {
            bucket(&mut buckets, u, f.unix_ms).tokens -= admitted * f.weight;
        }
        out[i] = tightest.map(|l| (1.0 - admitted, l));
    }
    out
}

/// The key's bucket, refilled up to `at_ms`.
fn bucket<'b>(buckets: &'b mut HashMap<(String, Vec<u8>), Bucket>, u: &LimitUse, at_ms: i64) -> &'b mut Bucket {
    let burst = u.rate.burst.max(1) as f64;
    let per_ms = u.rate.count as f64 / (u.rate.period.as_secs_f64() * 1000.0).max(f64::MIN_POSITIVE);
    let b = buckets.entry((u.limit.fingerprint.clone(), u.key.clone())).or_insert(Bucket { tokens: burst, at_ms });
    let elapsed = (at_ms - b.at_ms).max(0) as f64;
    b.tokens = (b.tokens + elapsed * per_ms).min(burst);
    b.at_ms = b.at_ms.max(at_ms);
    b
}

//! The counters behind a limit: GCRA (the generic cell rate algorithm), one `u64` per key.
//!
//! GCRA stores for each key its "theoretical arrival time" (TAT): when the key's bucket
//! would be empty again. A request at `now` would move it to `max(TAT, now) + T` (T = the
//! period divided by the rate's count); it is admitted if that is no further than
//! `burst × T` ahead of `now`. That is a token bucket of depth `burst` refilled at the
//! rate, exactly, with no refill timer and nothing to store but one number: and a key
//! whose TAT has passed is indistinguishable from a key never seen, so forgetting it loses
//! nothing. That is what keeps memory bounded under a flood of random addresses.
//!
//! Keys are hashed (SipHash with a per-process random key, so nobody can aim collisions)
//! into 64 shards, each a small map behind its own lock: a check is one hash, one lock of
//! one shard, one map probe. When a shard is full, keys whose TAT has passed go first (no
//! loss); if it is still more than 7/8 full, live keys are dropped down to 7/8 and counted
//! (those keys start fresh: the limit errs towards admitting, never towards unbounded
//! memory), so a full shard is scanned once per eighth of its size, not per new key.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex, PoisonError};
use std::time::{Duration, Instant};

const SHARDS: usize = 64;

/// The process's clock for limits: nanoseconds since it started.
pub fn now_ns() -> u64 {
    static START: LazyLock<Instant> = LazyLock::new(Instant::now);
    u64::try_from(START.elapsed().as_nanos()).unwrap_or(u64::MAX)
}

/// A rate as GCRA uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDef {
    /// Requests per period.
    pub count: u64,
    pub period: Duration,
    /// Requests allowed at once.
    pub burst: u64,
}

impl RateDef {
    /// T: the time one request "costs".
    fn interval_ns(&self) -> u64 {
        (u64::try_from(self.period.as_nanos()).unwrap_or(u64::MAX) / self.count.max(1)).max(1)
    }
}

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Requests left: after this one when it was taken; when only peeking, how many
    /// would be admitted right now.
    pub remaining: u64,
    /// When denied: how long until one request would be admitted.
    pub retry_after: Duration,
    /// How long until the bucket is full again (the whole burst available).
    pub reset: Duration,
}

/// The counters of one limit definition, shared by every snapshot that has it.
#[derive(Debug)]
pub struct Buckets {
    shards: Box<[Mutex<HashMap<u64, u64>>]>,
    hasher: RandomState,
    per_shard: usize,
    evicted: AtomicU64,
}

impl Buckets {
    /// Counters for at most `max_keys` keys at once.
    pub fn new(max_keys: usize) -> Buckets {
        Buckets {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: max_keys.div_ceil(SHARDS).max(8),
            evicted: AtomicU64::new(0),
        }
    }

    /// Checks one request for `key` at `now` (see `now_ns`); with `take`, an admitted
    /// request is counted.
    pub fn check(&self, key: &[u8], rate: &RateDef, now: u64, take: bool) -> Verdict {
        let h = self.hasher.hash_one(key);
        let mut shard = self.shards[(h % SHARDS as u64) as usize].lock().unwrap_or_else(PoisonError::into_inner);
        let t = rate.interval_ns();
        let depth = t.saturating_mul(rate.burst.max(1));
        // A TAT further ahead than one whole bucket can only come from a slower rate for
        // the same key (a global quota's share was small a moment ago): the bucket is
        // empty, not in debt, so it refills at the current rate from now on.
        let full = now.saturating_add(depth);
        let tat = match shard.get_mut(&h) {
            Some(tat) if *tat > full => {
                *tat = full;
                full
            }
            Some(tat) => (*tat).max(now),
            None => now,
        };
        let used = tat.saturating_add(t) - now;
        if used > depth {
            return Verdict {
                allowed: false,
                remaining: 0,
                retry_after: Duration::from_nanos(used - depth),
                reset: Duration::from_nanos(tat - now),
            };
        }
        if take {
            if shard.len() >= self.per_shard && !shard.contains_key(&h) {
                self.make_room(&mut shard, now);
            }
            shard.insert(h, now + used);
        }
        let after = (depth - used) / t;
        Verdict {
            allowed: true,
            remaining: if take { after } else { after + 1 },
            retry_after: Duration::ZERO,
            reset: Duration::from_nanos(if take { used } else { tat - now }),
        }
    }

    /// Keys tracked right now.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keys dropped while still counting (a full shard of live keys).
    pub fn evicted(&self) -> u64 {
        self.evicted.load(Ordering::Relaxed)
    }

    fn make_room(&self, shard: &mut HashMap<u64, u64>, now: u64) {
        shard.retain(|_, tat| *tat > now);
        // Down to 7/8 full either way, so the next new keys do not scan the shard again.
        let keep = self.per_shard - self.per_shard / 8 - 1;
        if shard.len() <= keep {
            return;
        }
        let drop: Vec<u64> = shard.keys().take(shard.len() - keep).copied().collect();
        for k in &drop {
            shard.remove(k);
        }
        self.evicted.fetch_add(drop.len() as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn rate(count: u64, secs: u64, burst: u64) -> RateDef {
        RateDef { count, period: Duration::from_secs(secs), burst }
    }

    #[test]
    fn a_burst_then_the_rate() {
        let b = Buckets::new(1000);
        let r = rate(5, 60, 5); // 5/min: one every 12 s, 5 at once
        let now = 100 * SEC;
        for left in (0..5).rev() {
            let v = b.check(b"ip", &r, now, true);
            assert!(v.allowed);
            assert_eq!(v.remaining, left);
        }
        let v = b.check(b"ip", &r, now, true);
        assert!(!v.allowed);
        assert_eq!(v.retry_after, Duration::from_secs(12));
        assert_eq!(v.reset, Duration::from_secs(60));
        assert!(!b.check(b"ip", &r, now + 11 * SEC, true).allowed);
        assert!(b.check(b"ip", &r, now + 12 * SEC, true).allowed, "one more after T");
        assert!(!b.check(b"ip", &r, now + 12 * SEC, true).allowed);
        assert!(b.check(b"other", &r, now, true).allowed, "keys are separate");
    }

    #[test]
    fn over_any_window_at_most_burst_plus_rate_times_window() {
        let b = Buckets::new(1000);
        let r = rate(100, 60, 10);
        let (mut admitted, start) = (0, 50 * SEC);
        // A request every 10 ms for 60 s: 6,000 offered.
        for i in 0..6000 {
            if b.check(b"k", &r, start + i * SEC / 100, true).allowed {
                admitted += 1;
            }
        }
        assert!((100..=110).contains(&admitted), "{admitted}");
    }

    #[test]
    fn a_rate_that_grows_refills_at_the_new_rate_with_no_debt_from_the_old() {
        let b = Buckets::new(1000);
        // A global quota's share of 0.1 %: one request costs 100 s.
        let tiny = RateDef { count: 10, period: Duration::from_secs(1000), burst: 1 };
        assert!(b.check(b"k", &tiny, SEC, true).allowed);
        // The share grows to 70 %: 7/s. The bucket is empty, and one request later it has
        // refilled one a seventh of a second later, not 100 s later.
        let big = RateDef { count: 10, period: Duration::from_millis(1430), burst: 4 };
        assert!(!b.check(b"k", &big, SEC, true).allowed);
        assert!(b.check(b"k", &big, SEC + SEC / 6, true).allowed);
    }

    #[test]
    fn a_peek_takes_nothing() {
        let b = Buckets::new(1000);
        let r = rate(1, 1, 1);
        assert!(b.check(b"k", &r, SEC, false).allowed);
        assert!(b.check(b"k", &r, SEC, false).allowed);
        assert!(b.check(b"k", &r, SEC, true).allowed);
        assert!(!b.check(b"k", &r, SEC, false).allowed);
    }

    #[test]
    fn memory_stays_bounded_under_a_flood_of_new_keys() {
        let b = Buckets::new(6400);
        let r = rate(1, 3600, 1);
        for i in 0u64..200_000 {
            b.check(&i.to_le_bytes(), &r, SEC, true);
        }
        assert!(b.len() <= 6400, "{}", b.len());
        assert!(b.evicted() > 0);
        // Keys whose time has passed are dropped first, and losslessly.
        let b = Buckets::new(6400);
        let quick = rate(1000, 1, 1);
        for i in 0u64..200_000 {
            b.check(&i.to_le_bytes(), &quick, SEC + i * 10_000_000, true);
        }
        assert_eq!(b.evicted(), 0, "every key had expired before its slot was needed");
    }
}

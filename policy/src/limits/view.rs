//! Where limits count: a `LimitView`. The sidecar's is `Counters`, its live GCRA buckets
//! and global quota shares (`Shadowed` for a rollout's candidate in shadow: its own
//! buckets, the same shares, no demand reported); `wardenctl explain` uses `Known`, which counts nothing and
//! knows only the budgets a running sidecar reported (or none). `decide` reads limits
//! only through this, so both run the same limit code.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use crate::limits::gcra::{Buckets, RateDef, Verdict};
use crate::limits::global::Quotas;
use crate::limits::limit::Limit;

/// A limit's counters, as `decide` sees them.
pub trait LimitView {
    /// `key`'s budget under `limit` at `rate`, taken (counted) when `take`. None: this
    /// view cannot say, and the request is taken to be admitted.
    fn check(&self, limit: &Limit, key: &[u8], plan: Option<&str>, rate: &RateDef, take: bool) -> Option<Verdict>;

    /// The share of a global quota enforced here for `key` (1 where there is no one to ask).
    fn share(&self, _limit: &Limit, _key: &[u8]) -> f64 {
        1.0
    }

    /// Counts one request's demand on a global quota, for the next report.
    fn record(&self, _limit: &Limit, _key: &[u8], _plan: Option<&str>, _admitted: bool) {}
}

/// The sidecar's live counters: the active snapshot's buckets (by `Limit::index`) and
/// this sidecar's shares of global quotas, at one instant.
pub struct Counters<'a> {
    pub buckets: &'a [Arc<Buckets>],
    pub quotas: &'a Quotas,
    pub now: Instant,
    /// `gcra::now_ns` at `now`.
    pub now_ns: u64,
}

impl LimitView for Counters<'_> {
    fn check(&self, limit: &Limit, key: &[u8], _plan: Option<&str>, rate: &RateDef, take: bool) -> Option<Verdict> {
        let buckets = self.buckets.get(limit.index)?;
        Some(buckets.check(key, rate, self.now_ns, take))
    }

    fn share(&self, limit: &Limit, key: &[u8]) -> f64 {
        self.quotas.decided_fraction(&limit.name, key, self.now)
    }

    fn record(&self, limit: &Limit, key: &[u8], plan: Option<&str>, admitted: bool) {
        self.quotas.record(&limit.name, key, plan, admitted);
    }
}

/// A shadow candidate's counters: its own buckets and the live shares of global quotas,
/// but no demand reported (a request counts once in the fleet's quotas, as live decided).
pub struct Shadowed<'a>(pub Counters<'a>);

impl LimitView for Shadowed<'_> {
    fn check(&self, limit: &Limit, key: &[u8], plan: Option<&str>, rate: &RateDef, take: bool) -> Option<Verdict> {
        self.0.check(limit, key, plan, rate, take)
    }

    fn share(&self, limit: &Limit, key: &[u8]) -> f64 {
        // Not counted: the live decision of the same request was.
        self.0.quotas.fraction(&limit.name, key, self.0.now)
    }
}

/// What a limit was asked about by a read-only decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub limit: Arc<str>,
    pub key: Vec<u8>,
    pub plan: Option<String>,
}

/// Read-only: the verdicts known ahead (a running sidecar's, from its `/limits/peek`),
/// keyed by limit name and key; for anything else it cannot say, and remembers what it
/// was asked so the caller can fetch it and decide again.
#[derive(Debug, Default)]
pub struct Known {
    pub verdicts: HashMap<(Arc<str>, Vec<u8>), Verdict>,
    asked: RefCell<Vec<Asked>>,
}

impl Known {
    /// What it was asked and could not answer.
    pub fn unanswered(&self) -> Vec<Asked> {
        self.asked.borrow().clone()
    }
}

impl LimitView for Known {
    fn check(&self, limit: &Limit, key: &[u8], plan: Option<&str>, _rate: &RateDef, _take: bool) -> Option<Verdict> {
        let known = self.verdicts.get(&(limit.name.clone(), key.to_vec())).copied();
        if known.is_none() {
            let asked = Asked { limit: limit.name.clone(), key: key.to_vec(), plan: plan.map(str::to_owned) };
            let mut all = self.asked.borrow_mut();
            if !all.contains(&asked) {
                all.push(asked);
            }
        }
        known
    }
}

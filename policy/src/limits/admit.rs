//! A route's limits against one request: first every limit is checked without counting,
//! so a request one limit refuses does not use up the others; then, if all admit it, it
//! is counted in each. Reads counters only through a `LimitView`.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;

use crate::decide::trace::{Trace, note};
use crate::limits::gcra::{RateDef, Verdict};
use crate::limits::global::Quotas;
use crate::limits::limit::{Limit, LimitRequest};
use crate::limits::view::LimitView;
use crate::refusal::{RateLimitHeaders, Refusal};
use crate::yaml::units::{format_rate, period_word};

/// Checks `limits` in order. Err: the first limit that refuses and enforces. Ok: the
/// tightest limit's headers, and every dry-run limit that would have refused.
pub fn admit(
    limits: &[Arc<Limit>],
    req: &LimitRequest<'_>,
    view: &dyn LimitView,
    mut trace: Option<&mut Trace>,
) -> Result<(Option<RateLimitHeaders>, Vec<Refusal>), Refusal> {
    let plan = req.identity.and_then(|i| i.plan.as_deref());
    let mut would_deny = Vec::new();
    let mut checks = Vec::with_capacity(limits.len());
    for l in limits {
        let Some(quota) = l.rate_for(plan) else {
            note(&mut trace, "limit", || {
                format!("{}: does not apply (plan {} not listed, no default)", l.name, plan.unwrap_or("none"))
            });
            continue;
        };
        let key = l.key_of(req);
        // A global quota is enforced here at this sidecar's share of it.
        let rate = match l.global {
            true => Quotas::scaled(quota, view.share(l, &key)),
            false => *quota,
        };
        let v = view.check(l, &key, plan, &rate, false);
        note(&mut trace, "limit", || describe(l, quota, req, v.as_ref()));
        match v {
            Some(v) if !v.allowed => {
                if l.global {
                    view.record(l, &key, plan, false);
                }
                let refusal = refusal(l, quota, &v, &l.subject_of(req));
                if !l.dry_run {
                    return Err(refusal);
                }
                would_deny.push(refusal);
            }
            _ => checks.push((l, quota, rate, key)),
        }
    }
    // The limit closest to refusing names the `ratelimit` headers, built once at the end.
    let mut tightest: Option<(&Limit, &RateDef, Verdict)> = None;
    for (l, quota, rate, key) in checks {
        let Some(v) = view.check(l, &key, plan, &rate, true) else { continue };
        if l.global {
            view.record(l, &key, plan, v.allowed);
        }
        // Another request took the last token between the two passes.
        if !v.allowed {
            let refusal = refusal(l, quota, &v, &l.subject_of(req));
            if !l.dry_run {
                return Err(refusal);
            }
            would_deny.push(refusal);
            continue;
        }
        if tightest.as_ref().is_none_or(|(_, _, t)| v.remaining < t.remaining) {
            tightest = Some((l, quota, v));
        }
    }
    Ok((tightest.map(|(l, quota, v)| headers(l, quota, &v)), would_deny))
}

/// A limit, the key this request counts under, and its budget, for a trace.
fn describe(l: &Limit, rate: &RateDef, req: &LimitRequest<'_>, v: Option<&Verdict>) -> String {
    let mut about =
        format!("{}: {}, {} burst {}", l.name, l.subject_of(req), format_rate(rate.count, rate.period), rate.burst);
    if l.global {
        about.push_str(", global");
    }
    if l.dry_run {
        about.push_str(", dry run");
    }
    match v {
        Some(v) if v.allowed => {
            format!("{about}; {} left, whole again in {} s", v.remaining, ceil_secs(v.reset))
        }
        Some(v) => {
            format!("{about}; SPENT: the next request is refused, retry in {} s", ceil_secs(v.retry_after).max(1))
        }
        None => format!("{about}; budget not evaluated"),
    }
}

/// The IETF `RateLimit-Policy` / `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers):
/// the quota and window, and what is left and when it is whole again.
fn headers(l: &Limit, rate: &RateDef, v: &Verdict) -> RateLimitHeaders {
    let policy = format!("\"{}\";q={};w={}", l.name, rate.count, rate.period.as_secs().max(1));
    let limit = format!("\"{}\";r={};t={}", l.name, v.remaining, ceil_secs(v.reset));
    RateLimitHeaders {
        policy: HeaderValue::try_from(policy).unwrap_or_else(|_| HeaderValue::from_static("")),
        limit: HeaderValue::try_from(limit).unwrap_or_else(|_| HeaderValue::from_static("")),
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000).try_into().unwrap_or(u64::MAX)
}

fn refusal(l: &Limit, rate: &RateDef, v: &Verdict, subject: &str) -> Refusal {
    let retry = ceil_secs(v.retry_after).max(1);
    Refusal::RateLimited {
        rule: l.name.clone(),
        message: format!(
            "{subject} reached its limit of {} requests per {}. Retry in {retry} s.",
            rate.count,
            period_word(rate.period)
        ),
        retry_after: retry,
        headers: Box::new(headers(l, rate, v)),
    }
}

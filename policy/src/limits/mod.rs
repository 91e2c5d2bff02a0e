//! Rate limits and quotas: the compiled definitions a route names, and the check that
//! runs after auth. Counting is GCRA (`gcra.rs`); the counters live outside the snapshot,
//! found again by each limit's fingerprint, so a policy push resets nobody's budget unless
//! that limit's definition changed.
//!
//! A route's limits are checked in two passes: first without counting, so a request that
//! one limit refuses does not use up the others; then, if all admit it, counted in each.

pub mod gcra;
pub mod global;

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use warden_proto::v1 as pb;

pub use gcra::{Buckets, RateDef, Verdict, now_ns};
pub use global::Quotas;

use crate::auth::Identity;
use crate::refusal::{RateLimitHeaders, Refusal};
use crate::yaml::units::period_word;

/// What a limit counts separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    ClientIp,
    ClientId,
    Route,
    Header(HeaderName),
}

/// One compiled limit.
#[derive(Debug)]
pub struct Limit {
    pub name: Arc<str>,
    pub key: LimitKey,
    /// Without plans.
    pub rate: Option<RateDef>,
    pub plans: Vec<(String, RateDef)>,
    pub default: Option<RateDef>,
    pub global: bool,
    pub dry_run: bool,
    pub buckets: Arc<Buckets>,
}

/// Counters by limit fingerprint, held weakly: they live as long as a snapshot uses them
/// and are found again by the next snapshot with the same definition.
#[derive(Debug)]
pub struct LimitState {
    by_fingerprint: Mutex<HashMap<String, Weak<Buckets>>>,
    max_keys: usize,
}

impl LimitState {
    /// Each limit tracks at most `max_keys` keys at once.
    pub fn new(max_keys: usize) -> Self {
        LimitState { by_fingerprint: Mutex::new(HashMap::new()), max_keys }
    }

    fn buckets(&self, fingerprint: &str) -> Arc<Buckets> {
        let mut all = self.by_fingerprint.lock().unwrap_or_else(PoisonError::into_inner);
        all.retain(|_, b| b.strong_count() > 0);
        if let Some(b) = all.get(fingerprint).and_then(Weak::upgrade) {
            return b;
        }
        let b = Arc::new(Buckets::new(self.max_keys));
        all.insert(fingerprint.to_owned(), Arc::downgrade(&b));
        b
    }
}

impl Default for LimitState {
    fn default() -> Self {
        LimitState::new(100_000)
    }
}

impl Limit {
    pub fn compile(l: &pb::Limit, state: &LimitState) -> Result<Limit, String> {
        use pb::limit_key::Kind;
        let key = match l.key.as_ref().and_then(|k| k.kind.as_ref()) {
            Some(Kind::ClientIp(_)) => LimitKey::ClientIp,
            Some(Kind::ClientId(_)) => LimitKey::ClientId,
            Some(Kind::Route(_)) => LimitKey::Route,
            Some(Kind::Header(h)) => {
                LimitKey::Header(HeaderName::from_bytes(h.as_bytes()).map_err(|_| format!("bad header name '{h}'"))?)
            }
            None => return Err("no key".into()),
        };
        let rate = |r: &pb::Rate| -> Result<RateDef, String> {
            if r.count == 0 || r.period_ms == 0 {
                return Err("a rate of 0".into());
            }
            let burst = if l.burst == 0 { r.count } else { l.burst };
            Ok(RateDef { count: r.count, period: Duration::from_millis(r.period_ms), burst })
        };
        let plans = l
            .plans
            .iter()
            .map(|p| Ok((p.plan.clone(), rate(p.rate.as_ref().ok_or("a plan without a rate")?)?)))
            .collect::<Result<Vec<_>, String>>()?;
        let limit = Limit {
            name: l.name.as_str().into(),
            key,
            rate: l.rate.as_ref().map(rate).transpose()?,
            plans,
            default: l.default.as_ref().map(rate).transpose()?,
            global: l.global,
            dry_run: l.dry_run,
            buckets: state.buckets(&l.fingerprint),
        };
        if limit.rate.is_none() && limit.plans.is_empty() {
            return Err("no rate and no plans".into());
        }
        Ok(limit)
    }

    /// The rate for a caller of `plan`: the plan's, else `default`; `rate` without plans.
    /// None: this limit does not apply (a plan not listed and no default).
    pub fn rate_for(&self, plan: Option<&str>) -> Option<&RateDef> {
        if let Some(r) = &self.rate {
            return Some(r);
        }
        plan.and_then(|p| self.plans.iter().find(|(name, _)| name == p).map(|(_, r)| r)).or(self.default.as_ref())
    }

    /// One key's budget now, counting nothing.
    pub fn peek(&self, key: &[u8], rate: &RateDef) -> Verdict {
        self.buckets.check(key, rate, now_ns(), false)
    }

    /// The bytes counted under: borrowed from the request where they can be, so a
    /// check allocates nothing for a client id, route or header key.
    pub fn key_of<'r>(&self, req: &LimitRequest<'r>) -> Cow<'r, [u8]> {
        match &self.key {
            LimitKey::ClientIp => match crate::ipset::canonical(req.client_ip) {
                // One IPv6 subscriber holds a whole /64: counting per address would hand
                // it 2^64 budgets.
                IpAddr::V6(v6) => Cow::Owned(format!("{}/64", v6_net(v6)).into_bytes()),
                ip => Cow::Owned(ip.to_string().into_bytes()),
            },
            LimitKey::ClientId => Cow::Borrowed(req.identity.map_or(&b""[..], |id| id.client.as_bytes())),
            LimitKey::Route => Cow::Borrowed(req.route.as_bytes()),
            LimitKey::Header(h) => Cow::Borrowed(req.headers.get(h).map(HeaderValue::as_bytes).unwrap_or_default()),
        }
    }

    /// Who the key stands for, as a refusal tells the customer. Only built for a refusal.
    pub fn subject_of(&self, req: &LimitRequest<'_>) -> String {
        match &self.key {
            LimitKey::ClientIp => match crate::ipset::canonical(req.client_ip) {
                IpAddr::V6(v6) => format!("Network {}/64", v6_net(v6)),
                ip => format!("Address {ip}"),
            },
            LimitKey::ClientId => match req.identity {
                Some(id) => format!("Client '{}'", id.client),
                None => "An unidentified client".into(),
            },
            LimitKey::Route => format!("Route '{}'", req.route),
            LimitKey::Header(h) => {
                let v = req.headers.get(h).map(HeaderValue::as_bytes).unwrap_or_default();
                format!("'{}' ({h})", String::from_utf8_lossy(&v[..v.len().min(64)]))
            }
        }
    }
}

/// The /64 an IPv6 address is counted under.
fn v6_net(v6: std::net::Ipv6Addr) -> std::net::Ipv6Addr {
    std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))
}

/// What a limit check looks at.
#[derive(Debug, Clone, Copy)]
pub struct LimitRequest<'a> {
    pub route: &'a str,
    pub identity: Option<&'a Identity>,
    pub client_ip: IpAddr,
    pub headers: &'a HeaderMap,
    pub now_ns: u64,
    /// This sidecar's shares of global quotas, and where their demand is recorded.
    pub quotas: &'a Quotas,
}

/// Checks `limits` in order. Err: the first limit that refuses and enforces. Ok: the
/// tightest limit's headers, and every dry-run limit that would have refused.
pub fn admit(
    limits: &[Arc<Limit>],
    req: &LimitRequest<'_>,
) -> Result<(Option<RateLimitHeaders>, Vec<Refusal>), Refusal> {
    let plan = req.identity.and_then(|i| i.plan.as_deref());
    let mut would_deny = Vec::new();
    let mut checks = Vec::with_capacity(limits.len());
    for l in limits {
        let Some(quota) = l.rate_for(plan) else { continue };
        let key = l.key_of(req);
        // A global quota is enforced here at this sidecar's share of it.
        let rate = match l.global {
            true => Quotas::scaled(quota, req.quotas.fraction(&l.name, &key, std::time::Instant::now())),
            false => *quota,
        };
        let v = l.buckets.check(&key, &rate, req.now_ns, false);
        if !v.allowed {
            if l.global {
                req.quotas.record(&l.name, &key, plan, false);
            }
            let refusal = refusal(l, quota, &v, &l.subject_of(req));
            if !l.dry_run {
                return Err(refusal);
            }
            would_deny.push(refusal);
            continue;
        }
        checks.push((l, quota, rate, key));
    }
    // The limit closest to refusing names the `ratelimit` headers, built once at the end.
    let mut tightest: Option<(&Limit, &RateDef, Verdict)> = None;
    for (l, quota, rate, key) in checks {
        let v = l.buckets.check(&key, &rate, req.now_ns, true);
        if l.global {
            req.quotas.record(&l.name, &key, plan, v.allowed);
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

//! A compiled limit: what it counts separately (its key), at what rate for which plan,
//! and the key and the words a refusal uses for one request.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use warden_proto::v1 as pb;

use crate::auth::identity::Identity;
use crate::ipset;
use crate::limits::gcra::RateDef;

/// What a limit counts separately.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    ClientIp,
    ClientId,
    Route,
    Header(HeaderName),
}

/// One compiled limit: a definition, with no counters. The counters are the caller's
/// (`LimitView`): the sidecar's live ones, or a read-only view in `wardenctl explain`.
#[derive(Debug)]
pub struct Limit {
    pub name: Arc<str>,
    /// Where it sits in `Snapshot::limits`: a counting view keeps its counters there.
    pub index: usize,
    /// Changes when the definition does: counters carry over to the next snapshot only
    /// for a limit with the same fingerprint.
    pub fingerprint: String,
    pub key: LimitKey,
    /// Without plans.
    pub rate: Option<RateDef>,
    pub plans: Vec<(String, RateDef)>,
    pub default: Option<RateDef>,
    pub global: bool,
    pub dry_run: bool,
}

impl Limit {
    pub fn compile(l: &pb::Limit, index: usize) -> Result<Limit, String> {
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
            index,
            fingerprint: l.fingerprint.clone(),
            key,
            rate: l.rate.as_ref().map(rate).transpose()?,
            plans,
            default: l.default.as_ref().map(rate).transpose()?,
            global: l.global,
            dry_run: l.dry_run,
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

    /// The bytes counted under: borrowed from the request where they can be, so a
    /// check allocates nothing for a client id, route or header key.
    pub fn key_of<'r>(&self, req: &LimitRequest<'r>) -> Cow<'r, [u8]> {
        match &self.key {
            LimitKey::ClientIp => match ipset::canonical(req.client_ip) {
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
            LimitKey::ClientIp => match ipset::canonical(req.client_ip) {
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
}

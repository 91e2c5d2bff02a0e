//! What a proposed policy would do to real recent requests (`wardenctl apply --preview`):
//! every decision sample replayed through the current and the proposed policy with the
//! real `decide` (`replay.rs`), local limits estimated from the recorded rate
//! (`estimate.rs`), and the differences added up by their weights: requests newly
//! refused or newly allowed by route, rule, reason and client, route changes, rewrites
//! that change. What a sample cannot answer is counted as not evaluable, never guessed.

pub mod estimate;
pub mod replay;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};

use http::HeaderName;

use warden_proto::v1 as pb;

use crate::auth::credentials::Credentials;
use crate::preview::estimate::{Fed, refused_shares};
use crate::preview::replay::{Replayed, Verdict, rebuild, replay};
use crate::sample::SampledHeaders;
use crate::snapshot::compiled::Snapshot;

/// Request ids kept per group, as examples.
const EXAMPLES: usize = 3;

/// Requests whose decision changes the same way: same route, rule, reason and client.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub route: String,
    pub rule: String,
    pub code: String,
    /// The client id, else the client address.
    pub client: String,
    /// Weighted: how many requests the samples stand for.
    pub requests: f64,
    pub samples: usize,
    pub examples: Vec<String>,
    /// Some of it comes from a limit's estimate.
    pub estimated: bool,
}

/// Requests that change route, or whose rewrite changes: `from` → `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Moved {
    /// The route (for a rewrite change; "" for a route change).
    pub route: String,
    pub from: String,
    pub to: String,
    pub requests: f64,
    pub samples: usize,
    pub examples: Vec<String>,
}

/// Samples the preview could not judge, by why.
#[derive(Debug, Clone, PartialEq)]
pub struct NotEvaluable {
    pub reason: &'static str,
    pub requests: f64,
    pub samples: usize,
}

/// What a proposed policy changes for the sampled requests.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    pub samples: usize,
    /// Weighted: how many requests the samples stand for.
    pub requests: f64,
    pub newly_refused: Vec<Change>,
    pub newly_allowed: Vec<Change>,
    /// Refused by both, for another rule or reason.
    pub refused_otherwise: Vec<Change>,
    pub route_changes: Vec<Moved>,
    pub rewrite_changes: Vec<Moved>,
    pub not_evaluable: Vec<NotEvaluable>,
}

impl Report {
    /// The share of the judged requests (sampled, less the not evaluable) newly refused;
    /// 0 with none judged.
    pub fn newly_refused_share(&self) -> f64 {
        let refused: f64 = self.newly_refused.iter().map(|c| c.requests).sum();
        let judged = self.requests - self.unjudged();
        if judged > 0.0 { (refused / judged).min(1.0) } else { 0.0 }
    }

    /// The share of the sampled requests that could not be judged (0 with none sampled).
    pub fn not_evaluable_share(&self) -> f64 {
        if self.requests > 0.0 { self.unjudged() / self.requests } else { 0.0 }
    }

    fn unjudged(&self) -> f64 {
        self.not_evaluable.iter().map(|n| n.requests).sum()
    }
}

/// The share of a forwarded sample its limits would refuse, and which limit (None: all
/// admit it).
type Limited = Option<(f64, String)>;

/// One side's answer for one sample: the verdict, and what its limits would refuse.
struct Side {
    verdict: Verdict,
    limited: Limited,
}

/// Replays `samples` through `current` and `candidate` (same service) with `creds`.
/// `recorded`: what each policy version's samples kept of the headers (a version not in
/// it is taken to have kept what `current` reads).
pub fn preview(
    current: &Snapshot,
    candidate: &Snapshot,
    creds: &Credentials,
    samples: &[pb::DecisionSample],
    recorded: &HashMap<u64, SampledHeaders>,
) -> Report {
    let (current_reads, candidate_reads) = (SampledHeaders::of(current), SampledHeaders::of(candidate));
    // Per recording version: the headers each side reads that it did not keep.
    let mut unrecorded: HashMap<u64, (Vec<HeaderName>, Vec<HeaderName>)> = HashMap::new();
    let mut replays: Vec<Option<(Replayed, Replayed)>> = Vec::with_capacity(samples.len());
    let mut report = Report { samples: samples.len(), ..Report::default() };
    let mut unknown: BTreeMap<&'static str, (f64, usize)> = BTreeMap::new();
    for s in samples {
        report.requests += s.weight;
        let (cur_missing, new_missing) = unrecorded.entry(s.policy_version).or_insert_with(|| {
            let kept = recorded.get(&s.policy_version).unwrap_or(&current_reads);
            let missing =
                |reads: &SampledHeaders| reads.read.iter().filter(|h| !kept.read.contains(h)).cloned().collect();
            (missing(&current_reads), missing(&candidate_reads))
        });
        let both = match rebuild(s) {
            Ok(r) => {
                let (mut cur, new) =
                    (replay(current, creds, &r, cur_missing), replay(candidate, creds, &r, new_missing));
                if let Some(why) = global_change(&cur, &new) {
                    cur.verdict = Verdict::Unknowable(why);
                }
                Some((cur, new))
            }
            Err(why) => {
                count(&mut unknown, why, s.weight);
                None
            }
        };
        replays.push(both);
    }
    let (cur_limited, new_limited) = estimate(samples, &replays);
    let mut groups = Groups::default();
    for (i, (s, both)) in samples.iter().zip(&replays).enumerate() {
        let Some((cur, new)) = both else { continue };
        let why = match (&cur.verdict, &new.verdict) {
            (Verdict::Unknowable(why), _) | (_, Verdict::Unknowable(why)) => Some(*why),
            _ => None,
        };
        if let Some(why) = why {
            count(&mut unknown, why, s.weight);
            continue;
        }
        let cur = Side { verdict: cur.verdict.clone(), limited: cur_limited[i].clone() };
        let new = Side { verdict: new.verdict.clone(), limited: new_limited[i].clone() };
        groups.compare(s, &cur, &new);
    }
    let Groups { newly_refused, newly_allowed, refused_otherwise, routes, rewrites } = groups;
    report.newly_refused = finish(newly_refused);
    report.newly_allowed = finish(newly_allowed);
    report.refused_otherwise = finish(refused_otherwise);
    report.route_changes = finish_moved(routes);
    report.rewrite_changes = finish_moved(rewrites);
    report.not_evaluable =
        unknown.into_iter().map(|(reason, (requests, samples))| NotEvaluable { reason, requests, samples }).collect();
    report
}

/// Counts a sample that cannot be judged under why.
fn count(unknown: &mut BTreeMap<&'static str, (f64, usize)>, why: &'static str, weight: f64) {
    let (requests, samples) = unknown.entry(why).or_default();
    *requests += weight;
    *samples += 1;
}

/// A global quota is shared by the fleet: one sample cannot say what it does. The same
/// global limits on both sides decide alike; any other difference cannot be judged.
fn global_change(cur: &Replayed, new: &Replayed) -> Option<&'static str> {
    let globals = |r: &Replayed| {
        let mut g: Vec<String> =
            r.limits.iter().filter(|u| u.limit.global).map(|u| u.limit.fingerprint.clone()).collect();
        g.sort();
        g
    };
    let forwarded = |r: &Replayed| matches!(r.verdict, Verdict::Forward { .. });
    (forwarded(new) && globals(new) != globals(cur)).then_some("a global quota that changes (shared by the fleet)")
}

/// Each side's local limits, estimated over every forwarded sample.
fn estimate(samples: &[pb::DecisionSample], replays: &[Option<(Replayed, Replayed)>]) -> (Vec<Limited>, Vec<Limited>) {
    let side = |pick: fn(&(Replayed, Replayed)) -> &Replayed| {
        let fed: Vec<Fed<'_>> = samples
            .iter()
            .zip(replays)
            .map(|(s, r)| match r {
                Some(both) => {
                    Fed { instance: &s.instance, unix_ms: s.unix_ms, weight: s.weight, limits: &pick(both).limits }
                }
                None => Fed { instance: &s.instance, unix_ms: s.unix_ms, weight: 0.0, limits: &[] },
            })
            .collect();
        refused_shares(&fed).into_iter().map(|r| r.map(|(share, l)| (share, l.name.to_string()))).collect()
    };
    (side(|b| &b.0), side(|b| &b.1))
}

type Key = (String, String, String, String);

/// The changes found so far, by group.
#[derive(Default)]
struct Groups {
    newly_refused: HashMap<Key, Change>,
    newly_allowed: HashMap<Key, Change>,
    refused_otherwise: HashMap<Key, Change>,
    routes: HashMap<(String, String, String), Moved>,
    rewrites: HashMap<(String, String, String), Moved>,
}

/// A side's verdict as allowed (with its route) or refused (route, rule, reason).
enum Class<'a> {
    Allowed(&'a str),
    Refused(&'a str, &'a str, &'a str),
}

fn class(v: &Verdict) -> Class<'_> {
    match v {
        Verdict::Forward { route, .. } | Verdict::Preflight { route } => Class::Allowed(route),
        Verdict::Refuse { route, rule, code, .. } => Class::Refused(route.as_deref().unwrap_or(""), rule, code),
        Verdict::Unknowable(_) => Class::Allowed(""),
    }
}

impl Groups {
    fn compare(&mut self, s: &pb::DecisionSample, cur: &Side, new: &Side) {
        let w = s.weight;
        let client = if s.client_id.is_empty() { s.client_ip.as_str() } else { s.client_id.as_str() };
        match (class(&cur.verdict), class(&new.verdict)) {
            (Class::Allowed(from), Class::Allowed(to)) => {
                // Limits: the shares each side's estimate refuses.
                let (p_cur, p_new) = (share(&cur.limited), share(&new.limited));
                if p_new > p_cur
                    && let Some((_, limit)) = &new.limited
                {
                    add(&mut self.newly_refused, (to, limit, "rate_limited", client), s, (p_new - p_cur) * w, true);
                }
                if p_cur > p_new
                    && let Some((_, limit)) = &cur.limited
                {
                    add(&mut self.newly_allowed, (to, limit, "rate_limited", client), s, (p_cur - p_new) * w, true);
                }
                if from != to {
                    moved(&mut self.routes, ("", from, to), s, w);
                } else if let (
                    Verdict::Forward { target: t1, host: h1, .. },
                    Verdict::Forward { target: t2, host: h2, .. },
                ) = (&cur.verdict, &new.verdict)
                    && (t1 != t2 || h1 != h2)
                {
                    let show = |t: &Option<String>, h: &Option<String>| {
                        format!(
                            "{}{}",
                            h.as_deref().map(|h| format!("{h} ")).unwrap_or_default(),
                            t.as_deref().unwrap_or(&s.path)
                        )
                    };
                    moved(&mut self.rewrites, (to, &show(t1, h1), &show(t2, h2)), s, w);
                }
            }
            (Class::Allowed(_), Class::Refused(route, rule, code)) => {
                let (allowed, estimated) = (1.0 - share(&cur.limited), cur.limited.is_some());
                add(&mut self.newly_refused, (route, rule, code, client), s, allowed * w, estimated);
            }
            (Class::Refused(_, rule, code), Class::Allowed(route)) => {
                let (allowed, estimated) = (1.0 - share(&new.limited), new.limited.is_some());
                add(&mut self.newly_allowed, (route, rule, code, client), s, allowed * w, estimated);
            }
            (Class::Refused(_, r1, c1), Class::Refused(route, r2, c2)) => {
                if (r1, c1) != (r2, c2) {
                    add(&mut self.refused_otherwise, (route, r2, c2, client), s, w, false);
                }
            }
        }
    }
}

/// Largest first.
fn finish(groups: HashMap<Key, Change>) -> Vec<Change> {
    let mut out: Vec<Change> = groups.into_values().filter(|c| c.requests > 0.0).collect();
    out.sort_by(|a, b| b.requests.total_cmp(&a.requests).then_with(|| a.route.cmp(&b.route)));
    out
}

fn share(limited: &Limited) -> f64 {
    limited.as_ref().map_or(0.0, |(p, _)| *p)
}

fn add(
    groups: &mut HashMap<Key, Change>,
    (route, rule, code, client): (&str, &str, &str, &str),
    s: &pb::DecisionSample,
    requests: f64,
    estimated: bool,
) {
    if requests <= 0.0 {
        return;
    }
    let key = (route.to_owned(), rule.to_owned(), code.to_owned(), client.to_owned());
    let c = groups.entry(key).or_insert_with(|| Change {
        route: route.to_owned(),
        rule: rule.to_owned(),
        code: code.to_owned(),
        client: client.to_owned(),
        requests: 0.0,
        samples: 0,
        examples: Vec::new(),
        estimated: false,
    });
    c.requests += requests;
    c.samples += 1;
    c.estimated |= estimated;
    if c.examples.len() < EXAMPLES && !s.request_id.is_empty() {
        c.examples.push(s.request_id.clone());
    }
}

fn moved(
    groups: &mut HashMap<(String, String, String), Moved>,
    (route, from, to): (&str, &str, &str),
    s: &pb::DecisionSample,
    w: f64,
) {
    let key = (route.to_owned(), from.to_owned(), to.to_owned());
    let m = groups.entry(key).or_insert_with(|| Moved {
        route: route.to_owned(),
        from: from.to_owned(),
        to: to.to_owned(),
        requests: 0.0,
        samples: 0,
        examples: Vec::new(),
    });
    m.requests += w;
    m.samples += 1;
    if m.examples.len() < EXAMPLES && !s.request_id.is_empty() {
        m.examples.push(s.request_id.clone());
    }
}

fn finish_moved(groups: HashMap<(String, String, String), Moved>) -> Vec<Moved> {
    let mut out: Vec<Moved> = groups.into_values().collect();
    out.sort_by(|a, b| b.requests.total_cmp(&a.requests));
    out
}

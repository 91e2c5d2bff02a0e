//! A service's page: its versions (author, time, message, rollout state) with a diff
//! between any two and a rollback (confirmed on a page of its own that shows what it
//! changes); the live policy's routes as a table; and live traffic per route (requests/s,
//! refused %, p50/p99), which the page's script polls from `traffic.json` and charts.

use std::collections::BTreeMap;

use maud::{Markup, html};
use similar::{ChangeTag, TextDiff};
use warden_policy::yaml::{Policy, RouteSpec, parse_service};

use crate::console::page::{Req, ago, csrf, enc, time};
use crate::console::session::Session;
use crate::ops::{ControlPlane, OpsError, RollbackRequest};
use crate::traffic::quantile;

pub async fn page(cp: &ControlPlane, session: &Session, service: &str) -> Result<Markup, OpsError> {
    let current = cp.policy(service, None).await?;
    let history = cp.history(service).await?;
    let parsed = parse_service(&format!("{service}@v{}", current.version), &current.source_yaml, Some(service));
    let previous = history.iter().map(|(v, _)| v.version).find(|v| *v < current.version);
    Ok(html! {
        h1 { "Service " (service) }
        p { "Live: v" (current.version) " by " (current.author) ", " (ago(current.created_unix_ms)) }
        h2 { "Live traffic" }
        div #traffic data-service=(service) {
            p.muted { "Waiting for the sidecars' next report…" }
        }
        h2 { "Routes" }
        @match &parsed {
            Ok(p) => (routes(&p.policy)),
            Err(e) => pre.error { (e.to_string()) },
        }
        h2 { "Versions" }
        form.diff method="get" action={ "/services/" (enc(service)) "/diff" } {
            "Diff from "
            select name="from" { @for (v, _) in &history { option value=(v.version) selected[Some(v.version) == previous] { "v" (v.version) } } }
            " to "
            select name="to" { @for (v, _) in &history { option value=(v.version) selected[v.version == current.version] { "v" (v.version) } } }
            " "
            button type="submit" { "Show diff" }
        }
        table #versions {
            thead { tr { th { "Version" } th { "By" } th { "When" } th { "Message" } th { "Rollout" } th {} } }
            tbody {
                @for (v, state) in &history {
                    tr class=@if v.version == current.version { "live" } {
                        td { "v" (v.version) @if v.version == current.version { " " span.tag.in-sync { "live" } } }
                        td { (v.author) }
                        td title=(time(v.created_unix_ms)) { (ago(v.created_unix_ms)) }
                        td { (v.message) }
                        td { @if let Some(s) = state { (s.as_str()) } }
                        td {
                            @if v.version > 1 {
                                a href={ "/services/" (enc(service)) "/diff?from=" (v.version - 1) "&to=" (v.version) } { "diff" }
                            }
                            @if session.can_change() && v.version != current.version && state.is_none_or(|s| s.as_str() == "promoted") {
                                @if v.version > 1 { " · " }
                                a.rollback href={ "/services/" (enc(service)) "/rollback?to=" (v.version) } { "roll back to this" }
                            }
                        }
                    }
                }
            }
        }
    })
}

/// The live policy's routes, in matching order.
fn routes(policy: &Policy) -> Markup {
    let what = |r: &RouteSpec| {
        let m = &r.matches;
        let mut parts = Vec::new();
        if !m.methods.is_empty() {
            parts.push(m.methods.join(","));
        }
        parts.push(m.host.clone().unwrap_or_else(|| "any host".into()));
        match (&m.path, &m.path_prefix) {
            (Some(p), _) => parts.push(p.clone()),
            (None, Some(p)) => parts.push(format!("{p}*")),
            (None, None) => parts.push("any path".into()),
        }
        for (k, v) in &m.headers {
            parts.push(format!("{k}: {v}"));
        }
        parts.join(" ")
    };
    html! {
        table #routes {
            thead { tr { th { "Route" } th { "Matches" } th { "Upstream" } th { "Auth" } th { "Limits" } th { "Access" } th { "Rewrite" } } }
            tbody {
                @for r in &policy.routes {
                    tr {
                        td { (r.name) }
                        td { code { (what(r)) } }
                        td { (r.upstream.as_deref().unwrap_or("app")) }
                        td { (r.auth.as_deref().unwrap_or("-")) }
                        td { @if r.limits.is_empty() { "-" } @else { (r.limits.join(", ")) } }
                        td {
                            @match &r.access {
                                Some(a) => {
                                    @if !a.allow.is_empty() { "allow " (a.allow.join(", ")) " " }
                                    @if !a.deny.is_empty() { "deny " (a.deny.join(", ")) }
                                },
                                None => "-",
                            }
                        }
                        td { @match r.rewrite.as_ref().and_then(|w| w.path_prefix.as_deref()) { Some(p) => code { "→ " (p) }, None => "-" } }
                    }
                }
            }
        }
    }
}

/// Two versions' YAML, diffed line by line and highlighted.
pub async fn diff(cp: &ControlPlane, service: &str, req: &Req) -> Result<Markup, OpsError> {
    let version = |name: &str| {
        req.query(name)
            .and_then(|v| v.trim_start_matches('v').parse::<u64>().ok())
            .ok_or_else(|| OpsError::Invalid(format!("'{name}' must be a version number")))
    };
    let (from, to) = (version("from")?, version("to")?);
    let (old, new) = (cp.policy(service, Some(from)).await?, cp.policy(service, Some(to)).await?);
    Ok(html! {
        h1 { "Service " a href={ "/services/" (enc(service)) } { (service) } ": v" (from) " → v" (to) }
        p { "v" (from) " by " (old.author) " (" (old.message) "); v" (to) " by " (new.author) " (" (new.message) ")" }
        (yaml_diff(&old.source_yaml, &new.source_yaml))
    })
}

/// A unified diff of two YAML texts: removed, added and context lines, each with its key
/// set apart.
pub fn yaml_diff(old: &str, new: &str) -> Markup {
    let diff = TextDiff::from_lines(old, new);
    let groups = diff.grouped_ops(3);
    html! {
        @if groups.is_empty() {
            p.muted { "No difference." }
        }
        pre.diff {
            @for (i, group) in groups.iter().enumerate() {
                @if i > 0 { span.hunk { "…\n" } }
                @for op in group {
                    @for change in diff.iter_changes(op) {
                        @let (class, sign) = match change.tag() {
                            ChangeTag::Delete => ("del", "-"),
                            ChangeTag::Insert => ("add", "+"),
                            ChangeTag::Equal => ("ctx", " "),
                        };
                        @let line = change.value().trim_end_matches('\n');
                        span class=(class) {
                            (sign) " "
                            @match yaml_key(line) {
                                Some((indent, key, rest)) => { (indent) span.k { (key) } (rest) },
                                None => (line),
                            }
                            "\n"
                        }
                    }
                }
            }
        }
    }
}

/// A YAML line's indent, key (up to its colon) and the rest, when it has a key.
fn yaml_key(line: &str) -> Option<(&str, &str, &str)> {
    let body = line.trim_start_matches([' ', '-']);
    let indent = &line[..line.len() - body.len()];
    if body.starts_with('#') {
        return None;
    }
    let colon = body.find(": ").or_else(|| body.strip_suffix(':').map(|b| b.len()))?;
    let key = &body[..colon];
    (!key.is_empty() && !key.contains([' ', '"', '\''])).then(|| (indent, key, &body[colon..]))
}

/// Confirming a rollback: what it would change.
pub async fn confirm_rollback(
    cp: &ControlPlane,
    session: &Session,
    service: &str,
    req: &Req,
) -> Result<Markup, OpsError> {
    let to = req
        .query("to")
        .and_then(|v| v.parse::<u64>().ok())
        .ok_or_else(|| OpsError::Invalid("'to' must be a version number".into()))?;
    let (current, target) = (cp.policy(service, None).await?, cp.policy(service, Some(to)).await?);
    Ok(html! {
        h1 { "Roll " (service) " back to v" (to) "?" }
        p { "v" (to) "'s content becomes v" (current.version + 1) ", the live version. This is what changes from v" (current.version) ":" }
        (yaml_diff(&current.source_yaml, &target.source_yaml))
        form method="post" action={ "/services/" (enc(service)) "/rollback" } {
            (csrf(session))
            input type="hidden" name="to" value=(to);
            label { "Message " input type="text" name="message" maxlength="200" placeholder={ "rollback to v" (to) }; }
            " "
            button #confirm-rollback.danger type="submit" { "Roll back to v" (to) }
            " "
            a href={ "/services/" (enc(service)) } { "Cancel" }
        }
    })
}

/// Rolls back; recorded with the session's author.
pub async fn rollback(cp: &ControlPlane, session: &Session, service: &str, req: &Req) -> Result<(), OpsError> {
    let to = req.form("to").parse::<u64>().map_err(|_| OpsError::Invalid("'to' must be a version number".into()))?;
    let request = RollbackRequest {
        service: service.to_owned(),
        to_version: to,
        author: session.author(),
        message: req.form("message").trim().to_owned(),
        force: false,
    };
    cp.rollback(request).await.map(drop)
}

/// Each route's latest traffic, merged over the service's sidecars.
pub async fn traffic(cp: &ControlPlane, service: &str) -> serde_json::Value {
    #[derive(Default)]
    struct Merged {
        rps: f64,
        requests: u64,
        denials: u64,
        buckets: Vec<u64>,
    }
    let mut routes: BTreeMap<String, Merged> = BTreeMap::new();
    for row in cp.top(service).await {
        let t = row.traffic;
        let m = routes.entry(if t.route.is_empty() { "(no route)".into() } else { t.route }).or_default();
        m.rps += t.requests as f64 * 1000.0 / t.interval_ms.max(1) as f64;
        m.requests += t.requests;
        m.denials += t.denials;
        if m.buckets.len() < t.latency_buckets.len() {
            m.buckets.resize(t.latency_buckets.len(), 0);
        }
        for (b, n) in m.buckets.iter_mut().zip(&t.latency_buckets) {
            *b += n;
        }
    }
    let rows: Vec<serde_json::Value> = routes
        .into_iter()
        .map(|(route, m)| {
            let refused = if m.requests == 0 { 0.0 } else { m.denials as f64 * 100.0 / m.requests as f64 };
            serde_json::json!({
                "route": route, "rps": m.rps, "refused_pct": refused,
                "p50_ms": quantile(&m.buckets, 0.5), "p99_ms": quantile(&m.buckets, 0.99),
            })
        })
        .collect();
    serde_json::json!({ "service": service, "unix_ms": crate::clock::now_unix_ms(), "routes": rows })
}

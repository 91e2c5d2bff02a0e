//! The refusal review queue: refusals grouped by service, route, rule, reason and client,
//! newest first, each with its counts per hour over the window as a small bar chart and
//! its reviewer's mark (expected, or a false positive, with a note and an owner). A false
//! positive links to the explain form filled in from one of its requests and, for a limit
//! or an access list, to the change that would have let it through with its preview
//! (`ops/suggest.rs`). Groups first
//! seen since this browser's previous visit stand out: the visit times live in a cookie
//! of this browser's own, not on the server.

use std::collections::HashMap;

use cookie::{Cookie, SameSite};
use maud::{Markup, html};

use crate::clock::now_unix_ms;
use crate::console::page::{Req, ago, csrf, enc, time};
use crate::console::session::Session;
use crate::ops::{ControlPlane, MarkRequest, OpsError, Reviewed};
use crate::store::{DenialFilter, GroupOrder, Mark};

/// The visit cookie: `PREVIOUS.LAST` (Unix ms).
const VISIT_COOKIE: &str = "warden_visit";
/// A page view this long after the last one starts a new visit.
const VISIT_GAP_MS: i64 = 30 * 60_000;
/// The windows the queue can show, and their bucket sizes.
const WINDOWS: &[(&str, i64, i64)] =
    &[("1h", 3_600_000, 300_000), ("24h", 86_400_000, 3_600_000), ("7d", 7 * 86_400_000, 6 * 3_600_000)];
/// Groups listed at most.
const GROUPS: u32 = 200;
/// Groups read to find when each was first refused.
const MAX_GROUPS_EVER: u32 = 10_000;

/// The queue, and the visit cookie to set.
pub async fn page(cp: &ControlPlane, session: &Session, req: &Req, secure: bool) -> Result<(Markup, String), OpsError> {
    let window = req.query("since").unwrap_or("24h");
    let &(window, span_ms, bucket_ms) = WINDOWS.iter().find(|w| w.0 == window).unwrap_or(&WINDOWS[1]);
    let service = req.query("service").unwrap_or("").to_owned();
    let now = now_unix_ms();
    // Whole buckets: the first one starts where the store's buckets do.
    let since = (now - span_ms) / bucket_ms * bucket_ms;
    let n = usize::try_from((now - since) / bucket_ms + 1).unwrap_or(1);
    let filter = DenialFilter {
        service: service.clone(),
        since_unix_ms: since,
        limit: GROUPS,
        group_order: GroupOrder::NewestFirst,
        ..Default::default()
    };
    let groups = cp.denial_groups(filter.clone()).await?;
    let mut counts: HashMap<String, Vec<u64>> = HashMap::new();
    for b in cp.denial_buckets(filter.clone(), bucket_ms).await? {
        let i = usize::try_from((b.start_unix_ms - since).max(0) / bucket_ms).unwrap_or(0).min(n - 1);
        counts.entry(b.group).or_insert_with(|| vec![0; n])[i] += b.count;
    }
    // When each group was first refused, over the whole log (the window cuts older ones).
    let all_time = DenialFilter { since_unix_ms: 0, limit: MAX_GROUPS_EVER, ..filter };
    let first_seen: HashMap<String, i64> =
        cp.denial_groups(all_time).await?.into_iter().map(|g| (g.id, g.group.first_unix_ms)).collect();
    let (previous, cookie) = visit(req, now, secure);
    let services = cp.services().await.unwrap_or_default();
    let page = html! {
        h1 { "Review queue" }
        p.muted { "Refusals grouped by service, route, rule, reason and client, newest first. Mark each group expected or a false positive; "
            code { "wardenctl denials --group" } " shows the marks." }
        form.filters method="get" action="/denials" {
            "Service "
            select name="service" {
                option value="" { "all" }
                @for s in &services { option value=(s.service) selected[s.service == service] { (s.service) } }
            }
            " since "
            select name="since" { @for w in WINDOWS { option value=(w.0) selected[w.0 == window] { (w.0) } } }
            " " button type="submit" { "Show" }
        }
        @if groups.is_empty() {
            p { "No refusals in the last " (window) "." }
        } @else {
            table #groups {
                thead { tr { th { "Group" } th { "Count" } th { "Over " (window) } th { "Last" } th { "Service" } th { "Route" } th { "Rule" } th { "Reason" } th { "Client" } th { "Mark" } } }
                tbody {
                    @for g in &groups {
                        @let first = first_seen.get(&g.id).copied().unwrap_or(g.group.first_unix_ms);
                        (row(session, g, counts.get(&g.id).map(Vec::as_slice).unwrap_or(&[]), first > previous))
                    }
                }
            }
        }
    };
    Ok((page, cookie))
}

fn row(session: &Session, r: &Reviewed, counts: &[u64], new: bool) -> Markup {
    let g = &r.group;
    let dash = |s: &str| if s.is_empty() { "-".to_owned() } else { s.to_owned() };
    html! {
        tr id={ "g-" (r.id) } class={ "group" @if new { " new" } } data-group=(r.id) {
            td { code { (r.id) } @if new { " " span.tag.new { "new" } } }
            td { (g.count) @if g.dry_run > 0 { " (" (g.dry_run) " dry run)" } }
            td { (bars(counts)) }
            td title=(time(g.last_unix_ms)) { (ago(g.last_unix_ms)) }
            td { (g.service) }
            td { (dash(&g.route)) }
            td { (g.rule) }
            td { (g.code) }
            td.client { (dash(&g.client_id)) }
            td.mark {
                @if let Some(m) = &r.mark {
                    span class={ "tag " (m.mark.as_str()) } { (m.mark.as_str()) }
                    @if !m.note.is_empty() { " " span.note { (m.note) } }
                    @if !m.owner.is_empty() { " · owner " span.owner { (m.owner) } }
                    br; small.muted { "by " (m.author) ", " (ago(m.unix_ms)) }
                    @if m.mark == Mark::FalsePositive && !g.example_request_id.is_empty() {
                        br; a.explain href={ "/explain?request_id=" (enc(&g.example_request_id)) "&service=" (enc(&g.service)) } { "explain one of its requests" }
                    }
                    @if m.mark == Mark::FalsePositive && crate::ops::loosenable(&g.rule, &g.code) {
                        br; a.suggest href={ "/denials/suggest?group=" (r.id) } { "what would let it through" }
                    }
                }
                @if session.can_change() {
                    form.mark method="post" action="/denials/mark" {
                        (csrf(session))
                        input type="hidden" name="group" value=(r.id);
                        @let current = r.mark.as_ref().map(|m| m.mark);
                        select name="mark" {
                            option value="expected" selected[current == Some(Mark::Expected)] { "expected" }
                            option value="false-positive" selected[current == Some(Mark::FalsePositive)] { "false positive" }
                        }
                        input type="text" name="note" maxlength="500" placeholder="note" value=[r.mark.as_ref().map(|m| &m.note)];
                        input type="text" name="owner" maxlength="100" placeholder="owner" value=[r.mark.as_ref().map(|m| &m.owner)];
                        button type="submit" { "Mark" }
                    }
                }
            }
        }
    }
}

/// The change that would have let a false positive through, and its preview.
pub async fn suggestion(cp: &ControlPlane, req: &Req) -> Result<Markup, OpsError> {
    let id = req.query("group").unwrap_or_default();
    let Some(s) = cp.suggest(id).await? else {
        return Ok(html! {
            h1 { "No suggestion" }
            p { "Group " code { (id) } " was refused by a rule that is neither a limit nor an access list (or there is no address to let in)." }
        });
    };
    let g = &s.group;
    Ok(html! {
        h1 { "What would let group " code { (id) } " through" }
        p { (g.count) " refusals of " (if g.client_id.is_empty() { "-" } else { &g.client_id }) " on " (g.service) " route " (g.route)
            " by rule " code { (g.rule) } " (" (g.code) ")." }
        h2 { "The change: " (s.what) }
        (crate::console::service::yaml_diff(&s.current_yaml, &s.proposed_yaml))
        h2 { "Its impact on the last hour's sampled requests" }
        @match &s.preview {
            Ok(p) => {
                @let allowed = p.report.newly_allowed.iter().map(|c| c.requests).sum::<f64>().abs();
                @let refused = p.report.newly_refused.iter().map(|c| c.requests).sum::<f64>().abs();
                p #impact { (p.report.samples) " samples standing for " (format!("{:.0}", p.report.requests)) " requests: "
                    strong { (format!("{allowed:.0}")) " newly allowed" } ", " (format!("{refused:.0}")) " newly refused"
                    @if !p.report.not_evaluable.is_empty() { ", some not evaluable" } "." }
                @if !p.report.newly_allowed.is_empty() {
                    table.preview {
                        thead { tr { th { "Newly allowed" } th { "Route" } th { "Rule" } th { "Reason" } th { "Client" } } }
                        tbody {
                            @for c in p.report.newly_allowed.iter().take(20) {
                                tr { td { (format!("{:.0}", c.requests)) @if c.estimated { " (estimate)" } } td { (c.route) } td { (c.rule) } td { (c.code) } td { (c.client) } }
                            }
                        }
                    }
                }
            },
            Err(e) => p.error { "No preview: " (e) },
        }
        p.muted { "Nothing is applied. To make the change, apply the policy with it ("
            code { "wardenctl apply --preview -f FILE" } " first), or roll it out in shadow." }
    })
}

/// Counts per bucket as a small SVG bar chart (no script, no inline style).
fn bars(counts: &[u64]) -> Markup {
    let max = counts.iter().copied().max().unwrap_or(0).max(1) as f64;
    let width = counts.len().max(1) * 4;
    html! {
        svg.bars width=(width) height="20" viewBox={ "0 0 " (width) " 20" } role="img" aria-label="refusals over time" {
            @for (i, n) in counts.iter().enumerate() {
                @let h = if *n == 0 { 0.0 } else { (*n as f64 / max * 19.0).max(1.0) };
                rect x=(i * 4) y=(format!("{:.1}", 20.0 - h)) width="3" height=(format!("{h:.1}")) {
                    title { (n) }
                }
            }
        }
    }
}

/// When this browser's previous visit began, and the cookie recording this one.
fn visit(req: &Req, now: i64, secure: bool) -> (i64, String) {
    let stored = Cookie::split_parse(req.cookies.as_str())
        .filter_map(Result::ok)
        .find(|c| c.name() == VISIT_COOKIE)
        .and_then(|c| {
            let (p, l) = c.value().split_once('.')?;
            Some((p.parse::<i64>().ok()?, l.parse::<i64>().ok()?))
        });
    let previous = match stored {
        // Still the same visit: what was new at its start stays new.
        Some((previous, last)) if now - last < VISIT_GAP_MS => previous,
        Some((_, last)) => last,
        None => 0,
    };
    let cookie = Cookie::build((VISIT_COOKIE, format!("{previous}.{now}")))
        .path("/")
        .http_only(true)
        .secure(secure)
        .same_site(SameSite::Strict)
        .max_age(cookie::time::Duration::days(365))
        .build()
        .to_string();
    (previous, cookie)
}

/// Marks a group; recorded with the session's author.
pub async fn mark(cp: &ControlPlane, session: &Session, req: &Req) -> Result<String, OpsError> {
    let request = MarkRequest {
        group: req.form("group").trim().to_owned(),
        mark: req.form("mark").to_owned(),
        note: req.form("note").trim().to_owned(),
        owner: req.form("owner").trim().to_owned(),
        author: session.author(),
    };
    let marked = cp.mark_denials(request).await?;
    Ok(marked.group)
}

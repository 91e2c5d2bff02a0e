//! `wardenctl apply --preview -f FILE [--max-new-denials 0.5%] [--since 1h]`: what the file
//! would do to the requests sidecars sampled recently, service by service: newly refused
//! and newly allowed requests by route, rule, reason and client (weighted, with their
//! share of the traffic and example request ids), route and rewrite changes, and what
//! could not be judged. Nothing is applied. The gate exits 4 when more of the judged
//! requests would be newly refused than it allows, when more of the sampled ones cannot be
//! judged, or when a service the file changes has no samples.

use std::time::Duration;

use warden_proto::v1::{PreviewChange, PreviewMove, PreviewRequest, ServicePreview};

use crate::cli::context::{Cli, Failure, Format, Outcome};
use crate::cli::output;

/// `0.5%` as 0.005.
pub fn parse_share(s: &str) -> Result<f64, String> {
    let n = s.strip_suffix('%').ok_or_else(|| format!("'{s}': a percentage, like 0.5%"))?;
    let n: f64 = n.trim().parse().map_err(|_| format!("'{s}': a percentage, like 0.5%"))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("'{s}': between 0% and 100%"));
    }
    Ok(n / 100.0)
}

pub async fn run(cli: &Cli, file: &str, source: String, since: Duration, gate: Option<f64>) -> Outcome {
    let window_ms = i64::try_from(since.as_millis()).unwrap_or(i64::MAX).max(1);
    let req = PreviewRequest { file_name: file.to_owned(), source, window_ms };
    let services = cli.admin().await?.preview(req).await?.into_inner().services;
    if cli.output != Format::Table {
        let rows: Vec<_> = services.iter().map(json).collect();
        output::structured(cli.output, &serde_json::json!({ "services": rows, "max_new_denials": gate }));
    } else {
        for s in &services {
            print_table(s);
        }
    }
    let Some(max) = gate else { return Ok(()) };
    for s in &services {
        // A service the file adds has no traffic yet to break.
        if s.current_version == 0 {
            continue;
        }
        if s.samples == 0 {
            return Err(Failure::Gated(format!("{}: no sampled requests to judge the change by", s.service)));
        }
        let unjudged = s.not_evaluable_share;
        if unjudged > max {
            return Err(Failure::Gated(format!(
                "{}: {} of the sampled requests cannot be judged (see not evaluable), more than --max-new-denials {}",
                s.service,
                percent(unjudged),
                percent(max)
            )));
        }
        let share = s.newly_refused_share;
        if share > max {
            return Err(Failure::Gated(format!(
                "{}: {} of the judged requests would be newly refused, more than --max-new-denials {}",
                s.service,
                percent(share),
                percent(max)
            )));
        }
    }
    Ok(())
}

fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

fn json(s: &ServicePreview) -> serde_json::Value {
    let change = |c: &PreviewChange| {
        serde_json::json!({"route": c.route, "rule": c.rule, "code": c.code, "client": c.client,
            "requests": c.requests, "share": if s.requests > 0.0 { c.requests / s.requests } else { 0.0 },
            "samples": c.samples, "examples": c.examples, "estimated": c.estimated})
    };
    let moved = |m: &PreviewMove| {
        serde_json::json!({"route": m.route, "from": m.from, "to": m.to, "requests": m.requests,
            "samples": m.samples, "examples": m.examples})
    };
    serde_json::json!({
        "service": s.service, "current_version": s.current_version, "samples": s.samples, "requests": s.requests,
        "newly_refused_share": s.newly_refused_share, "not_evaluable_share": s.not_evaluable_share,
        "newly_refused": s.newly_refused.iter().map(change).collect::<Vec<_>>(),
        "newly_allowed": s.newly_allowed.iter().map(change).collect::<Vec<_>>(),
        "refused_otherwise": s.refused_otherwise.iter().map(change).collect::<Vec<_>>(),
        "route_changes": s.route_changes.iter().map(moved).collect::<Vec<_>>(),
        "rewrite_changes": s.rewrite_changes.iter().map(moved).collect::<Vec<_>>(),
        "not_evaluable": s.not_evaluable.iter().map(|n| serde_json::json!({"reason": n.reason, "requests": n.requests, "samples": n.samples})).collect::<Vec<_>>(),
    })
}

fn print_table(s: &ServicePreview) {
    println!(
        "{}: the proposal against v{}, over {:.0} sampled requests ({} samples)",
        output::cell(&s.service),
        s.current_version,
        s.requests,
        s.samples
    );
    let changes = |title: &str, rows: &[PreviewChange]| {
        if rows.is_empty() {
            return;
        }
        let total: f64 = rows.iter().map(|c| c.requests).sum();
        println!();
        println!(
            "{title}: {:.0} requests, {} of the traffic",
            total,
            percent(total / s.requests.max(f64::MIN_POSITIVE))
        );
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|c| {
                vec![
                    dash(&c.route),
                    c.rule.clone(),
                    if c.estimated { format!("{} (estimate)", c.code) } else { c.code.clone() },
                    dash(&c.client),
                    format!("{:.1}", c.requests),
                    percent(c.requests / s.requests.max(f64::MIN_POSITIVE)),
                    c.examples.join(" "),
                ]
            })
            .collect();
        output::table(&["ROUTE", "RULE", "REASON", "CLIENT", "REQUESTS", "SHARE", "EXAMPLES"], &rows);
    };
    changes("NEWLY REFUSED", &s.newly_refused);
    changes("NEWLY ALLOWED", &s.newly_allowed);
    changes("REFUSED FOR ANOTHER REASON", &s.refused_otherwise);
    let moves = |title: &str, rows: &[PreviewMove]| {
        if rows.is_empty() {
            return;
        }
        println!();
        println!("{title}");
        let rows: Vec<Vec<String>> = rows
            .iter()
            .map(|m| {
                vec![dash(&m.route), m.from.clone(), m.to.clone(), format!("{:.1}", m.requests), m.examples.join(" ")]
            })
            .collect();
        output::table(&["ROUTE", "FROM", "TO", "REQUESTS", "EXAMPLES"], &rows);
    };
    moves("ROUTE CHANGES", &s.route_changes);
    moves("REWRITE CHANGES", &s.rewrite_changes);
    if !s.not_evaluable.is_empty() {
        println!();
        for n in &s.not_evaluable {
            println!("not evaluable: {:.1} requests ({} samples): {}", n.requests, n.samples, n.reason);
        }
    }
    let nothing = s.newly_refused.is_empty()
        && s.newly_allowed.is_empty()
        && s.refused_otherwise.is_empty()
        && s.route_changes.is_empty()
        && s.rewrite_changes.is_empty();
    if nothing && s.samples > 0 {
        println!("no sampled request is decided differently");
    }
    println!();
}

fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_owned() }
}

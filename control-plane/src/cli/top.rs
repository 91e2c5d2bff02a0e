//! `wardenctl top [--service S]`: per route, requests per second, the share refused, and
//! p50/p99 latency to the response head, per sidecar and merged, from the last window
//! each sidecar reported (2 s).

use warden_proto::v1::{RouteStats, TopRequest};

use crate::cli::context::{Cli, Format, Outcome};
use crate::cli::output;
use crate::traffic::quantile;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    service: Option<String>,
}

struct Line {
    service: String,
    route: String,
    sidecar: String,
    rps: f64,
    deny: f64,
    p50: Option<f64>,
    p99: Option<f64>,
}

fn line(service: &str, sidecar: &str, s: &RouteStats) -> Line {
    let secs = (s.interval_ms.max(1) as f64) / 1000.0;
    Line {
        service: service.to_owned(),
        route: if s.route.is_empty() { "(no route)".into() } else { s.route.clone() },
        sidecar: sidecar.to_owned(),
        rps: s.requests as f64 / secs,
        deny: if s.requests == 0 { 0.0 } else { s.denials as f64 * 100.0 / s.requests as f64 },
        p50: quantile(&s.latency_buckets, 0.5),
        p99: quantile(&s.latency_buckets, 0.99),
    }
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let rows =
        cli.admin().await?.top(TopRequest { service: a.service.clone().unwrap_or_default() }).await?.into_inner().rows;
    let mut lines = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        // Rows come sorted by service and route: one group per route.
        let key = |r: &warden_proto::v1::TopRow| (r.service.clone(), r.stats.as_ref().map(|s| s.route.clone()));
        let group: Vec<_> = rows[i..].iter().take_while(|r| key(r) == key(&rows[i])).collect();
        i += group.len();
        let mut merged = RouteStats::default();
        let mut rps = 0.0;
        for r in &group {
            let s = r.stats.clone().unwrap_or_default();
            let l = line(&r.service, &r.instance, &s);
            rps += l.rps;
            merged.route = s.route.clone();
            merged.requests += s.requests;
            merged.denials += s.denials;
            merged.latency_buckets.resize(s.latency_buckets.len().max(merged.latency_buckets.len()), 0);
            for (m, n) in merged.latency_buckets.iter_mut().zip(&s.latency_buckets) {
                *m += n;
            }
            lines.push(l);
        }
        if group.len() > 1 {
            let mut all = line(&group[0].service, "(all)", &merged);
            all.rps = rps;
            lines.push(all);
        }
    }
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("≤{v:.1}ms"));
    if cli.output != Format::Table {
        let out: Vec<_> = lines
            .iter()
            .map(|l| {
                serde_json::json!({"service": l.service, "route": l.route, "sidecar": l.sidecar, "rps": l.rps,
                    "deny_percent": l.deny, "p50_ms": l.p50, "p99_ms": l.p99})
            })
            .collect();
        output::structured(cli.output, &serde_json::json!({ "routes": out }));
        return Ok(());
    }
    if lines.is_empty() {
        println!("no traffic reported in the last 30 s");
        return Ok(());
    }
    let table: Vec<Vec<String>> = lines
        .iter()
        .map(|l| {
            vec![
                l.service.clone(),
                l.route.clone(),
                l.sidecar.clone(),
                format!("{:.1}", l.rps),
                format!("{:.1}%", l.deny),
                ms(l.p50),
                ms(l.p99),
            ]
        })
        .collect();
    output::table(&["SERVICE", "ROUTE", "SIDECAR", "RPS", "DENIED", "P50", "P99"], &table);
    Ok(())
}

//! `wardenctl samples [--service S] [--since 15m] [-n 50]`: the decision samples sidecars
//! reported, newest first: each request's head (never a credential), the decision taken,
//! the policy version and how many requests it stands for. What `apply --preview`
//! replays.

use std::time::Duration;

use warden_proto::v1::ListSamplesRequest;

use crate::cli::context::{Cli, Format, Outcome};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    service: Option<String>,
    /// Only this recent, like 15m or 1h.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1h")]
    since: Duration,
    /// Rows at most.
    #[arg(short = 'n', long, default_value_t = 50)]
    limit: u32,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let since = crate::store::now_unix_ms() - i64::try_from(a.since.as_millis()).unwrap_or(i64::MAX);
    let req =
        ListSamplesRequest { service: a.service.clone().unwrap_or_default(), since_unix_ms: since, limit: a.limit };
    let samples = cli.admin().await?.list_samples(req).await?.into_inner().samples;
    if cli.output != Format::Table {
        let rows: Vec<_> = samples
            .iter()
            .map(|s| {
                let x = s.sample.clone().unwrap_or_default();
                serde_json::json!({"service": s.service, "instance": s.instance, "time": output::time(x.unix_ms),
                    "request_id": x.request_id, "method": x.method, "host": x.host, "path": x.path,
                    "client_ip": x.client_ip, "client_id": x.client_id, "auth_provider": x.auth_provider,
                    "key_id": x.key_id, "headers": output::header_pairs(&x.headers),
                    "credential_headers": x.credential_headers, "route": x.route, "decision": x.decision,
                    "rule": x.rule, "code": x.code, "status": x.status, "policy_version": x.policy_version,
                    "weight": x.weight, "plan": x.plan})
            })
            .collect();
        output::structured(cli.output, &serde_json::json!({ "samples": rows }));
        return Ok(());
    }
    if samples.is_empty() {
        println!("no samples match (sidecars send them every second; see --samples-per-route)");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = samples
        .iter()
        .map(|s| {
            let x = s.sample.clone().unwrap_or_default();
            let decision = if x.rule.is_empty() { x.decision } else { format!("{} ({})", x.decision, x.rule) };
            vec![
                output::time(x.unix_ms),
                s.service.clone(),
                if x.route.is_empty() { "-".into() } else { x.route },
                format!("{} {}{}", x.method, x.host, x.path),
                if x.client_id.is_empty() { x.client_ip } else { format!("{} ({})", x.client_id, x.client_ip) },
                decision,
                format!("v{}", x.policy_version),
                format!("{:.1}", x.weight),
            ]
        })
        .collect();
    output::table(&["TIME", "SERVICE", "ROUTE", "REQUEST", "CLIENT", "DECISION", "VERSION", "WEIGHT"], &rows);
    Ok(())
}

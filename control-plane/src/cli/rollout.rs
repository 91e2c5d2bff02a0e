//! `wardenctl rollout status|promote|abort SERVICE`: a candidate started by `apply
//! --shadow` or `apply --canary N%`. `status` shows the rollout and how the candidate
//! compares: a shadow's differences from the live version so far (by kind, route, rule,
//! reason and client, with example request ids), a canary's sidecars side by side with the
//! baseline's over the last 30 s; `promote` makes the candidate live, `abort` puts every
//! sidecar back on the live version.

use warden_proto::v1::{CanarySide, EndRolloutRequest, Rollout, RolloutStatusRequest};

use crate::cli::context::{Cli, Format, Outcome, author};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Verb,
}

#[derive(Debug, clap::Subcommand)]
enum Verb {
    /// The service's rollout (running, or how the last one ended) and how the candidate
    /// compares.
    Status { service: String },
    /// Make the candidate the live version on every sidecar.
    Promote {
        service: String,
        #[arg(short = 'm', long)]
        message: Option<String>,
        #[arg(long, env = "WARDEN_AUTHOR")]
        author: Option<String>,
    },
    /// Put every sidecar back on the live version; the candidate never goes live.
    Abort {
        service: String,
        #[arg(short = 'm', long)]
        message: Option<String>,
        #[arg(long, env = "WARDEN_AUTHOR")]
        author: Option<String>,
    },
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let (service, action, who, message) = match &a.command {
        Verb::Status { service } => return status(cli, service).await,
        Verb::Promote { service, author, message } => (service, "promote", author, message),
        Verb::Abort { service, author, message } => (service, "abort", author, message),
    };
    let ended = cli
        .admin()
        .await?
        .end_rollout(EndRolloutRequest {
            service: service.clone(),
            action: action.into(),
            author: author(who.as_deref()),
            reason: message.clone().unwrap_or_default(),
        })
        .await?
        .into_inner();
    match cli.output {
        Format::Table => match ended.state.as_str() {
            "promoted" => {
                println!("{}: v{} promoted: it is the live version now", output::cell(service), ended.version)
            }
            _ => println!(
                "{}: the rollout of v{} is aborted: every sidecar is back on v{}",
                output::cell(service),
                ended.version,
                ended.base_version
            ),
        },
        f => output::structured(f, &json(&ended)),
    }
    Ok(())
}

async fn status(cli: &Cli, service: &str) -> Outcome {
    let resp =
        cli.admin().await?.rollout_status(RolloutStatusRequest { service: service.to_owned() }).await?.into_inner();
    if cli.output != Format::Table {
        let side = |s: &Option<CanarySide>| s.as_ref().map(side_json);
        let differences: Vec<_> = resp
            .differences
            .iter()
            .map(|d| {
                serde_json::json!({
                    "kind": d.kind, "route": d.route, "rule": d.rule, "code": d.code, "client": d.client_id,
                    "count": d.count, "example_request_ids": d.example_request_ids,
                })
            })
            .collect();
        output::structured(
            cli.output,
            &serde_json::json!({
                "rollout": resp.rollout.as_ref().map(json), "differences": differences,
                "canary": side(&resp.canary), "baseline": side(&resp.baseline),
            }),
        );
        return Ok(());
    }
    let Some(r) = resp.rollout else {
        println!("{}: no rollout has run", output::cell(service));
        return Ok(());
    };
    println!("{}", describe(&r));
    if r.mode == "shadow" {
        if resp.differences.is_empty() {
            println!("no differences so far: the candidate decided every reported request as the live version did");
            return Ok(());
        }
        println!("where the candidate decides otherwise (since it started):");
        let rows: Vec<Vec<String>> = resp
            .differences
            .iter()
            .map(|d| {
                vec![
                    d.kind.clone(),
                    output::cell(&d.route).into_owned(),
                    output::cell(&d.rule).into_owned(),
                    output::cell(&d.code).into_owned(),
                    output::cell(&d.client_id).into_owned(),
                    d.count.to_string(),
                    output::cell(&d.example_request_ids.join(" ")).into_owned(),
                ]
            })
            .collect();
        output::table(&["DECISION", "ROUTE", "RULE", "REASON", "CLIENT", "COUNT", "EXAMPLES"], &rows);
        return Ok(());
    }
    let (canary, baseline) = (resp.canary.unwrap_or_default(), resp.baseline.unwrap_or_default());
    println!("last 30 s, canary (v{}) against baseline (v{}):", r.version, r.base_version);
    let pct = |n: u64, of: u64| if of == 0 { "-".to_owned() } else { format!("{:.2}%", 100.0 * n as f64 / of as f64) };
    let mut rows = vec![
        vec!["sidecars".into(), canary.instances.join(" "), baseline.instances.join(" ")],
        vec!["requests".into(), canary.requests.to_string(), baseline.requests.to_string()],
        vec!["refused".into(), pct(canary.refused, canary.requests), pct(baseline.refused, baseline.requests)],
    ];
    let mut codes: Vec<&str> =
        canary.refused_by_code.iter().chain(&baseline.refused_by_code).map(|c| c.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
    for code in codes {
        let of = |s: &CanarySide| s.refused_by_code.iter().find(|c| c.code == code).map_or(0, |c| c.count);
        rows.push(vec![
            format!("  {}", output::cell(code)),
            pct(of(&canary), canary.requests),
            pct(of(&baseline), baseline.requests),
        ]);
    }
    rows.push(vec![
        "5xx".into(),
        pct(canary.server_errors, canary.requests),
        pct(baseline.server_errors, baseline.requests),
    ]);
    rows.push(vec!["p99".into(), format!("≤ {} ms", canary.p99_ms), format!("≤ {} ms", baseline.p99_ms)]);
    output::table(&["", "CANARY", "BASELINE"], &rows);
    Ok(())
}

/// One line: what the rollout is and where it stands.
fn describe(r: &Rollout) -> String {
    let what = match r.mode.as_str() {
        "canary" => format!(
            "canary of v{} on {}% of the sidecars ({}) against v{}",
            r.version,
            r.canary_percent,
            output::cell(&r.canary_instances.join(", ")),
            r.base_version
        ),
        _ => format!("shadow of v{} beside v{}", r.version, r.base_version),
    };
    let abort_if = match r.abort_if.is_empty() {
        true => String::new(),
        false => format!(", aborts by itself if {}", output::cell(&r.abort_if.join(" or "))),
    };
    let state = match r.state.as_str() {
        "promoted" | "aborted" => {
            format!("{} {} ({})", r.state, output::ago(r.ended_unix_ms), output::cell(&r.reason))
        }
        _ => format!("running since {}", output::ago(r.started_unix_ms)),
    };
    format!("{}: {what}{abort_if}, by {}: {state}", output::cell(&r.service), output::cell(&r.author))
}

/// What `apply` prints when it started a rollout.
pub fn started(r: &Rollout) -> String {
    let next = format!(
        "`wardenctl rollout status {s}`, then `wardenctl rollout promote {s}` or `wardenctl rollout abort {s}`",
        s = output::cell(&r.service)
    );
    match r.mode.as_str() {
        "canary" => format!(
            "{}: v{} is a canary on {} (the others stay on v{}); {next}",
            output::cell(&r.service),
            r.version,
            output::cell(&r.canary_instances.join(", ")),
            r.base_version
        ),
        _ => format!(
            "{}: v{} runs in shadow beside v{} on every sidecar, never enforced; {next}",
            output::cell(&r.service),
            r.version,
            r.base_version
        ),
    }
}

pub fn json(r: &Rollout) -> serde_json::Value {
    serde_json::json!({
        "service": r.service, "version": r.version, "base_version": r.base_version, "mode": r.mode,
        "state": r.state, "canary_percent": r.canary_percent, "canary_instances": r.canary_instances,
        "abort_if": r.abort_if, "author": r.author, "started": output::time(r.started_unix_ms),
        "ended": output::time(r.ended_unix_ms), "ended_by": r.ended_by, "reason": r.reason,
    })
}

fn side_json(s: &CanarySide) -> serde_json::Value {
    let codes: serde_json::Map<String, serde_json::Value> =
        s.refused_by_code.iter().map(|c| (c.code.clone(), c.count.into())).collect();
    serde_json::json!({
        "instances": s.instances, "requests": s.requests, "refused": s.refused, "refused_by_code": codes,
        "server_errors": s.server_errors, "p99_ms": s.p99_ms,
    })
}

/// The rollouts `status` lists under the fleet.
pub fn lines(rollouts: &[Rollout]) -> Vec<String> {
    rollouts.iter().map(describe).collect()
}

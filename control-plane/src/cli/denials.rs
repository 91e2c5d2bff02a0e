//! `wardenctl denials [--service S] [--since 15m] [--route R] [--rule X] [--client C]
//! [--group] [--limit N]`: the review queue. Who was refused, by which rule and why,
//! newest first; with `--group`, how often, most first, each group with its id and its
//! reviewer's mark. `wardenctl denials mark GROUP --as expected|false-positive --note TEXT
//! [--owner WHO]` marks one.

use std::time::Duration;

use warden_proto::v1::{DenialMark, ListDenialsRequest, MarkDenialsRequest};

use crate::cli::context::{Cli, Format, Outcome, author};
use crate::cli::output;

#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    verb: Option<Verb>,
    #[arg(long)]
    service: Option<String>,
    /// Only this recent, like 15m or 24h.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "24h")]
    since: Duration,
    #[arg(long)]
    route: Option<String>,
    #[arg(long)]
    rule: Option<String>,
    /// A client id (`x-warden-client`).
    #[arg(long)]
    client: Option<String>,
    /// Count by service, route, rule, reason and client.
    #[arg(long)]
    group: bool,
    /// Rows at most.
    #[arg(short = 'n', long, default_value_t = 50)]
    limit: u32,
}

#[derive(Debug, clap::Subcommand)]
enum Verb {
    /// Mark a refusal group (its GROUP id from `denials --group`) as expected or as a
    /// false positive; replaces its earlier mark.
    Mark {
        group: String,
        #[arg(long = "as", value_parser = ["expected", "false-positive"])]
        mark: String,
        #[arg(long, default_value = "")]
        note: String,
        /// Who looks after it.
        #[arg(long, default_value = "")]
        owner: String,
        #[arg(long, env = "WARDEN_AUTHOR")]
        author: Option<String>,
    },
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    if let Some(Verb::Mark { group, mark, note, owner, author: who }) = &a.verb {
        let req = MarkDenialsRequest {
            group_id: group.clone(),
            mark: mark.clone(),
            note: note.clone(),
            owner: owner.clone(),
            author: author(who.as_deref()),
        };
        let m = cli.admin().await?.mark_denials(req).await?.into_inner();
        match cli.output {
            Format::Table => println!("group {} marked {} by {}", m.group_id, m.mark, m.author),
            _ => output::structured(cli.output, &mark_json(&m)),
        }
        return Ok(());
    }
    let since = crate::store::now_unix_ms() - i64::try_from(a.since.as_millis()).unwrap_or(i64::MAX);
    let req = ListDenialsRequest {
        service: a.service.clone().unwrap_or_default(),
        since_unix_ms: since,
        route: a.route.clone().unwrap_or_default(),
        rule: a.rule.clone().unwrap_or_default(),
        client: a.client.clone().unwrap_or_default(),
        limit: a.limit,
        group: a.group,
        request_id: String::new(),
    };
    let resp = cli.admin().await?.list_denials(req).await?.into_inner();
    if a.group {
        if cli.output != Format::Table {
            let rows: Vec<_> = resp
                .groups
                .iter()
                .map(|g| {
                    serde_json::json!({"group": g.group_id, "service": g.service, "route": g.route, "rule": g.rule,
                        "code": g.code, "client_id": g.client_id, "count": g.count, "dry_run": g.dry_run,
                        "first": output::time(g.first_unix_ms), "last": output::time(g.last_unix_ms),
                        "example_request_id": g.example_request_id, "mark": g.mark.as_ref().map(mark_json)})
                })
                .collect();
            output::structured(cli.output, &serde_json::json!({ "groups": rows }));
            return Ok(());
        }
        let rows: Vec<Vec<String>> = resp
            .groups
            .iter()
            .map(|g| {
                vec![
                    g.group_id.clone(),
                    g.count.to_string(),
                    output::ago(g.last_unix_ms),
                    g.service.clone(),
                    dash(&g.route),
                    g.rule.clone(),
                    g.code.clone(),
                    dash(&g.client_id),
                    g.mark.as_ref().map_or_else(|| "-".to_owned(), |m| m.mark.clone()),
                    if g.dry_run > 0 { format!("{} dry run", g.dry_run) } else { String::new() },
                ]
            })
            .collect();
        output::table(&["GROUP", "COUNT", "LAST", "SERVICE", "ROUTE", "RULE", "REASON", "CLIENT", "MARK", ""], &rows);
        return Ok(());
    }
    if cli.output != Format::Table {
        let rows: Vec<_> = resp
            .denials
            .iter()
            .map(|d| {
                let r = d.record.clone().unwrap_or_default();
                serde_json::json!({"service": d.service, "instance": d.instance, "time": output::time(r.unix_ms),
                    "request_id": r.request_id, "trace_id": r.trace_id, "route": r.route, "rule": r.rule, "code": r.code,
                    "status": r.status, "client_id": r.client_id, "client_ip": r.client_ip, "method": r.method,
                    "host": r.host, "path": r.path, "dry_run": r.dry_run,
                    "request_id_from_client": r.request_id_from_client, "policy_version": r.policy_version,
                    "headers": output::header_pairs(&r.headers), "auth_provider": r.auth_provider, "key_id": r.key_id})
            })
            .collect();
        output::structured(cli.output, &serde_json::json!({ "denials": rows }));
        return Ok(());
    }
    if resp.denials.is_empty() {
        println!("no refused requests match");
        return Ok(());
    }
    let rows: Vec<Vec<String>> = resp
        .denials
        .iter()
        .map(|d| {
            let r = d.record.clone().unwrap_or_default();
            let status = if r.dry_run { format!("({}, dry run)", r.status) } else { r.status.to_string() };
            vec![
                output::time(r.unix_ms),
                d.service.clone(),
                dash(&r.route),
                r.rule,
                r.code,
                status,
                dash(&r.client_id),
                r.client_ip,
                format!("{} {}", r.method, r.path),
                r.request_id,
            ]
        })
        .collect();
    output::table(
        &["TIME", "SERVICE", "ROUTE", "RULE", "REASON", "STATUS", "CLIENT", "IP", "REQUEST", "REQUEST ID"],
        &rows,
    );
    Ok(())
}

fn mark_json(m: &DenialMark) -> serde_json::Value {
    serde_json::json!({"group": m.group_id, "mark": m.mark, "note": m.note, "owner": m.owner, "author": m.author,
        "time": output::time(m.unix_ms)})
}

fn dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { s.to_owned() }
}

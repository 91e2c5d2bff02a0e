//! `wardenctl get [SERVICE] [--version N]`: a service's policy source, or every service;
//! with a rollout running, its candidate too (the live version is what `get` prints).

use warden_proto::v1::{GetPolicyRequest, ListServicesRequest, Rollout, StatusRequest};

use crate::cli::context::{Cli, Format, Outcome};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The service; omit to list every service.
    service: Option<String>,
    /// A past version instead of the current one.
    #[arg(long)]
    version: Option<u64>,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let mut admin = cli.admin().await?;
    let status = StatusRequest { service: a.service.clone().unwrap_or_default() };
    let running: Vec<Rollout> = admin
        .status(status)
        .await?
        .into_inner()
        .rollouts
        .into_iter()
        .filter(|r| matches!(r.state.as_str(), "shadow" | "canary"))
        .collect();
    let candidate = |service: &str| running.iter().find(|r| r.service == service);
    let Some(service) = &a.service else {
        let list = admin.list_services(ListServicesRequest {}).await?.into_inner().current;
        if cli.output != Format::Table {
            let rows: Vec<_> = list
                .iter()
                .map(|v| serde_json::json!({"service": v.service, "version": v.version, "author": v.author, "created": output::time(v.created_unix_ms), "message": v.message, "candidate": candidate(&v.service).map(|r| serde_json::json!({"version": r.version, "state": r.state}))}))
                .collect();
            output::structured(cli.output, &serde_json::json!({ "services": rows }));
            return Ok(());
        }
        let rows: Vec<Vec<String>> = list
            .iter()
            .map(|v| {
                vec![
                    v.service.clone(),
                    format!("v{}", v.version),
                    candidate(&v.service).map_or("-".to_owned(), |r| format!("v{} ({})", r.version, r.state)),
                    v.author.clone(),
                    output::time(v.created_unix_ms),
                    v.message.clone(),
                ]
            })
            .collect();
        output::table(&["SERVICE", "LIVE", "CANDIDATE", "AUTHOR", "APPLIED", "MESSAGE"], &rows);
        return Ok(());
    };
    let v = admin
        .get_policy(GetPolicyRequest { service: service.clone(), version: a.version.unwrap_or(0) })
        .await?
        .into_inner();
    match cli.output {
        Format::Json => output::structured(
            cli.output,
            &serde_json::json!({
                "service": v.service, "version": v.version, "author": v.author,
                "created": output::time(v.created_unix_ms), "message": v.message,
                "content_hash": v.content_hash, "policy": v.source_yaml,
                "candidate": candidate(service).map(|r| serde_json::json!({"version": r.version, "state": r.state})),
            }),
        ),
        // The source as applied: exact with -o yaml, shown safely in a terminal otherwise.
        Format::Table | Format::Yaml => {
            if let Some(r) = candidate(service).filter(|_| a.version.is_none()) {
                eprintln!(
                    "# live: v{}; candidate v{} is in {} (`wardenctl get {} --version {}`, `wardenctl rollout status {}`)",
                    v.version,
                    r.version,
                    r.state,
                    output::cell(service),
                    r.version,
                    output::cell(service)
                );
            }
            let source =
                if cli.output == Format::Yaml { v.source_yaml.as_str().into() } else { output::lines(&v.source_yaml) };
            print!("{source}");
            if !source.ends_with('\n') {
                println!();
            }
        }
    }
    Ok(())
}

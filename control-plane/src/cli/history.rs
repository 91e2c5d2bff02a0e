//! `wardenctl history SERVICE`: every version, newest first; a rollout's candidate is
//! marked with its state (shadow, canary, aborted).

use warden_proto::v1::HistoryRequest;

use crate::cli::context::{Cli, Format, Outcome};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    service: String,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let versions =
        cli.admin().await?.history(HistoryRequest { service: a.service.clone() }).await?.into_inner().versions;
    if cli.output != Format::Table {
        let rows: Vec<_> = versions
            .iter()
            .map(|v| serde_json::json!({"version": v.version, "author": v.author, "created": output::time(v.created_unix_ms), "message": v.message, "content_hash": v.content_hash, "rollout": v.rollout_state}))
            .collect();
        output::structured(cli.output, &serde_json::json!({ "service": a.service, "versions": rows }));
        return Ok(());
    }
    // The newest version that is not a running or aborted candidate is current.
    let current = versions.iter().find(|v| matches!(v.rollout_state.as_str(), "" | "promoted")).map(|v| v.version);
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            let mark = match v.rollout_state.as_str() {
                _ if Some(v.version) == current => " (current)".to_owned(),
                "" | "promoted" => String::new(),
                "shadow" | "canary" => format!(" ({}, candidate)", v.rollout_state),
                other => format!(" ({other})"),
            };
            vec![
                format!("v{}{mark}", v.version),
                v.author.clone(),
                output::time(v.created_unix_ms),
                v.content_hash.get(..12).unwrap_or_default().to_owned(),
                v.message.clone(),
            ]
        })
        .collect();
    output::table(&["VERSION", "AUTHOR", "APPLIED", "HASH", "MESSAGE"], &rows);
    Ok(())
}

//! `wardenctl history SERVICE`: every version, newest first.

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
            .map(|v| serde_json::json!({"version": v.version, "author": v.author, "created": output::time(v.created_unix_ms), "message": v.message, "content_hash": v.content_hash}))
            .collect();
        output::structured(cli.output, &serde_json::json!({ "service": a.service, "versions": rows }));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = versions
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let mark = if i == 0 { " (current)" } else { "" };
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

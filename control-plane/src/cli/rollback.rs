//! `wardenctl rollback SERVICE [--to VERSION]`: makes an earlier version's content current
//! again, as a new version, so history only ever grows.

use warden_proto::v1::RollbackRequest;

use crate::cli::context::{Cli, Format, Outcome, author};
use crate::cli::output;

#[derive(Debug, clap::Args)]
pub struct Args {
    service: String,
    /// The version to restore (default: the one before the current).
    #[arg(long)]
    to: Option<u64>,
    #[arg(short = 'm', long)]
    message: Option<String>,
    #[arg(long, env = "WARDEN_AUTHOR")]
    author: Option<String>,
    /// Abort the service's running rollout first.
    #[arg(long)]
    force: bool,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let resp = cli
        .admin()
        .await?
        .rollback(RollbackRequest {
            service: a.service.clone(),
            to_version: a.to.unwrap_or(0),
            author: author(a.author.as_deref()),
            message: a.message.clone().unwrap_or_default(),
            force: a.force,
        })
        .await?
        .into_inner();
    for r in &resp.results {
        if cli.output != Format::Table {
            output::structured(
                cli.output,
                &serde_json::json!({"service": r.service, "version": r.version, "changed": r.changed, "previous_version": r.previous_version}),
            );
            continue;
        }
        let diff = output::diff(
            &r.previous_yaml,
            &r.source_yaml,
            &format!("{}@v{}", r.service, r.previous_version),
            "rollback",
        );
        print!("{}", output::lines(&diff));
        let service = output::cell(&r.service);
        if r.changed {
            println!("{service}: rolled back; now v{}", r.version);
        } else {
            println!("{service}: already has that content (v{})", r.version);
        }
    }
    Ok(())
}

//! `wardenctl apply -f FILE [--dry-run] [-m MESSAGE]`: validate locally, send, print the
//! diff of each service and the version it became. `--preview` shows instead what the
//! file would do to recent requests (`preview.rs`).

use warden_policy::yaml::parse_file;
use warden_proto::v1::ApplyRequest;

use crate::cli::context::{Cli, Failure, Format, Outcome, author, read_file};
use crate::cli::{output, preview};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Policy file (`-` for stdin).
    #[arg(short = 'f', long = "filename")]
    file: String,
    /// Validate and show the diff; store nothing.
    #[arg(long, conflicts_with = "preview")]
    dry_run: bool,
    /// Replay recent sampled requests through the current and this policy and show what
    /// changes; store nothing.
    #[arg(long)]
    preview: bool,
    /// With --preview: exit 4 if more than this share of the sampled requests would be
    /// newly refused (like 0.5%), or if there are no samples to judge.
    #[arg(long, requires = "preview", value_parser = preview::parse_share)]
    max_new_denials: Option<f64>,
    /// With --preview: replay the samples of this long ago until now.
    #[arg(long, requires = "preview", value_parser = humantime::parse_duration, default_value = "1h")]
    since: std::time::Duration,
    /// Why: kept with the version.
    #[arg(short = 'm', long)]
    message: Option<String>,
    /// Recorded as the version's author (default: $USER@host).
    #[arg(long, env = "WARDEN_AUTHOR")]
    author: Option<String>,
}

pub async fn run(cli: &Cli, a: &Args) -> Outcome {
    let source = read_file(&a.file)?;
    // Refuse early, offline, with the same parser the server uses.
    parse_file(&a.file, &source).map_err(|e| Failure::Refused(e.to_string()))?;
    if a.preview {
        return preview::run(cli, &a.file, source, a.since, a.max_new_denials).await;
    }
    let resp = cli
        .admin()
        .await?
        .apply(ApplyRequest {
            file_name: a.file.clone(),
            source,
            author: author(a.author.as_deref()),
            message: a.message.clone().unwrap_or_default(),
            dry_run: a.dry_run,
        })
        .await?
        .into_inner();

    if cli.output != Format::Table {
        let results: Vec<_> = resp
            .results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "service": r.service, "version": r.version, "changed": r.changed,
                    "previous_version": r.previous_version, "dry_run": a.dry_run, "warnings": r.warnings,
                    "diff": output::diff(&r.previous_yaml, &r.source_yaml, "current", "new"),
                })
            })
            .collect();
        output::structured(cli.output, &serde_json::json!({ "results": results }));
        return Ok(());
    }
    for r in &resp.results {
        for w in &r.warnings {
            eprintln!("warning: {}", output::lines(w));
        }
        if !r.changed {
            println!("{}: unchanged (v{})", output::cell(&r.service), r.version);
            continue;
        }
        let old = if r.previous_version == 0 {
            "(none)".to_owned()
        } else {
            format!("{}@v{}", r.service, r.previous_version)
        };
        print!("{}", output::lines(&output::diff(&r.previous_yaml, &r.source_yaml, &old, &a.file)));
        if a.dry_run {
            println!("{}: would become v{} (dry run: nothing stored)", output::cell(&r.service), r.version);
        } else {
            println!("{}: applied as v{}", output::cell(&r.service), r.version);
        }
    }
    Ok(())
}
